"""Presentation corpus: sequences of 15 fps frames of a pass held up at the door, and empty ones.

A person holds a pass up for about a second, moving; what counts is whether the presentation is
read and how soon, not one frame. Deterministic: presentation ``i`` is drawn from
``numpy.random.default_rng([seed, i])``; PIL and numpy only, nothing downloaded.

Physics-ish model of a Camera Module 3 (f = 4.74 mm at f/1.8, 66 deg horizontal field of
view, lens fixed at ``FOCUS_MM``) giving a 640x480 lores frame and a main stream over the
same field at ``--main`` (default 2304x1728, the sensor's 2x2-binned pitch):

- **pixels per module** = focal length in pixels x module size / distance. A pass's symbol
  (49 modules + quiet zone) is 35-65 mm on paper, 40-60 mm on a phone;
- **trajectory**: the pass enters from an edge at 250-400 mm, approaches for 0.15-0.5 s to a
  holding distance of 90-200 mm, then is held with a hand tremor (2-5 Hz, 1-6 mm, sideways and in
  depth); in a quarter the person keeps moving it (a wave peaking at 40-120 mm/s);
- **motion blur** = image speed x exposure time (the frame is the mean of sub-exposure poses);
  exposure 4-10 ms in good light, 20-33 ms in dim light, or ``max_exposure_ms`` when the
  camera limits it (then gain, so noise, rises unless the illuminator lights the scene);
- **defocus** = blur circle of the aperture, ``D f |1/d - 1/FOCUS_MM|``, on the sensor;
  autofocus on the candidate (``--cameras af``, :func:`af_focus`) leaves the lens at
  ``FOCUS_MM`` until the pass is held, then one 0.2 s scan focuses at its distance;
- **the lens waits** at ``--lens-mm`` (the idle ``lens_position``; 150 mm, 6.7 dioptres);
- **the firmware's own focus** (``--cameras af-fw``, ``size``: :class:`LensModel`): the real
  ``PicameraSource`` hears the reader's candidates and located symbol sizes frame by frame and
  sets its controls on a fake ``Picamera2``; a control lands ``LENS_DELAY`` frames later, a
  ``LensPosition`` slews ``max_slew`` dioptres a frame, a triggered scan is libcamera's
  ``rpi.af`` PDAF loop with the IMX708 tuning's parameters (``AF_SPEEDS``; ``--af-model
  fixed``: the third round's scan, ``AF_SCAN_S`` later at the pass's distance then); ``fast``
  asks for ``AfSpeed`` fast, ``first`` for ``af_trigger = "first"``;
- **the brighter illuminator** (``--cameras ...+bright``): ``BRIGHT_LED`` (2.5) times the light
  of the first one at the pass, so the AE's exposure there is 1.6-4 ms at gain 1; in good light
  it is lit by the first candidate frame, so the frames before are unlit and the next
  ``AE_DELAY`` frames overexposed (LED and ambient light on the unlit exposure, clipped);
- **surfaces**: paper, a phone (light or dark mode) with a glare spot half the time;
- **backgrounds**: a textured desk, a printed text page, a regular pattern, a linear barcode.

Live codes (``--code live``, spec 1.2): the holder app's code, QR version 12 at ECC M or 11 at
``--ecc l`` (73 or 69 modules with the quiet zone, against 57 for a typical pass), shown full
width on a phone (``--surfaces phone``: light or dark mode, glare half the time) at 45-62 mm
(a phone's screen is 62-72 mm wide), held at the same distances: fewer pixels per module than a
pass of version 8 at the same size.

Empty sequences show the same backgrounds, half with a hand holding a blank page or a blank
phone. The bench (``python bench/presentations.py``) decodes every frame with the real
decoder in two ways (lores only; lores plus a full-resolution crop on a candidate, the
:mod:`passgate.hardware.reader`) and prints the share read, read within 0.5 s, time to the
verdict, the idle cost per empty frame beside bare zxing-cpp in the same run, misreads and
false positives.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure as measure_mod  # noqa: E402
from passgate.hardware.camera import synth  # noqa: E402

FPS = 15.0
LORES = (640, 480)
# The main stream over the lores field at the Camera Module 3's 2x2-binned pitch (2.8 um): the
# shipped [camera] main_size 1728x1296 over a 4:3 ScalerCrop gives the same pixels per module
MAIN = (2304, 1728)
FOCUS_MM = 150.0
F_MM, APERTURE_MM, SENSOR_W_MM = 4.74, 4.74 / 1.8, 6.45
SYMBOL = 57  # modules across the symbol with its quiet zone (version 8: 49 + 2 x 4)
FRAMES = 18  # 1.2 s: the pass is in view for about a second


@dataclass(frozen=True)
class Presentation:
    """One presentation's parameters; :func:`render` draws its frames."""

    index: int
    has_pass: bool
    surface: str  # paper, phone, phone_dark
    backdrop: str  # desk, text, pattern, barcode
    symbol_mm: float
    start_mm: float
    hold_mm: float
    approach_s: float
    enter_frame: int
    tremor_mm: float
    tremor_hz: float
    wave_mm_s: float
    exposure_ms: float
    gain: float  # how far the exposure is short of what the light wants (noise grows with it)
    dim: bool
    glare: bool
    angle_deg: float
    tilt_deg: float
    seed: int
    modules_across: int = SYMBOL  # the symbol's width in modules, quiet zone included
    # The brighter illuminator in good light (it is lit by the candidate, not beforehand):
    # before ``led_frame`` the exposure is ``unlit_exposure_ms`` at ``unlit_gain``; from it the
    # LED is lit but the AE's shorter exposure lands AE_DELAY frames later, so those frames
    # are ``1 + light`` times overexposed (clipped). 0: no switch (lit all along, or never).
    unlit_exposure_ms: float = 0.0
    unlit_gain: float = 1.0
    led_frame: int = 0
    light: float = 1.0


def draw(index: int, seed: int = 1, empty_share: float = 0.2, max_exposure_ms: float | None = None,
         illuminator: bool = False, phone_only: bool = False,
         phone_mm: tuple[float, float] = (40, 60), modules_across: int = SYMBOL,
         light: float = 1.0) -> Presentation:
    """Presentation ``index``; ``light``: how many times the good-light illuminance the
    illuminator gives (``BRIGHT_LED``: the exposure the AE wants shrinks by it, gain stays 1)."""
    rng = np.random.default_rng([seed, index])
    dark = bool(rng.random() < 0.35)
    dim = dark and not illuminator
    wanted = float(rng.uniform(20, 33) if dim else rng.uniform(4, 10))
    cap = math.inf if max_exposure_ms is None else max_exposure_ms
    switch: dict[str, float] = {}
    if illuminator and light != 1.0 and not dark:  # good light: the LED comes with the pass
        unlit = min(wanted, cap)
        switch = {"unlit_exposure_ms": unlit, "unlit_gain": wanted / unlit, "light": light}
    if illuminator:
        wanted /= light
    exposure = min(wanted, cap)
    surface = str(rng.choice(["paper", "paper", "phone", "phone_dark"]))
    if phone_only and surface == "paper":  # the same draws, so runs stay comparable
        surface = "phone" if index % 2 else "phone_dark"
    drawn = Presentation(
        index=index, has_pass=bool(rng.random() >= empty_share), surface=surface,
        backdrop=str(rng.choice(["desk", "text", "pattern", "barcode"])),
        symbol_mm=float(rng.uniform(35, 65) if surface == "paper" else rng.uniform(*phone_mm)),
        start_mm=float(rng.uniform(250, 400)), hold_mm=float(rng.uniform(90, 200)),
        approach_s=float(rng.uniform(0.15, 0.5)), enter_frame=int(rng.integers(1, 4)),
        tremor_mm=float(rng.uniform(1, 6)), tremor_hz=float(rng.uniform(2, 5)),
        wave_mm_s=float(rng.uniform(40, 120) if rng.random() < 0.25 else 0.0),
        exposure_ms=exposure, gain=wanted / exposure, dim=dim, glare=bool(rng.random() < 0.5),
        angle_deg=float(rng.uniform(-30, 30)), tilt_deg=float(rng.uniform(0, 25)),
        seed=int(rng.integers(1 << 30)), modules_across=modules_across)
    if switch:  # lit on the frame after the first candidate frame (the entry: it moves)
        return dataclasses.replace(drawn, led_frame=drawn.enter_frame + 1, **switch)
    return drawn


AE_DELAY = 2  # frames from a new exposure asked for to the first frame taken with it


def at_frame(p: Presentation, i: int) -> tuple[Presentation, float]:
    """``p`` with frame ``i``'s exposure and gain, and how many times overexposed it is."""
    if not p.unlit_exposure_ms or i >= p.led_frame + AE_DELAY:
        return p, 1.0
    unlit = dataclasses.replace(p, exposure_ms=p.unlit_exposure_ms, gain=p.unlit_gain)
    # LED and ambient light together: 1 + light times the light the unlit exposure was set for
    return unlit, (1.0 + p.light if i >= p.led_frame else 1.0)


def focal_px(width: int) -> float:
    return F_MM / SENSOR_W_MM * width


def px_per_module(p: Presentation, distance_mm: float, width: int = LORES[0]) -> float:
    return focal_px(width) * p.symbol_mm / p.modules_across / distance_mm


def defocus_sigma(distance_mm: float, focus_mm: float, width: int = LORES[0]) -> float:
    """Gaussian sigma in pixels of the blur circle of a pass at ``distance_mm``."""
    circle_mm = APERTURE_MM * F_MM * abs(1 / distance_mm - 1 / focus_mm)
    return circle_mm / SENSOR_W_MM * width / 2.4


# The brighter illuminator (--cameras bright): 2.5x the illuminance of good indoor light at
# the pass, so the 4-10 ms the AE wants there becomes 1.6-4 ms and a 4 ms limit needs no gain
# (about 2,000 lux at 20 cm: see docs/decoders.md)
BRIGHT_LED = 2.5
AF_SCAN_S = 0.2  # a one-shot autofocus scan, trigger to lens in place
AF_FOLLOW = False  # --cameras af-follow: the earlier model (see af_focus)


def af_focus(p: Presentation, t: float) -> float:
    """Where the lens focuses at ``t`` with ``af_on_candidate`` (the firmware's policy).

    The lens waits at ``FOCUS_MM`` (``lens_position``) while the pass approaches; when its
    candidate stops growing and moving (held: the first frame after the approach ends) one scan
    is triggered, and ``AF_SCAN_S`` later the lens is at the distance the pass had then. With
    ``AF_FOLLOW`` (the model before: a scan on every move), the focus follows the pass
    ``AF_SCAN_S`` late from its first frame, starting at its entry distance.
    """
    if LENS is not None:
        return LENS.focus_mm(p, t)
    if AF_FOLLOW:
        return state(p, max(t - AF_SCAN_S, 0.0))[0]
    if AF_RULE:
        return rule_focus(p, t)
    held = math.ceil(p.approach_s * FPS - 1e-9) / FPS
    return FOCUS_MM if t < held + AF_SCAN_S else state(p, held)[0]


# Lens moves asked for with set_controls (--cameras af-fw, size): the first frame taken with
# the new position is LENS_DELAY frames after the frame whose candidate asked for it (as the
# AE's AE_DELAY: a control rides on a request queued after the ones already in flight; in
# libcamera's Raspberry Pi IPA, LensPosition, AfTrigger and AfSpeed are all applied by
# applyControls when that request reaches prepareIsp), and the lens then slews at most
# max_slew dioptres a frame (rpi.af's updateLensPosition, in every mode)
LENS_DELAY = 2

# libcamera's rpi.af speed parameters for the IMX708 (src/ipa/rpi/{pisp,vc4}/data/imx708.json,
# identical in both, raspberrypi/libcamera 26bfadc6): what a triggered PDAF scan uses
AF_SPEEDS: dict[int, dict[str, float]] = {
    0: {"max_slew": 1.5, "pdaf_gain": -0.016, "pdaf_squelch": 0.125, "pdaf_frames": 20,
        "step_frames": 5},  # AfSpeedNormal
    1: {"max_slew": 2.0, "pdaf_gain": -0.02, "pdaf_squelch": 0.125, "pdaf_frames": 16,
        "step_frames": 4},  # AfSpeedFast
}
# The pdaf_gain that turns the sensor's phase into exactly the dioptres the lens is off (the
# phase's calibration is not in the source). -0.02 is rpi.af's own default, "assuming IMX708
# in a Raspberry Pi V3 camera"; with it the normal speed corrects 80% of the error a frame and
# the fast one all of it. --pdaf-full-gain 0.016 makes the normal one exact (fast then
# overshoots by 25%, and rings down).
PDAF_FULL_GAIN = 0.02
# Frames from the frame whose phase is measured to the first frame exposed with the lens moved
# by it (--pdaf-latency). libcamera reads a frame's PDAF data after that frame was exposed
# (ipa_base.cpp prepareIsp -> Af::prepare), so a correction can reach the next frame at the
# soonest: 1 is the best a real loop can do. 0 (the fourth round's first figures) drew each
# frame with the lens its own phase had already corrected: optimistic (review, 2026-12-07).
PDAF_LATENCY = 1
# "pdaf": a triggered scan is rpi.af's PDAF loop (af.cpp doPDAF/doAF), frame by frame, on the
# pass's distance on each frame; "fixed": the model before (AF_SCAN_S after the trigger, the
# lens at the distance the pass had on the trigger's frame)
AF_MODEL = "pdaf"


class LensModel:
    """The Camera Module 3's lens driven by the firmware's own :class:`PicameraSource`.

    A fake ``Picamera2`` records every ``set_controls`` with the frame it was asked on; the real
    ``on_candidate`` (the held-candidate scan) and ``on_symbol`` (focus from the symbol's size)
    decide, from the reader's own candidates frame by frame. Each control takes effect
    ``LENS_DELAY`` frames after the frame that asked. ``LensPosition`` (manual): the lens slews
    towards it at the speed's ``max_slew`` dioptres a frame. ``AfTrigger`` start in ``AfMode``
    auto, with ``AF_MODEL`` "pdaf": libcamera's triggered PDAF scan (``rpi.af``, ``af.cpp``
    ``startAF``, ``doAF``, ``doPDAF``): for up to ``pdaf_frames`` frames the lens moves by the
    phase times ``pdaf_gain`` (here ``pdaf_gain / PDAF_FULL_GAIN`` of the dioptres it is off
    from the pass *on that frame*), clamped to ``max_slew``; once a correction is under
    ``pdaf_squelch`` the scan ends ``step_frames`` frames later, its corrections scaled down
    meanwhile. A trigger while a scan runs is ignored (``triggerScan`` only from idle); a manual
    ``AfMode`` cancels it. A frame's phase sees the lens it was exposed with, and its correction
    moves the lens from ``PDAF_LATENCY`` frames later (1; 0: on that frame itself). Not
    modelled: PDAF's noise and confidence (a phase too weak for ``dropout_frames`` frames falls
    back to a contrast scan up from the far end of the range, 0 dioptres, seconds long), and
    the AF window (the phase is the pass's alone). With "fixed": as before, the
    lens is ``AF_SCAN_S`` later at the distance the pass had on the trigger's frame. Its sensor
    is 4608 px over the model's 6.45 mm, so the firmware's focal length in lores pixels is the
    model's (3386 x 640 / 4608 = 470).
    """

    camera_controls = {"AfMode": (0, 2, 0), "LensPosition": (0.0, 15.0, 1.0),
                       "AfMetering": (0, 1, 0), "AfWindows": None, "AfTrigger": (0, 1, 0),
                       "AfSpeed": (0, 1, 0), "ScalerCrop": None, "FrameDurationLimits": None,
                       "AeMeteringMode": None, "ExposureValue": None, "AeExposureMode": None}
    camera_properties = {"ScalerCropMaximum": (0, 0, 4608, 3456)}

    def __init__(self, size: bool, af_speed: str = "normal", af_trigger: str = "held") -> None:
        from passgate.hardware.camera.picam import CameraConfig, PicameraSource

        self.frame = 0
        self.events: list[tuple[int, dict[str, object]]] = []
        self.speed = 0  # AfSpeed as configured at open
        cfg = CameraConfig(lens_position=1000.0 / FOCUS_MM, focus_from_size=size,
                           max_exposure_us=None, main_size=(1728, 1296), af_speed=af_speed,
                           af_trigger=af_trigger)
        self.source = PicameraSource(cfg, factory=lambda num: self)
        self.source.open()
        self.events.clear()  # the ScalerCrop at start

    # the few Picamera2 calls PicameraSource makes
    def create_video_configuration(self, **kwargs: object) -> dict[str, object]:
        controls = kwargs.get("controls")
        if isinstance(controls, dict):
            self.speed = int(controls.get("AfSpeed", 0))
        return dict(kwargs)

    def configure(self, config: object) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    def set_controls(self, controls: dict[str, object]) -> None:
        self.events.append((self.frame, dict(controls)))

    def reset(self) -> None:
        """A new presentation: the lens back at lens_position, nothing in view."""
        self.source.close()  # nothing in view, the lens at lens_position: a new presentation
        self.source.open()
        self.events.clear()

    def focus_mm(self, p: Presentation, t: float) -> float:
        fi = int(round(t * FPS)) + p.enter_frame
        return 1000.0 / max(self._dioptres(p, fi), 1e-3)

    def _dioptres(self, p: Presentation, fi: int) -> float:
        if AF_MODEL == "fixed":
            return self._dioptres_fixed(p, fi)
        idle = 1000.0 / FOCUS_MM
        pos, target = idle, idle
        speed, auto = self.speed, False
        steps = -1  # rpi.af's stepCount_ while a triggered PDAF scan runs; -1: no scan
        exposed = pos  # the lens while frame g is exposed
        for g in range(fi + 1):
            for k, c in self.events:
                if k + LENS_DELAY != g:
                    continue
                if "AfSpeed" in c:
                    speed = int(c["AfSpeed"])  # type: ignore[call-overload]
                if "AfMode" in c:
                    auto = c["AfMode"] == 1
                    if not auto:
                        steps = -1  # setMode manual: goIdle, the scan is cancelled
                if "LensPosition" in c and not auto:
                    target = float(c["LensPosition"])  # type: ignore[arg-type]
                if "AfTrigger" in c and auto and steps < 0:
                    steps = int(AF_SPEEDS[speed]["pdaf_frames"])  # startAF
            sp = AF_SPEEDS[speed]
            slew = sp["max_slew"]
            if steps >= 0:  # doAF in Pdaf state: doPDAF, then count down
                want = 1000.0 / state(p, (g - p.enter_frame) / FPS)[0]
                # The phase of frame g sees the lens as it was while frame g was exposed; with
                # PDAF_LATENCY 1 its correction moves the lens from frame g + 1 on.
                exposed = pos
                corr = abs(sp["pdaf_gain"]) / PDAF_FULL_GAIN * (want - pos)
                if steps >= sp["step_frames"]:
                    if abs(corr) < sp["pdaf_squelch"]:
                        steps = int(sp["step_frames"])
                else:
                    corr *= steps / sp["step_frames"]
                pos += min(max(corr, -slew), slew)
                target = pos
                steps = steps - 1 if steps > 0 else -1
                if not PDAF_LATENCY:
                    exposed = pos
            else:
                if not auto:
                    pos = target if abs(target - pos) <= slew else pos + math.copysign(
                        slew, target - pos)
                exposed = pos
        return exposed

    def _dioptres_fixed(self, p: Presentation, fi: int) -> float:
        """The model before the fourth round: a scan lands AF_SCAN_S after its trigger."""
        idle = 1000.0 / FOCUS_MM
        pos, target, slewing = idle, idle, False
        scans: list[tuple[int, float]] = []  # (frame it lands, dioptres)
        land = math.ceil(AF_SCAN_S * FPS - 1e-9)
        slew = AF_SPEEDS[self.speed]["max_slew"]
        for g in range(fi + 1):
            for k, c in self.events:
                if "LensPosition" in c and k + LENS_DELAY == g:
                    target, slewing = float(c["LensPosition"]), True  # type: ignore[arg-type]
                    scans = [sc for sc in scans if sc[0] < g]  # manual cancels a running scan
                if "AfTrigger" in c and k + land == g:
                    d = state(p, (k - p.enter_frame) / FPS)[0]
                    scans.append((g, 1000.0 / d))
            for when, dioptres in scans:
                if when == g:
                    pos, target, slewing = dioptres, dioptres, False
            if slewing:
                pos = target if abs(target - pos) <= slew else pos + math.copysign(
                    slew, target - pos)
        return pos


LENS: LensModel | None = None  # --cameras af-fw / size: the firmware's lens, frame by frame

AF_RULE = False  # --cameras af-rule: the scan starts when the firmware's own rule says held


@functools.lru_cache(maxsize=64)
def scans_by_rule(p: Presentation) -> tuple[float, ...]:
    """When (s from entry) the firmware's rule triggers a scan on the symbol's projected box.

    ``PicameraSource.on_candidate`` triggers after a frame whose candidate is held (within 15%
    of the previous frame's size and a quarter of it from its place, ``picam._held``), and
    again only when a held candidate has moved from the scanned one (``picam._moved``). The
    same functions, applied to the symbol's box at 640x480 (centre and size from the pass's
    pose; the firmware's box is zxing-cpp's located symbol or the moving region).
    """
    from passgate.hardware.camera.picam import _held, _moved

    f = focal_px(LORES[0])
    prev: tuple[int, int, int, int] | None = None
    window: tuple[int, int, int, int] | None = None
    scans: list[float] = []
    for k in range(FRAMES):
        d, x, y = state(p, k / FPS)
        half, cx, cy = f * p.symbol_mm / d / 2, LORES[0] / 2 + f * x / d, LORES[1] / 2 + f * y / d
        box = (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
        if prev is not None and _held(prev, box) and (window is None or _moved(window, box)):
            scans.append(k / FPS)
            window = box
        prev = box
    return tuple(scans)


def rule_focus(p: Presentation, t: float) -> float:
    """The lens with the rule's scans: each lands ``AF_SCAN_S`` after its trigger at the
    distance the pass had then; until the first lands, ``FOCUS_MM``."""
    done = [s for s in scans_by_rule(p) if s + AF_SCAN_S <= t]
    return state(p, done[-1])[0] if done else FOCUS_MM


def state(p: Presentation, t: float) -> tuple[float, float, float]:
    """Distance (mm) and lateral offset (x, y in mm from the optical axis) at time ``t``."""
    rng = np.random.default_rng(p.seed)
    side = rng.uniform(0, 2 * math.pi)
    phase = rng.uniform(0, 2 * math.pi, size=3)
    u = min(max(t / p.approach_s, 0.0), 1.0)
    ease = 1 - (1 - u) ** 2  # decelerates into the hold
    d = p.start_mm + (p.hold_mm - p.start_mm) * ease
    reach = 0.5 * p.hold_mm * (1 - ease)  # enters from the side, ends near the centre
    x = reach * math.cos(side) + p.tremor_mm * math.sin(2 * math.pi * p.tremor_hz * t + phase[0])
    y = reach * math.sin(side) + p.tremor_mm * math.sin(2 * math.pi * p.tremor_hz * 1.3 * t
                                                        + phase[1])
    # a wave at 0.9 Hz whose peak speed is wave_mm_s
    x += p.wave_mm_s / (2 * math.pi * 0.9) * math.sin(2 * math.pi * 0.9 * t + phase[2])
    d += 2 * p.tremor_mm * math.sin(2 * math.pi * p.tremor_hz * 0.7 * t + phase[2])
    return d, x, y


@functools.lru_cache(maxsize=4)
def backdrop(p: Presentation, size: tuple[int, int]) -> np.ndarray:
    """The scene behind the pass at ``size``: the same scene at every size (read-only)."""
    rng = np.random.default_rng([p.seed, 7])
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / (w / 640)
    if p.backdrop == "desk":  # wood grain: wavy stripes and fine noise
        k = rng.uniform(0.05, 0.2)
        frame = 110 + 35 * np.sin(k * yy + 4 * np.sin(xx / rng.uniform(30, 90)))
    elif p.backdrop == "pattern":  # a tiled floor or a checked cloth
        cell = rng.uniform(6, 24)
        frame = np.where(((xx // cell) + (yy // cell)) % 2 == 0, 200.0, 60.0).astype(np.float32)
    else:
        frame = np.full((h, w), rng.uniform(90, 160), dtype=np.float32)
    if p.backdrop == "text":  # a printed page of text lines
        line = rng.uniform(9, 14)
        word = np.sin(xx / rng.uniform(2.5, 4)) + np.sin(xx / 17.0 + yy) > 0.3
        frame = np.where((yy % line < line * 0.45) & word, 40.0, 215.0).astype(np.float32)
    if p.backdrop == "barcode":  # a product label with a linear barcode
        bars = rng.integers(0, 2, size=95).repeat(3)
        x0, y0 = int(rng.uniform(40, 340) * w / 640), int(rng.uniform(40, 260) * h / 480)
        bw, bh = int(bars.size * w / 640), int(120 * h / 480)
        strip = np.where(np.resize(bars, 95 * 3)[np.linspace(0, 284, bw).astype(int)] == 1,
                         20.0, 230.0)
        frame[y0:y0 + bh, x0:x0 + bw] = strip[None, : frame[y0:y0 + bh, x0:x0 + bw].shape[1]]
    fine = np.random.default_rng([p.seed, 8]).normal(0, 6, size=(h // 4 + 1, w // 4 + 1))
    frame = frame + np.kron(fine, np.ones((4, 4)))[:h, :w].astype(np.float32)
    frame = frame.astype(np.float32)
    frame.flags.writeable = False
    return frame


def render(p: Presentation, i: int, modules: np.ndarray, size: tuple[int, int] = LORES,
           focus_mm: float | None = FOCUS_MM,
           box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Frame ``i`` of ``p`` at ``size``; ``box`` (in ``size`` pixels) crops the result.

    ``focus_mm`` None: the autofocus model (see :func:`_exposure`). With a ``box`` only a
    window around it is drawn (the box plus four blur radii and more): the same pixels as
    drawing the whole frame and cropping it (checked on 160 crops at 1280x960 and 2304x1728:
    15 pixels one level apart, float rounding) at a third of the cost. That is the synthetic
    camera's speed, not the reader's: never counted.
    """
    w, h = size
    p, over = at_frame(p, i)
    t = (i - p.enter_frame) / FPS
    held = (p.has_pass or p.index % 2 == 0) and t >= 0  # half the empty ones hold a blank
    x0, y0, x1, y1 = box if box is not None else (0, 0, w, h)
    if box is not None and held:
        d = state(p, t)[0]
        focus = af_focus(p, t) if focus_mm is None else focus_mm
        pad = int(4 * defocus_sigma(d, focus, w)) + 8
        x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
        x1, y1 = min(x1 + pad, w), min(y1 + pad, h)
    frame = backdrop(p, size)[y0:y1, x0:x1].copy()
    if held:
        mods = modules if p.has_pass else np.zeros_like(modules)
        frame = _exposure(p, t, frame, mods, size, focus_mm, (x0, y0))
    if over != 1.0:  # the LED just lit, the exposure still the unlit one: clipped below
        frame = frame * over
    if p.dim:  # a dim scene: less contrast, and the analogue gain already up
        frame = frame * 0.45 + 20
    # sensor noise: shot and read noise amplified by the gain a short exposure needs
    sigma = (4.0 if p.dim else 2.0) * p.gain ** 0.75
    # the main stream is not binned: its noise per pixel is twice the lores stream's
    rng = np.random.default_rng([p.seed, i, w])
    if box is not None:
        bx0, by0, bx1, by1 = box
        frame = frame[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
    frame = synth.noise(frame, sigma * (w / LORES[0]), rng)
    return synth.to_uint8(frame)


def _exposure(p: Presentation, t: float, frame: np.ndarray, modules: np.ndarray,
              size: tuple[int, int], focus_mm: float | None,
              origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The pass drawn at 3 instants across the exposure, averaged: motion blur.

    ``frame`` is the window of the ``size`` view whose top-left pixel is ``origin``.
    """
    w, h = size
    ox, oy = origin
    f = focal_px(w)
    half = p.exposure_ms / 2000
    (d0, x0, y0), (d1, x1, y1) = state(p, t - half), state(p, t + half)
    streak = math.hypot(f * (x1 / d1 - x0 / d0), f * (y1 / d1 - y0 / d0))
    n = int(min(max(math.ceil(streak / 1.5) + 1, 2), 6))  # sub-poses about 1.5 px apart
    steps = []
    for k in np.linspace(-half, half, n):
        d, x, y = state(p, t + k)
        layer = frame.copy()
        pose = synth.Pose(px_per_module(p, d, w), p.angle_deg, p.tilt_deg, 40.0,
                          (w / 2 + f * x / d - ox, h / 2 + f * y / d - oy))
        if p.surface == "paper":
            synth.place_code(layer, modules, pose, dark=45, light=200, screen_modules=2,
                             view_width=w)
        else:
            dark, light = (230.0, 25.0) if p.surface == "phone_dark" else (20.0, 235.0)
            synth.place_code(layer, modules, pose, dark=dark, light=light, screen_modules=2,
                             bezel_modules=4, bezel=15, view_width=w)
        steps.append(layer)
    out = np.mean(steps, axis=0, dtype=np.float32)
    d, x, y = state(p, t)
    if focus_mm is None:  # autofocus on the candidate (af_focus)
        focus_mm = af_focus(p, t)
    sigma = defocus_sigma(d, focus_mm, w)
    if p.glare and p.surface != "paper":
        out = synth.glare(out, (w / 2 + f * x / d + 0.2 * f * p.symbol_mm / d - ox,
                                h / 2 + f * y / d - oy), radius=0.25 * f * p.symbol_mm / d,
                          strength=160)
    return synth.blur(out, sigma) if sigma > 0.3 else out


class _Crops:
    """The synthetic camera's main stream: renders the crop of the current frame at ``main``.

    The main stream covers the lores frame's field of view (the model's 6.45 mm of sensor
    width) with ``main[0]`` pixels: 1280 is a 5.0 um pitch, 2304 the sensor's native 2x2-binned
    pitch (2.8 um; on the 16:9 IMX708 that is a 1728x1296 main stream over a 4:3 ScalerCrop,
    whose pixels per module at a given distance are the same). Its noise per pixel grows with
    the pitch ratio (the lores stream averages more sensor pixels).
    """

    def __init__(self, modules: np.ndarray, focus_mm: float | None,
                 main: tuple[int, int] = MAIN) -> None:
        self.modules, self.focus_mm, self.main = modules, focus_mm, main
        self.p: Presentation | None = None
        self.i = 0
        self.spent = 0.0  # CPU spent rendering crops: the camera's work, not the reader's
        self.still_crops = 0

    def read_full_crop(self, box: tuple[int, int, int, int]) -> np.ndarray | None:
        assert self.p is not None
        sx, sy = self.main[0] / LORES[0], self.main[1] / LORES[1]
        big = (int(box[0] * sx), int(box[1] * sy), int(box[2] * sx), int(box[3] * sy))
        t0 = time.thread_time()
        crop = render(self.p, self.i, self.modules, self.main, self.focus_mm, box=big)
        self.spent += time.thread_time() - t0
        return crop


@dataclass
class Outcome:
    read: int = 0
    fast: int = 0  # read within 0.5 s of the first appearance
    latency: list[float] = field(default_factory=list)
    misread: int = 0
    false_pos: int = 0
    empty_cpu: list[float] = field(default_factory=list)  # still scene, nothing in view
    moving_cpu: list[float] = field(default_factory=list)  # a blank page or phone moving
    crops: int = 0  # full-resolution crops decoded (their rendering is not counted)


def measure(count: int, seed: int, autofocus: bool, max_exposure_ms: float | None,
            illuminator: bool, code: str = "pass", ecc: str = "m", phone_only: bool = False,
            phone_mm: tuple[float, float] = (40, 60), empty_share: float = 0.2,
            progress: int = 0, main: tuple[int, int] = MAIN, misses: bool = False,
            scales: tuple[int, ...] = (1,), only: list[int] | None = None,
            each: bool = False, light: float = 1.0) -> tuple[dict[str, Outcome], list[float], int]:
    """Decode every frame of ``count`` presentations with each way; bare zxing-cpp beside."""
    import zxingcpp

    from corpus import bench_live_code, bench_pass
    from passgate.hardware.decode import ZxingDecoder
    from passgate.hardware.reader import FullCropReader

    text = bench_live_code() if code == "live" else bench_pass()
    modules = synth.qr_modules(text, error=ecc)
    focus = None if autofocus else FOCUS_MM
    crops = _Crops(modules, focus, main)
    zx = ZxingDecoder()

    def new_reader() -> FullCropReader:
        if LENS is None:
            return FullCropReader(zx, crops, scales=scales)
        lens = LENS  # the firmware's focus follows the crop reader's candidates
        return FullCropReader(zx, crops, scales=scales,
                              on_candidate=lambda box, frame: lens.source.on_candidate(box),
                              on_symbol=lens.source.on_symbol)

    ways: dict[str, ZxingDecoder | FullCropReader] = {"640x480 only": zx}
    out = {name: Outcome() for name in (*ways, "640x480 + full-res crop")}
    bare: list[float] = []
    n_pass = n_crops = 0
    for index in (only if only is not None else range(count)):
        # A new reader for each presentation, as the door was idle between two: the motion
        # check's previous frame, and a candidate it would carry through the frame-wide change
        # to the next presentation's scene (a crop on its first, still frame), belong to the
        # last presentation, not this one.
        reader = ways["640x480 + full-res crop"] = new_reader()
        p = draw(index, seed, empty_share=empty_share, max_exposure_ms=max_exposure_ms,
                 illuminator=illuminator, phone_only=phone_only, phone_mm=phone_mm,
                 modules_across=modules.shape[0], light=light)
        n_pass += p.has_pass
        crops.p = p
        if LENS is not None:
            LENS.reset()
        first: dict[str, float] = {}
        for i in range(FRAMES):
            if LENS is not None:
                LENS.frame = i
            frame = render(p, i, modules, LORES, focus)
            crops.i = i
            still = i < p.enter_frame or (not p.has_pass and p.index % 2 == 1)
            empty = still or not p.has_pass
            if still:
                t0 = time.thread_time()
                zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
                bare.append(time.thread_time() - t0)
            for name, way in ways.items():
                if name in first:
                    continue  # the verdict is given; the debouncer holds the rest
                crops.spent = 0.0
                t0 = time.thread_time()
                texts = way.decode(frame)
                cpu = time.thread_time() - t0 - crops.spent
                if still and crops.spent:
                    crops.still_crops += 1
                o = out[name]
                if empty:
                    (o.empty_cpu if still else o.moving_cpu).append(cpu)
                o.misread += sum(t != text for t in texts)
                if texts and not p.has_pass:
                    o.false_pos += 1
                if text in texts and p.has_pass:
                    first[name] = (i - p.enter_frame) / FPS + cpu
            if p.has_pass and len(first) == len(ways):
                break  # every way has its verdict: the later frames decide nothing here
        n_crops += reader.crops
        for name, t in first.items():
            o = out[name]
            o.read += 1
            o.fast += t <= 0.5
            o.latency.append(t)
        if each:  # one line a presentation: the raw figures, for sums over split runs
            print(f"  each #{p.index} pass={int(p.has_pass)} " + " ".join(
                f"{'crop' if 'crop' in name else 'lores'}={first.get(name, -1):.3f}"
                for name in ways), flush=True)
        late = [name for name in ways if p.has_pass and first.get(name, 9.0) > 0.5]
        if misses and late:
            print("  " + miss_line(p, first, focus, main), flush=True)
        if progress and (index + 1) % progress == 0:
            # a running tally, so a run cut short still reports what it measured
            tally = "; ".join(f"{name}: read {o.read}/{n_pass}, <= 0.5 s {o.fast}, "
                              f"misread {o.misread}, false + {o.false_pos}"
                              for name, o in out.items())
            print(f"  after {index + 1} presentations ({n_pass} with a pass): {tally}",
                  flush=True)
    out["640x480 + full-res crop"].crops = n_crops
    print(f"(still empty frames that asked for a crop: {crops.still_crops})")
    return out, bare, n_pass


def looks(p: Presentation, i: int, focus_mm: float | None,
          width: int = LORES[0]) -> tuple[float, float, float]:
    """Pixels per module, motion blur and defocus (both in modules) of frame ``i`` of ``p``."""
    p = at_frame(p, i)[0]
    t = (i - p.enter_frame) / FPS
    half = p.exposure_ms / 2000
    (d0, x0, y0), (d1, x1, y1) = state(p, t - half), state(p, t + half)
    f = focal_px(width)
    streak = math.hypot(f * (x1 / d1 - x0 / d0), f * (y1 / d1 - y0 / d0))
    d = state(p, t)[0]
    if focus_mm is None:
        focus_mm = af_focus(p, t)
    ppm = px_per_module(p, d, width)
    return ppm, streak / ppm, 2.4 * defocus_sigma(d, focus_mm, width) / ppm


def miss_line(p: Presentation, first: dict[str, float], focus_mm: float | None,
              main: tuple[int, int]) -> str:
    """One late or missed presentation: what the frames looked like until it was read."""
    read = {name: f"{t:.2f} s" for name, t in first.items()}
    frames = []
    for i in range(p.enter_frame, FRAMES):
        ppm, blur, defocus = looks(p, i, focus_mm)
        frames.append(f"{ppm:.1f}/{blur:.1f}/{defocus:.1f}")
    return (f"late #{p.index}: {p.surface}, {p.symbol_mm:.0f} mm, {'dim' if p.dim else 'lit'}, "
            f"{p.exposure_ms:.0f} ms, held at {p.hold_mm:.0f} mm after {p.approach_s:.2f} s, "
            f"wave {p.wave_mm_s:.0f} mm/s, glare {p.glare}; read {read or 'never'}; per frame "
            f"from entry, lores px/module / motion blur / defocus in modules "
            f"(main x{main[0] / LORES[0]:.1f} px): " + " ".join(frames))


def measure_idle(scenes: int, frames: int, seed: int) -> None:
    """CPU per still empty 640x480 frame: the two ways and bare zxing-cpp, interleaved.

    ``scenes`` empty scenes (the corpus's backgrounds, nothing moving), ``frames`` noisy frames
    of each (the motion check sees consecutive frames of one scene, as at an idle door).
    """
    import zxingcpp

    from passgate.hardware.decode import ZxingDecoder
    from passgate.hardware.reader import FullCropReader

    crops = _Crops(synth.qr_modules("x"), FOCUS_MM)
    cpu: dict[str, list[float]] = {"bare zxing-cpp": [], "640x480 only": [],
                                   "640x480 + full-res crop": []}
    found = 0
    for index in range(scenes):
        p = draw(2 * index + 1, seed, empty_share=1.0)  # odd: nothing held up, nothing moving
        zx = ZxingDecoder()
        # the shipped reader: on_symbol wired (the lores call is ZxingDecoder.locate, the same
        # zxing-cpp call as scan); a still scene never locates a symbol, so nothing is told
        ways = {"640x480 only": zx, "640x480 + full-res crop": FullCropReader(
            zx, crops, on_symbol=lambda side: None)}
        for i in range(frames):
            frame = render(p, i, crops.modules)
            t0 = time.thread_time()
            zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
            cpu["bare zxing-cpp"].append(time.thread_time() - t0)
            for name, way in ways.items():
                crops.p, crops.i, crops.spent = p, i, 0.0
                t0 = time.thread_time()
                texts = way.decode(frame)
                cpu[name].append(time.thread_time() - t0 - crops.spent)
                found += len(texts)
    bare = statistics.median(cpu["bare zxing-cpp"])
    print(f"\n## idle: {scenes} still empty scenes x {frames} frames, 640x480\n")
    for name, values in cpu.items():
        med = statistics.median(values)
        print(f"  {name:26s} CPU {1e3 * med:.2f} ms per frame (median; p90 "
              f"{1e3 * sorted(values)[int(0.9 * (len(values) - 1))]:.2f})"
              + (f"  = {med / bare:.2f}x bare zxing-cpp" if name != "bare zxing-cpp" else ""))
    print(f"  texts found in empty frames (false positives): {found}; crops asked for by "
          f"still frames: {crops.still_crops}")


def main(argv: list[str] | None = None) -> int:
    from passgate.hardware import reader as reader_mod
    from passgate.hardware.reader import CARRY_FRAMES  # nocarry: 0 for that camera only

    global FOCUS_MM, AF_FOLLOW, AF_RULE, AF_SCAN_S, LENS, AF_MODEL, PDAF_FULL_GAIN, PDAF_LATENCY
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presentations", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--code", choices=("pass", "live"), default="pass",
                    help="pass: a typical PG1 pass (version 8-M); live: a typical PG2 live code")
    ap.add_argument("--ecc", choices=("l", "m"), default="m", help="QR error correction level")
    ap.add_argument("--surfaces", choices=("all", "phone"), default="all",
                    help="phone: every presentation on a phone screen (light or dark mode)")
    ap.add_argument("--phone-mm", default="40,60",
                    help="symbol width on a phone screen, min,max mm (live codes: 45,62)")
    ap.add_argument("--progress", type=int, default=0,
                    help="print a running tally every N presentations (0: only the table)")
    ap.add_argument("--empty-share", type=float, default=0.2,
                    help="share of presentations without a pass (0: passes only; presentation "
                         "i is otherwise the same whatever the share, so runs pair up)")
    ap.add_argument("--cameras", default="fixed,af,8ms,led,af+8ms,af+led,af+8ms+led",
                    help="comma-separated camera set-ups: fixed (lens fixed at 15 cm, normal "
                         "exposure), or levers joined by +: af (one autofocus scan when the "
                         "candidate is held: the first frame after the approach), af-rule (the "
                         "same scan, started when the firmware's held rule holds on the "
                         "symbol's box), af-follow (the earlier model: focus follows the "
                         "pass 0.2 s late from its entry), af-fw (the firmware's own "
                         "PicameraSource drives the lens from the crop reader's candidates, "
                         "frame by frame: its held-candidate scan), size (af-fw plus focus "
                         "from the located symbol's size, on_symbol), "
                         "8ms or any Nms (an exposure limit of N ms), led (the illuminator "
                         "lights the pass), bright (a brighter illuminator: BRIGHT_LED times "
                         "the light, so the exposure the AE wants shrinks by as much), fast "
                         "(with af-fw or size: the firmware asks for AfSpeed fast), first (with "
                         "af-fw or size: af_trigger first, a scan on a small candidate's first "
                         "frame), nocarry (the reader without its carry through frame-wide "
                         "changes, CARRY_FRAMES 0: the firmware before the fifth round)")
    ap.add_argument("--main", default=f"{MAIN[0]}x{MAIN[1]}",
                    help="main stream WxH over the lores frame's field of view: 1280x960 (5.0 um "
                         "pitch), 2304x1728 (the sensor's 2x2-binned pitch, 2.8 um)")
    ap.add_argument("--scales", default="1,2",
                    help="the crop's decodes, comma-separated: 1 as the main stream gives it, "
                         "k its k x k means (FullCropReader scales)")
    ap.add_argument("--only", default="",
                    help="comma-separated presentation indices to run (the others are skipped)")
    ap.add_argument("--each", action="store_true",
                    help="print one line a presentation: seconds to the verdict per way (-1: "
                         "never), so runs split with --only can be summed")
    ap.add_argument("--misses", action="store_true",
                    help="print each presentation read late or never, frame by frame")
    ap.add_argument("--lens-mm", type=float, default=FOCUS_MM,
                    help="where the lens waits (the idle lens_position, as a distance in mm): "
                         "all the time with fixed focus, until the held candidate's scan with af")
    ap.add_argument("--af-scan-s", type=float, default=AF_SCAN_S,
                    help="seconds from an autofocus trigger to the lens in place (0.2: the "
                         "model's scan; shorter only as a what-if: not measured on a Pi)")
    ap.add_argument("--af-model", choices=("pdaf", "fixed"), default=AF_MODEL,
                    help="af-fw / size: a triggered scan as libcamera's rpi.af PDAF loop "
                         "(pdaf), or the lens at the pass's distance --af-scan-s after the "
                         "trigger (fixed: the third round's model)")
    ap.add_argument("--pdaf-full-gain", type=float, default=PDAF_FULL_GAIN,
                    help="the |pdaf_gain| that corrects the whole error in one frame (the "
                         "phase's calibration: 0.02, rpi.af's default, or 0.016)")
    ap.add_argument("--pdaf-latency", type=int, choices=(0, 1), default=PDAF_LATENCY,
                    help="frames from a frame's PDAF phase to the lens moved by it: 1, the "
                         "soonest libcamera can (the phase is read after the frame); 0, the "
                         "fourth round's first figures (optimistic)")
    ap.add_argument("--idle", type=int, default=0, metavar="SCENES",
                    help="only measure the idle cost: SCENES still empty scenes x 10 frames")
    args = ap.parse_args(argv)
    FOCUS_MM = args.lens_mm
    AF_SCAN_S = args.af_scan_s
    AF_MODEL = args.af_model
    PDAF_FULL_GAIN = args.pdaf_full_gain
    PDAF_LATENCY = args.pdaf_latency
    lo, hi = (float(v) for v in args.phone_mm.split(","))
    mw, mh = (int(v) for v in args.main.lower().split("x"))
    print(measure_mod.machine_line())
    if args.idle:
        measure_idle(args.idle, 10, args.seed)
        return 0
    print(f"# {args.presentations} presentations of {FRAMES} frames at {FPS:.0f} fps, "
          f"seed {args.seed}; CPU = this thread's time; code {args.code} at ECC "
          f"{args.ecc.upper()}, surfaces {args.surfaces}, phone symbol {lo:g}-{hi:g} mm; "
          f"main stream {mw}x{mh} over the lores field; lens waits at {FOCUS_MM:g} mm "
          f"({1000 / FOCUS_MM:.2f} dioptres); autofocus scan "
          + (f"{AF_SCAN_S:g} s" if AF_MODEL == "fixed" else
             f"rpi.af PDAF (full gain {PDAF_FULL_GAIN:g}, latency {PDAF_LATENCY} frame)"))
    for cam in args.cameras.split(","):
        levers = set(cam.split("+")) - {"fixed"}
        caps = {lv for lv in levers if lv.endswith("ms") and lv[:-2].replace(".", "").isdigit()}
        if levers - caps - {"af", "autofocus", "af-follow", "af-rule", "af-fw", "size", "led",
                            "bright", "fast", "first", "nocarry"} or len(caps) > 1:
            ap.error(f"unknown camera set-up {cam!r}")
        af = bool(levers & {"af", "autofocus", "af-follow", "af-rule", "af-fw", "size"})
        fw = bool(levers & {"af-fw", "size"})
        LENS = LensModel(size="size" in levers,
                         af_speed="fast" if "fast" in levers else "normal",
                         af_trigger="first" if "first" in levers else "held") if fw else None
        AF_FOLLOW = "af-follow" in levers
        AF_RULE = "af-rule" in levers
        reader_mod.CARRY_FRAMES = 0 if "nocarry" in levers else CARRY_FRAMES
        limit = float(next(iter(caps))[:-2]) if caps else None
        lit = bool(levers & {"led", "bright"})
        t0 = time.perf_counter()
        res, bare, n_pass = measure(args.presentations, args.seed, af, limit, lit,
                                    args.code, args.ecc, args.surfaces == "phone", (lo, hi),
                                    args.empty_share, args.progress, (mw, mh), args.misses,
                                    tuple(int(k) for k in args.scales.split(",")),
                                    [int(i) for i in args.only.split(",")] if args.only else None,
                                    args.each, BRIGHT_LED if "bright" in levers else 1.0)
        n_empty = (len(args.only.split(",")) if args.only else args.presentations) - n_pass
        print(f"\n## camera: {cam}  ({n_pass} with a pass, {n_empty} without; "
              f"{time.perf_counter() - t0:.0f} s)\n")
        print("| way | read | read <= 0.5 s | median / p90 s to verdict | idle CPU ms/frame "
              "(median) | x bare zxing-cpp | CPU ms, blank moving | misread / false + | crops |")
        print("|---|---|---|---|---|---|---|---|---|")
        b = statistics.median(bare)
        for name, o in res.items():
            lat = sorted(o.latency)
            p90 = lat[int(0.9 * (len(lat) - 1))] if lat else float("nan")
            idle = statistics.median(o.empty_cpu)
            share = 100 / n_pass if n_pass else math.nan  # --empty-share 1: no pass to read
            print(f"| {name} | {o.read * share:.1f}% ({o.read}/{n_pass}) | "
                  f"{o.fast * share:.1f}% | "
                  f"{statistics.median(lat or [math.nan]):.2f} / {p90:.2f} | "
                  f"{1e3 * idle:.2f} | {idle / b:.2f}x bare zxing-cpp | "
                  f"{1e3 * statistics.median(o.moving_cpu or [math.nan]):.2f} | "
                  f"{o.misread} / {o.false_pos} | {o.crops} |")
        print(f"\nbare zxing-cpp on the same still empty frames: {1e3 * b:.2f} ms median "
              f"({len(bare)} frames)")
    reader_mod.CARRY_FRAMES = CARRY_FRAMES
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
