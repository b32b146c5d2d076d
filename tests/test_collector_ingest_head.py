"""The device's head (highest stored seq and its chain) kept in its ``devices`` row.

Schema 11: a batch reads ``devices.last_seq`` / ``last_chain`` with its lock (``HELD_SQL``)
instead of MAX(seq) over the device's scans, which on PostgreSQL descends every weekly
partition's (device_id, seq) index. Pinned here, on both backends: the head follows the
highest stored row in the batch's own transaction (and rolls back with it), a gap filled
below it leaves it alone, the migration fills it from the stored rows, a device row without
one (enrolled again, its scans kept) still dedups and chains, and PostgreSQL does not read
``scans`` under the lock when the head is known. Also: old random nonces and the agents'
time-ordered ones (``journal.schema.new_nonce``) are both accepted, in one journal.
"""

from __future__ import annotations

import psycopg
import pytest

from collector_support import T0, FakeDevice, fresh_database, pg_cluster, store  # noqa: F401
from passgate.journal.schema import NONCE_TIME_BYTES, chain_of, new_nonce
from passgate_collector import protocol, retention
from passgate_collector.errors import StoredNonce
from passgate_collector.ingest import apply_batch
from passgate_collector.store import open_store
from passgate_collector.store.base import HELD_SQL
from passgate_collector.store.schema import SCHEMA_VERSION


def _enrol(store, dev: FakeDevice) -> None:  # noqa: F811
    token = dev.device_id.encode().ljust(32, b"-")
    store.add_token(token, dev.device_id, T0, T0 + 60)
    store.enrol(token, dev.device_id, dev.pubkey, b"k" * 8, T0)


def _send(store, dev: FakeDevice, rows: list[dict], sent_at: int = T0 + 60,  # noqa: F811
          prev: bytes | None = None) -> list[str]:
    body = dev.batch_body(rows, prev=prev, sent_at=sent_at)
    batch = protocol.parse_batch(protocol.decode_signed(body, "batch"))
    return [r.get("reason") or r["status"] for r in apply_batch(store, batch, T0 + 60)]


def _head(store, dev: FakeDevice) -> tuple:  # noqa: F811
    r = store._all("SELECT last_seq, last_chain FROM devices WHERE device_id = ?",
                   (dev.device_id,))[0]
    return (r[0], bytes(r[1]) if r[1] is not None else None)


def test_the_head_follows_the_highest_stored_row_and_rolls_back_with_its_batch(store):  # noqa: F811
    dev = FakeDevice("gate-head")
    _enrol(store, dev)
    assert _head(store, dev) == (None, None)
    rows = dev.scans(10)
    assert _send(store, dev, rows[:3]) == ["stored"] * 3
    assert _head(store, dev) == (3, rows[2]["chain"])
    # Rows 4-5 lost on the way, 6-10 arrive: the head moves to 10 (a gap, flagged).
    assert _send(store, dev, rows[5:]) == ["stored"] * 5
    assert _head(store, dev) == (10, rows[9]["chain"])
    # The gap filled later: below the head, which stays.
    assert _send(store, dev, rows[3:5]) == ["stored"] * 2
    assert _head(store, dev) == (10, rows[9]["chain"])
    # A batch that is not fresh (sent_at far outside the window): health does not move, the
    # head does (it is what is stored, not what the device says of itself).
    more = dev.scans(2)
    assert _send(store, dev, more, sent_at=T0 - 86_400) == ["stored"] * 2
    assert _head(store, dev) == (12, more[1]["chain"])
    # A batch whose insert fails rolls back whole, the head with it.
    extra = dev.scans(1)
    with pytest.raises(StoredNonce), store.batch(dev.device_id, 13) as tx:
        tx.insert_scans([(extra[0], None), (rows[0], None)], T0)
    assert _head(store, dev) == (12, more[1]["chain"])
    # Resent, everything is a duplicate and nothing moves.
    assert _send(store, dev, rows + more) == ["duplicate"] * 12
    assert _head(store, dev) == (12, more[1]["chain"])
    assert store._all("SELECT COUNT(*) FROM alerts WHERE kind <> 'chain_break'") == [(0,)]


def test_a_batch_of_new_rows_builds_on_the_held_chain_without_a_false_alert(store):  # noqa: F811
    dev = FakeDevice("gate-chain")
    _enrol(store, dev)
    for _ in range(4):
        assert _send(store, dev, dev.scans(5)) == ["stored"] * 5
    assert store._all("SELECT COUNT(*) FROM alerts") == [(0,)]
    # A batch claiming another chain before it: the held head disagrees (chain_break), and
    # its first row, checked on the claimed chain, does not match it (chain_mismatch).
    bad = dev.scans(2)
    assert _send(store, dev, bad, prev=b"\x07" * 32) == ["stored"] * 2
    assert sorted(a["kind"] for a in store.alerts(10)) == ["chain_break", "chain_mismatch"]


def _downgrade_to_10(store) -> None:  # noqa: F811
    with store._tx() as cur:
        for col in ("last_seq", "last_chain"):
            cur.execute(f"ALTER TABLE devices DROP COLUMN {col}")
        cur.execute("UPDATE meta SET value = '10' WHERE key = 'schema'")


def test_the_migration_fills_every_head_from_the_stored_rows(store):  # noqa: F811
    a, b, idle = FakeDevice("gate-a"), FakeDevice("gate-b"), FakeDevice("gate-idle")
    for dev in (a, b, idle):
        _enrol(store, dev)
    a_rows, b_rows = a.scans(7), b.scans(3)
    _send(store, a, a_rows)
    _send(store, b, b_rows)
    _downgrade_to_10(store)
    url = store.url if store.kind == "postgresql" else f"sqlite:///{store.path}"
    upgraded = open_store(url)
    try:
        assert upgraded._all("SELECT value FROM meta WHERE key = 'schema'") == [
            (str(SCHEMA_VERSION),)]  # through 11 and on
        assert _head(upgraded, a) == (7, a_rows[-1]["chain"])
        assert _head(upgraded, b) == (3, b_rows[-1]["chain"])
        assert _head(upgraded, idle) == (None, None)
        assert _send(upgraded, a, a.scans(2)) == ["stored"] * 2  # builds on the filled chain
        assert _send(upgraded, a, a_rows) == ["duplicate"] * 7
        assert upgraded._all("SELECT COUNT(*) FROM alerts") == [(0,)]
    finally:
        upgraded.close()


def test_a_device_enrolled_again_over_its_stored_rows_still_dedups_and_chains(store):  # noqa: F811
    """Its new row has no head; the batch falls back to MAX(seq) over its scans."""
    dev = FakeDevice("gate-again")
    _enrol(store, dev)
    rows = dev.scans(6)
    _send(store, dev, rows)
    assert store.remove_device(dev.device_id)
    token = b"again".ljust(32, b"-")
    store.add_token(token, dev.device_id, T0, T0 + 60)
    store.enrol(token, dev.device_id, dev.pubkey, b"k" * 8, T0)
    assert _head(store, dev) == (None, None)
    assert _send(store, dev, rows[3:]) == ["duplicate"] * 3  # looked up: seq 4 <= 6 stored
    more = dev.scans(2)
    assert _send(store, dev, more) == ["stored"] * 2
    assert _head(store, dev) == (8, more[1]["chain"])
    assert store._all("SELECT COUNT(*) FROM alerts") == [(0,)]


def test_postgresql_reads_no_scans_under_the_lock_when_the_head_is_known(pg_cluster):  # noqa: F811
    url = fresh_database(pg_cluster)
    s = open_store(url)
    try:
        dev, fresh = FakeDevice("gate-known"), FakeDevice("gate-unknown")
        _enrol(s, dev)
        _enrol(s, fresh)
        _send(s, dev, dev.scans(4))
    finally:
        s.close()

    def plan(device: str, before: int) -> str:
        with psycopg.connect(url, autocommit=True) as conn:
            sql = HELD_SQL.replace("?", "%s")
            return "\n".join(r[0] for r in conn.execute(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql,
                (device, before, device)).fetchall())

    known = plan(dev.device_id, 4)
    assert "scans" in known  # the fallback is in the plan...
    scan_lines = [ln for ln in known.splitlines() if " on scans" in ln or "on scans_" in ln]
    assert scan_lines and all("never executed" in ln for ln in scan_lines), known  # ...unrun
    unknown = plan(fresh.device_id, 0)  # no head: MAX(seq) over the scans is read
    assert any("on scans" in ln and "never executed" not in ln
               for ln in unknown.splitlines()), unknown


def test_random_and_time_ordered_nonces_are_both_accepted_in_one_journal(store):  # noqa: F811
    """A device updated mid-journal: its old rows' random nonces, its new rows' time-ordered
    ones; stored, deduplicated on resend, chained without a flag."""
    dev = FakeDevice("gate-update")
    _enrol(store, dev)
    old = dev.scans(3)
    new = dev.scans(3, t0=T0 + 100)
    prev = old[-1]["chain"]
    for r in new:  # re-chain with the firmware's nonce maker
        r["nonce"] = new_nonce(r["t_ms"])
        r["chain"] = prev = chain_of(prev, r)
    assert all(r["nonce"][:NONCE_TIME_BYTES] == r["t_ms"].to_bytes(8, "big")[2:] for r in new)
    assert _send(store, dev, old + new) == ["stored"] * 6
    assert _send(store, dev, old + new) == ["duplicate"] * 6
    assert store._all("SELECT COUNT(*) FROM alerts") == [(0,)]



def test_a_device_whose_rows_all_went_by_retention_resumes_without_a_false_alert(store):  # noqa: F811
    """Retention removes an idle checkpoint's rows (all of them, after 90 days offline); its
    head stays in its row, so the batch it sends on its return builds on the chain it held
    (before schema 11, MAX(seq) found nothing and a chain_break said rows 1-5 were missing)."""
    dev = FakeDevice("gate-idle-long")
    _enrol(store, dev)
    rows = dev.scans(5)
    _send(store, dev, rows)
    later = T0 + 100 * 86400
    retention.run(store, later, 90)
    assert store._all("SELECT COUNT(*) FROM scans WHERE device_id = ?", (dev.device_id,)) \
        == [(0,)]
    assert _head(store, dev) == (5, rows[-1]["chain"])
    body = dev.batch_body(dev.scans(3, t0=later), sent_at=later)
    batch = protocol.parse_batch(protocol.decode_signed(body, "batch"))
    assert [r["status"] for r in apply_batch(store, batch, later)] == ["stored"] * 3
    assert store._all("SELECT COUNT(*) FROM alerts") == [(0,)]
