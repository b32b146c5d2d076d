"""Upload under faults: 10,000 scans from a real journal, through a fault-injecting path, into
a real collector (``passgate_collector`` served by waitress on 127.0.0.1, SQLite store).

Faults per request (tests/sync_support.py ``FaultTransport``): connection refused, 5xx from
a proxy, 500 after the collector committed, timeouts and resets before and after the
collector committed, the response lost after commit, duplicate delivery, requests held back
and delivered later out of order, and a cut-off answer. Sleep is injected: no real waiting.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytest.importorskip("flask", reason="collector extra not installed: pip install -e '.[collector]'")
pytest.importorskip("waitress", reason="collector extra not installed")

from collector_support import fresh_database, pg_cluster  # noqa: E402,F401
from passgate.clock.tokens import TimeKey, new_nonce, verify_token  # noqa: E402
from passgate.journal.journal import Journal  # noqa: E402
from passgate.journal.syncstate import ONLINE, read_state  # noqa: E402
from passgate.passes.keys import raw_public  # noqa: E402
from passgate.sync.agent import SyncAgent  # noqa: E402
from passgate.sync.backoff import Backoff  # noqa: E402
from passgate.sync.client import CollectorClient  # noqa: E402
from passgate.sync.devicekey import load_device_key, new_device_key  # noqa: E402
from passgate.sync.transport import HttpTransport  # noqa: E402
from sync_support import (  # noqa: E402
    FAULTS,
    FaultTransport,
    LiveCollector,
    device_rows,
    fill_journal,
)

DEVICE = "gate-1"
TOKEN = "enrol-" + "t" * 40


def time_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"sync test time key").digest())


def enrol(collector: LiveCollector, key_dir) -> object:
    key_path, _, _ = new_device_key(key_dir)
    key = load_device_key(key_path)
    collector.add_token(DEVICE, TOKEN)
    CollectorClient(collector.url, DEVICE, key, now=time.time).enrol(TOKEN)
    return key


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_10000_scans_through_a_faulty_network(backend, tmp_path, caplog, request):
    caplog.set_level(logging.INFO)
    journal_path = tmp_path / "journal.sqlite"
    fill_journal(journal_path, 10_000)
    pinned = (TimeKey(raw_public(time_key())),)
    if backend == "sqlite":
        db_url = f"sqlite:///{tmp_path}/collector.db"
    else:  # the same faults against PostgreSQL (its ingest path differs: COPY, row locks)
        db_url = fresh_database(request.getfixturevalue("pg_cluster"))
    with LiveCollector(db_url, time_key()) as collector:
        key = enrol(collector, tmp_path / "sync")
        rng = random.Random(20260101)
        faulty = FaultTransport(HttpTransport(), rng, rate=0.35, release=0.2)
        tokens = []
        client = CollectorClient(
            collector.url, DEVICE, key, now=time.time, transport=faulty, timeout=10,
            time_sink=lambda raw: tokens.append(verify_token(raw, pinned, DEVICE)),
            time_nonce=new_nonce,
        )
        journal = Journal(journal_path, os.urandom(32))
        agent = SyncAgent(journal, client, now=time.time, state_file=tmp_path / "sync-state.json",
                          backoff=Backoff(base=2, cap=300, rand=rng.random), batch_size=100)
        stop, slept = threading.Event(), []

        def sleep(delay: float) -> None:  # injected: the loop's waits are recorded, not slept
            slept.append(delay)
            if journal.pending_count() == 0 or len(slept) > 5000:
                stop.set()

        agent.run(stop, sleep)
        faulty.flush()  # requests held back arrive last, after everything else: reordering

        coll = [(s, bytes(n), bytes(c), p) for s, n, c, p in collector.store._all(
            "SELECT seq, nonce, chain, problem FROM scans WHERE device_id = ? ORDER BY seq",
            (DEVICE,))]
        dev = device_rows(journal_path)
        alerts = [a for a in collector.store.alerts(1000) if a["device_id"] == DEVICE]

    # Collector rows == device rows: same seq, nonce and chain; 0 duplicates, 0 missing.
    assert len(dev) == 10_000
    assert [(s, bytes(n), bytes(c)) for s, n, c, _ in coll] == [
        (s, bytes(n), bytes(c)) for s, n, c, _ in dev]
    assert len({bytes(n) for _, n, _, _ in coll}) == 10_000
    # Duplicates and out-of-order stale deliveries raised no false tamper alert or flag.
    assert [p for *_, p in coll if p is not None] == [] and alerts == []
    # Every row marked uploaded; nothing dead-lettered; the device chain is intact.
    assert all(up is not None for *_, up in dev)
    with Journal(journal_path, os.urandom(32)) as j:
        assert j.pending_count() == 0 and j.dead_letter_count() == 0 and j.verify() is None
    # Every fault happened, repeatedly, and the loop backed off instead of spinning.
    assert set(FAULTS) <= set(faulty.counts), faulty.counts
    assert min(faulty.counts[f] for f in FAULTS) >= 3, faulty.counts
    failed_rounds = sum(1 for d in slept if d != agent.interval)
    assert failed_rounds >= 20 and max(slept) <= 300
    # Every collector answer brought a verified time token for this device, with our challenge.
    assert len(tokens) >= 100 and all(t.nonce is not None for t in tokens)
    state = read_state(tmp_path / "sync-state.json")
    assert (state.connectivity, state.pending, state.last_error) == (ONLINE, 0, None)
    # Logs: transitions only, never a line per row.
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("passgate.sync")]
    assert any(m.startswith("collector unreachable") for m in lines)
    assert any(m.startswith("collector back, uploaded") for m in lines)
    assert len(lines) <= 2 * failed_rounds + 2
