"""Read rate of the holder app's live code off a phone screen, from the real page.

Input: screenshots of the app showing a live code at a phone's size (390 x 844 CSS px), as
``tests/test_holder_app_browser.py`` takes them (``PASSGATE_SCREENSHOT_DIR``); the default is
the one in ``docs/screens/``. Each is put into 640 x 480 camera frames the way a held phone
appears to the checkpoint's camera (the model of ``bench/presentations.py``: Camera Module 3,
f = 4.74 mm, lens fixed at 150 mm): the 390 px screen is ``SCREEN_MM`` wide, at a distance of
90-250 mm, turned up to 15 deg and tilted up to 20 deg, shown with a phone's black and white
levels, defocus blur for its distance plus a base blur, sensor noise, and a glare spot on
half of the frames. Every frame goes through the project's decoder (``default_decoder``, what
the checkpoint runs on its lores frames); a frame counts as read if the decoder returns the
exact live-code text.

Anchor, in the same run and the same frames: the same pass as a static ``PG1:`` code (the
live code's level 1 alone, what a pass without binding would show), drawn the same size on
the same page. The ratio says what the larger QR of the live code costs in reads; the CPU
time per decode is printed beside bare zxing-cpp on the same frames.

    python bench/holder_screens.py [--shots DIR] [--frames 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
import presentations  # noqa: E402
from passgate.hardware.camera import synth  # noqa: E402
from passgate.hardware.decode import ZxingDecoder  # noqa: E402
from passgate.hardware.reader import FullCropReader  # noqa: E402
from passgate.issuing import qr  # noqa: E402
from passgate.passes import base45  # noqa: E402
from passgate.passes.holder import parse_live_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCREEN_MM = 65.0  # a 390-point-wide phone screen (iPhone 12-15, Pixel 7: 64-66 mm)
DISTANCES_MM = (90, 120, 150, 200, 250)
SIZE = (640, 480)  # the lores stream the frame loop decodes
MAIN = (1280, 960)  # the main stream a candidate's crop comes from


def live_screens(shots: Path) -> list[Path]:
    found = sorted(shots.glob("holder-live*-390.png"))
    if not found:
        raise SystemExit(f"no holder-live*-390.png in {shots}: run tests/test_holder_app_browser.py"
                         " with PASSGATE_SCREENSHOT_DIR set")
    return found


def static_twin(screen: np.ndarray, live_text: str, ecc_l: bool = False) -> tuple[np.ndarray, str]:
    """The same page with the pass's static PG1: code in the live code's place, as large as
    whole pixels per module allow within the live code's symbol; ``ecc_l``: the live code
    itself at ECC L instead (a smaller version, larger modules: docs/pass-format.md 10.7)."""
    import zxingcpp

    (found,) = [r for r in zxingcpp.read_barcodes(screen) if r.text == live_text]
    pos = found.position
    xs = [p.x for p in (pos.top_left, pos.top_right, pos.bottom_left, pos.bottom_right)]
    ys = [p.y for p in (pos.top_left, pos.top_right, pos.bottom_left, pos.bottom_right)]
    left, top, side = min(xs), min(ys), max(xs) - min(xs) + 1
    if ecc_l:
        import segno

        plain = live_text
        modules = np.array(list(segno.make_qr(plain, error="l", boost_error=False).matrix),
                           dtype=bool)
    else:
        plain = "PG1:" + base45.encode(parse_live_text(live_text).l1)
        modules = qr.modules(plain)  # no quiet zone; the page's white is the quiet zone
    cell = side // modules.shape[0]
    img = np.kron(~modules, np.ones((cell, cell), dtype=bool)).astype(np.uint8) * 255
    out = screen.copy()
    out[top:top + side, left:left + side] = 255
    off = (side - img.shape[0]) // 2
    out[top + off:top + off + img.shape[0], left + off:left + off + img.shape[1]] = img
    return out, plain


def _homography(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
    """PIL perspective coefficients mapping output points ``dst`` to input points ``src``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)))


def camera_frame(screen: np.ndarray, distance_mm: float, rng: np.random.Generator,
                 autofocus: bool = False, size: tuple[int, int] = MAIN) -> np.ndarray:
    """One grayscale frame of ``size`` (the camera's main stream) of ``screen`` (the
    screenshot, 0-255) held up at ``distance_mm``; :func:`lores` gives the 640 x 480 frame.
    ``autofocus``: the lens is focused on the phone (no defocus), else fixed at 150 mm."""
    h, w = screen.shape
    k = size[0] / SIZE[0]  # main-stream pixels per lores pixel
    width_px = presentations.focal_px(size[0]) * SCREEN_MM / distance_mm
    scale = width_px / w
    black, white = rng.uniform(10, 40), rng.uniform(190, 250)  # a lit screen in the camera
    levels = black + screen.astype(np.float32) * ((white - black) / 255.0)
    # Down to twice the target size with a box filter (what the sensor's pixels integrate).
    ss = 1  # the main stream is twice the lores frame: enough to place the screen sub-pixel
    small = np.asarray(Image.fromarray(levels, mode="F").resize(
        (max(2, round(w * scale * ss)), max(2, round(h * scale * ss))), Image.Resampling.BOX))
    sh, sw = small.shape
    angle = math.radians(rng.uniform(-15, 15))
    tilt = rng.uniform(0, 20)
    keystone = 1 - 0.5 * math.sin(math.radians(tilt))  # the far edge looks shorter
    half_w, half_h = sw / 2, sh / 2
    corners = np.array([[-half_w, -half_h], [half_w, -half_h * keystone],
                        [half_w, half_h * keystone], [-half_w, half_h]])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    fw, fh = size[0] * ss, size[1] * ss
    # The QR (upper middle of the page) near the centre of the view, with some wander.
    centre = np.array([fw / 2 + rng.uniform(-0.1, 0.1) * fw, fh / 2 + sh * 0.08
                       + rng.uniform(-0.1, 0.1) * fh])
    quad = corners @ rot.T + centre
    src = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], float)
    warped = np.asarray(Image.fromarray(small, mode="F").transform(
        (fw, fh), Image.Transform.PERSPECTIVE, _homography(src, quad),
        Image.Resampling.BILINEAR, fillcolor=-1.0))
    back = np.kron(synth.background(SIZE, rng), np.ones((round(k * ss),) * 2, np.float32))
    frame = np.where(warped >= 0, warped, back)
    frame = frame.reshape(size[1], ss, size[0], ss).mean(axis=(1, 3))
    # lens softness (0.3-0.8 lores px, as the decoder corpus), plus the defocus of a lens
    # fixed at 150 mm (bench/presentations.py's model) unless it focuses on the phone
    sigma = k * rng.uniform(0.3, 0.8)
    if not autofocus:
        sigma += presentations.defocus_sigma(distance_mm, presentations.FOCUS_MM, size[0])
    frame = synth.blur(frame, sigma)
    if rng.random() < 0.5:
        spot = (centre[0] / ss + k * rng.uniform(-60, 60),
                centre[1] / ss + k * rng.uniform(-60, 60))
        frame = synth.glare(frame, spot, k * rng.uniform(25, 70), rng.uniform(60, 160))
    frame = synth.noise(frame, rng.uniform(2, 6), rng)
    return synth.to_uint8(frame)


def lores(main: np.ndarray) -> np.ndarray:
    """The 640 x 480 stream the loop decodes: the main frame scaled down by the camera."""
    k = main.shape[1] // SIZE[0]
    return main.reshape(SIZE[1], k, SIZE[0], k).mean(axis=(1, 3)).round().astype(np.uint8)


class MainCrops:
    """The camera's main stream for :class:`FullCropReader`: crops of the current main frame."""

    def __init__(self) -> None:
        self.main: np.ndarray | None = None

    def read_full_crop(self, box: tuple[int, int, int, int]) -> np.ndarray | None:
        assert self.main is not None
        k = self.main.shape[1] // SIZE[0]
        return self.main[box[1] * k:box[3] * k, box[0] * k:box[2] * k]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=Path, default=ROOT / "docs" / "screens")
    parser.add_argument("--frames", type=int, default=20, help="frames per screenshot and distance")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--distances", default=",".join(map(str, DISTANCES_MM)),
                        help="holding distances in mm, comma-separated")
    parser.add_argument("--cameras", default="fixed,autofocus")
    parser.add_argument("--ecc-l", action="store_true",
                        help="also the live code redrawn at ECC L ('live-L') in its place")
    args = parser.parse_args(argv)
    import zxingcpp

    decoder = ZxingDecoder()
    crops = MainCrops()
    reader = FullCropReader(ZxingDecoder(), crops, motion=False)
    print(measure.machine_line())
    print(f"phone screen {SCREEN_MM:.0f} mm wide (390 CSS px), {MAIN[0]}x{MAIN[1]} main stream, "
          f"{SIZE[0]}x{SIZE[1]} lores, lens fixed at 150 mm or autofocus; 'live' = the app's "
          "PG2: code as screenshot, 'static' = "
          "the same pass's PG1: code drawn the same size on the same page; 'lores' = zxing on "
          "the lores frame only, 'reader' = the checkpoint's reader (lores, then a "
          "full-resolution crop of a candidate)")
    ways = ("lores", "reader")
    cameras = {c: c == "autofocus" for c in args.cameras.split(",")}
    distances = [int(d) for d in args.distances.split(",")]
    kinds = ("live", "static", "live-L") if args.ecc_l else ("live", "static")
    totals = {(cam, kind, way): [0, 0] for cam in cameras for kind in kinds for way in ways}
    cpu = {"decoder": 0.0, "bare": 0.0}
    decodes = 0
    for index, path in enumerate(live_screens(args.shots)):
        with Image.open(path) as img:
            screen = np.asarray(img.convert("L"))
        found = decoder.decode(screen)
        live = next((t for t in found if t.startswith("PG2:")), None)
        if live is None:
            print(f"{path.name}: no live code read off the full-size screenshot: skipped")
            continue
        twin, plain = static_twin(screen, live)
        pages = [("live", screen, live), ("static", twin, plain)]
        if args.ecc_l:
            pages.append(("live-L", static_twin(screen, live, ecc_l=True)[0], live))
        code = parse_live_text(live)
        print(f"{path.name}: live code {len(live)} chars, QR version {qr.version_of(live)}; "
              f"static {len(plain)} chars, version {qr.version_of(plain)}; t={code.t} n={code.n}")
        for (cam, autofocus), d in itertools.product(cameras.items(), distances):
            counts = {}
            for kind, page, text in pages:
                # the same poses for live and static; others for each screenshot and camera
                rng = np.random.default_rng([args.seed, d, index, autofocus])
                ok = dict.fromkeys(ways, 0)
                for _ in range(args.frames):
                    crops.main = camera_frame(page, d, rng, autofocus)
                    frame = lores(crops.main)
                    c0 = time.process_time()
                    got = decoder.decode(frame)
                    c1 = time.process_time()
                    zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
                    c2 = time.process_time()
                    cpu["decoder"] += c1 - c0
                    cpu["bare"] += c2 - c1
                    decodes += 1
                    ok["lores"] += text in got
                    ok["reader"] += text in reader.decode(frame)
                for way in ways:
                    counts[kind, way] = ok[way]
                    totals[cam, kind, way][0] += ok[way]
                    totals[cam, kind, way][1] += args.frames
            px = presentations.focal_px(SIZE[0]) * SCREEN_MM / d / 390
            print(f"  {cam:9s} {d:3d} mm ({px:.2f} lores px per CSS px): " + ", ".join(
                f"{kind} {way} {counts[kind, way]}/{args.frames}"
                for kind in kinds for way in ways))
    for (cam, kind, way), (ok, n) in totals.items():
        print(f"total {cam} {kind} {way}: {ok}/{n} read ({ok / max(n, 1):.0%})")
    if decodes and cpu["bare"] > 0:
        print(f"lores decode CPU per frame: {cpu['decoder'] / decodes * 1e3:.2f} ms, bare "
              f"zxing-cpp (QR) {cpu['bare'] / decodes * 1e3:.2f} ms: "
              f"{cpu['decoder'] / cpu['bare']:.2f}x bare zxing-cpp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
