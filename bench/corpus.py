"""Decoder corpus: camera-like grayscale frames with a real passgate pass, by category.

Deterministic: the pass is signed with a fixed key (Ed25519 signatures are deterministic) and
every frame is drawn from ``numpy.random.default_rng([seed, size, category, index])``, so the
same arguments always give the same corpus, frame for frame. PIL and numpy only.

Categories (after /work/shared/FIELD_NOTES.md section 3): clean, small modules (2-3 px),
rotation up to 45 deg, perspective up to 30 deg, blur up to sigma 2.5, noise/contrast/JPEG,
inverted (dark-mode screen), phone screen with glare, combined; plus frames with no code.
Module sizes are in frame pixels and the same at every frame size (a larger frame shows
more of the scene around the code), so 1280x720 differs from 640x480 in cost, not content.

    python bench/corpus.py --out /tmp/corpus   # write PNGs to look at (nothing by default)
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from passgate.hardware.camera import synth

SIZES = ((640, 480), (1280, 720))
CATEGORIES = ("clean", "small", "rotation", "perspective", "blur", "noise", "inverted",
              "phone_glare", "combined")
EMPTY = "empty"


def bench_pass() -> str:
    """A typical pass (213 base45 characters, QR version 8 at ECC M) signed with a fixed key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from passgate.issuing.issuer import Issuer

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"passgate decoder corpus").digest())
    return Issuer(key, "NNov").issue("shopping", ["gate-1"], not_before=1_700_000_000,
                                     duration_s=3 * 3600, pass_id=bytes(range(12)))


def bench_live_code() -> str:
    """A typical live code (spec 1.2): the same pass bound to a holder key, and its level 2
    (409 base45 characters: QR version 12 at ECC M, 11 at ECC L)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from passgate.issuing.issuer import Issuer
    from passgate.passes import holder

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"passgate decoder corpus").digest())
    phone = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())
    bound = Issuer(key, "NNov").issue("shopping", ["gate-1"], not_before=1_700_000_000,
                                      duration_s=3 * 3600, pass_id=bytes(range(12)),
                                      holder_key=holder.compressed_point(phone))
    return holder.make_live_code(bound, phone, 1_700_000_600, 121)


@dataclass(frozen=True)
class Sample:
    category: str
    frame: np.ndarray  # H x W uint8
    text: str | None  # the pass in the frame, None for an empty frame


def _paper(frame, modules, pose, rng, **kw):
    return synth.place_code(frame, modules, pose, dark=rng.uniform(25, 60),
                            light=rng.uniform(165, 220), screen_modules=1, **kw)


def _phone(frame, modules, pose, rng, inverted=False):
    dark, light = rng.uniform(10, 45), rng.uniform(205, 250)
    if inverted:  # dark mode: light modules on a dark screen
        dark, light = light * 0.85, dark
    return synth.place_code(frame, modules, pose, dark=dark, light=light, screen_modules=2,
                            bezel_modules=3, bezel=rng.uniform(5, 30))


def _posed(rng, module, angle=8.0, tilt=8.0) -> synth.Pose:
    return synth.Pose(module_px=float(rng.uniform(*module)),
                      angle_deg=float(rng.uniform(-angle, angle)),
                      tilt_deg=float(rng.uniform(0, tilt)), tilt_dir_deg=float(rng.uniform(0, 360)))


def _make(category: str, modules: np.ndarray, size: tuple[int, int],
          rng: np.random.Generator) -> np.ndarray:
    frame = synth.background(size, rng)
    n = modules.shape[0]
    fit = lambda pose: synth.fit_pose(pose, n, size, rng)  # noqa: E731
    sigma = rng.uniform(1.5, 3.5)  # sensor noise in every frame
    optics = rng.uniform(0.3, 0.8)  # every lens and demosaic softens a little
    if category == EMPTY:
        if rng.random() < 0.5:  # a phone or a blank page in view, but no code on it
            blank = np.zeros_like(modules)
            pose = fit(_posed(rng, (3.5, 6), angle=30, tilt=20))
            (_phone if rng.random() < 0.5 else _paper)(frame, blank, pose, rng)
    elif category == "clean":
        _paper(frame, modules, fit(_posed(rng, (4, 6.5), angle=5, tilt=5)), rng)
    elif category == "small":
        _paper(frame, modules, fit(_posed(rng, (2.0, 3.0), angle=5, tilt=5)), rng)
    elif category == "rotation":
        angle = rng.uniform(0, 45) * rng.choice([-1, 1])
        _paper(frame, modules, fit(synth.Pose(rng.uniform(3.5, 5.5), angle)), rng)
    elif category == "perspective":
        pose = synth.Pose(rng.uniform(3.5, 5.5), rng.uniform(-5, 5), rng.uniform(0, 30),
                          rng.uniform(0, 360))
        _paper(frame, modules, fit(pose), rng)
    elif category == "blur":
        _paper(frame, modules, fit(_posed(rng, (3.5, 6))), rng)
        optics = rng.uniform(0.5, 2.5)
    elif category == "noise":
        _paper(frame, modules, fit(_posed(rng, (3.5, 6))), rng)
        lo = rng.uniform(20, 90)
        frame = synth.contrast(frame, lo, lo + rng.uniform(50, 120))
        sigma = rng.uniform(5, 15)
    elif category == "inverted":
        _phone(frame, modules, fit(_posed(rng, (3.5, 6), angle=15, tilt=15)), rng, inverted=True)
    elif category == "phone_glare":
        corners = _phone(frame, modules, fit(_posed(rng, (3.5, 6), angle=15, tilt=15)), rng)
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        at = rng.uniform(lo + (hi - lo) * 0.2, hi - (hi - lo) * 0.2)
        frame = synth.glare(frame, (float(at[0]), float(at[1])),
                            radius=float((hi - lo).mean() * rng.uniform(0.15, 0.5)),
                            strength=float(rng.uniform(150, 350)))  # its core saturates
    elif category == "combined":
        pose = synth.Pose(rng.uniform(3, 5), rng.uniform(-45, 45), rng.uniform(0, 25),
                          rng.uniform(0, 360))
        (_phone if rng.random() < 0.5 else _paper)(frame, modules, fit(pose), rng)
        optics = rng.uniform(0.6, 1.5)
        lo = rng.uniform(10, 60)
        frame = synth.contrast(frame, lo, lo + rng.uniform(90, 180))
        sigma = rng.uniform(3, 8)
    else:
        raise ValueError(f"unknown category {category!r}")
    frame = synth.illuminate(frame, rng, strength=float(rng.uniform(0, 0.3)))
    frame = synth.blur(frame, optics)
    frame = synth.noise(frame, sigma, rng)
    if category in ("noise", "combined"):
        quality = rng.integers(20, 60) if category == "noise" else rng.integers(40, 80)
        frame = synth.jpeg(frame, int(quality))
    return synth.to_uint8(frame)


def generate(size: tuple[int, int], per_category: int = 20, empty: int = 40, seed: int = 1,
             categories: tuple[str, ...] = CATEGORIES) -> Iterator[Sample]:
    """Yield ``per_category`` frames of each category and ``empty`` frames with no code."""
    text = bench_pass()
    modules = synth.qr_modules(text)
    size_key = size[0] * 10_000 + size[1]
    for category in (*categories, EMPTY):
        count = empty if category == EMPTY else per_category
        # keyed by the category's fixed number: a frame does not depend on the selection
        cat_key = (*CATEGORIES, EMPTY).index(category)
        for i in range(count):
            rng = np.random.default_rng([seed, size_key, cat_key, i])
            frame = _make(category, modules, size, rng)
            yield Sample(category, frame, None if category == EMPTY else text)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the frames as PNG files into this folder")
    ap.add_argument("--per-category", type=int, default=20)
    ap.add_argument("--empty", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    from PIL import Image

    text = bench_pass()
    out(f"pass: {len(text)} characters")
    for size in SIZES:
        count = 0
        for i, s in enumerate(generate(size, args.per_category, args.empty, args.seed)):
            count += 1
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                name = f"{size[0]}x{size[1]}-{s.category}-{i:03d}.png"
                Image.fromarray(s.frame).save(args.out / name)
        where = f" written to {args.out}" if args.out else ""
        out(f"{size[0]}x{size[1]}: {count} frames{where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
