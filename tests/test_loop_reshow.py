"""The frame loop and the door's hold: a pass shown again while its own accept holds.

Recorded with whatever verdict the checks give, flagged ``reshow``, and nothing signalled:
the relay is not cut, re-triggered or extended (passgate.checkpoint.holds). The hold is the
relay's, every accept is held on its own, a signalled deny ends them all. Most tests drive
the real Signals on gpiozero's MockFactory pins (:class:`PinBench`); the loop is built by
the ``checkpoint`` fixture (tests/checkpoint_support.py).
"""

from __future__ import annotations

from checkpoint_support import NOW, ZONE, issue
from fakes import FailingJournal, FakeClock, TextDecoder
from passgate.bundle.policy import CheckpointPolicy
from passgate.checkpoint.loop import Timing
from passgate.clock.clock import ClockState, FixedClock
from passgate.hardware.display import screens


class PinBench:
    """The real Signals on MockFactory pins, stepped by the loop's fake monotonic clock: each
    decoded frame polls them, and every output change is kept as (seconds, channel, value).
    ``parts()``: the keywords that hand them to the ``checkpoint`` fixture."""

    def __init__(self, relay_hold_s: float = 3.0) -> None:
        from passgate.hardware.signals.gpio import Signals as RealSignals
        from passgate.hardware.signals.gpio import SignalsConfig, make_pin_factory

        self.mono = mono = FakeClock(wall=FixedClock(NOW))
        factory = make_pin_factory("mock")
        self.changes: list[tuple[float, str, float]] = []
        cfg = SignalsConfig(relay_hold_s=relay_hold_s)
        self.signals = RealSignals(
            cfg,
            pin_factory=factory,
            clock=mono,
            background=False,
            on_change=lambda ch, v: self.changes.append((round(mono.t - 1000, 2), ch, v)),
        )
        self.relay = factory.pin(cfg.relay_pin)
        self.decoder = Polled(TextDecoder(mono), self.signals)

    def parts(self) -> dict:
        return {"mono": self.mono, "signals": self.signals, "decoder": self.decoder}


class Polled:
    """A decoder that polls the real signals after each frame (time moves on by a frame)."""

    def __init__(self, decoder: TextDecoder, signals) -> None:
        self.decoder, self.signals = decoder, signals

    def decode(self, frame):
        texts = self.decoder.decode(frame)
        self.signals.poll()
        return texts


def test_the_same_pass_shown_again_during_its_own_hold_keeps_the_door_open(
    checkpoint, issuer, journal
):
    """Accepted, taken away long enough to count as gone (> 0.5 s), shown again while the
    door is still released: recorded as already used, but nothing is signalled, the relay
    keeps its full hold and the accept screen stays. After the hold it is a plain deny."""
    ok = issue(issuer)
    frames = (
        [(ok,)] * 3  # accepted at 0.1 s
        + [()] * 8  # gone
        + [(ok,)] * 3  # shown again at 1.2 s, inside the 3 s hold
        + [()] * 30
        + [(ok,)] * 2  # and at 4.5 s, after the hold: a real repeat
        + [()] * 3
    )
    pins = PinBench(relay_hold_s=3.0)
    relay, changes, at_scan = pins.relay, pins.changes, []
    cp = checkpoint(
        frames,
        journal,
        **pins.parts(),
        timing=Timing(verdict_hold_s=3.0, relay_hold_s=3.0),
        on_scan=lambda s: at_scan.append(relay.state),
    )
    cp.run()
    assert cp.reasons() == ["valid", "already_used", "already_used"]
    assert [s.flags for s in cp.seen] == [frozenset(), {"reshow"}, frozenset()]
    assert at_scan == [0, 0, 1]  # active low: energised (0) through the reshow
    relay_steps = [(t, v) for t, ch, v in changes if ch == "relay"]
    assert relay_steps == [(0.1, 1.0), (3.1, 0.0)]  # the whole hold, not cut at 1.2 s
    assert [(t, v) for t, ch, v in changes if ch == "red"] == [(4.5, 1.0)]  # one deny
    rows = journal.since(0)
    assert [(r.verdict, r.reason, r.flags) for r in rows] == [
        ("accept", "valid", ()),
        ("deny", "already_used", ("reshow",)),
        ("deny", "already_used", ()),
    ]
    kinds = [type(s).__name__ for s in cp.display.shown]
    assert kinds == ["IdleScreen", "AcceptedScreen", "IdleScreen", "DeniedScreen"]
    assert cp.display.shown[-1] == screens.DeniedScreen("already used")


def _presented(*texts, gap=6):
    """Frames showing each text for 2 frames then nothing for ``gap`` (a new presentation
    each time: the debouncer's 3 frames and 0.5 s of absence), then 4 s of nothing."""
    frames = []
    for text in texts:
        frames += [(text,)] * 2 + [()] * gap
    return frames + [()] * 40


def _relay_steps(changes):
    return [(t, v) for t, ch, v in changes if ch == "relay"]


def test_a_journal_fault_on_a_reshow_does_not_cut_the_door_either(checkpoint, issuer, journal):
    ok = issue(issuer)
    failing = FailingJournal(journal)
    cp = checkpoint([], failing)
    assert cp.scan(ok).verdict.accepted
    failing.fail = "disk I/O error"
    cp.later(1)
    again = cp.scan(ok)  # the same person, still in the door's hold
    assert again.verdict.reason.value == "journal_fault" and again.flags == {"reshow"}
    assert cp.signals.calls == ["accept", "fault(True)"] and cp.signals.relay
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)
    cp.later(3)
    assert cp.scan(ok).verdict.reason.value == "journal_fault"  # the hold is over: red
    assert cp.signals.calls[-1] == "deny"


def test_every_accept_still_holding_is_remembered_and_another_deny_ends_the_holds(
    checkpoint, issuer, journal
):
    """A accepted, B accepted 0.8 s later, A shown again: A's own hold is not over, so that
    is a quiet reshow (it used to be a plain deny that cut the relay during B's hold). A
    stranger's deny follows the normal rules (the relay drops at once), and ends every hold:
    B shown again then is an ordinary repeat, red."""
    a, b = issue(issuer), issue(issuer)
    stranger = issue(issuer, start=NOW - 4 * 3600, duration=3 * 3600)  # expired
    pins = PinBench()
    cp = checkpoint(_presented(a, b, a, stranger, b), journal, **pins.parts())
    changes = pins.changes
    cp.run()
    assert cp.reasons() == ["valid", "valid", "already_used", "expired", "already_used"]
    assert [s.flags for s in cp.seen] == [set(), set(), {"reshow"}, set(), set()]
    assert _relay_steps(changes) == [(0.1, 1.0), (2.5, 0.0)]  # cut by the stranger only
    assert [(t, v) for t, ch, v in changes if ch == "red"][:1] == [(2.5, 1.0)]


def test_a_pass_that_expires_during_its_own_hold_does_not_cut_the_relay(
    checkpoint, issuer, journal
):
    """Accepted one second before it expires, shown again 1.2 s later: now expired, recorded
    so (flag reshow), but nothing is signalled and the door keeps its hold (a deny used to
    cut it)."""
    skew = 60  # the verifier's default clock-skew grace
    ok = issuer.issue("work", [ZONE], NOW - 3600, 3600 - skew + 1)  # expired from NOW + 1
    pins = PinBench()
    # shown at 0.1 s and 1.3 s
    cp = checkpoint(_presented(ok, ok, gap=10), journal, **pins.parts())
    changes = pins.changes
    cp.run()
    assert cp.reasons() == ["valid", "expired"]
    assert cp.seen[1].flags == {"reshow"}
    assert _relay_steps(changes) == [(0.1, 1.0), (3.1, 0.0)]
    assert not [c for c in changes if c[1] == "red"]
    assert journal.since(0)[-1].flags == ("reshow",)
    assert not any(isinstance(s, screens.DeniedScreen) for s in cp.display.shown)


def test_a_clock_policy_flip_during_a_hold_does_not_cut_the_relay_for_that_pass(
    checkpoint, issuer, journal
):
    clock = FixedClock(NOW)
    ok = issue(issuer)
    cp = checkpoint([], journal, clock=clock, policy=CheckpointPolicy(clock="deny"))
    assert cp.scan(ok).verdict.accepted
    cp.later(1)
    clock.state = ClockState.FLOOR  # the clock is no longer believed (a jump, a lost sync)
    again = cp.scan(ok)
    assert again.verdict.reason.value == "clock_untrusted"
    assert again.flags == {"clock_untrusted", "reshow"}
    assert cp.signals.calls == ["accept"] and cp.signals.relay
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)


def test_with_anti_passback_off_a_reshow_during_the_hold_does_not_retrigger_the_relay(
    checkpoint, issuer, journal
):
    """Window 0: the pass is accepted again by the checks, and recorded so (flag reshow),
    but the relay keeps the first accept's hold (it used to start a new one: a reshow
    every 2 s kept the door open indefinitely). After the hold it is a new accept."""
    ok = issue(issuer)
    off = CheckpointPolicy(anti_passback_s=0)
    pins = PinBench()
    # shown at 0.1, 1.7 and 3.3 s
    cp = checkpoint(_presented(ok, ok, ok, gap=14), journal, policy=off, **pins.parts())
    changes = pins.changes
    cp.run()
    assert cp.reasons() == ["valid", "valid", "valid"]
    assert [s.flags for s in cp.seen] == [set(), {"reshow"}, set()]
    assert _relay_steps(changes) == [(0.1, 1.0), (3.1, 0.0), (3.3, 1.0), (6.3, 0.0)]
    assert [(r.verdict, r.flags) for r in journal.since(0)] == [
        ("accept", ()), ("accept", ("reshow",)), ("accept", ()),
    ]


def test_a_reshow_after_the_relay_dropped_is_an_ordinary_repeat_even_on_a_green_screen(
    checkpoint, issuer, journal
):
    """verdict_hold_s 10 s, relay_hold_s 3 s: the hold that makes a reshow quiet is the
    relay's. Shown at 1.7 s: quiet. Shown at 4.9 s, with the door shut and the green screen
    still up, the pass is an ordinary repeat: red, already used (it used to stay quiet, so a
    second person with a copy saw green at a shut door)."""
    ok = issue(issuer)
    frames = [(ok,)] * 2 + [()] * 14 + [(ok,)] * 2 + [()] * 30 + [(ok,)] * 2 + [()] * 20
    pins = PinBench(relay_hold_s=3.0)
    timing = Timing(verdict_hold_s=10.0, relay_hold_s=3.0)
    cp = checkpoint(frames, journal, timing=timing, **pins.parts())
    changes = pins.changes
    cp.run()
    assert cp.reasons() == ["valid", "already_used", "already_used"]
    assert [s.flags for s in cp.seen] == [set(), {"reshow"}, set()]
    assert _relay_steps(changes) == [(0.1, 1.0), (3.1, 0.0)]
    assert [(t, v) for t, ch, v in changes if ch == "red"][:1] == [(4.9, 1.0)]
    kinds = [type(s).__name__ for s in cp.display.shown]
    assert kinds == ["IdleScreen", "AcceptedScreen", "DeniedScreen"]
    assert cp.display.shown[-1] == screens.DeniedScreen("already used")
