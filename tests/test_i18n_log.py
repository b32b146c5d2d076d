"""``passgate log`` in the device's language (issue 14): the header, the result, reason, clock
and upload words, and the summary with its plural forms, in ``--language``'s or the config's
``[display] language``; English by default, and English (with a note) when the config cannot
be read; ``--json`` keeps the codes."""

from __future__ import annotations

import json
import re

import pytest

from passgate.cli import main
from passgate.cli.log import log_language
from test_cli_log import state, utc  # noqa: F401 - the journal of five scans, TZ=UTC


def log(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["log", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_russian_lines_and_summary(state, capsys):  # noqa: F811
    code, out, err = log(capsys, "--state", str(state), "--language", "ru")
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split() == ["ВРЕМЯ", "ИТОГ", "ПРИЧИНА", "ЦЕЛЬ", "ЗОНА", "ЧАСЫ", "ВЫГРУЗКА",
                                "ФЛАГИ"]
    assert lines[1].split() == ["2026-01-01", "10:00:00", "ПРОПУСК", "действителен", "work",
                                "lobby", "подтверждены", "выгружен", "-"]
    assert "ОТКАЗ" in lines[2] and "просрочен" in lines[2]
    assert "уже использован" in lines[3] and "по границе" in lines[3] and "отвергнут" in lines[3]
    assert "не читается" in lines[4] and "ждёт" in lines[4] and "шли назад" in lines[5]
    assert lines[6] == ("gate-7: в журнале 5 сканов: пропущено: 2, отказано: 3 (1 не читается, "
                        "1 просрочен, 1 уже использован); ждут выгрузки: 2, отвергнуто "
                        "коллектором: 1 (хранятся на пункте)")
    # The columns line up in the language too: each starts where its header's does.
    for name in ("ИТОГ", "ПРИЧИНА", "ЧАСЫ", "ВЫГРУЗКА"):
        col = lines[0].index(name)
        assert all(line[col - 2:col] == "  " and line[col] != " " for line in lines[1:6]), name
    # no English word left but the data's own (purpose ids: the journal has no
    # purpose table; the zone; flags)
    words = set(re.findall(r"[A-Za-z]+", out)) - {"gate", "work", "shopping", "lobby",
                                                  "clock", "untrusted", "trust", "stale"}
    assert words == set()


def test_tatar_and_plural_forms(state, capsys):  # noqa: F811
    code, out, _ = log(capsys, "--state", str(state), "--language", "tt", "--limit", "1",
                       "--since", "2026-01-01T10:03:00Z")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ВАКЫТ", "НӘТИҖӘ", "СӘБӘП"]
    assert "РӨХСӘТ" in lines[1] and "артка киткән" in lines[1]
    assert lines[2].startswith("gate-7: 2026-01-01 10:03:00 вакытыннан башлап 2 скан "
                               "(соңгылары күрсәтелә: 1): кертелде: 1, кире кагылды: 1")
    _c, ru, _e = log(capsys, "--state", str(state), "--language", "ru", "--since",
                     "2026-01-01T10:04:00Z")
    assert "1 скан с 2026-01-01 10:04:00" in ru  # Russian: 1 скан, 2 скана, 5 сканов


def test_the_config_language_is_the_default(state, tmp_path, capsys):  # noqa: F811
    config = tmp_path / "passgate.toml"
    config.write_text('[checkpoint]\nzone = "lobby"\ndevice_id = "gate-7"\n'
                      '[display]\nlanguage = "tt"\n')
    assert log_language(None, config)[0].code == "tt"
    assert log_language("ru", config)[0].code == "ru"  # --language wins
    assert log_language(None, tmp_path / "absent.toml") == (log_language("en")[0], "")
    config.write_text('[display]\nlanguage = "de"\n')
    lang, note = log_language(None, config)
    assert lang.code == "en" and "language" in note and note.startswith("passgate log: ")


def test_json_keeps_the_codes(state, capsys):  # noqa: F811
    code, out, _ = log(capsys, "--state", str(state), "--language", "ru", "--json")
    first = json.loads(out.splitlines()[0])
    assert (first["verdict"], first["reason"], first["clock_state"]) == ("accept", "valid",
                                                                        "trusted")


def test_bad_language_is_a_usage_error(state, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as exc:
        main(["log", "--state", str(state), "--language", "xx"])
    assert exc.value.code == 2 and "--language" in capsys.readouterr().err
