"""The checkpoint's fault conditions: what is wrong right now, and what that shows.

:class:`Conditions` belongs to the frame loop (:class:`passgate.checkpoint.loop.Checkpoint`). Each
condition has a name (``camera``, ``journal``, ``gpio``, ``trust_missing``, ``trust_stale``,
``clock``, ``decoder``, ``display``) and a short, data-free detail. It is logged once when it
starts and once when it clears, never per frame, and the ones with a screen raise it on the
:class:`~passgate.hardware.display.policy.DisplayPolicy`. The loop asks
:meth:`Conditions.changes` for what to tell the outside world (the red fault blink, systemd's
``STATUS=``), so nothing here touches hardware and every transition is tested without it.
"""

from __future__ import annotations

import logging

from passgate.bundle.policy import DENY
from passgate.checkpoint.trustview import TrustView
from passgate.clock.clock import TimeReading
from passgate.hardware.display import screens
from passgate.hardware.display.policy import DisplayPolicy

log = logging.getLogger(__name__)


class Conditions:
    """Active fault conditions, logged once on entry and once on recovery.

    ``screens``: the display policy the fault screens are raised on.
    """

    SIGNALLED = frozenset({"camera", "journal", "trust_missing"})  # the red fault blink

    def __init__(self, screens_policy: DisplayPolicy) -> None:
        self.active: dict[str, str] = {}
        self.screens = screens_policy
        self._signal_on = False
        self._status = ""
        self._journal_by_read = False  # the journal fault came from a read (nothing written)

    def set(self, name: str, detail: str) -> bool:
        """Start condition ``name``; True if it was not active (and was logged now)."""
        if name in self.active:
            return False
        self.active[name] = detail
        log.warning("fault: %s: %s", name.replace("_", " "), detail)
        return True

    def clear(self, name: str) -> bool:
        """End condition ``name``; True if it was active (and its recovery was logged now)."""
        if self.active.pop(name, None) is None:
            return False
        log.info("recovered: %s", name.replace("_", " "))
        return True

    def toggle(self, name: str, detail: str, screen: screens.FaultScreen | None = None) -> None:
        """Set ``name`` with ``detail`` (raising ``screen``), or clear it when ``detail`` is
        empty."""
        if detail:
            if self.set(name, detail) and screen is not None:
                self.screens.set_fault(name, screen)
        elif self.clear(name):
            self.screens.set_fault(name, None)

    @property
    def signalled(self) -> bool:
        """Whether an active condition calls for the red fault blink."""
        return bool(self.SIGNALLED & self.active.keys())

    # -- the journal and the camera ------------------------------------------------------

    def journal_failed(self, detail: str, *, read: bool) -> None:
        """A journal call failed. ``read``: a look-up or count (nothing was to be written).
        What failed first says what the fault is: a read (the journal cannot be opened at
        all; scans fail too while it lasts) or a write (a full disk or read-only storage)."""
        if "journal" not in self.active:
            self._journal_by_read = read
        self.toggle("journal", detail, screens.journal_fault())

    def journal_ok(self, *, read: bool) -> bool:
        """A journal call worked. A write clears the journal fault; a read clears only a
        fault that began with a read (a journal that could not be opened), because reads
        still work on a full disk. If writes still fail, the next scan raises it again.
        True if the fault cleared."""
        if "journal" not in self.active or (read and not self._journal_by_read):
            return False
        self.toggle("journal", "")
        return True

    def camera_failed(self, detail: str) -> bool:
        """The camera failed; True when this starts the fault (not a retry failing again)."""
        if not self.set("camera", detail):
            return False
        self.screens.set_fault("camera", screens.camera_fault())
        return True

    def camera_ok(self) -> bool:
        """Frames flow; True when this ends a camera fault."""
        if not self.clear("camera"):
            return False
        self.screens.set_fault("camera", None)
        return True

    def outputs(self, detail: str, *, relay: bool) -> None:
        """The buzzer, LEDs and relay cannot be set up (``detail`` says why), or can again
        (``""``). ``relay``: a door relay is fitted, so the screen says the door will not
        open. Not a blink condition: the red LED is one of the outputs that is missing."""
        screen = screens.gpio_fault() if relay else screens.gpio_fault("no LEDs or buzzer")
        self.toggle("gpio", detail, screen)

    # -- trust data and the clock ----------------------------------------------------------

    def update(self, reading: TimeReading, view: TrustView) -> None:
        """The conditions that follow the trust data and the clock, at ``reading``."""
        self.toggle("trust_missing", view.missing, screens.no_trust_data())
        status = view.status
        detail = "passes refused" if view.policy.stale == DENY else "scans flagged"
        stale_screen = (
            screens.FaultScreen("trust data expired", detail)
            if status.expired
            else screens.trust_data_old(status.age_s, detail, self.screens.lang)  # plurals
        )
        self.toggle("trust_stale", status.message if status.stale else "", stale_screen)
        clock_bad = not reading.trusted and view.policy.clock == DENY
        self.toggle(
            "clock", f"clock {reading.state.value}" if clock_bad else "", screens.clock_not_set()
        )

    # -- what the outside world is told ----------------------------------------------------

    @property
    def status(self) -> str:
        """systemd's ``STATUS=`` text: ``scanning`` or ``fault: camera, journal``."""
        active = [n.replace("_", " ") for n in self.active]
        return f"fault: {', '.join(active)}" if active else "scanning"

    def changes(self) -> tuple[bool | None, str | None]:
        """Since the last call: the fault blink's new state and the new ``STATUS=`` text,
        each ``None`` when unchanged (so the outputs and systemd hear of changes only)."""
        on = self.signalled
        blink = None if on == self._signal_on else on
        self._signal_on = on
        status = self.status
        new_status = None if status == self._status else status
        self._status = status
        return blink, new_status
