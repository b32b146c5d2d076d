"""The frame loop with fakes: every stage swapped for a small test double, time injected."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.clock import ClockState, FixedClock
from passgate.daemon import Checkpoint, StaticTrust, Timing, TrustView
from passgate.decide import OnDoubt, Policy, TrustState
from passgate.display import screens
from passgate.errors import HardwareError, JournalError
from passgate.issuer import Issuer
from passgate.trust import IssuerKey, TrustStore
from passgate.verify import Verifier

NOW = 1_780_000_000
ZONE = "gate-1"


class Mono:
    """A monotonic clock that only moves when the loop waits (or a test says so)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.t

    def wait(self, s: float) -> None:
        self.waits.append(s)
        self.t += s


class Frames:
    """A frame source over a list; a frame is the tuple of texts the fake decoder 'sees'.

    ``HardwareError`` items are raised by read(); ``fail_opens`` makes the next opens fail.
    """

    def __init__(self, frames, fail_opens: int = 0) -> None:
        self.frames = list(frames)
        self.fail_opens = fail_opens
        self.opens = self.closes = 0
        self.is_open = False

    def open(self) -> None:
        self.opens += 1
        if self.fail_opens:
            self.fail_opens -= 1
            raise HardwareError("camera not detected")
        self.is_open = True

    def read(self):
        assert self.is_open
        if not self.frames:
            return None
        item = self.frames.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closes += 1
        self.is_open = False


class Decoder:
    def decode(self, frame):
        return list(frame)


class Debounce:
    """One presentation per code: new when it was not in view during the last second."""

    def __init__(self, gone_after_s: float = 1.0) -> None:
        self.last: dict[str, float] = {}
        self.gone = gone_after_s

    def feed(self, texts, t):
        new = [x for x in texts if t - self.last.get(x, float("-inf")) > self.gone]
        for x in texts:
            self.last[x] = t
        return new


class Journal:
    def __init__(self) -> None:
        self.rows = []
        self.fail: str | None = None

    def pass_hash(self, pass_id: bytes) -> bytes:
        return (pass_id * 2)[:16]

    def record(self, rec) -> int:
        if self.fail:
            raise JournalError(self.fail)
        self.rows.append(rec)
        return len(self.rows)

    def pending_count(self) -> int:
        return len(self.rows)


class AntiPassback:
    def __init__(self, journal: Journal, window_s: float) -> None:
        self.journal, self.window = journal, window_s

    def already_used(self, pass_hash, zone, purpose, now) -> bool:
        return any(
            r.pass_hash == pass_hash
            and r.zone == zone
            and r.verdict == "accept"
            and now - r.scanned_at < self.window
            for r in self.journal.rows
        )


class Signals:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.relay = False

    def accept(self):
        self.calls.append("accept")
        self.relay = True

    def deny(self):
        self.calls.append("deny")

    def fault(self, on):
        self.calls.append(f"fault({on})")

    def release(self):
        self.calls.append("release")
        self.relay = False


class Display:
    def __init__(self, broken: bool = False) -> None:
        self.shown = []
        self.broken = broken

    def show(self, screen):
        if self.broken:
            raise OSError(121, "Remote I/O error")
        self.shown.append(screen)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer(Ed25519PrivateKey.generate(), "city")


@pytest.fixture
def trust(issuer: Issuer) -> StaticTrust:
    return StaticTrust(Verifier(TrustStore([IssuerKey.from_public(issuer.key.public_key())])))


def make(
    frames,
    trust,
    *,
    journal=None,
    display=None,
    clock=None,
    policy=Policy(),  # noqa: B008 (frozen)
    window=600,
    fail_opens=0,
    timing=Timing(verdict_hold_s=3.0),  # noqa: B008 (frozen)
):
    mono = Mono()
    journal = journal or Journal()
    cp = Checkpoint(
        source=Frames(frames, fail_opens),
        decoder=Decoder(),
        debouncer=Debounce(),
        trust=trust,
        antipassback=AntiPassback(journal, window),
        journal=journal,
        signals=Signals(),
        display=display if display is not None else Display(),
        clock=clock or FixedClock(NOW),
        zone=ZONE,
        policy=policy,
        timing=timing,
        monotonic=mono,
        wait=mono.wait,
    )
    cp.mono = mono
    return cp


def passes(issuer: Issuer):
    ok = issuer.issue("work", [ZONE], NOW - 60, 3600)
    other = issuer.issue("work", ["lobby"], NOW - 60, 3600)
    expired = issuer.issue("shopping", [ZONE], NOW - 4 * 3600, 3 * 3600)
    return ok, other, expired


def test_one_verdict_per_presentation_and_anti_passback(issuer, trust):
    ok, other, expired = passes(issuer)
    # ok stays in view for 3 frames (one scan), leaves, comes back (already used),
    # then two codes in one frame.
    frames = [(ok,), (ok,), (ok,), (), (), (), (ok,), (), (expired, other)]
    cp = make(frames, trust)
    # each empty frame lets the (fake) time move on: the debouncer must see the code leave
    cp.decoder = type("D", (), {"decode": lambda self, f: (cp.mono.wait(0.6), list(f))[1]})()
    seen = []
    cp.on_scan = seen.append
    assert cp.run() == 9
    assert [s.verdict.reason.value for s in seen] == [
        "valid",
        "already_used",
        "expired",
        "wrong_zone",
    ]
    assert [s.seq for s in seen] == [1, 2, 3, 4]
    assert cp.signals.calls == ["accept", "deny", "deny", "deny"]
    rows = cp.journal.rows
    assert [r.reason for r in rows] == ["valid", "already_used", "expired", "wrong_zone"]
    assert rows[0].pass_hash == rows[1].pass_hash and rows[0].zone == ZONE
    assert len({r.nonce for r in rows}) == 4
    assert isinstance(cp.display.shown[0], screens.IdleScreen)
    assert isinstance(cp.display.shown[1], screens.AcceptedScreen)


def test_journal_failure_means_no_green_and_a_visible_fault_until_it_clears(issuer, trust, caplog):
    ok, *_ = passes(issuer)
    journal = Journal()
    journal.fail = "disk I/O error"
    cp = make([], trust, journal=journal)
    caplog.set_level(logging.INFO, "passgate.daemon")
    s1 = cp.scan(ok)
    assert s1.seq is None and not s1.verdict.accepted and s1.verdict.reason.value == "journal_fault"
    assert cp.signals.calls == ["deny", "fault(True)"]
    assert cp.display.shown[-1] == screens.DeniedScreen("not recorded", "journal fault")
    cp.scan(ok)  # a second failing scan: still red, fault not logged again
    cp.mono.t += 5
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.journal_fault()
    journal.fail = None
    s3 = cp.scan(ok)
    assert s3.seq == 1 and s3.verdict.accepted
    assert cp.signals.calls[-2:] == ["accept", "fault(False)"]
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: journal" in m for m in logs) == 1
    assert sum("recovered: journal" in m for m in logs) == 1


def test_anti_passback_lookup_failure_is_a_journal_fault_too(issuer, trust):
    ok, *_ = passes(issuer)
    cp = make([], trust)

    def broken(*a):
        raise JournalError("database is locked")

    cp.antipassback.already_used = broken
    s = cp.scan(ok)
    assert s.verdict.reason.value == "journal_fault" and cp.journal.rows == []


def test_camera_fault_backoff_and_recovery(issuer, trust, caplog):
    ok, *_ = passes(issuer)
    caplog.set_level(logging.INFO, "passgate.daemon")
    frames = [(), HardwareError("frame timeout"), (ok,), ()]
    cp = make(frames, trust, fail_opens=0)
    cp.source.fail_opens = 0
    # after the read error, the next two opens fail: backoff 0.5, then 1, then 2
    orig_open = cp.source.open
    state = {"n": 0}

    def open_():
        state["n"] += 1
        if state["n"] in (2, 3):
            raise HardwareError("camera not detected")
        orig_open()

    cp.source.open = open_
    seen = []
    cp.on_scan = seen.append
    cp.run()
    assert [s.verdict.reason.value for s in seen] == ["valid"]  # scanning resumed
    assert sum(cp.mono.waits) == pytest.approx(0.5 + 1 + 2)
    assert cp.signals.calls == ["fault(True)", "fault(False)", "accept"]
    assert screens.camera_fault("retrying") in cp.display.shown
    assert cp.source.closes >= 1
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: camera" in m for m in logs) == 1
    assert sum("recovered: camera" in m for m in logs) == 1


def test_camera_backoff_is_capped_and_stop_interrupts_it(trust):
    cp = make([], trust, fail_opens=100, timing=Timing(backoff_initial_s=1, backoff_max_s=4))
    opened_at = []
    real_open = cp.source.open

    def open_():
        opened_at.append(cp.mono.t)
        if len(opened_at) == 7:
            cp.stop()  # as SIGTERM would, in the middle of the backoff
        real_open()

    cp.source.open = open_
    cp.run()
    gaps = [b - a for a, b in zip(opened_at, opened_at[1:], strict=False)]
    assert gaps == [1, 2, 4, 4, 4, 4]
    assert cp.signals.calls == ["fault(True)"]


def test_display_failure_does_not_stop_scanning(issuer, trust, caplog):
    ok, *_ = passes(issuer)
    caplog.set_level(logging.INFO, "passgate.daemon")
    cp = make([(ok,), ()], trust, display=Display(broken=True))
    seen = []
    cp.on_scan = seen.append
    assert cp.run() == 2
    assert seen[0].verdict.accepted and cp.signals.calls == ["accept"]
    assert sum("fault: display" in r.getMessage() for r in caplog.records) == 1


def test_decoder_exception_is_logged_once_and_scanning_goes_on(issuer, trust, caplog):
    ok, *_ = passes(issuer)
    cp = make([("boom",), ("boom",), (ok,)], trust)

    class Flaky:
        def decode(self, frame):
            if frame == ("boom",):
                raise RuntimeError("bad frame")
            return list(frame)

    cp.decoder = Flaky()
    seen = []
    cp.on_scan = seen.append
    cp.run()
    assert [s.verdict.accepted for s in seen] == [True]
    assert sum("fault: decoder" in r.getMessage() for r in caplog.records) == 1


def test_clock_and_trust_policies_reach_the_journal_and_the_screen(issuer, trust):
    ok, *_ = passes(issuer)
    clock = FixedClock(NOW, ClockState.FLOOR)
    cp = make([], trust, clock=clock, policy=Policy(clock_untrusted=OnDoubt.FLAG))
    s = cp.scan(ok)
    assert s.verdict.accepted and s.flags == {"clock_untrusted"}
    assert cp.journal.rows[0].flags == ("clock_untrusted",)
    assert cp.journal.rows[0].clock_state == "floor"

    strict = make([], trust, clock=clock, policy=Policy(clock_untrusted=OnDoubt.DENY))
    assert strict.scan(ok).verdict.reason.value == "clock_untrusted"
    strict.mono.t += 10
    strict.handle_texts([])
    assert strict.display.shown[-1] == screens.clock_not_set()

    class Stale:
        def current(self, now):
            return TrustView(trust.current(now).verifier, TrustState(True, 3 * 86400, "3 days old"))

    st = make([], Stale())
    assert st.scan(ok).verdict.reason.value == "trust_stale"
    st.mono.t += 10
    st.handle_texts([])
    assert st.display.shown[-1] == screens.trust_data_old(3 * 86400, "passes refused")


def test_idle_screen_returns_after_the_hold_and_unchanged_screens_are_not_resent(issuer, trust):
    ok, *_ = passes(issuer)
    cp = make([], trust)
    cp.handle_texts([])
    cp.handle_texts([])
    assert len(cp.display.shown) == 1  # same idle screen: not sent again
    cp.handle_texts([ok])
    cp.mono.t += 2.9
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)
    cp.mono.t += 0.4  # the hold ends within one tick (0.25 s)
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert cp.display.shown[-1].pending == 1


def test_shutdown_releases_the_relay_and_says_stopped(issuer, trust):
    ok, *_ = passes(issuer)
    cp = make([(ok,)], trust)
    cp.run()
    assert cp.signals.relay
    cp.shutdown()
    assert not cp.signals.relay
    assert cp.display.shown[-1] == screens.StoppedScreen()


def test_watchdog_pings_only_while_the_loop_runs(trust, tmp_path):
    import socket

    from passgate.sdnotify import Notifier

    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    cp = make([()] * 20, trust)
    cp.notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"})
    got = []

    class Decoder:  # each frame takes 0.5 s; read what systemd would have read meanwhile
        def decode(self, frame):
            cp.mono.wait(0.5)
            while True:
                try:
                    got.append(sock.recv(4096).decode())
                except BlockingIOError:
                    return []

    cp.decoder = Decoder()
    cp.run()
    cp.decoder.decode(())
    sock.close()
    assert got[0] == "WATCHDOG=1"
    assert "READY=1\nSTATUS=scanning" in got
    # 20 frames x 0.5 s = 10 s of loop, a ping at most every 1 s (a third of the timeout)
    assert 8 <= got.count("WATCHDOG=1") <= 11
