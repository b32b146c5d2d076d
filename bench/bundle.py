"""A fleet-sized trust bundle: 1,000,000 revoked pass ids and 100 issuer keys.

Builds it from the operator's files (as ``passgate bundle build`` does), verifies it against
2-of-3 roots (``bundle inspect --roots``), installs it on a fresh device folder (the sync
agent's path) and loads it (the scanner at start). Each stage runs in its own Python process,
so its peak RSS is its own (printed with the interpreter-plus-imports baseline subtracted).

    python bench/bundle.py                      # 1,000,000 revoked, 100 issuers
    python bench/bundle.py --revoked 100000     # smaller
    python bench/bundle.py --work DIR --keep    # keep the files to look at

Then a day of revocations (``--per-day``, default 10,000, in ``--deltas`` hourly steps): the
revocation key signs each step, the collector makes the deltas, and the device applies the
chain on top of the installed bundle. Printed: the bytes a device downloads that day (delta
chain vs the full bundle it would otherwise fetch), and the CPU time to apply the chain beside
the full install's (the anchor), with the ratios.

Every stage prints its CPU time (the child's ``process_time``) beside its wall time, and the
head line names the machine (``bench/measure.py``). Nothing is asserted; the figures go in
docs/trust.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("build", "verify", "install", "load", "delta")
NOW = 1_790_000_000


def setup(work: Path, revoked: int, issuers: int) -> dict:
    """The operator's files: root keys, issuer keys with metadata, revoked ids, a policy."""
    from passgate.passes.keys import new_keypair

    t0 = time.perf_counter()
    for r in "abc":
        new_keypair(work / "roots" / r, "root")
    (work / "rootpubs").mkdir()
    for r in "abc":
        (work / "rootpubs" / f"{r}.pub").write_bytes((work / "roots" / r / "root.pub").read_bytes())
    for i in range(issuers):
        _, pub, _ = new_keypair(work / "issuers", f"issuer{i:03d}")
        pub.with_suffix(".toml").write_text(
            f'name = "issuer-{i:03d}"\nzones = ["gate-{i % 7}", "lobby"]\n'
            'valid_from = "2026-01-01T00:00:00Z"\nvalid_until = "2028-01-01T00:00:00Z"\n'
        )
    ids = os.urandom(12 * revoked)
    with open(work / "revoked.txt", "w", encoding="ascii") as f:
        for i in range(revoked):
            f.write(ids[12 * i : 12 * i + 12].hex() + "\n")
    new_keypair(work / "rk", "revocation")
    (work / "policy.toml").write_text('[fleet]\nmax_offline_age = "3d"\nclock_policy = "deny"\n')
    (work / "probe.txt").write_text(ids[:12].hex())
    return {"setup_s": time.perf_counter() - t0}


def stage(name: str, work: Path, per_day: int = 10_000, deltas: int = 24) -> dict:
    """Run one stage in this process; return its figures."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: F401

    from passgate.bundle import (
        RootSet,
        build_bundle,
        content_from_files,
        install_bundle,
        load_installed,
        read_bundle,
    )
    from passgate.bundle.format import Revoker
    from passgate.passes.keys import load_private, load_public, raw_public

    base_kb = _maxrss_kb()
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict = {}
    if name == "build":
        content = content_from_files(work / "issuers", work / "revoked.txt", work / "policy.toml")
        keys = [load_private(work / "roots" / r / "root.key") for r in "ab"]
        revoker = Revoker(raw_public(load_public(work / "rk" / "revocation.pub")), NOW + 86400)
        data = build_bundle(content, keys, 1, NOW, NOW + 7 * 86400, revokers=(revoker,))
        (work / "bundle.pgb").write_bytes(data)
        out["bytes"] = len(data)
    elif name == "verify":
        bundle = read_bundle(work / "bundle.pgb", RootSet.load(work / "rootpubs", 2))
        store, info = bundle.trust()
        out["revoked"], out["issuers"] = info.revoked, info.issuers
    elif name == "install":
        dev = work / "device"
        info = install_bundle(
            work / "bundle.pgb", dev, NOW + 60, roots=RootSet.load(work / "rootpubs", 2)
        )
        out["version"] = info.version
    elif name == "load":
        store, info = load_installed(work / "device")
        probe = bytes.fromhex((work / "probe.txt").read_text())
        out["probe_revoked"] = probe in store.revoked
    elif name == "delta":
        return day_of_deltas(work, per_day, deltas)
    out["seconds"] = time.perf_counter() - t0
    out["cpu_s"] = time.process_time() - c0
    out["peak_rss_mb"] = _maxrss_kb() / 1024
    out["baseline_mb"] = base_kb / 1024
    return out


def day_of_deltas(work: Path, per_day: int, steps: int) -> dict:
    """Sign ``steps`` revocations bundles adding ``per_day`` digests in all (the office's
    side), make the deltas (the collector's), then time applying the chain (the device's)."""
    from passgate.bundle import RootSet, read_bundle
    from passgate.bundle.build import build_revocations
    from passgate.bundle.delta import apply_chain, encode_chain, make_delta
    from passgate.passes.keys import load_private

    roots = RootSet.load(work / "rootpubs", 2)
    key = load_private(work / "rk" / "revocation.key")
    files = [(work / "bundle.pgb").read_bytes()]
    for step in range(steps):
        base = read_bundle(files[-1], roots)
        n = per_day // steps + (1 if step < per_day % steps else 0)
        files.append(build_revocations(base, key, os.urandom(16 * n), base.version + 1,
                                       NOW + 60 * (step + 1)))
    chain = encode_chain([make_delta(a, b) for a, b in zip(files, files[1:], strict=False)])
    t0, c0 = time.perf_counter(), time.process_time()
    info = apply_chain(chain, work / "device", NOW + 3600)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "chain_bytes": len(chain),
        "full_bytes": len(files[-1]),
        "version": info.version,
        "revoked": info.revoked,
        "peak_rss_mb": _maxrss_kb() / 1024,
        "baseline_mb": 0.0,
    }


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def run(
    revoked: int, issuers: int, work: Path, per_day: int = 10_000, deltas: int = 24
) -> list[tuple[str, dict]]:
    """Set up, then run each stage in a child process; return the figures."""
    figures = [("setup", setup(work, revoked, issuers))]
    for name in STAGES:
        proc = subprocess.run(
            [sys.executable, __file__, "--stage", name, "--work", str(work),
             "--per-day", str(per_day), "--deltas", str(deltas)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures.append((name, json.loads(proc.stdout.splitlines()[-1])))
    return figures


def report_day(f: dict, per_day: int, deltas: int) -> None:
    d, full = f["delta"], f["install"]
    print(f"a day of {per_day:,} new revocations in {deltas} revocations bundles:")
    print(f"  download per device: delta chain {d['chain_bytes']:,} bytes vs full bundle "
          f"{d['full_bytes']:,} bytes (ratio {d['chain_bytes'] / d['full_bytes']:.4f}); "
          f"x 2,000 devices: {2000 * d['chain_bytes'] / 1e6:,.0f} MB vs "
          f"{2000 * d['full_bytes'] / 1e9:,.1f} GB")
    print(f"  device CPU: the chain {d['cpu_s']:.2f} s ({d['cpu_s'] / deltas:.3f} s a delta) vs "
          f"one full install {full['cpu_s']:.2f} s (anchor; ratio a delta / full "
          f"{d['cpu_s'] / deltas / full['cpu_s']:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revoked", type=int, default=1_000_000)
    ap.add_argument("--issuers", type=int, default=100)
    ap.add_argument("--work", type=Path, help="folder for the files (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    ap.add_argument("--per-day", type=int, default=10_000, help="revocations added in a day")
    ap.add_argument("--deltas", type=int, default=24, help="revocations bundles in that day")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.work, args.per_day, args.deltas)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="pg-bundle-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import measure

        print(measure.machine_line())
        print(
            f"bundle with {args.revoked:,} revoked ids and {args.issuers} issuer keys, 2-of-3 roots"
        )
        figures = run(args.revoked, args.issuers, work, args.per_day, args.deltas)
        for name, f in figures:
            if name == "setup":
                print(f"  {'setup (files)':14s} {f['setup_s']:7.2f} s")
                continue
            extra = {
                k: v for k, v in f.items()
                if k not in ("seconds", "cpu_s", "peak_rss_mb", "baseline_mb")
            }
            print(
                f"  {name:14s} {f.get('cpu_s', 0.0):7.2f} s CPU ({f['seconds']:.2f} s wall)"
                f"   peak RSS {f['peak_rss_mb']:6.1f} MB "
                f"(+{f['peak_rss_mb'] - f['baseline_mb']:5.1f} over imports)   {extra}"
            )
        report_day(dict(figures), args.per_day, args.deltas)
    finally:
        if args.keep:
            print(f"files kept in {work}")
        elif args.work is None:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
