"""The wiring documentation agrees with the firmware's pin defaults."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from PIL import Image

from passgate.config.schema import SignalsSection

HW = Path(__file__).resolve().parent.parent / "hardware"


def test_pin_table_matches_config_defaults():
    table = (HW / "README.md").read_text()
    defaults = {f.name: f.default for f in dataclasses.fields(SignalsSection)}
    for key in ("buzzer_pin", "green_pin", "red_pin", "relay_pin"):
        row = next(line for line in table.splitlines() if f"`signals.{key}`" in line)
        assert re.search(rf"\| GPIO{defaults[key]} \|", row), (key, row)


def test_wiring_picture_is_current(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw_wiring", HW / "draw_wiring.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fresh = Image.open(mod.draw(tmp_path / "wiring.png")).convert("RGB")
    committed = Image.open(HW / "wiring.png").convert("RGB")
    stale = "run hardware/draw_wiring.py and commit wiring.png"
    assert fresh.tobytes() == committed.tobytes(), stale
