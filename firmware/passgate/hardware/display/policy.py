"""Which screen to show when: a small, pure state machine with the time passed in.

The frame loop tells the policy what happened (a verdict, a fault, a status change) and asks
``policy.at(now)`` for the screen to hand to :meth:`~.worker.Display.show`. Nothing here reads
a clock or sleeps, so every transition is tested by choosing ``now``::

    policy = DisplayPolicy(hold_s=3.0, purposes=trust.purposes)
    policy.verdict(verdict, at=reading.now)
    display.show(policy.at(reading.now))  # every loop turn: cheap, unchanged screens skipped

Priority, highest first: stopped; a verdict (or transient message) within its hold time; the
active faults (several take turns every ``fault_cycle_s``); idle.

Every screen it hands out is in its language (``lang``): verdict and idle screens are built
in it, and the English fault, message and stopped screens it was given are translated on the
way out (:func:`~.screens.localised`), so no caller needs to know the device's language.

Not thread-safe: it belongs to the frame loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo

from passgate.clock.clock import ClockState
from passgate.errors import ArgumentError
from passgate.hardware.display.screens import (
    Connectivity,
    FaultScreen,
    IdleScreen,
    Screen,
    StoppedScreen,
    idle_screen,
    localised,
    verdict_screen,
)
from passgate.passes.purposes import PurposeTable
from passgate.passes.verdict import Verdict
from passgate.util.i18n import ENGLISH, Language


@dataclass(frozen=True, slots=True)
class _Transient:
    start: float
    until: float
    verdict: Verdict | None = None
    screen: Screen | None = None


class DisplayPolicy:
    """Decides the screen at a given time.

    ``hold_s``: how long a verdict stays before the screen returns to idle (or to a fault).
    ``purposes``: turns purpose ids into their labels (``None``: show the id).
    ``tz``: time zone of the idle clock (``None``: the system's local zone).
    ``show_hint``: show the pass's holder hint on the accepted screen, for staff.
    ``fault_cycle_s``: with several faults active, each is shown this long in turn.
    ``lang``: the language of every screen (``[display] language``).
    """

    def __init__(
        self,
        hold_s: float = 3.0,
        purposes: PurposeTable | None = None,
        tz: tzinfo | None = UTC,
        show_hint: bool = True,
        fault_cycle_s: float = 3.0,
        lang: Language = ENGLISH,
    ) -> None:
        if hold_s <= 0 or fault_cycle_s <= 0:
            raise ArgumentError("hold_s and fault_cycle_s must be positive")
        self.hold_s = float(hold_s)
        self.purposes = purposes
        self.tz = tz
        self.show_hint = show_hint
        self.fault_cycle_s = float(fault_cycle_s)
        self.lang = lang
        self._transient: _Transient | None = None
        self._faults: dict[str, FaultScreen] = {}
        self._stopped: StoppedScreen | None = None
        self._clock = ClockState.TRUSTED
        self._connectivity = Connectivity.UNKNOWN
        self._pending = 0

    # -- events ---------------------------------------------------------------------------

    def verdict(self, verdict: Verdict, at: float) -> None:
        """Show ``verdict`` from ``at`` for ``hold_s`` seconds; replaces any earlier one."""
        self._transient = _Transient(at, at + self.hold_s, verdict=verdict)

    def message(self, screen: Screen, at: float, hold_s: float | None = None) -> None:
        """Show any screen (a provisioning result, a test pattern) like a verdict."""
        until = at + (self.hold_s if hold_s is None else hold_s)
        self._transient = _Transient(at, until, screen=screen)

    def clear(self) -> None:
        """Drop the verdict or message on screen now (back to faults or idle)."""
        self._transient = None

    def set_fault(self, key: str, screen: FaultScreen | None) -> None:
        """Raise (``screen``) or clear (``None``) the fault named ``key`` (e.g. ``"camera"``)."""
        if screen is None:
            self._faults.pop(key, None)
        else:
            self._faults[key] = screen

    @property
    def faults(self) -> dict[str, FaultScreen]:
        """The active faults, in the order they were raised (a copy)."""
        return dict(self._faults)

    def status(
        self,
        *,
        clock: ClockState | None = None,
        connectivity: Connectivity | None = None,
        pending: int | None = None,
    ) -> None:
        """Update the idle screen's indicators; arguments left ``None`` keep their value."""
        if clock is not None:
            self._clock = clock
        if connectivity is not None:
            self._connectivity = connectivity
        if pending is not None:
            self._pending = max(0, int(pending))

    def stop(self, detail: str = "") -> None:
        """Show "stopped" from now on, whatever else happens (the daemon is shutting down)."""
        self._stopped = StoppedScreen(detail)

    # -- the answer ---------------------------------------------------------------------------

    def at(self, now: float) -> Screen:
        """The screen to show at ``now`` (POSIX seconds from the checkpoint's clock).

        A verdict is shown while ``start <= now < start + hold_s``; if the clock steps back
        before its start, the verdict is over (it could otherwise stay for the size of the
        step).
        """
        if self._stopped is not None:
            return localised(self._stopped, self.lang)
        t = self._transient
        if t is not None:
            if t.start <= now < t.until:
                if t.verdict is not None:
                    return verdict_screen(
                        t.verdict, now, self.purposes, self.show_hint, self.lang
                    )
                assert t.screen is not None
                return localised(t.screen, self.lang)
            self._transient = None  # expired: forget it, so a later step back cannot revive it
        if self._faults:
            faults = list(self._faults.values())
            return localised(faults[int(now // self.fault_cycle_s) % len(faults)], self.lang)
        return self.idle(now)

    def idle(self, now: float) -> IdleScreen:
        """The idle screen with the current indicators at ``now``."""
        return idle_screen(
            now, self._clock, self._connectivity, self._pending, self.tz, self.lang
        )
