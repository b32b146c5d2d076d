"""The test suite's fakes: one home for the parts tests hand to the code instead of hardware.

Rules they keep (so a test that uses them can trust what it reads):

- Each fake is an explicit class with the methods of the real part it stands in for, and
  nothing else answers: no ``MagicMock``, no ``__getattr__`` forwarding, so a call the real
  part does not have fails here too.
- Time moves only when a test (or the code under test, through ``wait``/``sleep``) moves it:
  :class:`FakeClock` is the one monotonic clock of the suite, optionally carrying a wall
  clock (:class:`passgate.clock.clock.FixedClock`) along.
- Recording fakes record what the code asked for, in order; failing fakes fail a stated
  number of times (or until told otherwise) with the error the real part raises, then work,
  so every fault can be shown to set *and* to clear.
- Real parts are used wherever they run on a laptop (SQLite journal, gpiozero's MockFactory,
  luma's dummy device); these fakes cover only what does not (camera, decoder, the OLED's
  worker, systemd's socket) or what a test must make fail on cue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from passgate.checkpoint.parts import FixedOutputs
from passgate.checkpoint.sdnotify import Notifier
from passgate.clock.clock import FixedClock
from passgate.errors import JournalError
from passgate.hardware.camera.base import SourceBase
from passgate.journal.schema import ScanRecord

FRAME_S = 0.1  # each decoded frame takes this long on the fake monotonic clock


class FakeClock:
    """A monotonic clock that moves only when advanced or waited on.

    ``wall``: a :class:`FixedClock` moved along with it (the frame loop's wall clock).
    Call it (or :meth:`monotonic`) for the time; :meth:`wait` and :meth:`sleep` record the
    seconds asked for in ``waits`` and move time on by them.
    """

    def __init__(self, t: float = 1000.0, wall: FixedClock | None = None) -> None:
        self.t = t
        self.wall = wall
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s
        if self.wall is not None:
            self.wall.advance(s)

    def wait(self, s: float) -> None:
        self.waits.append(s)
        self.advance(s)

    def sleep(self, s: float) -> None:
        self.wait(s)


# -- the camera and the decoder --------------------------------------------------------------


class Frames(SourceBase):
    """Frames from a list (then None: the scene ended). Position survives close/open.

    ``opened_at``: the monotonic time of every successful open, when ``clock`` is given.
    """

    name = "test frames"

    def __init__(self, frames: Iterable[Any], clock: FakeClock | None = None) -> None:
        super().__init__()
        self.frames = list(frames)
        self.clock = clock
        self.opened_at: list[float] = []

    def _open(self) -> None:
        if self.clock is not None:
            self.opened_at.append(self.clock.t)

    def _read(self) -> Any:
        return self.frames.pop(0) if self.frames else None

    def _close(self) -> None:
        pass


class TextDecoder:
    """A decoder whose frames are the tuples of texts it "sees"; each decode takes
    ``frame_s`` of the fake clock."""

    name = "test texts"

    def __init__(self, clock: FakeClock, frame_s: float = FRAME_S) -> None:
        self.clock, self.frame_s = clock, frame_s

    def decode(self, frame: Any) -> list[str]:  # a tuple of texts, not an image
        self.clock.advance(self.frame_s)
        return list(frame)


class FailingDecoder(TextDecoder):
    """Raises ``RuntimeError`` on every frame equal to ``bad`` (a decoder bug on odd frames),
    decodes the others."""

    def __init__(self, clock: FakeClock, bad: Sequence[str] = ("boom",)) -> None:
        super().__init__(clock)
        self.bad = tuple(bad)

    def decode(self, frame: Any) -> list[str]:  # a tuple of texts, not an image
        if tuple(frame) == self.bad:
            self.clock.advance(self.frame_s)
            raise RuntimeError("bad frame")
        return super().decode(frame)


# -- the outputs ------------------------------------------------------------------------------


class RecordingSignals(FixedOutputs):
    """The buzzer, LEDs and relay as calls: ``calls`` in order, ``relay`` its state."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.relay = False

    def accept(self) -> None:
        self.calls.append("accept")
        self.relay = True

    def deny(self) -> None:
        self.calls.append("deny")
        self.relay = False

    def fault(self, on: bool) -> None:
        self.calls.append(f"fault({on})")

    def release(self) -> None:
        self.calls.append("release")
        self.relay = False


class MissingOutputs(RecordingSignals):
    """:class:`passgate.hardware.signals.retry.RetryingSignals` as the loop sees it: the
    outputs cannot be set up for the first ``missing_for`` calls of :meth:`retry`, then they
    can. ``relay_fitted``: a door relay is configured (so ``relay_down`` while missing)."""

    def __init__(self, missing_for: int, relay_fitted: bool = True) -> None:
        super().__init__()
        self.missing_for, self.relay_fitted = missing_for, relay_fitted
        self.retries: list[float] = []

    @property
    def error(self) -> str:
        missing = len(self.retries) <= self.missing_for
        return "no GPIO pin factory: lgpio: can not open gpiochip" if missing else ""

    @property
    def relay_down(self) -> bool:
        return bool(self.error) and self.relay_fitted

    def retry(self, now: float) -> str:
        self.retries.append(now)
        return self.error


class RecordingDisplay:
    """The OLED as the screens it was asked to show (a change only, as the real display's
    worker skips unchanged screens). ``fail_next``: that many ``show`` calls raise the I2C
    error first (``-1``: all of them), then it works again. With ``clock``, ``shown_at``
    keeps the monotonic time each screen came up."""

    def __init__(self, fail_next: int = 0, clock: FakeClock | None = None) -> None:
        self.shown: list[Any] = []
        self.shown_at: list[float] = []
        self.fail_next = fail_next
        self.failures = 0
        self.clock = clock

    @property
    def broken(self) -> bool:
        return self.fail_next != 0

    def show(self, screen: Any) -> None:
        if self.fail_next != 0:
            self.fail_next -= 1 if self.fail_next > 0 else 0
            self.failures += 1
            raise OSError(121, "Remote I/O error")
        if not self.shown or self.shown[-1] != screen:
            self.shown.append(screen)
            self.shown_at.append(self.clock.t if self.clock is not None else float("nan"))


class FailingJournal:
    """A real journal whose writes (``record``) and counts (``pending_count``) fail on cue.

    ``fail``: while set, ``record`` raises it as a :class:`JournalError` (disk full,
    read-only storage). ``fail_writes``/``fail_reads``: that many calls fail first, then
    they work (a journal that fails N times then recovers). Everything else is the inner
    journal's own method.
    """

    def __init__(self, inner: Any, fail_writes: int = 0, fail_reads: int = 0) -> None:
        self.inner = inner
        self.fail: str | None = None
        self.fail_writes, self.fail_reads = fail_writes, fail_reads

    def pass_hash(self, pass_id: bytes) -> bytes:
        return bytes(self.inner.pass_hash(pass_id))

    def record(self, rec: ScanRecord) -> int:
        if self.fail:
            raise JournalError(f"journal record failed: {self.fail}")
        if self.fail_writes > 0:
            self.fail_writes -= 1
            raise JournalError("journal record failed: database or disk is full")
        return int(self.inner.record(rec))

    def pending_count(self) -> int:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise JournalError("journal cannot be opened: unable to open database file")
        return int(self.inner.pending_count())

    def last_accepted(
        self, pass_hash: bytes, zone: str, after: float, until: float
    ) -> float | None:
        got = self.inner.last_accepted(pass_hash, zone, after, until)
        return None if got is None else float(got)

    def keep_for(self, seconds: float) -> None:
        self.inner.keep_for(seconds)


class FailingAntiPassback:
    """Anti-passback whose journal look-up fails (the database is locked)."""

    def already_used(self, pass_hash: bytes, zone: str, purpose: str | None, now: float) -> bool:
        raise JournalError("database is locked")


# -- systemd ----------------------------------------------------------------------------------


class Told(Notifier):
    """systemd's side of the notify socket: every line the loop sends, in order."""

    def __init__(self, watchdog_s: float | None = None) -> None:
        super().__init__({})
        self.lines: list[str] = []
        self.watchdog_s = watchdog_s

    def notify(self, *lines: str) -> bool:
        self.lines.extend(lines)
        return True

    @property
    def readies(self) -> list[str]:
        return [line for line in self.lines if line == "READY=1"]
