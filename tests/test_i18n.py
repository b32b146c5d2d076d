"""Russian and Tatar: the catalogs, plural forms, the OLED's glyphs, local time, the simulation.

Rules tested here (issue 14): the committed ``.mo`` files are what Babel compiles from the
``.po`` files, and the template holds every marked text; Russian has three plural forms and
Tatar one; untranslated text falls back to English, never blank; every screen in every
language is drawn with the font's own glyphs and stays inside 128x64; ``[display] language``
and ``timezone`` are validated and used; purposes are named per language, in the purpose
table and through the bundle; ``passgate run --simulate --language ru|tt`` speaks it.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from PIL import Image, ImageChops

from passgate.bundle.parts import decode_policy, encode_policy
from passgate.checkpoint import simulate
from passgate.config.load import from_dict
from passgate.errors import ConfigError, TrustError
from passgate.hardware.display import render
from passgate.hardware.display.policy import DisplayPolicy
from passgate.hardware.display.render import CAP_TOP, CELL_H, CELL_W, Canvas, clean, has_glyph
from passgate.hardware.display.screens import camera_fault, trust_data_old, verdict_screen
from passgate.passes.purposes import PurposeTable
from passgate.passes.verdict import Reason, Result, Verdict
from passgate.util.i18n import LANGUAGES, LOCALE_DIR, duration, language, span

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"
T = 1_775_052_300  # 2026-04-01 14:05:00 UTC


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REGEN = _module(REF / "regenerate.py", "reference_regenerate_i18n")
CATALOGS = _module(ROOT / "tools" / "i18n_catalogs.py", "i18n_catalogs")
OTHER = [lang for lang in LANGUAGES if lang != "en"]


# ---- the catalogs ----------------------------------------------------------------------------


def _po(lang: str):
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "passgate.po").open("rb") as f:
        return read_po(f, locale=lang)


@pytest.mark.parametrize("lang", OTHER)
def test_committed_mo_is_the_po_compiled(lang):
    mo_path = LOCALE_DIR / lang / "LC_MESSAGES" / "passgate.mo"
    fresh = CATALOGS.mo_bytes(_po(lang))
    assert mo_path.read_bytes() == fresh, f"{mo_path} is stale: run tools/i18n_catalogs.py"


def test_the_template_holds_every_marked_text_and_every_po_follows_it():
    extracted = {(m.context, m.id) for m in CATALOGS.template() if m.id}
    with (LOCALE_DIR / "passgate.pot").open("rb") as f:
        committed = {(m.context, m.id) for m in read_po(f) if m.id}
    assert extracted == committed, "passgate.pot is stale: run tools/i18n_catalogs.py"
    for lang in OTHER:
        assert {(m.context, m.id) for m in _po(lang) if m.id} == committed, lang


@pytest.mark.parametrize("lang", OTHER)
def test_every_text_is_translated(lang):
    missing = [m.id for m in _po(lang) if m.id and not all(
        m.string if isinstance(m.string, tuple) else (m.string,))]
    assert missing == []


def test_plural_forms_russian_three_tatar_one():
    assert _po("ru").num_plurals == 3
    assert _po("tt").num_plurals == 1  # CLDR: Tatar has the category "other" only
    with (LOCALE_DIR / "tt" / "LC_MESSAGES" / "passgate.mo").open("rb") as f:
        assert read_mo(f).num_plurals == 1  # what gettext reads at run time
    assert "nplurals=1; plural=0;" in (LOCALE_DIR / "tt/LC_MESSAGES/passgate.po").read_text()


def test_russian_plurals_and_spans():
    ru = language("ru")
    minutes = [duration(n * 60, ru) for n in (1, 2, 5, 11, 21, 22, 25)]
    assert minutes == ["1 минута", "2 минуты", "5 минут", "11 минут", "21 минута", "22 минуты",
                       "25 минут"]
    assert duration(2 * 3600 + 13 * 60, ru) == "2 часа 13 минут"
    assert span(2 * 3600 + 13 * 60, ru) == "2 ч 13 мин"
    accept = Verdict(Result.ACCEPT, Reason.VALID, T, purpose="shopping",
                     expires=T + 2 * 3600 + 13 * 60)
    screen = verdict_screen(accept, T, PurposeTable.default(), lang=ru)
    assert (screen.left_word, screen.remaining, screen.purpose) == ("осталось", "2 ч 13 мин",
                                                                   "Магазин")
    expired = verdict_screen(Verdict(Result.DENY, Reason.EXPIRED, T, expires=T - 14 * 60), T,
                             lang=ru)
    assert (expired.headline, expired.reason) == ("ОТКАЗ", "просрочен 14 мин назад")
    assert trust_data_old(3 * 86400, lang=ru).title == "данным доверия 3 дня"
    assert trust_data_old(5 * 3600, lang=ru).title == "данным доверия 5 часов"


def test_tatar_has_one_form():
    tt = language("tt")
    assert [duration(n * 60, tt) for n in (1, 2, 5)] == ["1 минут", "2 минут", "5 минут"]
    assert span(2 * 3600 + 13 * 60, tt) == "2 сәг 13 мин"
    assert trust_data_old(86400, lang=tt).title == "ышаныч: 1 көн элек"


def test_untranslated_text_falls_back_to_english_never_blank():
    ru = language("ru")
    assert ru.gettext("a text no catalog has") == "a text no catalog has"
    assert ru.gettext("") == ""  # not the catalog header
    assert ru.ngettext("{n} thing", "{n} things", 5) == "{n} things"
    policy = DisplayPolicy(lang=ru)
    policy.set_fault("x", camera_fault("a detail nobody translated"))
    shown = policy.at(T)
    assert (shown.title, shown.detail, shown.headline) == (
        "сбой камеры", "a detail nobody translated", "СБОЙ")
    with pytest.raises(ConfigError):
        language("xx")


# ---- glyphs and the 128x64 area ----------------------------------------------------------


def _texts(screen) -> list[str]:
    return [v for v in vars_of(screen) if isinstance(v, str)] + [
        t for v in vars_of(screen) if isinstance(v, tuple) for t in v]


def vars_of(screen) -> list:
    return [getattr(screen, f) for f in screen.__dataclass_fields__]


def test_the_font_has_every_letter_of_the_three_languages():
    letters = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:~!?.,/-()%+"
               "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
               "ӘӨҮҖҢҺәөүҗңһ")
    assert [c for c in letters if not has_glyph(c)] == []
    assert not has_glyph("漢")  # the check can fail: the font has no CJK


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_screen_in_every_language_has_glyphs_and_stays_on_the_panel(lang, monkeypatch):
    drawn: list[tuple[int, int, str, int]] = []
    original = Canvas.text

    def recording(self, x, y, text, scale=1, fill=1):
        drawn.append((x, y, clean(text), scale))
        return original(self, x, y, text, scale, fill)

    monkeypatch.setattr(Canvas, "text", recording)
    for name, screen in REGEN.cases(lang).items():
        for text in _texts(screen):
            absent = [c for c in text if not has_glyph(c) and not c.isspace()]
            assert absent == [], f"{lang}/{name}: no glyph for {absent} in {text!r}"
        drawn.clear()
        render(screen)
        for x, y, text, scale in drawn:
            top = y - CAP_TOP * scale
            where = f"{lang}/{name}: {text!r} at ({x}, {y}) x{scale}"
            assert x >= 0 and x + len(text) * CELL_W * scale <= 128, where
            assert top >= 0 and top + CELL_H * scale <= 64, where
            assert "?" not in text or "?" in "".join(_texts(screen)), where


@pytest.mark.parametrize("lang", OTHER)
def test_screens_match_the_language_references(lang):
    differ = []
    for name, screen in REGEN.cases(lang).items():
        path = REF / lang / f"{name}.png"
        assert path.exists(), f"no reference {lang}/{name}.png: run tests/reference/regenerate.py"
        image = render(screen)
        ref = Image.open(path).convert("1")
        if ref.size != image.size or ImageChops.logical_xor(ref, image).getbbox():
            image.save(path.with_suffix(".actual.png"))
            differ.append(name)
    assert differ == [], f"{lang}: {differ} differ (regenerate.py if intended)"


def test_a_cyrillic_hint_is_drawn_not_question_marks():
    screen = REGEN.cases("ru")["accepted_hint_cyrillic"]
    assert screen.hint == "АБ1234 Әлфия Җ." and clean(screen.hint) == screen.hint


# ---- config: language and local time -------------------------------------------------------


BASE = {"checkpoint": {"zone": "gate-1", "device_id": "t"}}


def _cfg(display: dict):
    return from_dict({**BASE, "display": display})


def test_display_language_and_timezone_are_validated():
    cfg = _cfg({"language": "tt", "timezone": "Europe/Moscow"})
    assert cfg.display.language == "tt" and cfg.display.zone().key == "Europe/Moscow"
    assert _cfg({}).display.zone() is None  # "": the system's zone
    for bad in ({"language": "de"}, {"language": 1}, {"timezone": "Mars/Olympus"},
                {"timezone": 3}):
        with pytest.raises(ConfigError):
            _cfg(bad)


def test_the_idle_clock_shows_the_configured_zone():
    zone = _cfg({"timezone": "Europe/Moscow"}).display.zone()
    assert DisplayPolicy(tz=zone).at(T).time_text == "17:05"  # 14:05 UTC
    assert DisplayPolicy(tz=_cfg({"timezone": "UTC"}).display.zone()).at(T).time_text == "14:05"


# ---- purposes named per language ------------------------------------------------------------


def test_purpose_names_per_language_in_the_table_and_the_bundle():
    table = PurposeTable.default()
    assert table.label("shopping", "ru") == "Магазин" and table.label("shopping", "tt") == "Кибет"
    assert table.label("shopping") == "Shopping" and table.label("shopping", "de") == "Shopping"
    decoded, _ = decode_policy(encode_policy(table, {}))
    assert decoded.label("moving", "tt") == "Күчеп китү"
    bad = '[purposes.a]\ncode = 1\nnames = { ru = "" }\n'
    with pytest.raises(TrustError):
        PurposeTable.from_toml(bad, "t")


# ---- the simulation speaks the language -----------------------------------------------------

EXPECTED = {
    "ru": ("ПРОПУСК Магазин: осталось 2 часа ", "ОТКАЗ  неизвестный выпускающий",
           "[действующий пропуск]", "дверь открыта", "7 сканов"),
    "tt": ("РӨХСӘТ Кибет: 2 сәгать ", "ЯРАМЫЙ билгесез бирүче",
           "[гамәлдәге пропуск]", "ишек ачык", "7 скан"),
}


@pytest.mark.parametrize("lang", OTHER)
def test_simulate_prints_its_verdict_lines_in_the_language(tmp_path, lang):
    out = io.StringIO()
    assert simulate.main(tmp_path / "state", out=out, fps=300, language=lang) == 0
    text = out.getvalue()
    for expected in EXPECTED[lang]:
        assert expected in text, text
    assert " ACCEPT " not in text and " DENY " not in text
    frames = sorted((tmp_path / "state" / "oled").glob("*.png"))
    assert frames  # the OLED frames are the language's screens (references above)


def test_passgate_run_simulate_language_on_the_command_line(tmp_path):
    cmd = [sys.executable, "-c", "import sys; from passgate.cli import main; sys.exit(main())",
           "run", "--simulate", "--language", "xx", "--state", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--language" in done.stderr
    bad = subprocess.run(cmd[:3] + ["run", "--language", "ru"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "only with --simulate" in bad.stderr
