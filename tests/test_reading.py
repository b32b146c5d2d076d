"""Reading at the door: candidates, full-resolution crops, the camera's controls, the illuminator.

Real zxing-cpp on synthetic frames; a fake Picamera2 that records ``set_controls`` and serves
a main stream; gpiozero's MockFactory for the illuminator's pin.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import types

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from passgate.errors import ConfigError
from passgate.hardware.camera import CameraConfig, PicameraSource, synth
from passgate.hardware.decode import ZxingDecoder
from passgate.hardware.reader import (
    CARRY_FRAMES,
    MAX_CROPS,
    FullCropReader,
    MotionBox,
    widen,
)
from passgate.hardware.signals.gpio import SignalsConfig
from passgate.hardware.signals.illuminator import Illuminator

TEXT = "HC1:" + "PASSGATE-READING-TEST-" * 4  # a version-5ish symbol, QR Model 2


def _frame(module_px: float, size=(640, 480), spoil: bool = False, center=(320.0, 240.0),
           seed: int = 3, angle: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((size[1], size[0]), 120.0, np.float32)
    modules = synth.qr_modules(TEXT)
    if spoil:  # keep the finder patterns, scramble the data: located, never decoded
        n = modules.shape[0]
        inner = np.zeros_like(modules)
        inner[12:n - 12, 12:n - 12] = True
        modules = np.where(inner, rng.random(modules.shape) < 0.5, modules)
    synth.place_code(frame, modules, synth.Pose(module_px, angle, center=center), dark=30,
                     light=220)
    return synth.to_uint8(synth.noise(frame, 2.0, rng))


class Crops:
    """A main stream twice the frame's size that always shows a readable pass."""

    def __init__(self, fail: bool = False) -> None:
        self.boxes: list[tuple[int, int, int, int]] = []
        self.fail = fail

    def read_full_crop(self, box):
        self.boxes.append(box)
        if self.fail:
            raise RuntimeError("main stream gone")
        full = _frame(5.0, size=(1280, 960), center=(640.0, 480.0))
        x0, y0, x1, y1 = box
        return full[y0 * 2:y1 * 2, x0 * 2:x1 * 2]


def test_scan_reports_a_located_but_unreadable_symbol_as_a_candidate_box():
    texts, boxes = ZxingDecoder().scan(_frame(4.0, spoil=True))
    assert texts == [] and len(boxes) >= 1
    x0, y0, x1, y1 = boxes[0]
    assert x0 < 320 < x1 and y0 < 240 < y1  # around the code, which is centred


def test_locate_gives_a_candidates_side_rotation_or_not_with_the_same_boxes_as_scan():
    side = (synth.qr_modules(TEXT).shape[0] - 8) * 4.0  # the symbol without its quiet zone
    for angle in (0.0, 30.0):
        frame = _frame(4.0, spoil=True, angle=angle)
        texts, boxes, sides = ZxingDecoder().locate(frame)
        assert (texts, boxes) == ZxingDecoder().scan(frame) and len(sides) == len(boxes) >= 1
        assert abs(sides[0] - side) < 0.06 * side, (angle, sides[0], side)
        if angle:  # the box of a rotated symbol is wider than the symbol: the side is not
            assert boxes[0][2] - boxes[0][0] > 1.25 * side
    assert ZxingDecoder().locate(_frame(4.0)) == ([TEXT], [], [])


def test_scan_of_a_readable_code_gives_its_text_and_no_candidate():
    assert ZxingDecoder().scan(_frame(4.0)) == ([TEXT], [])


def test_an_empty_still_frame_asks_for_no_crop():
    crops = Crops()
    reader = FullCropReader(ZxingDecoder(), crops)
    empty = np.full((480, 640), 120, np.uint8)
    assert reader.decode(empty) == [] and reader.decode(empty) == []
    assert crops.boxes == [] and reader.crops == 0


def test_a_candidate_is_read_from_the_full_resolution_crop_around_it():
    crops = Crops()
    seen = []
    reader = FullCropReader(ZxingDecoder(), crops, on_candidate=lambda b, f: seen.append(b))
    assert reader.decode(_frame(4.0, spoil=True)) == [TEXT]
    assert len(crops.boxes) == 1 and reader.crops == 1
    assert seen[0] is not None


def test_a_located_symbols_side_is_told_from_the_frame_or_else_from_the_crop():
    class Unreadable:  # a main stream twice the frame's size: located, never read
        def read_full_crop(self, box):
            full = _frame(5.0, size=(1280, 960), center=(640.0, 480.0), spoil=True)
            x0, y0, x1, y1 = box
            return full[y0 * 2:y1 * 2, x0 * 2:x1 * 2]

    n = synth.qr_modules(TEXT).shape[0] - 8
    told: list[float] = []
    reader = FullCropReader(ZxingDecoder(), Unreadable(), on_symbol=told.append)
    assert reader.decode(_frame(4.0, spoil=True)) == []
    assert len(told) == 1 and abs(told[0] - 4.0 * n) < 0.06 * 4.0 * n  # the frame's own
    told.clear()
    # the frame shows only a moving blob (no symbol to locate at 640x480): the crop's symbol,
    # 5 px a module in the main stream, is 2.5 a frame pixel
    reader = FullCropReader(ZxingDecoder(), Unreadable(), on_symbol=told.append)
    still = np.full((480, 640), 120, np.uint8)
    moved = still.copy()
    moved[170:310, 250:390] = 230
    assert reader.decode(still) == [] and told == []
    assert reader.decode(moved) == []
    assert len(told) == 1 and abs(told[0] - 2.5 * n) < 0.06 * 2.5 * n
    told.clear()
    reader = FullCropReader(ZxingDecoder(), Crops(), on_symbol=told.append)  # read: no size
    assert reader.decode(_frame(4.0, spoil=True)) == [TEXT] and told == []


def test_a_failing_crop_counts_as_nothing_found_and_crops_are_capped():
    crops = Crops(fail=True)
    reader = FullCropReader(ZxingDecoder(), crops)
    assert reader.decode(_frame(4.0, spoil=True)) == []
    assert 1 <= len(crops.boxes) <= MAX_CROPS


def test_a_follower_that_raises_does_not_stop_reading():
    def broken(box, frame):
        raise RuntimeError("set_controls failed")

    reader = FullCropReader(ZxingDecoder(), None, on_candidate=broken)
    assert reader.decode(_frame(4.0)) == [TEXT]


def test_motion_box_finds_a_moving_pass_sized_region_not_noise_or_a_light_change():
    rng = np.random.default_rng(1)
    still = np.clip(rng.normal(120, 4, (480, 640)), 0, 255).astype(np.uint8)
    m = MotionBox()
    assert m.update(still) is None
    noisy = np.clip(still + rng.normal(0, 4, still.shape), 0, 255).astype(np.uint8)
    assert m.update(noisy) is None  # sensor noise is not motion
    moved = noisy.copy()
    moved[200:260, 300:380] = 230
    box = m.update(moved)
    assert box is not None and box[0] <= 300 and box[2] >= 380 and box[1] <= 200
    assert m.update(np.full_like(moved, 250)) is None  # the lights came on: too big


def _scene(rng, pass_at: int | None = None, level: float = 120.0) -> np.ndarray:
    """A still noisy scene at ``level``; with ``pass_at``, a bright pass-sized patch at that x."""
    frame = rng.normal(level, 4, (480, 640))
    if pass_at is not None:
        frame[200:280, pass_at:pass_at + 80] = level + 110
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_a_frame_wide_change_hides_a_candidate_for_a_few_frames_and_does_not_end_it():
    # The illuminator lights for a moving pass: the next frames change whole (overexposed, the
    # AE settling). Its crop is still read, and the followers hear nothing on those frames: a
    # "gone" made the camera cancel the autofocus scan it had just started, and the old box
    # would look "held" to it (docs/decoders.md). After CARRY_FRAMES such frames it is gone.
    assert CARRY_FRAMES >= 2  # the AE settles over two frames after the light changes
    rng = np.random.default_rng(4)
    heard: list = []
    crops = Crops()
    reader = FullCropReader(Shapes(), crops,  # type: ignore[arg-type]
                            on_candidate=lambda box, frame: heard.append(box))
    level = 120.0
    reader.decode(_scene(rng))
    for episode in range(2):  # the count starts again with each real candidate
        reader.decode(_scene(rng, pass_at=300, level=level))  # a pass moves in: a candidate
        box = heard[-1]
        assert box is not None and box[0] <= 300 <= box[2]
        n, told = len(crops.boxes), len(heard)
        for _k in range(CARRY_FRAMES):  # each frame 20 levels brighter: every block changes
            level += 20.0
            reader.decode(_scene(rng, pass_at=300, level=level))
        assert len(heard) == told  # the followers heard nothing on those frames
        assert crops.boxes[n:] == crops.boxes[n - 1:n] * CARRY_FRAMES  # the same crop, read
        level += 20.0
        reader.decode(_scene(rng, pass_at=300, level=level))
        assert heard[-1] is None and len(crops.boxes) == n + CARRY_FRAMES  # longer: gone
        level -= 20.0
        reader.decode(_scene(rng, pass_at=300, level=level))
        assert heard[-1] is None and len(crops.boxes) == n + CARRY_FRAMES  # and stays gone
        reader.decode(_scene(rng, level=level))  # the pass leaves: a candidate again
        reader.decode(_scene(rng, level=level))
        assert heard[-1] is None
        level = 60.0 if episode == 0 else level
        reader.decode(_scene(rng, level=level))  # a frame-wide change, nothing before it
        assert heard[-1] is None


def test_a_frame_wide_change_with_no_candidate_before_is_nothing():
    rng = np.random.default_rng(5)
    heard: list = []
    crops = Crops()
    reader = FullCropReader(Shapes(), crops,  # type: ignore[arg-type]
                            on_candidate=lambda box, frame: heard.append(box))
    for level in (120.0, 120.0, 200.0, 60.0):  # the lights switch at an idle door
        reader.decode(_scene(rng, level=level))
    assert heard == [None] * 4 and crops.boxes == []
    # a still frame after a candidate ends it at once, as before: only a frame-wide change
    # keeps it
    reader.decode(_scene(rng, level=60.0, pass_at=100))
    assert heard[-1] is not None
    reader.decode(_scene(rng, level=60.0, pass_at=100))
    assert heard[-1] is None
    reader.decode(_scene(rng, level=160.0, pass_at=100))  # after it ended: nothing carried
    assert heard[-1] is None and len(crops.boxes) == 1


def test_the_autofocus_scan_started_on_a_pass_survives_the_illuminators_overexposed_frames():
    """The reader wired to the camera as the checkpoint wires it: a small candidate's first
    frame starts the scan (af_trigger "first"); the frame-wide changes after it neither cancel
    it (AfMode manual) nor start another on the old box."""
    rng = np.random.default_rng(6)
    src, (cam,) = _camera(af_trigger="first")
    reader = FullCropReader(Shapes(), Crops(),  # type: ignore[arg-type]
                            on_candidate=lambda box, frame: src.on_candidate(box))
    reader.decode(_scene(rng))
    cam.set.clear()
    reader.decode(_scene(rng, pass_at=300))
    assert [c.get("AfTrigger") for c in cam.set] == [0]  # the scan starts
    for level in (150.0, 180.0):  # the LED lit: two overexposed frames
        reader.decode(_scene(rng, pass_at=300, level=level))
    assert len(cam.set) == 1  # no AfMode manual, no second trigger
    reader.decode(_scene(rng, pass_at=300, level=180.0))  # settled, the pass held: still
    assert cam.set[-1]["AfMode"] == 0  # a still frame without a candidate: the idle focus


class Shapes:
    """A decoder that reads nothing and notes the shape of every crop it is given."""

    def __init__(self) -> None:
        self.inner = ZxingDecoder()
        self.shapes: list[tuple[int, ...]] = []

    def scan(self, frame):
        return self.inner.scan(frame)

    def decode(self, frame):
        self.shapes.append(frame.shape)
        return []


class Big:
    def __init__(self, side: int) -> None:
        self.side = side

    def read_full_crop(self, box):
        return np.full((self.side, self.side + 10), 120, np.uint8)


def test_a_crop_is_decoded_as_given_then_as_its_2x2_means_unless_too_small():
    dec = Shapes()
    reader = FullCropReader(dec, Big(300))  # type: ignore[arg-type]
    assert reader.decode(_frame(4.0, spoil=True)) == []
    boxes = len(dec.inner.scan(_frame(4.0, spoil=True))[1][:MAX_CROPS])  # candidates, each:
    assert dec.shapes == [(300, 310), (150, 155)] * boxes and reader.crops == 2 * boxes
    dec.shapes.clear()
    small = FullCropReader(dec, Big(100))  # type: ignore[arg-type]
    small.decode(_frame(4.0, spoil=True))
    assert dec.shapes == [(100, 110)] * boxes  # 50 px after a 2x2 reduce: not worth reading


def test_a_soft_noisy_close_crop_is_read_from_its_2x2_means():
    class Noisy:  # 18 px per module, soft, a glare spot, noisy: a close phone in the main stream
        def read_full_crop(self, box):
            rng = np.random.default_rng(2)
            frame = np.full((1134, 1134), 120.0, np.float32)
            synth.place_code(frame, synth.qr_modules(TEXT), synth.Pose(18.0, center=(567, 567)),
                             dark=30, light=220)
            frame = synth.blur(synth.glare(frame, (680, 567), radius=227, strength=160), 6)
            return synth.to_uint8(synth.noise(frame, 40.0, rng))

    assert ZxingDecoder().decode(Noisy().read_full_crop(None)) == []  # too noisy as given
    reader = FullCropReader(ZxingDecoder(), Noisy())
    assert reader.decode(_frame(4.0, spoil=True)) == [TEXT] and reader.crops == 2


def test_widen_grows_the_box_and_clips_to_the_frame():
    assert widen((10, 10, 110, 60), (640, 480)) == (0, 0, 146, 96)


# --- the camera's side: a fake Picamera2 -------------------------------------------------


class FakeRequest:
    """picamera2's CompletedRequest: the lores and main buffers of one exposure."""

    def __init__(self, cam, frame: int) -> None:
        self.cam, self.frame, self.released = cam, frame, False

    def make_array(self, name):
        assert not self.released, "a released request's buffers belong to the camera again"
        w, h = self.cam.kwargs[name]["size"]
        buf = np.zeros((h * 3 // 2, w + 64), np.uint8)  # chroma rows and stride padding
        # row r of frame n reads (r + 7 n) % 256: the tests can tell the frames apart
        buf[:h, :w] = ((np.arange(h) + 7 * self.frame) % 256)[:, None]
        return buf

    def release(self):
        assert not self.released
        self.released = True
        self.cam.held.remove(self)


class FakeCam:
    camera_controls = {"FrameDurationLimits": 0, "AeMeteringMode": 0, "ExposureValue": 0,
                       "AeExposureMode": 0, "AfMode": 0, "LensPosition": 0, "AfRange": 0,
                       "AfMetering": 0, "AfWindows": 0, "AfTrigger": 0, "ScalerCrop": 0}
    camera_properties = {"ScalerCropMaximum": (16, 8, 4608, 2592)}

    def __init__(self, num):
        self.set: list[dict] = []
        self.kwargs: dict = {}
        self.held: list[FakeRequest] = []
        self.frames = 0
        self.started = False

    def create_video_configuration(self, **kwargs):
        self.kwargs = kwargs
        return kwargs

    def configure(self, config):
        pass

    def start(self):
        self.started = True

    def capture_request(self, wait=None):
        self.held.append(FakeRequest(self, self.frames))
        self.frames += 1
        return self.held[-1]

    def set_controls(self, controls):
        self.set.append(dict(controls))

    def stop(self):
        pass

    def close(self):
        pass


def _camera(**kw) -> tuple[PicameraSource, list[FakeCam]]:
    made: list[FakeCam] = []

    def factory(num):
        made.append(FakeCam(num))
        return made[-1]

    src = PicameraSource(CameraConfig(**kw), factory=factory)
    src.open()
    return src, made


def test_full_crop_comes_from_the_same_frames_main_stream_scaled_from_lores_pixels():
    src, (cam,) = _camera()  # lores 640x480, main 1728x1296: 2.7x
    assert src.read_full_crop((100, 50, 200, 150)) is None  # no frame read yet
    src.read()
    frame = src.read()  # frame 1
    assert frame[0, 0] == 7
    crop = src.read_full_crop((100, 50, 200, 150))
    assert crop.shape == (270, 270)  # rows and columns 135..404 of the main Y plane
    assert crop[0, 0] == (135 + 7) % 256 and crop[-1, 0] == (404 + 7) % 256  # frame 1, too
    assert len(cam.held) == 1  # frame 0's buffers went back at the second read
    src.close()
    assert cam.held == []


def test_full_crop_is_off_when_configured_off_and_then_no_frame_is_held():
    src, (cam,) = _camera(candidate_crop=False)
    src.read()
    assert src.read_full_crop((0, 0, 10, 10)) is None
    assert cam.held == []


def test_streams_share_a_centred_scaler_crop_of_the_lores_aspect_and_the_sensor_mode():
    src, (cam,) = _camera(sensor_size=(2304, 1296))
    assert cam.kwargs["main"] == {"size": (1728, 1296), "format": "YUV420"}
    assert cam.kwargs["sensor"] == {"output_size": (2304, 1296)}
    # 4:3 of the 16:9 sensor, centred: 3456 of 4608 columns, from ScalerCropMaximum's origin
    assert cam.set == [{"ScalerCrop": (16 + 576, 8, 3456, 2592)}]
    src2, (cam2,) = _camera(scaler_crop="full")
    assert cam2.set == [] and "sensor" not in cam2.kwargs
    with pytest.raises(ConfigError, match="scaler_crop"):
        CameraConfig(scaler_crop="wide")


def test_autofocus_waits_for_a_held_candidate_scans_its_window_once_then_returns():
    src, (cam,) = _camera(af_on_candidate=True, af_trigger="held")
    cam.set.clear()  # the ScalerCrop at start
    src.on_candidate((200, 150, 280, 210))  # appears, small: approaching
    src.on_candidate((170, 125, 300, 225))  # grew by more than 15%: still approaching
    assert cam.set == []  # the lens waits at lens_position
    src.on_candidate((160, 120, 320, 240))  # grew by 23%: still approaching
    src.on_candidate((162, 121, 321, 241))  # held: about the same size and place
    # the window in sensor pixels inside the 4:3 crop (592, 8, 3456, 2592): 5.4 a lores pixel
    assert cam.set == [{"AfMode": 1, "AfMetering": 1, "AfTrigger": 0,
                        "AfWindows": [(592 + 874, 8 + 653, 858, 648)]}]
    src.on_candidate((170, 125, 330, 245))  # a tremor: no new scan
    src.on_candidate((172, 126, 331, 246))
    assert len(cam.set) == 1
    src.on_candidate((400, 300, 560, 420))  # moved by more than half its size: not held yet
    assert len(cam.set) == 1
    src.on_candidate((402, 301, 561, 421))  # held there: scan again
    assert len(cam.set) == 2
    src.on_candidate((385, 285, 577, 429))  # 20% larger, same centre: 15% a frame, not held
    assert len(cam.set) == 2
    src.on_candidate((383, 284, 578, 430))  # held 22% larger than scanned: nearer, scan again
    assert len(cam.set) == 3 and cam.set[-1]["AfTrigger"] == 0
    src.on_candidate((384, 285, 577, 429))  # the same: no new scan
    assert len(cam.set) == 3
    src.on_candidate(None)  # gone: the fixed lens position again
    assert len(cam.set) == 4
    assert cam.set[-1]["AfMode"] == 0 and cam.set[-1]["LensPosition"] == 6.7
    src.on_candidate((162, 121, 321, 241))  # back, first frame: not held yet
    assert len(cam.set) == 4


def test_autofocus_first_triggers_on_a_small_candidates_first_frame_not_a_frame_wide_one():
    """af_trigger "first": the scan starts on the first frame of a candidate at most half the
    frame across (the camera's PDAF loop follows it while it approaches); a frame-wide change
    waits to be held, as with "held"; after the first scan, the held rule as before."""
    src, (cam,) = _camera(af_trigger="first")
    cam.set.clear()
    src.on_candidate((200, 150, 280, 210))  # appears, small: scan at once
    assert cam.set == [{"AfMode": 1, "AfMetering": 1, "AfTrigger": 0,
                        "AfWindows": [(592 + 1080, 8 + 810, 432, 324)]}]
    src.on_candidate((170, 125, 300, 225))  # grew by more than 15%: approaching, no new scan
    src.on_candidate((160, 120, 320, 240))  # grew by 23%: not held
    # ... but the running scan's window follows the pass (its phase is measured there).
    assert cam.set[1:] == [{"AfWindows": [src._sensor_rect((170, 125, 300, 225))]},
                           {"AfWindows": [src._sensor_rect((160, 120, 320, 240))]}]
    assert all("AfTrigger" not in c for c in cam.set[1:])
    src.on_candidate((162, 121, 321, 241))  # held 2x the scanned size: moved, scan again
    assert len(cam.set) == 4 and cam.set[-1]["AfTrigger"] == 0
    src.on_candidate((162, 121, 321, 241))  # the same box: nothing to send
    assert len(cam.set) == 4
    src.on_candidate((163, 122, 322, 242))  # held where it was scanned: the window only
    assert len(cam.set) == 5 and "AfTrigger" not in cam.set[-1]
    src.on_candidate(None)  # gone: the idle focus
    assert cam.set[-1]["AfMode"] == 0 and len(cam.set) == 6
    src.on_candidate((0, 0, 640, 470))  # a frame-wide change: not a pass to scan at once
    assert len(cam.set) == 6
    src.on_candidate((0, 0, 640, 472))  # held: the held rule scans it
    assert len(cam.set) == 7 and cam.set[-1]["AfTrigger"] == 0
    big, (cam3,) = _camera()  # the default, "first": a first box over half the frame waits
    cam3.set.clear()
    big.on_candidate((100, 40, 500, 440))
    big.on_symbol(300.0)  # and the symbol's size sets the lens meanwhile
    assert cam3.set == [{"AfMode": 0, "LensPosition": round(big.symbol_dioptres(300.0), 2)}]
    held, (cam2,) = _camera(af_trigger="held")  # "held": nothing on a first frame
    cam2.set.clear()
    held.on_candidate((200, 150, 280, 210))
    assert cam2.set == [] and CameraConfig().af_trigger == "first"  # the default
    with pytest.raises(ConfigError, match="^af_trigger: "):
        CameraConfig(af_trigger="early")


def test_focus_from_size_sets_the_lens_until_the_scan_takes_over_then_returns():
    # the held trigger: with "first" (the default) a small candidate's first frame takes the
    # lens at once (the size then acts only on a first box over half the frame: below)
    src, (cam,) = _camera(af_trigger="held")  # 4:3 crop of the 16:9 sensor: f = 627 lores px
    cam.set.clear()
    focal = 3386 * 640 / 3456
    mean = 2 * 30 * 56 / (30 + 56)  # the harmonic mean of symbol_mm
    src.on_symbol(100.0)  # no candidate in view: nothing to focus on
    assert cam.set == []
    src.on_candidate((200, 150, 300, 250))  # approaching
    src.on_symbol(focal * mean / 200)  # a symbol as if at 20 cm: 5 dioptres
    assert cam.set == [{"AfMode": 0, "LensPosition": 5.0}]
    src.on_symbol(focal * mean / 195)  # 5.13: within FOCUS_STEP, no move
    assert len(cam.set) == 1
    src.on_candidate((190, 140, 310, 260))  # grew 20%: still approaching
    src.on_symbol(focal * mean / 100)  # nearer: 10 dioptres
    assert cam.set[-1] == {"AfMode": 0, "LensPosition": 10.0}
    src.on_symbol(focal * mean / 40)  # 25 dioptres: the lens stops at its range (15)
    assert cam.set[-1] == {"AfMode": 0, "LensPosition": 15.0}
    src.on_candidate((191, 141, 311, 261))  # held: the scan starts from there
    assert cam.set[-1]["AfTrigger"] == 0 and cam.set[-1]["AfMode"] == 1
    n = len(cam.set)
    src.on_symbol(focal * mean / 200)  # the scan has the lens: manual would cancel it
    assert len(cam.set) == n
    src.on_candidate(None)  # gone: back to lens_position
    assert cam.set[-1]["AfMode"] == 0 and cam.set[-1]["LensPosition"] == 6.7


def test_focus_from_size_only_when_asked_with_a_manual_lens_and_symbol_mm_checked():
    for kw in ({"focus_from_size": False}, {"focus": "continuous"}, {"focus": "fixed"}):
        src, (cam,) = _camera(af_trigger="held", **kw)
        cam.set.clear()
        src.on_candidate((200, 150, 300, 250))
        src.on_symbol(50.0)
        assert cam.set == [], kw
    src, (cam,) = _camera(af_on_candidate=False)  # the size alone, no scan
    cam.set.clear()
    src.on_candidate((200, 150, 300, 250))
    src.on_symbol(50.0)
    assert cam.set and cam.set[-1]["AfMode"] == 0
    src.on_candidate(None)
    assert cam.set[-1]["LensPosition"] == 6.7
    assert CameraConfig(symbol_mm=[35, 35]).symbol_mm == (35.0, 35.0)
    for bad in ([56, 30], [30], "30-56", [0, 56], [30, 5000]):
        with pytest.raises(ConfigError, match="symbol_mm"):
            CameraConfig(symbol_mm=bad)
    with pytest.raises(ConfigError, match="focal_length_px"):
        CameraConfig(focal_length_px=0)


def test_no_autofocus_on_candidates_unless_asked_or_with_a_fixed_lens():
    for kw in ({"af_on_candidate": False}, {"focus": "fixed"}):
        src, (cam,) = _camera(**kw)
        cam.set.clear()  # the ScalerCrop at start
        src.on_candidate((160, 120, 320, 240))
        src.on_candidate((160, 120, 320, 240))
        src.on_candidate(None)
        assert cam.set == [], kw


def test_short_exposure_mode_is_asked_of_the_camera():
    src, (cam,) = _camera()  # the default: short
    assert cam.kwargs["controls"]["AeExposureMode"] == 1
    assert "AeExposureMode" not in CameraConfig(ae_mode="normal").controls()
    assert CameraConfig().af_on_candidate  # the default: one scan on a held candidate
    with pytest.raises(ConfigError, match="ae_mode"):
        CameraConfig(ae_mode="fast")


class TunedCams:
    """Stands in for the Picamera2 class with its tuning-file helpers (static in picamera2)."""

    def __init__(self, agc: dict, model: str = "imx708_wide", files: bool = True) -> None:
        self.agc, self.model, self.files = agc, model, files
        self.made: list[tuple[FakeCam, dict | None]] = []
        self.loaded: list[str] = []

    def global_camera_info(self):
        return [{"Model": self.model, "Num": 0}]

    def load_tuning_file(self, name):
        self.loaded.append(name)
        if not self.files or name != f"{self.model}.json":
            raise RuntimeError(f"no {name}")
        return {"version": 2.0, "algorithms": [{"rpi.awb": {}}, {"rpi.agc": self.agc}]}

    def find_tuning_algo(self, tuning, name):
        return next(a[name] for a in tuning["algorithms"] if name in a)

    def __call__(self, num, tuning=None):
        self.made.append((FakeCam(num), tuning))
        return self.made[-1][0]


def _modes(key: str = "shutter") -> dict:
    return {"exposure_modes": {"normal": {key: [100, 10000, 30000, 60000],
                                          "gain": [1.0, 2.0, 4.0, 8.0]},
                               "short": {key: [100, 5000, 10000], "gain": [1.0, 2.0, 6.0]}}}


def test_exposure_cap_fills_the_tunings_custom_mode_and_selects_it(no_tuning_env):
    for agc, key in ((_modes(), "shutter"), ({"channels": [_modes("exposure"), _modes("exposure")]},
                                            "exposure")):
        cams = StartedCams(agc)
        with PicameraSource(CameraConfig(), factory=cams) as src:  # the default cap: 8 ms
            src.read()
        ((cam, tuning),) = cams.made
        assert set(cams.loaded) == {"imx708_wide.json"}
        in_effect = cams.find_tuning_algo(cam.tuning, "rpi.agc")
        channels = in_effect.get("channels") or [in_effect]
        for channel in channels:
            # exposure time up to 8 ms at gain 1, then the gain up to the normal mode's top
            assert channel["exposure_modes"]["custom"] == {key: [100, 8000, 8000],
                                                           "gain": [1.0, 1.0, 8.0]}
            assert channel["exposure_modes"]["short"][key] == [100, 5000, 10000]  # untouched
        assert cam.kwargs["controls"]["AeExposureMode"] == 3  # custom
        src.open()  # a re-open loads and caps the tuning again
        cam, tuning = cams.made[-1]
        assert len(cams.made) == 2 and tuning is not None
        cam.set.clear()
        src.on_candidate((160, 120, 320, 240))
        src.on_candidate((161, 121, 321, 241))
        src.on_candidate(None)  # the idle controls again: still the custom mode
        assert cam.set[-1]["AeExposureMode"] == 3
        src.close()


def test_exposure_cap_falls_back_to_ae_mode_when_the_tuning_cannot_be_changed(caplog):
    for cams in (TunedCams({"no_modes": {}}), TunedCams(_modes(), files=False)):
        with caplog.at_level("WARNING"), PicameraSource(CameraConfig(), factory=cams):
            pass
        ((cam, tuning),) = cams.made
        assert tuning is None and cam.kwargs["controls"]["AeExposureMode"] == 1  # short
        assert "cannot cap the exposure" in caplog.text
        caplog.clear()
    cams = TunedCams(_modes())
    with PicameraSource(CameraConfig(max_exposure_us=None, ae_mode="normal"), factory=cams):
        pass
    assert cams.loaded == [] and "AeExposureMode" not in cams.made[0][0].kwargs["controls"]
    with pytest.raises(ConfigError, match="max_exposure_us"):
        CameraConfig(max_exposure_us=70_000)  # longer than a frame at 15 fps
    with pytest.raises(ConfigError, match="max_exposure_us"):
        CameraConfig(max_exposure_us=50)


# --- the illuminator on a mock pin -------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _illuminator(**kw):
    factory = MockFactory()
    clock = Clock()
    ill = Illuminator(24, factory, clock=clock, hold_s=1.0, dim_level=60, dim_check_s=30, **kw)
    return ill, factory.pin(24), clock


def test_illuminator_is_off_at_start_lit_by_a_candidate_and_held_briefly():
    ill, pin, clock = _illuminator()
    assert pin.state == 0
    ill.update(candidate=False, frame_mean=120)
    assert pin.state == 0
    ill.update(candidate=True, frame_mean=120)
    assert pin.state == 1
    clock.t = 0.9
    ill.update(candidate=False, frame_mean=200)
    assert pin.state == 1  # held between frames that do not locate the code
    clock.t = 1.1
    ill.update(candidate=False, frame_mean=200)
    assert pin.state == 0
    ill.close()


def test_illuminator_lights_a_dim_scene_and_goes_off_only_to_look_again():
    ill, pin, clock = _illuminator()
    ill.update(candidate=False, frame_mean=30)
    assert pin.state == 1
    clock.t = 20
    ill.update(candidate=False, frame_mean=150)  # lit scenes look bright: not judged
    assert pin.state == 1
    clock.t = 31
    ill.update(candidate=False, frame_mean=150)
    assert pin.state == 0  # off for one look
    ill.update(candidate=False, frame_mean=35)  # still dim: on again
    assert pin.state == 1
    ill.close()
    assert pin.state == 0


def test_illuminator_not_fitted_is_a_no_op():
    ill = Illuminator(None, MockFactory())
    ill.update(candidate=True, frame_mean=0)
    assert not ill.lit
    ill.close()


def test_illuminator_pin_is_optional_and_may_not_clash():
    assert SignalsConfig().illuminator_pin is None
    assert SignalsConfig(illuminator_pin=24).illuminator_pin == 24
    with pytest.raises(ConfigError, match="illuminator_pin"):
        SignalsConfig(illuminator_pin=23)  # the relay's


def test_illuminator_for_candidates_only_ignores_a_dim_scene():
    ill, pin, clock = _illuminator(dim=False)
    ill.update(candidate=False, frame_mean=10)
    assert pin.state == 0
    ill.update(candidate=True, frame_mean=10)
    assert pin.state == 1
    ill.close()
    assert pin.state == 0


def test_illuminator_options_are_declared_with_validators():
    cfg = SignalsConfig(illuminator_pin=24, illuminator_light="candidate", illuminator_hold_s=2)
    assert (cfg.illuminator_light, cfg.illuminator_hold_s) == ("candidate", 2)
    with pytest.raises(ConfigError, match="illuminator_light"):
        SignalsConfig(illuminator_light="always")
    with pytest.raises(ConfigError, match="illuminator_hold_s"):
        SignalsConfig(illuminator_hold_s=0)
    with pytest.raises(ConfigError, match="illuminator_dim_level"):
        SignalsConfig(illuminator_dim_level=255)


TUNING_ENV = "LIBCAMERA_RPI_TUNING_FILE"


class StartedCams(TunedCams):
    """Like :class:`TunedCams`, and as picamera2 and libcamera behave on a Pi: the tuning file
    is read when libcamera's camera manager starts (the Raspberry Pi pipeline loads its IPA
    while it enumerates), which ``global_camera_info`` already does; ``Picamera2(tuning=dict)``
    sets ``LIBCAMERA_RPI_TUNING_FILE`` to a temporary file, deleted when the constructor
    returns, and does not restart a manager that is running (picamera2 issue #886; its
    ``_cm.reset()`` does, as its own IMX708 helper uses it). A tuning file that is missing or
    refused leaves the camera out of the enumeration."""

    def __init__(self, agc: dict, reset: bool = True, refuse: bool = False) -> None:
        super().__init__(agc)
        self.in_effect: dict | None = None  # the tuning the running manager loaded
        self.running = False
        self.refuse = refuse  # libcamera refuses any tuning but the stock one
        if reset:
            self._cm = types.SimpleNamespace(reset=self._start)

    def load_tuning_file(self, name):
        return copy.deepcopy(super().load_tuning_file(name))  # a file: each load its own

    def _start(self) -> None:
        self.running = True
        path = os.environ.get(TUNING_ENV)
        if path is None:
            self.in_effect = self.load_tuning_file(f"{self.model}.json")
        elif os.path.isfile(path) and not self.refuse:
            with open(path) as f:
                self.in_effect = json.load(f)
        else:
            self.in_effect = None  # the IPA did not load: no camera

    def global_camera_info(self):
        if not self.running:
            self._start()
        return super().global_camera_info() if self.in_effect is not None else []

    def __call__(self, num, tuning=None):
        with tempfile.NamedTemporaryFile("w") as f:
            if isinstance(tuning, dict):
                json.dump(tuning, f)
                f.flush()
                os.environ[TUNING_ENV] = f.name
            elif tuning is not None:
                os.environ[TUNING_ENV] = tuning
            else:
                os.environ.pop(TUNING_ENV, None)
            info = self.global_camera_info()[num]  # IndexError: no camera, as picamera2
        cam = FakeCam(info["Num"])
        cam.tuning = self.in_effect
        self.made.append((cam, tuning))
        return cam

    def mode_in_effect(self, cam) -> dict | None:
        """The AGC exposure mode the camera runs with: the one its controls ask for if the
        loaded tuning has it, else libcamera keeps "normal" ("No exposure profile for ...")."""
        asked = cam.kwargs["controls"].get("AeExposureMode", 0)
        name = {0: "normal", 1: "short", 2: "long", 3: "custom"}[asked]
        agc = self.find_tuning_algo(cam.tuning, "rpi.agc")
        modes = (agc.get("channels") or [agc])[0]["exposure_modes"]
        return modes.get(name) or modes["normal"]


@pytest.fixture
def no_tuning_env(monkeypatch):
    monkeypatch.delenv(TUNING_ENV, raising=False)


def test_the_exposure_cap_is_in_the_tuning_the_camera_runs_with(no_tuning_env):
    cams = StartedCams(_modes())
    with PicameraSource(CameraConfig(), factory=cams) as src:
        src.read()
        (cam, _tuning), = cams.made
        assert cams.mode_in_effect(cam) == {"shutter": [100, 8000, 8000], "gain": [1.0, 1.0, 8.0]}
        assert TUNING_ENV not in os.environ  # no path left that a later start would read
    # A re-open after the manager has gone (picamera2 drops it with its last camera) finds
    # the camera, capped again.
    cams.running = False
    with PicameraSource(CameraConfig(), factory=cams):
        assert cams.mode_in_effect(cams.made[-1][0])["shutter"] == [100, 8000, 8000]
    assert TUNING_ENV not in os.environ


def test_the_exposure_cap_falls_back_to_ae_mode_when_the_tuning_cannot_take_effect(
        no_tuning_env, caplog):
    # A picamera2 that cannot restart its camera manager, and a libcamera that refuses the
    # capped tuning: the camera runs with the stock tuning and ae_mode (short), and says so.
    for cams in (StartedCams(_modes(), reset=False), StartedCams(_modes(), refuse=True)):
        with caplog.at_level("WARNING"), PicameraSource(CameraConfig(), factory=cams) as src:
            src.read()
        cam = cams.made[-1][0]
        assert cam.kwargs["controls"]["AeExposureMode"] == 1
        assert cams.mode_in_effect(cam) == _modes()["exposure_modes"]["short"]
        assert "cannot cap the exposure" in caplog.text and TUNING_ENV not in os.environ
        caplog.clear()
