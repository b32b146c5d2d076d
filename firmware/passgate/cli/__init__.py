"""``passgate`` command line. Each sub-command lives in its own module with a ``register``.

Exit codes are a contract: 0 success / accepted, 1 denied or a check failed, 2 usage or
configuration error (one line on stderr saying what is wrong).

Loading is lazy: a sub-command's module is imported only when that sub-command runs (or
shows its own ``--help``); the others appear in the parser as empty placeholders carrying
the one-line description in ``COMMANDS``, so ``passgate --help`` and argparse's errors
list every sub-command without importing any. Sub-command modules in turn import heavy
libraries inside their handlers. ``passgate verify`` thus loads no numpy, no other
sub-command and no ``passgate.checkpoint`` (``tests/test_cli_lazy.py``, which also checks
that each description here is the one its module registers).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable

from passgate.cli.helptext import document
from passgate.errors import PassgateError
from passgate.util import journald
from passgate.util.version import version

# Sub-command name -> (module under passgate.cli defining register(subparsers), the help
# line that module gives it). The order is the order of ``passgate --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "keys": ("keys", "make key pairs"),
    "issue": ("issue", "issue a pass (or --batch many)"),
    "verify": ("verify", "verify a pass offline"),
    "log": ("log", "show the scan journal (for security staff)"),
    "sync": ("sync", "upload the journal, fetch trust and time"),
    "bundle": ("bundle", "build, inspect and install signed trust bundles"),
    "update": ("update", "install the release the collector names, or roll back (root)"),
    "time": ("timecmd", "clock state and signed time tokens"),
    "provision": ("provision", "apply a device file (passgate-device.toml)"),
    "run": ("run", "run the checkpoint (--simulate: on a laptop, no hardware)"),
    "config": ("config", "check the configuration (--dump: print the effective config as TOML)"),
    "selftest": ("selftest", "on-site checks: camera, decode, display, outputs, clock, trust, "
                 "collector, disk, journal"),
}

EXIT_OK, EXIT_DENIED, EXIT_USAGE = 0, 1, 2


def build_parser(load: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the sub-commands named in ``load`` (default: all) registered by their
    modules, and the others as placeholders that only name and describe themselves."""
    wanted = set(COMMANDS) if load is None else set(load)
    parser = argparse.ArgumentParser(prog="passgate", description="Offline QR-pass checkpoint.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"passgate {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        if name in wanted:
            importlib.import_module(f"{__name__}.{module}").register(sub)
        else:
            sub.add_parser(name, help=help_line, add_help=False)
    document(parser)  # descriptions, exit codes and an example in every --help
    return parser


def command_named(argv: list[str]) -> str | None:
    """The sub-command ``argv`` runs: its first word that is not an option (the top level
    has only flags), if that is a sub-command's name; None lets argparse say what is wrong."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def complete() -> None:
    """Answer bash's completion request (argcomplete's protocol: the completion script in
    /usr/share/bash-completion/completions runs us with ``_ARGCOMPLETE`` set), over the full
    parser; argcomplete exits. Without argcomplete (python3-argcomplete) nothing happens."""
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(build_parser())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "_ARGCOMPLETE" in os.environ:
        complete()
    command = command_named(argv)
    parser = build_parser(() if command is None else (command,))
    args = parser.parse_args(argv)
    # Priorities journald files the lines under (<3>, <4>, <6>) when run by systemd.
    journald.configure(args.verbose)
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
