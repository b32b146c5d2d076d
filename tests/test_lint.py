"""The repository keeps a clean lint baseline: ``ruff check`` (settings in pyproject.toml)
reports nothing. ruff comes with the ``test`` extra; without it the test skips, saying so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ruff")
    if found is None:
        if os.environ.get("CI"):  # CI installs the test extra: a missing linter is a broken setup
            pytest.fail("ruff is not installed, but CI must lint (pip install -e '.[test]')")
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [found]


def test_ruff_check_is_clean() -> None:
    done = subprocess.run([*ruff(), "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
