"""The collector's device API (docs/sync-protocol.md) through Flask's test client, on SQLite
and on a real PostgreSQL server."""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector_support import T0, FakeDevice, fake_time_token, pg_cluster, store  # noqa: F401
from fakes import FakeClock
from passgate_collector import protocol
from passgate_collector.web import Settings, create_app

CBOR = {"Content-Type": "application/cbor"}
TOKEN = "tok-" + "x" * 40


@pytest.fixture
def clock():
    return FakeClock(T0 + 3600)


@pytest.fixture
def client(store, clock):  # noqa: F811
    app = create_app(store, time_token=fake_time_token, now=clock,
                     settings=Settings(max_rows=50, max_body=64 * 1024))
    return app.test_client()


def add_token(store, device: str, token: str = TOKEN, ttl: int = 3600, now: int = T0 + 3600):  # noqa: F811
    store.add_token(hashlib.sha256(token.encode()).digest(), device, now, now + ttl)


def post(client, path: str, body: bytes):
    return client.post(path, data=body, headers=CBOR)


def enrolled(client, store, dev: FakeDevice) -> FakeDevice:  # noqa: F811
    add_token(store, dev.device_id, token=TOKEN + dev.device_id)
    assert post(client, "/v1/enrol", dev.enrol_body(TOKEN + dev.device_id)).status_code == 201
    return dev


def body(resp) -> dict:
    return cbor2.loads(resp.data)


def test_enrol_once_then_idempotent_then_refused(client, store):  # noqa: F811
    dev = FakeDevice("gate-1")
    add_token(store, "gate-1")
    r = post(client, "/v1/enrol", dev.enrol_body(TOKEN))
    assert r.status_code == 201 and body(r)["device"] == "gate-1"
    assert store.device("gate-1").pubkey == dev.pubkey
    # The first answer was lost: the same token and key again is a success, not an error.
    assert post(client, "/v1/enrol", dev.enrol_body(TOKEN)).status_code == 200
    # The token is spent: another key cannot use it.
    thief = FakeDevice("gate-1", seed=9)
    r = post(client, "/v1/enrol", thief.enrol_body(TOKEN))
    assert r.status_code == 403 and body(r)["error"] == "bad_token"
    assert store.device("gate-1").pubkey == dev.pubkey


def test_enrol_refusals(client, store, clock):  # noqa: F811
    add_token(store, "gate-2", ttl=60)
    other = FakeDevice("gate-3")
    r = post(client, "/v1/enrol", other.enrol_body(TOKEN))  # token made for gate-2
    assert (r.status_code, body(r)["error"]) == (403, "bad_token")
    dev = FakeDevice("gate-2")
    # Proof of possession: signed by another key than the one enrolled.
    payload = {"v": 1, "t": "enrol", "device": "gate-2", "token": TOKEN, "pubkey": dev.pubkey}
    forged = protocol.sign_request(payload, Ed25519PrivateKey.generate())
    assert body(post(client, "/v1/enrol", forged))["error"] in ("bad_signature", "malformed")
    # A low-order public key (the identity point) is refused before anything else.
    weak = dict(payload, pubkey=bytes([1]) + bytes(31))
    r = post(client, "/v1/enrol", protocol.sign_request(weak, dev.key))
    assert r.status_code == 400 and "prime-order" in body(r)["detail"]
    clock.t += 61  # expired
    r = post(client, "/v1/enrol", dev.enrol_body(TOKEN))
    assert (r.status_code, body(r)["error"]) == (403, "bad_token")
    assert store.device("gate-2") is None


def test_upload_stores_then_dedups(client, store):  # noqa: F811
    dev = enrolled(client, store, FakeDevice("gate-1"))
    rows = dev.scans(10)
    r = post(client, "/v1/batches", dev.batch_body(rows, status={"backlog": 10, "bundle_version": 3,
                                                             "clock_state": "trusted"}))
    assert r.status_code == 200
    res = body(r)["results"]
    assert [x["status"] for x in res] == ["stored"] * 10
    assert [(x["seq"], x["nonce"]) for x in res] == [(w["seq"], w["nonce"]) for w in rows]
    # The same batch again (response lost), and an overlapping one: nothing twice.
    again = body(post(client, "/v1/batches", dev.batch_body(rows)))["results"]
    assert {x["status"] for x in again} == {"duplicate"}
    more = dev.scans(5)
    res = body(post(client, "/v1/batches", dev.batch_body(rows[5:] + more)))["results"]
    assert [x["status"] for x in res] == ["duplicate"] * 5 + ["stored"] * 5
    assert store.scan_counts() == {"gate-1": 15}
    assert store.alerts(10) == []
    d = store.device("gate-1")
    assert (d.bundle_version, d.clock_state, d.last_seen) == (3, "trusted", T0 + 3600)


def test_every_v1_response_carries_a_time_token(client, store):  # noqa: F811
    nonce = bytes(range(16))
    hdrs = {protocol.DEVICE_HEADER: "gate-7", protocol.NONCE_HEADER: protocol.b64url(nonce)}
    for resp in (client.get("/v1/time", headers=hdrs), client.get("/v1/bundle", headers=hdrs),
                 client.post("/v1/batches", data=b"junk", headers={**CBOR, **hdrs}),
                 client.get("/v1/health", headers=hdrs)):
        token = protocol.unb64url(resp.headers[protocol.TIME_HEADER])
        assert cbor2.loads(token) == {"fake_time": T0 + 3600, "dev": "gate-7", "nonce": nonce}, \
            resp.status_code
    # A signed request names its device itself; a bad challenge is ignored, not an error.
    dev = FakeDevice("gate-8")
    resp = client.post("/v1/batches", data=dev.batch_body([]),
                       headers={**CBOR, protocol.NONCE_HEADER: "abc"})
    assert resp.status_code == 401
    assert cbor2.loads(protocol.unb64url(resp.headers[protocol.TIME_HEADER]))["dev"] == "gate-8"
    assert cbor2.loads(protocol.unb64url(resp.headers[protocol.TIME_HEADER]))["nonce"] is None
    # Nobody named: no token rather than a token for nobody.
    assert protocol.TIME_HEADER not in client.get("/v1/time").headers


def test_real_time_token_verifies_on_the_device_side(store, clock):  # noqa: F811
    from passgate.clock.tokens import TimeKey, verify_token
    from passgate_collector.timesign import TimeSigner

    key = Ed25519PrivateKey.generate()
    app = create_app(store, time_token=TimeSigner(key), now=clock)
    nonce = bytes(range(16))
    resp = app.test_client().get("/v1/time", headers={
        protocol.DEVICE_HEADER: "gate-1", protocol.NONCE_HEADER: protocol.b64url(nonce)})
    assert resp.status_code == 204
    token = verify_token(protocol.unb64url(resp.headers[protocol.TIME_HEADER]),
                         [TimeKey(key.public_key().public_bytes_raw())], "gate-1")
    assert (token.t, token.nonce, token.device_id) == (clock.t, nonce, "gate-1")


def test_batch_level_errors(client, store):  # noqa: F811
    stranger = FakeDevice("gate-9")
    r = post(client, "/v1/batches", stranger.batch_body(stranger.scans(1)))
    # The same answer as for a bad signature (issue 11: no enumeration of enrolled ids).
    assert (r.status_code, body(r)["error"]) == (401, "unauthenticated")
    dev = enrolled(client, store, FakeDevice("gate-1"))
    assert body(post(client, "/v1/batches", b"\xa0"))["error"] == "malformed"
    r = client.post("/v1/batches", data=dev.batch_body(dev.scans(1)),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    r = post(client, "/v1/batches", dev.batch_body(dev.scans(51)))  # max_rows=50 here
    assert (r.status_code, body(r)["error"]) == (413, "too_large")
    big = dev.scans(1, zone="z" * 64)[0]
    r = post(client, "/v1/batches", dev.batch_body([big] * 1, status={"pad": "p" * 70000}))
    assert (r.status_code, body(r)["error"]) == (413, "too_large")
    rows = dev.scans(2)
    r = post(client, "/v1/batches", dev.batch_body(list(reversed(rows)), prev=bytes(32)))
    assert (r.status_code, body(r)["error"]) == (400, "malformed")
    store.set_disabled("gate-1", True)
    r = post(client, "/v1/batches", dev.batch_body(rows))
    assert (r.status_code, body(r)["error"]) == (403, "device_disabled")
    assert store.scan_counts() == {}


def test_malformed_row_rejected_alone_and_chain_continues(client, store):  # noqa: F811
    dev = enrolled(client, store, FakeDevice("gate-1"))
    rows = dev.scans(4)
    bad = dict(rows[1], reason=7)  # wrong type; its chain value is still the journal's
    res = body(post(client, "/v1/batches", dev.batch_body([rows[0], bad, *rows[2:]])))["results"]
    assert [(x["status"], x.get("reason")) for x in res] == [
        ("stored", None), ("rejected", "invalid_row"), ("stored", None), ("stored", None)]
    # The next batch links to what the collector holds: no false chain alerts.
    res = body(post(client, "/v1/batches", dev.batch_body(dev.scans(2))))["results"]
    assert [x["status"] for x in res] == ["stored", "stored"]
    assert store.alerts(10) == [] and store.flagged_scans(10) == []
    assert [r["reason"] for r in store.rejected_rows(10)] == ["invalid_row"]


def test_nonce_conflict_is_rejected_and_alerted(client, store):  # noqa: F811
    dev = enrolled(client, store, FakeDevice("gate-1"))
    rows = dev.scans(3)
    post(client, "/v1/batches", dev.batch_body(rows))
    changed = dict(rows[2], verdict="deny", reason="revoked")
    res = body(post(client, "/v1/batches", dev.batch_body([changed], prev=rows[1]["chain"])))
    assert res["results"][0]["status"] == "rejected"
    assert res["results"][0]["reason"] == "nonce_conflict"
    assert [a["kind"] for a in store.alerts(10)] == ["nonce_conflict"]


def test_heartbeat_reports_health(client, store, clock):  # noqa: F811
    dev = enrolled(client, store, FakeDevice("gate-1"))
    status = {"backlog": 42, "dead_letters": 1, "clock_state": "floor", "bundle_version": 7,
              "bundle_issued_at": T0, "firmware": "0.1.0", "unknown_key": [1, 2]}
    r = post(client, "/v1/batches", dev.batch_body([], status=status, sent_at=int(clock.t) - 30))
    assert r.status_code == 200 and body(r)["results"] == []
    d = store.device("gate-1")
    assert (d.backlog, d.dead_letters, d.clock_state, d.bundle_version, d.firmware) == \
        (42, 1, "floor", 7, "0.1.0")
    assert d.clock_offset_s == -30


def test_bundle_download_is_conditional(client, store):  # noqa: F811
    r = client.get("/v1/bundle?have=0")
    assert (r.status_code, body(r)["error"]) == (404, "no_bundle")
    store.publish_bundle(4, b"bundle-four", "x", T0)
    r = client.get("/v1/bundle?have=3")
    assert r.status_code == 200 and r.data == b"bundle-four"
    assert r.headers[protocol.BUNDLE_VERSION_HEADER] == "4"
    assert client.get("/v1/bundle?have=4").status_code == 304
    assert client.get("/v1/bundle", headers={"If-None-Match": '"4"'}).status_code == 304
    assert client.get("/v1/bundle").data == b"bundle-four"
    assert client.get("/v1/bundle?have=x").status_code == 400
    with pytest.raises(Exception, match="not newer"):
        store.publish_bundle(4, b"other", "y", T0)
    # The batch answer hints at the newest version.
    dev = enrolled(client, store, FakeDevice("gate-1"))
    assert body(post(client, "/v1/batches", dev.batch_body([])))["bundle_version"] == 4


def test_health(client, store):  # noqa: F811
    r = client.get("/v1/health")
    assert r.status_code == 200 and body(r) == {"ok": True, "db": store.kind}


def test_a_late_batch_does_not_turn_device_health_back(client, store, clock):  # noqa: F811
    """A batch delivered late (within the fresh window, never seen before) shows the device
    was alive, so last_seen moves; its status is older than the one shown, so the health
    stays. A status from a clock outside the fresh window is not taken, and freezes
    nothing."""
    dev = enrolled(client, store, FakeDevice("gate-1"))
    now = int(clock.t)

    def send(rows, sent_at, **status):
        r = post(client, "/v1/batches", dev.batch_body(rows, status=status, sent_at=sent_at))
        assert r.status_code == 200
        return [x["status"] for x in body(r)["results"]]

    assert send([], now - 10, backlog=10, bundle_version=3) == []
    assert store.device("gate-1").last_seen == now
    # A batch made a minute earlier, delivered late (held by the network, or a duplicate):
    # its rows are stored, its health is older than what the collector shows, so ignored.
    clock.t += 30
    assert send(dev.scans(2), now - 60, backlog=500, bundle_version=2) == ["stored"] * 2
    d = store.device("gate-1")
    assert (d.backlog, d.bundle_version, d.clock_offset_s, d.last_seen) == (10, 3, -10, now + 30)
    assert send([], now + 30, backlog=0, bundle_version=3) == []
    assert (store.device("gate-1").backlog, store.device("gate-1").last_seen) == (0, now + 30)
    # A device clock a year ahead is outside the window: not taken, nothing frozen either
    # (its replay a year on is not fresh: the collector keeps the batch's digest till then).
    assert send([], now + 365 * 86400, backlog=7) == []
    assert store.device("gate-1").backlog == 0
    assert send([], now + 35, backlog=4) == []
    assert (store.device("gate-1").backlog, store.device("gate-1").clock_offset_s) == (4, 5)


def test_health_follows_a_device_clock_corrected_when_it_echoes_challenges(
        client, store, clock):  # noqa: F811
    """A status from a clock 5 minutes fast, then the clock is corrected: with the
    collector's challenge echoed, the correct statuses are shown at once."""
    dev = enrolled(client, store, FakeDevice("gate-1"))
    now = int(clock.t)
    challenge = None

    def send(sent_at, backlog):
        nonlocal challenge
        r = post(client, "/v1/batches", dev.batch_body([], status={"backlog": backlog},
                                                       sent_at=sent_at, challenge=challenge))
        assert r.status_code == 200
        challenge = protocol.unb64url(r.headers[protocol.CHALLENGE_HEADER])

    send(now + 300, 9)
    assert store.device("gate-1").backlog == 9
    for later, backlog in ((60, 3), (120, 2), (180, 1)):
        clock.t = now + later
        send(now + later, backlog)
        d = store.device("gate-1")
        assert (d.backlog, d.clock_offset_s, d.last_seen) == (backlog, 0, now + later), later


def test_unknown_paths_and_methods_under_v1_answer_a_cbor_error(client):
    hdrs = {protocol.DEVICE_HEADER: "gate-7"}
    for resp, status, code in (
        (client.get("/v1/nope", headers=hdrs), 404, "not_found"),
        (client.get("/v1/batches", headers=hdrs), 405, "method_not_allowed"),
        (client.post("/v1/time", data=b"", headers={**CBOR, **hdrs}), 405, "method_not_allowed"),
    ):
        assert (resp.status_code, resp.mimetype) == (status, "application/cbor")
        err = body(resp)
        assert set(err) == {"error", "detail"} and err["error"] == code
        assert protocol.TIME_HEADER in resp.headers  # still an answer to a named device
    allow = client.get("/v1/batches").headers["Allow"].split(", ")
    assert "POST" in allow and "GET" not in allow
    assert client.get("/nope").mimetype == "text/html"  # the staff side keeps HTML pages
