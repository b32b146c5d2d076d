"""The frame loop: frame -> decode -> debounce -> verify -> decide -> record -> signal.

:class:`Checkpoint` owns no hardware: every part is handed in (built by ``passgate run`` or
the simulation), so tests drive it with fakes and a fake clock. Rules it keeps:

- A scan is committed to the journal before its verdict is signalled. If the journal cannot
  record it, the scan is denied ``journal_fault`` (never green) and a fault screen stays up
  until a later scan records again (a journal that could not even be read clears as soon as
  it reads again).
- A pass shown again while its own accept still holds the door (``relay_hold_s``, see
  :mod:`passgate.checkpoint.holds`) is recorded with whatever verdict the checks give, flagged
  ``reshow``, and signals nothing: the relay is not cut, re-triggered or extended.
- The display is only ever asked to ``show`` a screen (rendering and the I2C push run on the
  display's own worker); if that fails, scanning carries on with LEDs and buzzer.
- A camera that fails is closed and re-opened with exponential backoff; the fault screen and
  signal stay on until frames flow again.
- Outputs that cannot be set up (GPIO missing, a pin busy) are retried with backoff under a
  "GPIO fault" screen; scans go on. An accept then opens nothing, but is recorded as the
  accept it is, flagged ``no_relay`` (and counts for anti-passback: staff may admit the
  holder on the green screen; a copy shown next must not get a second green).
- Each fault is logged once when it starts and once when it clears, never per frame.
- systemd hears ``READY=1`` once frames flow, or after ``ready_grace_s`` without a frame
  (with ``STATUS=fault: camera``): the loop is alive and retrying, so it must not be killed
  at ``TimeoutStartSec`` and restarted in a loop.
- Wall time comes only from the injected clock; timers (verdict hold, backoff, watchdog)
  from the injected monotonic function, so tests run synchronously.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from passgate.checkpoint.conditions import Conditions
from passgate.checkpoint.decide import FLAG_RESHOW, Decision, binding_flags, decide
from passgate.checkpoint.holds import Holds
from passgate.checkpoint.parts import Outputs, Presentations, ScanLog, Screen, TrustSource
from passgate.checkpoint.sdnotify import Notifier
from passgate.clock.clock import Clock, TimeReading
from passgate.errors import HardwareError, JournalError
from passgate.hardware.camera.retry import Retrying
from passgate.hardware.display import screens
from passgate.hardware.display.policy import DisplayPolicy
from passgate.journal.schema import ScanRecord, new_nonce
from passgate.passes.verdict import Reason, Verdict
from passgate.util.i18n import ENGLISH, Language

if TYPE_CHECKING:
    import numpy as np

    from passgate.hardware.camera.base import (
        FrameSource,  # open(), read() -> frame | None at the end, close()
    )
    from passgate.hardware.decode import Decoder  # decode(frame) -> list[str]

log = logging.getLogger(__name__)

FLAG_NO_RELAY = "no_relay"  # accepted while the door relay could not be driven


@dataclass(frozen=True)
class Timing:
    verdict_hold_s: float = 3.0
    relay_hold_s: float = 3.0  # the door's hold after an accept (signals.relay_hold_s)
    ready_grace_s: float = 20.0  # READY=1 after this even with no frame (TimeoutStartSec=60s)
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    tick_s: float = 0.25  # how often the idle screen and fault states are looked at
    pending_every_s: float = 10.0  # how often the idle screen's pending count is refreshed


DEFAULT_TIMING = Timing()


@dataclass(frozen=True)
class Scan:
    """One presentation's outcome, handed to observers after it was recorded and signalled.

    ``seq`` is the journal row, or None when the journal could not record it. ``text`` is
    the pass text as decoded: kept in memory for observers, never logged or stored.
    """

    seq: int | None
    text: str
    verdict: Verdict
    flags: frozenset[str]
    reading: TimeReading
    nonce: bytes


class Checkpoint:
    """The checkpoint's frame loop. Build it with every part, then :meth:`run` it.

    ``display`` gets a screen from a :class:`DisplayPolicy` on every loop turn (it must not
    block: :class:`passgate.hardware.display.Display` renders and pushes on its own thread,
    and skips unchanged screens). ``monotonic`` and ``wait`` drive the timers; ``nonce`` makes the
    16-byte client nonce of each journal row (time-ordered: ``journal.schema.new_nonce``);
    ``on_scan`` observes every scan after it was recorded and signalled;
    ``connectivity(now)`` (polled every ``pending_every_s``) says what the idle screen shows
    about the collector. The parts' interfaces are in
    :mod:`passgate.checkpoint.parts`; ``signals`` may have no outputs yet
    (:class:`~passgate.hardware.signals.retry.RetryingSignals`): a GPIO fault, shown and
    retried (``retry(mono)``) instead of ending the run.
    """

    def __init__(
        self,
        *,
        source: FrameSource,
        decoder: Decoder,
        debouncer: Presentations,
        trust: TrustSource,
        journal: ScanLog,
        signals: Outputs,
        display: Screen | None,
        clock: Clock,
        zone: str,
        timing: Timing = DEFAULT_TIMING,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wait: Callable[[float], Any] | None = None,
        nonce: Callable[[], bytes] = new_nonce,
        on_scan: Callable[[Scan], None] | None = None,
        connectivity: Callable[[float], screens.Connectivity] | None = None,
        lang: Language = ENGLISH,
        tz: tzinfo | None = None,
    ) -> None:
        self.source, self.decoder, self.debouncer = source, decoder, debouncer
        self.trust, self.journal = trust, journal
        self.signals, self.display, self.clock = signals, display, clock
        self.zone, self.timing = zone, timing
        self.notifier = notifier or Notifier({})
        self._mono, self._nonce = monotonic, nonce
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.on_scan = on_scan
        self._connectivity = connectivity
        # lang, tz: [display] language and timezone (tz None: the system's local zone)
        self.screens = DisplayPolicy(hold_s=timing.verdict_hold_s, tz=tz, lang=lang)
        self.faults = Conditions(self.screens)
        self.frames = 0
        self.scans = 0
        self.camera = Retrying(source, timing.backoff_initial_s, timing.backoff_max_s)
        self._next_tick = self._last_ping = self._next_pending = float("-inf")
        self._pending = 0
        self.holds = Holds(timing.relay_hold_s)  # the door's hold, not the screen's
        self._ready = False  # READY=1 sent
        self._started = float("inf")  # set by run(): the start grace counts from there

    # -- the loop ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current frame (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, max_frames: int | None = None) -> int:
        """Process frames until :meth:`stop`, the end of the source or ``max_frames``."""
        self._started = self._mono()
        self._tick(self._started)  # the idle (or fault) screen before the first frame
        try:
            while not self._stop.is_set() and (max_frames is None or self.frames < max_frames):
                frame = self._next_frame()
                if frame is _END:
                    log.info("frame source ended after %d frames", self.frames)
                    break
                if frame is not None:
                    self.process(frame)
        finally:
            self.camera.close()
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
            log.info("frames flow: scanning")
            self._tell_ready()
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
        held = self.holds.held(pass_hash, self._mono())
        try:
            used = bool(
                verdict.accepted
                and pass_hash is not None
                and view.antipassback.already_used(
                    pass_hash, self.zone, verdict.purpose, reading.now
                )
            )
            decision = decide(
                verdict, reading, view.status, used, view.policy, held, bool(view.missing)
            )
            shown = binding_flags(verdict, self.journal.pass_hash)
            if shown:
                decision = Decision(decision.verdict, decision.flags | shown)
            down = self.signals.relay_down  # a reshow opens nothing anyway
            if down and decision.accepted and decision.signalled:
                decision = Decision(decision.verdict, decision.flags | {FLAG_NO_RELAY})
            record = ScanRecord.of(
                decision.verdict, reading, self.zone, nonce, pass_hash, decision.flags
            )
            seq = self.journal.record(record)
        except JournalError as exc:
            self.faults.journal_failed(str(exc), read=False)
            quiet = frozenset({FLAG_RESHOW}) if held else frozenset()  # the accept stands
            decision = Decision(verdict.deny(Reason.JOURNAL_FAULT, "scan not recorded"), quiet)
            seq = None
        else:
            if self.faults.journal_ok(read=False):
                self._next_pending = float("-inf")
        # Only now, with the row committed (or the scan denied), is anything signalled.
        if decision.signalled:
            if decision.accepted:
                self.signals.accept()
                self.holds.start(pass_hash, self._mono())
            else:
                self.signals.deny()  # this ends any hold: the relay drops
                self.holds.end_all()
            self.screens.purposes = view.verifier.trust.purposes
            self.screens.verdict(decision.verdict, reading.now)
        self._show(reading.now)
        self.scans += 1
        if seq is not None:
            self._pending += 1
            self.screens.status(pending=self._pending)
        self._after_faults()
        scan = Scan(seq, text, decision.verdict, decision.flags, reading, nonce)
        if self.on_scan is not None:
            self.on_scan(scan)
        return scan

    # -- faults, screens, watchdog -----------------------------------------------------

    def _tick(self, mono: float) -> None:
        """Housekeeping, at most every ``tick_s``: watchdog, fault states, the screen."""
        if self.notifier.watchdog_s and mono - self._last_ping >= self.notifier.watchdog_s / 3:
            self.notifier.watchdog()
            self._last_ping = mono
        if not self._ready and mono - self._started >= self.timing.ready_grace_s:
            log.warning("no frame %gs after start: ready anyway", self.timing.ready_grace_s)
            self._tell_ready()
        if mono < self._next_tick:
            return
        self._next_tick = mono + self.timing.tick_s
        reading = self.clock.read()
        view = self.trust.current(reading.now)
        self.faults.update(reading, view)
        self._check_outputs(mono)
        if mono >= self._next_pending:
            self._refresh_status(mono, reading.now)
        self.screens.status(clock=reading.state)
        self._after_faults()
        self._show(reading.now)

    def _check_outputs(self, mono: float) -> None:
        """Outputs not set up yet are tried again (with backoff) and shown as a fault."""
        error = self.signals.retry(mono)  # "" for outputs that are always set up
        self.faults.outputs(error, relay=self.signals.relay_down)

    def _after_faults(self) -> None:
        """Turn the fault signal on or off, and tell systemd, on a change only."""
        blink, status = self.faults.changes()
        if blink is not None:
            self.signals.fault(blink)
        if status is not None:
            self.notifier.status(status)

    def _tell_ready(self) -> None:
        """``READY=1`` once: when frames flow, or after the start grace without them (a camera
        dead at boot must not make systemd restart a loop that is alive and retrying; the
        watchdog still catches a hung loop)."""
        if not self._ready:
            self._ready = True
            self.notifier.ready(self.faults.status)

    def _refresh_status(self, mono: float, now: float) -> None:
        """The idle screen's slow indicators: pending uploads, and the sync agent's view of
        the network (the scanner itself has none)."""
        self._next_pending = mono + self.timing.pending_every_s
        if self._connectivity is not None:
            self.screens.status(connectivity=self._connectivity(now))
        try:
            self._pending = self.journal.pending_count()
            self.screens.status(pending=self._pending)
        except JournalError as exc:
            self.faults.journal_failed(str(exc), read=True)
        else:
            self.faults.journal_ok(read=True)  # clears a journal that could not be opened
            self.trust.retry_keep()  # rows to keep, if still owed

    def _show(self, now: float) -> None:
        if self.display is None:
            return
        try:
            self.display.show(self.screens.at(now))
        except Exception as exc:  # a broken OLED must not stop scanning: LEDs and buzzer carry on
            self.faults.set("display", f"{type(exc).__name__}: {exc}")
            return
        if "display" in self.faults.active:
            self.faults.clear("display")

    # -- the camera --------------------------------------------------------------------

    def _next_frame(self) -> Any:
        try:
            frame = self.camera.read()
        except HardwareError as exc:
            if self.faults.camera_failed(str(exc)):
                self.debouncer.reset()  # whatever is shown next is a new presentation
            self._after_faults()
            self._next_tick = float("-inf")  # show the fault screen now, not at the next tick
            self.sleep(self.camera.failed())
            return None
        if frame is None:
            return _END
        if self.faults.camera_ok():
            self.camera.working()
            self._after_faults()
            self._next_tick = float("-inf")  # the normal screen again, now
        return frame

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
        self.screens.stop()
        if self.display is not None:
            try:
                self.display.show(self.screens.at(0))
            except Exception as exc:  # stopping anyway; the reason is worth a line
                log.warning("could not show the stopped screen: %s", exc)
        log.info("stopped after %d frames, %d scans", self.frames, self.scans)


_END = object()
