"""The holder web app's files as the collector serves them (no browser here; the app itself
runs in tests/test_holder_app_browser.py).

Rules tested: ``/holder/`` answers without a staff session, on purpose and declared so; each
file has its content type, nosniff and a CSP that allows only the app's own origin; the
catalogs' sources and anything outside the app are 404; the service worker caches every
file the app loads (else it would not work offline); the vendored QR encoder is the pinned
file; every holder-app text is translated into Russian and Tatar with its placeholders.
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.parse

import pytest
from babel.messages.pofile import read_po

from passgate_collector.auth import roles
from passgate_collector.holder import APP_DIR, CSP
from passgate_collector.store import open_store
from passgate_collector.web import create_app
from test_passformat import cli, issuer_key_file  # noqa: F401 (a fixture)

QRCODE_SHA256 = "ea91d7118a5395289170da848b7c6758b996163bfbccf312591ab65a4911b7c0"


@pytest.fixture
def client(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/collector.db")
    app = create_app(store, time_token=None, now=lambda: 1_767_261_600.0)
    yield app.test_client()
    store.close()


def app_files() -> set[str]:
    """Every file of the app a browser loads (not the catalogs' sources, not the docs)."""
    return {p.relative_to(APP_DIR).as_posix() for p in APP_DIR.rglob("*")
            if p.is_file() and p.suffix in (".html", ".js", ".mjs", ".css", ".webmanifest",
                                            ".png", ".svg")
            and p.name != "sw.js" and "locale" not in p.parts}


@pytest.mark.parametrize("path, kind", [
    ("/holder/", "text/html; charset=utf-8"),
    ("/holder/app.js", "text/javascript; charset=utf-8"),
    ("/holder/sw.js", "text/javascript; charset=utf-8"),
    ("/holder/vendor/qrcode.mjs", "text/javascript; charset=utf-8"),
    ("/holder/style.css", "text/css; charset=utf-8"),
    ("/holder/manifest.webmanifest", "application/manifest+json"),
    ("/holder/icons/icon-192.png", "image/png"),
    ("/holder/icons/icon.svg", "image/svg+xml"),
])
def test_each_file_is_served_without_a_session_with_its_type_and_csp(client, path, kind):
    resp = client.get(path)
    assert resp.status_code == 200, path
    assert resp.headers["Content-Type"] == kind
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "Set-Cookie" not in resp.headers  # no session is started for a holder


def test_the_csp_allows_only_the_apps_own_origin():
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "worker-src", "manifest-src"):
        assert directives[name] == "'self'", name
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'none'"
    assert "unsafe" not in CSP and "http" not in CSP and "data:" not in CSP


def test_the_bare_path_redirects_and_the_page_loads_only_its_own_files(client):
    assert client.get("/holder").headers["Location"].endswith("/holder/")
    html = client.get("/holder/").get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html  # nothing inline for the CSP
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert "//" not in ref, ref  # no other site
        assert client.get(f"/holder/{ref}").status_code == 200, ref


@pytest.mark.parametrize("path", [
    "/holder/locale/ru/LC_MESSAGES/passgate_holder.po", "/holder/locale/passgate_holder.pot",
    "/holder/vendor/README.md", "/holder/../holder.py", "/holder/%2e%2e/holder.py",
    "/holder/nope.js",
])
def test_nothing_but_the_apps_files(client, path):
    assert client.get(path).status_code == 404, path


def test_the_holder_routes_are_public_on_purpose():
    for endpoint in ("holder.bare", "holder.page", "holder.file"):
        assert endpoint in roles.PUBLIC_ENDPOINTS
        assert roles.is_public(endpoint, "/holder/")


def test_the_service_worker_caches_every_file_the_app_loads():
    sw = (APP_DIR / "sw.js").read_text()
    listed = set(re.search(r"const FILES = \[(.*?)\];", sw, re.S).group(1).replace(
        '"', "").replace("\n", "").replace(" ", "").strip(",").split(","))
    assert listed == (app_files() - {"index.html"}) | {"./"}


def test_the_vendored_qr_encoder_is_the_pinned_file():
    data = (APP_DIR / "vendor" / "qrcode.mjs").read_bytes()
    assert hashlib.sha256(data).hexdigest() == QRCODE_SHA256
    assert (APP_DIR / "vendor" / "qrcode-generator-LICENSE.txt").read_text().count("MIT") >= 2


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{\w+\}", text))


@pytest.mark.parametrize("lang, forms", [("ru", 3), ("tt", 1)])
def test_every_holder_text_is_translated_with_its_placeholders(lang, forms):
    pot = read_po(io.BytesIO((APP_DIR / "locale" / "passgate_holder.pot").read_bytes()))
    po = read_po(io.BytesIO(
        (APP_DIR / "locale" / lang / "LC_MESSAGES" / "passgate_holder.po").read_bytes()),
        locale=lang)
    assert po.num_plurals == forms
    ids = {m.id for m in pot if m.id}
    assert len(ids) >= 30 and ("{n} minute", "{n} minutes") in ids
    assert {m.id for m in po if m.id} == ids
    for m in po:
        if not m.id:
            continue
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert all(strings), m.id
        if isinstance(m.id, tuple):
            assert len(strings) == forms, m.id
        source = m.id[-1] if isinstance(m.id, tuple) else m.id
        for s in strings:
            assert _placeholders(s) == _placeholders(source), (lang, m.id, s)
    messages = (APP_DIR / "messages.js").read_text("utf-8")
    assert "Пропуск passgate" in messages and "passgate пропускы" in messages


# -- passgate issue --app-url: the link that opens a pass in the app ----------------------

def test_issue_prints_the_app_link_with_the_pass_in_the_fragment(issuer_key_file, capsys):  # noqa: F811
    from cryptography.hazmat.primitives.asymmetric import ec

    from passgate.passes.holder import compressed_point, format_holder_key

    key = format_holder_key(compressed_point(ec.generate_private_key(ec.SECP256R1())))
    code, out, err = cli(capsys, "issue", "--key", issuer_key_file, "--purpose", "shopping",
                          "--zone", "gate-1", "--holder-key", key,
                          "--app-url", "https://passes.example/holder/")
    assert code == 0, err
    text, link = out.splitlines()
    base, fragment = link.split("#", 1)
    assert base == "https://passes.example/holder/" and fragment.startswith("pass=PG1%3A")
    assert urllib.parse.unquote(fragment[len("pass="):]) == text
    assert " " not in link and "+" not in fragment  # spaces and + of base45 are encoded


@pytest.mark.parametrize("extra, words", [
    (["--app-url", "https://passes.example/holder/"], "needs --holder-key"),
    (["--holder-key", "HOLDER", "--app-url", "http://passes.example/holder/"], "https"),
    (["--holder-key", "HOLDER", "--app-url", "https://passes.example/holder/#x"], "'#'"),
    (["--holder-key", "HOLDER", "--app-url", "passes.example/holder/"], "https"),
])
def test_issue_refuses_an_app_link_it_cannot_make(issuer_key_file, capsys, extra, words):  # noqa: F811
    from cryptography.hazmat.primitives.asymmetric import ec

    from passgate.passes.holder import compressed_point, format_holder_key

    key = format_holder_key(compressed_point(ec.generate_private_key(ec.SECP256R1())))
    args = [key if a == "HOLDER" else a for a in extra]
    code, out, err = cli(capsys, "issue", "--key", issuer_key_file, "--purpose", "shopping",
                          "--zone", "gate-1", *args)
    assert code == 2 and out == "", (out, err)
    assert words in err
