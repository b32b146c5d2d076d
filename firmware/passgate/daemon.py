"""The frame loop: frame -> decode -> debounce -> verify -> decide -> record -> signal.

:class:`Checkpoint` owns no hardware: every part is handed in (built by ``passgate run`` or
the simulation), so tests drive it with fakes and a fake clock. Rules it keeps:

- A scan is committed to the journal before its verdict is signalled. If the journal cannot
  record it, the scan is denied ``journal_fault`` (never green) and a fault screen stays up
  until a later scan records again.
- The display is only ever asked to ``show`` a screen (rendering and the I2C push run on the
  display's own worker); if that fails, scanning carries on with LEDs and buzzer.
- A camera that fails is closed and re-opened with exponential backoff; the fault screen and
  signal stay on until frames flow again.
- Each fault is logged once when it starts and once when it clears, never per frame.
- Wall time comes only from the injected clock; timers (verdict hold, backoff, watchdog)
  from the injected monotonic function, so tests run synchronously.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .clock import Clock, TimeReading
from .decide import FRESH, Decision, OnDoubt, Policy, TrustState, decide
from .display import screens
from .errors import HardwareError, JournalError
from .journal_schema import ScanRecord
from .sdnotify import Notifier
from .verdict import Reason, Verdict
from .verify import Verifier

log = logging.getLogger(__name__)

NONCE_LEN = 16


class FrameSource(Protocol):
    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...  # None: the source has ended (files, scenes)
    def close(self) -> None: ...


class Decoder(Protocol):
    def decode(self, frame: np.ndarray) -> list[str]: ...


class Debouncer(Protocol):
    def feed(self, texts: list[str], t: float) -> list[str]: ...


class AntiPassback(Protocol):
    def already_used(
        self, pass_hash: bytes, zone: str, purpose: str | None, now: float
    ) -> bool: ...


class Journal(Protocol):
    def pass_hash(self, pass_id: bytes) -> bytes: ...
    def record(self, rec: ScanRecord) -> int: ...
    def pending_count(self) -> int: ...


class Signals(Protocol):
    def accept(self) -> None: ...
    def deny(self) -> None: ...
    def fault(self, on: bool) -> None: ...
    def release(self) -> None: ...


class Display(Protocol):
    def show(self, screen: Any) -> None: ...


@dataclass(frozen=True)
class TrustView:
    """What the checkpoint trusts right now. ``missing`` is why there is nothing to trust."""

    verifier: Verifier
    state: TrustState = FRESH
    missing: str = ""


class TrustProvider(Protocol):
    def current(self, now: float) -> TrustView: ...


class StaticTrust:
    """A trust store that never changes and never goes stale (``--trust DIR``, tests)."""

    def __init__(self, verifier: Verifier) -> None:
        self._view = TrustView(verifier)

    def current(self, now: float) -> TrustView:
        return self._view


@dataclass(frozen=True)
class Timing:
    verdict_hold_s: float = 3.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    tick_s: float = 0.25  # how often the idle screen and fault states are looked at
    pending_every_s: float = 10.0  # how often the idle screen's pending count is refreshed


DEFAULT_TIMING = Timing()
DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Scan:
    """One presentation's outcome, handed to observers after it was recorded and signalled.

    ``seq`` is the journal row, or None when the journal could not record it.
    """

    seq: int | None
    verdict: Verdict
    flags: frozenset[str]
    reading: TimeReading
    nonce: bytes


class Faults:
    """Active fault conditions, logged once on entry and once on recovery."""

    # Display priority: the first active one is the screen shown while idle.
    ORDER = ("camera", "journal", "trust_missing", "trust_stale", "clock", "display", "decoder")
    SIGNALLED = frozenset({"camera", "journal", "trust_missing"})  # red fault pattern

    def __init__(self) -> None:
        self.active: dict[str, str] = {}

    def set(self, name: str, detail: str) -> bool:
        if name in self.active:
            return False
        self.active[name] = detail
        log.warning("fault: %s: %s", name.replace("_", " "), detail)
        return True

    def clear(self, name: str) -> bool:
        if self.active.pop(name, None) is None:
            return False
        log.info("recovered: %s", name.replace("_", " "))
        return True

    def first(self) -> str | None:
        return next((n for n in self.ORDER if n in self.active), None)

    @property
    def signalled(self) -> bool:
        return bool(self.SIGNALLED & self.active.keys())


class Checkpoint:
    """The checkpoint's frame loop. Build it with every part, then :meth:`run` it."""

    def __init__(
        self,
        *,
        source: FrameSource,
        decoder: Decoder,
        debouncer: Debouncer,
        trust: TrustProvider,
        antipassback: AntiPassback,
        journal: Journal,
        signals: Signals,
        display: Display | None,
        clock: Clock,
        zone: str,
        policy: Policy = DEFAULT_POLICY,
        timing: Timing = DEFAULT_TIMING,
        purposes=None,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wait: Callable[[float], Any] | None = None,
        nonce: Callable[[], bytes] = lambda: os.urandom(NONCE_LEN),
        on_scan: Callable[[Scan], None] | None = None,
    ) -> None:
        self.source, self.decoder, self.debouncer = source, decoder, debouncer
        self.trust, self.antipassback, self.journal = trust, antipassback, journal
        self.signals, self.display, self.clock = signals, display, clock
        self.zone, self.policy, self.timing, self.purposes = zone, policy, timing, purposes
        self.notifier = notifier or Notifier({})
        self._mono, self._nonce = monotonic, nonce
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.on_scan = on_scan
        self.faults = Faults()
        self.frames = 0
        self.scans = 0
        self._camera_open = False
        self._backoff = timing.backoff_initial_s
        self._hold_until = float("-inf")
        self._next_tick = float("-inf")
        self._last_ping = float("-inf")
        self._pending = 0
        self._next_pending = float("-inf")
        self._shown: Any = None
        self._fault_signal = False
        self._status = ""
        self._stale_age: int | None = None

    # -- the loop ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current frame (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, max_frames: int | None = None) -> int:
        """Process frames until :meth:`stop`, the end of the source or ``max_frames``."""
        self._tick(self._mono())  # the idle (or fault) screen before the first frame
        try:
            while not self._stop.is_set() and (max_frames is None or self.frames < max_frames):
                frame = self._next_frame()
                if frame is _END:
                    log.info("frame source ended after %d frames", self.frames)
                    break
                if frame is not None:
                    self.process(frame)
        finally:
            self._close_camera()
        return self.frames

    def process(self, frame: np.ndarray) -> list[Scan]:
        """One frame through decode and the rest of the pipeline."""
        try:
            texts = self.decoder.decode(frame)
        except Exception as exc:  # a decoder bug on one odd frame must not stop the door
            self.faults.set("decoder", f"{type(exc).__name__}: {exc}")
            texts = []
        else:
            if "decoder" in self.faults.active:
                self.faults.clear("decoder")
        scans = self.handle_texts(texts)
        self.frames += 1
        if self.frames == 1:
            self.notifier.ready("scanning")
            self._set_status("scanning")
            log.info("frames flow: scanning")
        return scans

    def handle_texts(self, texts: list[str]) -> list[Scan]:
        """The pipeline after decode: debounce, then a verdict for each new presentation."""
        mono = self._mono()
        scans = [self.scan(text) for text in self.debouncer.feed(texts, mono)]
        self._tick(mono)
        return scans

    # -- one presentation --------------------------------------------------------------

    def scan(self, text: str) -> Scan:
        """Verify, decide, record, then signal one presented pass text."""
        reading = self.clock.read()
        view = self.trust.current(reading.now)
        verdict = view.verifier.check(text, reading.now, self.zone)
        pass_hash = self.journal.pass_hash(verdict.pass_id) if verdict.pass_id else None
        nonce = self._nonce()
        try:
            used = bool(
                verdict.accepted
                and pass_hash is not None
                and self.antipassback.already_used(
                    pass_hash, self.zone, verdict.purpose, reading.now
                )
            )
            decision = decide(verdict, reading, view.state, used, self.policy)
            seq = self.journal.record(
                ScanRecord.of(
                    decision.verdict, reading, self.zone, nonce, pass_hash, decision.flags
                )
            )
        except JournalError as exc:
            self.faults.set("journal", str(exc))
            decision = Decision(verdict.deny(Reason.JOURNAL_FAULT, "scan not recorded"))
            seq = None
        else:
            if self.faults.clear("journal"):
                self._pending_due()
        self._signal(decision.verdict, reading.now)
        self.scans += 1
        self._pending += seq is not None
        self._after_faults()
        scan = Scan(seq, decision.verdict, decision.flags, reading, nonce)
        log.debug(
            "scan %s: %s %s", seq, decision.verdict.result.value, decision.verdict.reason.value
        )
        if self.on_scan is not None:
            self.on_scan(scan)
        return scan

    def _signal(self, verdict: Verdict, now: float) -> None:
        if verdict.accepted:
            self.signals.accept()
        else:
            self.signals.deny()
        self._show(screens.verdict_screen(verdict, now, self.purposes))
        self._hold_until = self._mono() + self.timing.verdict_hold_s

    # -- faults, idle screen, watchdog -------------------------------------------------

    def _tick(self, mono: float) -> None:
        if self.notifier.watchdog_s and mono - self._last_ping >= self.notifier.watchdog_s / 3:
            self.notifier.watchdog()
            self._last_ping = mono
        if mono < self._next_tick:
            return
        self._next_tick = mono + self.timing.tick_s
        reading = self.clock.read()
        self._update_conditions(reading)
        self._after_faults()
        if mono >= self._hold_until:
            self._show(self._base_screen(reading, mono))

    def _update_conditions(self, reading: TimeReading) -> None:
        view = self.trust.current(reading.now)
        self._toggle("trust_missing", view.missing)
        self._toggle("trust_stale", (view.state.why or "stale") if view.state.stale else "")
        clock_bad = not reading.trusted and self.policy.clock_untrusted is OnDoubt.DENY
        self._toggle("clock", f"clock {reading.state.value}" if clock_bad else "")
        self._stale_age = view.state.age_s

    def _toggle(self, name: str, detail: str) -> None:
        if detail:
            self.faults.set(name, detail)
        else:
            self.faults.clear(name)

    def _after_faults(self) -> None:
        """Turn the fault signal on or off, and tell systemd, on a change only."""
        on = self.faults.signalled
        if on != self._fault_signal:
            self._fault_signal = on
            self.signals.fault(on)
        first = self.faults.first()
        self._set_status(f"fault: {first.replace('_', ' ')}" if first else "scanning")

    def _base_screen(self, reading: TimeReading, mono: float):
        first = self.faults.first()
        if first == "camera":
            return screens.camera_fault("retrying")
        if first == "journal":
            return screens.journal_fault()
        if first == "trust_missing":
            return screens.no_trust_data()
        if first == "trust_stale":
            refused = self.policy.trust_stale is OnDoubt.DENY
            detail = "passes refused" if refused else "scans flagged"
            return screens.trust_data_old(self._stale_age or 0, detail)
        if first == "clock":
            return screens.clock_not_set()
        if mono >= self._next_pending:
            self._pending_due(mono)
        return screens.idle_screen(reading.now, reading.state, pending=self._pending, tz=None)

    def _pending_due(self, mono: float | None = None) -> None:
        mono = self._mono() if mono is None else mono
        self._next_pending = mono + self.timing.pending_every_s
        try:
            self._pending = self.journal.pending_count()
        except JournalError as exc:
            self.faults.set("journal", str(exc))

    def _show(self, screen: Any) -> None:
        if self.display is None or screen == self._shown:
            return
        try:
            self.display.show(screen)
        except Exception as exc:  # a broken OLED must not stop scanning: LEDs and buzzer carry on
            self.faults.set("display", f"{type(exc).__name__}: {exc}")
            return
        self._shown = screen
        if "display" in self.faults.active:
            self.faults.clear("display")

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self.notifier.status(text)

    # -- the camera --------------------------------------------------------------------

    def _next_frame(self) -> Any:
        if not self._camera_open:
            try:
                self.source.open()
            except HardwareError as exc:
                self._camera_failed(exc)
                return None
            self._camera_open = True
        try:
            frame = self.source.read()
        except HardwareError as exc:
            self._camera_failed(exc)
            return None
        if frame is None:
            return _END
        if self.faults.clear("camera"):
            self._backoff = self.timing.backoff_initial_s
            self._after_faults()
        return frame

    def _camera_failed(self, exc: Exception) -> None:
        self.faults.set("camera", str(exc))
        self._close_camera()
        self._after_faults()
        delay = self._backoff
        self._next_tick = float("-inf")  # show the fault screen now, not at the next tick
        self._tick(self._mono())
        self._backoff = min(self._backoff * 2, self.timing.backoff_max_s)
        self.sleep(delay)

    def _close_camera(self) -> None:
        if not self._camera_open:
            return
        self._camera_open = False
        try:
            self.source.close()
        except HardwareError as exc:
            log.debug("closing the failed camera: %s", exc)

    def sleep(self, seconds: float) -> None:
        """Wait, interruptibly, keeping the watchdog fed and the screen current."""
        end = self._mono() + seconds
        while not self._stop.is_set():
            now = self._mono()
            if now >= end:
                return
            self._tick(now)
            self._wait(min(end - now, self.timing.tick_s))

    # -- stopping ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """After :meth:`run`: release the relay, say "stopped", tell systemd."""
        self.notifier.stopping()
        self.signals.release()
        if self.display is not None:
            try:
                self.display.show(screens.StoppedScreen())
            except Exception as exc:  # stopping anyway; the reason is worth a line
                log.warning("could not show the stopped screen: %s", exc)
        log.info("stopped after %d frames, %d scans", self.frames, self.scans)


_END = object()
