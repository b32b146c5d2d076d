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
0 manual, 1 auto, 2 continuous; AfRange 0 normal, 1 macro, 2 full; AfMetering 0 auto,
1 windows; AfTrigger 0 start; AfSpeed 0 normal, 1 fast; AeExposureMode 0 normal, 1 short,
2 long).

Reading at the door (issue 15, ``docs/decoders.md``): each frame is one request
(``capture_request``), its lores Y plane decoded; the request is held until the next frame so
that :meth:`PicameraSource.read_full_crop` gives the
:class:`~passgate.hardware.reader.FullCropReader` the region of a candidate from the *same*
exposure's ``main`` stream (a ``MappedArray`` view: only the crop is copied). The main stream
is 1728x1296 by default (the Camera Module 3's 2x2-binned mode at its own pitch over a 4:3
``ScalerCrop``, set before start so lores, main and the autofocus windows share one field), and
:meth:`PicameraSource.on_candidate` points a one-shot autofocus at it (``af_on_candidate``:
``AfMode`` auto, ``AfMetering`` windows, ``AfWindows`` on the candidate in ScalerCrop
coordinates, ``AfTrigger`` start), returning to the fixed lens position when it has gone.
Not run on hardware either: how long a triggered scan takes on a Camera Module 3 at 15 cm,
whether ``AeExposureMode`` short keeps exposures under 10 ms indoors, that libcamera picks the
binned mode for a 1728x1296 main stream (``sensor_size`` pins it), that ``ScalerCrop`` set
before ``start()`` applies from the first frame, and the CPU of ``MappedArray`` crops there.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from passgate.errors import HardwareError
from passgate.hardware.camera.base import SourceBase
from passgate.options.declare import check, option
from passgate.options.validators import (
    BadValue,
    valid_bool,
    valid_choice,
    valid_float_range,
    valid_float_span,
    valid_int_range,
    valid_path,
    valid_size,
)

log = logging.getLogger(__name__)

METERING = {"centre": 0, "spot": 1, "matrix": 2}
FOCUS = ("manual", "continuous", "fixed")
AF_RANGE = {"normal": 0, "macro": 1, "full": 2}
AF_MANUAL, AF_AUTO, AF_CONTINUOUS = 0, 1, 2
AF_METERING_WINDOWS, AF_TRIGGER_START = 1, 0
AE_MODE = {"normal": 0, "short": 1, "long": 2}
AF_SPEED = {"normal": 0, "fast": 1}  # libcamera AfSpeedNormal, AfSpeedFast
AE_CUSTOM = 3  # AeExposureMode custom: the tuning's "custom" mode (max_exposure_us fills it)


@dataclass(frozen=True)
class CameraConfig:
    """The ``[camera]`` table of the config file, each key declared once, here.

    Sizes are ``(width, height)``. The lores stream is what gets decoded; the main stream
    exists because Picamera2 needs one and it picks the sensor mode and field of view
    (keep the two aspect ratios equal, or the lores image is stretched). ``source``, ``path``,
    ``loop`` and ``webcam_index`` choose the other frame sources (:func:`make_source
    <passgate.checkpoint.wiring.make_source>`); :class:`PicameraSource` reads the rest.

    Invalid values raise ``ConfigError`` naming the field; the config loader adds the file.
    """

    source: str = option(
        "picamera2", valid_choice("picamera2", "files", "webcam"), "frame source"
    )
    camera: int = option(
        0, valid_int_range(0, 7), "picamera2: camera number (a Pi 5 has two connectors)"
    )
    lores_size: tuple[int, int] = option(
        (640, 480), valid_size, "[width, height] of the decoded frames (picamera2 lores, webcam)"
    )
    # 1728x1296 over a 4:3 ScalerCrop is the Camera Module 3's 2x2-binned mode at its native
    # pixel pitch (2304x1296 at up to 56 fps): 1.35x the pixels per module of 1280x960, which
    # a pass still approaching lacks (docs/decoders.md). Only candidate crops are read from it.
    main_size: tuple[int, int] = option(
        (1728, 1296), valid_size,
        "picamera2 main stream (candidate crops): picks the sensor mode (same aspect ratio)",
    )
    sensor_size: tuple[int, int] | None = option(
        None, valid_size,
        "picamera2 sensor mode output size, e.g. [2304, 1296] (absent: libcamera picks it)",
    )
    # "lores": a centred ScalerCrop of the lores aspect ratio, so lores, main and the autofocus
    # windows share one field of view, and main's pixels are the sensor's own (no stretching).
    # "full": no ScalerCrop control (libcamera's default crop).
    scaler_crop: str = option(
        "lores", valid_choice("lores", "full"), "lores: a centred crop of the lores aspect ratio"
    )
    fps: float = option(15.0, valid_float_range(1, 120), "frames per second asked of the camera")
    # "manual": fixed LensPosition (Camera Module 3; continuous autofocus hunts for ~2 s at
    # 10-15 cm). "continuous": autofocus in af_range. "fixed": no focus control (v2, HQ).
    focus: str = option(
        "manual",
        valid_choice(*FOCUS),
        "manual: fixed lens_position (Camera Module 3); continuous: autofocus; fixed: no lens",
    )
    lens_position: float = option(
        6.7,
        valid_float_range(0.0, 32.0),
        "manual focus in dioptres (1/metres): 6.7 focuses at 15 cm",
    )
    af_range: str = option("normal", valid_choice(*AF_RANGE), "continuous focus range")
    # libcamera's AfSpeed picks one of the two parameter sets of the tuning file's rpi.af
    # (IMX708: "normal" slews the lens at most 1.5 dioptres a frame, "fast" 2.0, manual
    # LensPosition moves included; a triggered PDAF scan runs 20 or 16 frames, settling 5 or 4
    # frames once within 0.125 dioptres). Measured with a model of that algorithm, read from
    # libcamera's source (docs/decoders.md, fourth round): with the held trigger fast read 1
    # more of 800 in time, none fewer (before the model's one-frame latency); not run on a Pi.
    af_speed: str = option(
        "fast", valid_choice(*AF_SPEED),
        "lens speed (libcamera AfSpeed): normal, or fast (larger steps, shorter scans)",
    )
    metering: str = option("centre", valid_choice(*METERING), "exposure metering mode")
    exposure_value: float = option(
        0.0,
        valid_float_range(-8, 8),
        "exposure compensation in stops (bright phone screens: -1)",
    )
    # "short": the AE trades exposure time for gain: less motion blur from a moving hand,
    # more noise in dim light. Default with af_on_candidate and the 1728x1296 main stream:
    # measured better than fixed focus and normal exposure (docs/decoders.md).
    ae_mode: str = option("short", valid_choice(*AE_MODE), "exposure mode: normal, short, long")
    # The exposure-time cap the presentation model measures (8 ms: docs/decoders.md), made
    # explicit: the sensor's tuning file is loaded at open and its AGC "custom" exposure mode
    # replaced by one that raises the exposure time to this cap at gain 1, then only the gain;
    # AeExposureMode custom then selects it. How far "short" goes is the tuning file's say,
    # not measured on a Pi. If the tuning cannot be loaded or changed, ae_mode is used (said
    # in the log). Absent: ae_mode alone.
    max_exposure_us: int | None = option(
        8000, valid_int_range(100, 1_000_000),
        "cap on the automatic exposure time in microseconds (then the gain rises instead); "
        "absent: ae_mode decides",
    )
    candidate_crop: bool = option(
        True, valid_bool, "decode a full-resolution main-stream crop around a candidate"
    )
    af_on_candidate: bool = option(
        True, valid_bool, "focus: manual or continuous, plus one autofocus scan on a held candidate"
    )
    # A triggered scan on the Camera Module 3 is libcamera's PDAF loop (rpi.af: 16-20 frames
    # that re-measure the phase every frame), so a scan started while a pass still approaches
    # follows it instead of focusing where it was (docs/decoders.md, fourth round). "first":
    # trigger on the first frame of a candidate at most half the frame across (a pass, not a
    # frame-wide change), then as "held" does, the running scan's window following the
    # candidate; "held": only once the candidate is held. Measured in that model with fast:
    # 796/800 read within 0.5 s with the brighter illuminator, against 792/800 for normal and
    # "held" (docs/decoders.md, fourth round after its review); 800/800 once the reader kept
    # the candidate through the illuminator's overexposed frames (reader.CARRY_FRAMES, fifth
    # round); not run on a Pi.
    af_trigger: str = option(
        "first", valid_choice("held", "first"),
        "when the autofocus scan starts: held (the candidate held still) or first (its first "
        "frame, if it is at most half the frame across; then again when held)",
    )
    # Focus from the symbol's size (issue 15, third round; docs/decoders.md): a symbol located
    # but not read (at 640x480, or in the candidate's main-stream crop) has a side in pixels,
    # and with the range of printed and phone pass sizes that bounds its distance. The lens is
    # set there at once (AfMode manual, one LensPosition) instead of waiting at lens_position
    # for the held candidate's scan, which then starts from there. The estimate takes the
    # harmonic mean of symbol_mm: whatever the size within the range, the defocus it leaves is
    # at most about 1 module (the decoder reads up to about 1.2), at any distance.
    focus_from_size: bool = option(
        True, valid_bool,
        "focus: manual, plus the lens set from a located symbol's size while it approaches",
    )
    symbol_mm: tuple[float, float] = option(
        (30.0, 56.0), valid_float_span(5.0, 500.0),
        "[smallest, largest] side in mm of the QR symbols shown (finder to finder, no quiet "
        "zone): printed passes and phone screens",
    )
    focal_length_px: float = option(
        3386.0, valid_float_range(100.0, 100_000.0),
        "the lens's focal length in sensor pixels: Camera Module 3 4.74 mm / 1.4 um = 3386 "
        "(the Wide: 2.75 mm, 1964)",
    )
    exposure_time_us: int | None = option(
        None,
        valid_int_range(1, 10_000_000),
        "fixed shutter time in microseconds (absent: automatic)",
    )
    analogue_gain: float | None = option(
        None, valid_float_range(1, 64), "fixed analogue gain (absent: automatic)"
    )
    timeout_s: float = option(
        2.0, valid_float_range(0.1, 60), "a frame that takes longer than this is a camera fault"
    )
    buffer_count: int = option(4, valid_int_range(2, 16), "picamera2 frame buffers")
    path: Path | None = option(
        None, valid_path, "files source: a folder of images or a video file"
    )
    loop: bool = option(False, valid_bool, "files source: start again after the last frame")
    webcam_index: int = option(
        0, valid_int_range(0, 63), "webcam source: V4L2 device number N of /dev/videoN"
    )

    def __post_init__(self) -> None:
        check(self, rules=self._rules)  # errors say "fps: ...", as they always have here

    def _rules(self) -> None:
        if self.lores_size[0] > self.main_size[0] or self.lores_size[1] > self.main_size[1]:
            raise BadValue("lores_size", f"{self.lores_size} must not exceed "
                           f"main_size {self.main_size}")
        if self.max_exposure_us is not None and self.max_exposure_us > self.frame_duration_us:
            raise BadValue("max_exposure_us", f"{self.max_exposure_us} is longer than a frame "
                           f"at {self.fps} fps ({self.frame_duration_us} us)")
        if self.exposure_time_us is not None and self.exposure_time_us > self.frame_duration_us:
            raise BadValue("exposure_time_us", f"{self.exposure_time_us} is longer than a frame "
                           f"at {self.fps} fps ({self.frame_duration_us} us)")
        if self.source == "files" and self.path is None:
            raise BadValue(
                "source", "the files source needs camera.path (a folder of images or a video)"
            )

    @property
    def frame_duration_us(self) -> int:
        return round(1_000_000 / self.fps)

    def controls(self, capped: bool = False) -> dict[str, Any]:
        """The libcamera controls this config asks for (before dropping unsupported ones).

        ``capped``: the tuning's custom exposure mode holds ``max_exposure_us`` (see
        :func:`capped_tuning`), so ``AeExposureMode`` custom takes the place of ``ae_mode``.
        """
        c: dict[str, Any] = {
            # Min = max pins the frame rate (FrameDurationLimits works on every picamera2;
            # the "FrameRate" shorthand does not exist in older releases).
            "FrameDurationLimits": (self.frame_duration_us, self.frame_duration_us),
            "AeMeteringMode": METERING[self.metering],
            "ExposureValue": float(self.exposure_value),
        }
        if capped:
            c["AeExposureMode"] = AE_CUSTOM
        elif self.ae_mode != "normal":
            c["AeExposureMode"] = AE_MODE[self.ae_mode]
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
        if self.focus != "fixed":
            c["AfSpeed"] = AF_SPEED[self.af_speed]
        return c


def capped_tuning(camera_class: Any, camera: int, max_us: int) -> dict[str, Any]:
    """The sensor's tuning file with its AGC "custom" exposure mode capped at ``max_us``.

    picamera2's documented way to change AGC limits: ``load_tuning_file("<model>.json")``,
    ``find_tuning_algo(tuning, "rpi.agc")``, edit its ``exposure_modes`` (in each of its
    ``channels`` where the file has them), then ``Picamera2(camera, tuning=tuning)``. The mode
    raises the exposure time to ``max_us`` at gain 1, then the gain up to the normal mode's
    highest (the modes are piecewise: exposure time to each step at the previous gain, then the
    gain to the step's). Raises ``HardwareError`` when the file or its AGC is not as expected.
    """
    try:
        model = camera_class.global_camera_info()[camera]["Model"]
        tuning = camera_class.load_tuning_file(f"{model}.json")
        agc = camera_class.find_tuning_algo(tuning, "rpi.agc")
        channels = agc.get("channels", [agc])
        for channel in channels:
            modes = channel["exposure_modes"]
            normal = modes["normal"]
            key = "shutter" if "shutter" in normal else "exposure"  # renamed in newer files
            top = max(float(g) for g in normal["gain"])
            modes["custom"] = {key: [100, max_us, max_us], "gain": [1.0, 1.0, top]}
    except Exception as exc:
        raise HardwareError(f"camera {camera}: cannot cap the exposure in the tuning file: "
                            f"{type(exc).__name__}: {exc}") from exc
    return dict(tuning)


TUNING_ENV = "LIBCAMERA_RPI_TUNING_FILE"


def open_tuned(camera_class: Any, camera: int, tuning: dict[str, Any]) -> Any:
    """``camera_class(camera)`` running with ``tuning``, or ``HardwareError`` (the stock tuning
    back in place) when that cannot be done.

    libcamera reads the tuning file named by ``LIBCAMERA_RPI_TUNING_FILE`` once, when its
    camera manager starts (the Raspberry Pi pipeline loads its IPA while it enumerates the
    cameras), and :func:`capped_tuning` has already started it (``global_camera_info``);
    ``Picamera2(tuning=...)`` only sets the variable and keeps a running manager (picamera2
    issue #886), so the manager is restarted with picamera2's ``_cm.reset()`` (what its own
    IMX708 helper does to reload the sensor). The file is removed and the variable cleared
    once the camera is made: a later start (a re-open after the manager went with the last
    camera) must not read a path that no longer exists, which would leave the camera out of
    the enumeration.
    """
    reset = getattr(getattr(camera_class, "_cm", None), "reset", None)
    if not callable(reset):
        raise HardwareError(f"camera {camera}: cannot cap the exposure: this picamera2 cannot "
                            "restart libcamera, which reads a tuning file only when it starts")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(tuning, f)
        f.flush()
        os.environ[TUNING_ENV] = f.name
        try:
            reset()
            return camera_class(camera, tuning=f.name)
        except Exception as exc:  # libcamera refused the tuning (or the camera is gone)
            os.environ.pop(TUNING_ENV, None)
            reset()  # the stock tuning again, for the open without the cap
            raise HardwareError(f"camera {camera}: cannot cap the exposure: the camera did "
                                f"not open with the capped tuning: {type(exc).__name__}: "
                                f"{exc}") from exc
        finally:
            os.environ.pop(TUNING_ENV, None)


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

    ``factory`` builds the camera object from a camera number (and ``tuning=`` when
    ``max_exposure_us`` is set: then it also needs picamera2's static ``global_camera_info``,
    ``load_tuning_file`` and ``find_tuning_algo``); it defaults to the real ``Picamera2``
    class, imported when the source opens. Tests pass a fake class.
    ``read()`` blocks until the next frame (the camera paces the loop at ``config.fps``) and
    raises ``HardwareError`` if none arrives within ``config.timeout_s``.
    """

    def __init__(self, config: CameraConfig | None = None,
                 factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.config = config or CameraConfig()
        self.name = f"camera {self.config.camera}"
        self._factory = factory
        self._cam: Any = None
        self._warned_unsupported: frozenset[str] = frozenset()
        self._af_window: tuple[int, int, int, int] | None = None  # where the last scan looked
        self._af_last: tuple[int, int, int, int] | None = None  # the previous frame's candidate
        self._sized: float | None = None  # dioptres on_symbol set the lens to, if it did
        self._crop: tuple[int, int, int, int] = (0, 0, *self.config.main_size)
        self._request: Any = None  # the last frame's request: its main stream gives crops
        self._mapped: Callable[..., Any] | None = None  # picamera2.MappedArray on a Pi
        self._capped = False  # the tuning's custom exposure mode holds max_exposure_us
        self._warned_cap = False

    def _open(self) -> None:
        cfg = self.config
        factory = self._factory or _picamera2_class()
        self._capped = False
        if cfg.max_exposure_us is not None:
            try:
                self._cam = open_tuned(factory, cfg.camera,
                                       capped_tuning(factory, cfg.camera, cfg.max_exposure_us))
                self._capped = True
            except HardwareError as exc:
                if not self._warned_cap:  # once, not on every re-open
                    log.warning("%s; exposure mode %s instead", exc, cfg.ae_mode)
                    self._warned_cap = True
        if not self._capped:
            self._cam = factory(cfg.camera)
        cam = self._cam
        available = getattr(cam, "camera_controls", None)
        controls = self._supported(cfg.controls(self._capped), available)
        extra: dict[str, Any] = {}
        if cfg.sensor_size is not None:
            extra["sensor"] = {"output_size": cfg.sensor_size}
        config = cam.create_video_configuration(
            main={"size": cfg.main_size, "format": "YUV420"},
            lores={"size": cfg.lores_size, "format": "YUV420"},
            controls=controls,
            buffer_count=cfg.buffer_count,
            display=None,  # no preview window and no encoder: nothing else touches the frames
            encode=None,
            **extra,
        )
        cam.configure(config)
        self._crop = self._scaler_crop()
        if cfg.scaler_crop == "lores" and (available is None or "ScalerCrop" in available):
            cam.set_controls({"ScalerCrop": self._crop})  # before start: from the first frame
        self._mapped = None if self._factory is not None else _mapped_array_class()
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
        self._release()  # the previous frame's buffers go back to the camera
        w, h = self.config.lores_size
        try:
            # wait=<seconds> makes a stalled camera raise TimeoutError instead of blocking forever.
            # One request per frame: lores and main of the *same* exposure, so a candidate's
            # crop shows the pass where the lores frame saw it (capture_array("main") after
            # the lores frame would wait for the next frame and drop one from the loop).
            request = self._cam.capture_request(wait=self.config.timeout_s)
        except TimeoutError:
            raise HardwareError(f"{self.name}: no frame within {self.config.timeout_s} s") from None
        try:
            yuv = request.make_array("lores")
        except BaseException:
            request.release()
            raise
        if self.config.candidate_crop:
            self._request = request  # held until the next read: one of buffer_count buffers
        else:
            request.release()
        if not isinstance(yuv, np.ndarray) or yuv.ndim != 2 or yuv.shape[0] < h or yuv.shape[1] < w:
            shape = getattr(yuv, "shape", type(yuv).__name__)
            raise HardwareError(f"{self.name}: unexpected lores buffer {shape} for {w}x{h} YUV420")
        return yuv[:h, :w]  # the Y plane; rows may be padded to a wider stride

    def read_full_crop(self, box: tuple[int, int, int, int]) -> np.ndarray | None:
        """The region ``box`` (x0, y0, x1, y1 in lores pixels) of the same frame's main stream.

        From the request the last ``read()`` took, so the same exposure as the lores frame;
        on a Pi only the crop is copied out of the main buffer (``MappedArray``: a view of
        it), not the whole 3.4 MB. None when ``candidate_crop`` is off or no frame is held.
        Raises ``HardwareError`` (the reader treats that as nothing found).
        """
        request = self._request
        if not self.config.candidate_crop or self._cam is None or request is None:
            return None
        (w, h), (mw, mh) = self.config.lores_size, self.config.main_size
        sx, sy = mw / w, mh / h
        x0, y0, x1, y1 = box
        rows, cols = slice(int(y0 * sy), int(y1 * sy)), slice(int(x0 * sx), int(x1 * sx))
        try:
            if self._mapped is not None:
                with self._mapped(request, "main") as m:
                    yuv = m.array
                    _check_main(self.name, yuv, mh)
                    return np.array(yuv[rows, cols])  # the crop only, out of the DMA buffer
            yuv = request.make_array("main")
        except HardwareError:
            raise
        except Exception as exc:
            raise HardwareError(f"{self.name}: main stream crop failed: {exc}") from exc
        _check_main(self.name, yuv, mh)
        return yuv[rows, cols]

    def _release(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            try:
                request.release()
            except Exception as exc:  # the camera is going or gone: its close says so
                log.warning("%s: releasing a frame failed: %s", self.name, exc)

    def on_candidate(self, box: tuple[int, int, int, int] | None) -> None:
        """One autofocus scan on the candidate ``box`` (lores pixels) once it is held; None: back.

        Only with ``af_on_candidate`` and a lens to move. While a pass approaches its box grows
        and moves from frame to frame; a scan modelled as landing where the pass *was* cost more
        reads than it saved (first round), so with ``af_trigger`` "held" the lens stays at
        ``lens_position`` (or where :meth:`on_symbol` put it) until the candidate is *held*
        (:func:`_held`: about the same size and place in two frames in a row), then one scan
        is triggered on its window; another only when it moves by more than half its size, or
        grows or shrinks by more than ``REFOCUS_SIZE`` (a slow approach can look held on its
        first frames), and is held again. With "first", a candidate's first frame triggers a
        scan if its box is small (:data:`FIRST_MAX`): libcamera's triggered scan on the Camera
        Module 3 is a phase-detect loop that re-measures every frame for 16-20 frames, so it
        follows the approach (libcamera ignores a trigger while one runs); its ``AfWindows``
        then follows the candidate each frame it moves, since the phase is measured there.
        When it has gone, the lens returns to ``lens_position``.
        """
        cfg = self.config
        if cfg.focus == "fixed" or self._cam is None:
            return
        previous, self._af_last = self._af_last, box
        if box is None:
            # Gone at the first frame without a candidate. (Measured in the third round: waiting
            # 0.5 s instead kept a scan's wrong focus under a pass it had missed, and read 2
            # fewer of 168 as-shipped presentations within 0.5 s; docs/decoders.md.)
            if self._af_window is not None or self._sized is not None:
                self._af_window = self._sized = None
                self._set(cfg.controls(self._capped))  # the idle focus again
            return
        if not cfg.af_on_candidate:
            return
        if cfg.af_trigger == "first" and self._af_window is None and self._small(box):
            self._trigger(box)  # PDAF follows it while it approaches
            return
        # Still approaching (or just appeared): the lens waits (or follows its size). Held:
        # a scan, unless one already looked there.
        if previous is not None and _held(previous, box) and (
                self._af_window is None or _moved(self._af_window, box)):
            self._trigger(box)
            return
        if cfg.af_trigger == "first" and self._af_window is not None and box != previous:
            # The scan measures its phase in its window: keep the window on the pass while it
            # moves (libcamera applies AfWindows to a running scan), or the scan started on
            # the first frame would measure where the pass was, background by then (review).
            self._set({"AfWindows": [self._sensor_rect(box)]})

    def _trigger(self, box: tuple[int, int, int, int]) -> None:
        self._af_window = box
        self._set({"AfMode": AF_AUTO, "AfMetering": AF_METERING_WINDOWS,
                   "AfWindows": [self._sensor_rect(box)], "AfTrigger": AF_TRIGGER_START})

    def _small(self, box: tuple[int, int, int, int]) -> bool:
        """At most ``FIRST_MAX`` of the lores frame across, each way (not a frame-wide change)."""
        w, h = self.config.lores_size
        return box[2] - box[0] <= FIRST_MAX * w and box[3] - box[1] <= FIRST_MAX * h

    def symbol_dioptres(self, side: float) -> float:
        """Where to focus for a located symbol ``side`` lores pixels across (dioptres).

        Its distance is ``f * s / side`` for a symbol ``s`` mm across, ``f`` the focal length
        in lores pixels (``focal_length_px`` over the ``ScalerCrop``'s width); ``s`` is taken
        as the harmonic mean of ``symbol_mm``. Defocus in modules is proportional to ``|1 -
        d / focus| / s``, so for any symbol in the range it is at most that of the range's two
        ends, which the harmonic mean makes equal (30-56 mm: 0.23 / 30 mm, about 1 module of
        blur circle for a version-8 pass at f/1.8), whatever the distance. Clamped to the
        lens's ``LensPosition`` range (0-15 dioptres when the camera does not say).
        """
        lo, hi = self.config.symbol_mm
        mm = 2 * lo * hi / (lo + hi)
        focal = self.config.focal_length_px * self.config.lores_size[0] / self._crop[2]
        dioptres = 1000.0 * max(side, 1.0) / (focal * mm)
        low, high = 0.0, 15.0
        limits = (getattr(self._cam, "camera_controls", None) or {}).get("LensPosition")
        if isinstance(limits, tuple) and len(limits) >= 2 and all(
                isinstance(v, int | float) for v in limits[:2]):
            low, high = float(limits[0]), float(limits[1])
        return min(max(dioptres, low), high)

    def on_symbol(self, side: float) -> None:
        """Set the lens from a located symbol's size (lores pixels), until a scan takes over.

        Only with ``focus_from_size`` and ``focus`` manual: ``AfMode`` manual and the
        ``LensPosition`` of :meth:`symbol_dioptres`, one lens move (the IMX708's VCM slews 1.5
        dioptres a frame in libcamera's tuning). Not while a scan triggered on the held
        candidate runs or has landed (``AfMode`` manual would cancel it: the scan starts from
        where this put the lens, and ends sharper); again when it differs from the last by
        ``FOCUS_STEP`` or more (the pass approaches). ``on_candidate(None)`` puts the lens back.
        """
        cfg = self.config
        if not cfg.focus_from_size or cfg.focus != "manual" or self._cam is None:
            return
        if self._af_window is not None or self._af_last is None:
            return  # a scan has the lens, or no candidate is in view (a late crop: ignore)
        dioptres = self.symbol_dioptres(side)
        last = cfg.lens_position if self._sized is None else self._sized
        if abs(dioptres - last) < FOCUS_STEP:
            return
        self._sized = dioptres
        self._set({"AfMode": AF_MANUAL, "LensPosition": round(dioptres, 2)})

    def _scaler_crop(self) -> tuple[int, int, int, int]:
        """The sensor region (x, y, w, h) the streams show: with ``scaler_crop`` "lores" the
        largest centred rectangle of the lores aspect ratio in ``ScalerCropMaximum`` (4:3 on
        the Camera Module 3's 16:9 sensor: 3456x2592 of 4608x2592), else all of it."""
        props = getattr(self._cam, "camera_properties", None) or {}
        cx, cy, cw, ch = props.get("ScalerCropMaximum", (0, 0, *self.config.main_size))
        if self.config.scaler_crop != "lores":
            return (cx, cy, cw, ch)
        w, h = self.config.lores_size
        if cw * h > ch * w:  # wider than the lores frame: trim the sides
            nw = ch * w // h
            return (cx + (cw - nw) // 2, cy, nw, ch)
        nh = cw * h // w
        return (cx, cy + (ch - nh) // 2, cw, nh)

    def _sensor_rect(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``box`` in lores pixels as (x, y, w, h) in ScalerCrop (sensor) coordinates."""
        cx, cy, cw, ch = self._crop
        w, h = self.config.lores_size
        x0, y0, x1, y1 = box
        return (int(cx + x0 * cw / w), int(cy + y0 * ch / h), max(int((x1 - x0) * cw / w), 1),
                max(int((y1 - y0) * ch / h), 1))

    def _set(self, controls: dict[str, Any]) -> None:
        available = getattr(self._cam, "camera_controls", None)
        wanted = self._supported(controls, available)
        if wanted:
            self._cam.set_controls(wanted)

    def _close(self) -> None:
        self._af_window = self._af_last = self._sized = None
        self._release()
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            cam.stop()
        finally:
            cam.close()
        log.info("%s: stopped", self.name)


def _mapped_array_class() -> Callable[..., Any] | None:
    """picamera2's ``MappedArray`` (a numpy view of a request's buffer), if there is one."""
    try:
        from picamera2 import MappedArray
    except ImportError:
        return None  # then crops come from request.make_array("main"): a whole-buffer copy
    return MappedArray


def _check_main(name: str, yuv: Any, height: int) -> None:
    if not isinstance(yuv, np.ndarray) or yuv.ndim != 2 or yuv.shape[0] < height:
        raise HardwareError(f"{name}: unexpected main buffer {getattr(yuv, 'shape', '')}")


def _held(old: tuple[int, int, int, int], new: tuple[int, int, int, int]) -> bool:
    """True when ``new`` is within 15% of ``old``'s size and a quarter of it from its place."""
    size_old = max(old[2] - old[0], old[3] - old[1], 1)
    size_new = max(new[2] - new[0], new[3] - new[1], 1)
    dx = (new[0] + new[2] - old[0] - old[2]) / 2
    dy = (new[1] + new[3] - old[1] - old[3]) / 2
    return abs(size_new / size_old - 1) <= 0.15 and max(abs(dx), abs(dy)) <= size_old / 4


FIRST_MAX = 0.5  # af_trigger "first": a candidate box at most this share of the frame each way
FOCUS_STEP = 0.25  # dioptres: a smaller change of the size's estimate does not move the lens
REFOCUS_SIZE = 0.2  # a held candidate this much larger or smaller than the scanned one


def _moved(old: tuple[int, int, int, int], new: tuple[int, int, int, int]) -> bool:
    """True when ``new``'s centre is more than half ``old``'s size from ``old``'s centre, or
    its size differs from ``old``'s by more than ``REFOCUS_SIZE`` (it moved in depth: a
    pass held still after a slow approach whose first frames already looked held)."""
    size = max(old[2] - old[0], old[3] - old[1], 1)
    size_new = max(new[2] - new[0], new[3] - new[1], 1)
    dx = (new[0] + new[2] - old[0] - old[2]) / 2
    dy = (new[1] + new[3] - old[1] - old[3]) / 2
    return max(abs(dx), abs(dy)) > size / 2 or abs(size_new / size - 1) > REFOCUS_SIZE
