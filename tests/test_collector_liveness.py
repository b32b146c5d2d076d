"""Issue 11, points 3, 4, 5 and 7: liveness that cannot be replayed, no enumeration, rate
limits, 503 when saturated, the staff page on a read-only database."""

from __future__ import annotations

import hashlib
import threading

import cbor2

from collector_support import (  # noqa: F401
    NOW,
    FakeDevice,
    cheap_argon2,
    csrf_of,
    fake_time_token,
    pg_cluster,
    staff_login,
    store,
)
from passgate_collector import protocol
from passgate_collector.web import Settings, create_app

CBOR = {"Content-Type": "application/cbor"}


class Clock:
    def __init__(self) -> None:
        self.t = float(NOW)

    def __call__(self) -> float:
        return self.t


def _enrol(client, store, name="gate-1"):  # noqa: F811
    dev = FakeDevice(name)
    store.add_token(hashlib.sha256(name.encode() * 4).digest(), name, NOW, NOW + 600)
    r = client.post("/v1/enrol", data=dev.enrol_body(name * 4), headers=CBOR)
    assert r.status_code == 201
    return dev, protocol.unb64url(r.headers[protocol.CHALLENGE_HEADER])


def test_a_replayed_batch_or_heartbeat_does_not_move_last_seen(store):  # noqa: F811
    clock = Clock()
    client = create_app(store, time_token=None, now=clock).test_client()
    dev, challenge = _enrol(client, store)
    captured = dev.batch_body(dev.scans(2), status={"backlog": 2}, challenge=challenge)
    assert client.post("/v1/batches", data=captured, headers=CBOR).status_code == 200
    # An old agent: no challenge; its sent_at is in the window and newer than the last.
    beat = dev.batch_body([], status={"backlog": 0}, sent_at=NOW + 1)
    clock.t += 1
    assert client.post("/v1/batches", data=beat, headers=CBOR).status_code == 200
    assert (store.device("gate-1").last_seen, store.device("gate-1").backlog) == (NOW + 1, 0)
    clock.t += 120  # the checkpoint is unplugged; someone replays what they captured
    for replay in (captured, beat):
        r = client.post("/v1/batches", data=replay, headers=CBOR)
        assert r.status_code == 200
    assert [x["status"] for x in cbor2.loads(r.data)["results"]] == []
    r = client.post("/v1/batches", data=captured, headers=CBOR)
    assert [x["status"] for x in cbor2.loads(r.data)["results"]] == ["duplicate"] * 2
    d = store.device("gate-1")
    assert (d.last_seen, d.backlog) == (NOW + 1, 0)
    # A forged challenge or one older than the window is no proof either.
    forged = bytearray(protocol.unb64url(r.headers[protocol.CHALLENGE_HEADER]))
    forged[-1] ^= 1
    old = protocol.unb64url(r.headers[protocol.CHALLENGE_HEADER])
    clock.t += 601
    for c in (bytes(forged), old):
        client.post("/v1/batches", data=dev.batch_body([], challenge=c, sent_at=NOW),
                    headers=CBOR)
    assert store.device("gate-1").last_seen == NOW + 1
    # The device itself, echoing the newest challenge, is seen at once.
    fresh = protocol.unb64url(client.get("/v1/health").headers[protocol.CHALLENGE_HEADER])
    client.post("/v1/batches", data=dev.batch_body([], challenge=fresh, sent_at=NOW),
                headers=CBOR)
    assert store.device("gate-1").last_seen == int(clock.t)


def test_challenges_are_shared_by_collector_processes_on_one_database(store):  # noqa: F811
    """Two apps on one database (two processes): a challenge from one is good at the other."""
    a = create_app(store, time_token=None, now=Clock()).test_client()
    b = create_app(store, time_token=None, now=Clock()).test_client()
    dev, challenge = _enrol(a, store)
    b.post("/v1/batches", data=dev.batch_body([], challenge=challenge, sent_at=0), headers=CBOR)
    assert store.device("gate-1").last_seen == NOW


def test_unknown_and_enrolled_ids_get_the_same_answer(store):  # noqa: F811
    client = create_app(store, time_token=fake_time_token, now=Clock()).test_client()
    dev, _ = _enrol(client, store)
    stranger = FakeDevice("gate-9")
    forged = FakeDevice("gate-1", seed=5)  # an outsider guessing an enrolled id
    answers = []
    for d in (stranger, forged):
        r = client.post("/v1/batches", data=d.batch_body(d.scans(1)), headers=CBOR)
        answers.append((r.status_code, cbor2.loads(r.data)))
        t = client.get("/v1/time", headers={protocol.DEVICE_HEADER: d.device_id})
        answers.append((t.status_code, protocol.TIME_HEADER in t.headers))
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert answers[0][0] == 401


def test_time_tokens_and_enrolment_are_rate_limited_per_source(store):  # noqa: F811
    mono = Clock()
    client = create_app(store, time_token=fake_time_token, now=Clock(), monotonic=mono,
                        settings=Settings(rate_per_s=1.0, rate_burst=3,
                                          trusted_proxy_header="X-Forwarded-For")).test_client()
    hdrs = {protocol.DEVICE_HEADER: "gate-1", "X-Forwarded-For": "spoofed, 203.0.113.7"}
    got = [client.get("/v1/time", headers=hdrs) for _ in range(4)]
    assert [r.status_code for r in got] == [204, 204, 204, 429]
    assert int(got[-1].headers["Retry-After"]) >= 1
    assert protocol.TIME_HEADER not in got[-1].headers
    # Other unsigned requests from that source get no token while it is empty.
    assert protocol.TIME_HEADER not in client.get("/v1/health", headers=hdrs).headers
    assert client.post("/v1/enrol", data=b"x", headers={**CBOR, **hdrs}).status_code == 429
    # Another source (the proxy's rightmost entry) has its own bucket; time refills it.
    other = dict(hdrs, **{"X-Forwarded-For": "203.0.113.7, 198.51.100.2"})
    assert client.get("/v1/time", headers=other).status_code == 204
    mono.t += 2
    assert client.get("/v1/time", headers=hdrs).status_code == 204


def test_saturated_collector_answers_503_with_retry_after(store):  # noqa: F811
    entered, release = threading.Event(), threading.Event()
    real_batch = store.batch

    def slow_batch(device_id, first_seq=None):  # a real ingest that waits, as one stuck
        entered.set()                              # on the database
        release.wait(30)
        return real_batch(device_id, first_seq)

    store.batch = slow_batch
    app = create_app(store, time_token=None, now=Clock(),
                     settings=Settings(max_inflight=1, retry_after_s=5))
    dev, _ = _enrol(app.test_client(), store)
    first: list = []
    t = threading.Thread(target=lambda: first.append(app.test_client().post(
        "/v1/batches", data=dev.batch_body(dev.scans(1)), headers=CBOR)))
    t.start()
    assert entered.wait(10)
    r = app.test_client().post("/v1/batches", data=dev.batch_body(dev.scans(1)), headers=CBOR)
    assert (r.status_code, cbor2.loads(r.data)["error"]) == (503, "busy")
    assert 5 <= int(r.headers["Retry-After"]) <= 10
    release.set()
    t.join(30)
    assert first[0].status_code == 200
    assert store.scan_counts() == {"gate-1": 1}


def test_a_database_out_of_locks_answers_503_not_500(store):  # noqa: F811
    """PostgreSQL's "out of shared memory" (53200: the lock table full of many large batches'
    advisory locks), a serialization failure or a deadlock roll the batch back whole: the
    device is told busy (503 with Retry-After) and its rows wait on it; any other database
    error stays a 500."""
    real_batch = store.batch
    raised: list[str] = []

    class Refused(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__("refused")
            self.sqlstate = sqlstate

    def failing_batch(device_id, first_seq=None):
        if raised:
            raise Refused(raised.pop())
        return real_batch(device_id, first_seq)

    store.batch = failing_batch
    app = create_app(store, time_token=None, now=Clock(),
                     settings=Settings(retry_after_s=5))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    dev, _ = _enrol(app.test_client(), store)
    for state in ("53200", "40P01", "40001"):
        raised.append(state)
        r = app.test_client().post("/v1/batches", data=dev.batch_body(dev.scans(1)),
                                   headers=CBOR)
        assert (r.status_code, cbor2.loads(r.data)["error"]) == (503, "busy"), state
        assert 5 <= int(r.headers["Retry-After"]) <= 10
    raised.append("23505")  # a bug, not the load: stays a 500
    r = app.test_client().post("/v1/batches", data=dev.batch_body(dev.scans(1)), headers=CBOR)
    assert r.status_code == 500
    r = app.test_client().post("/v1/batches", data=dev.batch_body(dev.scans(1)), headers=CBOR)
    assert r.status_code == 200 and store.scan_counts() == {"gate-1": 1}


def test_staff_page_reads_from_a_read_only_database(pg_cluster, staff_login):  # noqa: F811
    from collector_support import fresh_database
    from passgate_collector.readstore import open_read_store
    from passgate_collector.store import open_store

    url = fresh_database(pg_cluster)
    primary = open_store(url)
    sep = "&" if "?" in url else "?"
    replica = open_read_store(url + sep + "options=-c%20default_transaction_read_only%3Don")
    try:
        client = create_app(primary, time_token=None, now=Clock(),
                            read_store=replica).test_client()
        _enrol(client, primary, "gate-ro")
        staff_login(client, primary, "supervisor")  # the staff page needs a session (the
        page = client.get("/")  # accounts live in the primary; the page's reads, the replica)
        assert page.status_code == 200 and "gate-ro" in page.get_data(as_text=True)
        # The console's views read the replica too (a write there would fail: read-only).
        for path in ("/console/", "/console/scans", "/console/charts", "/console/feed.json",
                     "/console/checkpoint/gate-ro", "/console/export.csv"):
            assert client.get(path).status_code == 200, path
        # An acknowledgement is written to the primary and read back from it at once.
        html = client.get("/console/").get_data(as_text=True)
        assert 'name="key" value="offline:gate-ro:never"' in html  # enrolled, never synced
        r = client.post("/console/ack", data={"key": "offline:gate-ro:never",
                                              "csrf_token": csrf_of(html)})
        assert r.status_code == 303 and "offline:gate-ro:never" in primary.acks(0)
        assert 'name="key" value="offline:gate-ro:never"' not in client.get(
            "/console/").get_data(as_text=True)
    finally:
        replica.close()
        primary.close()
