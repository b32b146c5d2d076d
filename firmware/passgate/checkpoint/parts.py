"""The frame loop's seams: every method :class:`passgate.checkpoint.loop.Checkpoint` calls on
a part it is handed, declared here and nowhere else.

Rules this module keeps:

- An interface is named for the role it plays in the loop (``ScanLog``, ``Outputs``,
  ``Screen``, ``Presentations``, ``TrustSource``), never like a class that implements it
  (``Journal``, ``Signals``, ``Display``, ``Debouncer``, ``BundleTrust``), so a name says
  which of the two it is.
- The loop calls nothing on a part that is not declared here: no ``getattr``, no
  ``hasattr``. A part with nothing to do for a call implements it as a no-op, and the null
  bases below (:class:`FixedOutputs`, :class:`FixedTrust`) give it that no-op, as luma's
  ``noop`` serial interface does for a device without a bus.
- Nothing here touches hardware or imports it at run time: the hardware packages sit below
  the checkpoint, so they implement these by shape (a type checker verifies it, see
  ``tests/test_typecheck.py``), not by inheriting from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from passgate.checkpoint.trustview import TrustView
    from passgate.hardware.display.screens import Screen as ScreenContent
    from passgate.journal.schema import ScanRecord


class Presentations(Protocol):
    """Turns the texts decoded per frame into new presentations
    (:class:`passgate.checkpoint.debounce.Debouncer`)."""

    def feed(self, texts: list[str], t: float) -> list[str]:
        """The texts decoded in the frame taken at monotonic time ``t``; returns those newly
        presented (each is judged once)."""
        ...

    def reset(self) -> None:
        """Forget what is in view: the loop calls it when the camera fails, so whatever is
        shown after is a new presentation."""
        ...


class ScanLog(Protocol):
    """Where scans are committed before they are signalled
    (:class:`passgate.journal.journal.Journal`). Each call may raise
    :class:`~passgate.errors.JournalError`: the loop shows it as the journal fault."""

    def pass_hash(self, pass_id: bytes) -> bytes:
        """The keyed hash a pass is recorded under (never the pass id itself)."""
        ...

    def record(self, rec: ScanRecord) -> int:
        """Commit one scan; returns its row number (``seq``)."""
        ...

    def pending_count(self) -> int:
        """Rows not yet uploaded, for the idle screen."""
        ...


class Outputs(Protocol):
    """Buzzer, LEDs and door relay (:class:`passgate.hardware.signals.gpio.Signals`, or
    :class:`passgate.hardware.signals.retry.RetryingSignals` when GPIO may not be set up yet).
    Every call returns at once (patterns play on the outputs' own timers)."""

    @property
    def relay_down(self) -> bool:
        """A door relay is fitted but cannot be driven now: an accept is recorded
        ``no_relay``. False for outputs that are always set up."""
        ...

    def retry(self, now: float) -> str:
        """Called on every loop tick with monotonic ``now``: set the outputs up if they are
        not (with the implementation's backoff). Returns why they are not set up, ``""``
        when they are (always ``""`` for outputs that are always set up)."""
        ...

    def accept(self) -> None:
        """Green, chirp, and the relay for its hold."""
        ...

    def deny(self) -> None:
        """Red and the deny beeps; ends any relay hold."""
        ...

    def fault(self, on: bool) -> None:
        """The slow red fault blink on or off."""
        ...

    def release(self) -> None:
        """Everything off, relay de-energised (on the way out)."""
        ...


class Screen(Protocol):
    """The OLED (or the terminal) as the loop sees it
    (:class:`passgate.hardware.display.worker.Display`)."""

    def show(self, screen: ScreenContent) -> None:
        """Ask for ``screen`` to be shown. Must not block (rendering and the push run on
        the display's own worker); may raise, and the loop then scans on without it."""
        ...


class TrustSource(Protocol):
    """What the checkpoint trusts right now (:class:`passgate.checkpoint.trustview.BundleTrust`,
    :class:`~passgate.checkpoint.trustview.StaticTrust`)."""

    def current(self, now: float) -> TrustView:
        """The verifier, policy and staleness that apply at wall time ``now``."""
        ...

    def retry_keep(self) -> None:
        """Tell the journal how long to keep rows for anti-passback, if that is still owed
        (it failed earlier). The loop calls it whenever the journal reads again."""
        ...


class FixedOutputs:
    """The null part of :class:`Outputs` for outputs that are always set up (simulations and
    test fakes subclass it): nothing to retry, and a relay that is never down."""

    relay_down: bool = False

    def retry(self, now: float) -> str:
        """Nothing to set up: always ``""``."""
        return ""


class FixedTrust:
    """The null part of :class:`TrustSource` for providers without rows to keep (a plain
    trust folder, test fakes): :meth:`retry_keep` has nothing owed."""

    def retry_keep(self) -> None:
        """Nothing is ever owed to the journal."""
