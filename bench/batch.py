"""Benchmark batch issuing: ``issue_batch`` for N passes, with and without PNGs. Prints only.

    .venv/bin/python bench/batch.py [--passes 10000] [--no-text-only]

The issue's bound: 10,000 passes (texts and PNGs) well under a minute. Runs in a temporary
folder that is removed afterwards; the progress bar goes to stderr as in the CLI.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.issuing.batch import issue_batch
from passgate.issuing.issuer import Issuer

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


def run(issuer: Issuer, csv_path: Path, n: int, png: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="passgate-bench-") as out:
        t0 = time.perf_counter()
        count = issue_batch(issuer, csv_path, Path(out), png=png)
        took = time.perf_counter() - t0
        pngs = len(os.listdir(Path(out) / "png")) if png else 0
    assert count == n
    label = f"texts + {pngs:,} PNGs" if png else "texts only"
    print(f"  {n:,} passes, {label:22s} {took:7.2f} s  ({took / n * 1e3:.2f} ms per pass)")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=10_000)
    ap.add_argument("--no-text-only", action="store_true", help="skip the texts-only run")
    args = ap.parse_args()
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"passgate bench issuer").digest())
    issuer = Issuer(key, "Bench City")
    print(f"passgate bench/batch.py: {os.cpu_count()} CPUs visible")
    with tempfile.TemporaryDirectory(prefix="passgate-bench-csv-") as tmp:
        csv_path = Path(tmp) / "rows.csv"
        write_csv(csv_path, args.passes)
        if not args.no_text_only:
            run(issuer, csv_path, args.passes, png=False)
        run(issuer, csv_path, args.passes, png=True)


if __name__ == "__main__":
    main()
