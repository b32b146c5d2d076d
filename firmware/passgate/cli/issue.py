"""``passgate issue``: sign one pass (text on stdout) or a batch from CSV.

Rules (docs/pass-format.md): ``--from`` sets ``nbf``; ``iat`` is the time of issue, or
``nbf`` when ``--from`` lies in the past (the format's iat <= nbf);
every field is checked against the format's limits (the hint's character class included)
and a pass that would not fit the 1,024 characters a checkpoint reads is refused, all
before signing and all as usage errors (exit 2).

``--holder-key PGK1:...`` (or ``--holder-key-image PHOTO``: the holder app's key QR, read with
the checkpoint's decoder) makes a holder-bound pass (spec 1.2): the pass carries the holder's
public key and is shown as live codes by the holder app. A key code that is refused (prefix,
length, checksum, not a P-256 point), a photo with no key QR or with two different keys, and
a pass whose live code would not fit the 1,024 characters a checkpoint reads are usage errors.
``--app-url URL`` (with a holder key) also prints the link that opens the pass in the holder
app, ``URL#pass=`` and the pass text percent-encoded (docs/holder-app.md): the part after
``#`` never reaches a web server. The URL must be https (the app needs a secure context), or
http on localhost for a test, and have no fragment of its own.
"""

from __future__ import annotations

import argparse
import urllib.parse
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
    key = p.add_mutually_exclusive_group()
    key.add_argument("--holder-key", metavar="PGK1:...",
                     help="bind the pass to this holder key code (from the holder app)")
    key.add_argument("--holder-key-image", type=Path, metavar="PHOTO",
                     help="bind the pass to the holder key read from a photo or screenshot "
                          "of the holder app's key QR")
    p.add_argument("--app-url", metavar="URL",
                   help="with a holder key: also print the link that opens the pass in the "
                        "holder app at URL, e.g. https://passes.example/holder/")
    p.add_argument("--batch", type=Path, help="CSV with columns purpose,zones,hint,from,duration"
                   " and optionally holder_key (PGK1:... codes; empty: an unbound pass)")
    p.add_argument("--out", type=Path,
                   help="with --batch: an empty (or new) folder for passes.csv and PNGs")
    p.add_argument("--purposes", type=Path,
                   help="purpose table (default: purposes.toml beside the key, else the built-in)")
    p.add_argument("--no-png", action="store_true", help="with --batch: texts only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from passgate.errors import PassFormatError, UsageError
    from passgate.issuing.issuer import Issuer, pass_fields

    issuer = Issuer.from_key_file(args.key, args.issuer, purpose_table(args))
    if args.batch:
        if not args.out:
            raise UsageError("--batch needs --out DIR")
        if args.holder_key or args.holder_key_image:
            raise UsageError("with --batch, holder keys come from the CSV's holder_key column")
        if args.app_url:
            raise UsageError("--app-url is for one pass; with --batch, make the links from "
                             "passes.csv (docs/holder-app.md)")
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
    holder_key = read_holder_key(args)
    if args.app_url is not None:
        if holder_key is None:
            raise UsageError("--app-url needs --holder-key or --holder-key-image: only a "
                             "holder-bound pass goes into the holder app")
        check_app_url(args.app_url)
    try:
        text = issuer.issue(**fields, holder_key=holder_key)
    except PassFormatError as exc:
        raise UsageError(exc.detail) from None
    if args.png:
        from passgate.issuing.qr import write_png

        write_png(text, args.png)
    print(text)
    if args.app_url is not None:
        print(holder_link(args.app_url, text))
    return 0


def check_app_url(url: str) -> None:
    """Refuse (usage error) an app URL the holder app cannot run at or a link cannot use."""
    from passgate.errors import UsageError

    parts = urllib.parse.urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")
    if not (parts.scheme == "https" or local) or not parts.hostname:
        raise UsageError(f"--app-url {url!r}: must be an https URL (the holder app needs one)")
    if "#" in url:
        raise UsageError(f"--app-url {url!r}: no '#' (the pass goes in the link's fragment)")


def holder_link(app_url: str, text: str) -> str:
    """The link that opens pass ``text`` in the holder app at ``app_url``: the pass goes,
    percent-encoded, in the fragment (``#pass=``), which browsers never send to a server."""
    return f"{app_url}#pass={urllib.parse.quote(text, safe='')}"


def read_holder_key(args: argparse.Namespace) -> bytes | None:
    """The holder key of ``--holder-key`` or ``--holder-key-image``, or None (unbound)."""
    from passgate.errors import PassFormatError, UsageError
    from passgate.passes.holder import KEY_PREFIX, parse_holder_key

    if args.holder_key is not None:
        code = args.holder_key
    elif args.holder_key_image is not None:
        from PIL import Image

        from passgate.issuing.qr import decode_image_file

        try:
            found = decode_image_file(args.holder_key_image)
        except (OSError, Image.DecompressionBombError, ValueError) as exc:
            raise UsageError(f"{args.holder_key_image}: cannot read the image ({exc})") from None
        keys = sorted({t for t in found if t.strip().upper().startswith(KEY_PREFIX)})
        if not keys:
            raise UsageError(f"{args.holder_key_image}: no holder key QR ({KEY_PREFIX}...) found"
                             f" ({len(found)} other QR code(s))")
        if len(keys) > 1:
            raise UsageError(f"{args.holder_key_image}: {len(keys)} different holder key QR "
                             "codes in one image; crop it to one")
        code = keys[0]
    else:
        return None
    try:
        return parse_holder_key(code)
    except PassFormatError as exc:
        raise UsageError(f"holder key: {exc.detail}") from None


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
