"""Man pages from the argparse definitions: ``python3 deploy/manpage.py passgate`` (or
``passgate-collector``) prints the roff page on stdout; ``deploy/package.sh`` ships it gzipped.

Rules kept here:
- The parser is the one source: NAME and DESCRIPTION from its description, SYNOPSIS from its
  usage, OPTIONS from its actions, COMMANDS from every sub-command (recursively, each with its
  own options), EXIT STATUS and EXAMPLES from passgate.cli.helptext's table. Nothing is
  written twice, so the page cannot drift from ``--help``.
- Reproducible: no date but ``SOURCE_DATE_EPOCH``'s (else none), no host names, a stable
  order (the parser's).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from passgate.cli.helptext import EPILOGS, subcommands
from passgate.util.version import version


def roff(text: str) -> str:
    """Escape text for roff: backslashes, a leading dot or quote, and hyphens as minus signs."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line
                     for line in text.split("\n"))


def options(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction) or a.help == argparse.SUPPRESS:
            continue
        flags = ", ".join(a.option_strings) or a.dest
        meta = "" if not a.option_strings or a.nargs == 0 else " " + (
            a.metavar if isinstance(a.metavar, str) else a.dest.upper())
        out += [".TP", f"\\fB{roff(flags)}\\fR{roff(meta)}", roff(a.help or "")]
    return out


def commands(parser: argparse.ArgumentParser, path: str) -> list[str]:
    out = []
    for name, help_line, sub in subcommands(parser):
        full = f"{path} {name}"
        out += [".SS " + roff(full), roff(sub.description or help_line), *options(sub)]
        out += commands(sub, full)
    return out


def manpage(parser: argparse.ArgumentParser, epoch: int | None) -> str:
    name = parser.prog
    date = time.strftime("%Y-%m-%d", time.gmtime(epoch)) if epoch is not None else ""
    exit_1, example = EPILOGS[name]
    usage = parser.format_usage().removeprefix("usage: ").strip()
    lines = [f'.TH {name.upper()} 1 "{date}" "passgate {version()}" "passgate manual"',
             ".SH NAME", f"{roff(name)} \\- {roff(parser.description or '')}",
             ".SH SYNOPSIS", roff(usage), ".SH DESCRIPTION", roff(parser.description or ""),
             ".SH OPTIONS", *options(parser), ".SH COMMANDS", *commands(parser, name),
             ".SH EXIT STATUS", ".TP", "0", "success"]
    if exit_1:
        lines += [".TP", "1", roff(exit_1)]
    lines += [".TP", "2", "usage or configuration error (one line on stderr says what is wrong)",
              ".SH EXAMPLES", ".nf", roff(example), ".fi", ".SH SEE ALSO",
              "Each sub-command's \\fB\\-\\-help\\fR; the documentation under docs/ in the "
              "source tree."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["passgate"]:
        from passgate.cli import build_parser
    elif argv[:1] == ["passgate-collector"]:
        from passgate_collector.cli import build_parser
    else:
        print("usage: manpage.py passgate|passgate-collector", file=sys.stderr)
        return 2
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    sys.stdout.write(manpage(build_parser(), int(epoch) if epoch else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
