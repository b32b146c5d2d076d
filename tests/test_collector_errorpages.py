"""The staff side's error pages speak the staff member's language (collector/errorpage.py).

Before, every refusal outside /v1/ was werkzeug's English page (a CSRF token expired, a role
too low, an unknown checkpoint, a NUL), and a 413 or a 500 there was the device protocol's
CBOR. Under /v1/ the answers stay CBOR, checked here too.
"""

from __future__ import annotations

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
