"""Frame sources, with fake Picamera2 and OpenCV: configuration, cropping, failure and re-open."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from passgate.errors import ConfigError, HardwareError
from passgate.hardware.camera import (
    CameraConfig,
    FlakyFrameSource,
    FolderSource,
    FrameSource,
    Paced,
    PicameraSource,
    SceneSource,
    SceneStep,
    VideoFileSource,
    WebcamSource,
)
from passgate.hardware.decode import default_decoder
from passgate.issuing.issuer import Issuer

# --- a fake Picamera2 --------------------------------------------------------------------


class FakePicamera2:
    """Records what the adapter asks for; serves YUV420 buffers with a padded stride."""

    AF_CONTROLS = {"AfMode": (0, 2, 0), "AfRange": (0, 2, 0), "LensPosition": (0.0, 32.0, 1.0)}
    BASE_CONTROLS = {"FrameDurationLimits": (33333, 120000, 33333), "AeMeteringMode": (0, 3, 0),
                     "ExposureValue": (-8.0, 8.0, 0.0), "ExposureTime": (1, 66666, 20000),
                     "AnalogueGain": (1.0, 16.0, 1.0)}

    def __init__(self, camera_num, *, stride_pad=32, autofocus=True, fail=None):
        self.camera_num = camera_num
        self.camera_controls = dict(self.BASE_CONTROLS, **(self.AF_CONTROLS if autofocus else {}))
        self.stride_pad = stride_pad
        self.fail = fail  # None, "timeout", "error", "garbage"
        self.calls: list[str] = []
        self.config_kwargs: dict | None = None
        self.frames = 0
        self.started = False
        self.held = 0  # requests taken and not yet released

    def create_video_configuration(self, **kwargs):
        self.config_kwargs = kwargs
        return {"made_by": "fake", **kwargs}

    def configure(self, config):
        assert config["made_by"] == "fake"
        self.calls.append("configure")

    def start(self):
        self.calls.append("start")
        self.started = True

    def capture_request(self, wait=None):
        """One frame's request (picamera2's CompletedRequest): lores and main of one exposure."""
        assert self.started
        self.wait = wait
        if self.fail == "timeout":
            raise TimeoutError
        if self.fail == "error":
            raise RuntimeError("Device or resource busy")
        self.held += 1
        return FakeRequest(self)

    def capture_array(self, name="main", wait=None):
        assert self.started and name == "lores"
        self.wait = wait
        if self.fail == "timeout":
            raise TimeoutError
        if self.fail == "error":
            raise RuntimeError("Device or resource busy")
        if self.fail == "garbage":
            return np.zeros(10, np.uint8)
        w, h = self.config_kwargs["lores"]["size"]
        buf = np.full((h * 3 // 2, w + self.stride_pad), 128, np.uint8)  # chroma and padding
        y = (np.add.outer(np.arange(h), np.arange(w)) + self.frames) % 200
        buf[:h, :w] = y
        self.frames += 1
        return buf

    def stop(self):
        self.calls.append("stop")
        self.started = False

    def close(self):
        self.calls.append("close")


class FakeRequest:
    def __init__(self, cam):
        self.cam = cam
        self.released = False

    def make_array(self, name):
        assert not self.released, "a released request's buffers belong to the camera again"
        return self.cam.capture_array(name, self.cam.wait)

    def release(self):
        assert not self.released
        self.released = True
        self.cam.held -= 1


class Factory:
    """Stands in for the Picamera2 class: each call makes a camera, or raises if told to."""

    def __init__(self, cls: type[FakePicamera2] | None = None, **camera_kwargs):
        self.cameras: list[FakePicamera2] = []
        self.cls = cls or FakePicamera2
        self.camera_kwargs = camera_kwargs
        self.refuse = 0  # the next N constructions raise, as when no camera is connected

    def __call__(self, camera_num):
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("Camera __init__ sequence did not complete.")
        cam = self.cls(camera_num, **self.camera_kwargs)
        self.cameras.append(cam)
        return cam


def test_picamera_configures_lores_yuv420_with_size_fps_and_controls():
    cfg = CameraConfig(camera=1, main_size=(1536, 864), lores_size=(768, 432), fps=20,
                       focus="manual", lens_position=8.0, metering="spot", exposure_value=-1.5,
                       exposure_time_us=8000, analogue_gain=2.0, buffer_count=3)
    factory = Factory()
    with PicameraSource(cfg, factory=factory) as src:
        cam = factory.cameras[0]
        assert cam.camera_num == 1
        kw = cam.config_kwargs
        assert kw["lores"] == {"size": (768, 432), "format": "YUV420"}
        assert kw["main"] == {"size": (1536, 864), "format": "YUV420"}
        assert kw["buffer_count"] == 3
        assert kw["display"] is None and kw["encode"] is None
        assert kw["controls"] == {
            "FrameDurationLimits": (50000, 50000),
            "AeMeteringMode": 1,
            "ExposureValue": -1.5,
            "ExposureTime": 8000,
            "AnalogueGain": 2.0,
            "AfMode": 0,
            "LensPosition": 8.0,
        }
        assert cam.calls == ["configure", "start"]
        src.read()
        assert cam.wait == cfg.timeout_s
    assert cam.calls == ["configure", "start", "stop", "close"]


def test_picamera_continuous_focus_and_automatic_exposure():
    factory = Factory()
    cfg = CameraConfig(focus="continuous", af_range="macro", metering="matrix")
    with PicameraSource(cfg, factory=factory):
        controls = factory.cameras[0].config_kwargs["controls"]
    assert controls["AfMode"] == 2 and controls["AfRange"] == 1 and "LensPosition" not in controls
    assert controls["AeMeteringMode"] == 2
    assert "ExposureTime" not in controls and "AnalogueGain" not in controls
    assert controls["FrameDurationLimits"] == (66667, 66667)  # 15 fps default


class SpeedPicamera2(FakePicamera2):
    """A Camera Module 3 as libcamera's Raspberry Pi IPA advertises it: AfSpeed included."""

    AF_CONTROLS = dict(FakePicamera2.AF_CONTROLS, AfSpeed=(0, 1, 0), AfTrigger=(0, 1, 0))

    def __init__(self, camera_num, **kwargs):
        super().__init__(camera_num, **kwargs)
        self.set: list[dict] = []

    def set_controls(self, controls):
        self.set.append(dict(controls))


@pytest.mark.parametrize("speed, value", [("normal", 0), ("fast", 1)])
def test_picamera_asks_for_the_lens_speed_at_open_and_with_the_idle_focus(speed, value):
    """AfSpeed (libcamera: 0 normal, 1 fast) goes with the focus controls at open, and again
    with the idle focus a gone candidate restores; a manual lens moves at that speed too."""
    factory = Factory(cls=SpeedPicamera2)
    cfg = CameraConfig(af_speed=speed)
    with PicameraSource(cfg, factory=factory) as src:
        cam = factory.cameras[0]
        assert cam.config_kwargs["controls"]["AfSpeed"] == value
        src.on_candidate((200, 150, 300, 250))
        src.on_candidate((201, 151, 301, 251))  # held: one scan
        assert cam.set[-1]["AfTrigger"] == 0
        src.on_candidate(None)  # gone: the idle focus, at the configured speed
        assert cam.set[-1] == {"AfMode": 0, "LensPosition": 6.7, "AfSpeed": value,
                               "FrameDurationLimits": (66667, 66667), "AeMeteringMode": 0,
                               "ExposureValue": 0.0}
    assert CameraConfig(af_speed=speed, focus="continuous").controls()["AfSpeed"] == value
    assert "AfSpeed" not in CameraConfig(af_speed=speed, focus="fixed").controls()
    assert src.config.af_speed == speed


def test_picamera_drops_the_lens_speed_on_a_camera_without_it():
    factory = Factory()  # advertises AfMode and LensPosition, not AfSpeed (an older libcamera)
    with PicameraSource(CameraConfig(af_speed="fast"), factory=factory):
        controls = factory.cameras[0].config_kwargs["controls"]
    assert "AfSpeed" not in controls and controls["AfMode"] == 0


def test_picamera_fixed_focus_sends_no_focus_controls():
    factory = Factory()
    with PicameraSource(CameraConfig(focus="fixed"), factory=factory):
        controls = factory.cameras[0].config_kwargs["controls"]
    assert not {"AfMode", "AfRange", "LensPosition"} & set(controls)


def test_picamera_drops_controls_the_camera_lacks(caplog):
    """Picamera2 raises on a control the camera does not advertise (AfMode on a v2 module)."""
    factory = Factory(autofocus=False)
    src = PicameraSource(CameraConfig(focus="manual"), factory=factory)
    with caplog.at_level(logging.WARNING, logger="passgate.hardware.camera.picam"):
        src.open()
        src.close()
        src.open()  # a re-open does not warn again
        src.close()
    controls = factory.cameras[0].config_kwargs["controls"]
    assert "AfMode" not in controls and "LensPosition" not in controls
    assert "AeMeteringMode" in controls
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "control(s)" in r.getMessage()]  # not the exposure cap's tuning file
    assert len(warnings) == 1 and "AfMode" in warnings[0] and "LensPosition" in warnings[0]


def test_picamera_returns_the_y_plane_cropped_from_a_wider_stride():
    factory = Factory(stride_pad=64)
    cfg = CameraConfig(lores_size=(320, 240), main_size=(640, 480))
    with PicameraSource(cfg, factory=factory) as src:
        frame = src.read()
        second = src.read()
    assert frame.shape == (240, 320) and frame.dtype == np.uint8
    expected = np.add.outer(np.arange(240), np.arange(320)) % 200
    assert np.array_equal(frame, expected)  # no chroma rows, no stride padding
    assert np.array_equal(second, (expected + 1) % 200)
    assert default_decoder().decode(frame) == []  # decoders accept the strided view


@pytest.mark.parametrize("fail, message", [("timeout", "no frame within 2.0 s"),
                                           ("error", "Device or resource busy"),
                                           ("garbage", "unexpected lores buffer")])
def test_picamera_read_failures_raise_hardware_error(fail, message):
    factory = Factory(fail=fail)
    with PicameraSource(factory=factory) as src, pytest.raises(HardwareError, match=message):
        src.read()


def test_picamera_open_failure_then_recovery_by_reopen():
    factory = Factory()
    factory.refuse = 1
    src = PicameraSource(factory=factory)
    with pytest.raises(HardwareError, match="did not complete"):
        src.open()
    assert not src.is_open
    src.open()
    assert src.read().shape == (480, 640)
    factory.cameras[0].fail = "error"  # the camera goes away
    with pytest.raises(HardwareError):
        src.read()
    src.close()
    src.close()  # idempotent
    src.open()  # a fresh camera object, as the daemon's retry does
    assert len(factory.cameras) == 2
    assert factory.cameras[0].calls[-2:] == ["stop", "close"]
    assert src.read().shape == (480, 640)
    src.close()


def test_picamera_failing_configure_releases_the_camera():
    class BadConfig(FakePicamera2):
        def configure(self, config):
            raise ValueError("lores stream must be YUV")

    made = []

    def factory(num):
        made.append(BadConfig(num))
        return made[-1]

    src = PicameraSource(factory=factory)
    with pytest.raises(HardwareError, match="lores stream must be YUV"):
        src.open()
    assert made[0].calls == ["stop", "close"] and not src.is_open


def test_picamera_close_errors_are_logged_not_raised(caplog):
    factory = Factory()
    src = PicameraSource(factory=factory)
    src.open()

    def dead():
        raise OSError("No such device")

    factory.cameras[0].stop = dead
    with caplog.at_level(logging.WARNING):
        src.close()
    assert "No such device" in caplog.text
    assert factory.cameras[0].calls[-1] == "close"  # still closed after a failed stop


def test_read_before_open_is_a_hardware_error():
    with pytest.raises(HardwareError, match="not open"):
        PicameraSource(factory=Factory()).read()


def test_missing_picamera2_is_a_hardware_error_with_advice(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as on a laptop
    with pytest.raises(HardwareError, match="python3-picamera2"):
        PicameraSource().open()


def test_importing_passgate_camera_imports_no_camera_library():
    code = ("import sys, passgate.hardware.camera, passgate.hardware.decode; "
            "libs = ('picamera2', 'cv2', 'libcamera', 'zxingcpp', 'pyzbar'); "
            "print([m for m in libs if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kwargs, key", [
    ({"lores_size": (641, 480)}, "lores_size"),
    ({"lores_size": (1920, 1080)}, "lores_size"),
    ({"main_size": "1280x720"}, "main_size"),
    ({"fps": 0}, "fps"),
    ({"focus": "auto"}, "focus"),
    ({"lens_position": -1}, "lens_position"),
    ({"af_range": "near"}, "af_range"),
    ({"af_speed": "turbo"}, "af_speed"),
    ({"af_speed": 1}, "af_speed"),
    ({"metering": "average"}, "metering"),
    ({"exposure_value": 9}, "exposure_value"),
    ({"exposure_time_us": 100_000, "fps": 15}, "exposure_time_us"),
    ({"exposure_time_us": 1.5}, "exposure_time_us"),
    ({"analogue_gain": 0.5}, "analogue_gain"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"buffer_count": 1}, "buffer_count"),
    ({"camera": -1}, "camera"),
    ({"fps": True}, "fps"),
])
def test_camera_config_errors_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        CameraConfig(**kwargs)


def test_camera_config_accepts_lists_from_toml():
    cfg = CameraConfig(main_size=[1280, 720], lores_size=[640, 360])
    assert cfg.main_size == (1280, 720) and cfg.lores_size == (640, 360)
    hash(cfg)  # frozen and hashable after the conversion


# --- a fake OpenCV ------------------------------------------------------------------------


class FakeCapture:
    def __init__(self, device, frames, opened=True):
        self.device = device
        self.frames = frames  # list of BGR frames; None entries fail
        self.opened = opened
        self.pos = 0
        self.props: dict[int, float] = {}
        self.released = False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        if prop == FakeCV.CAP_PROP_POS_FRAMES:
            self.pos = int(value)
        return True

    def read(self):
        if self.pos >= len(self.frames) or self.frames[self.pos] is None:
            self.pos += 1
            return False, None
        frame = self.frames[self.pos]
        self.pos += 1
        return True, frame

    def release(self):
        self.released = True


class FakeCV:
    """The parts of cv2 the adapters use."""

    CAP_PROP_FRAME_WIDTH, CAP_PROP_FRAME_HEIGHT, CAP_PROP_FPS = 3, 4, 5
    CAP_PROP_POS_FRAMES, CAP_PROP_BUFFERSIZE = 1, 38
    COLOR_BGR2GRAY, COLOR_BGRA2GRAY = 6, 10

    def __init__(self, frames, opened=True):
        self.frames = frames
        self.opened = opened
        self.captures: list[FakeCapture] = []

    def VideoCapture(self, device):  # noqa: N802 - OpenCV's name
        cap = FakeCapture(device, self.frames, self.opened)
        self.captures.append(cap)
        return cap

    def cvtColor(self, frame, code):  # noqa: N802 - OpenCV's name
        assert code in (self.COLOR_BGR2GRAY, self.COLOR_BGRA2GRAY)
        b, g, r = (frame[:, :, i].astype(np.float32) for i in range(3))
        return np.rint(0.114 * b + 0.587 * g + 0.299 * r).astype(np.uint8)


def _bgr(value_b, value_g, value_r, shape=(48, 64)):
    f = np.zeros((*shape, 3), np.uint8)
    f[:, :] = (value_b, value_g, value_r)
    return f


def test_webcam_requests_mode_converts_to_gray_and_releases():
    cv = FakeCV([_bgr(0, 255, 0), np.full((48, 64), 7, np.uint8)])
    with WebcamSource("/dev/video2", size=(1280, 720), fps=30, cv=cv) as cam:
        first, second = cam.read(), cam.read()
    cap = cv.captures[0]
    assert cap.device == "/dev/video2"
    assert cap.props[cv.CAP_PROP_FRAME_WIDTH] == 1280 and cap.props[cv.CAP_PROP_FRAME_HEIGHT] == 720
    assert cap.props[cv.CAP_PROP_FPS] == 30 and cap.props[cv.CAP_PROP_BUFFERSIZE] == 1
    assert first.shape == (48, 64) and first.dtype == np.uint8 and int(first[0, 0]) == 150
    assert int(second[0, 0]) == 7
    assert cap.released


def test_webcam_that_cannot_open_or_read_raises_and_reopens():
    cv = FakeCV([_bgr(1, 2, 3)], opened=False)
    cam = WebcamSource(0, cv=cv)
    with pytest.raises(HardwareError, match="cannot open"):
        cam.open()
    assert cv.captures[0].released  # a failed open releases what it got
    cv.opened = True
    cam.open()
    cam.read()
    with pytest.raises(HardwareError, match="unplugged"):
        cam.read()  # the fake has only one frame: the next read fails like an unplugged device
    cam.close()
    cam.open()
    assert cam.read() is not None
    cam.close()


def test_video_file_plays_loops_and_resumes(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not really a video; the fake does not care")
    frames = [_bgr(i, i, i) for i in (10, 20, 30)]
    src = VideoFileSource(path, cv=FakeCV(frames))
    with src:
        assert int(src.read()[0, 0]) == 10
    with src:  # re-opened: carries on with the second frame
        assert [int(src.read()[0, 0]) for _ in range(2)] == [20, 30]
        assert src.read() is None
    looping = VideoFileSource(path, loop=True, cv=FakeCV(frames))
    with looping:
        assert [int(looping.read()[0, 0]) for _ in range(5)] == [10, 20, 30, 10, 20]


def test_video_file_with_real_opencv(tmp_path, passes):
    """Only where the webcam extra is installed: a real MJPEG file, re-opened half-way."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV not installed (pip install 'passgate[webcam]')")
    steps = [SceneStep(None, 2), SceneStep(passes[0], 3), SceneStep(None, 2)]
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    with SceneSource(steps) as scene:
        while (frame := scene.read()) is not None:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2BGR))
    writer.release()
    decoder = default_decoder()
    src = VideoFileSource(path)
    with src:
        seen = [decoder.decode(src.read()) for _ in range(3)]
    with src:
        while (frame := src.read()) is not None:
            assert frame.shape == (480, 640) and frame.dtype == np.uint8
            seen.append(decoder.decode(frame))
    assert seen == [[], [], [passes[0]], [passes[0]], [passes[0]], [], []]


def test_video_file_missing_is_a_hardware_error(tmp_path):
    with pytest.raises(HardwareError, match="no such file"):
        VideoFileSource(tmp_path / "nope.mp4", cv=FakeCV([])).open()


def test_missing_opencv_is_a_hardware_error_with_advice(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(HardwareError, match=r"passgate\[webcam\]"):
        WebcamSource(0).open()


# --- folders of images ---------------------------------------------------------------------


def test_folder_reads_sorted_grayscale_skips_bad_files_and_ends(tmp_path, caplog):
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "b.png")
    Image.new("L", (40, 30), 200).save(tmp_path / "a.jpg")
    (tmp_path / "c.png").write_bytes(b"broken")
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING), FolderSource(tmp_path) as src:
        first, second = src.read(), src.read()
        assert src.read() is None
    assert first.shape == (30, 40) and first.dtype == np.uint8 and abs(int(first[0, 0]) - 200) <= 2
    assert int(second[0, 0]) == 76  # red -> luma 0.299 * 255
    assert "c.png" in caplog.text


def test_folder_loops_and_resumes_after_reopen(tmp_path):
    for i in range(3):
        Image.new("L", (32, 32), 10 * (i + 1)).save(tmp_path / f"{i}.png")
    src = FolderSource(tmp_path, loop=True)
    with src:
        assert int(src.read()[0, 0]) == 10
    with src:
        assert [int(src.read()[0, 0]) for _ in range(4)] == [20, 30, 10, 20]


def test_folder_missing_empty_or_unreadable_raises(tmp_path):
    with pytest.raises(HardwareError, match="not a folder"):
        FolderSource(tmp_path / "none").open()
    with pytest.raises(HardwareError, match="no images"):
        FolderSource(tmp_path).open()
    (tmp_path / "x.png").write_bytes(b"junk")
    with FolderSource(tmp_path, loop=True) as src, \
            pytest.raises(HardwareError, match="no readable image"):
        src.read()


# --- the scripted scene -------------------------------------------------------------------


@pytest.fixture(scope="module")
def passes() -> list[str]:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test_camera").digest())
    short = Issuer(key, "NNov").issue("shopping", ["gate-1"], 1_700_000_000, 3600,
                                      pass_id=bytes([1]) * 12)
    long = Issuer(key, "Nizhny Novgorod").issue("work", ["main", "north-gate"], 1_700_000_000,
                                                7200, hint="A-17", pass_id=bytes([2]) * 12)
    return [short, long]  # QR versions 8 and 9


def test_scene_frames_decode_back_to_the_script(passes):
    steps = [SceneStep(None, 2), SceneStep(passes[0], 4), SceneStep(None, 1),
             SceneStep(passes[1], 3), SceneStep(passes[0], 2), SceneStep(None, 1)]
    decoder = default_decoder()
    seen = []
    with SceneSource(steps, seed=7) as scene:
        assert scene.total_frames == 13
        while (frame := scene.read()) is not None:
            assert frame.shape == (480, 640) and frame.dtype == np.uint8
            text = steps[scene.last_step].text
            assert decoder.decode(frame) == ([text] if text else [])
            seen.append(scene.last_step)
        assert scene.read() is None
    assert seen == [0, 0, 1, 1, 1, 1, 2, 3, 3, 3, 4, 4, 5]


@pytest.mark.parametrize("size", [(1280, 720), (320, 240)])
def test_scene_other_sizes_decode(passes, size):
    decoder = default_decoder()
    with SceneSource([SceneStep(passes[1], 1), SceneStep(None, 1)], size=size, seed=3) as scene:
        frame = scene.read()
        assert frame.shape == (size[1], size[0])
        assert decoder.decode(frame) == [passes[1]]
        assert decoder.decode(scene.read()) == []


def test_scene_is_deterministic_and_seeded(passes):
    steps = [SceneStep(passes[0], 3), SceneStep(None, 2)]

    def play(seed):
        frames = []
        with SceneSource(steps, seed=seed) as s:
            while (f := s.read()) is not None:
                frames.append(f)
        return frames

    a, b, c = play(1), play(1), play(2)
    assert len(a) == 5 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])  # sensor noise changes from frame to frame
    with pytest.raises(ValueError):
        a[0][0, 0] = 1  # frames are shared between reads: read-only


def test_scene_loops_and_keeps_position_across_reopen(passes):
    scene = SceneSource([SceneStep(passes[0], 2), SceneStep(None, 1)], loop=True)
    with scene:
        scene.read()
    with scene:
        steps = []
        for _ in range(5):
            scene.read()
            steps.append(scene.last_step)
    assert steps == [0, 1, 0, 0, 1]


@pytest.mark.parametrize("steps, size", [([], (640, 480)), ([SceneStep(None, 0)], (640, 480)),
                                         ([SceneStep("x" * 5000, 1)], (640, 480)),
                                         ([SceneStep(None, 1)], (100, 100))])
def test_scene_rejects_bad_scripts_at_construction(steps, size):
    with pytest.raises(ValueError):
        SceneSource(steps, size=size)


# --- fault doubles and pacing --------------------------------------------------------------


def test_flaky_source_fails_on_script_and_recovers(passes):
    inner = SceneSource([SceneStep(None, 1), SceneStep(passes[0], 5)])
    flaky = FlakyFrameSource(inner, fail_reads=[(2, 4)], open_failures_after_fault=2)
    log = []
    flaky.open()
    for _ in range(12):
        try:
            frame = flaky.read()
            log.append("end" if frame is None else f"step{inner.last_step}")
        except HardwareError:
            log.append("fault")
            flaky.close()
            while True:  # the daemon's retry loop, minus the backoff
                try:
                    flaky.open()
                    break
                except HardwareError:
                    log.append("absent")
    # two failed reads, each followed by two failed re-opens; then the scene carries on
    # where it was: all five frames of step 1 are seen, none lost to the outage
    assert log == ["step0", "step1", "fault", "absent", "absent", "fault", "absent", "absent",
                   "step1", "step1", "step1", "step1", "end", "end", "end", "end"]
    assert flaky.faults == 6 and flaky.reads == 12 and flaky.opens == 7
    assert isinstance(flaky, FrameSource)


def test_flaky_source_absent_at_start():
    flaky = FlakyFrameSource(SceneSource([SceneStep(None, 1)]), initial_open_failures=1)
    with pytest.raises(HardwareError, match="device not found"):
        flaky.open()
    flaky.open()
    assert flaky.read() is not None and flaky.opens == 2


def test_paced_source_sleeps_to_the_frame_rate():
    now = [100.0]
    sleeps = []

    def sleep(dt):
        sleeps.append(round(dt, 6))
        now[0] += dt

    src = Paced(SceneSource([SceneStep(None, 10)]), fps=10, clock=lambda: now[0], sleep=sleep)
    with src:
        src.read()
        now[0] += 0.03  # decoding took 30 ms
        src.read()
        now[0] += 0.25  # a slow frame: no catching up afterwards
        src.read()
        src.read()
    assert sleeps == [0.07, 0.1]


def test_every_source_is_a_frame_source(tmp_path):
    for src in (PicameraSource(factory=Factory()), WebcamSource(cv=FakeCV([])),
                FolderSource(tmp_path), VideoFileSource(tmp_path / "v.mp4"),
                SceneSource([SceneStep(None, 1)])):
        assert isinstance(src, FrameSource)
