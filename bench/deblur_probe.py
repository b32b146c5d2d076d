"""Would a deblurring pass read the late presentations' crops? (issue 15, third round; a probe)

For each frame of the given presentations up to 0.5 s after the pass's entry, with the lens
waiting at 15 cm (as it does until the held candidate's scan lands), the main-stream crop around
the symbol is drawn by ``bench/presentations.py`` and decoded as the reader does (as given, then
its 2x2 means), then once more after a Wiener filter for a Gaussian blur of a given size. It
prints each frame and, per filter, the frames it newly reads and the frames it loses.

``--psf gauss`` draws the model's own defocus (a Gaussian, sigma = the blur circle / 2.4), so a
Wiener filter for the true sigma undoes exactly the kernel it was blurred with (an upper bound);
``--psf disc`` draws the physical shape instead: the sharp crop blurred by a disc of the same
blur circle, and fresh sensor noise of the model's level added after it. Nothing here is
shipped: the firmware does not know the distance of a symbol it has not located.

    .venv/bin/python bench/deblur_probe.py --seed 1 --only 13,214,216,274,354,356 --psf disc
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import presentations as pm  # noqa: E402
from corpus import bench_pass  # noqa: E402
from passgate.hardware.camera import synth  # noqa: E402
from passgate.hardware.decode import ZxingDecoder  # noqa: E402
from passgate.hardware.reader import widen  # noqa: E402


def wiener(img: np.ndarray, sigma: float, nsr: float = 0.01) -> np.ndarray:
    """``img`` deconvolved for a Gaussian blur of ``sigma`` pixels (noise-to-signal ``nsr``)."""
    f = img.astype(np.float32)
    fy = np.fft.fftfreq(f.shape[0])[:, None]
    fx = np.fft.rfftfreq(f.shape[1])[None, :]
    h = np.exp(-2 * (np.pi * sigma) ** 2 * (fx ** 2 + fy ** 2))
    out = np.fft.irfft2(np.fft.rfft2(f) * (h / (h * h + nsr)), s=f.shape)
    return np.asarray(np.clip(out, 0, 255).astype(np.uint8))


def disc(img: np.ndarray, diameter: float) -> np.ndarray:
    """``img`` blurred by an anti-aliased disc of ``diameter`` pixels (circular convolution)."""
    r = diameter / 2
    n = int(math.ceil(r)) + 1
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    k = np.clip(r + 0.5 - np.hypot(xx, yy), 0, 1)
    kernel = np.zeros(img.shape, np.float32)
    kernel[:2 * n + 1, :2 * n + 1] = k / k.sum()
    kernel = np.roll(kernel, (-n, -n), (0, 1))
    return np.fft.irfft2(np.fft.rfft2(img.astype(np.float32)) * np.fft.rfft2(kernel),
                         s=img.shape)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", required=True, help="comma-separated presentation indices")
    ap.add_argument("--psf", choices=("gauss", "disc"), default="disc")
    args = ap.parse_args(argv)
    text = bench_pass()
    modules = synth.qr_modules(text)
    zx = ZxingDecoder()
    gained: dict[str, int] = {}
    lost: dict[str, int] = {}
    cpu: dict[str, list[float]] = {}
    f = pm.focal_px(pm.LORES[0])
    for index in (int(i) for i in args.only.split(",")):
        p = pm.draw(index, args.seed, empty_share=0, max_exposure_ms=8.0, illuminator=True,
                    light=pm.BRIGHT_LED)
        for i in range(p.enter_frame, pm.FRAMES):
            t = (i - p.enter_frame) / pm.FPS
            if t > 0.5:
                break
            d, x, y = pm.state(p, t)
            half, cx, cy = f * p.symbol_mm / d / 2, 320 + f * x / d, 240 + f * y / d
            box = widen((int(cx - half), int(cy - half), int(cx + half), int(cy + half)),
                        pm.LORES)
            s = pm.MAIN[0] / pm.LORES[0]
            big = (int(box[0] * s), int(box[1] * s), int(box[2] * s), int(box[3] * s))
            sigma = pm.defocus_sigma(d, pm.FOCUS_MM, pm.MAIN[0])
            if args.psf == "disc":
                sharp = pm.render(p, i, modules, pm.MAIN, d, box=big)
                noise = 2.0 * pm.at_frame(p, i)[0].gain ** 0.75 * s
                rng = np.random.default_rng([index, i])
                crop = np.clip(disc(sharp, 2.4 * sigma) + rng.normal(0, noise, sharp.shape),
                               0, 255).astype(np.uint8)
            else:
                crop = pm.render(p, i, modules, pm.MAIN, pm.FOCUS_MM, box=big)
            half2 = np.asarray(Image.fromarray(crop).reduce(2))
            base = text in zx.decode(crop) or text in zx.decode(half2)
            tries = [("true sigma", crop, sigma, 0.01),
                     ("true sigma, 2x2 means", half2, sigma / 2, 0.01),
                     ("0.8 x true, 2x2 means", half2, 0.8 * sigma / 2, 0.02),
                     ("fixed 3 px", crop, 3.0, 0.01),
                     ("fixed 6 px, 2x2 means", half2, 3.0, 0.01)]
            line = []
            for name, view, size, nsr in tries:
                t0 = time.thread_time()
                ok = text in zx.decode(wiener(view, size, nsr))
                cpu.setdefault(name, []).append(time.thread_time() - t0)
                gained[name] = gained.get(name, 0) + (ok and not base)
                lost[name] = lost.get(name, 0) + (base and not ok)
                line.append(f"{name}: {int(ok)}")
            ppm = pm.px_per_module(p, d, pm.MAIN[0])
            print(f"#{index} frame {i} t={t:.2f} s {d:.0f} mm, blur sigma {sigma / ppm:.2f} "
                  f"module, crop {crop.shape[1]}x{crop.shape[0]}, read as is {int(base)}; "
                  + ", ".join(line), flush=True)
    print(f"\n## psf {args.psf}: frames a Wiener pass reads that the reader's decodes did not")
    for name in cpu:
        print(f"  {name:24s} gained {gained[name]:3d}, lost {lost[name]:3d}, CPU "
              f"{1e3 * statistics.median(cpu[name]):.1f} ms (median, filter + decode)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
