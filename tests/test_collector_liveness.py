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


# A review's findings (issue 11 points 3 and 4), each failing before its fix.

def test_a_batch_not_fresh_when_sent_becomes_fresh_when_replayed_later(store):  # noqa: F811
    """Point 3: a device whose clock runs 15 min fast sends a heartbeat (no or stale
    challenge): not fresh (sent_at outside the window). Replayed 400 s later by whoever
    captured it, the same bytes move last_seen."""
    clock = Clock()
    client = create_app(store, time_token=None, now=clock).test_client()
    dev, _c = _enrol(client, store)
    captured = dev.batch_body([], status={"backlog": 3}, sent_at=NOW + 900)
    assert client.post("/v1/batches", data=captured, headers=CBOR).status_code == 200
    assert store.device("gate-1").last_seen is None  # not fresh: right
    clock.t += 400  # the checkpoint is unplugged; the captured heartbeat is replayed
    assert client.post("/v1/batches", data=captured, headers=CBOR).status_code == 200
    d = store.device("gate-1")
    assert (d.last_seen, d.backlog) == (None, None)


def test_a_verified_replay_mints_unlimited_time_tokens_for_any_id(store):  # noqa: F811
    """Point 4: time tokens for a request no device signed are rate-limited per source.
    A captured batch of gate-1, replayed with Passgate-Device: gate-77, gets a token for
    gate-77 (any nonce) on every request: the limiter is skipped because *a* signature
    verified, though not gate-77's."""
    clock, mono = Clock(), Clock()
    app = create_app(store, time_token=fake_time_token, now=clock, monotonic=mono,
                     settings=Settings(rate_per_s=1.0, rate_burst=3))
    client = app.test_client()
    dev, _c = _enrol(client, store)
    captured = dev.batch_body([])
    minted = 0
    for i in range(20):
        r = client.post("/v1/batches", data=captured, headers={
            **CBOR, protocol.DEVICE_HEADER: "gate-77",
            protocol.NONCE_HEADER: protocol.b64url(bytes([i]) * 16)})
        tok = r.headers.get(protocol.TIME_HEADER)
        if tok and cbor2.loads(protocol.unb64url(tok))["dev"] == "gate-77":
            minted += 1
    assert minted <= 3  # GET /v1/time from the same source stops there


def test_a_replayed_batch_adds_tamper_alerts_and_rejected_rows(store):  # noqa: F811
    """Point 3: a replay changes nothing but the dedup answers. A captured batch holding a
    nonce-conflict row adds a new nonce_conflict alert (and a rejected row with its raw
    bytes) on every replay; one with invalid rows adds rejected rows every time."""
    clock = Clock()
    client = create_app(store, time_token=None, now=clock).test_client()
    dev, _c = _enrol(client, store)
    rows = dev.scans(3)
    client.post("/v1/batches", data=dev.batch_body(rows), headers=CBOR)
    changed = dict(rows[2], verdict="deny", reason="revoked")
    captured = dev.batch_body([changed], prev=rows[1]["chain"])
    client.post("/v1/batches", data=captured, headers=CBOR)
    before = (len(store.alerts(100)), len(store.rejected_rows(100)))
    for _ in range(5):
        clock.t += 60
        client.post("/v1/batches", data=captured, headers=CBOR)
    assert (len(store.alerts(100)), len(store.rejected_rows(100))) == before


def _ahead_and_right(store, ahead_s: float):  # noqa: F811
    """Two collector processes on one database, A's clock ``ahead_s`` ahead of B's, and a
    device enrolled at B: (A's clock, B's clock, A, B, the device)."""
    ahead, clock = Clock(), Clock()
    ahead.t += ahead_s
    a = create_app(store, time_token=None, now=ahead).test_client()
    b = create_app(store, time_token=None, now=clock).test_client()
    dev, _c = _enrol(b, store)
    return ahead, clock, a, b, dev


def _challenge(client) -> bytes:
    return protocol.unb64url(client.get("/v1/health").headers[protocol.CHALLENGE_HEADER])


def test_a_challenge_from_a_process_ahead_is_refused_then_accepted_on_replay(store):  # noqa: F811
    """Point 3 (minor variant): process A's clock runs 90 s ahead of B's (both on one
    database). A batch echoing A's challenge, delivered to B, is not fresh (beyond
    FUTURE_SLACK_MS); the same bytes replayed to B 60 s later are."""
    ahead, clock, a, b, dev = _ahead_and_right(store, 90)
    challenge = _challenge(a)
    captured = dev.batch_body([], challenge=challenge, sent_at=NOW - 5000)  # its clock is off
    b.post("/v1/batches", data=captured, headers=CBOR)
    assert store.device("gate-1").last_seen is None
    clock.t += 60
    b.post("/v1/batches", data=captured, headers=CBOR)
    assert store.device("gate-1").last_seen is None


def test_a_device_clock_once_far_ahead_shuts_nothing(store):  # noqa: F811
    """A batch whose device clock read year 2100 (fresh by its challenge) holds nothing
    back: once the clock is corrected, the device is seen by its sent_at and its status is
    taken; a replay of the 2100 batch is never fresh (its digest is kept till then)."""
    clock = Clock()
    client = create_app(store, time_token=None, now=clock).test_client()
    dev, _c = _enrol(client, store)
    far = dev.batch_body([], challenge=_challenge(client), sent_at=4_102_444_800,
                         status={"backlog": 9})
    client.post("/v1/batches", data=far, headers=CBOR)
    assert store.device("gate-1").last_seen == NOW
    clock.t += 3600
    client.post("/v1/batches", data=dev.batch_body([], sent_at=int(clock.t),
                                                   status={"backlog": 1}), headers=CBOR)
    d = store.device("gate-1")
    assert (d.last_seen, d.backlog) == (int(clock.t), 1)
    clock.t = 4_102_444_800 + 5  # 2100: the captured batch's sent_at is in the window
    client.post("/v1/batches", data=far, headers=CBOR)
    d = store.device("gate-1")
    assert (d.last_seen, d.backlog) == (NOW + 3600, 1)


def test_a_collector_clock_far_ahead_does_not_make_a_device_look_dead(store):  # noqa: F811
    """A collector process whose clock ran a year ahead issued a challenge the device
    echoed: it is taken (its replay is never fresh), which shuts the challenge way for a
    year; the device's sent_at still makes its batches fresh."""
    ahead, clock, a, b, dev = _ahead_and_right(store, 365 * 86400)
    wrong = _challenge(a)
    captured = dev.batch_body([], challenge=wrong, sent_at=NOW - 5000)  # its clock is off
    b.post("/v1/batches", data=captured, headers=CBOR)
    assert store.device("gate-1").last_seen is None
    clock.t += 30
    right = _challenge(b)
    b.post("/v1/batches", data=dev.batch_body([], challenge=right, sent_at=NOW + 30),
           headers=CBOR)
    assert store.device("gate-1").last_seen == NOW + 30
    clock.t = ahead.t + 10  # a year on: the captured batch's challenge is now in the window
    b.post("/v1/batches", data=captured, headers=CBOR)
    assert store.device("gate-1").last_seen == NOW + 30


def test_ipv6_sources_count_by_their_64():
    """Whoever holds an IPv6 /64 has 2^64 addresses: one bucket for them all."""
    from passgate_collector.ratelimit import RateLimiter, source_of

    limiter = RateLimiter(rate=0.0, burst=2, now=lambda: 0.0)
    waits = [limiter.take(source_of(f"2001:db8:5:7::{i:x}", {}, None)) for i in range(1, 6)]
    assert waits[:2] == [0.0, 0.0] and all(w > 0 for w in waits[2:])
    assert limiter.take(source_of("2001:db8:5:8::1", {}, None)) == 0.0  # another /64
    assert source_of("::ffff:192.0.2.7", {}, None) == "192.0.2.7"  # mapped IPv4: itself
    assert source_of("10.0.0.1", {"X-Forwarded-For": "a, 2001:db8::9"},
                     "X-Forwarded-For") == "2001:db8::/64"



def test_a_disabled_devices_signed_batches_get_time_tokens_only_within_the_limit(store):  # noqa: F811
    clock, mono = Clock(), Clock()
    app = create_app(store, time_token=fake_time_token, now=clock, monotonic=mono,
                     settings=Settings(rate_per_s=1.0, rate_burst=3))
    client = app.test_client()
    dev, _c = _enrol(client, store)
    store.set_disabled("gate-1", True)
    minted = 0
    for i in range(10):
        r = client.post("/v1/batches", data=dev.batch_body([]), headers={
            **CBOR, protocol.NONCE_HEADER: protocol.b64url(bytes([i]) * 16)})
        assert r.status_code == 403
        minted += protocol.TIME_HEADER in r.headers
    assert minted <= 3


# A second review's findings: what a real agent (the firmware's CollectorClient) must keep.

class FlaskTransport:
    """The agent's client talking to one or more apps in turn (a load balancer)."""

    def __init__(self, *clients) -> None:
        self.clients, self.i = clients, 0

    def send(self, req):
        from passgate.sync.transport import Response

        c = self.clients[self.i % len(self.clients)]
        self.i += 1
        r = c.open(req.url.split("http://c", 1)[1], method=req.method, data=req.body,
                   headers=req.headers)
        return Response(r.status_code, r.data, {k.lower(): v for k, v in r.headers.items()})


def _agent(store, transport, clock, name="gate-1"):  # noqa: F811
    from passgate.sync.client import CollectorClient
    from passgate.sync.devicekey import DeviceKey

    dev = FakeDevice(name)
    store.add_token(hashlib.sha256(name.encode() * 4).digest(), name, NOW, NOW + 600)
    cc = CollectorClient("http://c", name, DeviceKey(dev.key, dev.pubkey), now=clock,
                         transport=transport)
    cc.enrol(name * 4)
    return cc


ZERO = b"\0" * 32


def _agent_across_skew(store, ahead_s: float):  # noqa: F811
    """The firmware's client enrolled at process B, then sending to A (its clock
    ``ahead_s`` ahead), B, B, B in turn: (A's clock, B's clock, the client)."""
    ahead, clock = Clock(), Clock()
    ahead.t += ahead_s
    a = create_app(store, time_token=None, now=ahead).test_client()
    b = create_app(store, time_token=None, now=clock).test_client()
    cc = _agent(store, FlaskTransport(b), clock)
    cc._transport = FlaskTransport(a, b, b, b)
    return ahead, clock, cc


def test_after_an_outage_longer_than_the_window_the_first_heartbeat_is_seen(store):  # noqa: F811
    """Its challenge is genuine but stale; its sent_at is right: fresh by sent_at."""
    clock = Clock()
    cc = _agent(store, FlaskTransport(create_app(store, time_token=None,
                                                 now=clock).test_client()), clock)
    cc.upload(ZERO, [], {"backlog": 0})
    assert store.device("gate-1").last_seen == NOW
    clock.t += 660
    cc.upload(ZERO, [], {"backlog": 5})
    d = store.device("gate-1")
    assert (d.last_seen, d.backlog) == (NOW + 660, 5)


def test_an_agent_interval_longer_than_the_window_is_seen_every_round(store):  # noqa: F811
    clock = Clock()
    cc = _agent(store, FlaskTransport(create_app(store, time_token=None,
                                                 now=clock).test_client()), clock)
    for _ in range(5):
        clock.t += 700
        cc.upload(ZERO, [], {"backlog": 0})
        cc.fetch_bundle(None)  # the agent's round: heartbeat, then the bundle check
        assert store.device("gate-1").last_seen == int(clock.t)


def test_a_replay_stays_dead_after_a_far_ahead_challenge_was_taken(store):  # noqa: F811
    ahead, clock, a, b, dev = _ahead_and_right(store, 365 * 86400)
    wrong = _challenge(a)
    b.post("/v1/batches", data=dev.batch_body([], challenge=wrong), headers=CBOR)
    right = _challenge(b)
    captured = dev.batch_body([], challenge=right, status={"backlog": 1})
    b.post("/v1/batches", data=captured, headers=CBOR)
    assert store.device("gate-1").last_seen == NOW
    for _ in range(5):  # the checkpoint is unplugged; the captured batch is replayed
        clock.t += 100
        b.post("/v1/batches", data=captured, headers=CBOR)
    assert store.device("gate-1").last_seen == NOW


def test_a_few_seconds_of_skew_between_processes_loses_no_heartbeat(store):  # noqa: F811
    """Two processes behind one database, A's clock 5 s ahead: the final heartbeat of a
    drain echoes B's challenge, older than A's taken one; its sent_at makes it fresh."""
    ahead, clock, cc = _agent_across_skew(store, 5)
    cc.upload(ZERO, [], {"backlog": 9})  # to A: its answer carries A's challenge (t+5)
    clock.t += 1
    ahead.t += 1
    cc.upload(ZERO, [], {"backlog": 4})  # echoes A's: fresh; B answers with t+1
    clock.t += 1
    ahead.t += 1
    cc.upload(ZERO, [], {"backlog": 0})  # echoes B's t+1, older than A's taken t+5
    d = store.device("gate-1")
    assert (d.last_seen, d.backlog) == (NOW + 2, 0)


# A third review's findings: no wrong clock, and no re-enrolment, makes a replay fresh or
# hides a live device.

def test_a_same_second_drain_across_skewed_processes_keeps_its_last_status(store):  # noqa: F811
    """A 5 s ahead, B right; a drain's batches go out within one second (sent_at is whole
    seconds): the final heartbeat echoes B's challenge (< A's taken) with sent_at == held."""
    ahead, clock, cc = _agent_across_skew(store, 5)
    cc.upload(ZERO, [], {"backlog": 9})  # to A
    cc.upload(ZERO, [], {"backlog": 4})   # to B, echoes A's: fresh
    cc.fetch_bundle(None)                 # to B
    clock.t += 0.5
    cc.upload(ZERO, [], {"backlog": 0})   # to B: the round's final heartbeat
    assert store.device("gate-1").backlog == 0


def test_a_device_clock_jump_corrected_by_ntp_hides_nothing(store):  # noqa: F811
    """--interval 700 (>= --fresh-window: every echoed challenge is stale) and a device
    clock that once read +1 h (the RTC at boot, then NTP): seen every round after."""
    real = Clock()
    dev_clock = Clock()
    cc = _agent(store, FlaskTransport(create_app(store, time_token=None,
                                                 now=real).test_client()), dev_clock)
    cc.upload(ZERO, [], {"backlog": 0})
    cc.fetch_bundle(None)
    real.t += 700
    dev_clock.t = real.t + 3600           # the jump
    cc.upload(ZERO, [], {"backlog": 0})
    cc.fetch_bundle(None)
    unseen = []
    for _ in range(4):                    # NTP corrected: the device clock is right again
        real.t += 700
        dev_clock.t = real.t
        cc.upload(ZERO, [], {"backlog": 0})
        cc.fetch_bundle(None)
        unseen.append(store.device("gate-1").last_seen != int(real.t))
    assert not any(unseen), unseen


def test_a_process_a_year_ahead_that_also_set_the_device_clock_hides_nothing(store):  # noqa: F811
    """A (a year ahead) answers once; the agent echoes A's challenge and (its signed time
    token trusted by passgate.clock) its clock reads A's time for that batch. Once both
    clocks are right again, the device is seen at once."""
    ahead, real = Clock(), Clock()
    ahead.t += 365 * 86400
    a = create_app(store, time_token=None, now=ahead).test_client()
    b = create_app(store, time_token=None, now=real).test_client()
    dev_clock = Clock()
    cc = _agent(store, FlaskTransport(b), dev_clock)
    cc._transport = FlaskTransport(a, b)
    cc.fetch_bundle(None)                 # to A: its challenge (and token) a year ahead
    dev_clock.t = ahead.t                 # the device clock follows the trusted token
    cc._transport = FlaskTransport(b)
    cc.upload(ZERO, [], {"backlog": 1})   # echoes A's: both markers a year ahead
    dev_clock.t = real.t                  # corrected (NTP / a token from B)
    for _ in range(3):
        real.t += 60
        dev_clock.t = real.t
        cc.upload(ZERO, [], {"backlog": 0})
        cc.fetch_bundle(None)
    assert store.device("gate-1").last_seen == int(real.t)


def test_a_capture_replayed_after_the_device_was_enrolled_again_is_not_fresh(store):  # noqa: F811
    clock = Clock()
    client = create_app(store, time_token=None, now=clock).test_client()
    dev, c = _enrol(client, store)
    captured = dev.batch_body([], challenge=c, status={"backlog": 7})
    client.post("/v1/batches", data=captured, headers=CBOR)
    clock.t += 120
    store.remove_device("gate-1")         # staff re-provision the same checkpoint
    store.add_token(hashlib.sha256(b"again-again-again").digest(), "gate-1", int(clock.t),
                    int(clock.t) + 600)
    r = client.post("/v1/enrol", data=dev.enrol_body("again-again-again"), headers=CBOR)
    assert r.status_code == 201
    clock.t += 60                         # checkpoint unplugged; the old capture is replayed
    client.post("/v1/batches", data=captured, headers=CBOR)
    assert store.device("gate-1").last_seen is None
