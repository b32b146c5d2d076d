"""Staff sign-in (issue 12 points 1 and 9): no console route without a session, roles from one
table, CSRF on every change, timeouts, the rate limit shared through the database, TOTP, the
trusted proxy header, and privacy (one failure message; no password or secret in logs).

The route walk takes every rule of ``app.url_map``, so routes other engineers add are walked
too; probe routes shaped like the console's future ones (an export, an acknowledge, device
management) are added the way a blueprint would add them, so the role table is exercised even
before those views exist.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import uuid

import pytest
from flask import Blueprint

from collector_support import (  # noqa: F401
    STAFF_PASSWORD,
    T0,
    add_staff,
    cheap_argon2,
    csrf_of,
    fake_time_token,
    pg_cluster,
    sign_in,
    staff_login,
    store,
)
from fakes import FakeClock
from passgate_collector.auth import AuthOptions, passwords, roles, totp
from passgate_collector.auth.views import FAILED, LIMITED
from passgate_collector.cli import main as collector_cli
from passgate_collector.store import open_store
from passgate_collector.web import create_app

SAFE = {"GET", "HEAD", "OPTIONS"}


@pytest.fixture
def db(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/collector.db")
    yield s
    s.close()


@pytest.fixture
def clock():
    return FakeClock(T0 + 3600)


def probes() -> Blueprint:
    """Routes shaped like the console's coming ones, each answering with "data"."""
    bp = Blueprint("probe", __name__)
    for path, methods in (("/export.csv", ["GET"]), ("/alerts/<int:alert_id>/ack", ["POST"]),
                          ("/devices/<device_id>/disable", ["POST"]),
                          ("/admin/tokens", ["GET", "POST"]), ("/feed.json", ["GET"]),
                          ("/checkpoints/<path:name>", ["GET"]), ("/notes", ["POST"])):
        bp.add_url_rule(path, path.strip("/").replace("/", "_").replace("<", "").replace(
            ">", "").replace(":", "_").replace(".", "_"),
            lambda **_kw: "data: secret", methods=methods)
    return bp


def make_app(store, clock, **options):  # noqa: F811
    app = create_app(store, time_token=fake_time_token, now=clock, auth=AuthOptions(**options))
    app.register_blueprint(probes())
    return app


def walk(app):
    """(endpoint, method, URL) for every rule and every method it accepts."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        values = {}
        for arg in sorted(rule.arguments):
            for candidate in (1, "x", str(uuid.UUID(int=1))):
                try:
                    adapter.build(rule.endpoint, {**values, arg: candidate})
                except Exception:  # noqa: BLE001 - try the next placeholder kind
                    continue
                values[arg] = candidate
                break
        url = adapter.build(rule.endpoint, values)
        for method in sorted(rule.methods):
            yield rule.endpoint, method, url


def request(client, method: str, url: str, csrf: str | None = None):
    data = {"csrf_token": csrf} if csrf else None
    return client.open(url, method=method, data=data)


def test_no_console_route_answers_without_a_session(db, clock):
    app = make_app(db, clock)
    client = app.test_client()
    walked = public = 0
    for endpoint, method, url in walk(app):
        if roles.is_public(endpoint, url):
            public += 1
            assert url.startswith("/v1/") or endpoint in roles.PUBLIC_ENDPOINTS \
                or endpoint.endswith(".static"), f"{endpoint} is public and not declared so"
            continue
        walked += 1
        resp = request(client, method, url)
        assert resp.status_code in (302, 401), (method, url, resp.status_code)
        if resp.status_code == 302:
            assert resp.headers["Location"].startswith("/login"), (method, url)
        assert b"secret" not in resp.data and b"<table" not in resp.data, (method, url)
    assert walked >= 12 and public >= 5  # the staff page, /logout and the probes; /v1, /login
    # A script asking for JSON is told 401, not sent to a form.
    assert client.get("/feed.json", headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/nope").headers["Location"].startswith("/login")  # no map probing


@pytest.mark.usefixtures("cheap_argon2")
@pytest.mark.parametrize("role", roles.ROLES)
def test_each_role_reaches_exactly_what_the_table_allows(db, clock, staff_login, role):  # noqa: F811
    app = make_app(db, clock)
    client = staff_login(app.test_client(), db, role)
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    seen = set()
    for endpoint, method, url in walk(app):
        if roles.is_public(endpoint, url) or endpoint == "auth.logout":
            continue
        need = roles.required_role(endpoint, url, method)
        seen.add(need)
        resp = request(client, method, url, csrf=None if method in SAFE else csrf)
        if roles.allows(role, need):
            # Let through: neither sent to sign in, nor forbidden, nor refused for its CSRF
            # token. (A handler may still answer 400 for the walk's empty form: the console's
            # acknowledge without an alert key.)
            assert resp.status_code not in (302, 401, 403), (role, method, url)
            assert b"did not come from this console" not in resp.data, (role, method, url)
        else:
            assert resp.status_code == 403, (role, method, url, resp.status_code)
            assert b"secret" not in resp.data
    assert seen == set(roles.ROLES)  # the walk met viewer, supervisor and admin routes
    assert client.get("/").status_code == 200  # still signed in after every 403


@pytest.mark.usefixtures("cheap_argon2")
def test_every_change_needs_the_session_csrf_token(db, clock, staff_login):  # noqa: F811
    app = make_app(db, clock)
    client = staff_login(app.test_client(), db, "admin")
    unsafe = [(m, u) for e, m, u in walk(app) if m not in SAFE and not u.startswith("/v1/")]
    assert len(unsafe) >= 5
    for method, url in unsafe:
        for token in (None, "forged-" + "x" * 40):
            resp = request(client, method, url, csrf=token)
            assert resp.status_code == 400, (method, url, token)
            assert b"secret" not in resp.data
    # The header form, as a script on the page would send it.
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    assert client.post("/notes", headers={"X-CSRF-Token": csrf}).status_code == 200
    # Sign-in itself needs the form's token (no login CSRF).
    fresh = app.test_client()
    assert fresh.post("/login", data={"name": "admin", "password": STAFF_PASSWORD}
                      ).status_code == 400


def test_device_api_and_health_check_need_no_session(db, clock):
    client = make_app(db, clock).test_client()
    assert client.get("/v1/health").status_code == 200
    assert client.post("/v1/enrol", data=b"x", headers={"Content-Type": "application/cbor"}
                       ).status_code == 400  # the protocol's own answer, no CSRF, no login
    resp = client.get("/healthz")
    assert (resp.status_code, resp.data) == (200, b"ok\n")  # and nothing else


@pytest.mark.usefixtures("cheap_argon2")
def test_sign_in_failure_does_not_tell_whether_the_account_exists(db, clock):
    app = make_app(db, clock)
    add_staff(db, "guard")
    add_staff(db, "chief")
    db.set_totp("chief", totp.new_secret())

    def attempt(name, password, code=""):
        resp = sign_in(app.test_client(), name, password, code)
        text = re.sub(r'name="csrf_token" value="[^"]+"', "", resp.get_data(as_text=True))
        return resp.status_code, text

    wrong_password = attempt("guard", "not the password")
    assert wrong_password[0] == 401 and FAILED in wrong_password[1]
    assert attempt("nobody", "not the password") == wrong_password
    assert attempt("chief", STAFF_PASSWORD, "000000") == wrong_password  # right password
    assert attempt("chief", STAFF_PASSWORD) == wrong_password  # code missing
    assert sign_in(app.test_client(), "guard").status_code == 302


@pytest.mark.usefixtures("cheap_argon2")
def test_rate_limit_is_shared_by_processes_and_per_address(store, clock):  # noqa: F811
    one, two = make_app(store, clock), make_app(store, clock)  # two collector processes
    add_staff(store, "guard")
    add_staff(store, "chief")
    for i in range(5):  # the account limit, spread over both processes
        assert sign_in((one, two)[i % 2].test_client(), "guard", "wrong!").status_code == 401
    refused = sign_in(two.test_client(), "guard")  # the right password, too late
    assert refused.status_code == 429 and LIMITED in refused.get_data(as_text=True)
    assert sign_in(one.test_client(), "chief").status_code == 302  # another account is fine

    def from_address(app, addr, name, password="wrong!"):
        client = app.test_client()
        client.environ_base["HTTP_X_FORWARDED_FOR"] = addr  # the proxy's hop; peer 127.0.0.1
        return sign_in(client, name, password)

    for i in range(20):  # the address limit: many names from one address
        assert from_address(one, "192.0.2.7", f"try{i}").status_code == 401
    assert from_address(two, "192.0.2.7", "chief", STAFF_PASSWORD).status_code == 429
    assert from_address(two, "192.0.2.8", "chief", STAFF_PASSWORD).status_code == 302
    clock.advance(15 * 60 + 1)  # the window has passed
    assert sign_in(one.test_client(), "guard").status_code == 302
    assert from_address(one, "192.0.2.7", "chief", STAFF_PASSWORD).status_code == 302


@pytest.mark.usefixtures("cheap_argon2")
def test_sessions_end_when_idle_too_long_or_too_old(db, clock, staff_login):  # noqa: F811
    app = make_app(db, clock, idle_s=600, absolute_s=3600)
    client = staff_login(app.test_client(), db)
    clock.advance(599)
    assert client.get("/").status_code == 200
    clock.advance(601)
    assert client.get("/").status_code == 302  # idle for longer than 600 s
    staff_login(client, db)
    for _ in range(7):  # busy all the time, yet the session ends an hour after sign-in
        clock.advance(500)
        assert client.get("/").status_code == 200
    clock.advance(500)
    assert client.get("/").headers["Location"] == "/login?next=/"


@pytest.mark.usefixtures("cheap_argon2")
def test_password_change_removal_and_sign_out_end_sessions(db, clock, staff_login):  # noqa: F811
    app = make_app(db, clock)
    desk, phone = (staff_login(app.test_client(), db) for _ in range(2))
    db.set_password("viewer", passwords.hash_password("a new password"))
    assert desk.get("/").status_code == 302 and phone.get("/").status_code == 302
    assert sign_in(desk, "viewer", "a new password").status_code == 302
    assert sign_in(phone, "viewer", "a new password").status_code == 302
    csrf = csrf_of(desk.get("/").get_data(as_text=True))
    assert desk.post("/logout", data={"csrf_token": csrf}).headers["Location"] == "/login"
    assert phone.get("/").status_code == 302  # sign-out ends the account's sessions
    assert sign_in(desk, "viewer", "a new password").status_code == 302
    db.set_role("viewer", "admin")  # a role change ends them too (it is read per request)
    assert desk.get("/").status_code == 302
    db.remove_user("viewer")
    assert sign_in(desk, "viewer", "a new password").status_code == 401


@pytest.mark.usefixtures("cheap_argon2")
def test_session_cookie_is_secure_httponly_samesite(db, clock):
    app = make_app(db, clock)
    add_staff(db, "guard")
    resp = sign_in(app.test_client(), "guard")
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("passgate_staff=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Expires="):
        assert flag in cookie
    assert resp.headers["Location"] == "/"
    evil = sign_in(app.test_client(), "guard", next_path="//evil.example/x")
    assert evil.headers["Location"] == "/"  # next stays on this site


@pytest.mark.parametrize(("t", "code"), [(59, "94287082"), (1111111109, "07081804"),
                                         (1111111111, "14050471"), (1234567890, "89005924"),
                                         (2000000000, "69279037"), (20000000000, "65353130")])
def test_totp_matches_rfc_6238_sha1_vectors(t, code):
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.hotp(secret, t // 30, digits=8) == code


@pytest.mark.usefixtures("cheap_argon2")
def test_totp_code_is_needed_and_accepted_once(db, clock):
    app = make_app(db, clock)
    add_staff(db, "chief", "supervisor")
    secret = totp.new_secret()
    db.set_totp("chief", secret)
    code = totp.hotp(secret, int(clock()) // 30)
    assert totp.matching_step(secret, code, clock() + 30) is not None  # a phone a step behind
    assert totp.matching_step(secret, code, clock() + 90) is None
    assert sign_in(app.test_client(), "chief", code="").status_code == 401
    assert sign_in(app.test_client(), "chief", code=code).status_code == 302
    assert sign_in(app.test_client(), "chief", code=code).status_code == 401  # replayed
    clock.advance(30)
    later = totp.hotp(secret, int(clock()) // 30)
    assert sign_in(app.test_client(), "chief", code=later).status_code == 302


@pytest.mark.usefixtures("cheap_argon2")
def test_proxy_identity_header_only_when_configured_and_from_the_proxy(db, clock):
    add_staff(db, "guard")
    header = {"X-Remote-User": "guard"}
    assert make_app(db, clock).test_client().get("/", headers=header).status_code == 302  # off
    app = make_app(db, clock, proxy_user_header="X-Remote-User", trusted_proxies=("127.0.0.1",))
    resp = app.test_client().get("/", headers=header)
    assert resp.status_code == 200 and 'class="user">guard<' in resp.get_data(as_text=True)
    outsider = app.test_client()
    outsider.environ_base["REMOTE_ADDR"] = "192.0.2.9"  # not the proxy: the header is ignored
    assert outsider.get("/", headers=header).status_code == 302
    assert app.test_client().get("/", headers={"X-Remote-User": "nobody"}).status_code == 302


def test_cli_accounts_hash_with_argon2id_and_log_no_secret(tmp_path, monkeypatch, capsys,
                                                           caplog):
    url = f"sqlite:///{tmp_path}/c.db"
    caplog.set_level(logging.DEBUG)
    password = "Sesame-open-42"

    def cli(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin + "\n"))
        return collector_cli([*argv, "--db", url])

    assert cli("user", "add", "guard", "--role", "supervisor", "--password-stdin",
               stdin=password) == 0
    assert cli("user", "add", "guard", "--password-stdin", stdin=password) == 2  # exists
    assert cli("user", "add", "short", "--password-stdin", stdin="2short") == 2
    assert cli("user", "add", "Bad Name", "--password-stdin", stdin=password) == 2
    assert cli("user", "totp", "enable", "guard") == 0
    out = capsys.readouterr().out
    secret = re.search(r"^otpauth://totp/.*[?&]secret=([A-Z2-7]+)", out, re.M).group(1)
    assert cli("user", "list") == 0
    listing = capsys.readouterr().out
    assert listing == "guard\tsupervisor\tpassword\ttotp\n"
    held = open_store(url)
    try:
        user = held.user("guard")
        # The production parameters (RFC 9106 low-memory profile), not the tests' cheap ones.
        assert user.pw_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        app = create_app(held, time_token=None, now=lambda: T0)
        assert sign_in(app.test_client(), "guard", password, "123456").status_code == 401
        good = totp.hotp(secret, T0 // 30)
        assert sign_in(app.test_client(), "guard", password, good).status_code == 302
    finally:
        held.close()
    assert cli("user", "role", "guard", "viewer") == 0
    assert cli("user", "passwd", "guard", "--password-stdin", stdin="another one 42") == 0
    assert cli("user", "remove", "guard") == 0
    assert cli("user", "remove", "guard") == 1
    everything = caplog.text + capsys.readouterr().err
    for leaked in (password, "another one 42", secret, good):
        assert leaked not in everything


def test_weak_hash_is_upgraded_at_the_next_good_sign_in(db, clock):
    from argon2 import PasswordHasher, profiles

    weak = PasswordHasher.from_parameters(profiles.CHEAPEST).hash(STAFF_PASSWORD)
    db.add_user("guard", "viewer", weak, T0)
    epoch = db.user("guard").epoch
    assert sign_in(make_app(db, clock).test_client(), "guard").status_code == 302
    upgraded = db.user("guard")
    assert upgraded.pw_hash.startswith("$argon2id$v=19$m=65536,") and upgraded.epoch == epoch
