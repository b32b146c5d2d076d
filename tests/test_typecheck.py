"""The type checker runs with the tests: mypy over the whole firmware package must report
nothing (``[tool.mypy]`` in pyproject.toml: strict on passes, bundle, clock, journal and the
checkpoint, whose seams are declared in :mod:`passgate.checkpoint.parts`).

A part that stops matching an interface the frame loop calls, or a call the loop makes that no
interface declares, fails here rather than at a door.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_reports_no_errors_on_the_firmware_package():
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):  # CI installs the test extra: a missing checker is a broken setup
            pytest.fail("mypy is not installed, but CI must type-check (pip install -e '.[test]')")
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    # The project's own config (pyproject.toml), run from the root; no cache so that a
    # stale cache never hides an error and parallel runs do not share one.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null",
         "firmware/passgate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mypy found errors:\n{proc.stdout}{proc.stderr}"
