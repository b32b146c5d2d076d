"""The staff side's error pages speak the staff member's language (collector/errorpage.py).

Before, every refusal outside /v1/ was werkzeug's English page (a CSRF token expired, a role
too low, an unknown checkpoint, a NUL), and a 413 or a 500 there was the device protocol's
CBOR. Under /v1/ the answers stay CBOR, checked here too.
"""

from __future__ import annotations

import re

import cbor2
import pytest

from collector_support import (  # noqa: F401
    FakeDevice,
    cheap_argon2,
    csrf_of,
    fake_time_token,
    pg_cluster,
    staff_login,
    store,
)
from passgate_collector.web import Settings, create_app

NOW = 1_767_261_600
MAX_BODY = 64 * 1024
STOCK = ("The requested URL was not found", "The browser (or proxy) sent a request",
         "You don't have the permission", "The method is not allowed",
         "The data value transmitted exceeds", "The server encountered an internal error")


def _app(store):  # noqa: F811
    return create_app(store, time_token=fake_time_token, now=lambda: NOW,
                      settings=Settings(max_body=MAX_BODY))


def _page(resp, status: int) -> str:
    assert resp.status_code == status, resp.data[:300]
    assert resp.mimetype == "text/html", resp.mimetype
    html = resp.get_data(as_text=True)
    assert not any(text in html for text in STOCK), html  # never werkzeug's English page
    return html


@pytest.mark.parametrize(("lang", "expired", "title"), [
    ("ru", "Форма устарела", "Запрос не удалось обработать"),
    ("tt", "Форманың вакыты чыккан", "Сорауны эшкәртеп булмады"),
    ("en", "The form has expired", "The request could not be used"),
])
def test_an_expired_form_is_explained_in_the_staff_members_language(
        store, staff_login, lang, expired, title):  # noqa: F811
    client = staff_login(_app(store).test_client(), store, "supervisor")
    client.get(f"/console/?lang={lang}")  # the switch, remembered in a cookie
    html = _page(client.post("/console/ack", data={"csrf_token": "stale"}), 400)
    assert f'<html lang="{lang}">' in html
    assert expired in html and title in html
    assert 'href="/console/"' in html  # a way back


def test_a_role_too_low_names_the_role_in_russian(store, staff_login):  # noqa: F811
    client = staff_login(_app(store).test_client(), store, "viewer")
    html = _page(client.post("/console/ack", headers={"Accept-Language": "ru"}), 403)
    assert "Для этого нужна роль supervisor." in html and "Доступ запрещён" in html


def test_an_unknown_checkpoint_and_a_wrong_method_in_tatar(store, staff_login):  # noqa: F811
    client = staff_login(_app(store).test_client(), store)
    tatar = {"Accept-Language": "tt"}
    html = _page(client.get("/console/checkpoint/no-such-gate", headers=tatar), 404)
    assert "Табылмады" in html and "Мондый бит яки пункт юк" in html
    csrf = csrf_of(client.get("/console/pass").get_data(as_text=True))
    resp = client.post("/console/checkpoint/no-such-gate", data={"csrf_token": csrf},
                       headers=tatar)
    html = _page(resp, 405)
    assert "GET" in resp.headers["Allow"]  # the 405 still says what is allowed
    assert "Бу бит мондый сорауны кабул итми." in html


def test_refusals_made_before_the_language_is_picked_are_translated(store, staff_login):  # noqa: F811
    """The request hook refuses a NUL and an oversize body before i18n's own hook runs."""
    client = staff_login(_app(store).test_client(), store)
    client.set_cookie("passgate_lang", "ru")
    html = _page(client.get("/console/scans?zone=a%00"), 400)
    assert "в запросе есть символ NUL" in html and '<html lang="ru">' in html
    html = _page(client.post("/login", data=b"x" * (MAX_BODY + 1),
                             headers={"Content-Type": "application/octet-stream"}), 413)
    assert "Отправлено больше, чем принимает коллектор" in html


def test_a_failure_on_a_staff_page_is_a_page_and_under_v1_stays_cbor(store, staff_login,  # noqa: F811
                                                                  monkeypatch):
    client = staff_login(_app(store).test_client(), store)

    def broken(*_a, **_k):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(type(store), "device", broken)
    html = _page(client.get("/console/checkpoint/gate-1", headers={"Accept-Language": "ru"}),
                 500)
    assert "Что-то пошло не так" in html and "the database went away" not in html
    dev = FakeDevice("gate-east")
    resp = client.post("/v1/batches", data=dev.batch_body(dev.scans(1)),
                       headers={"Content-Type": "application/cbor"})
    assert resp.status_code == 500 and cbor2.loads(resp.data)["error"] == "internal"
    resp = client.get("/v1/bundle?have=%00")
    assert resp.status_code == 400 and cbor2.loads(resp.data)["error"] == "malformed"
    resp = client.post("/v1/batches", data=b"x" * (MAX_BODY + 1),
                       headers={"Content-Type": "application/cbor"})
    assert resp.status_code == 413 and cbor2.loads(resp.data)["error"] == "too_large"


def test_redirects_stay_redirects(store, staff_login):  # noqa: F811
    client = _app(store).test_client()
    resp = client.get("/console/")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    staff_login(client, store)
    assert client.get("/console").status_code in (301, 308)  # werkzeug's slash redirect


def test_the_language_links_of_an_error_page_stay_on_this_site(store):  # noqa: F811
    """An error page may be for any path a client asked: its language links must not
    become links to another site (a browser reads "/\\x" and "//x" as another host)."""
    client = _app(store).test_client()
    for path in ("/%5Cevil.example/x?a=%00", "//evil.example/x?a=%00"):
        html = _page(client.get(path), 400)  # refused (the NUL) before any sign-in
        hrefs = re.findall(r'href="([^"]*)"', html)
        assert hrefs and all(h.startswith("/") and not h.startswith(("//", "/\\"))
                             for h in hrefs), hrefs


def test_every_title_is_translated_and_the_holder_app_links_back_to_itself(store):  # noqa: F811
    """A status with no title of its own (416 here, from a pass holder's range request)
    gets the translated "Error"; under /holder/ the way back is the holder app."""
    client = _app(store).test_client()
    resp = client.get("/holder/", headers={"Range": "bytes=99999999-",
                                           "Accept-Language": "ru"})
    html = _page(resp, 416)
    assert "<title>Ошибка - " in html and "Error" not in html
    assert 'href="/holder/"' in html and "/console/" not in html
    assert "Content-Range" in resp.headers


def test_a_stock_description_of_werkzeug_is_never_shown(store, staff_login):  # noqa: F811
    """werkzeug's stock sentences are English only; some are properties of their class
    (BadRequestKeyError), which a comparison with the class attribute would miss."""
    from werkzeug.exceptions import BadRequestKeyError

    from passgate_collector import errorpage

    app = _app(store)
    with app.test_request_context("/console/", headers={"Accept-Language": "tt"}):
        html = errorpage.page(BadRequestKeyError("photo")).get_data(as_text=True)
    assert "Бит коллектор кабул итә алмаган" in html and "KeyError" not in html


def test_an_odd_cookie_neither_passes_nor_breaks_the_size_check(store):  # noqa: F811
    """Any byte may come in a Cookie header (waitress gives it as latin-1): the check
    answers False, it does not raise (in waitress's parser a raise drops the connection
    without an answer)."""
    from passgate_collector.auth import names_account

    check = names_account(_app(store))
    for header in ("passgate_staff=\xc7", "other=\xff\xfe; passgate_staff=x.y.z", "",
                   None, "passgate_staff", "passgate_staff=" + "A" * 5000, "=;=;;"):
        assert check(header) is False, header
