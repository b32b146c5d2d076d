"""The command line loads only what the sub-command it runs needs.

Rules (``passgate.cli``): ``passgate --help`` lists every sub-command with its one-line
description and imports none of their modules; ``passgate verify`` (a real verify, and its
``--help``) imports no numpy, no PIL (unless ``--image``), no other sub-command's module, no
``passgate.checkpoint`` and nothing of ``passgate.sync``. Each probe runs in a fresh
interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import passgate
from passgate.cli import COMMANDS, build_parser, main
from passgate.issuing import qr

AT = "2026-01-01T10:00:00Z"
SUBCOMMAND_MODULES = {f"passgate.cli.{module}" for module, _help in COMMANDS.values()}

# Runs passgate.cli.main(argv) and prints, as its last stdout line, the exit code and the
# modules then loaded.
PROBE = """
import json, sys
from passgate.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def probe(*argv: str) -> tuple[int, set[str], str]:
    """``passgate ARGV`` in a new interpreter: (exit code, modules loaded, its output)."""
    env = dict(os.environ)
    source_root = str(Path(passgate.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source_root, env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, timeout=120, env=env)
    *output, last = done.stdout.rstrip("\n").split("\n")
    result = json.loads(last)
    return int(result["code"] or 0), set(result["modules"]), "\n".join(output) + done.stderr


@pytest.fixture
def signed(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[str, Path]:
    """A pass valid at ``AT`` and its issuer's folder (which a trust folder may be)."""
    folder = tmp_path / "iss"
    assert main(["keys", "new-issuer", "--out", str(folder), "--name", "Lazy City"]) == 0
    capsys.readouterr()
    assert main(["issue", "--key", str(folder / "issuer.key"), "--purpose", "shopping",
                 "--zone", "gate-1", "--from", "2026-01-01T09:30:00Z"]) == 0
    return capsys.readouterr().out.strip(), folder


def heavy(modules: set[str]) -> set[str]:
    """What a plain verify must not load, among ``modules``."""
    return {m for m in modules
            if m.split(".")[0] in ("numpy", "PIL", "cv2", "zxingcpp", "passgate_collector")
            or m.startswith(("passgate.checkpoint", "passgate.sync", "passgate.hardware"))
            or (m in SUBCOMMAND_MODULES and m != "passgate.cli.verify")}


def test_top_level_help_lists_every_subcommand_without_importing_one() -> None:
    code, modules, out = probe("--help")
    assert code == 0
    for name, (_module, help_line) in COMMANDS.items():
        assert name in out and help_line.split()[0] in out
    assert not modules & SUBCOMMAND_MODULES


def test_an_unknown_subcommand_is_a_usage_error_naming_all_without_importing_them() -> None:
    code, modules, out = probe("bogus")
    assert code == 2 and "invalid choice: 'bogus'" in out
    assert all(repr(name) in out for name in COMMANDS)
    assert not modules & SUBCOMMAND_MODULES


def test_verify_help_loads_only_verify() -> None:
    code, modules, out = probe("verify", "--help")
    assert code == 0 and "--trust" in out and "--bundle" in out
    assert "passgate.cli.verify" in modules
    assert heavy(modules) == set()


def test_a_real_verify_loads_no_numpy_pil_checkpoint_or_other_subcommand(signed) -> None:
    text, trust = signed
    code, modules, out = probe("verify", text, "--trust", str(trust), "--at", AT)
    assert code == 0 and out.startswith("ACCEPT shopping"), out
    assert "passgate.passes.revocation" in modules and "passgate.passes.base45" in modules
    assert heavy(modules) == set()


def test_verify_image_loads_pil_when_asked(signed, tmp_path: Path) -> None:
    """The control: the probe does see what a sub-command imports."""
    text, trust = signed
    png = tmp_path / "pass.png"
    qr.write_png(text, png)
    code, modules, out = probe("verify", "--image", str(png), "--trust", str(trust), "--at", AT)
    assert code == 0 and out.startswith("ACCEPT shopping"), out
    assert "PIL" in modules and not modules & (SUBCOMMAND_MODULES - {"passgate.cli.verify"})


def test_each_description_is_the_one_its_module_registers() -> None:
    """The placeholders' help lines in COMMANDS cannot drift from the modules' own."""
    full = build_parser()
    placeholders = build_parser(())
    assert full.format_help() == placeholders.format_help()
    sub = next(a for a in full._actions if a.dest == "command")
    registered = {a.dest: a.help for a in sub._choices_actions}
    assert registered == {name: help_line for name, (_m, help_line) in COMMANDS.items()}
