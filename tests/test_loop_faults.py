"""The frame loop's faults as they were first pinned: each one shown, scanning going on.

A journal that cannot record denies (never green) under a fault screen; a camera is
re-opened with capped backoff; a broken display, a decoder bug and missing GPIO do not stop
the door. Set-and-clear for every condition, one by one, is in test_loop_recovery.py. The
loop is built by the ``checkpoint`` fixture (tests/checkpoint_support.py).
"""

from __future__ import annotations

import logging

import pytest

from checkpoint_support import NOW, POLICY, issue
from fakes import (
    FailingAntiPassback,
    FailingDecoder,
    FailingJournal,
    FakeClock,
    Frames,
    RecordingDisplay,
    Told,
)
from passgate.checkpoint.loop import Timing
from passgate.checkpoint.trustview import StaticTrust, TrustView
from passgate.clock.clock import FixedClock
from passgate.hardware.camera import FlakyFrameSource
from passgate.hardware.display import screens
from passgate.journal.journal import Journal


def test_journal_failure_means_no_green_and_a_visible_fault_until_it_clears(
    checkpoint, issuer, journal, caplog
):
    caplog.set_level(logging.INFO, "passgate")
    ok, ok2 = issue(issuer), issue(issuer)
    failing = FailingJournal(journal)
    failing.fail = "database or disk is full"
    cp = checkpoint([], failing)
    s1 = cp.scan(ok)
    assert s1.seq is None and not s1.verdict.accepted
    assert s1.verdict.reason.value == "journal_fault"
    assert cp.signals.calls == ["deny", "fault(True)"]
    assert cp.display.shown[-1] == screens.DeniedScreen("not recorded", "journal fault")
    cp.scan(ok2)  # still failing: still red, not logged again
    cp.later(5)
    cp.handle_texts([])  # the verdict's hold is over: the fault stays on screen
    assert cp.display.shown[-1] == screens.journal_fault()
    assert journal.since(0) == []
    failing.fail = None
    s3 = cp.scan(ok)
    assert s3.seq == 1 and s3.verdict.accepted
    assert cp.signals.calls[-2:] == ["accept", "fault(False)"]
    cp.later(5)
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: journal" in m for m in logs) == 1
    assert sum("recovered: journal" in m for m in logs) == 1


def test_anti_passback_lookup_failure_is_a_journal_fault_too(checkpoint, issuer, trust, journal):
    view = StaticTrust(trust, POLICY, journal).current(NOW)

    class Broken:
        def current(self, now):
            return TrustView(view.verifier, view.policy, FailingAntiPassback())

    cp = checkpoint([], journal, trust=Broken())
    s = cp.scan(issue(issuer))
    assert s.verdict.reason.value == "journal_fault" and journal.since(0) == []
    assert cp.signals.calls == ["deny", "fault(True)"]


def test_camera_fault_backoff_and_recovery(checkpoint, issuer, journal, caplog):
    caplog.set_level(logging.INFO, "passgate")
    ok = issue(issuer)
    frames = [()] * 3 + [(ok,)] * 3 + [()] * 3
    # reads 3 and 4 fail; after each failed read the next 2 opens fail too
    cp = checkpoint(frames, journal, flaky=dict(fail_reads=[(3, 5)], open_failures_after_fault=2))
    cp.run()
    assert cp.reasons() == ["valid"]  # scanning resumed
    # read 3 fails: wait 0.5; opens fail twice: 1, 2; read 4 fails: 4; opens: 8, 16; then up
    assert sum(cp.mono.waits) == pytest.approx(0.5 + 1 + 2 + 4 + 8 + 16)
    assert cp.signals.calls == ["fault(True)", "fault(False)", "accept"]
    assert screens.camera_fault() in cp.display.shown
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: camera" in m for m in logs) == 1
    assert sum("recovered: camera" in m for m in logs) == 1
    assert cp.source.faults == 6


def test_camera_backoff_is_capped_and_stop_interrupts_it(checkpoint, journal):
    mono = FakeClock(wall=FixedClock(NOW))
    opened_at = []
    stop = []  # the loop's stop, once built

    class Watched(FlakyFrameSource):
        def open(self):
            opened_at.append(mono.t)
            if len(opened_at) == 7:
                stop[0]()  # as SIGTERM would, in the middle of the backoff
            super().open()

    cp = checkpoint(
        [],
        journal,
        mono=mono,
        source=Watched(Frames([()]), initial_open_failures=100),
        timing=Timing(backoff_initial_s=1, backoff_max_s=4),
    )
    stop.append(cp.stop)
    cp.run()
    gaps = [b - a for a, b in zip(opened_at, opened_at[1:], strict=False)]
    assert gaps == [1, 2, 4, 4, 4, 4]
    assert cp.signals.calls == ["fault(True)"]
    assert cp.loop.frames == 0


def test_display_failure_does_not_stop_scanning(checkpoint, issuer, journal, caplog):
    caplog.set_level(logging.INFO, "passgate")
    broken = RecordingDisplay(fail_next=-1)
    cp = checkpoint([(issue(issuer),), ()], journal, display=broken)
    assert cp.run() == 2
    assert cp.reasons() == ["valid"] and cp.signals.calls == ["accept"]
    assert sum("fault: display" in r.getMessage() for r in caplog.records) == 1


def test_a_real_display_with_no_panel_does_not_stop_scanning(checkpoint, issuer, journal, caplog):
    from passgate.hardware.display import Display as RealDisplay

    def no_panel():
        raise OSError(2, "No such file or directory: '/dev/i2c-1'")

    with RealDisplay({"ssd1306": no_panel}, retry_s=60) as display:
        cp = checkpoint([(issue(issuer),), ()], journal, display=display)
        cp.run()
        display.wait_idle(5)
        assert display.healthy == {"ssd1306": False}
    assert cp.reasons() == ["valid"] and cp.signals.calls == ["accept"]
    assert sum("display output ssd1306 failed" in r.getMessage() for r in caplog.records) == 1


def test_decoder_exception_is_logged_once_and_scanning_goes_on(checkpoint, issuer, journal, caplog):
    ok = issue(issuer)
    mono = FakeClock(wall=FixedClock(NOW))
    cp = checkpoint(
        [("boom",), ("boom",), (ok,)], journal, mono=mono, decoder=FailingDecoder(mono)
    )
    cp.run()
    assert cp.reasons() == ["valid"]
    assert sum("fault: decoder" in r.getMessage() for r in caplog.records) == 1


def test_a_journal_not_openable_at_start_is_a_fault_that_clears_when_it_opens(
    checkpoint, issuer, tmp_path, caplog
):
    caplog.set_level(logging.INFO, "passgate")
    blocker = tmp_path / "state"
    blocker.write_text("not a folder yet\n")  # e.g. the state partition is not mounted
    journal = Journal(blocker / "journal.sqlite", b"k" * 32, connect=False)
    cp = checkpoint([], journal)
    cp.handle_texts([])  # the first look at the journal (the pending count) fails
    assert cp.display.shown[-1] == screens.journal_fault()
    assert cp.signals.calls == ["fault(True)"]
    assert cp.scan(issue(issuer)).verdict.reason.value == "journal_fault"
    blocker.unlink()  # the folder appears: the journal opens on its next use
    cp.later(11)  # the pending count is looked at again
    cp.handle_texts([])
    assert cp.loop.faults.active == {} and cp.signals.calls[-1] == "fault(False)"
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert cp.scan(issue(issuer)).verdict.accepted and journal.pending_count() == 1
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: journal" in m for m in logs) == 1
    assert sum("recovered: journal" in m for m in logs) == 1


def test_a_journal_that_reads_but_cannot_write_stays_a_fault_until_a_scan_records(
    checkpoint, issuer, journal
):
    failing = FailingJournal(journal)
    failing.fail = "database or disk is full"
    cp = checkpoint([], failing)
    cp.scan(issue(issuer))
    cp.later(11)
    cp.handle_texts([])  # the pending count still reads fine on a full disk
    assert "journal" in cp.loop.faults.active
    assert cp.display.shown[-1] == screens.journal_fault()


def test_gpio_missing_at_start_is_a_fault_and_accepts_are_flagged_no_relay_until_it_works(
    checkpoint, issuer, journal, caplog
):
    """No pin factory at start-up: the loop runs without outputs under a "GPIO fault" screen,
    still verifying, recording and showing scans; an accept opens nothing and its row says
    so (``no_relay``) but it counts for anti-passback. The factory is made again with the
    loop's backoff; once it works the fault clears and the relay is driven."""
    import functools

    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from passgate.errors import HardwareError
    from passgate.hardware.signals.gpio import Signals as RealSignals
    from passgate.hardware.signals.gpio import SignalsConfig
    from passgate.hardware.signals.retry import RetryingSignals

    caplog.set_level(logging.INFO, "passgate")
    mono = FakeClock(wall=FixedClock(NOW))
    factory = MockFactory(pin_class=MockPWMPin)
    works, attempts = [], []

    def maker():
        attempts.append(round(mono.t - 1000, 2))
        if not works:
            raise HardwareError("no GPIO pin factory: lgpio: can not open gpiochip")
        return factory

    quiet = functools.partial(RealSignals, clock=mono, background=False)
    cfg = SignalsConfig()
    cp = checkpoint(
        [],
        journal,
        mono=mono,
        signals=RetryingSignals(cfg, maker, make_signals=quiet, initial_s=1, max_s=4),
        notifier=(told := Told()),
        timing=Timing(backoff_initial_s=1, backoff_max_s=4),
    )
    cp.handle_texts([])  # the first look: the fault is raised, the retry timer starts
    assert cp.display.shown[-1] == screens.gpio_fault()
    assert told.lines == ["STATUS=fault: gpio"]

    ok = issue(issuer)
    first = cp.scan(ok)
    assert first.verdict.accepted and first.flags == {"no_relay"}
    row = journal.since(0)[-1]
    assert (row.verdict, row.reason, row.flags) == ("accept", "valid", ("no_relay",))
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)  # the result is shown
    cp.later(3.1)
    cp.handle_texts([])  # the retry due at 1 s fails (at 3.1 s): the next waits 2 s
    assert cp.display.shown[-1] == screens.gpio_fault()
    assert attempts == [0, 3.1]

    works.append(True)
    cp.later(1.8)
    cp.handle_texts([])
    assert attempts == [0, 3.1]  # not due yet (at 5.1 s)
    cp.later(0.3)  # the next look (every tick_s)
    cp.handle_texts([])
    assert attempts == [0, 3.1, 5.2] and cp.loop.faults.active == {}
    assert told.lines[-1] == "STATUS=scanning"
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)

    again = cp.scan(ok)  # the no_relay accept counted: a copy of the pass gets no green
    assert again.verdict.reason.value == "already_used" and again.flags == frozenset()
    assert factory.pin(cfg.red_pin).state  # and now the red LED says so
    fresh = cp.scan(issue(issuer, purpose="shopping"))
    assert fresh.verdict.accepted and fresh.flags == frozenset()
    assert not factory.pin(cfg.relay_pin).state  # active low: the door is released
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: gpio" in m for m in logs) == 1
    assert sum("recovered: gpio" in m for m in logs) == 1
    cp.signals.close()
    factory.close()
