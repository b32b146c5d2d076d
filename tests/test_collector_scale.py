"""Ingest that stays flat as a device's history grows (issue 11, point 1).

Times cannot be asserted, so the shape is: the dedup lookup's query plan on a large history
probes the (device_id, nonce) key (SQLite's primary key; on PostgreSQL each weekly
partition's, store/partitions.py), never the (device_id, seq) index filtering every row the
device sent (the O(N^2) the review measured), on both backends; and correctness on a
large history: a re-sent batch is all ``duplicate``, an edited row under a stored nonce is a
``nonce_conflict``, new rows after it are stored with a clean chain.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from collector_support import T0, FakeDevice, fresh_database, pg_cluster  # noqa: F401
from passgate_collector import protocol
from passgate_collector.ingest import apply_batch
from passgate_collector.store import open_store
from passgate_collector.store.base import nonce_lookup_sql

HISTORY = 100_000
# The (device_id, seq) index: named so on SQLite, per partition on PostgreSQL.
DEVICE_SEQ = r"using (scans_device_seq|\w+_device_id_seq_idx)"
NOW = T0 + 3600


def _history_sqlite(path: str, device: str, n: int) -> None:
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO scans (device_id, nonce, seq, t_ms, clock_state, verdict, reason, zone, "
        "flags, chain, received_at) VALUES (?, ?, ?, ?, 'trusted', 'accept', 'valid', 'lobby', "
        "'', ?, ?)",
        ((device, hashlib.sha256(b"h%d" % i).digest()[:16], 1000 + i, T0 * 1000 + i,
          hashlib.sha256(b"c%d" % i).digest(), T0) for i in range(n)))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _history_postgres(url: str, device: str, n: int, analyze: bool = True) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO scans (device_id, nonce, seq, t_ms, clock_state, verdict, reason, "
            "zone, flags, chain, received_at) SELECT %s, "
            "substring(sha256(('h' || i)::bytea) from 1 for 16), 1000 + i, %s::bigint * 1000 + i, "
            "'trusted', 'accept', 'valid', 'lobby', '', sha256(('c' || i)::bytea), %s "
            "FROM generate_series(0, %s - 1) AS i", (device, T0, T0, n))
        if analyze:
            conn.execute("ANALYZE scans")


@pytest.fixture(params=["sqlite", "postgresql"])
def big(request, tmp_path):
    """(backend, url, store) with a device enrolled, 200 rows ingested, then 100,000 more
    rows of history written straight into its table."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/collector.db"
    else:
        url = fresh_database(request.getfixturevalue("pg_cluster"))
    store = open_store(url)
    dev = FakeDevice("gate-big")
    store.add_token(b"h" * 32, dev.device_id, T0, T0 + 60)
    store.enrol(b"h" * 32, dev.device_id, dev.pubkey, b"k" * 8, T0)
    first = dev.scans(200)
    assert {r["status"] for r in apply_batch(store, _batch(dev, first), NOW)} == {"stored"}
    if request.param == "sqlite":
        _history_sqlite(f"{tmp_path}/collector.db", dev.device_id, HISTORY)
    else:
        _history_postgres(url, dev.device_id, HISTORY)
    yield request.param, url, store, dev, first
    store.close()


def _batch(dev: FakeDevice, rows: list[dict]) -> protocol.Batch:
    return protocol.parse_batch(protocol.decode_signed(dev.batch_body(rows), "batch"))


def test_dedup_probes_the_device_nonce_key_not_the_device_history(big):
    backend, url, store, dev, first = big
    nonces = [r["nonce"] for r in first]
    if backend == "sqlite":
        import sqlite3

        db = sqlite3.connect(url[len("sqlite:///"):])
        plan = " ".join(r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + nonce_lookup_sql(200),
                                                  (dev.device_id, *nonces)))
        db.close()
        assert "sqlite_autoindex_scans_1 (device_id=? AND nonce=?)" in plan, plan
        assert "scans_device_seq" not in plan and "SCAN" not in plan, plan
    else:
        _assert_pkey_probes(_pg_plan(url, dev.device_id, nonces))


def _pg_plan(url: str, device_id: str, nonces: list[bytes]) -> str:
    import psycopg

    from passgate_collector.store.postgres import NONCE_LOOKUP

    with psycopg.connect(url, autocommit=True) as conn:
        # The plan psycopg's prepared statements end up with: the generic one.
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute("PREPARE q(bytea[], int8[], text) AS " + NONCE_LOOKUP.replace(
            "%b", "$1", 1).replace("%b", "$2", 1).replace("%s", "$3", 1))
        cur = psycopg.ClientCursor(conn)  # EXPLAIN takes literals, not bound parameters
        cur.execute("EXPLAIN EXECUTE q(%s, %s, %s)",
                    (nonces, [T0 * 1000 + i for i in range(len(nonces))], device_id))
        return " ".join(r[0] for r in cur.fetchall())


def _assert_pkey_probes(plan: str) -> None:
    # One primary-key probe per nonce of the batch (issue 11 changed the query from
    # ``nonce = ANY(array)``, whose plan followed the statistics, to LATERAL probes).
    assert "Nested Loop" in plan and re.search(r"Function Scan on (unnest|n) ", plan), plan
    # PostgreSQL: each partition's own unique key (store/partitions.py), named *_pkey. The
    # history is in DEFAULT (T0 is before the weeks made for today); the empty weeks may be
    # read by a Seq Scan of no page (store/partitions.py: "Plans").
    assert re.search(r"Index (Only )?Scan using \w*_pkey on ", plan), plan
    assert "nonce = n.nonce" in plan, plan
    assert not re.search(DEVICE_SEQ, plan) and not _seq_scan_of_rows(plan), plan


def _seq_scan_of_rows(plan: str) -> bool:
    """A Seq Scan of a table that holds rows (SQLite's scans, PostgreSQL's DEFAULT here)."""
    return bool(re.search(r"Seq Scan on (scans|scans_default) ", plan))


def _unanalysed(cluster) -> str:
    """A new database whose device "gate-fresh" has 20,000 rows and no statistics at all."""
    import psycopg

    url = fresh_database(cluster)
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        for (part,) in conn.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                                    "WHERE inhparent = 'scans'::regclass").fetchall():
            # keep them unanalysed (a partitioned parent has no autovacuum of its own)
            conn.execute(f"ALTER TABLE {part} SET (autovacuum_enabled = false)")
    _history_postgres(url, "gate-fresh", 20_000, analyze=False)
    return url


def test_dedup_plan_needs_no_statistics(pg_cluster):  # noqa: F811
    """Before any ANALYZE (a new database, or rows that grew since the last one) the old
    ``nonce = ANY`` lookup filtered the device's whole history; the probes do not."""
    import psycopg

    url = _unanalysed(pg_cluster)
    with psycopg.connect(url, autocommit=True) as conn:
        # T0's rows are in DEFAULT: no week of January 2026 is made for a database of today.
        analysed = conn.execute("SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                                "WHERE relname = 'scans_default'").fetchone()
    assert analysed == (None, None)
    nonces = [hashlib.sha256(b"h%d" % i).digest()[:16] for i in range(200)]
    _assert_pkey_probes(_pg_plan(url, "gate-fresh", nonces))


def test_duplicates_and_conflicts_are_found_in_a_large_history(big):
    backend, url, store, dev, first = big
    again = apply_batch(store, _batch(dev, first), NOW)
    assert [r["status"] for r in again] == ["duplicate"] * 200
    edited = dict(first[10], zone="elsewhere")
    out = apply_batch(store, _batch(dev, [edited]), NOW)
    assert out[0]["status"] == "rejected" and out[0]["reason"] == "nonce_conflict"
    fresh = dev.scans(300)
    out = apply_batch(store, _batch(dev, fresh), NOW)
    assert [r["status"] for r in out] == ["stored"] * 300
    assert all("flag" not in r for r in out)  # the chain continues from the stored row 200
    assert store._all("SELECT COUNT(*) FROM scans WHERE device_id = ?",
                      (dev.device_id,))[0][0] == 200 + HISTORY + 300


def test_one_batch_with_a_nonce_twice_stores_it_once(big):
    backend, url, store, dev, first = big
    rows = dev.scans(3)
    out = apply_batch(store, _batch(dev, rows + [dict(rows[1], seq=rows[2]["seq"] + 1)]), NOW)
    assert [r["status"] for r in out][:3] == ["stored"] * 3
    assert out[3]["status"] in ("duplicate", "rejected")
    assert store._all("SELECT COUNT(*) FROM scans WHERE nonce = ?", (rows[1]["nonce"],)) \
        == [(1,)]


def test_serve_sizes_connections_and_pool_for_storms():
    from passgate_collector.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.connection_limit >= 1000 and args.backlog >= 1024 and args.threads == 8
    assert args.pool_size == 0  # 0 = one database connection per worker thread


def test_sharing_lookup_probes_the_pass_index_without_statistics(pg_cluster):  # noqa: F811
    """The pairs statements (store/pairs.py) probe (pass_hash, t_ms) once per new scan, also
    on a table never analysed, whether the new scans come as arrays or are read back by
    their (device_id, seq) range; the lock statement takes lock_key's keys, once each, the keys
    the server computed from the hashes before."""
    import psycopg

    from passgate_collector.store import pairs

    url = _unanalysed(pg_cluster)
    hashes = [hashlib.sha256(b"p%d" % i).digest()[:16] for i in range(200)]
    params = {"h": hashes, "t": [T0 * 1000 + i for i in range(200)], "v": ["accept"] * 200,
              "d": "gate-fresh", "w": pairs.PAIR_WINDOW_MS, "k": pairs.PAIRS_PER_SCAN,
              "top": pairs.T_TOP,
              "lo": 5000, "hi": 5199,
              "tlo": T0 * 1000, "thi": T0 * 1000 + 199,
              "plo": T0 * 1000 - pairs.PAIR_WINDOW_MS,
              "phi": T0 * 1000 + 199 + pairs.PAIR_WINDOW_MS}
    with psycopg.connect(url, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)  # EXPLAIN takes literals, not bound parameters
        plans = []
        for sql in (pairs.PG_PAIRS, pairs.PG_PAIRS_RANGE):
            cur.execute("EXPLAIN " + sql.replace(")b::", ")s::"), params)
            plans.append(" ".join(r[0] for r in cur.fetchall()))
        live = pairs.LIVE_PEERS.replace("?", "%s")
        cur.execute("EXPLAIN " + live, (hashes[0], T0 * 1000 - pairs.PAIR_WINDOW_MS,
                                        T0 * 1000 + pairs.PAIR_WINDOW_MS, "gate-fresh",
                                        " live_ab "))
        live_plan = " ".join(r[0] for r in cur.fetchall())
        keys = [r[0] for r in conn.execute(
            "SELECT ('x' || encode(substring(h from 1 for 8), 'hex'))::bit(64)::bigint "
            "FROM unnest(%b::bytea[]) AS u(h)", (hashes,))]
        # The lock statement takes exactly one advisory lock per distinct key (a repeated
        # hash locks once), the keys the server computed before (collectors of both codes
        # lock alike).
        with conn.transaction():
            conn.execute(pairs.PG_LOCK, {"keys": pairs.lock_keys(hashes + hashes[:3])})
            held = sorted(((c << 32) | o) - ((1 << 64) if c >> 31 else 0) for c, o in conn.execute(
                "SELECT classid::int8, objid::int8 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND objsubid = 1"))
    for plan in plans:
        assert "Nested Loop" in plan and not _seq_scan_of_rows(plan), plan
        assert re.search(r"Index Scan using \w*pass\w* on scans", plan), plan
        assert "Index Cond: ((pass_hash = " in plan, plan
    assert "Function Scan on a " in plans[0], plans[0]
    # The batch's time range, widened by the window, is known when the statement is planned:
    # the probes are planned on the partitions it meets (DEFAULT: no week of January 2026 is
    # made for a database of today), not on every week with run-time pruning.
    for plan in plans:
        probed = set(re.findall(r"Index Scan using \w*pass\w* on (\w+)", plan))
        assert probed == {"scans_default"}, plan
    # The batch's rows read back by their (device_id, seq) or (device_id, t_ms) range: both
    # bounded by the batch.
    assert re.search(r"using (scans_device_seq|\w+_device_id_seq_idx|scans_device_time|"
                     r"\w+_device_id_t_ms_idx) on scans", plans[1]), plans[1]
    assert keys == [pairs.lock_key(h) for h in hashes]
    assert held == sorted(set(keys)) and len(held) == len(hashes)
    assert pairs.lock_keys(hashes + hashes[:3]) == "{" + ",".join(map(str, held)) + "}"
    # The live-code look-up (capped, earliest first) probes the pass index too.
    assert re.search(r"Index Scan using \w*pass\w* on scans", live_plan), live_plan
    assert not _seq_scan_of_rows(live_plan), live_plan


def test_batch_lock_statement_reads_one_index_entry_per_lookup(pg_cluster):  # noqa: F811
    """``HELD_SQL`` (read under the batch lock) takes the device's highest seq and its chain
    from the device's row (schema 11; tests/test_collector_ingest_head.py shows the scans
    are then not read). A row without them (a device enrolled again over its stored rows)
    falls back to MAX(seq) over the scans: one descent of (device_id, seq) per partition,
    also on a table never analysed: never an aggregate over the device's history."""
    import psycopg

    from passgate_collector.store.base import HELD_SQL

    url = _unanalysed(pg_cluster)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute("PREPARE held(text, bigint, text) AS "
                     + HELD_SQL.replace("?", "$%d") % (1, 2, 3) + " FOR UPDATE")
        plan = " ".join(r[0] for r in conn.execute(
            "EXPLAIN EXECUTE held('gate-fresh', 5000, 'gate-fresh')"))
        parts = conn.execute("SELECT COUNT(*) FROM pg_inherits "
                             "WHERE inhparent = 'scans'::regclass").fetchone()[0]
    assert not _seq_scan_of_rows(plan) and "Bitmap" not in plan, plan
    # One descent per partition holding rows (store/partitions.py: why weekly; the empty
    # weeks may be read by a Seq Scan of no page), and only for MAX(seq): the chain the
    # batch builds on is the row's own column.
    assert len(re.findall(DEVICE_SEQ + " on scans", plan)) >= 1, plan
    assert len(re.findall(r"on scans_\w+ scans_\d+", plan)) == parts, plan
    assert "Limit" in plan and "Backward" in plan, plan  # MAX as the last entry of the range
