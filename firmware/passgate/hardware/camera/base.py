"""The frame source interface, and plumbing every source shares.

A frame is a numpy ``uint8`` array of shape ``(height, width)``: 8-bit grayscale, what the QR
decoders read. It may be a non-contiguous view (the Picamera2 Y plane is cropped from a wider
stride) and must be treated as read-only. Sizes are given as ``(width, height)`` everywhere,
as in PIL and picamera2; array shapes are ``(height, width)``.

Life cycle: ``open()``, any number of ``read()``, ``close()``; then ``open()`` again is allowed
(the daemon retries a failed camera by closing and re-opening it with backoff). ``close()`` is
idempotent and never raises. Failures raise :class:`passgate.errors.HardwareError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, Self, runtime_checkable

import numpy as np

from passgate.errors import ArgumentError, HardwareError

log = logging.getLogger(__name__)


@runtime_checkable
class FrameSource(Protocol):
    """Where frames come from: a camera, a folder of images, a video, a simulated scene."""

    name: str

    def open(self) -> None:
        """Acquire the device or files. Raises ``HardwareError``; a no-op when already open."""
        ...

    def read(self) -> np.ndarray | None:
        """The next frame (H x W uint8), or ``None`` when a finite source is exhausted.

        Raises ``HardwareError`` when the device fails or disappears, or when not open.
        """
        ...

    def close(self) -> None:
        """Release everything. Idempotent; never raises (problems are logged)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class SourceBase:
    """Implements the life cycle once; subclasses write ``_open``, ``_read`` and ``_close``.

    Any exception from ``_open`` or ``_read`` reaches the caller as ``HardwareError`` (camera
    libraries raise RuntimeError, OSError, TimeoutError... and the daemon handles one type).
    A failed ``_open`` is followed by ``_close`` so that half-acquired devices are released.
    """

    name = "source"

    def __init__(self) -> None:
        self._is_open = False

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        if self._is_open:
            return
        try:
            self._open()
        except Exception as exc:
            self._close_quietly()
            raise _as_hardware_error(self.name, "open", exc) from exc
        self._is_open = True
        log.debug("%s: open", self.name)

    def read(self) -> np.ndarray | None:
        if not self._is_open:
            raise HardwareError(f"{self.name}: read() while not open")
        try:
            return self._read()
        except Exception as exc:
            raise _as_hardware_error(self.name, "read", exc) from exc

    def close(self) -> None:
        if not self._is_open:
            return
        self._is_open = False
        self._close_quietly()
        log.debug("%s: closed", self.name)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_quietly(self) -> None:
        try:
            self._close()
        except Exception as exc:  # a vanished device often fails to close; nothing to retry
            log.warning("%s: error while closing (ignored): %s: %s", self.name,
                        type(exc).__name__, exc)

    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


def _as_hardware_error(name: str, what: str, exc: Exception) -> HardwareError:
    if isinstance(exc, HardwareError):
        return exc
    return HardwareError(f"{name}: {what} failed: {type(exc).__name__}: {exc}")


class Paced(SourceBase):
    """Deliver another source's frames no faster than ``fps``, as a real camera does.

    Files and simulated scenes return frames as fast as they are asked for; the daemon's
    timing (verdict hold, debounce, relay) expects a camera's pace. ``clock`` and ``sleep``
    are injectable (``time.monotonic`` / ``time.sleep`` by default) so tests need not wait.
    """

    def __init__(self, source: FrameSource, fps: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        if not fps > 0:
            raise ArgumentError("fps must be positive")
        self.source = source
        self.name = source.name
        self.period = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def _open(self) -> None:
        self.source.open()
        self._next = None

    def _read(self) -> np.ndarray | None:
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        # Late frames are not made up for: the next one is due a period after this one.
        self._next = now + self.period
        return self.source.read()

    def _close(self) -> None:
        self.source.close()
