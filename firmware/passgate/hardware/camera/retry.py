"""A frame source as the frame loop keeps it: opened when needed, closed when it fails, and
the exponential backoff to wait before trying again.

The loop (:class:`passgate.checkpoint.loop.Checkpoint`) decides what a failure means (a fault
screen,
the red blink) and does the waiting itself, so that it keeps the watchdog fed and can be
stopped; this class only keeps the source's state and the delay.
"""

from __future__ import annotations

import logging

import numpy as np

from passgate.errors import HardwareError
from passgate.hardware.camera.base import FrameSource

log = logging.getLogger(__name__)


class Retrying:
    """``source`` read on demand. ``initial_s``: the first wait after a failure, doubled
    after each further failure up to ``max_s``, back to ``initial_s`` once frames flow."""

    def __init__(self, source: FrameSource, initial_s: float, max_s: float) -> None:
        self.source = source
        self.initial_s, self.max_s = initial_s, max_s
        self._backoff = initial_s
        self._open = False

    def read(self) -> np.ndarray | None:
        """The next frame (``None``: the source ended). Raises ``HardwareError`` after
        closing the source; call :meth:`failed` for the wait before the next ``read``."""
        try:
            if not self._open:
                self.source.open()
                self._open = True
            return self.source.read()
        except HardwareError:
            self.close()
            raise

    def failed(self) -> float:
        """The seconds to wait before trying again, after a failure."""
        delay = self._backoff
        self._backoff = min(self._backoff * 2, self.max_s)
        return delay

    def working(self) -> None:
        """Frames flow again: the next failure waits ``initial_s`` again."""
        self._backoff = self.initial_s

    def close(self) -> None:
        """Close the source if it is open (a failed camera often fails to close: logged)."""
        if not self._open:
            return
        self._open = False
        try:
            self.source.close()
        except HardwareError as exc:
            log.debug("closing the failed camera: %s", exc)
