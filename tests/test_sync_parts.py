"""Device key, backoff and the sync state file: the parts of the sync agent with no network."""

from __future__ import annotations

import json
import os
import stat

import pytest

from passgate.cli import main
from passgate.errors import KeyFileError
from passgate.keys import load_public, raw_public
from passgate.sync.backoff import Backoff
from passgate.sync.devicekey import load_device_key, new_device_key
from passgate.sync.state import OFFLINE, ONLINE, UNKNOWN, SyncState, read_state, write_state

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


class _FakeClock:
    def __init__(self):
        self.challenges, self.accepted = 0, []

    def new_challenge(self):
        self.challenges += 1
        return bytes([self.challenges]) * 16

    def accept_token(self, raw, keys, device_id):
        from passgate.clockstore import TokenResult
        from passgate.timetoken import TimeTokenError

        if raw == b"bad":
            raise TimeTokenError("time token signature does not verify")
        self.accepted.append(raw)
        return TokenResult(1.8e9, raw == b"fresh", True, "")


def test_time_link_one_challenge_until_answered_then_throttles(caplog):
    from passgate.sync.hooks import TimeLink

    mono = [1000.0]
    clock = _FakeClock()
    link = TimeLink(clock, lambda: (), "gate-1", monotonic=lambda: mono[0], every_s=300)
    assert link.challenge() == link.challenge() == b"\x01" * 16  # reused, not one per request
    link.accept(b"stale")  # does not answer: floor only, challenge stays
    assert link.challenge() == b"\x01" * 16
    link.accept(b"fresh")
    assert clock.accepted == [b"stale", b"fresh"]
    mono[0] += 10
    link.accept(b"floor")  # nothing outstanding and accepted 10 s ago: skipped (no SD write)
    assert clock.accepted == [b"stale", b"fresh"]
    mono[0] += 300
    link.accept(b"floor")
    assert clock.accepted[-1] == b"floor"
    assert link.challenge() == b"\x02" * 16  # a new challenge after the fresh answer
    mono[0] += 500
    assert link.challenge() == b"\x03" * 16  # renewed before the clock store expires it
    for _ in range(3):
        link.accept(b"bad")
    assert caplog.text.count("collector time refused") == 1  # logged once, not per answer
