"""Assembling a checkpoint from a config, and running it until SIGTERM.

:func:`run_checkpoint` is shared by ``passgate run`` and ``passgate run --simulate``. The
entry points build what touches hardware (the frame source, the gpiozero pin factory or a
function that makes it, the clock) and hand it in; everything else (journal, trust, signals,
display, the loop) is built here from the config, inside one :class:`contextlib.ExitStack`,
so it is closed in reverse order however the run ends. On SIGTERM (or SIGINT) the loop stops,
the relay is released, the OLED says "stopped", the frame source, display, signals and
journal close, and a clock that keeps state (a context manager:
:class:`~passgate.clock.clock.SystemClock`) writes its floor, so a planned reboot or
power-off loses none of the time the device knew.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

# Every part is imported here, at the top: this module assembles them all. The optional
# libraries behind them (picamera2, OpenCV, luma, gpiozero, zxing-cpp) still load only when a
# part is opened (see tests/test_layers.py).
from passgate.bundle.watch import BundleWatcher
from passgate.checkpoint.debounce import Debouncer
from passgate.checkpoint.loop import Checkpoint, Scan, Timing
from passgate.checkpoint.parts import TrustSource
from passgate.checkpoint.sdnotify import Notifier
from passgate.checkpoint.trustview import BundleTrust, StaticTrust, local_policy
from passgate.clock.clock import Clock
from passgate.config.schema import Config
from passgate.errors import ConfigError, JournalError, TrustError
from passgate.hardware.camera import Paced
from passgate.hardware.camera.base import FrameSource
from passgate.hardware.camera.files import PathSource
from passgate.hardware.camera.picam import PicameraSource
from passgate.hardware.camera.webcam import WebcamSource
from passgate.hardware.decode import Decoder, ZxingDecoder, make_decoder
from passgate.hardware.display import Display
from passgate.hardware.display.screens import Connectivity
from passgate.hardware.display.term import TerminalView
from passgate.hardware.reader import FullCropReader
from passgate.hardware.signals.retry import RetryingSignals
from passgate.journal.journal import Journal
from passgate.journal.syncstate import OFFLINE, ONLINE, UNKNOWN, SyncState, state_path
from passgate.passes.truststore import TrustStore
from passgate.util.i18n import language

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

HASH_KEY_LEN = 32


def loaded_path(path: Path | None, key: str) -> Path:
    """A path the loaded config has filled in (derived from ``checkpoint.state_dir`` when not
    given); ConfigError for a config that was not loaded through :mod:`passgate.config.load`."""
    if path is None:
        raise ConfigError(f"{key}: not set")
    return path


def read_hash_key(path: Path) -> bytes:
    """The fleet's pass-hash key (written by provisioning); ConfigError if absent or wrong."""
    try:
        key = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"journal.hash_key_file: {path}: not found (provisioning writes it: passgate provision)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"journal.hash_key_file: {path}: cannot read: {exc.strerror}") from None
    if len(key) != HASH_KEY_LEN:
        raise ConfigError(
            f"journal.hash_key_file: {path}: {len(key)} bytes, expected {HASH_KEY_LEN}"
        )
    return key


@dataclass(frozen=True)
class Startup:
    """What :func:`preflight` read: the hash key; the trust folder when ``[trust]`` is one."""

    hash_key: bytes
    store: TrustStore | None


def preflight(cfg: Config) -> Startup:
    """Every check ``passgate run`` makes before it starts, and the only place they are made:
    ``passgate config`` calls this too, so the check refuses exactly what the run refuses,
    with the same line. Each problem is one ``ConfigError`` naming the file that set the key
    (for a path derived inside the state folder, the file that set ``checkpoint.state_dir``),
    the key, the path and what is wrong.

    Refused here: the journal key unreadable, missing or not a key (and its state folder
    missing, when the key lives in it), a ``dir`` trust source that does not load, a
    ``trust.holder_binding`` naming a purpose that trust folder does not know. Not
    refused: what may appear later and is shown as a fault at the door meanwhile (a missing
    bundle, camera files on a mount, a journal folder that is not mounted yet)."""
    key_file = loaded_path(cfg.journal.hash_key_file, "journal.hash_key_file")
    derived = "journal.hash_key_file" not in cfg.origins
    state = cfg.checkpoint.state_dir
    if key_file.parent == state and not state.is_dir():
        # The key was never written because the folder is not there: say which key to fix.
        where = cfg.origin("checkpoint.state_dir")
        what = "a file, not a folder" if state.exists() else "no such folder"
        raise ConfigError(
            f"{where}: checkpoint.state_dir: {state}: {what} (journal.hash_key_file "
            f"{key_file.name} is read from it)"
        )
    try:
        key = read_hash_key(key_file)
    except ConfigError as exc:
        origin = cfg.origin("journal.hash_key_file", "checkpoint.state_dir" if derived else None)
        raise ConfigError(f"{origin}: {exc}") from None
    store = None
    if cfg.trust.source == "dir":
        try:
            store = TrustStore.from_dir(cfg.trust.dir)
        except TrustError as exc:
            raise ConfigError(f"{cfg.origin('trust.dir')}: trust.dir: {exc}") from None
        # A purpose the folder does not know would never match a pass: binding silently off.
        binding = cfg.trust.holder_binding
        unknown = sorted(p for p in binding if p != "*" and p not in store.purposes)
        if unknown:
            raise ConfigError(
                f"{cfg.origin('trust.holder_binding')}: trust.holder_binding: unknown purpose "
                f"{unknown[0]!r} (not in {cfg.trust.dir}'s purposes): it would require no live "
                "code"
            )
    return Startup(key, store)


def make_source(cfg: Config) -> FrameSource:
    """The frame source ``[camera]`` asks for (not opened: the loop opens it, with retries)."""
    cam = cfg.camera
    if cam.source == "picamera2":
        return PicameraSource(cam)  # [camera] is the adapter's own CameraConfig
    if cam.source == "webcam":
        return WebcamSource(cam.webcam_index, size=cam.lores_size, fps=cam.fps)
    # Folder or video is decided at each open: the path may appear only later (a mount).
    inner = PathSource(loaded_path(cam.path, "camera.path"), loop=cam.loop)
    return Paced(inner, cam.fps)  # files come as fast as asked; the loop expects a camera's pace


def make_reader(cfg: Config, source: FrameSource,
                light: Callable[[bool, float | None], None] | None = None) -> Decoder:
    """The decoder ``[decoder]`` names; zxing-cpp on a Pi camera reads per presentation.

    There a candidate (a located but undecoded code, or a pass-sized moving region) is read
    again from a full-resolution crop of the main stream, and the one-shot autofocus follows
    it (``docs/decoders.md``); other sources give no crop. With an illuminator fitted
    (``signals.illuminator_pin``), ``light(candidate, frame_mean)`` hears after every frame
    whether a candidate is in view, and the frame's mean level when the dim-light policy is
    on (from a 1-in-8 subsample: ~10 us, not a full-frame mean), on any source zxing-cpp reads.
    """
    decoder = make_decoder(cfg.decoder.backend, try_invert=cfg.decoder.try_invert)
    if not isinstance(decoder, ZxingDecoder):
        return decoder
    camera = source if isinstance(source, PicameraSource) else None
    fitted = light is not None and cfg.signals.illuminator_pin is not None
    if camera is None and not fitted:
        return decoder
    dim = cfg.signals.illuminator_light == "candidate+dim"

    def follow(box: tuple[int, int, int, int] | None, frame: np.ndarray) -> None:
        if camera is not None:
            camera.on_candidate(box)
        if fitted and light is not None:
            light(box is not None, float(frame[::8, ::8].mean()) if dim else None)

    return FullCropReader(decoder, camera, on_candidate=follow,
                          on_symbol=camera.on_symbol if camera is not None else None)


def open_journal(cfg: Config, key: bytes) -> Journal:
    """The scan journal, opened now if it can be. If not (the state folder is missing or
    read-only, the file is damaged), a journal that tries again on every call: the loop then
    starts with the "journal fault" screen and denies scans ``journal_fault`` until it opens.
    That is a fault to show at the door, not a configuration error to exit with."""
    args = (loaded_path(cfg.journal.path, "journal.path"), key, cfg.checkpoint.device_id)
    try:
        return Journal(*args)
    except JournalError:  # the loop's first look at it raises and logs the fault
        return Journal(*args, connect=False)


def make_trust(cfg: Config, journal: Journal, store: TrustStore | None = None) -> TrustSource:
    """The trust provider ``[trust]`` asks for: the installed bundle, or a plain folder
    (``store``: that folder as :func:`preflight` loaded it; loaded here when not given)."""
    policy = local_policy(cfg)
    if cfg.trust.source == "dir":
        if store is None:
            store = TrustStore.from_dir(cfg.trust.dir)
        return StaticTrust(store, policy, journal, cfg.checkpoint.live_code_window)
    cp = cfg.checkpoint
    return BundleTrust(
        BundleWatcher(loaded_path(cfg.trust.bundle_dir, "trust.bundle_dir")),
        journal,
        cp.zone,
        policy,
        cp.site,
        retention_s=cfg.journal.retention,
        live_window_s=cfg.checkpoint.live_code_window,
    )


def sync_connectivity(state_dir: Path) -> Callable[[float], Connectivity]:
    """The sync agent's view of the network, from its state file in ``state_dir``."""
    return SyncConnectivity(state_dir)


class SyncConnectivity:
    """What the idle screen shows about the collector, read from the sync agent's state file.

    The file is another process's: anything wrong with it (unreadable, not JSON, a
    connectivity that is not online/offline/unknown, an ``updated_at`` that is not a time)
    reads as unknown, and is logged once when that problem appears, never on every poll. A
    missing file (no sync round yet, or no sync agent) is unknown without a word.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_path(state_dir)
        self._problem = ""

    def __call__(self, now: float) -> Connectivity:
        state, problem = self._read()
        if problem != self._problem:
            if problem:
                log.warning("sync state %s: %s (shown as unknown)", self.path, problem)
            else:
                log.info("sync state %s: readable again", self.path)
            self._problem = problem
        return Connectivity.UNKNOWN if state is None else Connectivity(state.connectivity_at(now))

    def _read(self) -> tuple[SyncState | None, str]:
        try:
            raw = json.loads(self.path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return None, ""
        except OSError as exc:
            return None, f"unreadable: {exc.strerror or exc}"
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return None, "not JSON text"
        if not isinstance(raw, dict):
            return None, "not a JSON object"
        connectivity = raw.get("connectivity", UNKNOWN)
        if not isinstance(connectivity, str) or connectivity not in (ONLINE, OFFLINE, UNKNOWN):
            return None, f"connectivity is {_short(connectivity)}, not online/offline/unknown"
        updated = raw.get("updated_at")
        if updated is not None:
            try:
                if isinstance(updated, bool) or not math.isfinite(updated):
                    raise TypeError
                updated = float(updated)
            except (TypeError, OverflowError):
                return None, f"updated_at is {_short(updated)}, not a time"
        return SyncState(connectivity=connectivity, updated_at=updated), ""


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on SIGTERM and SIGINT while inside; the previous handlers come back after.

    Only possible in the main thread (Python delivers signals there); elsewhere, a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}  # whatever signal.signal() handed back

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_checkpoint(
    cfg: Config,
    *,
    source: FrameSource,
    pin_factory: Any,  # a gpiozero PinFactory or a function making one (gpiozero is untyped)
    clock: Clock,
    terminal: TextIO | TerminalView | None = None,
    notifier: Notifier | None = None,
    decoder: Decoder | None = None,
    on_scan: Callable[[Scan], None] | None = None,
    on_signal_change: Callable[[str, float], None] | None = None,
    ready: Callable[[Checkpoint], None] | None = None,
    max_frames: int | None = None,
) -> Checkpoint:
    """Build the checkpoint from ``cfg`` around the given hardware parts and run it.

    Returns the :class:`~passgate.checkpoint.loop.Checkpoint` after it stopped (SIGTERM, SIGINT, the
    end of a finite source, or ``max_frames``). ``ready(checkpoint)`` is called just before
    the loop starts (tests use it to reach the parts). ``decoder`` replaces the one
    ``[decoder]`` names (tests and benchmarks feed pre-decoded texts). ``pin_factory``: a
    gpiozero pin factory (closed last), or a function without arguments that makes one:
    called again, with backoff, while it raises ``HardwareError`` (the checkpoint runs with a
    "GPIO fault" meanwhile, as it does when a pin is busy). Raises ``ConfigError`` or
    ``HardwareError`` when something cannot be set up at all.
    """
    start = preflight(cfg)  # ConfigError naming the file and key, before any hardware
    with contextlib.ExitStack() as stack:
        # The hardware parts handed in are ours to close, last: the pin factory after the
        # devices on it, the source after the loop (it closes it too; closing is idempotent).
        # A factory made by a function handed in is closed with the signals.
        if not callable(pin_factory):
            stack.callback(pin_factory.close)
        if isinstance(clock, contextlib.AbstractContextManager):
            stack.enter_context(clock)  # exited last but one: the floor is written at the stop
        notifier = notifier if notifier is not None else stack.enter_context(Notifier())
        journal = stack.enter_context(open_journal(cfg, start.hash_key))
        trust = make_trust(cfg, journal, start.store)
        timing = Timing(
            verdict_hold_s=cfg.display.verdict_hold_s, relay_hold_s=cfg.signals.relay_hold_s
        )
        signals = stack.enter_context(
            RetryingSignals(
                cfg.signals,  # [signals] is the adapter's own SignalsConfig
                pin_factory,
                on_change=on_signal_change,
                initial_s=timing.backoff_initial_s,
                max_s=timing.backoff_max_s,
            )
        )
        display = Display.from_config(cfg.display, terminal=terminal)
        stack.callback(display.close)
        stack.callback(source.close)
        checkpoint = Checkpoint(
            source=source,
            decoder=decoder or make_reader(cfg, source, signals.light),
            debouncer=Debouncer(cfg.decoder.absent_frames, cfg.decoder.absent_s),
            trust=trust,
            journal=journal,
            signals=signals,
            display=display,
            clock=clock,
            zone=cfg.checkpoint.zone,
            timing=timing,
            notifier=notifier,
            on_scan=on_scan,
            connectivity=sync_connectivity(cfg.checkpoint.state_dir),
            lang=language(cfg.display.language),
            tz=cfg.display.zone(),
        )
        # Runs first on the way out: relay released and "stopped" shown before anything closes.
        stack.callback(checkpoint.shutdown)
        log.info(
            "checkpoint %s in zone %s: camera %s, display %s, trust %s",
            cfg.checkpoint.device_id,
            cfg.checkpoint.zone,
            source.name,
            cfg.display.driver,
            cfg.trust.source,
        )
        if ready is not None:
            ready(checkpoint)
        with stop_on_signals(checkpoint.stop):
            checkpoint.run(max_frames)
        return checkpoint


__all__ = [
    "loaded_path",
    "make_reader",
    "make_source",
    "make_trust",
    "Startup",
    "open_journal",
    "preflight",
    "read_hash_key",
    "run_checkpoint",
    "stop_on_signals",
]
