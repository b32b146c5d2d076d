"""A fleet-sized trust bundle: 1,000,000 revoked pass ids and 100 issuer keys.

Builds it from the operator's files (as ``passgate bundle build`` does), verifies it against
2-of-3 roots (``bundle inspect --roots``), installs it on a fresh device folder (the sync
agent's path) and loads it (the scanner at start). Each stage runs in its own Python process,
so its peak RSS is its own (printed with the interpreter-plus-imports baseline subtracted).

    python bench/bundle.py                      # 1,000,000 revoked, 100 issuers
    python bench/bundle.py --revoked 100000     # smaller
    python bench/bundle.py --work DIR --keep    # keep the files to look at

Nothing is asserted; the figures go in docs/trust.md.
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

STAGES = ("build", "verify", "install", "load")
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
    (work / "policy.toml").write_text('[fleet]\nmax_offline_age = "3d"\nclock_policy = "deny"\n')
    (work / "probe.txt").write_text(ids[:12].hex())
    return {"setup_s": time.perf_counter() - t0}


def stage(name: str, work: Path) -> dict:
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
    from passgate.passes.keys import load_private

    base_kb = _maxrss_kb()
    t0 = time.perf_counter()
    out: dict = {}
    if name == "build":
        content = content_from_files(work / "issuers", work / "revoked.txt", work / "policy.toml")
        keys = [load_private(work / "roots" / r / "root.key") for r in "ab"]
        data = build_bundle(content, keys, 1, NOW, NOW + 7 * 86400)
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
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = _maxrss_kb() / 1024
    out["baseline_mb"] = base_kb / 1024
    return out


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def run(revoked: int, issuers: int, work: Path) -> list[tuple[str, dict]]:
    """Set up, then run each stage in a child process; return the figures."""
    figures = [("setup", setup(work, revoked, issuers))]
    for name in STAGES:
        proc = subprocess.run(
            [sys.executable, __file__, "--stage", name, "--work", str(work)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures.append((name, json.loads(proc.stdout.splitlines()[-1])))
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revoked", type=int, default=1_000_000)
    ap.add_argument("--issuers", type=int, default=100)
    ap.add_argument("--work", type=Path, help="folder for the files (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.work)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="pg-bundle-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(
            f"bundle with {args.revoked:,} revoked ids and {args.issuers} issuer keys, 2-of-3 roots"
        )
        for name, f in run(args.revoked, args.issuers, work):
            if name == "setup":
                print(f"  {'setup (files)':14s} {f['setup_s']:7.2f} s")
                continue
            extra = {
                k: v for k, v in f.items() if k not in ("seconds", "peak_rss_mb", "baseline_mb")
            }
            print(
                f"  {name:14s} {f['seconds']:7.2f} s   peak RSS {f['peak_rss_mb']:6.1f} MB "
                f"(+{f['peak_rss_mb'] - f['baseline_mb']:5.1f} over imports)   {extra}"
            )
    finally:
        if args.keep:
            print(f"files kept in {work}")
        elif args.work is None:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
