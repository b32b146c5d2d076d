"""Which QR decoder: decode rate per category and median time, on the generated corpus.

    .venv/bin/python bench/decoders.py                 # default corpus, both sizes (< 2 min)
    .venv/bin/python bench/decoders.py --per-category 50 --empty 100

Candidates: zxing-cpp with and without ``try_invert``, pyzbar QR-only, and pyzbar QR-only with
an inverted re-scan; each through ``passgate.hardware.decode``, exactly as the daemon calls it.
Times
are the calling thread's CPU time per call (``time.thread_time``; neither backend starts
threads of its own), which a machine shared with other work disturbs far less than
wall-clock time; on an idle core the two agree. Prints Markdown tables
(``docs/decoders.md`` quotes them) and writes nothing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import CATEGORIES, EMPTY, SIZES, Sample, generate  # noqa: E402
from passgate.hardware.decode import Decoder, ZbarDecoder, ZxingDecoder  # noqa: E402

CANDIDATES: dict[str, Callable[[], Decoder]] = {
    "zxing-cpp, try_invert (default)": lambda: ZxingDecoder(try_invert=True),
    "zxing-cpp, no inversion": lambda: ZxingDecoder(try_invert=False),
    "pyzbar QR-only": lambda: ZbarDecoder(try_invert=False),
    "pyzbar QR-only + inverted re-scan": lambda: ZbarDecoder(try_invert=True),
}


@dataclass
class Result:
    name: str
    ok: dict[str, int] = field(default_factory=dict)  # frames read right, per category
    misread: int = 0  # a text other than the pass (never seen; would be a decoder bug)
    false_pos: int = 0  # a text found in an empty frame
    ms_code: list[float] = field(default_factory=list)
    ms_empty: list[float] = field(default_factory=list)
    read: set[int] = field(default_factory=set)  # indices of code frames read right


def run(decoder: Decoder, name: str, corpus: list[Sample]) -> Result:
    res = Result(name)
    for s in corpus[:3]:  # warm-up: first calls load tables and allocate
        decoder.decode(s.frame)
    for i, s in enumerate(corpus):
        t0 = time.thread_time_ns()
        texts = decoder.decode(s.frame)
        ms = (time.thread_time_ns() - t0) / 1e6
        if s.text is None:
            res.ms_empty.append(ms)
            res.false_pos += bool(texts)
            continue
        res.ms_code.append(ms)
        if s.text in texts:
            res.ok[s.category] = res.ok.get(s.category, 0) + 1
            res.read.add(i)
        res.misread += sum(t != s.text for t in texts)
    return res


def table(results: list[Result], corpus: list[Sample]) -> list[str]:
    counts = {c: sum(s.category == c for s in corpus) for c in CATEGORIES}
    cats = [c for c in CATEGORIES if counts[c]]
    n_code = sum(counts.values())
    head = ["decoder", "decoded", *cats, "median CPU ms, code", "median CPU ms, empty",
            "misread / false +"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        total = sum(r.ok.values())
        row = [r.name, f"{100 * total / n_code:.0f}% ({total}/{n_code})"]
        row += [f"{100 * r.ok.get(c, 0) / counts[c]:.0f}%" for c in cats]
        row += [f"{statistics.median(r.ms_code):.2f}" if r.ms_code else "-",
                f"{statistics.median(r.ms_empty):.2f}" if r.ms_empty else "-",
                f"{r.misread} / {r.false_pos}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-category", type=int, default=20, help="code frames per category (20)")
    ap.add_argument("--empty", type=int, default=40, help="frames with no code (40)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", action="append", help="WxH (default: 640x480 and 1280x720)")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.size] if args.size else list(SIZES)
    decoders = {name: make() for name, make in CANDIDATES.items()}
    started = time.perf_counter()
    print(f"# decoders on {platform.machine()}, Python {platform.python_version()}, one thread")
    for size in sizes:
        t0 = time.perf_counter()
        corpus = list(generate(size, args.per_category, args.empty, args.seed))
        n_empty = sum(s.category == EMPTY for s in corpus)
        print(f"\n## {size[0]}x{size[1]}: {len(corpus)} frames ({args.per_category} per category, "
              f"{n_empty} empty), generated in {time.perf_counter() - t0:.1f} s\n")
        results = [run(d, name, corpus) for name, d in decoders.items()]
        print("\n".join(table(results, corpus)))
        base = results[0]
        for r in results[1:]:
            extra = r.read - base.read
            print(f"\nframes read by {r.name} but not by {base.name}: {len(extra)}", end="")
        print()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
