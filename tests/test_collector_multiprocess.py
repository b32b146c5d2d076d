"""Several collector processes behind one PostgreSQL (issue 11 points 5 and 7; review 36):
a database out of connections is "busy", not an internal error; the same enrolment at two
processes at once answers "created" and "again"."""

from __future__ import annotations

import hashlib
import threading
import uuid

import cbor2
import psycopg

from collector_support import NOW, T0, FakeDevice, fresh_database, pg_cluster  # noqa: F401
from passgate_collector.store import open_store
from passgate_collector.web import Settings, create_app

CBOR = {"Content-Type": "application/cbor"}


def _limited_store(pg_cluster, limit: int):  # noqa: F811
    """A store whose role may hold ``limit`` connections (PostgreSQL's own refusal, 53300,
    as with max_connections reached by many collector processes' threads)."""
    url = fresh_database(pg_cluster)
    role = "r" + uuid.uuid4().hex[:12]
    dbname = url.split("///", 1)[1].split("?", 1)[0]
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}")
        c.execute(f'ALTER DATABASE "{dbname}" OWNER TO {role}')
    lim_url = url.replace("user=postgres", f"user={role}")
    return lim_url, open_store(lim_url, pool_size=1)


def test_database_out_of_connections_answers_503_with_retry_after(pg_cluster):  # noqa: F811
    """Every connection the database allows is in use (other processes' and threads'
    batches): the device is told busy (503 + Retry-After), not 500 "internal" without one.
    psycopg gives no SQLSTATE for a refused connection (53300 "too many connections")."""
    url, store = _limited_store(pg_cluster, 3)
    held = []
    try:
        app = create_app(store, time_token=None, now=lambda: NOW,
                         settings=Settings(retry_after_s=5))
        app.config["PROPAGATE_EXCEPTIONS"] = False
        client = app.test_client()
        dev = FakeDevice("gate-1")
        store.add_token(hashlib.sha256(b"x" * 20).digest(), "gate-1", T0, T0 + 7200)
        assert client.post("/v1/enrol", data=dev.enrol_body("x" * 20),
                           headers=CBOR).status_code == 201
        store._pool.close()  # this process's idle connection is busy in another thread
        held = [psycopg.connect(url) for _ in range(3)]  # the rest of the fleet holds the others
        r = client.post("/v1/batches", data=dev.batch_body(dev.scans(3)), headers=CBOR)
        assert (r.status_code, cbor2.loads(r.data)["error"]) == (503, "busy"), \
            (r.status_code, cbor2.loads(r.data))
        assert 5 <= int(r.headers["Retry-After"]) <= 10
    finally:
        for c in held:
            c.close()
        store.close()


def test_the_same_enrolment_at_two_processes_at_once(pg_cluster):  # noqa: F811
    """The agent's enrolment retried (a timeout) lands on a second process while the first
    is still in its transaction: one answers created, the other "again", neither fails."""
    url = fresh_database(pg_cluster)
    a, b = open_store(url), open_store(url)
    blocker = psycopg.connect(url)
    try:
        dev = FakeDevice("gate-1")
        th = hashlib.sha256(b"x" * 20).digest()
        a.add_token(th, "gate-1", T0, T0 + 7200)
        blocker.execute("SELECT 1 FROM tokens WHERE token_hash = %s FOR UPDATE", (th,))
        out: list = [None, None]

        def go(i, store):
            try:
                out[i] = store.enrol(th, "gate-1", dev.pubkey, b"k" * 8, T0)
            except Exception as exc:  # noqa: BLE001 - compared below
                out[i] = exc

        ts = [threading.Thread(target=go, args=(i, s)) for i, s in enumerate((a, b))]
        for t in ts:
            t.start()
        with psycopg.connect(url, autocommit=True) as watch:  # both wait on the token row
            for _ in range(500):
                if watch.execute("SELECT COUNT(*) FROM pg_locks WHERE NOT granted "
                                 "AND locktype = 'transactionid'").fetchone()[0] >= 2:
                    break
                threading.Event().wait(0.02)
        blocker.commit()
        for t in ts:
            t.join(30)
        assert sorted(map(str, out)) == ["again", "created"], out
    finally:
        blocker.close()
        a.close()
        b.close()

