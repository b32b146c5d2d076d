"""Benchmark batch issuing: ``issue_batch`` for N passes, with and without PNGs. Prints only.

    .venv/bin/python bench/batch.py [--passes 10000] [--no-text-only]

The issue's bound: 10,000 passes (texts and PNGs) well under a minute. Runs in a temporary
folder that is removed afterwards; the progress bar goes to stderr as in the CLI. CPU time of
the process (PNG workers are threads) with wall beside it, medians of ``--repeats``, beside
the anchor measured in the same run: bare Ed25519 signing of as many messages
(``bench/measure.py``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.issuing.batch import issue_batch
from passgate.issuing.issuer import Issuer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402

ROWS = [("shopping", "gate-1", "AB12"), ("dog_walk", "gate-1 lobby", ""),
        ("work", "garage", "ZK-7781"), ("trash", "gate-2", "")]


def write_csv(path: Path, n: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["purpose", "zones", "hint", "from", "duration"])
        for i in range(n):
            purpose, zones, hint = ROWS[i % len(ROWS)]
            w.writerow([purpose, zones, hint, "2026-01-01T09:00:00Z",
                        "8h" if purpose == "work" else ""])


def run(issuer: Issuer, csv_path: Path, n: int, png: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="passgate-bench-") as out:
        count = issue_batch(issuer, csv_path, Path(out), png=png)
    assert count == n
    return n


def main_measure(issuer: Issuer, key: Ed25519PrivateKey, csv_path: Path, n: int,
                 text_only: bool, repeats: int) -> None:
    messages = [os.urandom(120) for _ in range(n)]

    def bare_sign() -> int:
        for m in messages:
            key.sign(m)
        return n

    fns = {"bare Ed25519 sign": bare_sign}
    if text_only:
        fns["issue_batch, texts only"] = lambda: run(issuer, csv_path, n, False)
    fns["issue_batch, texts + PNGs"] = lambda: run(issuer, csv_path, n, True)
    got = measure.repeat(fns, repeats, clock=time.process_time)
    anchor = got.pop("bare Ed25519 sign")
    for s in got.values():
        print(s.line(1e-3, "ms", anchor) + f"  -> {n * s.median:.2f} s CPU for {n:,}")
    print(anchor.line(1e-3, "ms"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=10_000)
    ap.add_argument("--no-text-only", action="store_true", help="skip the texts-only run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"passgate bench issuer").digest())
    issuer = Issuer(key, "Bench City")
    print("passgate bench/batch.py: per pass, CPU of the process")
    print(measure.machine_line())
    with tempfile.TemporaryDirectory(prefix="passgate-bench-csv-") as tmp:
        csv_path = Path(tmp) / "rows.csv"
        write_csv(csv_path, args.passes)
        main_measure(issuer, key, csv_path, args.passes, not args.no_text_only, args.repeats)

if __name__ == "__main__":
    main()
