"""Reading at the door: the cheap frame for idle, a full-resolution crop for a candidate.

Rules kept (issue 15 point 5, measured in ``docs/decoders.md``):

- Every frame is decoded once, as it comes (the 640x480 lores frame): an empty frame costs one
  zxing-cpp call and nothing more, so the idle loop stays as cheap as bare zxing-cpp.
- Only when that call finds a *candidate* (a QR symbol located but not decoded, see
  :meth:`ZxingDecoder.scan <passgate.hardware.decode.ZxingDecoder.scan>`) and the source can
  give a full-resolution crop (``read_full_crop(box)``, the camera's main stream) is the crop
  around it decoded too: at most :data:`MAX_CROPS` per frame, so a frame full of look-alikes
  cannot stall the loop.
- A pass too small or too soft for zxing-cpp to locate at all (under about 2 pixels per
  module) is still a *moving* object: with ``motion`` on, a region that changed since the
  previous frame (:class:`MotionBox`, on 4x4 block means, well above sensor noise, between
  :data:`MIN_MOTION` and :data:`MAX_MOTION` of the frame) is a candidate too. A still scene
  costs the block means only (about 0.1 ms); something moving without a pass costs a crop.
- A frame-wide change (more than :data:`MAX_MOTION` of the blocks: the illuminator switching
  on, the exposure settling after it, a bumped camera) hides a candidate rather than ending
  it. On such a frame, if the previous frame had a candidate, its box is read again (the crop)
  and ``on_candidate`` is not called: the followers hear neither "gone" nor a new place, since
  the frame cannot tell them. At most :data:`CARRY_FRAMES` frames in a row; after that the
  candidate is gone. Before, the first overexposed frame after the illuminator lit for a pass
  read as "gone", and the camera cancelled the autofocus scan it had just started on it (seed
  1 #13, #274, #356 and seed 2 #134 of the presentation bench, docs/decoders.md); telling the
  camera the old box instead would look "held" to it and start a scan where the pass had been.
  With no candidate before, a frame-wide change is nothing, as before: an idle door pays
  nothing.
- It is a :class:`~passgate.hardware.decode.Decoder` itself (``decode(frame) -> texts``), so
  the frame loop is unchanged; a crop that fails is logged and counts as nothing found, like
  any decoder error. ``on_candidate(box or None, frame)`` (optional) hears after every frame
  (but a carried one, above) whether a candidate is in view (the illuminator and the autofocus
  window follow it).
- ``on_symbol(side)`` (optional) hears, on a frame where a symbol was located but not read, the
  symbol's side in frame pixels: from the 640x480 call, or else from the crop's (the same
  zxing-cpp call, with ``return_errors``; a pass too small to be located at 640x480 often is in
  the crop). The camera focuses from it (:meth:`PicameraSource.on_symbol
  <passgate.hardware.camera.picam.PicameraSource.on_symbol>`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np
from PIL import Image

from passgate.hardware.decode import Box, ZxingDecoder

log = logging.getLogger(__name__)

MAX_CROPS = 2
# The crop's decodes: as the main stream gives it, then its 2x2 means (half the noise, half the
# pixels per module): a close pass in the 2.7x main stream is 8-15 px per module and noisy.
SCALES: tuple[int, ...] = (1, 2)
MIN_CROP = 64  # pixels: a crop reduced below this has no pass worth reading
MARGIN = 0.35  # of the box's side, each way: the quiet zone, and the hand moved since the frame
BLOCK = 4  # motion is looked for on BLOCK x BLOCK sums: noise averages out, 16x fewer pixels
MOTION_LEVEL = 14  # mean change per pixel of a block that counts as moved (noise: 2-8 levels)
MIN_MOTION, MAX_MOTION = 0.004, 0.25  # share of the blocks: a pass, not a flicker or a person
# Frames in a row a frame-wide change keeps the previous candidate: the AE's settling after the
# illuminator lights (2 frames in the presentation model, bench AE_DELAY) and one more. From
# the model, not measured on a Pi: a camera whose exposure settles slower still ends the
# candidate after these, as every frame-wide change did before.
CARRY_FRAMES = 3


class CropSource(Protocol):
    def read_full_crop(self, box: Box) -> np.ndarray | None:
        """The region ``box`` (in frame pixels) at full resolution, or None if unavailable."""
        ...


def widen(box: Box, size: tuple[int, int], margin: float = MARGIN) -> Box:
    """``box`` grown by ``margin`` of its larger side each way, clipped to ``size`` (w, h)."""
    x0, y0, x1, y1 = box
    pad = margin * max(x1 - x0, y1 - y0)
    w, h = size
    return (max(int(x0 - pad), 0), max(int(y0 - pad), 0), min(int(x1 + pad + 1), w),
            min(int(y1 + pad + 1), h))


class MotionBox:
    """The box of the blocks that changed since the previous frame, if it looks pass-sized."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.wide = False  # the last frame changed too much of itself to tell (light, a bump)

    def update(self, frame: np.ndarray) -> Box | None:
        # PIL's box reduce: the block means in C, ~0.05 ms at 640x480 (numpy's reshape-sum
        # took 1.3 ms, three times the zxing-cpp call it sits beside)
        means = np.asarray(Image.fromarray(np.ascontiguousarray(frame)).reduce(BLOCK),
                           dtype=np.int16)
        prev, self._prev = self._prev, means
        self.wide = False
        if prev is None or prev.shape != means.shape:
            return None
        moved = np.abs(means - prev) > MOTION_LEVEL
        share = moved.mean()
        self.wide = bool(share > MAX_MOTION)
        if not MIN_MOTION <= share <= MAX_MOTION:
            return None
        rows, cols = np.nonzero(moved.any(axis=1))[0], np.nonzero(moved.any(axis=0))[0]
        return (int(cols[0]) * BLOCK, int(rows[0]) * BLOCK, (int(cols[-1]) + 1) * BLOCK,
                (int(rows[-1]) + 1) * BLOCK)


class FullCropReader:
    """``decoder.scan`` on each frame; on a candidate, ``decoder.decode`` of the source's crop."""

    name = "zxing+crop"

    def __init__(self, decoder: ZxingDecoder, source: CropSource | None,
                 on_candidate: Callable[[Box | None, np.ndarray], None] | None = None,
                 motion: bool = True, scales: tuple[int, ...] = SCALES,
                 on_symbol: Callable[[float], None] | None = None) -> None:
        self.decoder = decoder
        self.scales = scales
        self.source = source
        self.motion = MotionBox() if motion and source is not None else None
        self.on_candidate = on_candidate
        self.on_symbol = on_symbol
        # The decoder's locate (scan plus each symbol's side) when someone hears the sides.
        self._locate: Callable[[np.ndarray], tuple[list[str], list[Box], list[float]]] | None = (
            getattr(decoder, "locate", None) if on_symbol is not None else None)
        self.crops = 0  # full-resolution crops decoded so far (the bench reports them)
        self._last: Box | None = None  # the previous frame's candidate
        self._carried = 0  # frames in a row that kept it through a frame-wide change

    def decode(self, frame: np.ndarray) -> list[str]:
        texts: list[str]
        boxes: list[Box]
        sides: list[float]
        if self._locate is not None:
            texts, boxes, sides = self._locate(frame)
        else:
            texts, boxes = self.decoder.scan(frame)
            sides = []
        moved = self.motion.update(frame) if self.motion is not None else None
        if moved is not None and not boxes:
            boxes = [moved]
        carried = False
        if boxes or self.motion is None or not self.motion.wide or self._carried >= CARRY_FRAMES:
            self._carried = 0
        elif self._last is not None:  # the frame changed whole: the candidate is hidden, not gone
            boxes, carried = [self._last], True
            self._carried += 1
        self._last = boxes[0] if boxes else None
        if self.on_candidate is not None and not carried:
            try:
                self.on_candidate(boxes[0] if boxes else None, frame)
            except Exception as exc:  # focus and light are helpers: reading goes on without
                log.warning("candidate follower failed: %s: %s", type(exc).__name__, exc)
        side = sides[0] if sides else None
        if texts or not boxes or self.source is None:
            self._symbol(side)
            return texts
        size = (frame.shape[1], frame.shape[0])
        for box in boxes[:MAX_CROPS]:
            wide = widen(box, size)
            try:
                crop = self.source.read_full_crop(wide)
            except Exception as exc:  # a crop is a bonus: its failure is "nothing found"
                log.debug("full-resolution crop failed: %s: %s", type(exc).__name__, exc)
                continue
            if crop is None:
                continue
            found, crop_side = self._decode_crop(np.ascontiguousarray(crop))
            if found:
                return found
            if side is None and crop_side is not None:  # crop pixels to frame pixels
                side = crop_side * (wide[2] - wide[0]) / crop.shape[1]
        self._symbol(side)
        return []

    def _symbol(self, side: float | None) -> None:
        if side is None or self.on_symbol is None:
            return
        try:
            self.on_symbol(side)
        except Exception as exc:  # focus is a helper: reading goes on without
            log.warning("symbol follower failed: %s: %s", type(exc).__name__, exc)

    def _decode_crop(self, crop: np.ndarray) -> tuple[list[str], float | None]:
        """The crop at each of ``scales`` (1: as the main stream gives it; k: k x k means).

        With a locate (``on_symbol`` given), each decode is ``decoder.locate`` (the same
        zxing-cpp call with ``return_errors``), and the first located symbol's side comes back
        in crop pixels.
        """
        side: float | None = None
        for k in self.scales:
            if min(crop.shape) < k * MIN_CROP:
                break
            # k x k means, in C: k times less noise, k times fewer pixels per module
            view = crop if k == 1 else np.asarray(Image.fromarray(crop).reduce(k))
            self.crops += 1
            if self._locate is not None:
                found, _, sides = self._locate(view)
                if side is None and sides:
                    side = sides[0] * k
            else:
                found = self.decoder.decode(view)
            if found:
                return found, None
        return [], side
