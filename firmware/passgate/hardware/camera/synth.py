"""Synthetic camera frames: a QR code on paper or a phone, posed in 3-D, over a cluttered scene.

Shared by the simulated camera (``scene.py``, mild settings) and the decoder benchmark's corpus
(``bench/corpus.py``, harsh settings), so both render codes the same way. PIL and numpy only.

Geometry: the code is a flat square, rotated in its plane (``angle_deg``), tilted out of it
(``tilt_deg`` about an in-plane axis at ``tilt_dir_deg``) and seen through a pinhole camera
whose focal length is ``0.8 x`` the frame width (about 64 deg horizontal field of view). At the
code's centre one module measures ``module_px`` frame pixels. Rendering supersamples 2x and
box-filters down, so module edges are anti-aliased the way a lens blurs them slightly.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from passgate.errors import ArgumentError

SUPERSAMPLE = 2  # render at 2x and average down: anti-aliased edges
SOURCE_PX = 8  # source image pixels per module before the perspective warp
FOCAL = 0.8  # focal length as a fraction of frame width


def qr_modules(text: str, border: int = 4, error: str = "m") -> np.ndarray:
    """The QR symbol of ``text`` (passgate's ECC M, or ``error``) as a bool matrix, True = dark.

    ``border`` is the quiet zone in modules (the standard asks for 4).
    """
    import segno

    from passgate.issuing import qr

    symbol = qr.make(text) if error == "m" else segno.make_qr(text, error=error,
                                                              boost_error=False)
    rows = symbol.matrix_iter(scale=1, border=border)
    return np.array([list(r) for r in rows], dtype=bool)


@dataclass(frozen=True)
class Pose:
    """Where the code is: size, in-plane rotation, tilt, and centre in frame pixels."""

    module_px: float
    angle_deg: float = 0.0
    tilt_deg: float = 0.0
    tilt_dir_deg: float = 0.0
    center: tuple[float, float] | None = None  # None: a random spot where the code fits


def _project(points: np.ndarray, pose: Pose, width: int) -> np.ndarray:
    """Points on the code's plane (N x 2, origin at its centre) to offsets in the frame."""
    a = math.radians(pose.angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    p = points @ rot.T
    # Tilt about an in-plane axis: the component across the axis leans towards the camera.
    d = math.radians(pose.tilt_dir_deg)
    axis = np.array([math.cos(d), math.sin(d)])
    across = np.array([-axis[1], axis[0]])
    u = p @ axis
    v = p @ across
    t = math.radians(pose.tilt_deg)
    z = v * math.sin(t)
    v = v * math.cos(t)
    f = FOCAL * width
    scale = f / (f + z)
    xy = np.outer(u, axis) + np.outer(v, across)
    return xy * scale[:, None]


def _square(half: float) -> np.ndarray:
    return np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=float)


def fit_pose(pose: Pose, symbol_modules: int, size: tuple[int, int], rng: np.random.Generator,
             margin: float = 4.0) -> Pose:
    """Shrink ``pose`` until the symbol (quiet zone included) fits the frame; pick a centre.

    A given centre is kept if the symbol fits there; otherwise a random centre is drawn from
    the positions where it does.
    """
    w, h = size
    module = pose.module_px
    for _ in range(40):
        trial = Pose(module, pose.angle_deg, pose.tilt_deg, pose.tilt_dir_deg, pose.center)
        offs = _project(_square(symbol_modules * module / 2), trial, w)
        lo = -offs.min(axis=0) + margin
        hi = np.array([w, h], dtype=float) - offs.max(axis=0) - margin
        if np.all(hi >= lo):
            if pose.center is not None and np.all(lo <= pose.center) and np.all(pose.center <= hi):
                center = pose.center
            else:
                center = (float(rng.uniform(lo[0], hi[0])), float(rng.uniform(lo[1], hi[1])))
            return Pose(module, pose.angle_deg, pose.tilt_deg, pose.tilt_dir_deg, center)
        module *= 0.95
    raise ArgumentError(f"a {symbol_modules}-module code cannot fit a {w}x{h} frame")


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 matrix mapping the four ``src`` points onto the four ``dst`` points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows, dtype=float), np.array(rhs, dtype=float))
    return np.append(coeffs, 1.0).reshape(3, 3)


def place_code(frame: np.ndarray, modules: np.ndarray, pose: Pose, *, dark: float, light: float,
               screen_modules: int = 0, bezel_modules: int = 0, bezel: float = 20.0,
               view_width: int | None = None) -> np.ndarray:
    """Draw the code onto ``frame`` (float32 H x W, modified in place) and return its corners.

    ``modules`` is a matrix from :func:`qr_modules`; dark modules get ``dark``, the rest
    ``light`` (swap the two for a dark-mode screen). ``screen_modules`` extends the light area
    around the quiet zone (a phone screen); ``bezel_modules`` adds a ``bezel``-coloured frame
    around that (the phone's body). ``pose.center`` must be set (see :func:`fit_pose`).
    Returns the frame coordinates (4 x 2) of the symbol's corners, quiet zone included.
    ``view_width``: the width of the whole view when ``frame`` is a window of it (its
    perspective), with ``pose.center`` in the window's pixels; the same pixels come out.
    """
    h, w = frame.shape
    values = np.where(modules, max(dark, 0.0), max(light, 0.0)).astype(np.float32)
    values = np.pad(values, screen_modules, constant_values=light)
    values = np.pad(values, bezel_modules, constant_values=max(bezel, 0.0))
    n_all = values.shape[0]
    src = np.kron(values, np.ones((SOURCE_PX, SOURCE_PX), dtype=np.float32))
    side = float(n_all * SOURCE_PX)

    center = np.asarray(pose.center, dtype=float)
    view = view_width or w
    quad = _project(_square(n_all * pose.module_px / 2), pose, view) + center
    symbol = _project(_square(modules.shape[0] * pose.module_px / 2), pose, view) + center

    x0, y0 = np.maximum(np.floor(quad.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(quad.max(axis=0)).astype(int) + 1, [w, h])
    if x1 <= x0 or y1 <= y0:
        return symbol
    ss = SUPERSAMPLE
    out_pts = (quad - [x0, y0]) * ss
    src_pts = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=float)
    hm = _homography(out_pts, src_pts)  # PIL wants output -> input
    coeffs = tuple((hm.ravel() / hm[2, 2])[:8])
    out_size = ((x1 - x0) * ss, (y1 - y0) * ss)
    # One nearest-neighbour warp with -1 outside the quad gives code and coverage together;
    # box-filtering the premultiplied code and the coverage anti-aliases every edge.
    warped = np.asarray(Image.fromarray(src, mode="F").transform(
        out_size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.NEAREST, fillcolor=-1.0))
    inside = warped >= 0
    code_a = _box_down(np.where(inside, warped, 0.0), ss)
    mask_a = _box_down(inside.astype(np.float32), ss)
    region = frame[y0:y1, x0:x1]
    region *= 1.0 - mask_a
    region += code_a
    return symbol


def _box_down(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape[0] // k, a.shape[1] // k
    return a[: h * k, : w * k].reshape(h, k, w, k).mean(axis=(1, 3), dtype=np.float32)


def background(size: tuple[int, int], rng: np.random.Generator, clutter: int = 6) -> np.ndarray:
    """A plausible view with no code: a lit wall gradient, a few objects and a printed page."""
    w, h = size
    base = rng.uniform(70, 150)
    gx, gy = rng.uniform(-40, 40, size=2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = base + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
    for _ in range(clutter):
        rw, rh = rng.integers(w // 12, w // 3), rng.integers(h // 12, h // 3)
        x, y = rng.integers(0, w - rw), rng.integers(0, h - rh)
        frame[y:y + rh, x:x + rw] = rng.uniform(20, 230)
    if rng.random() < 0.7:  # a page of text: rows of short dark bars on white
        pw, ph = rng.integers(w // 5, w // 3), rng.integers(h // 4, h // 2)
        px, py = rng.integers(0, w - pw), rng.integers(0, h - ph)
        frame[py:py + ph, px:px + pw] = rng.uniform(180, 230)
        for ly in range(py + 6, py + ph - 6, 9):
            lx = px + 6
            while lx < px + pw - 12:
                wl = int(rng.integers(4, 18))
                frame[ly:ly + 4, lx:min(lx + wl, px + pw - 6)] = rng.uniform(20, 70)
                lx += wl + int(rng.integers(3, 6))
    return frame.astype(np.float32)


def illuminate(frame: np.ndarray, rng: np.random.Generator, strength: float = 0.25) -> np.ndarray:
    """Uneven light: multiply by a smooth ramp from ``1 - strength`` to 1 in a random direction."""
    h, w = frame.shape
    d = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (math.cos(d) * (xx / w - 0.5) + math.sin(d) * (yy / h - 0.5)) + 0.5
    return frame * (1.0 - strength * np.clip(ramp, 0.0, 1.0))


def glare(frame: np.ndarray, at: tuple[float, float], radius: float, strength: float) -> np.ndarray:
    """A specular reflection: an elliptic bright blob added (it washes out what lies under it)."""
    h, w = frame.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - at[0]) / radius) ** 2 + ((yy - at[1]) / (0.6 * radius)) ** 2
    return frame + strength * np.exp(-r2)


def contrast(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Squeeze 0..255 into lo..hi (a dim scene, a washed-out exposure)."""
    return lo + frame * ((hi - lo) / 255.0)


def blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian defocus blur; PIL's radius is the standard deviation."""
    img = Image.fromarray(to_uint8(frame)).filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(img, dtype=np.float32)


def noise(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian sensor noise."""
    return frame + rng.normal(0.0, sigma, size=frame.shape).astype(np.float32)


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip (a webcam's MJPEG stream, a forwarded screenshot)."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(frame)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("L"), dtype=np.float32)


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Round and clip to an 8-bit grayscale frame."""
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)
