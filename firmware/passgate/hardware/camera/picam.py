"""Raspberry Pi camera through Picamera2: the Y plane of a ``lores`` YUV420 stream.

picamera2 comes from Raspberry Pi OS apt (``python3-picamera2``; a venv needs
``--system-site-packages``) and probes the camera when imported, so it is imported only in
:func:`_picamera2_class`, when a source opens, never at import time.

Why lores YUV420: the ISP scales the sensor image down for free, the Y plane *is* the
grayscale frame the decoders want (no colour conversion), and on Pi 4 and older the lores
stream must be YUV anyway. The Y plane is cropped with ``[:h, :w]`` because the row stride
may be wider than the image.

Not run on real hardware yet: the tests drive this adapter with a fake ``Picamera2`` class
(``tests/test_camera.py``). The control names and enum values follow libcamera's control
list and picamera2's manual (AeMeteringMode 0 centre-weighted, 1 spot, 2 matrix; AfMode
0 manual, 2 continuous; AfRange 0 normal, 1 macro, 2 full).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from passgate.errors import ConfigError, HardwareError
from passgate.hardware.camera.base import SourceBase

log = logging.getLogger(__name__)

METERING = {"centre": 0, "spot": 1, "matrix": 2}
FOCUS = ("manual", "continuous", "fixed")
AF_RANGE = {"normal": 0, "macro": 1, "full": 2}
AF_MANUAL, AF_CONTINUOUS = 0, 2


@dataclass(frozen=True)
class CameraConfig:
    """Camera settings (the ``[camera]`` table of the config file).

    Sizes are ``(width, height)``. The lores stream is what gets decoded; the main stream
    exists because Picamera2 needs one and it picks the sensor mode and field of view
    (keep the two aspect ratios equal, or the lores image is stretched).

    Invalid values raise ``ConfigError`` naming the field; the config loader adds the file.
    """

    camera: int = 0  # camera number (0 = first; Pi 5 has two connectors)
    main_size: tuple[int, int] = (1280, 960)
    lores_size: tuple[int, int] = (640, 480)
    fps: float = 15.0
    # "manual": fixed LensPosition (Camera Module 3; continuous autofocus hunts for ~2 s at
    # 10-15 cm). "continuous": autofocus in af_range. "fixed": no focus control (v2, HQ).
    focus: str = "manual"
    lens_position: float = 6.7  # dioptres = 1 / distance in metres: 6.7 is about 15 cm
    af_range: str = "normal"  # "normal", "macro" or "full" (continuous focus only)
    metering: str = "centre"  # "centre", "spot" or "matrix"
    exposure_value: float = 0.0  # EV compensation -8..8; negative helps bright phone screens
    exposure_time_us: int | None = None  # fixed shutter in microseconds; None = automatic
    analogue_gain: float | None = None  # fixed gain; None = automatic
    timeout_s: float = 2.0  # a frame that takes longer than this is a camera fault
    buffer_count: int = 4

    def __post_init__(self) -> None:
        for key in ("main_size", "lores_size"):
            value = getattr(self, key)
            if (not isinstance(value, tuple | list) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                raise ConfigError(f"{key}: must be [width, height] in pixels, got {value!r}")
            if not all(16 <= v <= 8192 and v % 2 == 0 for v in value):
                raise ConfigError(f"{key}: width and height must be even, 16-8192, got {value!r}")
            object.__setattr__(self, key, tuple(value))
        if self.lores_size[0] > self.main_size[0] or self.lores_size[1] > self.main_size[1]:
            raise ConfigError(f"lores_size: {self.lores_size} must not exceed "
                              f"main_size {self.main_size}")
        if not isinstance(self.camera, int) or self.camera < 0:
            raise ConfigError(f"camera: must be a camera number >= 0, got {self.camera!r}")
        if not _number(self.fps) or not 1 <= self.fps <= 120:
            raise ConfigError(f"fps: must be 1-120, got {self.fps!r}")
        if self.focus not in FOCUS:
            raise ConfigError(f"focus: must be one of {', '.join(FOCUS)}, got {self.focus!r}")
        if not _number(self.lens_position) or not 0 <= self.lens_position <= 32:
            raise ConfigError(f"lens_position: dioptres 0-32 (0 = infinity), "
                              f"got {self.lens_position!r}")
        if self.af_range not in AF_RANGE:
            raise ConfigError(f"af_range: must be one of {', '.join(AF_RANGE)}, "
                              f"got {self.af_range!r}")
        if self.metering not in METERING:
            raise ConfigError(f"metering: must be one of {', '.join(METERING)}, "
                              f"got {self.metering!r}")
        if not _number(self.exposure_value) or not -8 <= self.exposure_value <= 8:
            raise ConfigError(f"exposure_value: must be -8..8, got {self.exposure_value!r}")
        if self.exposure_time_us is not None:
            if not isinstance(self.exposure_time_us, int) or self.exposure_time_us <= 0:
                raise ConfigError(f"exposure_time_us: must be a positive integer, "
                                  f"got {self.exposure_time_us!r}")
            if self.exposure_time_us > self.frame_duration_us:
                raise ConfigError(f"exposure_time_us: {self.exposure_time_us} is longer than "
                                  f"a frame at {self.fps} fps ({self.frame_duration_us} us)")
        gain = self.analogue_gain
        if gain is not None and (not _number(gain) or gain < 1):
            raise ConfigError(f"analogue_gain: must be >= 1, got {self.analogue_gain!r}")
        if not _number(self.timeout_s) or self.timeout_s <= 0:
            raise ConfigError(f"timeout_s: must be positive, got {self.timeout_s!r}")
        if not isinstance(self.buffer_count, int) or not 2 <= self.buffer_count <= 16:
            raise ConfigError(f"buffer_count: must be 2-16, got {self.buffer_count!r}")

    @property
    def frame_duration_us(self) -> int:
        return round(1_000_000 / self.fps)

    def controls(self) -> dict[str, Any]:
        """The libcamera controls this config asks for (before dropping unsupported ones)."""
        c: dict[str, Any] = {
            # Min = max pins the frame rate (FrameDurationLimits works on every picamera2;
            # the "FrameRate" shorthand does not exist in older releases).
            "FrameDurationLimits": (self.frame_duration_us, self.frame_duration_us),
            "AeMeteringMode": METERING[self.metering],
            "ExposureValue": float(self.exposure_value),
        }
        if self.exposure_time_us is not None:
            c["ExposureTime"] = self.exposure_time_us
        if self.analogue_gain is not None:
            c["AnalogueGain"] = float(self.analogue_gain)
        if self.focus == "manual":
            c["AfMode"] = AF_MANUAL
            c["LensPosition"] = float(self.lens_position)
        elif self.focus == "continuous":
            c["AfMode"] = AF_CONTINUOUS
            c["AfRange"] = AF_RANGE[self.af_range]
        return c


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _picamera2_class() -> Callable[..., Any]:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise HardwareError(
            "picamera2 is not available: install python3-picamera2 from Raspberry Pi OS apt "
            f"and create the venv with --system-site-packages ({exc})") from None
    return Picamera2


class PicameraSource(SourceBase):
    """Frames from a Raspberry Pi camera module (Picamera2 / libcamera).

    ``factory`` builds the camera object from a camera number; it defaults to the real
    ``Picamera2`` class, imported when the source opens. Tests pass a fake class.
    ``read()`` blocks until the next frame (the camera paces the loop at ``config.fps``) and
    raises ``HardwareError`` if none arrives within ``config.timeout_s``.
    """

    def __init__(self, config: CameraConfig | None = None,
                 factory: Callable[[int], Any] | None = None) -> None:
        super().__init__()
        self.config = config or CameraConfig()
        self.name = f"camera {self.config.camera}"
        self._factory = factory
        self._cam: Any = None
        self._warned_unsupported: frozenset[str] = frozenset()

    def _open(self) -> None:
        cfg = self.config
        factory = self._factory or _picamera2_class()
        self._cam = cam = factory(cfg.camera)
        controls = self._supported(cfg.controls(), getattr(cam, "camera_controls", None))
        config = cam.create_video_configuration(
            main={"size": cfg.main_size, "format": "YUV420"},
            lores={"size": cfg.lores_size, "format": "YUV420"},
            controls=controls,
            buffer_count=cfg.buffer_count,
            display=None,  # no preview window and no encoder: nothing else touches the frames
            encode=None,
        )
        cam.configure(config)
        cam.start()
        log.info("%s: started, lores %dx%d at %s fps, focus %s", self.name, *cfg.lores_size,
                 cfg.fps, cfg.focus)

    def _supported(self, controls: dict[str, Any], available: dict | None) -> dict[str, Any]:
        """Drop controls the camera does not advertise (Picamera2 raises on them)."""
        if available is None:
            return controls
        dropped = frozenset(k for k in controls if k not in available)
        if dropped and dropped != self._warned_unsupported:
            # e.g. AfMode on a fixed-focus module: say so once, not on every re-open
            log.warning("%s: camera has no %s control(s); ignoring them", self.name,
                        ", ".join(sorted(dropped)))
            self._warned_unsupported = dropped
        return {k: v for k, v in controls.items() if k not in dropped}

    def _read(self) -> np.ndarray:
        if self._cam is None:
            raise HardwareError(f"{self.name}: not started")
        w, h = self.config.lores_size
        try:
            # wait=<seconds> makes a stalled camera raise TimeoutError instead of blocking forever
            yuv = self._cam.capture_array("lores", wait=self.config.timeout_s)
        except TimeoutError:
            raise HardwareError(f"{self.name}: no frame within {self.config.timeout_s} s") from None
        if not isinstance(yuv, np.ndarray) or yuv.ndim != 2 or yuv.shape[0] < h or yuv.shape[1] < w:
            shape = getattr(yuv, "shape", type(yuv).__name__)
            raise HardwareError(f"{self.name}: unexpected lores buffer {shape} for {w}x{h} YUV420")
        return yuv[:h, :w]  # the Y plane; rows may be padded to a wider stride

    def _close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            cam.stop()
        finally:
            cam.close()
        log.info("%s: stopped", self.name)
