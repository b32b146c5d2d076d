"""Issue 11, point 2, from an independent review: inputs the protocol allows, or any client
can send, at the edges the earlier tables missed. Each answer is a 2xx or a 4xx on both
backends, never a 5xx, and what is stored comes back exactly as sent:

- scans at the very end of the protocol's time range (t_ms up to 2**63 - 1) with a pass
  hash: the sharing window's end was computed past a BIGINT (500 on both backends, and
  the agent retries a 5xx for ever: that device's queue stopped);
- flags holding a non-ASCII space (U+00A0, U+2028, U+3000): stored split on them, so the
  resend of the same row was refused as a nonce conflict and raised a tamper alert;
- the staff page and the console with such a scan stored (no datetime holds its time);
- a NUL anywhere in a request (PostgreSQL text cannot hold one: 500 there, not on SQLite);
- a body over the limit where the view never reads it (a GET), and waitress's own refusals,
  which now give the protocol's CBOR error under /v1/ like every other answer there.
"""

from __future__ import annotations

import hashlib
import random
import socket

import cbor2
import pytest

from collector_support import (  # noqa: F401
    NOW,
    FakeDevice,
    cheap_argon2,
    fake_time_token,
    pass_hash,
    pg_cluster,
    sign_in,
    staff_login,
    store,
)
from passgate.journal.schema import chain_of
from passgate_collector import protocol
from passgate_collector.web import Settings, create_app

CBOR = {"Content-Type": "application/cbor"}
TOP = (1 << 63) - 1  # the largest t_ms the protocol allows
MAX_BODY = 64 * 1024


def _app(store):  # noqa: F811
    return create_app(store, time_token=fake_time_token, now=lambda: NOW,
                      settings=Settings(max_body=MAX_BODY, rate_burst=10_000))


def _enrol(client, store, name: str) -> FakeDevice:  # noqa: F811
    dev = FakeDevice(name)
    token = f"token-{name}".ljust(20, "x")
    store.add_token(hashlib.sha256(token.encode()).digest(), name, NOW, NOW + 60)
    assert client.post("/v1/enrol", data=dev.enrol_body(token), headers=CBOR).status_code == 201
    return dev


def _at(dev: FakeDevice, t_ms: int, **kw) -> dict:
    """A scan at exactly ``t_ms`` (not through a float), chained."""
    row = dev.scan(0, **kw)
    row["t_ms"] = t_ms
    row["chain"] = chain_of(dev.chain_before(row["seq"]), row)
    return row


def _statuses(resp) -> list[str]:
    assert resp.status_code == 200, resp.data
    return [r["status"] for r in cbor2.loads(resp.data)["results"]]


def test_scans_at_the_end_of_time_with_any_space_in_flags_store_and_resend_alike(
        store, staff_login):  # noqa: F811
    client = staff_login(_app(store).test_client(), store)
    shared = pass_hash(7)
    # Sorted, unique, no ASCII space: allowed. One is a live code, so the reuse look-up runs.
    flags = ("a\u00a0b", "live_k\u3000x", "z\u2028z")
    sent = {}
    for name in ("gate-1", "gate-2"):  # the second batch pairs with the first one's scans
        dev = _enrol(client, store, name)
        rows = [_at(dev, TOP - 1000, ph=shared, flags=flags),
                _at(dev, TOP, ph=shared, flags=flags),
                _at(dev, TOP - 3_600_000, ph=pass_hash(8))]
        rows.sort(key=lambda r: r["seq"])
        assert _statuses(client.post("/v1/batches", data=dev.batch_body(rows),
                                     headers=CBOR)) == ["stored"] * 3
        again = client.post("/v1/batches", data=dev.batch_body(rows), headers=CBOR)
        assert _statuses(again) == ["duplicate"] * 3  # the same row, not a conflict
        sent[name] = rows
    held = store.recent_scans(10)
    for name, rows in sent.items():
        got = {s["seq"]: s for s in held[name]}
        for row in rows:
            assert {k: got[row["seq"]][k] for k in row} == row
    kinds = {a["kind"] for a in store.alert_summary()}
    assert kinds == {"live_code_reused"}  # no nonce_conflict, no chain alert
    assert store.shared_passes(3_600_000, 0, 50)  # the pairs were found, at the range's end
    # Pages that show these times: no datetime holds them, the pages still render.
    for path in ("/", "/console/", "/console/feed.json", "/console/checkpoint/gate-1"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
    assert b"@%d" % (TOP // 1000 - 1) in client.get("/").data  # the time shown as @SECONDS


@pytest.mark.parametrize("path", [
    "/console/scans?zone=%00", "/console/scans?device=a%00", "/console/scans?site=%00",
    "/console/charts?site=%00", "/console/checkpoint/%00", "/console/scans?%00=1",
])
def test_a_nul_anywhere_is_refused_alike_on_both_backends(store, staff_login, path):  # noqa: F811
    client = staff_login(_app(store).test_client(), store)
    assert client.get(path).status_code == 400


def test_a_nul_before_sign_in_and_under_v1_is_400(store, cheap_argon2):  # noqa: F811
    client = _app(store).test_client()
    r = sign_in(client, "a\x00b")  # as a browser: the form's CSRF token, then the form
    assert r.status_code == 400
    r = client.get("/v1/bundle?have=%00")
    assert r.status_code == 400 and cbor2.loads(r.data)["error"] == "malformed"
    assert protocol.CHALLENGE_HEADER in r.headers  # every /v1/ answer carries one
    assert client.get("/v1/time", headers={"Passgate-Device": "gate-1"}).status_code == 204


def test_the_photo_path_takes_a_large_body_only_with_a_signed_session(store, staff_login):  # noqa: F811
    """The pass search's 12 MiB limit applies to a request with a signed staff session; one
    without (never signed in, or a cookie this collector did not sign) keeps max_body and
    is refused before its form is read."""
    from passgate_collector.console import passsearch

    big = b"text=" + b"x" * (MAX_BODY * 4)
    assert MAX_BODY * 4 < passsearch.MAX_PHOTO_BYTES
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    anonymous = _app(store).test_client()
    assert anonymous.post("/console/pass", data=big, headers=form).status_code == 413
    anonymous.set_cookie("passgate_staff", "eyJ1Ijoidmlld2VyIn0.Zm9yZ2Vk.c2ln")
    assert anonymous.post("/console/pass", data=big, headers=form).status_code == 413
    small = anonymous.post("/console/pass", data=b"text=x", headers=form)
    assert small.status_code in (400, 401)  # read, then refused by the guard: not a 413
    signed_in = staff_login(_app(store).test_client(), store)
    # Read (no 413); refused only for its missing CSRF token, after the form was parsed.
    assert signed_in.post("/console/pass", data=big, headers=form).status_code == 400


def test_a_console_range_at_the_calendar_edges_renders(store, staff_login):  # noqa: F811
    client = staff_login(_app(store).test_client(), store)
    for query in ("to=0001-01-01T00:00", "from=0001-01-01T00:00&to=0001-01-01T00:30",
                  "from=9999-12-31T23:59", "to=9999-12-31T23:59"):
        r = client.get(f"/console/scans?{query}")
        assert r.status_code == 200, query


@pytest.mark.parametrize("cursor", ["\u00b2:1:gate-1", "1:\u00b2:gate-1", "\u0663:1:gate-1",
                                    "99999999999999999999:1:gate-1", "1:99999999999999999999:g",
                                    "--5:1:gate-1", "-99999999999999999999:1:g"])
def test_a_page_cursor_out_of_range_is_the_first_page_on_both_backends(
        store, staff_login, cursor):  # noqa: F811
    client = staff_login(_app(store).test_client(), store)
    assert client.get("/console/scans", query_string={"before": cursor}).status_code == 200
    assert client.get("/console/feed.json", query_string={"after": cursor}).status_code == 200


# --- on a real socket, waitress in front --------------------------------------------------

def _serve(app):
    import threading

    from passgate_collector.auth import names_account
    from passgate_collector.server import make_server
    from passgate_collector.web import LARGE_BODIES

    server = make_server(app, host="127.0.0.1", port=0, threads=2, max_body=MAX_BODY,
                         large_bodies=LARGE_BODIES, admits=names_account(app))
    threading.Thread(target=server.run, daemon=True).start()
    return server


def _exchange(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send a raw request, half-close, read the whole answer: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head)
        try:
            s.sendall(body)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # refused before the body was all sent: the answer is still there
            pass
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    top, _, payload = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, payload


def _chunked(body: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                    for i in range(0, len(body), 8192)) + b"0\r\n\r\n"


@pytest.mark.parametrize("method, path", [("GET", "/v1/time"), ("GET", "/v1/bundle"),
                                          ("POST", "/v1/batches"), ("GET", "/v1/nope")])
@pytest.mark.parametrize("size", [MAX_BODY + 1, MAX_BODY + 500, 5 << 20])
@pytest.mark.parametrize("chunked", [False, True])
def test_every_body_over_the_limit_is_a_cbor_413_under_v1(tmp_path, method, path, size,
                                                          chunked):
    """Whether Flask (just over), this collector's own check (a GET that reads nothing) or
    waitress (far over) refuses it, the answer is the protocol's: CBOR, with a challenge."""
    from passgate_collector.store import open_store

    st = open_store(f"sqlite:///{tmp_path}/c.db")
    server = _serve(_app(st))
    try:
        body = b"\0" * size
        framing = (b"Transfer-Encoding: chunked" if chunked
                   else b"Content-Length: %d" % size)
        head = (b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\n%s\r\n\r\n"
                % (method.encode(), path.encode(), framing))
        status, headers, payload = _exchange(server.effective_port, head,
                                             _chunked(body) if chunked else body)
        assert status == 413
        assert headers["content-type"] == protocol.CONTENT_TYPE
        assert cbor2.loads(payload)["error"] == "too_large"
        assert protocol.CHALLENGE_HEADER.lower() in headers
    finally:
        server.close()
        st.close()


def test_waitress_refusals_elsewhere_are_the_staff_page_and_a_broken_chunk_is_a_cbor_400(
        tmp_path):
    from passgate_collector.store import open_store

    st = open_store(f"sqlite:///{tmp_path}/c.db")
    server = _serve(_app(st))
    port = server.effective_port
    try:
        status, headers, payload = _exchange(
            port, b"POST /login HTTP/1.1\r\nHost: x\r\nAccept-Language: ru\r\n"
                  b"Content-Length: %d\r\n\r\n" % (5 << 20), b"\0" * (5 << 20))
        assert status == 413 and headers["content-type"].startswith("text/html")
        assert "Слишком большой объём".encode() in payload  # the staff page, in Russian
        broken = (b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")
        status, headers, payload = _exchange(port, broken)
        assert status == 400 and cbor2.loads(payload)["error"] == "malformed"
        assert protocol.CHALLENGE_HEADER.lower() in headers
        status, headers, payload = _exchange(port, broken.replace(b"/v1/batches", b"/login"))
        assert status == 400 and headers["content-type"].startswith("text/html")
        status, _, _ = _exchange(port, b"GET /v1/time HTTP/1.1\r\nHost: x\r\n"
                                       b"Passgate-Device: gate-1\r\n\r\n")
        assert status == 204  # and the server still answers
    finally:
        server.close()
        st.close()


def test_any_byte_in_a_cookie_at_the_photo_path_gets_an_answer(tmp_path):
    """waitress gives header bytes as latin-1; a Cookie with bytes that are not UTF-8 made
    the photo path's size check raise inside waitress's parser, which dropped the
    connection without an answer (and logged a traceback per request)."""
    from passgate_collector.store import open_store

    st = open_store(f"sqlite:///{tmp_path}/c.db")
    server = _serve(_app(st))
    try:
        for cookie in (b"passgate_staff=\xc7", b"x=\xff\xfe; passgate_staff=a.b.c"):
            status, _, _ = _exchange(
                server.effective_port, b"POST /console/pass HTTP/1.1\r\nHost: x\r\nCookie: "
                + cookie + b"\r\nContent-Length: 0\r\n\r\n")
            assert status == 401  # the guard's answer: not signed in
    finally:
        server.close()
        st.close()


def test_migration_9_finds_the_pairs_of_scans_at_the_end_of_time(store):  # noqa: F811
    """Schema 9 fills the sharing pairs once from the last week's scans: its window's end
    must not pass 2^63-1 either (an older collector stored such scans; the upgrade then
    failed on PostgreSQL, bigint out of range, and the collector would not start)."""
    from passgate_collector.store import schema

    client = _app(store).test_client()
    a, b = _enrol(client, store, "gate-1"), _enrol(client, store, "gate-2")
    shared, other = pass_hash(7), pass_hash(9)
    for dev, times in ((a, (TOP - 5000, TOP - 7_200_000)), (b, (TOP, TOP - 3_600_000))):
        rows = [_at(dev, t, ph=shared if t > TOP - 4_000_000 else other) for t in times]
        assert _statuses(client.post("/v1/batches", data=dev.batch_body(rows),
                                     headers=CBOR)) == ["stored"] * 2
    found_at_ingest = sorted(map(tuple, store._all("SELECT * FROM pass_pairs")))
    assert len(found_at_ingest) == 2  # gate-2's TOP and TOP - 1 h each with gate-1's TOP - 5 s
    with store._tx() as cur:
        cur.execute("DELETE FROM pass_pairs")
        for stmt in schema.migration(9, store.types):
            cur.execute(store.sql(stmt))
    assert sorted(map(tuple, store._all("SELECT * FROM pass_pairs"))) == found_at_ingest


def test_a_phone_photo_reaches_the_pass_search_through_waitress(tmp_path, cheap_argon2):  # noqa: F811
    """The console's pass search takes a photo up to 12 MiB; behind waitress every body over
    max_body (1 MiB by default) was refused before the view could raise its limit (the CSRF
    check read the form first, and waitress's own limit sat 1 KiB above max_body). Only that
    POST path is raised: a sign-in with the same body is still 413."""
    import http.cookiejar
    import io
    import threading
    import urllib.error
    import urllib.request

    from PIL import Image

    from collector_support import STAFF_PASSWORD, add_staff, csrf_of
    from passgate_collector.auth import names_account
    from passgate_collector.console import passsearch
    from passgate_collector.server import make_server
    from passgate_collector.store import open_store
    from passgate_collector.web import LARGE_BODIES

    st = open_store(f"sqlite:///{tmp_path}/c.db")
    add_staff(st, "guard")
    app = _app(st)
    app.config["SESSION_COOKIE_SECURE"] = False  # plain HTTP on loopback; TLS at the proxy
    server = make_server(app, host="127.0.0.1", port=0, threads=2, max_body=MAX_BODY,
                         large_bodies=LARGE_BODIES, admits=names_account(app))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    jar = http.cookiejar.CookieJar()
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def multipart(fields: dict, photo: bytes) -> tuple[bytes, str]:
        edge = "passgate-test-edge"
        parts = [f'--{edge}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                 .encode() for k, v in fields.items()]
        parts.append(f'--{edge}\r\nContent-Disposition: form-data; name="photo"; '
                     f'filename="pass.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
                     + photo + f"\r\n--{edge}--\r\n".encode())
        return b"".join(parts), f"multipart/form-data; boundary={edge}"

    def post(path: str, body: bytes, kind: str) -> tuple[int, str]:
        req = urllib.request.Request(base + path, data=body, headers={"Content-Type": kind})
        try:
            with web.open(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    try:
        login = web.open(base + "/login", timeout=30).read().decode()
        status, _ = post("/login", urllib.parse.urlencode({
            "csrf_token": csrf_of(login), "name": "guard", "password": STAFF_PASSWORD,
            "code": "", "next": "/console/pass"}).encode(), "application/x-www-form-urlencoded")
        assert status == 200  # followed to the pass search page
        token = csrf_of(web.open(base + "/console/pass", timeout=30).read().decode())
        # A 4 MB photo with no QR code in it: noise, so PNG cannot shrink it.
        noise = random.Random(5).randbytes(4_000_000)
        img = Image.frombytes("L", (2000, 2000), noise)
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=0)
        photo = buf.getvalue()
        assert MAX_BODY * 16 < len(photo) < passsearch.MAX_PHOTO_BYTES
        status, page = post("/console/pass", *multipart({"csrf_token": token, "text": ""},
                                                        photo))
        assert status == 200, page[:300]
        assert "no QR code found in the photo" in page
        status, _ = post("/console/pass", *multipart({"csrf_token": token, "text": ""},
                                                     b"\0" * (passsearch.MAX_PHOTO_BYTES
                                                              + 128 * 1024)))
        assert status == 413
        status, _ = post("/login", b"name=" + b"x" * len(photo),
                         "application/x-www-form-urlencoded")
        assert status == 413
        # Without a signed session the photo path keeps max_body: a client that never
        # signed in cannot make the collector read (and spool) 12 MiB. No cookie, a forged
        # one, and the real one with its signature altered are all refused unread.
        session_cookie = next(c for c in jar if c.name == "passgate_staff")
        forged_values = [None, "eyJ1IjoiZ3VhcmQifQ.Zm9yZ2Vk.c2lnbmF0dXJl",
                         session_cookie.value[:-2] + ("AA" if session_cookie.value[-2:] != "AA"
                                                      else "BB")]
        body, kind = multipart({"csrf_token": token, "text": ""}, photo)
        for value in forged_values:
            headers = {"Content-Type": kind}
            if value is not None:
                headers["Cookie"] = f"passgate_staff={value}"
            req = urllib.request.Request(base + "/console/pass", data=body, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    got = r.status
            except urllib.error.HTTPError as exc:
                got = exc.code
            assert got == 413, value
        # The signed-in session still gets through after those.
        status, page = post("/console/pass", *multipart({"csrf_token": token, "text": ""},
                                                        photo))
        assert status == 200, page[:300]
    finally:
        server.close()
        st.close()

