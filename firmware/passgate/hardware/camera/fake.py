"""Test doubles for camera faults: a source that fails on a script.

Used by the daemon's tests (camera fault screen, retry with backoff, recovery) and usable in
a simulation to show the fault screen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from passgate.errors import ArgumentError, HardwareError
from passgate.hardware.camera.base import FrameSource, SourceBase

log = logging.getLogger(__name__)


class FlakyFrameSource(SourceBase):
    """Wrap ``inner`` and raise ``HardwareError`` on scripted read attempts.

    ``fail_reads``: ``(start, stop)`` ranges of read attempts (0-based, half-open, counted
    over the wrapper's whole life, failed attempts included) that raise instead of reading.
    A failing attempt does not consume a frame of ``inner``.

    ``open_failures_after_fault``: after each failed read, this many ``open()`` calls fail
    too (the device is still gone), then opening works again. ``initial_open_failures``:
    the first this-many ``open()`` calls fail (no camera at start-up).

    ``close()`` and ``open()`` pass through to ``inner``; the built-in sources keep their
    position across a re-open, so a scripted scene carries on where it was.

    Counters for assertions: ``reads`` (attempts), ``opens`` (attempts), ``faults`` (raised).
    """

    def __init__(self, inner: FrameSource, fail_reads: Iterable[tuple[int, int]] = (),
                 open_failures_after_fault: int = 0, initial_open_failures: int = 0) -> None:
        super().__init__()
        self.inner = inner
        self.name = f"flaky {inner.name}"
        self.fail_reads = tuple((int(a), int(b)) for a, b in fail_reads)
        for start, stop in self.fail_reads:
            if not 0 <= start <= stop:
                raise ArgumentError(f"bad failure range ({start}, {stop})")
        self.open_failures_after_fault = int(open_failures_after_fault)
        self.reads = 0
        self.opens = 0
        self.faults = 0
        self._opens_to_fail = int(initial_open_failures)

    def _open(self) -> None:
        self.opens += 1
        if self._opens_to_fail > 0:
            self._opens_to_fail -= 1
            self.faults += 1
            raise HardwareError(f"{self.name}: simulated: device not found (open {self.opens - 1})")
        self.inner.open()

    def _read(self) -> np.ndarray | None:
        n = self.reads
        self.reads += 1
        if any(start <= n < stop for start, stop in self.fail_reads):
            self.faults += 1
            self._opens_to_fail = self.open_failures_after_fault
            raise HardwareError(f"{self.name}: simulated: read failed (read {n})")
        return self.inner.read()

    def _close(self) -> None:
        self.inner.close()
