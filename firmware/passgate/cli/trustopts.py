"""``passgate verify --bundle FILE --roots R``: the options and the trust loader they add.

Shared by ``verify`` and ``bundle`` (which also takes ``--roots``/``--threshold``), and kept
out of both sub-command modules so that ``passgate verify`` loads no other sub-command's
module (``tests/test_cli_lazy.py``). Everything heavy is imported inside the functions that
run: the bundle reader only when ``--bundle`` is given, the clock only without ``--at``.
A verdict against a bundle nobody checked would look like a real one: ``--bundle`` needs
``--roots``, unless ``--unverified-bundle`` says, for development, that it is unchecked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def roots_options(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument(
        "--roots", type=Path, help=f"root public keys: roots.toml, or a folder of *.pub{note}"
    )
    p.add_argument(
        "--threshold", type=int, help="with --roots as a *.pub folder: how many must sign"
    )


def add_verify_options(p: argparse.ArgumentParser) -> None:
    """``passgate verify --bundle FILE --roots R``: take the trust store from a bundle whose
    signatures are checked against root keys given on the command line."""
    p.add_argument(
        "--bundle", type=Path, help="verify against a signed bundle file instead of --trust"
    )
    roots_options(p, " to check the bundle's signatures (required with --bundle)")
    p.add_argument(
        "--unverified-bundle",
        action="store_true",
        help="development only: use --bundle without checking its signatures (no --roots)",
    )
    p.get_default("trust_loaders").append(bundle_trust)


def bundle_trust(args: argparse.Namespace):
    from passgate.errors import UsageError

    unverified = getattr(args, "unverified_bundle", False)
    if getattr(args, "bundle", None) is None:
        if unverified:
            raise UsageError("--unverified-bundle goes with --bundle FILE")
        return None
    from passgate.bundle import read_bundle, trust_status
    from passgate.util.timefmt import iso

    if getattr(args, "trust", None) is not None:
        raise UsageError("give --trust DIR or --bundle FILE, not both")
    root_set = roots(args)
    if root_set is None and not unverified:
        # A verdict against a bundle nobody checked would look like a real one: refuse.
        raise UsageError(
            "--bundle needs --roots R to check its signatures "
            "(--unverified-bundle skips the check, for development only)"
        )
    if root_set is not None and unverified:
        raise UsageError("give --roots R or --unverified-bundle, not both")

    bundle = read_bundle(args.bundle, root_set)
    store, info = bundle.trust()
    if info.verified:
        note = (
            f"bundle v{info.version} verified against the roots given with --roots "
            f"({root_set.describe()}): signed by {', '.join(info.signed_by)}"
        )
    else:
        note = (
            f"bundle v{info.version} NOT verified (--unverified-bundle): its signatures "
            "were not checked"
        )
    print(f"passgate: {note}", file=sys.stderr)
    st = trust_status(info, now(args.at, None)[0])
    if st.expired:
        print(f"passgate: warning: {st.message} (expiry {iso(info.expires)})", file=sys.stderr)
    return store


def roots(args: argparse.Namespace):
    if getattr(args, "roots", None) is None:
        return None
    from passgate.bundle import RootSet

    return RootSet.load(args.roots, args.threshold)


def now(at: str | None, clock_file: Path | None, cfg=None) -> tuple[float, str]:
    from passgate.errors import UsageError
    from passgate.util.timefmt import parse_instant

    if at:
        try:
            return float(parse_instant(at)), "--at"
        except ValueError as exc:
            raise UsageError(f"--at: {exc}") from None
    from passgate.cli.timecmd import effective_reading

    reading = effective_reading(clock_file, cfg)
    return reading.now, f"clock {reading.state.value}"


