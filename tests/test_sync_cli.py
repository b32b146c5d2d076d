"""``passgate sync`` as a technician and systemd run it, against a real collector on 127.0.0.1:
enrolment (also when the network is not up yet), one round that uploads, installs the newer
published bundle through the same checks as ``passgate bundle install``, and feeds the signed
time into the clock floor; the state file the idle screen reads."""

from __future__ import annotations

import hashlib
import json
import stat
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytest.importorskip("flask", reason="collector extra not installed: pip install -e '.[collector]'")
pytest.importorskip("waitress", reason="collector extra not installed")

from bundle_support import Fleet  # noqa: E402
from passgate.bundle import install_bundle  # noqa: E402
from passgate.cli import main  # noqa: E402
from passgate.clock.store import ClockStore  # noqa: E402
from passgate.journal.journal import Journal  # noqa: E402
from passgate.journal.syncstate import ONLINE, read_state  # noqa: E402
from passgate.passes.keys import public_pem  # noqa: E402
from sync_support import LiveCollector, collector_rows, fill_journal, free_port  # noqa: E402

DEVICE = "gate-1"
TOKEN = "enrol-" + "c" * 40
TIME_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"cli time key").digest())


@pytest.fixture
def site(tmp_path):
    """A provisioned checkpoint: 500 queued scans, device key, pinned roots with bundle v1
    installed, pinned time key; and a fleet that publishes bundle v2."""
    state, sync = tmp_path / "state", tmp_path / "sync"
    fill_journal(state / "journal.sqlite", 500)
    assert main(["keys", "new-device", "--out", str(sync)]) == 0
    (state / "time-keys").mkdir()
    (state / "time-keys" / "time.pub").write_bytes(public_pem(TIME_KEY))
    fleet = Fleet()
    now = int(time.time())
    install_bundle(fleet.bundle(1, issued=now - 60), state / "bundle", now, roots=fleet.roots.set)
    v2 = fleet.bundle(2, issued=now - 30)
    args = ["--state", str(state), "--sync-dir", str(sync)]
    return state, sync, v2, args


def publish(collector: LiveCollector, data: bytes, version: int) -> None:
    digest = hashlib.sha256(data).hexdigest()
    collector.store.publish_bundle(version, data, digest, int(time.time()))


def test_enrol_then_one_round(site, tmp_path, capsys):
    state, sync, v2, args = site
    with LiveCollector(f"sqlite:///{tmp_path}/c.db", TIME_KEY) as collector:
        collector.add_token(DEVICE, TOKEN)
        publish(collector, v2, 2)
        assert main(["sync", "enrol", "--token", TOKEN, "--collector", collector.url,
                     "--device", DEVICE, *args]) == 0
        assert "enrolled with" in capsys.readouterr().out
        record = sync / "enrolment.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert TOKEN not in record.read_text()  # used up: not kept on the card
        assert main(["sync", "--once", *args]) == 0
        assert "ok: uploaded 500" in capsys.readouterr().out
        assert len(collector_rows(tmp_path / "c.db", DEVICE)) == 500
        device = collector.store.device(DEVICE)
    with Journal(state / "journal.sqlite", bytes(32)) as j:
        assert j.pending_count() == 0
    installed = json.loads((state / "bundle" / "installed.json").read_text())
    assert installed["version"] == 2  # through install_bundle's checks
    clock = ClockStore(state / "clock.floor").load()
    assert clock.floor_source == "token" and clock.anchor is not None  # trusted, fresh time
    assert abs(clock.floor - time.time()) < 60
    st = read_state(state / "sync-state.json")
    assert (st.connectivity, st.pending, st.bundle_version, st.dead_letters) == (ONLINE, 0, 2, 0)
    # The collector saw the device's health in the batch status map.
    assert device.backlog == 0 and device.bundle_version is not None
    assert main(["sync", "status", *args]) == 0
    assert "connectivity online" in capsys.readouterr().out


def test_first_boot_offline_enrols_later(site, tmp_path, capsys):
    state, sync, _, args = site
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert main(["sync", "enrol", "--token", TOKEN, "--collector", url,
                 "--device", DEVICE, *args]) == 1
    assert "will enrol when it can" in capsys.readouterr().out
    assert main(["sync", "--once", *args]) == 1  # still offline: rows stay queued
    st = read_state(state / "sync-state.json")
    assert st.connectivity == "offline" and st.pending == 500
    assert "ConnectionRefusedError" in st.last_error
    with LiveCollector(f"sqlite:///{tmp_path}/c.db", TIME_KEY, port=port) as collector:
        collector.add_token(DEVICE, TOKEN)
        assert main(["sync", "--once", *args]) == 0  # enrols first, then uploads
        assert len(collector_rows(tmp_path / "c.db", DEVICE)) == 500
    assert TOKEN not in (sync / "enrolment.json").read_text()


def test_removed_device_keeps_its_rows(site, tmp_path, capsys):
    state, sync, _, args = site
    with LiveCollector(f"sqlite:///{tmp_path}/c.db", TIME_KEY) as collector:
        collector.add_token(DEVICE, TOKEN)
        assert main(["sync", "enrol", "--token", TOKEN, "--collector", collector.url,
                     "--device", DEVICE, *args]) == 0
        collector.store.remove_device(DEVICE)
        assert main(["sync", "--once", *args]) == 1
    with Journal(state / "journal.sqlite", bytes(32)) as j:
        assert j.pending_count() == 500 and j.dead_letter_count() == 0
    assert "unauthenticated" in read_state(state / "sync-state.json").last_error


def test_usage_errors(tmp_path, capsys):
    assert main(["sync", "--once", "--state", str(tmp_path)]) == 2
    assert "no collector" in capsys.readouterr().err
    assert main(["sync", "--once", "--state", str(tmp_path), "--batch", "0"]) == 2


def test_the_agents_clock_follows_the_config(tmp_path):
    import argparse

    from passgate.cli.sync import _time_link, resolve
    from passgate.clock.clock import ClockConfig

    cfg = tmp_path / "passgate.toml"
    cfg.write_text(
        f'[checkpoint]\nzone = "gate-1"\ndevice_id = "gate-1"\nstate_dir = "{tmp_path}"\n\n'
        '[clock]\ntrust_timesyncd = false\ntrust_rtc = true\nrtc_device = "rtc1"\n'
        'token_trust = "2h"\n'
    )
    clock, _link = _time_link(resolve(argparse.Namespace(config=cfg)), DEVICE)
    assert clock.config == ClockConfig(
        trust_timesyncd=False, trust_rtc=True, token_trust_s=7200.0, rtc_device="rtc1"
    )
    assert clock.store.path == tmp_path / "clock.floor"


def test_no_published_bundle_does_not_refresh_the_installed_one(site, tmp_path, capsys):
    state, sync, v2, args = site
    with LiveCollector(f"sqlite:///{tmp_path}/c.db", TIME_KEY) as collector:
        collector.add_token(DEVICE, TOKEN)
        assert main(["sync", "enrol", "--token", TOKEN, "--collector", collector.url,
                     "--device", DEVICE, *args]) == 0
        record = state / "bundle" / "installed.json"
        before = json.loads(record.read_text())
        assert main(["sync", "--once", *args]) == 0  # GET /v1/bundle?have=1 -> 404 no_bundle
        assert json.loads(record.read_text()) == before  # the age of bundle 1 keeps counting
        publish(collector, v2, 2)
        assert main(["sync", "--once", *args]) == 0  # published: installed as usual
        assert json.loads(record.read_text())["version"] == 2


def test_bundle_download_is_capped(tmp_path):
    from passgate.sync.client import BundleTooLarge, CollectorClient
    from passgate.sync.devicekey import load_device_key, new_device_key

    key = load_device_key(new_device_key(tmp_path / "k")[0])
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        publish(collector, b"\x00" * 5000, 3)
        client = CollectorClient(collector.url, DEVICE, key, now=time.time, max_bundle=4096)
        with pytest.raises(BundleTooLarge):
            client.fetch_bundle(None)
        big = CollectorClient(collector.url, DEVICE, key, now=time.time, max_bundle=5000)
        got = big.fetch_bundle(None)
        assert (got.version, len(got.data)) == (3, 5000)
        assert big.fetch_bundle(3).data is None  # conditional: nothing newer than v3
        assert big.fetch_bundle(3).published
    with LiveCollector(f"sqlite:///{tmp_path}/empty.db") as collector:
        nothing = CollectorClient(collector.url, DEVICE, key, now=time.time).fetch_bundle(3)
        assert (nothing.data, nothing.published) == (None, False)  # 404 no_bundle


BAD_URLS = ["127.0.0.1:18470", "ftp://x", "http://h:notaport", "http://", "https://:8470/x"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_collector_url_is_a_usage_error(site, capsys, url):
    from passgate.sync.enrolment import Enrolment, save_enrolment

    state, sync, _, args = site
    assert main(["sync", "enrol", "--token", TOKEN, "--collector", url, "--device", DEVICE,
                 *args]) == 2
    err = capsys.readouterr().err
    assert "collector URL" in err and len(err.strip().splitlines()) == 1
    assert not (sync / "enrolment.json").exists()  # nothing recorded for a URL that cannot work
    save_enrolment(sync / "enrolment.json",
                   Enrolment("http://127.0.0.1:9", DEVICE, "00" * 8, enrolled_at=1.0))
    for once in (["--once"], []):  # the loop too: exit 2, not a crash loop under systemd
        assert main(["sync", *once, "--collector", url, *args]) == 2
        err = capsys.readouterr().err
        assert "collector URL" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_url_in_the_client_is_a_refusal_not_a_crash(tmp_path, url):
    from passgate.sync.client import CollectorClient, Refused
    from passgate.sync.devicekey import load_device_key, new_device_key

    key = load_device_key(new_device_key(tmp_path / "k")[0])
    client = CollectorClient(url, DEVICE, key, now=time.time)
    with pytest.raises(Refused, match="collector URL"):
        client.time()


def test_sync_dir_defaults_to_the_installed_devices_folder(tmp_path, monkeypatch):
    """By hand (`sudo passgate sync enrol`) the agent looks where the unit and provisioning do."""
    import argparse

    from passgate.cli import sync as cli_sync

    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    args = argparse.Namespace(state=tmp_path / "state", config=None)
    monkeypatch.setattr(cli_sync, "DEVICE_SYNC_DIR", tmp_path / "absent")
    assert cli_sync.resolve(args).sync_dir == tmp_path / "state"
    (tmp_path / "var-lib-passgate-sync").mkdir()
    monkeypatch.setattr(cli_sync, "DEVICE_SYNC_DIR", tmp_path / "var-lib-passgate-sync")
    assert cli_sync.resolve(args).sync_dir == tmp_path / "var-lib-passgate-sync"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "from-systemd"))
    assert cli_sync.resolve(args).sync_dir == tmp_path / "from-systemd"


def test_the_agent_prunes_at_the_clock_floor_not_a_jumped_clock(site, monkeypatch):
    """The system clock a year ahead, nothing trusted: the agent's ``now`` follows it, but the
    time it prunes with is the clock floor (a lower bound of the real time)."""
    import passgate.cli.sync as cli_sync
    import passgate.sync.agent as agent_mod
    from passgate.clock.clock import ClockConfig, SystemClock
    from passgate.sync.enrolment import Enrolment, save_enrolment
    from passgate.sync.hooks import TimeLink

    state, sync, _, args = site
    save_enrolment(sync / "enrolment.json",
                   Enrolment("http://127.0.0.1:9", DEVICE, "00" * 8, enrolled_at=1.0))
    floor = 1_790_000_000.0
    store = ClockStore(state / "clock.floor")
    store.raise_floor(floor, "boot-1", 100.0, "token")
    clock = SystemClock(store, ClockConfig(trust_timesyncd=False),
                        system_time=lambda: floor + 365 * 86400, monotonic=lambda: 160.0,
                        boot_id="boot-1", timesync_flag=state / "no-flag",
                        kernel_sync=lambda: False)
    link = TimeLink(clock, lambda: (), DEVICE, monotonic=lambda: 160.0)
    monkeypatch.setattr(cli_sync, "_time_link", lambda paths, device: (clock, link))
    seen = {}

    class Agent:
        def __init__(self, journal, client, **kw):
            seen.update(kw)

        def run_round(self):
            return agent_mod.RoundResult(True, 0, 0, 0, 60.0)

    monkeypatch.setattr(agent_mod, "SyncAgent", Agent)
    assert main(["sync", "--once", *args]) == 0
    assert seen["now"]() == floor + 365 * 86400  # the untrusted system clock
    assert seen["prune_time"]() == pytest.approx(floor + 60)  # floor + monotonic elapsed
