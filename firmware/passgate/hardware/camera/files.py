"""Frames from files: a folder of images (PIL) or a video file (OpenCV, the ``webcam`` extra).

:class:`PathSource` is ``camera.path``: either of them, decided each time it opens.

Both are finite: ``read()`` returns ``None`` at the end unless ``loop`` is set. Both keep
their position across ``close()`` / ``open()``, so a retried source carries on instead of
replaying from the start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from passgate.errors import HardwareError
from passgate.hardware.camera.base import SourceBase

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pbm",
                            ".tif", ".tiff", ".webp"})


class FolderSource(SourceBase):
    """Every image in ``folder`` (not recursive), sorted by file name, one frame each.

    Colour images are converted to 8-bit grayscale. A file that cannot be read is logged and
    skipped; a folder that is missing or has no images raises ``HardwareError`` on ``open()``.
    """

    def __init__(self, folder: Path | str, loop: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.loop = loop
        self.name = f"folder {self.folder}"
        self._files: list[Path] = []
        self._pos = 0
        self._bad: set[Path] = set()

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise HardwareError(f"{self.name}: not a folder")
        files = sorted(p for p in self.folder.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise HardwareError(f"{self.name}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if files != self._files:
            self._files, self._pos = files, 0

    def _read(self) -> np.ndarray | None:
        skipped = 0
        while True:
            if self._pos >= len(self._files):
                if not self.loop:
                    return None
                self._pos = 0
            path = self._files[self._pos]
            self._pos += 1
            frame = self._load(path)
            if frame is not None:
                return frame
            skipped += 1
            if skipped >= len(self._files):
                raise HardwareError(f"{self.name}: no readable image left")

    def _load(self, path: Path) -> np.ndarray | None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("L"))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            if path not in self._bad:  # once per file, not once per loop
                self._bad.add(path)
                log.warning("%s: skipping unreadable %s: %s", self.name, path.name, exc)
            return None

    def _close(self) -> None:
        pass  # images are opened and closed one at a time


def import_cv2() -> Any:
    """OpenCV, imported on first use (``pip install passgate[webcam]``)."""
    try:
        import cv2
    except ImportError as exc:
        raise HardwareError(f"OpenCV is needed for webcams and video files: "
                            f"pip install 'passgate[webcam]' ({exc})") from None
    return cv2


def to_gray(cv: Any, frame: np.ndarray) -> np.ndarray:
    """OpenCV delivers BGR (or BGRA); the decoders want one 8-bit channel."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv.cvtColor(frame, cv.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv.cvtColor(frame, cv.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    raise HardwareError(f"unexpected frame shape {frame.shape}")


class VideoFileSource(SourceBase):
    """Frames of a video file, decoded by OpenCV (whatever its FFmpeg build reads).

    ``cv`` is the ``cv2`` module, imported on ``open()`` by default; tests pass a fake.
    """

    def __init__(self, path: Path | str, loop: bool = False, cv: Any = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.loop = loop
        self.name = f"video {self.path.name}"
        self._cv = cv
        self._cap: Any = None
        self._pos = 0  # frames delivered, to resume after a re-open

    def _open(self) -> None:
        if not self.path.is_file():
            raise HardwareError(f"{self.name}: no such file: {self.path}")
        cv = self._cv = self._cv or import_cv2()
        self._cap = cap = cv.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise HardwareError(f"{self.name}: cannot open (unsupported format?)")
        if self._pos:
            cap.set(cv.CAP_PROP_POS_FRAMES, self._pos)

    def _read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok and self.loop and self._pos > 0:
            self._cap.set(self._cv.CAP_PROP_POS_FRAMES, 0)
            self._pos = 0
            ok, frame = self._cap.read()
        if not ok or frame is None:
            return None  # OpenCV reports the end of a file and a decode error alike
        self._pos += 1
        return to_gray(self._cv, frame)

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class PathSource(SourceBase):
    """``path`` as a :class:`FolderSource` when it is a folder, a :class:`VideoFileSource`
    when it is a file, decided at each ``open()``: a folder that is missing at start-up
    (an unmounted disk) is a camera fault retried with backoff, then read as a folder once
    it appears, not taken for a video file for good. Position is kept across re-opens as
    long as the path stays the same kind.
    """

    def __init__(self, path: Path | str, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.loop = loop
        self.name = f"files {self.path}"
        self._inner: FolderSource | VideoFileSource | None = None

    def _open(self) -> None:
        if self.path.is_dir():
            kind: type[FolderSource] | type[VideoFileSource] = FolderSource
        elif self.path.is_file():
            kind = VideoFileSource
        else:
            raise HardwareError(f"{self.name}: no such folder or video file")
        if not isinstance(self._inner, kind):
            self._inner = kind(self.path, loop=self.loop)
        self._inner.open()

    def _read(self) -> np.ndarray | None:
        assert self._inner is not None
        return self._inner.read()

    def _close(self) -> None:
        if self._inner is not None:
            self._inner.close()
