"""The clock: floor, states, signed time tokens. System time and monotonic time are injected."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.clock.clock import ClockConfig, ClockState, FixedClock, SystemClock
from passgate.clock.sources import STA_UNSYNC, KernelSync, read_timex
from passgate.clock.store import CHALLENGE_TTL_S, ClockStore
from passgate.clock.tokens import TimeKey, TimeTokenError, make_token, verify_token
from passgate.passes.keys import raw_public

NOW = 1_790_000_000.0  # 2026-09-21
DAY, YEAR = 86400.0, 365 * 86400.0
DEVICE = "gate-1-pi"


class FakeTime:
    """A settable system clock, a monotonic clock that only moves forward, and the kernel's
    NTP status as Linux keeps it: setting the clock (``t.system = ...``, i.e. ``date -s``)
    or rebooting marks it unsynchronised; only ``ntp_sync`` (an NTP client) marks it synced."""

    def __init__(self, system: float = NOW) -> None:
        self._system, self.mono, self.synced = system, 1000.0, True

    @property
    def system(self) -> float:
        return self._system

    @system.setter
    def system(self, value: float) -> None:
        self._system, self.synced = value, False  # settimeofday sets STA_UNSYNC

    def ntp_sync(self, real: float | None = None) -> None:
        """An NTP client steps the clock to ``real`` (if given) and disciplines it."""
        if real is not None:
            self._system = real
        self.synced = True

    def time(self) -> float:
        return self._system

    def monotonic(self) -> float:
        return self.mono

    def kernel_synced(self) -> bool:
        return self.synced

    def run(self, seconds: float) -> None:
        """Real time passes: both clocks move."""
        self._system += seconds
        self.mono += seconds

    def reboot(self, system: float) -> None:
        """Monotonic restarts; the system clock restarts from whatever was saved."""
        self.mono, self.system = 5.0, system


@pytest.fixture
def t():
    return FakeTime()


@pytest.fixture
def store(tmp_path):
    return ClockStore(tmp_path / "clock.floor")


@pytest.fixture
def time_key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def keys(time_key):
    return (TimeKey(raw_public(time_key)),)


def make_clock(store, t, boot="boot-1", flag=None, **config):
    return SystemClock(
        store,
        ClockConfig(**config),
        system_time=t.time,
        monotonic=t.monotonic,
        boot_id=boot,
        timesync_flag=flag if flag is not None else store.path.parent / "no-such-flag",
        kernel_sync=t.kernel_synced,
    )


def stored_floor(store) -> float | None:
    return store.load().floor


def trusted_now(store, t, keys, time_key, clock=None):
    """Give the clock a fresh token at the current real time (challenge, then answer)."""
    clock = clock or make_clock(store, t)
    nonce = clock.new_challenge()
    t.mono += 0.2  # the round trip
    return clock.accept_token(make_token(time_key, t.system, DEVICE, nonce), keys, DEVICE)


# -- states ----------------------------------------------------------------------------------
def test_no_trusted_source_is_floor_state_with_system_time(store, t):
    reading = make_clock(store, t).read()
    assert reading.state is ClockState.FLOOR and reading.now == NOW


def test_timesyncd_flag_makes_the_clock_trusted_and_raises_the_floor(store, t, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    reading = make_clock(store, t, flag=flag).read()
    assert reading.trusted and reading.now == NOW
    assert stored_floor(store) == NOW  # authenticated (site-trusted) time persisted


def test_timesyncd_not_trusted_when_the_site_says_so(store, t, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    reading = make_clock(store, t, flag=flag, trust_timesyncd=False).read()
    assert reading.state is ClockState.FLOOR
    assert stored_floor(store) is None


def test_rtc_that_agrees_with_the_system_clock_is_trusted(store, t):
    def clock_with(rtc_value):
        return SystemClock(
            store,
            ClockConfig(trust_rtc=True),
            system_time=t.time,
            monotonic=t.monotonic,
            boot_id="b",
            timesync_flag=store.path.parent / "none",
            rtc=lambda: rtc_value,
        )

    assert clock_with(NOW + 1).read().trusted
    assert clock_with(NOW + 3600).read().state is ClockState.FLOOR  # RTC and system disagree
    assert clock_with(None).read().state is ClockState.FLOOR  # RTC unreadable (oscillator stopped)


# -- the floor holds: set back while running and across restarts -----------------------------
@pytest.mark.parametrize("set_to", [NOW - DAY, 0.0], ids=["one-day-back", "1970"])
def test_set_back_while_trusted_by_token_keeps_token_time(store, t, keys, time_key, set_to):
    clock = make_clock(store, t)
    trusted_now(store, t, keys, time_key, clock)
    floor = stored_floor(store)
    t.run(60)
    t.system = set_to  # someone (or a dead battery) sets the clock back
    t.run(30)
    reading = clock.read()
    # A fresh token anchors time on the monotonic clock: the system clock no longer matters.
    assert reading.state is ClockState.TRUSTED
    assert reading.now == pytest.approx(floor + 90, abs=0.5)
    assert stored_floor(store) >= floor


@pytest.mark.parametrize("set_to", [NOW - DAY, 0.0], ids=["one-day-back", "1970"])
def test_clock_set_back_without_token_is_backwards_and_the_floor_never_decreases(
    store, t, tmp_path, set_to
):
    flag = tmp_path / "synchronized"
    flag.touch()
    make_clock(store, t, flag=flag).read()  # trusted NTP time sets the floor
    flag.unlink()  # after a reboot timesyncd has not synchronised (no network)
    floor = stored_floor(store)
    clock = make_clock(store, t, flag=flag)
    t.run(100)
    t.system = set_to
    reading = clock.read()
    assert reading.state is ClockState.BACKWARDS
    assert reading.now == pytest.approx(floor + 100)
    t.run(1000)  # the floor keeps moving with monotonic time, and is persisted
    assert clock.read().now == pytest.approx(floor + 1100)
    assert stored_floor(store) >= floor
    assert json.loads(store.path.read_text())["floor"] >= floor


@pytest.mark.parametrize("set_to", [NOW - DAY, 0.0], ids=["one-day-back", "1970"])
def test_floor_holds_across_a_restart_and_a_reboot(store, t, keys, time_key, set_to):
    trusted_now(store, t, keys, time_key)
    floor = stored_floor(store)
    t.run(700)
    make_clock(store, t, token_trust_s=60).read()  # persists monotonic progress (> 600 s)
    progressed = stored_floor(store)
    assert progressed >= floor + 600

    # The scanner restarts in the same boot with the system clock set back.
    t.system = set_to
    reading = make_clock(store, t, token_trust_s=60).read()
    assert reading.state is ClockState.BACKWARDS
    assert reading.now >= progressed

    # Reboot: monotonic restarts, the system clock comes back a day late (or at 1970).
    t.reboot(set_to)
    reading = make_clock(store, t, boot="boot-2").read()
    assert reading.state is ClockState.BACKWARDS
    assert reading.now >= progressed  # the floor held
    assert stored_floor(store) >= progressed  # and never decreased


def test_floor_is_never_lowered_by_a_write(store):
    store.raise_floor(NOW, "b", 10.0, "token")
    # Same boot, 10 s later: the floor carried by monotonic time is NOW + 10, kept.
    assert store.raise_floor(NOW - YEAR, "b", 20.0, "token") == NOW + 10
    # Another boot: monotonic readings do not compare, the stored value stands.
    assert store.raise_floor(0, "other-boot", 1.0, "token") == NOW + 10
    assert stored_floor(store) == NOW + 10


# -- forward jumps do not poison the floor ----------------------------------------------------
def test_forward_one_year_and_back_does_not_poison_the_floor(store, t, keys, time_key):
    clock = make_clock(store, t, token_trust_s=30)
    trusted_now(store, t, keys, time_key, clock)
    t.run(60)  # the token's trust has lapsed: untrusted from here
    floor_before = stored_floor(store)

    t.system += YEAR  # unauthenticated jump forward
    reading = clock.read()
    assert reading.state is ClockState.FLOOR and reading.now == t.system
    t.run(3 * 3600)  # hours at the wrong time: the floor must not follow the system clock
    clock.read()
    assert stored_floor(store) < floor_before + DAY

    t.system -= YEAR  # the clock comes back to the right time
    reading = clock.read()
    assert reading.state is ClockState.FLOOR  # not backwards: the floor was not poisoned
    assert reading.now == t.system
    # And a restart agrees.
    assert make_clock(store, t, token_trust_s=30).read().state is ClockState.FLOOR


def test_trusted_timesyncd_forward_jump_is_the_sites_choice(store, t, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    clock = make_clock(store, t, flag=flag, trust_timesyncd=False)
    t.system += YEAR
    clock.read()
    assert stored_floor(store) is None  # untrusted source: no floor raised


# -- timesyncd's flag is once per boot: the kernel says whether the clock is synced now ---------
def test_forward_jump_while_the_sync_flag_is_present_does_not_poison_the_floor(store, t, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()  # timesyncd synchronised once in this boot; it never removes the flag
    clock = make_clock(store, t, flag=flag, trust_timesyncd=True)
    assert clock.read().trusted
    floor_before = stored_floor(store)
    assert floor_before == NOW

    t.system += YEAR  # date -s: the flag stays, the kernel marks the clock unsynchronised
    reading = clock.read()
    assert reading.state is ClockState.FLOOR and reading.now == t.system
    t.run(3 * 3600)  # hours at the wrong time, long enough to persist the floor
    clock.read()
    assert stored_floor(store) < floor_before + DAY
    assert make_clock(store, t, flag=flag).read().state is ClockState.FLOOR  # a restart agrees

    t.ntp_sync(NOW + 3 * 3600)  # NTP steps the clock back to the right time
    reading = clock.read()
    assert reading.trusted and reading.now == NOW + 3 * 3600  # not backwards: no poison
    t.reboot(NOW + 3 * 3600 + 60)
    t.ntp_sync()
    assert make_clock(store, t, boot="boot-2", flag=flag).read().trusted


def test_sync_flag_without_kernel_sync_is_not_trusted(store, t, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    t.synced = False  # e.g. the clock was set by hand after timesyncd's first sync
    clock = make_clock(store, t, flag=flag)
    assert clock.read().state is ClockState.FLOOR
    assert not clock.status().synchronised
    assert stored_floor(store) is None


@pytest.mark.parametrize(
    "status, maxerror, synced",
    [
        (0x2001, 4_000, True),  # STA_PLL | STA_NANO, NTP-disciplined
        (0x2001 | STA_UNSYNC, 4_000, False),  # what settimeofday leaves
        (0x2001, 16_000_000, False),  # maxerror at the kernel's ceiling: not synchronised
        (0, 15_999_999, True),
    ],
)
def test_kernel_sync_is_sta_unsync_clear_and_a_small_maxerror(status, maxerror, synced):
    assert KernelSync(lambda: (status, maxerror))() is synced


def test_kernel_status_unreadable_is_not_synchronised_and_logged_once(caplog):
    def broken():
        raise OSError("adjtimex unavailable")

    probe = KernelSync(broken)
    assert probe() is False and probe() is False
    assert len([r for r in caplog.records if "kernel clock status" in r.message]) == 1


def test_read_timex_on_this_kernel():
    status, maxerror = read_timex()
    # The kernel caps maxerror at 16 s; a wrong structure layout would read something else.
    assert 0 <= maxerror <= 16_000_000
    assert 0 <= status < 1 << 16


# -- a fresh signed token repairs a floor that an unauthenticated source set too high ----------
def test_fresh_token_repairs_a_floor_raised_by_a_forged_ntp_answer(
    store, t, keys, time_key, tmp_path
):
    flag = tmp_path / "synchronized"
    flag.touch()
    t.ntp_sync(NOW + YEAR)  # a forged NTP answer: the kernel is "synchronised" a year ahead
    scanner = make_clock(store, t, flag=flag)
    assert scanner.read().trusted
    assert stored_floor(store) == NOW + YEAR and store.load().floor_source == "timesyncd"
    t.ntp_sync(NOW)  # the real NTP server again
    assert scanner.read().state is ClockState.BACKWARDS
    t.reboot(NOW + 60)  # a reboot does not help: the floor is on the card
    t.ntp_sync()
    scanner = make_clock(store, t, boot="boot-2", flag=flag)
    assert scanner.read().state is ClockState.BACKWARDS

    # The sync agent (another process) gets a fresh signed token from the collector.
    agent = make_clock(store, t, boot="boot-2", flag=flag)
    result = trusted_now_at(agent, t, keys, time_key, real=t.system)
    assert result.trusted and result.floor_repaired and not result.floor_raised
    assert stored_floor(store) == pytest.approx(NOW + 60, abs=1)
    assert store.load().floor_source == "token"
    # The scanner held the year-ahead floor in memory: it adopts the repaired one...
    reading = scanner.read()
    assert reading.trusted and reading.now == pytest.approx(NOW + 60, abs=1)
    t.run(700)  # ...and persisting its progress does not bring the old floor back
    scanner.read()
    assert stored_floor(store) < NOW + DAY
    t.reboot(t.system)
    t.ntp_sync()
    assert make_clock(store, t, boot="boot-3", flag=flag).read().trusted


def _delete(store):
    store.path.unlink()


def _older_copy(store):  # a restored backup from before the repair
    store.path.write_text(json.dumps({"floor": NOW - 40 * DAY, "floor_source": "token"}))


def _higher_count_no_token(store):  # a "repair" that no token made
    doc = {"floor": NOW - 40 * DAY, "floor_source": "timesyncd", "repairs": 9}
    store.path.write_text(json.dumps(doc))


@pytest.mark.parametrize("replace", [_delete, _older_copy, _higher_count_no_token])
def test_a_deleted_or_replaced_clock_file_does_not_lower_a_live_floor(
    store, t, keys, time_key, tmp_path, replace
):
    flag = tmp_path / "synchronized"
    flag.touch()
    t.ntp_sync(NOW + YEAR)
    scanner = make_clock(store, t, flag=flag)
    scanner.read()
    t.ntp_sync(NOW)
    assert trusted_now_at(make_clock(store, t, flag=flag), t, keys, time_key, NOW).floor_repaired
    scanner.read()  # adopts the genuine repair
    t.run(DAY + 10)  # the token's trust is over
    flag.unlink()  # and NTP is gone
    floor = scanner.status().floor
    assert floor == pytest.approx(NOW + DAY + 10, abs=1)
    replace(store)
    t.system = NOW - 30 * DAY  # set back a month, nothing authenticated says so
    reading = scanner.read()
    assert reading.state is ClockState.BACKWARDS and reading.now >= floor
    t.run(700)
    scanner.read()
    assert stored_floor(store) >= floor  # the live floor is written back


def test_network_delay_is_no_contradiction(store, t, keys, time_key, tmp_path, caplog):
    """NTP and the collector both right, a slow link: the token is signed seconds before it
    is accepted. Neither a repair nor a WARNING, in any round (the first lands on a floor NTP
    set, the later ones on a floor the previous token set)."""
    caplog.set_level(logging.INFO, "passgate")
    flag = tmp_path / "synchronized"
    flag.touch()
    scanner = make_clock(store, t, flag=flag)
    agent = make_clock(store, t, flag=flag)
    scanner.read()
    t.run(700)
    scanner.read()
    assert store.load().floor_source == "timesyncd"
    for latency in [1.5, 0.2, 2.5, 0.3, 3.0, 0.2] * 4:
        nonce = agent.new_challenge()
        signed_at = t.system
        t.run(latency)
        token = make_token(time_key, signed_at, DEVICE, nonce)
        result = agent.accept_token(token, keys, DEVICE)
        assert result.trusted and not result.floor_repaired
        scanner.read()
        t.run(300)
        scanner.read()
    assert store.load().repairs == 0
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("behind, repaired", [(6.5, False), (7.5, True)])
def test_repair_tolerance_is_the_round_trip_plus_tolerance(store, keys, time_key, behind, repaired):
    store.raise_floor(NOW, "b", 10.0, "timesyncd")
    nonce = store.new_challenge("b", 10.0)
    # Accepted 5 s after the challenge, when the floor is NOW + 5: the slack is 5 + 2 s.
    token = make_token(time_key, NOW + 5 - behind, DEVICE, nonce)
    result = store.accept_token(token, keys, DEVICE, "b", 15.0, tolerance_s=2.0)
    assert result.trusted and result.floor_repaired is repaired


def test_a_writer_from_before_a_repair_cannot_undo_it(store, keys, time_key):
    store.raise_floor(NOW + YEAR, "b", 10.0, "timesyncd")
    seen = store.load().repairs
    nonce = store.new_challenge("b", 20.0)
    result = store.accept_token(make_token(time_key, NOW, DEVICE, nonce), keys, DEVICE, "b", 20.5)
    assert result.floor_repaired and stored_floor(store) == NOW
    assert store.load().repairs == seen + 1
    # A scanner that read the floor before the repair persists its progress: refused.
    store.raise_floor(NOW + YEAR + 600, "b", 610.0, "timesyncd", repairs=seen)
    assert stored_floor(store) == NOW


def test_a_fresh_token_outranks_ntp_while_it_lasts(store, t, keys, time_key, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    t.ntp_sync(NOW + YEAR)  # NTP keeps answering a year ahead
    clock = make_clock(store, t, flag=flag)
    clock.read()
    assert trusted_now_at(clock, t, keys, time_key, real=NOW).floor_repaired
    t.run(3600)
    reading = clock.read()
    assert reading.trusted and reading.now == pytest.approx(NOW + 3600, abs=1)
    assert stored_floor(store) < NOW + DAY


def test_repair_stops_at_a_time_a_token_already_proved(store, t, keys, time_key):
    clock = make_clock(store, t)
    clock.accept_token(make_token(time_key, NOW, DEVICE), keys, DEVICE)  # authentic, not fresh
    store.raise_floor(NOW + YEAR, "boot-1", t.mono, "timesyncd")
    # A fresh token a day before what a token already proved (a stolen time key, say).
    result = trusted_now_at(clock, t, keys, time_key, real=NOW - DAY)
    assert result.floor_repaired
    assert stored_floor(store) == pytest.approx(NOW, abs=1)


def test_a_token_that_changes_nothing_else_still_bounds_a_repair(store, t, keys, time_key):
    """A genuine token without a challenge, below a floor NTP set: it neither raises nor
    repairs, but it proves its time, so a later fresh token (a stolen time key) cannot
    repair below it."""
    store.raise_floor(NOW + YEAR, "boot-1", t.mono, "timesyncd")
    clock = make_clock(store, t)
    result = clock.accept_token(make_token(time_key, NOW, DEVICE), keys, DEVICE)
    assert not result.floor_raised and not result.floor_repaired
    assert store.load().token_floor == NOW
    result = trusted_now_at(clock, t, keys, time_key, real=NOW - DAY)
    assert result.floor_repaired
    assert stored_floor(store) == pytest.approx(NOW)


def test_a_floor_set_by_a_token_is_never_lowered(store, t, keys, time_key):
    clock = make_clock(store, t)
    clock.accept_token(make_token(time_key, NOW + YEAR, DEVICE), keys, DEVICE)
    result = trusted_now_at(clock, t, keys, time_key, real=NOW)
    assert result.trusted and not result.floor_repaired
    assert stored_floor(store) == NOW + YEAR


def test_a_token_without_challenge_cannot_repair(store, t, keys, time_key):
    store.raise_floor(NOW + YEAR, "boot-1", t.mono, "timesyncd")
    result = make_clock(store, t).accept_token(make_token(time_key, NOW, DEVICE), keys, DEVICE)
    assert not result.floor_repaired and stored_floor(store) == NOW + YEAR


def test_monotonic_progress_keeps_the_floors_source(store, t, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    clock = make_clock(store, t, flag=flag)
    clock.read()
    flag.unlink()
    t.run(700)
    clock.read()
    assert stored_floor(store) == NOW + 700 and store.load().floor_source == "timesyncd"


# -- tokens ------------------------------------------------------------------------------------
def test_recovery_to_trusted_after_an_authenticated_token(store, t, keys, time_key):
    clock = make_clock(store, t)
    t.system = 0.0  # booted at 1970, no network
    assert clock.read().state is ClockState.BACKWARDS
    result = trusted_now_at(clock, t, keys, time_key, real=NOW + 50)
    assert result.trusted and result.floor_raised
    reading = clock.read()
    assert reading.state is ClockState.TRUSTED
    assert reading.now == pytest.approx(NOW + 50, abs=0.5)
    t.run(3600)
    assert clock.read().now == pytest.approx(NOW + 50 + 3600, abs=0.5)  # token + monotonic
    # Another process (the scanner) sees it through the shared file.
    assert make_clock(store, t).read().state is ClockState.TRUSTED
    # Trust lasts token_trust_s, then the clock is floor-based again (system still 1970).
    t.run(DAY)
    assert clock.read().state is ClockState.BACKWARDS
    # A reboot also ends it: monotonic readings of another boot mean nothing.
    t.reboot(0.0)
    assert make_clock(store, t, boot="boot-2").read().state is ClockState.BACKWARDS


def trusted_now_at(clock, t, keys, time_key, real):
    nonce = clock.new_challenge()
    t.mono += 0.1
    return clock.accept_token(make_token(time_key, real, DEVICE, nonce), keys, DEVICE)


def test_token_without_challenge_raises_the_floor_only(store, t, keys, time_key):
    clock = make_clock(store, t)
    t.system = 0.0
    result = clock.accept_token(make_token(time_key, NOW, DEVICE), keys, DEVICE)
    assert not result.trusted and result.floor_raised
    reading = clock.read()
    assert reading.state is ClockState.BACKWARDS and reading.now >= NOW


def test_replayed_or_stale_challenge_token_is_not_fresh(store, t, keys, time_key):
    clock = make_clock(store, t)
    nonce = clock.new_challenge()
    token = make_token(time_key, NOW, DEVICE, nonce)
    assert clock.accept_token(token, keys, DEVICE).trusted
    assert not clock.accept_token(token, keys, DEVICE).trusted  # used once
    late = clock.new_challenge()
    t.mono += CHALLENGE_TTL_S + 1
    assert not clock.accept_token(make_token(time_key, NOW, DEVICE, late), keys, DEVICE).trusted


def test_token_refusals(store, t, keys, time_key):
    clock = make_clock(store, t)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(TimeTokenError, match="not a pinned time key"):
        clock.accept_token(make_token(other, NOW, DEVICE), keys, DEVICE)
    with pytest.raises(TimeTokenError, match="for device"):
        clock.accept_token(make_token(time_key, NOW, "gate-2"), keys, DEVICE)
    token = bytearray(make_token(time_key, NOW, DEVICE))
    token[-1] ^= 1
    with pytest.raises(TimeTokenError, match="does not verify"):
        clock.accept_token(bytes(token), keys, DEVICE)
    with pytest.raises(TimeTokenError):
        clock.accept_token(b"\x00" * 40, keys, DEVICE)
    assert stored_floor(store) is None  # no refused token touched the floor


def test_token_round_trip_and_size(keys, time_key):
    nonce = bytes(range(16))
    data = make_token(time_key, NOW + 0.25, DEVICE, nonce)
    assert len(data) < 160
    tok = verify_token(data, keys, DEVICE)
    assert (tok.t, tok.device_id, tok.nonce) == (NOW + 0.25, DEVICE, nonce)


def test_weak_time_key_refused():
    from passgate.errors import KeyFileError

    with pytest.raises(KeyFileError):
        TimeKey(bytes(32))  # not a prime-order point


DAMAGED = {
    "garbage": b"{not json",
    "binary": b"\xff\xfe\x00clock",
    "empty": b"",
    "truncated": b'{"floor": 1790000000.0, "floor_boot": "boot-1", "floor_mo',
    "not-a-map": b"[1790000000.0]",
    "floor-text": b'{"floor": "tomorrow"}',
    "floor-list": b'{"floor": [1790000000.0]}',
    "floor-infinite": b'{"floor": Infinity}',
    "anchor-number": b'{"floor": 1790000000.0, "anchor": 5}',
    "challenges-number": b'{"challenges": 7}',
    "challenge-mono-text": b'{"challenges": [{"nonce": "00", "boot": "b", "mono": "x"}]}',
    "repairs-text": b'{"repairs": "many"}',
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_state_file_is_rewritten_and_read_never_raises(store, t, tmp_path, content, caplog):
    """With the default persist interval: a trusted clock persists at once, and the damaged
    file made ``raise_floor`` raise out of read() into the scanner's frame loop."""
    flag = tmp_path / "synchronized"
    flag.touch()
    store.path.write_bytes(content)
    clock = make_clock(store, t, flag=flag)
    assert clock.read().trusted
    t.run(700)
    assert clock.read().trusted
    assert stored_floor(store) >= NOW  # rewritten from the floor in memory: readable again
    flag.unlink()  # untrusted from here: the floor still holds across a restart
    t.system = NOW - DAY
    assert make_clock(store, t).read().state is ClockState.BACKWARDS
    assert len([r for r in caplog.records if "clock state" in r.message]) == 1  # logged once


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_state_file_with_untrusted_time_passing(store, t, content):
    store.path.write_bytes(content)
    clock = make_clock(store, t)
    assert clock.read().state is ClockState.FLOOR
    t.run(700)  # monotonic progress past the persist interval: a write is due
    assert clock.read().state is ClockState.FLOOR
    store.load()  # readable again


def test_state_file_damaged_while_running_is_rewritten(store, t, tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    clock = make_clock(store, t, flag=flag)
    clock.read()
    store.path.write_text('{"floor": "gone"}')
    t.run(700)
    assert clock.read().trusted
    assert stored_floor(store) == pytest.approx(NOW + 700)


def test_state_file_damaged_between_load_and_persist(store, t, tmp_path, monkeypatch):
    """The file changes after read() compared its stamp: raise_floor is the one to find it."""
    flag = tmp_path / "synchronized"
    flag.touch()
    clock = make_clock(store, t, flag=flag)
    clock.read()
    monkeypatch.setattr(store, "stamp", lambda: clock._stamp)  # no reload: straight to persist
    store.path.write_text("{not json")
    t.run(700)
    assert clock.read().trusted
    assert stored_floor(store) == pytest.approx(NOW + 700)


def test_damaged_state_file_is_not_written_by_a_read_only_clock(store, t):
    store.path.write_text("{not json")
    clock = SystemClock(
        store,
        ClockConfig(),
        system_time=t.time,
        monotonic=t.monotonic,
        boot_id="boot-1",
        timesync_flag=store.path.parent / "none",
        kernel_sync=t.kernel_synced,
        persist=False,
    )
    t.run(700)
    assert clock.read().state is ClockState.FLOOR
    assert store.path.read_text() == "{not json"


def test_damaged_state_file_does_not_stop_tokens(store, t, keys, time_key):
    clock = make_clock(store, t)
    store.path.write_text("{not json")  # damaged after the clock started (the sync agent)
    result = trusted_now_at(clock, t, keys, time_key, real=NOW)
    assert result.trusted and stored_floor(store) == pytest.approx(NOW)


def test_fixed_clock_interface_unchanged():
    c = FixedClock(NOW)
    c.advance(5)
    assert c.read().now == NOW + 5 and c.read().trusted
