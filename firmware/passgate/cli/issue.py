"""``passgate issue``: sign one pass (text on stdout) or a batch from CSV.

Rules (docs/pass-format.md): ``--from`` sets ``nbf``; ``iat`` is the time of issue, or
``nbf`` when ``--from`` lies in the past (the format's iat <= nbf);
every field is checked against the format's limits (the hint's character class included)
and a pass that would not fit the 1,024 characters a checkpoint reads is refused, all
before signing and all as usage errors (exit 2).
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--out", type=Path,
                   help="with --batch: an empty (or new) folder for passes.csv and PNGs")
    p.add_argument("--purposes", type=Path,
                   help="purpose table (default: purposes.toml beside the key, else the built-in)")
    p.add_argument("--no-png", action="store_true", help="with --batch: texts only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from passgate.errors import UsageError
    from passgate.issuing.issuer import Issuer, pass_fields

    issuer = Issuer.from_key_file(args.key, args.issuer, purpose_table(args))
    if args.batch:
        if not args.out:
            raise UsageError("--batch needs --out DIR")
        from passgate.errors import BatchError
        from passgate.issuing.batch import issue_batch

        try:
            n = issue_batch(issuer, args.batch, args.out, png=not args.no_png)
        except BatchError as exc:
            # All or nothing: a row that cannot become a pass stops the batch before any file.
            raise BatchError(f"{exc} (batch refused: 0 issued, nothing written)") from None
        pngs = "" if args.no_png else f" and {n} PNGs in {args.out / 'png'}"
        print(f"batch: {n} issued, 0 refused; texts and pass ids in "
              f"{args.out / 'passes.csv'}{pngs}")
        return 0
    if not args.purpose or not args.zone:
        raise UsageError("--purpose and at least one --zone are required")
    fields = pass_fields(
        issuer.purposes, args.purpose, args.zone, args.hint, args.start, args.duration
    )
    text = issuer.issue(**fields)
    if args.png:
        from passgate.issuing.qr import write_png

        write_png(text, args.png)
    print(text)
    return 0


def purpose_table(args: argparse.Namespace):
    """The issuer's purpose table: --purposes, else purposes.toml beside the key, else built-in.

    It must be the table the fleet's checkpoints use (the bundle's policy), or passes carry
    codes the checkpoints read differently.
    """
    from passgate.passes.purposes import PurposeTable

    if args.purposes is not None:
        return PurposeTable.from_file(args.purposes)
    beside = Path(args.key).with_name("purposes.toml")
    return PurposeTable.from_file(beside) if beside.is_file() else PurposeTable.default()
