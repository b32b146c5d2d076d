"""The self-test speaks the device's language (issue 14): its terminal lines in Russian and
Tatar.

Rules tested here: every text the self-test marks for translation (``passgate.selftest`` and
the ``passgate selftest`` command) has a Russian and a Tatar translation in the catalogs, with
every form a plural needs and the same ``{placeholders}``; a run with language ``ru`` (from
the config or ``--language``) prints Russian lines, statuses, check names and summary, with
nothing English left but paths, commands, config keys and quoted system errors; a failing run
too; Tatar likewise; ``--json`` and the names ``--skip`` takes stay English; plural forms are
the language's.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from PIL import Image

from fakes import FakeClock
from passgate.cli.selftest import register, selftest
from passgate.clock.clock import ClockState, TimeReading
from passgate.hardware.display import MessageScreen, render
from passgate.hardware.signals.gpio import SignalsConfig
from passgate.journal.syncstate import SyncState
from passgate.selftest.checks import (
    CHECKS,
    Capture,
    Result,
    Status,
    check_camera,
    check_decode,
    check_display,
    check_signals,
    summary,
)
from passgate.selftest.state import check_clock, check_collector, check_disk, check_journal
from passgate.util.i18n import LOCALE_DIR, language
from test_selftest import TEXT, device_config, scene_frames

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "firmware/passgate/selftest/checks.py",
           ROOT / "firmware/passgate/selftest/state.py",
           ROOT / "firmware/passgate/cli/selftest.py"]
NOW = 1_775_052_300  # 2026-04-01 14:05:00 UTC


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CATALOGS = _module(ROOT / "tools" / "i18n_catalogs.py", "i18n_catalogs_selftest")


def _catalog(lang: str):
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "passgate.po").open("rb") as f:
        return read_po(f, locale=lang)


def selftest_texts(paths=SOURCES) -> list[tuple[str | None, str | tuple[str, ...]]]:
    """(context, msgid) of every text the self-test's sources mark, as Babel extracts them."""
    found = []
    for path in paths:
        for _line, msg, _comments, context in extract_from_file(
                "python", str(path), keywords=CATALOGS.KEYWORDS):
            found.append((context, msg))
    return found


PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")


def problems(catalog, texts) -> list[str]:
    """What is wrong with ``texts`` in ``catalog``: missing, empty, English left as it was, a
    plural short of forms, a placeholder lost or added."""
    out = []
    for context, msg in texts:
        msgid = msg[0] if isinstance(msg, tuple) else msg
        entry = catalog.get(msgid, context=context)
        if entry is None:
            out.append(f"missing: {msgid!r}")
            continue
        forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if isinstance(msg, tuple) and len(forms) != catalog.num_plurals:
            out.append(f"{len(forms)} forms of {catalog.num_plurals}: {msgid!r}")
        wanted = set(PLACEHOLDER.findall(msgid))
        for form in forms:
            if not form or form == msgid:
                out.append(f"untranslated: {msgid!r}")
            elif set(PLACEHOLDER.findall(form)) != wanted:
                out.append(f"placeholders differ: {msgid!r} -> {form!r}")
    return out


# ---- the catalogs ----------------------------------------------------------------------------


def test_the_selftest_marks_its_texts():
    texts = selftest_texts()
    ids = {m[0] if isinstance(m, tuple) else m for _c, m in texts}
    # A sample across the checks: if one is not found, a text went back to an f-string or
    # a keyword Babel does not know (as an alias of ngettext would).
    for msgid in ("no frames from the camera", "{n} frame", "read in {n} of {total} frame",
                  "buzzer beeped", "floor saved {span} ago", "{n} issuer key", "{n} pending",
                  "{free} MB free of {total} MB on {path}", "{detail}: the database is damaged",
                  "skipped (--skip)", "PASS", "camera", "simulated camera: the demo pass held up"):
        assert msgid in ids, msgid
    assert len(ids) >= 100


@pytest.mark.parametrize("lang", ["ru", "tt"])
def test_every_selftest_text_is_translated(lang):
    assert problems(_catalog(lang), selftest_texts()) == []


def test_the_catalog_check_finds_what_is_wrong():
    ru = _catalog("ru")
    assert problems(ru, [(None, "a text no catalog has")]) == ["missing: 'a text no catalog has'"]
    ru.add("{n} left here", "осталось здесь")  # placeholder lost
    ru.add("ready", "")  # empty
    ru.add(("{n} box", "{n} boxes"), ("{n} коробка", "{n} коробки"))  # one form short
    found = problems(ru, [(None, "{n} left here"), (None, "ready"),
                          (None, ("{n} box", "{n} boxes"))])
    assert [p.split(":")[0] for p in found] == ["placeholders differ", "untranslated",
                                                "2 forms of 3"]


# ---- English words left in a line -----------------------------------------------------------

# Words a line may keep in every language: names of programs, commands, config keys and
# values, units and acronyms.
KEPT = {"passgate", "sudo", "systemctl", "status", "stop", "passgate-scanner", "passgate-sync",
        "sync", "time", "set", "timesyncd", "RTC", "camera", "exposure_value", "display",
        "driver", "none", "quick_check", "ok", "QR", "PNG", "LED", "DEMO", "source", "files",
        "skip", "ssd1306", "tmpfs"}


def english_words(text: str, *quoted: str) -> list[str]:
    """Latin words in ``text`` beyond :data:`KEPT`, after removing ``quoted`` (paths, the
    decoded QR text, a system error's own words)."""
    for q in quoted:
        text = text.replace(q, " ")
    text = re.sub(r"\[Errno \d+\][^;:]*", " ", text)  # the OS's words, quoted as they came
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"(?<![\w.])/[^\s:,;)]*", " ", text)  # paths
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", " ", text)  # instants stay ISO, UTC
    return [w for w in re.findall(r"[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z_]+)*", text)
            if w not in KEPT and not re.fullmatch(r"\d*x\d*", w)]


def test_english_words_finds_english():
    assert english_words("камера: too dark, focus 12") == ["too", "dark", "focus"]
    assert english_words("свободно 5 МБ на /tmp/x y", "y") == []
    assert english_words("PNG-файлы в /tmp/a/oled: passgate-sync, 640x480") == []


# ---- a run of the command --------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["selftest", *argv])


NAMES = {"ru": ["камера", "чтение", "экран", "сигналы", "часы", "пакет", "коллектор", "диск",
                "журнал"],
         "tt": ["камера", "уку", "экран", "сигналлар", "сәгать", "пакет", "коллектор", "диск",
                "журнал"]}
STATUS = {"ru": {"PASS": "ОК", "WARN": "ВНИМАНИЕ", "FAIL": "СБОЙ", "SKIP": "ПРОПУЩЕНА"},
          "tt": {"PASS": "ӘЙБӘТ", "WARN": "ИГЪТИБАР", "FAIL": "ХАТА", "SKIP": "КАЛДЫРЫЛДЫ"}}
TITLE = {"ru": "самопроверка", "tt": "үзтикшерү"}


def _columns(line: str, lang: str) -> tuple[str, str, str]:
    """(status, name, detail) of a line: the columns are as wide as the language's longest."""
    sw = max(len(w) for w in STATUS[lang].values())
    nw = max(len(w) for w in NAMES[lang])
    assert line[sw:sw + 2] == "  " and line[sw + 2 + nw:sw + 4 + nw] == "  ", line
    return line[:sw].rstrip(), line[sw + 2:sw + 2 + nw].rstrip(), line[sw + 4 + nw:]


@pytest.mark.parametrize("lang", ["ru", "tt"])
def test_a_simulated_run_with_a_language_prints_it(tmp_path, lang):
    out = io.StringIO()
    code = selftest(_args("--simulate", "--state", str(tmp_path), "--frames", "6",
                          "--sync-dir", str(tmp_path / "sync"), "--language", lang,
                          "--skip", "collector"), out=out, timer=FakeClock())
    lines = out.getvalue().splitlines()
    assert code == 0, out.getvalue()
    assert len(lines) == len(CHECKS) + 1
    columns = [_columns(line, lang) for line in lines[:-1]]
    assert [c[1] for c in columns] == NAMES[lang]
    assert [c[0] for c in columns] == [STATUS[lang]["PASS"]] * 6 + [STATUS[lang]["SKIP"]] + [
        STATUS[lang]["PASS"]] * 2
    for line in lines:
        assert english_words(line, str(tmp_path)) == [], line
    st = STATUS[lang]
    assert lines[-1].startswith(f"{TITLE[lang]}: passgate ")
    assert lines[-1].endswith(f": 8 {st['PASS']}, 0 {st['WARN']}, 0 {st['FAIL']}, "
                              f"1 {st['SKIP']}: " + {"ru": "в порядке", "tt": "тәртиптә"}[lang])
    decode = columns[1][2]
    assert {"ru": "прочитан в 6 из 6 кадров: ПРОПУСК Магазин, осталось ",
            "tt": "укылды: 6 кадрдан 6: РӨХСӘТ Кибет, "}[lang] in decode
    # The simulated device speaks the language: its OLED's self-test message is in it.
    last = sorted((tmp_path / "oled").glob("selftest-*.png"))[-1]
    want = render(MessageScreen(TITLE[lang], language(lang).gettext(
        "display ok; results on the terminal")))
    assert Image.open(last).convert("1").tobytes() == want.convert("1").tobytes()


def _device(tmp_path: Path, lang: str | None) -> Path:
    """test_selftest's device config on a laptop, in ``lang``."""
    return device_config(tmp_path, lang)


def _run(tmp_path, monkeypatch, *argv) -> tuple[int, str]:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    out = io.StringIO()
    code = selftest(_args("--config", str(tmp_path / "passgate.toml"), "--sync-dir",
                          str(tmp_path / "sync"), *argv), out=out, timer=FakeClock())
    return code, out.getvalue()


def test_a_failing_run_on_a_russian_device_is_russian_throughout(tmp_path, monkeypatch):
    _device(tmp_path, "ru")
    code, text = _run(tmp_path, monkeypatch)
    assert code == 1, text
    lines = text.splitlines()
    got = {name: status for status, name, _d in (_columns(li, "ru") for li in lines[:-1])}
    assert got == {**got, "пакет": "СБОЙ", "журнал": "СБОЙ", "коллектор": "ВНИМАНИЕ"}, text
    assert lines[-1].endswith(": СБОЙ")
    # The bundle watcher's reason: its head translated, the error after it as it came.
    assert "СБОЙ       пакет      нет данных доверия: " in text
    for line in lines:
        assert english_words(line, str(tmp_path), repr(TEXT),
                             "no root keys pinned (device not provisioned)") == [], line
    assert "нет соединения с http://127.0.0.1:9: [Errno" in text


def test_language_option_overrides_and_json_stays_english(tmp_path, monkeypatch):
    _device(tmp_path, "ru")
    code, text = _run(tmp_path, monkeypatch, "--language", "tt")
    assert code == 1 and "ХАТА" in text and "СБОЙ" not in text
    # The OLED keeps the device's language whatever the lines' one.
    last = sorted((tmp_path / "oled").glob("selftest-*.png"))[-1]
    want = render(MessageScreen("самопроверка", "экран исправен; итоги в терминале"))
    assert Image.open(last).convert("1").tobytes() == want.convert("1").tobytes()
    code, text = _run(tmp_path, monkeypatch, "--language", "en")
    assert re.search(r"^FAIL  journal    no journal at ", text, re.M)
    code, text = _run(tmp_path, monkeypatch, "--json")
    doc = json.loads(text)
    assert [r["name"] for r in doc["results"]] == list(CHECKS)
    journal = next(r for r in doc["results"] if r["name"] == "journal")
    assert journal["status"] == "FAIL" and journal["detail"].startswith("no journal at ")


def test_skip_takes_the_english_names_on_a_russian_device(tmp_path, monkeypatch):
    _device(tmp_path, "ru")
    code, text = _run(tmp_path, monkeypatch, "--skip", "journal", "bundle")
    assert "ПРОПУЩЕНА  журнал     пропущена (--skip)" in text


# ---- each check's other paths, in Russian and Tatar ------------------------------------------


def _results(lang_code: str, tmp_path: Path, factory) -> list[Result]:
    lang = language(lang_code)
    timer = FakeClock()  # sleeping moves it on, so the signal pattern plays out at once
    dark = [f // 8 for f in scene_frames(None, 4)]
    broken = Capture(tuple(dark), (0.0, 0.5, 1.0, 1.5), 0.0, "device or resource busy")
    frames = scene_frames(TEXT, 6)
    empty = scene_frames(None, 6)
    from passgate.hardware.decode import make_decoder

    class Statvfs:
        f_bavail, f_frsize, f_blocks = 10, 1024 * 1024, 8000

    state = SyncState(connectivity="offline", updated_at=NOW - 60, last_success=NOW - 5 * 86400,
                      pending=412, dead_letters=3, last_error="timed out")
    failing = lambda: (_ for _ in ()).throw(OSError("Remote I/O error"))  # noqa: E731
    return [
        check_camera(broken, 15.0, lang=lang),
        check_camera(Capture((), (), 0.0), lang=lang),
        check_decode(frames[:1] + empty[:5], make_decoder(), lang=lang),
        check_display(failing, "ssd1306", lang=lang),
        check_display(None, lang=lang),
        check_signals(SignalsConfig(relay_pin=None, buzzer_pin=None), lambda: factory,
                      clock=timer.monotonic, sleep=timer.sleep, lang=lang),
        check_clock(TimeReading(NOW, ClockState.BACKWARDS), source="floor", system=NOW - 3600,
                    stored_floor=NOW - 180, policy="deny", lang=lang),
        check_clock(TimeReading(NOW, ClockState.FLOOR), floor_error="bad field", lang=lang),
        check_collector(state, NOW, connect=None, lang=lang),
        check_collector(SyncState(), NOW, url=None, url_note="collector URL unknown", connect=None,
                        lang=lang),
        check_disk(tmp_path, statvfs=lambda p: Statvfs(), mounts=None, lang=lang),
        check_disk(tmp_path, statvfs=lambda p: Statvfs(), mounts=lambda: f"t {tmp_path} tmpfs",
                   warn_mb=5, fail_mb=1, lang=lang),
        check_journal(tmp_path / "journal.sqlite", lang=lang),
    ]


@pytest.fixture
def factory():
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    pins = MockFactory(pin_class=MockPWMPin)
    yield pins
    pins.reset()
    pins.close()


@pytest.mark.parametrize("lang", ["ru", "tt"])
def test_the_warnings_and_failures_are_in_the_language(tmp_path, lang, factory):
    results = _results(lang, tmp_path, factory)
    english = _results("en", tmp_path, factory)
    assert [r.status for r in results] == [r.status for r in english]
    assert {Status.WARN, Status.FAIL, Status.SKIP} <= {r.status for r in results}
    for r in results:
        assert english_words(r.detail, str(tmp_path), repr(TEXT), "timed out",
                             "device or resource busy", "Remote I/O error", "bad field",
                             "collector URL unknown") == [], r.line(language(lang))
    # and the English lines are English, so the check above can fail
    assert all(english_words(r.detail, str(tmp_path)) for r in english)


def test_russian_plurals_and_decimal_commas_in_the_lines():
    ru, tt = language("ru"), language("tt")

    def frames(n, lang):
        cap = Capture(tuple(scene_frames(None, n)), tuple(float(i) for i in range(n)), 0.0)
        return check_camera(cap, lang=lang).detail.split(", ")[1]

    assert [frames(n, ru) for n in (1, 2, 5)] == ["1 кадр", "2 кадра", "5 кадров"]
    assert [frames(n, tt) for n in (1, 2, 5)] == ["1 кадр", "2 кадр", "5 кадр"]
    assert [frames(n, language("en")) for n in (1, 2)] == ["1 frame", "2 frames"]
    # Russian and Tatar write a decimal comma
    cap = Capture(tuple(scene_frames(None, 3)), (0.0, 0.5, 1.0), 0.0)
    assert "2,0 кадр/с (задано 15)" in check_camera(cap, 15.0, lang=ru).detail
    assert "2.0 fps (asked 15)" in check_camera(cap, 15.0).detail
    one = summary([Result("camera", Status.PASS, "x")], "0.1", ru)
    assert one == "самопроверка: passgate 0.1: 1 ОК, 0 ВНИМАНИЕ, 0 СБОЙ, 0 ПРОПУЩЕНА: в порядке"
