"""A simulated camera playing a scripted scene: what ``passgate run --simulate`` looks at.

A scene is a list of :class:`SceneStep`: a pass text held up to the camera for N frames, or
an empty view (``text=None``) for N frames. The camera is fixed, so every step shares one
background (a wall, a few objects, a printed page) and lighting. Each code step shows the
code on paper or on a phone, somewhat rotated, tilted, placed and sized at random within
mild limits that the default decoder reads every time; sensor noise differs from frame to
frame. Everything follows from ``seed``: the same scene gives the same frames.

Frames come as fast as they are read; wrap the source in :class:`passgate.hardware.camera.Paced` to
get a camera's frame rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from passgate.errors import ArgumentError
from passgate.hardware.camera import synth
from passgate.hardware.camera.base import SourceBase

NOISE_VARIANTS = 3  # distinct noise fields per step, cycled: frames differ, rendering is cheap
NOISE_SIGMA = 2.5


@dataclass(frozen=True)
class SceneStep:
    """``text`` shown as a QR code for ``frames`` frames; ``None`` shows no code."""

    text: str | None
    frames: int


class SceneSource(SourceBase):
    """A :class:`FrameSource` that plays ``steps`` once (then ``None``) or forever (``loop``).

    ``size`` is ``(width, height)``. ``last_step`` is the index of the step the last frame
    came from (``None`` before the first read), for tests and logs. The position survives
    ``close()`` / ``open()``: the scene goes on while the camera is being re-opened.
    Raises ``ValueError`` at construction for an empty scene or a text no QR code can hold.
    """

    def __init__(self, steps: Sequence[SceneStep], size: tuple[int, int] = (640, 480),
                 seed: int = 0, loop: bool = False) -> None:
        super().__init__()
        self.steps = tuple(steps)
        if not self.steps:
            raise ArgumentError("a scene needs at least one step")
        for i, step in enumerate(self.steps):
            if not isinstance(step.frames, int) or step.frames < 1:
                raise ArgumentError(f"step {i}: frames must be a positive integer")
            if step.text is not None and not isinstance(step.text, str):
                raise ArgumentError(f"step {i}: text must be a string or None")
        w, h = size
        if not (isinstance(w, int) and isinstance(h, int) and w >= 320 and h >= 240):
            raise ArgumentError(f"size must be (width, height) of at least 320x240, got {size!r}")
        self.size = (w, h)
        self.seed = int(seed)
        self.loop = loop
        self.name = "simulated camera"
        # Encode every text now, so an impossible one fails here and not in the frame loop.
        self._modules = {s.text: synth.qr_modules(s.text) for s in self.steps if s.text is not None}
        rng = np.random.default_rng([self.seed, 1])
        self._background = synth.illuminate(synth.background(self.size, rng), rng, strength=0.2)
        self._step = 0
        self._frame = 0
        self._cache: tuple[int, list[np.ndarray]] | None = None
        self.last_step: int | None = None

    @property
    def total_frames(self) -> int:
        """Frames in one pass through the scene."""
        return sum(s.frames for s in self.steps)

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _read(self) -> np.ndarray | None:
        if self._step >= len(self.steps):
            if not self.loop:
                return None
            self._step = 0
        index = self._step
        frames = self._frames_of(index)
        frame = frames[self._frame % len(frames)]
        self._frame += 1
        if self._frame >= self.steps[index].frames:
            self._step, self._frame = index + 1, 0
        self.last_step = index
        return frame

    def _frames_of(self, index: int) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != index:
            self._cache = (index, self._render(index))
        return self._cache[1]

    def _render(self, index: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, 2, index])
        frame = self._background.copy()
        text = self.steps[index].text
        if text is not None:
            _show(frame, self._modules[text], self.size, rng)
        out = []
        for _ in range(NOISE_VARIANTS):
            f = synth.to_uint8(synth.noise(frame, NOISE_SIGMA, rng))
            f.flags.writeable = False  # the same array is returned for several frames
            out.append(f)
        return out


def _show(frame: np.ndarray, modules: np.ndarray, size: tuple[int, int],
          rng: np.random.Generator) -> None:
    """Hold the code up to the camera: on paper or on a phone, at a mild random pose."""
    w, h = size
    scale = min(w / 640, h / 480)
    pose = synth.Pose(
        # ~4-5.5 px per module at 640x480: the reliable range (below ~3 px reads get flaky)
        module_px=float(max(rng.uniform(3.8, 5.5) * scale, 3.5)),
        angle_deg=float(rng.uniform(-15, 15)),
        tilt_deg=float(rng.uniform(0, 15)),
        tilt_dir_deg=float(rng.uniform(0, 360)),
    )
    pose = synth.fit_pose(pose, modules.shape[0], size, rng)
    if rng.random() < 0.5:  # printed pass
        synth.place_code(frame, modules, pose, dark=float(rng.uniform(25, 55)),
                         light=float(rng.uniform(175, 215)), screen_modules=1)
    else:  # phone: bright screen, dark body
        synth.place_code(frame, modules, pose, dark=float(rng.uniform(15, 40)),
                         light=float(rng.uniform(215, 245)), screen_modules=2, bezel_modules=3,
                         bezel=float(rng.uniform(10, 30)))
