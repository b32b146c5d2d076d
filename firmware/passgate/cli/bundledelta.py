"""``passgate bundle revoke`` and ``passgate bundle delta``: the online half of the trust chain.

``revoke`` signs, with a revocation key the roots authorised (``bundle build --revoker``), a
bundle that follows a given one and only adds revocations; it checks the base against the root
keys first, so it never builds what a device would refuse. ``delta`` writes the delta between
two bundle files (the collector makes the same ones itself for ``GET /v1/bundle?have=N``).
Exit codes as ``passgate bundle``: 0 done, 1 refused, 2 usage or unreadable input.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from passgate.cli.trustopts import roots as _roots
from passgate.cli.trustopts import roots_options as _roots_options


def register(bsub: argparse._SubParsersAction) -> None:
    r = bsub.add_parser("revoke", help="add revocations with an online revocation key")
    r.add_argument("--base", type=Path, required=True, help="the newest published bundle")
    _roots_options(r, " (required: the base is checked)")
    r.add_argument("--key", type=Path, required=True, help="revocation private key")
    r.add_argument(
        "--revoked", type=Path, required=True, help="new revoked pass ids: hex per line, or *.bin"
    )
    r.add_argument("--version", type=int, required=True, help="the base's version + 1")
    r.add_argument("--out", type=Path, required=True, help="bundle file to write")
    r.set_defaults(func=revoke)
    d = bsub.add_parser("delta", help="write the delta between two bundle files")
    d.add_argument("base", type=Path)
    d.add_argument("target", type=Path)
    d.add_argument("--out", type=Path, required=True, help="delta file to write")
    d.set_defaults(func=delta)


def revoke(args: argparse.Namespace) -> int:
    from passgate.bundle import BundleRefused, read_bundle
    from passgate.bundle.build import build_revocations, read_revoked
    from passgate.errors import UsageError
    from passgate.passes.keys import load_private
    from passgate.util.atomicfile import write_atomic

    roots = _roots(args)
    if roots is None:
        raise UsageError("--roots is required: the base must verify before anything is added")
    try:
        base = read_bundle(args.base, roots)
    except BundleRefused as exc:
        print(f"passgate bundle revoke: base refused ({exc.reason.value}): {exc}")
        return 1
    new = read_revoked(args.revoked).packed()
    data = build_revocations(base, load_private(args.key), new, args.version, int(time.time()))
    write_atomic(args.out, data)
    print(f"revocations v{args.version}: {len(new) // 16} added on v{base.version}, "
          f"{len(data)} bytes")
    return 0


def delta(args: argparse.Namespace) -> int:
    from passgate.bundle.delta import make_delta
    from passgate.util.atomicfile import write_atomic

    data = make_delta(args.base.read_bytes(), args.target.read_bytes())
    write_atomic(args.out, data)
    print(f"delta: {len(data)} bytes (target {args.target.stat().st_size} bytes)")
    return 0
