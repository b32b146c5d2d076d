"""A V4L2 / USB webcam through OpenCV, so a laptop user can hold a phone up to it.

OpenCV comes with the ``webcam`` extra (``pip install 'passgate[webcam]'``) and is imported
when the source opens. Not for the checkpoint itself: the Pi camera adapter (``picam.py``)
gives focus and exposure control and a grayscale plane without conversion.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from passgate.errors import HardwareError
from passgate.hardware.camera.base import SourceBase
from passgate.hardware.camera.files import import_cv2, to_gray

log = logging.getLogger(__name__)


class WebcamSource(SourceBase):
    """Frames from ``device`` (an index such as 0, or a path such as ``/dev/video2``).

    ``size`` ``(width, height)`` and ``fps`` are requests; the driver may pick the nearest
    mode it supports. ``read()`` raises ``HardwareError`` when a frame cannot be grabbed (the
    webcam was unplugged); ``close()`` then ``open()`` tries again. ``cv`` is the ``cv2``
    module, imported on ``open()`` by default; tests pass a fake.
    """

    def __init__(self, device: int | str = 0, size: tuple[int, int] | None = (640, 480),
                 fps: float | None = None, cv: Any = None) -> None:
        super().__init__()
        self.device = device
        self.size = size
        self.fps = fps
        self.name = f"webcam {device}"
        self._cv = cv
        self._cap: Any = None

    def _open(self) -> None:
        cv = self._cv = self._cv or import_cv2()
        self._cap = cap = cv.VideoCapture(self.device)
        if not cap.isOpened():
            raise HardwareError(f"{self.name}: cannot open (not connected, or in use?)")
        if self.size is not None:
            cap.set(cv.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps is not None:
            cap.set(cv.CAP_PROP_FPS, self.fps)
        # Keep at most one frame queued: a verdict should be about what is in view now.
        cap.set(cv.CAP_PROP_BUFFERSIZE, 1)
        log.info("%s: opened", self.name)

    def _read(self) -> np.ndarray:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise HardwareError(f"{self.name}: no frame (unplugged?)")
        return to_gray(self._cv, frame)

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
            log.info("%s: closed", self.name)
