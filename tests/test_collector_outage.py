"""The database goes away under a running collector (PostgreSQL stopped): answers are
retryable 500s in the protocol's CBOR form, the health check says 503, nothing is half
stored, and once the server is back the same batch is stored exactly once."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from collector_support import T0, FakeDevice, fake_time_token
from passgate_collector.store import open_store
from passgate_collector.web import create_app

CBOR = {"Content-Type": "application/cbor"}


@pytest.fixture
def cluster():
    from passgate_collector.pgcluster import PgCluster, PgUnavailable

    pytest.importorskip("psycopg", reason="psycopg not installed (collector extra)")
    try:
        c = PgCluster()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    with c:
        yield c


def test_database_outage_gives_retryable_errors_then_recovers(cluster):
    store = open_store(cluster.create_database("outage"))
    try:
        client = create_app(store, time_token=fake_time_token, now=lambda: T0).test_client()
        dev = FakeDevice("gate-1")
        store.add_token(hashlib.sha256(b"x" * 20).digest(), "gate-1", T0, T0 + 60)
        assert client.post("/v1/enrol", data=dev.enrol_body("x" * 20), headers=CBOR).status_code \
            == 201
        rows = dev.scans(20)
        assert client.post("/v1/batches", data=dev.batch_body(rows[:10]),
                           headers=CBOR).status_code == 200

        cluster.pause()
        r = client.post("/v1/batches", data=dev.batch_body(rows[10:]), headers=CBOR)
        assert r.status_code == 500 and cbor2.loads(r.data)["error"] == "internal"
        assert "Passgate-Time" in r.headers  # time still comes
        assert client.get("/v1/health").status_code == 503

        cluster.resume()
        assert client.get("/v1/health").status_code == 200  # broken connections were dropped
        r = client.post("/v1/batches", data=dev.batch_body(rows[10:]), headers=CBOR)
        assert r.status_code == 200
        assert {x["status"] for x in cbor2.loads(r.data)["results"]} == {"stored"}
        assert store.scan_counts() == {"gate-1": 20}
    finally:
        store.close()
