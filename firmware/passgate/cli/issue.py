"""``passgate issue``: sign one pass (text on stdout) or a batch from CSV."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("issue", help="issue a pass (or --batch many)")
    p.add_argument("--key", type=Path, required=True, help="issuer private key (issuer.key)")
    p.add_argument("--issuer", help="issuer name (default: from issuer.toml beside the key)")
    p.add_argument("--purpose", help="purpose id, e.g. shopping, dog_walk, work")
    p.add_argument("--zone", action="append", default=[], help="zone the pass admits to (repeat)")
    p.add_argument("--hint", help="optional holder hint, at most 12 characters (no names)")
    p.add_argument("--from", dest="start", help="start, ISO-8601 (default: now)")
    p.add_argument("--duration", help="validity, e.g. 3h, 30m (default: the purpose's maximum)")
    p.add_argument("--png", type=Path, help="also write the QR code as a PNG")
    p.add_argument("--batch", type=Path, help="CSV with columns purpose,zones,hint,from,duration")
    p.add_argument("--out", type=Path, help="with --batch: folder for passes.txt and PNGs")
    p.add_argument("--no-png", action="store_true", help="with --batch: texts only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..issuer import Issuer
    from . import UsageError

    issuer = Issuer.from_key_file(args.key, args.issuer)
    if args.batch:
        if not args.out:
            raise UsageError("--batch needs --out DIR")
        from ..batch import issue_batch

        issue_batch(issuer, args.batch, args.out, png=not args.no_png)
        return 0
    if not args.purpose or not args.zone:
        raise UsageError("--purpose and at least one --zone are required")
    text = issuer.issue(**pass_fields(args.purpose, args.zone, args.hint, args.start, args.duration))
    if args.png:
        from ..qr import write_png

        write_png(text, args.png)
    print(text)
    return 0


def pass_fields(purpose: str, zones: list[str], hint: str | None, start: str | None,
                duration: str | None) -> dict:
    """Turn command-line or CSV strings into ``Issuer.issue`` arguments (UsageError if bad)."""
    from ..errors import PassFormatError
    from ..purposes import PurposeTable
    from ..timefmt import parse_duration, parse_instant
    from . import UsageError

    try:
        not_before = parse_instant(start) if start else int(time.time())
        if duration:
            duration_s = parse_duration(duration)
        else:
            known = PurposeTable.default().get(purpose)
            if known is None or known.max_s is None:
                raise UsageError(f"--duration is required for purpose {purpose!r}")
            duration_s = known.max_s
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if duration_s <= 0:
        raise UsageError("duration must be positive")
    if hint is not None and len(hint) > 12:
        raise UsageError("--hint is at most 12 characters")
    fields = dict(purpose=purpose, zones=zones, not_before=not_before, duration_s=duration_s, hint=hint)
    try:
        from ..passformat import Claims

        Claims("x", b"\0" * 12, not_before, not_before + duration_s, not_before, purpose,
               tuple(zones), hint or None).validate()
    except PassFormatError as exc:
        raise UsageError(exc.detail) from None
    return fields
