"""``passgate`` command line. Each sub-command lives in its own module with a ``register``.

Exit codes are a contract: 0 success / accepted, 1 denied or a check failed, 2 usage or
configuration error (one line on stderr saying what is wrong).
Sub-command modules import heavy libraries inside their handlers, so ``passgate --help``
and start-up stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from passgate.errors import PassgateError

# Module names under passgate.cli; each defines register(subparsers).
COMMANDS = ("keys", "issue", "verify", "log", "sync", "bundle", "timecmd", "provision",
            "run", "config", "selftest")

EXIT_OK, EXIT_DENIED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passgate", description="Offline QR-pass checkpoint.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except PassgateError as exc:
        print(f"passgate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        # A file or folder the command cannot read or write: one line, not a traceback.
        hint = " (run it with sudo?)" if isinstance(exc, PermissionError) else ""
        print(f"passgate: error: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
