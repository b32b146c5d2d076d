"""The pass index led by the day (schema 12, SQLite; issue 11 point 1): the queries that read
it name the days they cover, so they must find every scan a query by (pass_hash, t_ms) found:
sharing pairs and reused live codes across midnight and in a batch spanning days, a pass
search over days with and without scans, its pages and the live feed's poll. On both
backends (PostgreSQL keeps (pass_hash, t_ms): the same answers). The SQLite plans, and an
upgrade from schema 11."""

from __future__ import annotations

import re
import sqlite3

from collector_support import T0, FakeDevice, pass_hash, pg_cluster, store  # noqa: F401
from passgate_collector import protocol
from passgate_collector.ingest import apply_batch
from passgate_collector.store import open_store, pairs, schema
from passgate_collector.store.console import ScanFilter

DAY = 86400  # s; T0 is a midnight (UTC)
LIVE = "live_" + "ab" * 12


def _enrol(s, dev: FakeDevice) -> None:
    token = dev.device_id.encode().ljust(32, b"t")
    s.add_token(token, dev.device_id, T0, T0 + 60)
    s.enrol(token, dev.device_id, dev.pubkey, b"k" * 8, T0)


def _send(s, dev: FakeDevice, rows: list[dict], now: int) -> None:
    batch = protocol.parse_batch(protocol.decode_signed(dev.batch_body(rows), "batch"))
    assert {r["status"] for r in apply_batch(s, batch, now)} == {"stored"}


def test_pairs_and_live_codes_are_found_across_midnight_and_across_days(store):  # noqa: F811
    north, south = FakeDevice("gate-north"), FakeDevice("gate-south")
    _enrol(store, north)
    _enrol(store, south)
    midnight = T0 + 5 * DAY
    # Pass 1: 10 min before midnight at north, 20 min after at south (one live code): a pair
    # whose scans lie in two days, and a reused live code.
    north.scan(midnight - 600, ph=pass_hash(1), flags=("live", LIVE))
    # Passes 2-4: a backlog spanning days 0, 3 and 9 at north; south sees each within the hour.
    for day, n in ((0, 2), (3, 3), (9, 4)):
        north.scan(T0 + day * DAY + 7200, ph=pass_hash(n))
    # Pass 5: at both, but 2 h apart (no pair); pass 6: only at north.
    north.scan(T0 + 2 * DAY + 100, ph=pass_hash(5))
    north.scan(T0 + 2 * DAY + 200, ph=pass_hash(6))
    _send(store, north, north.rows, T0 + 10 * DAY)
    south.scan(T0 + 2 * DAY + 100 + 7300, ph=pass_hash(5))
    for day, n in ((0, 2), (3, 3), (9, 4)):
        south.scan(T0 + day * DAY + 7200 - 3599, ph=pass_hash(n))
    south.scan(midnight + 1200, ph=pass_hash(1), flags=("live", LIVE))
    _send(store, south, south.rows, T0 + 10 * DAY)
    found = {(p["pass_hash"], p["first_device"], p["first_ms"], p["second_device"],
              p["second_ms"]) for p in store.shared_passes(pairs.PAIR_WINDOW_MS, 0, 100)}
    assert found == {
        (pass_hash(1), "gate-north", (midnight - 600) * 1000, "gate-south",
         (midnight + 1200) * 1000),
        *((pass_hash(n), "gate-south", (T0 + day * DAY + 3601) * 1000, "gate-north",
           (T0 + day * DAY + 7200) * 1000) for day, n in ((0, 2), (3, 3), (9, 4))),
    }
    alerts = [a for a in store.alerts(10) if a["kind"] == pairs.LIVE_CODE_REUSED]
    assert len(alerts) == 1 and "1800.0 s apart" in alerts[0]["detail"]


def test_a_pass_search_finds_every_day_newest_first_with_pages_and_the_feed(store):  # noqa: F811
    a, b = FakeDevice("gate-a"), FakeDevice("gate-b")
    _enrol(store, a)
    _enrol(store, b)
    wanted = pass_hash(42)
    # The pass on days 0, 2 (twice), 9 and 400; other passes on days 1 and 5 and beside it.
    times = [T0 + 60, T0 + 2 * DAY + 10, T0 + 2 * DAY + DAY - 1, T0 + 9 * DAY,
             T0 + 400 * DAY]
    for i, t in enumerate(times):
        (a if i % 2 else b).scan(t, ph=wanted)
        a.scan(t + 1, ph=pass_hash(1000 + i))
    a.scan(T0 + DAY, ph=pass_hash(7))
    b.scan(T0 + 5 * DAY, ph=pass_hash(8))
    _send(store, a, a.rows, T0 + 401 * DAY)
    _send(store, b, b.rows, T0 + 401 * DAY)
    everything = ScanFilter(since_ms=0, until_ms=(T0 + 401 * DAY) * 1000, pass_hash=wanted)
    rows = store.find_scans(everything, 100)
    assert [r["t_ms"] for r in rows] == sorted((t * 1000 for t in times), reverse=True)
    assert {r["pass_hash"] for r in rows} == {wanted}
    # Pages of two, keyset by cursor: the same rows in the same order.
    paged, before = [], None
    while True:
        page = store.find_scans(everything, 2, before)
        if not page:
            break
        paged += page
        before = (page[-1]["t_ms"], page[-1]["device_id"], page[-1]["seq"])
    assert [r["t_ms"] for r in paged] == [r["t_ms"] for r in rows]
    # A range that starts and ends inside days: half-open, exact to the millisecond.
    part = ScanFilter(since_ms=(T0 + 2 * DAY + 10) * 1000, until_ms=(T0 + 3 * DAY - 1) * 1000,
                      pass_hash=wanted)
    assert [r["t_ms"] for r in store.find_scans(part, 10)] == [(T0 + 2 * DAY + 10) * 1000]
    after = store.scans_after(everything, (times[1] * 1000, "gate-a", 0), 10)
    assert [r["t_ms"] for r in after] == [t * 1000 for t in times[1:]]
    assert store.find_scans(ScanFilter(since_ms=5, until_ms=5, pass_hash=wanted), 10) == []


def _plan(db: sqlite3.Connection, sql: str, params) -> str:
    return " | ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))


# One search of (day, pass_hash, t_ms) per day: the day by equality or IN, or, with
# statistics, SQLite's skip-scan over the index's days (ANY), then the hash by equality.
PASS_SEARCH = re.compile(r"SEARCH scans USING INDEX scans_pass_day "
                         r"\((<expr>=\?|ANY\(<expr>\)) AND pass_hash=\? AND t_ms>\? ")


def test_the_sqlite_queries_search_the_day_led_pass_index(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/c.db")
    dev = FakeDevice("gate-plan")
    _enrol(s, dev)
    for i in range(300):  # a few days of scans
        dev.scan(T0 + i * 1000, ph=pass_hash(i % 50))
    _send(s, dev, dev.rows, T0 + DAY)
    seen: list[tuple[str, tuple]] = []  # the pass search's queries, as the store runs them
    real = s._all
    s._all = lambda sql, params=(): seen.append((sql, tuple(params))) or real(sql, params)
    f = ScanFilter(since_ms=0, until_ms=10**13, pass_hash=pass_hash(1))
    s.find_scans(f, 5)
    s.find_scans(f, 5, (T0 * 1000 + 5000, "gate-plan", 3))
    s.scans_after(f, (T0 * 1000, "gate-plan", 1), 5)
    s._all = real
    assert len(seen) == 3
    db = sqlite3.connect(f"{tmp_path}/c.db")
    try:
        for stats in (False, True):  # as made, and after ANALYZE (the bench's histories)
            if stats:
                db.execute("ANALYZE")
            plans = [_plan(db, pairs.SQLITE_PAIRS.format(marks="?, ?, ?"),
                           (3, pass_hash(1), pass_hash(2), pass_hash(3), 0, 10**13, "x")),
                     _plan(db, pairs.SQLITE_LIVE_PEERS,
                           (pass_hash(1), 0, 10**13, "x", " live_ab ", 3, 4))]
            for plan in plans:
                assert PASS_SEARCH.search(plan) and "SCAN scans" not in plan, plan
            for sql, params in seen:
                plan = _plan(db, sql, params)
                assert PASS_SEARCH.search(plan) and "SCAN scans" not in plan, plan
                # The days holding scans: one index search each, never a scan.
                assert "SEARCH scans USING COVERING INDEX scans_pass_day (<expr>>?" in plan, plan
    finally:
        db.close()
        s.close()


def test_a_schema_11_database_gets_the_day_led_index_in_place_of_the_old_one(tmp_path):
    path = tmp_path / "old.db"
    s = open_store(f"sqlite:///{path}")
    dev = FakeDevice("gate-old")
    _enrol(s, dev)
    dev.scans(3)
    _send(s, dev, dev.rows, T0 + 60)
    s.close()
    db = sqlite3.connect(path)  # back to what a schema-11 collector made
    db.execute("DROP INDEX scans_pass_day")
    db.execute("CREATE INDEX scans_pass ON scans (pass_hash, t_ms)")
    db.execute("UPDATE meta SET value = '11' WHERE key = 'schema'")
    db.commit()
    db.close()
    s = open_store(f"sqlite:///{path}")
    try:
        assert s._all("SELECT value FROM meta WHERE key = 'schema'") == [
            (str(schema.SCHEMA_VERSION),)]
        names = {r[0] for r in s._all("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "scans_pass_day" in names and "scans_pass" not in names
        rows = s.find_scans(ScanFilter(since_ms=0, until_ms=10**13,
                                       pass_hash=dev.rows[1]["pass_hash"]), 5)
        assert [r["seq"] for r in rows] == [2]
    finally:
        s.close()
