"""A week offline: 60,000 scans queued while the collector is unreachable, then it appears.

The collector runs as its own process (``passgate-collector serve``, SQLite) so that this
process holds only the sync agent; its memory is sampled after every request with
tracemalloc (Python allocations since the last sample) and as RSS. The backlog drains,
memory stays flat across the whole drain (no growth with the backlog), and no row is evicted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
import tracemalloc

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytest.importorskip("flask", reason="collector extra not installed: pip install -e '.[collector]'")
pytest.importorskip("waitress", reason="collector extra not installed")

from passgate.clock.tokens import TimeKey, verify_token  # noqa: E402
from passgate.journal.journal import Journal  # noqa: E402
from passgate.journal.syncstate import OFFLINE, ONLINE, read_state  # noqa: E402
from passgate.passes.keys import raw_public, write_private  # noqa: E402
from passgate.sync.agent import DEFAULT_BATCH, SyncAgent  # noqa: E402
from passgate.sync.backoff import Backoff  # noqa: E402
from passgate.sync.client import CollectorClient  # noqa: E402
from passgate.sync.devicekey import load_device_key, new_device_key  # noqa: E402
from passgate.sync.transport import HttpTransport  # noqa: E402
from sync_support import (  # noqa: E402
    CollectorProcess,
    collector_rows,
    fill_journal,
    free_port,
    rss_kib,
)

DEVICE = "gate-1"
BACKLOG = 60_000
KIB = 1024


class Sampling:
    """Transport wrapper: after each exchange, record this process's memory (KiB)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.samples: list[tuple[float, int]] = []  # (tracemalloc peak since last, RSS)

    def send(self, request):
        resp = self.inner.send(request)
        if tracemalloc.is_tracing():
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            self.samples.append((peak / KIB, rss_kib()))
        return resp


@pytest.mark.slow
def test_week_offline_backlog_drains_with_flat_memory(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    journal_path = tmp_path / "journal.sqlite"
    fill_journal(journal_path, BACKLOG)
    time_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"offline time").digest())
    write_private(tmp_path / "time.key", time_key)
    pinned = (TimeKey(raw_public(time_key)),)
    key = load_device_key(new_device_key(tmp_path / "sync")[0])
    port = free_port()
    sampler = Sampling(HttpTransport())
    tokens = []
    client = CollectorClient(f"http://127.0.0.1:{port}", DEVICE, key, now=time.time,
                             transport=sampler, timeout=30,
                             time_sink=lambda raw: tokens.append(verify_token(raw, pinned, DEVICE)))
    journal = Journal(journal_path, os.urandom(32))
    slept = []
    agent = SyncAgent(journal, client, now=time.time, state_file=tmp_path / "sync-state.json",
                      backoff=Backoff(base=2, cap=300, rand=lambda: 1.0))

    # Offline: nothing listens on the port (a real refused connection every time).
    for _ in range(6):
        slept.append(agent.run_round().delay)
    assert slept == [2, 4, 8, 16, 32, 64]
    st = read_state(tmp_path / "sync-state.json")
    assert (st.connectivity, st.pending) == (OFFLINE, BACKLOG)

    with CollectorProcess(f"sqlite:///{tmp_path}/collector.db", port, tmp_path / "time.key") as col:
        client.enrol(col.token(DEVICE))
        stop = threading.Event()

        def sleep(delay: float) -> None:
            if journal.pending_count() == 0 or len(sampler.samples) > 3 * BACKLOG / DEFAULT_BATCH:
                stop.set()

        tracemalloc.start()
        try:
            agent.run(stop, sleep)
        finally:
            tracemalloc.stop()
        coll = collector_rows(tmp_path / "collector.db", DEVICE)

    # The backlog drained: every row stored once, every row marked, nothing evicted.
    assert len(coll) == BACKLOG and len({bytes(n) for _, n, _, _ in coll}) == BACKLOG
    db = sqlite3.connect(journal_path)
    kept, unsent = db.execute(
        "SELECT count(*), count(*) - count(uploaded_at) FROM scans").fetchone()
    db.close()
    assert (kept, unsent) == (BACKLOG, 0)
    assert journal.dead_letter_count() == 0 and journal.verify() is None
    st = read_state(tmp_path / "sync-state.json")
    assert (st.connectivity, st.pending) == (ONLINE, 0)
    assert tokens and "collector back, uploaded 60000" in caplog.text

    # Memory is flat: the last third of the drain needs no more than the first third.
    samples = sampler.samples
    assert len(samples) >= BACKLOG // DEFAULT_BATCH
    third = len(samples) // 3
    early, late = samples[2:third], samples[-third:]
    peak_early, peak_late = max(p for p, _ in early), max(p for p, _ in late)
    rss_early, rss_late = max(r for _, r in early), max(r for _, r in late)
    print(f"\nagent memory per batch (KiB): tracemalloc peak early {peak_early:.0f}, "
          f"late {peak_late:.0f}, max {max(p for p, _ in samples):.0f}; "
          f"RSS early {rss_early}, late {rss_late}")
    assert peak_late <= peak_early + 256  # no growth with the backlog (generous bound)
    assert max(p for p, _ in samples) < 8 * KIB  # a batch is ~30 KB on the wire
    assert rss_late - rss_early < 16 * KIB
