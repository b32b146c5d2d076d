"""``passgate verify``: check a pass offline against a trust folder (or, later, a bundle)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a pass offline")
    p.add_argument("text", nargs="?", help="pass text (PG1:...); '-' reads stdin")
    p.add_argument("--image", type=Path, help="read the pass from a QR code in a picture")
    p.add_argument("--trust", type=Path, help="trust folder: issuer *.pub (+ revoked.txt)")
    p.add_argument("--zone", help="checkpoint zone (default: do not check zones)")
    p.add_argument("--at", help="check at this ISO-8601 time instead of now")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object (what the text line says, the holder hint included)")
    p.set_defaults(func=run, trust_loaders=[])
    from passgate.cli.trustopts import (
        add_verify_options,  # --bundle FILE [--roots R]: adds a trust loader
    )

    add_verify_options(p)


def load_trust(args: argparse.Namespace):
    """The trust store named on the command line. Other modules may add loaders (--bundle)."""
    from passgate.errors import UsageError
    from passgate.passes.truststore import TrustStore

    for loader in args.trust_loaders:
        store = loader(args)
        if store is not None:
            return store
    if args.trust is None:
        raise UsageError("--trust DIR is required")
    return TrustStore.from_dir(args.trust)


def read_text(args: argparse.Namespace) -> str:
    from passgate.errors import UsageError

    if args.image and args.text:
        raise UsageError("give a pass text or --image, not both")
    if args.image:
        from PIL import Image

        from passgate.issuing.qr import decode_image_file

        try:
            found = decode_image_file(args.image)
        except (OSError, Image.DecompressionBombError, ValueError) as exc:
            raise UsageError(f"{args.image}: cannot read image: {exc}") from None
        if not found:
            raise UsageError(f"{args.image}: no QR code found")
        return found[0]
    if args.text is None:
        raise UsageError("give a pass text, '-' for stdin, or --image FILE")
    if args.text == "-":
        from passgate.passes.format import MAX_TEXT

        return sys.stdin.read(MAX_TEXT + 1)  # longer than a pass can be: denied malformed
    return args.text


def run(args: argparse.Namespace) -> int:
    from passgate.cli import EXIT_DENIED, EXIT_OK
    from passgate.errors import UsageError
    from passgate.passes.verify import Verifier
    from passgate.util.timefmt import parse_instant

    text = read_text(args)
    try:
        now = parse_instant(args.at) if args.at else int(time.time())
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from None
    verdict = Verifier(load_trust(args)).check(text, now, args.zone)
    if args.json:
        # The holder hint, as the text line shows it: only for an accepted (verified) pass.
        hint = verdict.hint if verdict.accepted else None
        print(json.dumps({**verdict.to_json(), "hint": hint}, sort_keys=True))
    else:
        print(human_line(verdict))
    return EXIT_OK if verdict.accepted else EXIT_DENIED


def human_line(v) -> str:
    if v.accepted:
        hint = f", holder {v.hint}" if v.hint else ""
        shown = {"live": ", live code", "bound": ", holder-bound pass shown without its live code"}
        how = shown.get(v.binding.value, "") if v.binding is not None else ""
        return f"ACCEPT {v.purpose}: {v.detail} (issuer {v.issuer}, key {v.kid}{hint}{how})"
    return f"DENY {v.reason.value}: {v.detail}" + (f" (key {v.kid})" if v.kid else "")
