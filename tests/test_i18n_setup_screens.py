"""The scanner's screens outside the frame loop in the device's language (issue 14, point 2):
"not set up" and "journal key damaged" while waiting for setup, the self-test's OLED message,
the provisioning results. Each follows the config's ``[display] language``; with no config
they are English. The pictures themselves are in tests/reference/<lang>/ (setup_*,
selftest_message, provision_*), checked by tests/test_i18n.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from passgate.checkpoint import simulate
from passgate.checkpoint.setupwait import (
    KEY_DAMAGED,
    NOT_SET_UP,
    key_damaged_screen,
    not_set_up_screen,
    setup_problem,
)
from passgate.cli.provision import _show
from passgate.config.load import load_config
from passgate.hardware.display import FaultScreen, MessageScreen, render
from passgate.selftest.checks import Status, check_display
from passgate.util.i18n import language


def write_config(tmp: Path, lang: str | None) -> Path:
    state = tmp / "state"
    simulate.prepare(state, time.time())
    (state / "journal.key").unlink()
    config = tmp / "passgate.toml"
    display = f'language = "{lang}"\n' if lang else ""
    config.write_text(f"""
[checkpoint]
zone = "gate-1"
device_id = "gate-7"
state_dir = "{state}"
[display]
driver = "dummy"
{display}
[trust]
source = "dir"
dir = "{state / "trust"}"
""")
    return config


class Panel:
    """Stands in for the luma device: keeps what it was given."""

    def __init__(self) -> None:
        self.images: list = []
        self.cleaned = False

    def display(self, image) -> None:
        self.images.append(image.convert("1").tobytes())

    def cleanup(self) -> None:
        self.cleaned = True


@pytest.mark.parametrize("lang, title, damaged", [
    ("ru", "не настроен", "сломан ключ журнала"),
    ("tt", "көйләнмәгән", "журнал ачкычы бозык"),
    (None, "not set up", "journal key damaged"),
])
def test_setup_screens_follow_the_config_language(tmp_path, lang, title, damaged):
    config = write_config(tmp_path, lang)
    cfg, problem = setup_problem(config)
    assert problem.status == NOT_SET_UP  # systemd and the log stay English
    assert problem.screen == not_set_up_screen("gate-7", language(lang or "en"))
    assert problem.screen.title == title and "gate-7" in problem.screen.body
    (cfg.journal.hash_key_file).write_bytes(b"")
    _cfg, problem = setup_problem(config)
    assert problem.status == f"fault: {KEY_DAMAGED}"
    assert isinstance(problem.screen, FaultScreen) and problem.screen.title == damaged


def test_no_config_is_english_unless_told(tmp_path):
    _cfg, problem = setup_problem(tmp_path / "absent.toml")
    assert problem.screen.title == "not set up"
    _cfg, problem = setup_problem(tmp_path / "absent.toml", "ru")
    assert problem.screen.title == "не настроен"
    assert key_damaged_screen(language("ru")).headline == "СБОЙ"


@pytest.mark.parametrize("lang, words", [("ru", "самопроверка"), ("tt", "үзтикшерү"),
                                         ("en", "selftest")])
def test_the_selftest_message_is_drawn_in_the_language(lang, words):
    panel = Panel()
    result = check_display(lambda: panel, hold_s=0, sleep=lambda s: None, lang=language(lang))
    assert result.status is Status.PASS and panel.cleaned
    tr = language(lang)
    expected = render(MessageScreen(words, tr.gettext("display ok; results on the terminal")))
    assert panel.images[-1] == expected.convert("1").tobytes()
    if lang != "en":
        assert panel.images[-1] != render(MessageScreen(
            "selftest", "display ok; results on the terminal")).convert("1").tobytes()


@pytest.mark.parametrize("lang", ["ru", "tt"])
def test_provisioning_results_are_shown_in_the_config_language(tmp_path, lang):
    cfg = load_config(write_config(tmp_path, lang))
    panel = Panel()
    _show(MessageScreen("Setup refused", "device file expired"), cfg, panel, 0, time.sleep)
    tr = language(lang)
    assert tr.gettext("Setup refused") != "Setup refused"
    want = render(MessageScreen(tr.gettext("Setup refused"), "device file expired"))
    assert panel.images == [want.convert("1").tobytes()] and panel.cleaned
