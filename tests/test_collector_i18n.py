"""The staff console in Russian and Tatar (issue 14, point 1): the language is the browser's
by default, switchable on every page and remembered; the main views carry no English in their
visible text; plural forms follow each language; the passgate_collector catalogs are complete
and up to date. The Russian screenshots come from test_collector_console_browser."""

from __future__ import annotations

import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import g

from collector_support import add_staff, cheap_argon2, sign_in, store  # noqa: F401
from passgate_collector import i18n
from passgate_collector.console import alerts, words
from test_collector_console import Fleet, fleet, send  # noqa: F401 - the console's own fixture

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "collector/passgate_collector/locale"
DOMAIN = "passgate_collector"
OTHER = ("ru", "tt")
MAIN_VIEWS = ("/console/", "/console/scans", "/console/charts", "/console/checkpoint/gate-south",
              "/console/pass")
# Latin words that are no English to translate: the product's and the data's names (device
# ids, sites, zones), zone abbreviations, formats, and the switch's own "English".
ALLOWED = {"passgate", "gate", "north", "south", "east", "moscow", "europe", "main", "vault",
           "lobby", "utc", "msk", "csv", "qr", "english", "hex"}

SQLITE = pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the SQL is tested elsewhere
pytestmark = pytest.mark.usefixtures("cheap_argon2")


def _catalogs():
    spec = importlib.util.spec_from_file_location("i18n_catalogs_c",
                                                  ROOT / "tools/i18n_catalogs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Visible(HTMLParser):
    """The text a person sees: text nodes outside script/style, and the labels the narrow
    layout draws from ``data-label`` and screen readers read from ``aria-label``."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1
        for name, value in attrs:
            if name in ("data-label", "aria-label") and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def english_left(html: str) -> set[str]:
    p = _Visible()
    p.feed(html)
    text = " ".join(p.parts)
    text = re.sub(r"\b[0-9a-f]{6,}\b", " ", text)  # pass hashes
    return {w for w in re.findall(r"[A-Za-z]{2,}", text) if w.lower() not in ALLOWED}


@SQLITE
@pytest.mark.parametrize("lang", OTHER)
def test_main_views_have_no_english_left(fleet, lang):  # noqa: F811
    fleet.c.get(f"/console/?lang={lang}")
    for path in MAIN_VIEWS:
        html = fleet.html(path)
        assert f'<html lang="{lang}">' in html, path
        assert english_left(html) == set(), path
    found = fleet.c.post("/console/pass", data={"text": "ab" * 16}).get_data(as_text=True)
    assert english_left(found) == set()
    empty = fleet.c.post("/console/pass", data={"text": ""}).get_data(as_text=True)
    assert 'id="search-error"' in empty and english_left(empty) == set()


@SQLITE
def test_the_check_can_fail_english_is_english(fleet):  # noqa: F811
    html = fleet.html("/console/?lang=en")
    assert {"Alerts", "Checkpoints", "Live", "Acknowledge"} <= english_left(html)


@SQLITE
@pytest.mark.parametrize("lang", OTHER)
def test_the_sign_in_page_speaks_the_language(store, lang):  # noqa: F811
    from collector_support import fake_time_token
    from passgate_collector.web import create_app

    c = create_app(store, time_token=fake_time_token).test_client()
    html = c.get("/login", headers={"Accept-Language": f"{lang},en;q=0.5"}).get_data(as_text=True)
    assert english_left(html) == set()
    add_staff(store, "sup", "supervisor")
    c.set_cookie(i18n.COOKIE, lang)
    failed = sign_in(c, "sup", password="wrong password here")
    assert failed.status_code == 401
    assert english_left(failed.get_data(as_text=True)) == set()


@SQLITE
def test_browser_language_by_default_then_the_switch_is_remembered(fleet):  # noqa: F811
    c = fleet.c
    assert '<html lang="ru">' in c.get("/console/", headers={
        "Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="en">' in c.get("/console/", headers={
        "Accept-Language": "de-DE"}).get_data(as_text=True)  # no German: English, not blank
    r = c.get("/console/scans?lang=tt", headers={"Accept-Language": "ru"})
    assert "passgate_lang=tt" in r.headers["Set-Cookie"]
    assert "Max-Age" in r.headers["Set-Cookie"]
    # Later requests, without ?lang= and with a Russian browser, stay Tatar...
    html = c.get("/console/", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert '<html lang="tt">' in html and "Тревогалар" in html
    # ...and the switch on the page links every language, the current one marked.
    assert '<strong lang="tt" aria-current="true">Татарча</strong>' in html
    assert 'href="/console/?lang=ru"' in html and 'href="/console/?lang=en"' in html
    assert "Alerts" in c.get("/console/?lang=en").get_data(as_text=True)
    assert "Alerts" in c.get("/console/").get_data(as_text=True)  # remembered English
    assert c.get("/console/?lang=xx").status_code == 200  # an unknown choice is ignored


@SQLITE
def test_the_switch_keeps_the_page_filters(fleet):  # noqa: F811
    html = fleet.html("/console/scans?site=moscow&lang=ru")
    assert 'href="/console/scans?site=moscow&amp;lang=tt"' in html


@SQLITE
def test_the_staff_page_speaks_the_language(fleet):  # noqa: F811
    html = fleet.html("/?lang=ru")
    assert "Состояние устройств" in html and "Device health" not in html
    assert "Device health" in fleet.html("/?lang=en")


@SQLITE
def test_the_staff_page_shows_the_devices_codes_in_words(fleet):  # noqa: F811
    """A device's state, clock and update state, and each scan's verdict, reason and clock,
    are reported as codes: the staff page says them in the language; the codes stay in the
    HTML's attributes."""
    send(fleet.c, fleet.east, [], {"backlog": 0, "clock_state": "floor",
                                   "update_state": "rolled_back", "update_target": "0.3.0"},
         sent_at=fleet.now + 1)  # a newer report than the fixture's

    def row(html: str, device: str) -> str:
        return re.search(rf'class="device" data-device="{device}">(.*?)</tr>', html, re.S)[1]

    ru = fleet.html("/?lang=ru")
    east, south = row(ru, "gate-east"), row(ru, "gate-south")
    assert ">в порядке<" in east and ">только нижняя граница<" in east and ">откат" in east
    assert 'class="update update-rolled back"' in east  # the code stays the class
    assert ">пошли назад<" in south
    scans = ru[ru.index('id="recent"'):]
    assert ">отказ<" in scans and ">просрочен<" in scans and ">доверенные<" in scans
    code = re.search(r">(accept|deny|expired|revoked|trusted|backwards|ok)<", ru)
    assert code is None, ru[code.start() - 300:code.end() + 50]
    tt = row(fleet.html("/?lang=tt"), "gate-east")
    assert ">тәртиптә<" in tt and ">кире кайтарылды" in tt
    en = row(fleet.html("/?lang=en"), "gate-east")
    assert ">ok<" in en and ">floor only<" in en and ">rolled back" in en


@SQLITE
def test_a_rows_problem_is_said_in_words(fleet):  # noqa: F811
    """chain_mismatch and gap (a tampered journal) in the scan lists of the console and the
    staff page; the code stays in data-problem."""
    for lang, gap in (("ru", "перед ней не хватает строк"), ("tt", "алдында юллар җитми"),
                      ("en", "rows missing before it")):
        with fleet.app.test_request_context("/"):
            g.lang = lang
            assert words.problem_words("gap") == gap
            assert words.problem_words("a newer code") == "a newer code"
    html = (ROOT / "collector/passgate_collector/console/templates/console/_scans.html")
    assert "problem_words(r.problem)" in html.read_text(encoding="utf-8")


@SQLITE
def test_the_staff_page_names_purposes_as_the_bundle_does(fleet):  # noqa: F811
    """Purpose names per language come from the newest published bundle's policy (a site
    names its own purposes); with no bundle, or a purpose it does not name, the id."""
    import hashlib

    from bundle_support import Fleet as Trust
    from passgate.bundle.build import BundleContent, build_bundle
    from passgate.passes.purposes import PurposeTable

    def scans_html(lang: str) -> str:
        html = fleet.html(f"/?lang={lang}")
        return html[html.index('id="recent"'):]

    assert "<td>visitor</td>" in scans_html("ru")  # no bundle yet
    trust = Trust()
    table = PurposeTable.from_toml('[purposes.visitor]\ncode = 1\nlabel = "Visitor"\n'
                                   'names = { ru = "Посетитель", tt = "Кунак" }\n', "test")
    content = BundleContent(trust.content().issuers, purposes=table)
    data = build_bundle(content, trust.roots.keys[:2], 1, fleet.now, fleet.now + 86400)
    fleet.store.publish_bundle(1, data, hashlib.sha256(data).hexdigest(), fleet.now)
    assert "<td>Посетитель</td>" in scans_html("ru") and "<td>visitor</td>" not in scans_html("ru")
    assert "<td>Кунак</td>" in scans_html("tt") and "<td>Visitor</td>" in scans_html("en")


@SQLITE
def test_plural_forms_russian_three_tatar_one(fleet):  # noqa: F811
    with fleet.app.test_request_context("/"):
        g.lang = "ru"
        assert words.ago(60) == "1 мин назад"
        cases = {1: "1 сканирование не принято", 3: "3 сканирования не приняты",
                 5: "5 сканирований не принято", 21: "21 сканирование не принято"}
        for n, start in cases.items():
            text = i18n.ngettext("{n} scan refused by the collector, kept on the device",
                                 "{n} scans refused by the collector, kept on the device",
                                 n).format(n=n)
            assert text.startswith(start), (n, text)
        g.lang = "tt"
        one = i18n.ngettext("{n} scan", "{n} scans", 1)  # not in the catalog: English
        assert one == "{n} scan"
        assert words.reason_words("expired") == "вакыты чыккан"
        assert words.reason_words("a_new_code") == "a_new_code"  # shown as itself
    with fleet.app.test_request_context("/"):
        assert words.reason_words("expired") == "expired"  # nothing chosen: English


@SQLITE
def test_alert_texts_and_summary_in_russian(fleet):  # noqa: F811
    with fleet.app.test_request_context("/"):
        g.lang = "ru"
        found, health = alerts.collect(fleet.store, fleet.now, 120)
        assert alerts.summary(health) == "1 из 3 КПП требует внимания"
        texts = {a.title for a in found} | {a.text for a in found}
        assert "часы пошли назад" in texts
        assert any(t.startswith("2 сканирования не приняты коллектором") for t in texts)


# ---- the catalogs ----------------------------------------------------------------------------


def _po(lang: str):
    with (LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=lang)


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\(\w+\)[sd]|\{\w+\}", text))


def test_catalogs_are_up_to_date_complete_and_keep_placeholders():
    cats = _catalogs()
    assert cats.main(["--check"]) == 0, "run tools/i18n_catalogs.py"
    extracted = {m.id for m in cats.template(DOMAIN) if m.id}
    assert "Acknowledge" in extracted and "not a passgate pass" in extracted
    assert ("{n} scan refused by the collector, kept on the device",
            "{n} scans refused by the collector, kept on the device") in extracted
    for lang in OTHER:
        po = _po(lang)
        assert {m.id for m in po if m.id} == extracted, lang
        for m in po:
            if not m.id:
                continue
            ids = m.id if isinstance(m.id, tuple) else (m.id,)
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            assert all(strings), (lang, m.id)  # every text translated
            for s in strings:
                assert _placeholders(s) == _placeholders(ids[-1]), (lang, m.id, s)
        with (LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as f:
            assert read_mo(f).num_plurals == {"ru": 3, "tt": 1}[lang]
