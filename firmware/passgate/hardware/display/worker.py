"""The display worker: renders and pushes screens on its own thread, latest screen wins.

:meth:`Display.show` only stores the screen and wakes the worker; it never renders, never
touches the bus and never raises, so the frame loop keeps its pace even when a push to an
I2C panel takes ~25-100 ms or hangs. Screens that arrive while the worker is busy replace
each other: only the newest is drawn. An image identical to the last one an output received
is not sent again (luma does not diff 1-bit frames, and every push costs bus time).

An output that fails (no panel at start-up, a loose cable, a full disk for PNG files) is
logged once, dropped, and opened again every ``retry_s`` seconds; its recovery is logged once.
The other outputs and the checkpoint carry on.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TextIO, cast

from PIL import Image

from passgate.hardware.display.device import DisplayConfig, Output, PngFolder, open_luma
from passgate.hardware.display.render import render
from passgate.hardware.display.screens import Screen
from passgate.hardware.display.term import TerminalView

log = logging.getLogger(__name__)


class _Slot:
    """One output, its failure state and the last image it accepted."""

    def __init__(self, name: str, factory: Callable[[], Output], retry_s: float) -> None:
        self.name = name
        self.factory = factory
        self.retry_s = retry_s
        self.device: Output | None = None
        self.up: bool | None = None  # None: never tried yet
        self.next_try = 0.0
        self.last: bytes | None = None
        self.pushes = 0

    def push(self, image: Any, now: float) -> None:
        if self.device is None:
            if now < self.next_try:
                return
            try:
                self.device = self.factory()
            except Exception as exc:  # noqa: BLE001 - any failure of a panel is survivable
                self._failed(exc, now)
                return
            self.last = None  # a (re)opened panel shows nothing we sent before
        data = image.tobytes()
        if data == self.last:
            return
        try:
            self.device.display(image)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc, now)
            return
        self.last = data
        self.pushes += 1
        if self.up is False:
            log.info("display output %s is back", self.name)
        self.up = True

    def _failed(self, exc: Exception, now: float) -> None:
        if self.up is not False:
            log.warning(
                "display output %s failed (%s: %s); scanning carries on, retrying every %gs",
                self.name, type(exc).__name__, exc, self.retry_s,
            )
        self.up = False
        self.next_try = now + self.retry_s
        self.last = None
        device, self.device = self.device, None
        if device is not None:
            self._cleanup(device)

    def close(self) -> None:
        device, self.device = self.device, None
        if device is not None:
            self._cleanup(device)

    def _cleanup(self, device: Output) -> None:
        try:
            device.cleanup()
        except Exception as exc:  # noqa: BLE001 - it already failed once; say so, go on
            log.debug("display output %s: cleanup failed: %s", self.name, exc)


class Display:
    """Shows screens on one or more outputs from a background thread.

    ``outputs`` maps a name (used in log lines) to an output (anything with luma's
    ``display(image)`` and ``cleanup()``) or to a zero-argument factory returning one; a
    factory is called on the worker thread, and again after a failure. ``retry_s``: how often
    a failed output is tried again. ``renderer`` turns a screen into a 128x64 image.
    ``monotonic`` is the clock for retries (injectable for tests).

    Use as a context manager, or call :meth:`close`. The thread starts at construction.
    """

    def __init__(
        self,
        outputs: Mapping[str, Output | Callable[[], Output]],
        *,
        retry_s: float = 10.0,
        renderer: Callable[[Screen], Any] = render,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = [
            _Slot(name, _opener(out), retry_s)
            for name, out in outputs.items()
        ]
        self._render = renderer
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._screen: Screen | None = None
        self._seq = 0  # bumped by show()
        self._done = 0  # the last seq the worker finished
        self._closing = False
        self._closed = False
        self.renders = 0
        self._thread = threading.Thread(target=self._run, name="passgate-display", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(
        cls,
        cfg: Any,
        *,
        terminal: TextIO | TerminalView | None = None,
        bus: Any = None,
    ) -> Display:
        """Build the outputs a config asks for.

        ``cfg`` is a :class:`~.device.DisplayConfig` or any object with the same attribute
        names (the ``[display]`` config section): the panel from ``driver``/``i2c_*``/
        ``rotate``, a :class:`~.device.PngFolder` when ``png_dir`` is set. ``terminal``
        adds a live half-block view on that stream (pass ``terminal_if_tty()``). ``bus`` is a
        fake smbus for tests. Values are checked as :class:`~.device.DisplayConfig` checks
        them (raises :class:`~passgate.errors.ConfigError`, e.g. for ``rotate=1``).
        """
        if not isinstance(cfg, DisplayConfig):
            names = [f.name for f in dataclasses.fields(DisplayConfig)]
            cfg = DisplayConfig(**{n: getattr(cfg, n) for n in names if hasattr(cfg, n)})
        outputs: dict[str, Output | Callable[[], Output]] = {}
        if cfg.driver == "dummy":
            outputs["dummy"] = partial(open_luma, "dummy", rotate=cfg.rotate)
        elif cfg.driver != "none":
            name = f"{cfg.driver}@i2c-{cfg.i2c_port}:0x{cfg.i2c_address:02X}"
            outputs[name] = partial(
                open_luma, cfg.driver, cfg.i2c_port, cfg.i2c_address, cfg.rotate, bus=bus
            )
        if cfg.png_dir is not None:
            outputs[f"png:{cfg.png_dir}"] = partial(PngFolder, Path(cfg.png_dir))
        if terminal is not None:
            view = terminal if isinstance(terminal, TerminalView) else TerminalView(terminal)
            outputs["terminal"] = view
        return cls(outputs, retry_s=cfg.retry_s)

    # -- caller side: never blocks on rendering or the bus, never raises -----------------

    def show(self, screen: Screen) -> None:
        """Hand ``screen`` to the worker; returns at once. An unchanged screen is ignored."""
        with self._cond:
            if self._closing or screen == self._screen:
                return
            self._screen = screen
            self._seq += 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the latest screen has been drawn and pushed; False on timeout.

        For tests and the shutdown path; the frame loop never needs it.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._done == self._seq, timeout)

    @property
    def pushes(self) -> dict[str, int]:
        """How many images each output has been sent (unchanged images are not counted)."""
        return {s.name: s.pushes for s in self._slots}

    @property
    def healthy(self) -> dict[str, bool | None]:
        """Per output: True working, False failed (retrying), None not tried yet."""
        return {s.name: s.up for s in self._slots}

    def close(self, final: Screen | None = None, timeout: float = 2.0) -> None:
        """Show ``final`` (e.g. ``StoppedScreen()``) if given, flush, stop, clean up outputs.

        Idempotent. Waits at most ``timeout`` seconds for a hung bus, then leaves the (daemon)
        thread behind with a warning rather than blocking shutdown.
        """
        if final is not None:
            self.show(final)
        with self._cond:
            if self._closed:
                return
            self._closed = self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("display worker did not finish within %gs; leaving it", timeout)

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker side ---------------------------------------------------------------------

    def _next_retry(self) -> float | None:
        due = [s.next_try for s in self._slots if s.device is None and s.up is False]
        return min(due) if due else None

    def _run(self) -> None:
        drawn: Screen | None = None
        image = None
        while True:
            with self._cond:
                while True:
                    if self._done != self._seq or self._closing:
                        break
                    retry = self._next_retry()
                    wait = None if retry is None or image is None else retry - self._monotonic()
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                screen, seq, closing = self._screen, self._seq, self._closing
            if screen is not None and (image is None or screen != drawn):
                try:
                    image = self._render(screen)
                    self.renders += 1
                except Exception:
                    # A bug, not a hardware fault: say so loudly, and blank the panel rather
                    # than leave the previous verdict showing.
                    log.exception("cannot draw %s; blanking the display", type(screen).__name__)
                    image = Image.new("1", (128, 64), 0)
                drawn = screen  # a screen that cannot be drawn is not retried every turn
            if image is not None:
                now = self._monotonic()
                for slot in self._slots:
                    slot.push(image, now)
            with self._cond:
                self._done = seq
                self._cond.notify_all()
                if closing and self._done == self._seq:
                    break
        for slot in reversed(self._slots):
            slot.close()


def _same(output: Output) -> Output:
    return output


def _opener(out: Output | Callable[[], Output]) -> Callable[[], Output]:
    """An output given open (it has ``display``), or the function that opens it."""
    if hasattr(out, "display"):
        return partial(_same, cast(Output, out))
    return out
