"""Issue 11, point 2: no input blocks a queue. Every endpoint gets a generated table of
hostile values on both backends; 5xx answers are counted and must be 0; values the protocol
allows come back from either backend exactly as sent; oversize bodies get 413 on a real
socket against waitress (the reset happened in the server, not in Flask)."""

from __future__ import annotations

import socket
import threading

import cbor2
import pytest

from collector_support import NOW, FakeDevice, fake_time_token, pg_cluster, store  # noqa: F401
from passgate_collector import protocol
from passgate_collector.web import Settings, create_app

CBOR = {"Content-Type": "application/cbor"}
BIG = [1 << 63, (1 << 64) + 5, -1, -(1 << 63) - 1, 10 ** 30]
TEXTS = ["a\x00b", "\x00", "tab\there", "\x7f", "z" * 65, "line\nbreak"]
ROW_CASES = (
    [("t_ms", v) for v in BIG + [True, None, "1"]]
    + [(f, v) for f in ("zone", "reason", "kid", "purpose", "clock_state") for v in TEXTS]
    + [("flags", v) for v in (["a b"], [""], ["\x00"], ["x"] * 17, [1], "stale", ["b", "a"])]
    + [("nonce", v) for v in (b"", b"x" * 17, "text")]
    + [("pass_hash", b"x" * 15), ("chain", b"x" * 31)]
)


def _app(store):  # noqa: F811
    return create_app(store, time_token=fake_time_token, now=lambda: NOW,
                      settings=Settings(max_body=64 * 1024, rate_burst=10_000))


def _enrolled(client, store, name="gate-1"):  # noqa: F811
    import hashlib

    dev = FakeDevice(name)
    store.add_token(hashlib.sha256(b"t" * 20).digest(), name, NOW, NOW + 60)
    assert client.post("/v1/enrol", data=dev.enrol_body("t" * 20), headers=CBOR).status_code == 201
    return dev


def test_no_input_makes_a_5xx_and_bad_rows_are_refused_per_row(store):  # noqa: F811
    client = _app(store).test_client()
    dev = _enrolled(client, store)
    answers = []
    for field, value in ROW_CASES:
        row = dict(dev.scans(1)[0], **{field: value})
        r = client.post("/v1/batches", data=dev.batch_body([row]), headers=CBOR)
        answers.append(r.status_code)
        if isinstance(value, int) and not -(1 << 64) <= value < (1 << 64):
            # Not a CBOR integer but a tagged bignum: a device never makes one (its journal
            # is SQLite), and the strict decoder refuses the whole request.
            assert r.status_code == 400, (field, value)
            continue
        assert r.status_code == 200, (field, value)
        # Refused for good, per row: the agent dead-letters it, the queue moves on.
        assert cbor2.loads(r.data)["results"][0]["status"] == "rejected", (field, value)
    for payload_change in ([("sent_at", v) for v in BIG + [1.5]]
                           + [("challenge", "x"), ("rows", [{"seq": 1 << 63}]),
                              ("rows", [{"seq": 10 ** 30}]), ("status", 5)]):
        key, value = payload_change
        payload = {"v": 1, "t": "batch", "device": dev.device_id, "sent_at": NOW,
                   "prev_chain": bytes(32), "rows": [], "status": {}, key: value}
        r = client.post("/v1/batches", data=protocol.sign_request(payload, dev.key),
                        headers=CBOR)
        answers.append(r.status_code)
        assert r.status_code == 400, payload_change
    # Hostile status values are ignored, not stored and not a 500.
    status = {"backlog": 1 << 63, "firmware": "x\x00", "dead_letters": -5, "last_scan_ms": 10 ** 30}
    r = client.post("/v1/batches", data=dev.batch_body([], status=status), headers=CBOR)
    answers.append(r.status_code)
    d = store.device("gate-1")
    assert (d.backlog, d.firmware, d.dead_letters, d.last_scan_ms) == (None, None, None, None)
    for have in ("%C2%B2", "-1", str(1 << 63), "9" * 40, "", "%D9%A3", "1.0", "0x1"):
        answers.append(client.get(f"/v1/bundle?have={have}").status_code)
        answers.append(client.get("/v1/bundle", headers={"If-None-Match": have}).status_code)
    for hdrs in ({protocol.DEVICE_HEADER: "Gate\u00e9"}, {protocol.NONCE_HEADER: "%%%"},
                 {protocol.DEVICE_HEADER: "gate-1", protocol.NONCE_HEADER: "A" * 5000}):
        answers.append(client.get("/v1/time", headers=hdrs).status_code)
    for body in (b"", b"\xff" * 100, cbor2.dumps({"a": 1}), cbor2.dumps(1 << 70)):
        for path in ("/v1/enrol", "/v1/batches"):
            answers.append(client.post(path, data=body, headers=CBOR).status_code)
    for token in ("t\x00" * 10, "x" * 129, 5):
        payload = {"v": 1, "t": "enrol", "device": "gate-2", "token": token,
                   "pubkey": dev.pubkey, "sent_at": NOW}
        answers.append(client.post("/v1/enrol", data=protocol.sign_request(payload, dev.key),
                                   headers=CBOR).status_code)
    for window in ("99999999999999999999999", "-5", "x"):
        answers.append(client.get(f"/?window={window}").status_code)
    assert [a for a in answers if a >= 500] == []
    assert len(answers) > 90


def test_allowed_extremes_are_stored_identically_by_both_backends(store):  # noqa: F811
    client = _app(store).test_client()
    dev = _enrolled(client, store)
    rows = [dev.scan(0, zone="\u00e9\u6f22\U0001f600" + "z" * 61),
            dev.scan(((1 << 63) - 1) / 1000, flags=("a-b", "stale"))]
    rows[1]["t_ms"] = (1 << 63) - 1  # exact, not through a float
    from passgate.journal.schema import chain_of

    rows[1]["chain"] = chain_of(rows[0]["chain"], rows[1])
    r = client.post("/v1/batches", data=dev.batch_body(rows), headers=CBOR)
    assert [x["status"] for x in cbor2.loads(r.data)["results"]] == ["stored", "stored"]
    got = {s["seq"]: s for s in store.recent_scans(10)["gate-1"]}
    for row in rows:
        assert {k: got[row["seq"]][k] for k in row} == row


def _serve(app):
    from passgate_collector.server import make_server

    server = make_server(app, host="127.0.0.1", port=0, threads=2, max_body=64 * 1024)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server


def _post_raw(port: int, size: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\n"
                  b"Content-Length: %d\r\n\r\n" % size)
        chunk, sent = b"\0" * 65536, 0
        while sent < size:
            n = min(len(chunk), size - sent)
            s.sendall(chunk[:n])
            sent += n
        return s.recv(64)


@pytest.mark.parametrize("size", [5 << 20, 64 << 20, 64 * 1024 + 10])
def test_oversize_bodies_get_413_on_a_real_socket(tmp_path, size):
    from passgate_collector.store import open_store

    st = open_store(f"sqlite:///{tmp_path}/c.db")
    server = _serve(_app(st))
    try:
        assert _post_raw(server.effective_port, size).startswith(b"HTTP/1.1 413 ")
    finally:
        server.close()
        st.close()


def test_a_refused_body_sent_after_a_pause_still_gets_413(tmp_path):
    """The client sends the headers, pauses (a device slowed by load, a slow link), then its
    body: waitress has answered 413 and closed with nothing unread at that moment. The
    connection must linger all the same (the peer has not closed its side), or the body
    meets a closed socket and the client sees a reset instead of the answer."""
    import time

    from passgate_collector.store import open_store

    st = open_store(f"sqlite:///{tmp_path}/c.db")
    server = _serve(_app(st))
    try:
        size = 5 << 20
        with socket.create_connection(("127.0.0.1", server.effective_port), timeout=60) as s:
            s.sendall(b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor"
                      b"\r\nContent-Length: %d\r\n\r\n" % size)
            time.sleep(0.5)  # the 413 is written and the channel closed meanwhile
            chunk, sent = b"\0" * 65536, 0
            while sent < size:
                s.sendall(chunk[:min(len(chunk), size - sent)])
                sent += min(len(chunk), size - sent)
            assert s.recv(64).startswith(b"HTTP/1.1 413 ")
    finally:
        server.close()
        st.close()
