"""docs/technician.md and its OLED pictures: drawn by the firmware, so they cannot drift.

``docs/screens/make_screens.py`` renders every picture with ``passgate.hardware.display.render``;
here each one is regenerated and compared pixel by pixel with the committed PNG. On a
deliberate change to a screen, run the script and commit the new pictures.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from PIL import Image

from passgate.hardware.display import render
from passgate.selftest.checks import check_display

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "technician.md"
SCREENS = ROOT / "docs" / "screens"


def _make_screens():
    spec = importlib.util.spec_from_file_location("make_screens", SCREENS / "make_screens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _make_screens()
NAMES = list(MAKE.screens())


@pytest.mark.parametrize("name", NAMES)
def test_committed_picture_matches_the_renderer(name):
    path = SCREENS / f"{name}.png"
    assert path.is_file(), f"{path.name} missing: run docs/screens/make_screens.py"
    fresh = MAKE.picture(MAKE.screens()[name])
    committed = Image.open(path).convert("L")
    assert committed.size == fresh.size
    assert committed.tobytes() == fresh.tobytes(), (
        f"{path.name} differs from what the firmware draws: run docs/screens/make_screens.py")


def test_the_pictures_are_the_panel_enlarged_4x():
    screen = MAKE.screens()["idle"]
    pic = MAKE.picture(screen)
    b = MAKE.BEZEL
    assert pic.size == (128 * 4 + 2 * b, 64 * 4 + 2 * b)
    panel = render(screen)
    for x, y in [(0, 0), (5, 2), (64, 30), (127, 63), (100, 12)]:
        lit = panel.getpixel((x, y)) != 0
        block = {pic.getpixel((b + 4 * x + dx, b + 4 * y + dy)) for dx in range(4)
                 for dy in range(4)}
        assert block == ({255} if lit else {0})


def test_check_mode_finds_no_difference_and_no_stray_files(capsys):
    assert MAKE.main(["--check"]) == 0
    assert "0 of" in capsys.readouterr().out


def test_the_document_shows_every_picture_and_only_existing_ones():
    text = DOC.read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\(screens/([a-z0-9-]+)\.png\)", text))
    assert shown == set(NAMES)


def test_the_document_keeps_its_order():
    headings = re.findall(r"^## (.+)$", DOC.read_text(encoding="utf-8"), re.M)
    words = ["flash", "mount", "first boot", "oled", "self-test", "replacing", "troubleshooting",
             "updating"]
    assert [next(w for w in words if w in h.lower()) for h in headings] == words


def test_provisioning_titles_are_the_ones_the_firmware_uses():
    source = (ROOT / "firmware" / "passgate" / "cli" / "provision.py").read_text("utf-8")
    for title in MAKE.PROVISION_TITLES:
        assert f'"{title}"' in source, f"passgate provision no longer shows {title!r}"
    shown = {s.title for s in MAKE.screens().values() if type(s).__name__ == "MessageScreen"}
    assert set(MAKE.PROVISION_TITLES) <= shown


def test_the_selftest_pictures_are_what_the_selftest_draws():
    pushed = []

    class Out:
        def display(self, image):
            pushed.append(image.tobytes())

        def cleanup(self):
            pass

    check_display(lambda: Out(), sleep=lambda s: None)
    names = ["selftest-pattern-0", "selftest-pattern-1", "selftest-message"]
    assert pushed == [render(MAKE.screens()[n]).tobytes() for n in names]
