"""Device key, backoff and the sync state file: the parts of the sync agent with no network."""

from __future__ import annotations

import json
import os
import stat

import pytest

from passgate.cli import main
from passgate.errors import KeyFileError
from passgate.journal.syncstate import OFFLINE, ONLINE, UNKNOWN, SyncState, read_state, write_state
from passgate.passes.keys import load_public, raw_public
from passgate.sync.backoff import Backoff
from passgate.sync.devicekey import load_device_key, new_device_key

# --- device key -------------------------------------------------------------------------------


def test_new_device_key_is_0600_and_signs(tmp_path):
    key_path, pub_path, fp = new_device_key(tmp_path / "k")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = load_device_key(key_path)
    assert key.fingerprint == fp and len(fp) == 16
    assert raw_public(load_public(pub_path)) == key.public_raw
    sig = key.sign(b"batch")
    load_public(pub_path).verify(sig, b"batch")  # raises on a bad signature


def test_device_key_refuses_overwrite(tmp_path):
    new_device_key(tmp_path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        new_device_key(tmp_path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_device_key_readable_by_others_is_refused(tmp_path, mode):
    key_path, _, _ = new_device_key(tmp_path)
    os.chmod(key_path, mode)
    with pytest.raises(KeyFileError, match="must be 0600"):
        load_device_key(key_path)


def test_device_key_missing_is_a_clear_error(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read device key"):
        load_device_key(tmp_path / "nope.key")


def test_cli_keys_new_device(tmp_path, capsys):
    assert main(["keys", "new-device", "--out", str(tmp_path / "dev")]) == 0
    fp = capsys.readouterr().out.strip()
    assert load_device_key(tmp_path / "dev" / "device.key").fingerprint == fp


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_full_jitter():
    b = Backoff(base=2, cap=1000, factor=2, rand=lambda: 0.999999)
    assert [round(b.next_delay(), 3) for _ in range(5)] == [2, 4, 8, 16, 32]  # the step itself
    b = Backoff(base=2, cap=1000, factor=2, rand=lambda: 0.5)
    assert [b.next_delay() for _ in range(3)] == [1, 2, 4]


def test_backoff_is_capped_and_resets():
    b = Backoff(base=2, cap=60, rand=lambda: 0.5)
    delays = [b.next_delay() for _ in range(200)]  # no overflow after months of failures
    assert max(delays) <= 60 and delays[-1] == 30
    b.reset()
    assert b.failures == 0 and b.next_delay() == 1
    assert 30 <= Backoff(base=2, cap=60, rand=lambda: 0.0).at_cap() <= 60


def test_backoff_jitter_spreads_devices():
    import random

    rng = random.Random(7)
    devices = [Backoff(base=4, cap=300, rand=rng.random) for _ in range(50)]
    third = [[d.next_delay() for _ in range(3)][-1] for d in devices]
    assert len({round(x, 3) for x in third}) > 40  # not all at the same instant
    assert all(0 <= x <= 16 for x in third) and max(third) > 8


def test_backoff_honours_retry_after_as_lower_bound_but_caps_it():
    b = Backoff(base=1, cap=120, rand=lambda: 0.0, max_retry_after=3600)
    assert b.next_delay(retry_after=30) == 30
    assert b.next_delay(retry_after=1e9) == 3600  # a buggy hint cannot park the device
    assert Backoff(base=1, rand=lambda: 0.5).next_delay(retry_after=0.1) == 0.5


def test_backoff_rejects_nonsense():
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        Backoff(base=10, cap=5)


# --- state file -------------------------------------------------------------------------------


def test_state_round_trip_is_atomic_and_world_readable(tmp_path):
    p = tmp_path / "sync-state.json"
    s = SyncState(connectivity=ONLINE, last_success=1.5e9, pending=3, bundle_version=7)
    write_state(p, s)
    assert read_state(p) == s
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    write_state(p, s.with_(connectivity=OFFLINE, last_error="collector unreachable"))
    assert read_state(p).connectivity == OFFLINE
    assert [x.name for x in tmp_path.iterdir()] == ["sync-state.json"]  # no temp files left


def test_state_missing_or_corrupt_reads_as_unknown(tmp_path, caplog):
    p = tmp_path / "sync-state.json"
    assert read_state(p).connectivity == UNKNOWN
    p.write_text("{half")
    assert read_state(p) == SyncState()
    assert "unreadable" in caplog.text
    p.write_text(json.dumps({"connectivity": "online", "future_field": 1}))
    assert read_state(p).connectivity == ONLINE  # newer writers do not break older readers


def test_state_from_a_stopped_agent_reads_as_unknown():
    s = SyncState(connectivity=ONLINE, updated_at=1000.0)
    assert s.connectivity_at(1000.0 + 60) == ONLINE
    assert s.connectivity_at(1000.0 + 901) == UNKNOWN  # the agent died: no stale "online"
    assert s.connectivity_at(1000.0 - 3600) == UNKNOWN  # clock went back past the write
    assert SyncState(connectivity=OFFLINE).connectivity_at(5.0) == UNKNOWN  # never written


def test_state_write_failure_leaves_previous_state(tmp_path, monkeypatch):
    p = tmp_path / "sync-state.json"
    write_state(p, SyncState(connectivity=ONLINE))

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_state(p, SyncState(connectivity=OFFLINE))
    assert read_state(p).connectivity == ONLINE
    assert [x.name for x in tmp_path.iterdir()] == ["sync-state.json"]


# --- time link --------------------------------------------------------------------------------


def _token(label: str, nonce: bytes | None = None) -> bytes:
    """A COSE_Sign1 shaped like a time token (the fake clock below does the verifying)."""
    from passgate.passes.cose import ALG_EDDSA, HDR_ALG, HDR_KID, dumps, encode_sign1

    payload = {"label": label} if nonce is None else {"label": label, "nonce": nonce}
    header = {HDR_ALG: ALG_EDDSA, HDR_KID: b"k" * 8}
    return encode_sign1(dumps(payload), lambda _m: bytes(64), header)


class _FakeClock:
    """Challenges 01..., 02...; a token is fresh when it echoes a challenge not yet used."""

    def __init__(self):
        self.challenges, self.accepted, self.open = 0, [], set()

    def new_challenge(self):
        self.challenges += 1
        nonce = bytes([self.challenges]) * 16
        self.open.add(nonce)
        return nonce

    def accept_token(self, raw, keys, device_id):
        from passgate.clock.store import TokenResult
        from passgate.clock.tokens import TimeTokenError
        from passgate.passes.cose import decode_sign1, loads

        if raw == b"bad":
            raise TimeTokenError("time token signature does not verify")
        payload = loads(decode_sign1(raw).payload, "token")
        self.accepted.append(payload["label"])
        fresh = payload.get("nonce") in self.open
        self.open.discard(payload.get("nonce"))
        return TokenResult(1.8e9, fresh, True, "fresh" if fresh else "floor only")


def test_time_link_one_challenge_until_answered_then_throttles(caplog):
    from passgate.sync.hooks import TimeLink

    mono = [1000.0]
    clock = _FakeClock()
    link = TimeLink(clock, lambda: (), "gate-1", monotonic=lambda: mono[0], every_s=300)
    first = link.challenge()
    assert first == link.challenge() == b"\x01" * 16  # reused, not one per request
    link.accept(_token("stale"))  # does not answer: floor only, challenge stays
    assert link.challenge() == first
    link.accept(_token("floor-again"))  # another floor-only token 0 s later: skipped
    link.accept(_token("fresh", first))  # answers the challenge: always taken
    assert clock.accepted == ["stale", "fresh"]
    mono[0] += 10
    assert link.challenge() is None  # trusted 10 s ago: no new challenge (no SD write)
    link.accept(_token("floor"))  # nothing outstanding and accepted 10 s ago: skipped
    assert clock.accepted == ["stale", "fresh"]
    mono[0] += 300
    link.accept(_token("floor"))
    assert clock.accepted[-1] == "floor"
    assert link.challenge() == b"\x02" * 16  # every_s after the fresh answer: a new one
    mono[0] += 500
    assert link.challenge() == b"\x03" * 16  # renewed before the clock store expires it
    for _ in range(3):
        link.accept(b"bad")
    assert caplog.text.count("collector time refused") == 1  # logged once, not per answer


def test_time_link_in_the_clients_call_sequence_writes_the_floor_rarely(tmp_path, monkeypatch,
                                                                         caplog):
    """The client asks ``challenge()`` before every request and hands every answer's token to
    ``accept()``. After a trusted answer, neither may write the clock file (each write is an
    fsync on the SD card) nor log above DEBUG until ``every_s`` has passed."""
    import base64
    import logging

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from passgate.clock.clock import ClockConfig, ClockState, SystemClock
    from passgate.clock.store import ClockStore
    from passgate.clock.tokens import TimeKey, make_token
    from passgate.sync.client import NONCE_HEADER, TIME_HEADER, CollectorClient
    from passgate.sync.hooks import TimeLink
    from passgate.sync.transport import Response

    t = {"sys": 1.8e9, "mono": 1000.0}
    store = ClockStore(tmp_path / "clock.floor")
    writes = []
    real_write = store._write

    def counting_write(state, **changes):
        writes.append(t["mono"])
        return real_write(state, **changes)

    monkeypatch.setattr(store, "_write", counting_write)
    clock = SystemClock(store, ClockConfig(trust_timesyncd=False), system_time=lambda: t["sys"],
                        monotonic=lambda: t["mono"], boot_id="boot-1",
                        timesync_flag=tmp_path / "no-flag", kernel_sync=lambda: False)
    time_key = Ed25519PrivateKey.generate()
    link = TimeLink(clock, lambda: (TimeKey(raw_public(time_key)),), "gate-1",
                    monotonic=lambda: t["mono"], every_s=300)

    class Collector:
        """Answers as the real one does: a token echoing the request's challenge, if any."""

        def send(self, request):
            nonce = request.headers.get(NONCE_HEADER)
            if nonce:
                nonce = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
            raw = make_token(time_key, t["sys"], "gate-1", nonce or None)
            return Response(204, b"", {TIME_HEADER.lower(): base64.urlsafe_b64encode(raw).decode()})

    key = load_device_key(new_device_key(tmp_path / "k")[0])
    client = CollectorClient("http://collector", "gate-1", key, now=lambda: t["sys"],
                             transport=Collector(), time_sink=link.accept,
                             time_nonce=link.challenge)
    caplog.set_level(logging.DEBUG)
    for _ in range(600):  # a backlog drain: one answer a second for ten minutes
        client.time()
        t["sys"] += 1.0
        t["mono"] += 1.0
    # Per every_s: one challenge and the answer that makes the clock trusted (plus at most
    # one floor persist of the clock itself), not two writes per request.
    assert len(writes) <= 6, writes[:10]
    assert link.accepted == 2
    assert clock.read().state is ClockState.TRUSTED
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(loud) <= 1, loud[:5]  # the clock became trusted: said once
