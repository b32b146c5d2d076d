"""Peak RSS of the scanner with a 1,000,000-revocation bundle. Prints figures only.

    .venv/bin/python bench/memory.py [--revoked 1000000] [--seconds 5]

Builds a signed bundle (``bench/bundle.py``'s operator files: ``--revoked`` ids, 100 issuers),
installs it on a fresh device folder, then runs the real checkpoint wiring (``passgate run``
with the bundle as its trust source, a folder camera of one empty 640x480 frame, GPIO on
MockFactory, a dummy OLED) for ``--seconds`` after its first frame, and reads the process's
VmHWM (peak RSS since exec). The anchor, measured the same way in the same run: the same
scanner with an empty trust folder, so the difference is what the bundle costs.
Aim: <= 80 MB peak with 1,000,000 revocations.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bundle as bundle_bench  # noqa: E402
import measure  # noqa: E402
import startup  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revoked", type=int, default=1_000_000)
    ap.add_argument("--issuers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0, help="frames after the first")
    args = ap.parse_args(argv)
    from passgate.bundle import RootSet, install_bundle
    from passgate.checkpoint import simulate

    print(f"passgate bench/memory.py: the scanner's peak RSS with {args.revoked:,} revocations")
    print(measure.machine_line())
    work = Path(tempfile.mkdtemp(prefix="pg-memory-"))
    try:
        bundle_bench.setup(work, args.revoked, args.issuers)
        built = bundle_bench.stage("build", work)
        # Install as of now (the scanner's clock is the system's), not the bench's fixed NOW.
        device = work / "device"
        install_bundle(work / "bundle.pgb", device, bundle_bench.NOW + 60,
                       roots=RootSet.load(work / "rootpubs", 2))
        state = work / "state"
        simulate.prepare(state, time.time())
        env = {**os.environ}
        with_bundle = startup.write_config(
            work, state, f'source = "bundle"\nbundle_dir = "{device}"')
        plain_dir = work / "plain"
        plain_dir.mkdir()
        plain = startup.write_config(plain_dir, state, f'source = "dir"\ndir = "{state / "trust"}"')
        cpu_b, _, hwm_b = startup.run_to_ready(with_bundle, env, args.seconds)
        cpu_p, _, hwm_p = startup.run_to_ready(plain, env, args.seconds)
    finally:
        shutil.rmtree(work)
    print(f"  bundle: {built['bytes']:,} bytes, {args.revoked:,} revoked, {args.issuers} issuers")
    print(f"  scanner with the bundle     peak RSS {hwm_b:6.1f} MB (start-up {cpu_b:.2f} s CPU)"
          f"  = {hwm_b / hwm_p:.2f}x the anchor (aim <= 80 MB)")
    print(f"  scanner, plain trust folder peak RSS {hwm_p:6.1f} MB (start-up {cpu_p:.2f} s CPU)"
          "  (anchor)")
    print(f"  the bundle costs {hwm_b - hwm_p:.1f} MB")


if __name__ == "__main__":
    main()
