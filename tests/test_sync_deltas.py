"""Deltas over the wire: the collector answers ``GET /v1/bundle?have=N`` with a delta chain
when it has one, and the agent installs it, falling back to the full bundle on any doubt."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytest.importorskip("flask", reason="collector extra not installed: pip install -e '.[collector]'")
pytest.importorskip("waitress", reason="collector extra not installed")

from bundle_support import Fleet  # noqa: E402
from passgate.bundle import build_bundle, install_bundle  # noqa: E402
from passgate.bundle.build import build_revocations  # noqa: E402
from passgate.bundle.delta import CHAIN_MAGIC, decode_chain  # noqa: E402
from passgate.bundle.format import Revoker  # noqa: E402
from passgate.bundle.verify import read_bundle  # noqa: E402
from passgate.cli import main  # noqa: E402
from passgate.passes.keys import raw_public  # noqa: E402
from passgate.passes.revocation import digest  # noqa: E402
from passgate.sync.client import CollectorClient  # noqa: E402
from passgate.sync.devicekey import load_device_key, new_device_key  # noqa: E402
from sync_support import LiveCollector, fill_journal  # noqa: E402

DEVICE = "gate-1"
TOKEN = "enrol-" + "d" * 40
REVOKER = Ed25519PrivateKey.generate()


class Chain:
    """Root bundle v1 with 2,000 revocations (authorising REVOKER), then revocations v2
    and v3 adding 25 each."""

    def __init__(self) -> None:
        self.fleet, now = Fleet(), int(time.time())
        self.now = now
        self.old = [os.urandom(12) for _ in range(2000)]
        self.v1 = self.root(1, self.old)
        self.new = [os.urandom(12) for _ in range(50)]
        self.v2 = self.revoke(self.v1, 2, self.new[:25])
        self.v3 = self.revoke(self.v2, 3, self.new[25:])

    def root(self, version: int, revoked: list[bytes], issued_ago: int = 60) -> bytes:
        return build_bundle(
            self.fleet.content(revoked), self.fleet.roots.keys[:2], version,
            self.now - issued_ago, self.now + 86400,
            revokers=(Revoker(raw_public(REVOKER), self.now + 3600),),
        )

    def revoke(self, base: bytes, version: int, pass_ids: list[bytes]) -> bytes:
        b = read_bundle(base, self.fleet.roots.set)
        return build_revocations(b, REVOKER, b"".join(map(digest, pass_ids)), version,
                                 self.now - 30)


def publish(collector: LiveCollector, data: bytes, version: int) -> None:
    collector.store.publish_bundle(version, data, hashlib.sha256(data).hexdigest(),
                                   int(time.time()))


def test_the_collector_serves_a_chain_from_a_published_version_only(tmp_path):
    c = Chain()
    key = load_device_key(new_device_key(tmp_path / "k")[0])
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        for v, data in ((1, c.v1), (2, c.v2), (3, c.v3)):
            publish(collector, data, v)
        client = CollectorClient(collector.url, DEVICE, key, now=time.time)
        reply = client.fetch_bundle(1)
        assert reply.delta and reply.version == 3 and reply.data.startswith(CHAIN_MAGIC)
        assert len(decode_chain(reply.data)) == 2 and len(reply.data) < len(c.v3)
        full = client.fetch_bundle(1, full=True)
        assert (full.delta, full.data) == (False, c.v3)
        unknown = client.fetch_bundle(0)  # never published: a full bundle
        assert (unknown.delta, unknown.data) == (False, c.v3)
        assert client.fetch_bundle(None).data == c.v3


def test_an_agent_that_does_not_ask_for_deltas_gets_the_full_bundle(tmp_path):
    """A device of an older firmware sends only ``have=N``: it must get a bundle it can read."""
    import urllib.request

    c = Chain()
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        for v, data in ((1, c.v1), (2, c.v2), (3, c.v3)):
            publish(collector, data, v)
        with urllib.request.urlopen(f"{collector.url}/v1/bundle?have=1", timeout=30) as resp:
            assert resp.read() == c.v3
        with urllib.request.urlopen(f"{collector.url}/v1/bundle?have=1&delta=1",
                                    timeout=30) as resp:
            assert resp.read().startswith(CHAIN_MAGIC)


@pytest.fixture
def device(tmp_path):
    state, sync = tmp_path / "state", tmp_path / "sync"
    fill_journal(state / "journal.sqlite", 3)
    assert main(["keys", "new-device", "--out", str(sync)]) == 0
    return state, sync, ["--state", str(state), "--sync-dir", str(sync)]


def enrol(collector: LiveCollector, args: list[str]) -> None:
    collector.add_token(DEVICE, TOKEN)
    assert main(["sync", "enrol", "--token", TOKEN, "--collector", collector.url,
                 "--device", DEVICE, *args]) == 0


def test_the_agent_applies_a_delta_chain(device, tmp_path):
    state, sync, args = device
    c = Chain()
    install_bundle(c.v1, state / "bundle", c.now, roots=c.fleet.roots.set)
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        for v, data in ((1, c.v1), (2, c.v2), (3, c.v3)):
            publish(collector, data, v)
        enrol(collector, args)
        assert main(["sync", "--once", *args]) == 0
    assert (state / "bundle" / "current.pgb").read_bytes() == c.v3
    assert json.loads((state / "bundle" / "installed.json").read_text())["version"] == 3


def test_a_doubtful_delta_falls_back_to_the_full_bundle(device, tmp_path):
    state, sync, args = device
    c = Chain()
    v2, v3 = c.root(2, c.old + c.new[:25]), c.root(3, c.old + c.new)
    # The device holds another v1 than the collector published (same version, other bytes):
    # the chain's base does not match, so the agent fetches the full v3, which installs.
    install_bundle(c.root(1, c.old, issued_ago=61), state / "bundle", c.now,
                   roots=c.fleet.roots.set)
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        for v, data in ((1, c.v1), (2, v2), (3, v3)):
            publish(collector, data, v)
        client = CollectorClient(collector.url, DEVICE, load_device_key(sync / "device.key"),
                                 now=time.time)
        assert client.fetch_bundle(1).delta  # what the agent is offered first
        enrol(collector, args)
        assert main(["sync", "--once", *args]) == 0
    assert (state / "bundle" / "current.pgb").read_bytes() == v3
