"""Every fault the frame loop knows sets, clears, and gives the normal screen back.

One test per condition of :class:`passgate.checkpoint.conditions.Conditions` (camera,
decoder, display, GPIO, journal, clock, trust) and per recovery rule the loop's docstrings
state: a decoder or display fault clears when it works again, a camera fault resets the
debouncer and redraws the screen at once when frames flow, ``READY=1`` follows the first
frame, the pending count is read again when the journal recovers, the fault blink follows a
scan at once. docs/loop-rules.md lists each rule with its test and the mutation it catches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from checkpoint_support import NOW, POLICY, issue
from fakes import (
    FailingDecoder,
    FailingJournal,
    FakeClock,
    MissingOutputs,
    RecordingDisplay,
    Told,
)
from passgate.bundle.policy import CheckpointPolicy, TrustStatus
from passgate.checkpoint.loop import Timing
from passgate.checkpoint.parts import FixedTrust
from passgate.checkpoint.trustview import StaticTrust, TrustView
from passgate.clock.clock import ClockState, FixedClock
from passgate.hardware.display import screens


def logged(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def statuses(told: Told) -> list[str]:
    return [line for line in told.lines if line.startswith("STATUS=")]


def test_a_decoder_fault_clears_when_a_frame_decodes_again(checkpoint, issuer, journal, caplog):
    caplog.set_level(logging.INFO, "passgate")
    mono = FakeClock(wall=FixedClock(NOW))
    told = Told()
    frames = [(), ("boom",), ("boom",), (), (issue(issuer),), ()]
    cp = checkpoint(frames, journal, mono=mono, decoder=FailingDecoder(mono), notifier=told)
    cp.run()
    assert cp.reasons() == ["valid"]
    assert cp.loop.faults.active == {}
    assert logged(caplog, "fault: decoder") == 1 and logged(caplog, "recovered: decoder") == 1
    assert statuses(told)[-2:] == ["STATUS=fault: decoder", "STATUS=scanning"]
    assert "fault(True)" not in cp.signals.calls  # not a blink condition


def test_a_display_fault_clears_when_the_display_shows_again(checkpoint, issuer, journal, caplog):
    caplog.set_level(logging.INFO, "passgate")
    display = RecordingDisplay(fail_next=3)  # the I2C bus glitches, then answers again
    cp = checkpoint([(issue(issuer),)] + [()] * 40, journal, display=display)
    cp.run()
    assert display.failures == 3 and cp.loop.faults.active == {}
    assert logged(caplog, "fault: display") == 1 and logged(caplog, "recovered: display") == 1
    assert isinstance(display.shown[-1], screens.IdleScreen)


def test_a_pass_held_in_view_across_a_camera_fault_is_a_new_presentation(
    checkpoint, issuer, journal
):
    """After a camera fault whatever is shown next is a new presentation: the debouncer is
    reset, so the pass still in front of the lens is scanned again (here a reshow)."""
    ok = issue(issuer)
    cp = checkpoint([(ok,)] * 6, journal, flaky=dict(fail_reads=[(3, 4)]))
    cp.run()
    assert cp.reasons() == ["valid", "already_used"]
    assert cp.seen[1].flags == {"reshow"}


def test_the_camera_fault_screen_comes_up_when_the_read_fails_not_at_the_next_tick(
    checkpoint, journal
):
    mono = FakeClock(wall=FixedClock(NOW))
    display = RecordingDisplay(clock=mono)
    cp = checkpoint([()] * 3, journal, mono=mono, display=display, flaky=dict(fail_reads=[(1, 2)]))
    cp.run()
    # the first frame is decoded by 1000.1 s; the second read fails then, 0.15 s before
    # the tick that would otherwise redraw the screen
    came_up = display.shown_at[display.shown.index(screens.camera_fault())]
    assert came_up == pytest.approx(1000.1)


def test_the_normal_screen_is_back_on_the_first_frame_after_a_camera_fault(checkpoint, journal):
    """Not at the next tick: the frame that proves the camera works redraws the screen."""
    cp = checkpoint(
        [()] * 3,
        journal,
        flaky=dict(fail_reads=[(1, 2)]),
        timing=Timing(backoff_initial_s=0.3),  # shorter than tick_s past the last tick
    )
    assert cp.run(max_frames=2) == 2
    assert screens.camera_fault() in cp.display.shown
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert cp.signals.calls == ["fault(True)", "fault(False)"]


def test_ready_is_sent_after_the_first_frame(checkpoint, journal):
    told = Told()
    cp = checkpoint([()] * 3, journal, notifier=told)
    cp.run(max_frames=1)
    assert told.readies == ["READY=1"]
    assert told.lines[told.lines.index("READY=1") + 1] == "STATUS=scanning"


def test_the_pending_count_is_read_again_as_soon_as_the_journal_records_again(
    checkpoint, issuer, journal
):
    """While the journal failed the sync agent may have uploaded rows: the idle screen must
    not add to a count it could not keep (it said 2 with 1 pending)."""
    failing = FailingJournal(journal)
    cp = checkpoint([], failing)
    cp.handle_texts([])  # the pending count is read (0); the next read is due in 10 s
    assert cp.scan(issue(issuer)).seq == 1
    journal.mark_uploaded([1], at=NOW + 1)  # the sync agent's round
    failing.fail = "database or disk is full"
    cp.later(1)
    assert cp.scan(issue(issuer)).seq is None
    failing.fail = None
    cp.later(1)
    assert cp.scan(issue(issuer)).seq == 2
    cp.later(4)  # the verdict's hold is over; the 10 s of pending_every_s are not
    cp.handle_texts([])
    assert journal.pending_count() == 1
    assert cp.display.shown[-1].pending == 1


def test_the_fault_blink_follows_a_scan_at_once(checkpoint, issuer, journal):
    """A scan that finds the journal broken turns the red blink on before the next frame
    (not at the next tick), and the scan that records again turns it off."""
    failing = FailingJournal(journal, fail_writes=1)
    cp = checkpoint([], failing)
    cp.scan(issue(issuer))
    assert cp.signals.calls == ["deny", "fault(True)"]
    cp.scan(issue(issuer, purpose="shopping"))
    assert cp.signals.calls == ["deny", "fault(True)", "accept", "fault(False)"]


def test_a_journal_read_fault_clears_on_the_next_count_and_the_idle_screen_returns(
    checkpoint, journal, caplog
):
    caplog.set_level(logging.INFO, "passgate")
    told = Told()
    cp = checkpoint([], FailingJournal(journal, fail_reads=1), notifier=told)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.journal_fault()
    assert cp.signals.calls == ["fault(True)"]
    cp.later(10)
    cp.handle_texts([])
    assert cp.loop.faults.active == {} and cp.signals.calls[-1] == "fault(False)"
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert statuses(told) == ["STATUS=fault: journal", "STATUS=scanning"]


def test_a_clock_fault_sets_clears_and_the_idle_screen_returns(checkpoint, journal, caplog):
    caplog.set_level(logging.INFO, "passgate")
    clock = FixedClock(NOW, ClockState.FLOOR)
    told = Told()
    cp = checkpoint(
        [], journal, clock=clock, policy=CheckpointPolicy(clock="deny"), notifier=told
    )
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.clock_not_set()
    assert "clock" in cp.loop.faults.active
    clock.state = ClockState.TRUSTED  # a time token or NTP sets it
    cp.later(0.3)
    cp.handle_texts([])
    assert cp.loop.faults.active == {}
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert statuses(told) == ["STATUS=fault: clock", "STATUS=scanning"]
    assert logged(caplog, "recovered: clock") == 1
    assert "fault(True)" not in cp.signals.calls


@dataclass
class Staleness(FixedTrust):
    """A trust folder whose staleness a test sets (as a bundle ages and is refreshed)."""

    inner: StaticTrust
    status: TrustStatus
    policy: CheckpointPolicy = POLICY

    def current(self, now: float) -> TrustView:
        view = self.inner.current(now)
        return TrustView(view.verifier, self.policy, view.antipassback, self.status)


def test_stale_trust_data_sets_clears_and_the_idle_screen_returns(
    checkpoint, trust, journal, caplog
):
    caplog.set_level(logging.INFO, "passgate")
    provider = Staleness(StaticTrust(trust, POLICY, journal), TrustStatus(True, 2 * 86400, "old"))
    cp = checkpoint([], journal, trust=provider)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.trust_data_old(2 * 86400, "passes refused")
    provider.status = TrustStatus(True, 40 * 86400, "expired", expired=True)
    provider.policy = CheckpointPolicy(stale="flag")
    cp.later(0.3)
    cp.handle_texts([])  # still the same fault: the first screen stays, logged once
    assert "trust_stale" in cp.loop.faults.active
    provider.status = TrustStatus(False, 0, "current")  # the sync agent refreshed it
    cp.later(0.3)
    cp.handle_texts([])
    assert cp.loop.faults.active == {}
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert logged(caplog, "fault: trust stale") == 1
    assert logged(caplog, "recovered: trust stale") == 1
    assert "fault(True)" not in cp.signals.calls  # shown, not blinked


def test_expired_trust_data_under_the_flag_policy_says_so_and_that_scans_are_flagged(
    checkpoint, trust, journal
):
    flag = CheckpointPolicy(stale="flag")
    expired = TrustStatus(True, 40 * 86400, "expired", expired=True)
    cp = checkpoint([], journal, trust=Staleness(StaticTrust(trust, flag, journal), expired, flag))
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.FaultScreen("trust data expired", "scans flagged")


def test_the_status_systemd_hears_changes_only_when_a_fault_starts_or_ends(
    checkpoint, issuer, journal
):
    told = Told()
    failing = FailingJournal(journal, fail_writes=2)
    cp = checkpoint([], failing, notifier=told)
    for _ in range(4):
        cp.scan(issue(issuer))
        cp.later(0.3)
        cp.handle_texts([])
    assert statuses(told) == ["STATUS=fault: journal", "STATUS=scanning"]


def test_missing_outputs_are_shown_not_blinked_and_clear_when_they_work(checkpoint, journal):
    """The red LED is one of the outputs that is missing: a GPIO fault is a screen, not a
    blink; once the outputs work the idle screen returns."""
    signals = MissingOutputs(missing_for=2)
    cp = checkpoint([], journal, signals=signals)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.gpio_fault()
    cp.later(0.3)
    cp.handle_texts([])
    assert "gpio" in cp.loop.faults.active
    cp.later(0.3)
    cp.handle_texts([])
    assert cp.loop.faults.active == {} and len(signals.retries) == 3
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert signals.calls == []  # no fault(True), no fault(False)


def test_missing_outputs_without_a_door_relay_say_no_leds_or_buzzer(checkpoint, journal):
    """No relay fitted is a site's choice: the screen must not say the door will not open."""
    cp = checkpoint([], journal, signals=MissingOutputs(missing_for=5, relay_fitted=False))
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.gpio_fault("no LEDs or buzzer")


def test_an_untrusted_clock_under_the_flag_policy_is_no_fault(checkpoint, journal):
    """Only the ``deny`` clock policy makes an untrusted clock a fault screen; with ``flag``
    the idle screen stays (and says the clock's state)."""
    cp = checkpoint([], journal, clock=FixedClock(NOW, ClockState.FLOOR))
    cp.handle_texts([])
    assert cp.loop.faults.active == {}
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
