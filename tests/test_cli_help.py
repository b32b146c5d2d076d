"""Every sub-command's ``--help``, of ``passgate`` and ``passgate-collector``, has a
description, its exit codes and an example (passgate.cli.helptext), and each example is a
command line the parser accepts, so the help cannot teach a wrong one."""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex

import pytest

from passgate.cli import build_parser
from passgate.cli.helptext import EPILOGS, subcommands


def _collector_parser() -> argparse.ArgumentParser:
    pytest.importorskip("flask", reason="collector extra not installed")
    from passgate_collector.cli import build_parser as collector_parser

    return collector_parser()


def walk(parser: argparse.ArgumentParser, path: str):
    yield path, parser
    for name, _help, sub in subcommands(parser):
        yield from walk(sub, f"{path} {name}")


def all_commands():
    return [*walk(build_parser(), "passgate"), *walk(_collector_parser(), "passgate-collector")]


def help_of(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        parser.parse_args([*argv, "--help"])
    assert done.value.code == 0
    return out.getvalue()


def test_every_sub_command_help_has_a_description_exit_codes_and_an_example():
    seen = []
    for top, parser in (("passgate", build_parser()), ("passgate-collector", _collector_parser())):
        for path, _sub in walk(parser, top):
            text = help_of(parser, path.split()[1:])
            assert "exit codes:\n  0  success\n" in text, path
            assert "  2  usage or configuration error" in text, path
            example = EPILOGS[path][1]
            assert f"example:\n  {example}" in text, path
            if path != top:
                # The description paragraph sits between the usage and the arguments.
                body = text.split("\n\n")[1]
                assert body.strip() and not body.lstrip().startswith(("positional", "options")), \
                    (path, text)
            seen.append(path)
    assert "passgate bundle install" in seen and "passgate-collector token new" in seen
    assert len(seen) > 30


def test_exit_1_is_listed_only_where_the_command_has_one():
    text = help_of(build_parser(), ["verify"])
    assert "  1  the pass is denied" in text
    assert "\n  1  " not in help_of(build_parser(), ["keys", "new-issuer"])


@pytest.mark.parametrize("path", sorted(EPILOGS))
def test_each_example_is_a_command_line_the_parser_accepts(path):
    words = shlex.split(EPILOGS[path][1])
    if words[0] == "sudo":
        words = words[3:] if words[1] == "-u" else words[1:]
    parser = build_parser() if words[0] == "passgate" else _collector_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = parser.parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{path}: example rejected: {err.getvalue()}")
    assert args.command == words[1]


def test_a_sub_command_missing_from_the_table_is_an_error_not_a_bare_help():
    from passgate.cli.helptext import document

    parser = argparse.ArgumentParser(prog="passgate")
    parser.add_subparsers().add_parser("frobnicate", help="new and undocumented")
    with pytest.raises(KeyError, match="passgate frobnicate"):
        document(parser)
