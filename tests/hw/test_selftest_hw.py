"""``passgate selftest`` on a real checkpoint (marker ``hardware``: deselected by default).

Run on the Pi, with the scanner stopped and the test card held at the marked spot::

    sudo systemctl stop passgate-scanner
    sudo /opt/passgate/venv/bin/python -m pytest -m hardware tests/hw/test_selftest_hw.py -s
    sudo systemctl start passgate-scanner

It drives the real camera, OLED and pins (the relay clicks) and prints every figure, so the
provisional camera thresholds in ``passgate.selftest.checks.CameraLimits`` can be checked against a
real Camera Module 3. Not run in CI: there is no Pi there.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from passgate.cli import build_parser
from passgate.cli.selftest import selftest

CONFIG = Path(os.environ.get("PASSGATE_CONFIG", "/etc/passgate/passgate.toml"))

pytestmark = pytest.mark.hardware


def test_selftest_on_the_device_passes_the_hardware_checks():
    if not CONFIG.is_file():
        pytest.skip(f"no checkpoint config at {CONFIG}")
    args = build_parser().parse_args(["selftest", "--config", str(CONFIG), "--json"])
    out = io.StringIO()
    code = selftest(args, out=out)
    doc = json.loads(out.getvalue())
    for r in doc["results"]:
        print(f"{r['status']:<4}  {r['name']:<9}  {r['detail']}")
        print(f"      figures: {r['figures']}")
    status = {r["name"]: r["status"] for r in doc["results"]}
    assert status["camera"] in ("PASS", "WARN")
    assert status["display"] == "PASS"
    assert status["signals"] == "PASS"
    assert status["journal"] == "PASS"
    assert code == (1 if "FAIL" in status.values() else 0)
