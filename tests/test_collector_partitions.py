"""Issue 12 point 8 on PostgreSQL: ``scans`` partitioned by week of ``t_ms``
(store/partitions.py). Weeks are made ahead, dropped whole when out of the window, the rows
of a checkpoint with an open tamper alert survive the drop and stay in the console, DEFAULT
holds what no week does, re-sent batches spanning two weeks are all ``duplicate``, and a
database of schema 9 with rows is converted without rewriting its table."""

from __future__ import annotations

import psycopg
import pytest

from collector_support import T0, FakeDevice, fresh_database, pg_cluster  # noqa: F401
from passgate_collector import protocol, retention
from passgate_collector.cli import main
from passgate_collector.ingest import apply_batch
from passgate_collector.store import open_store, partitions, schema
from passgate_collector.store.console import ScanFilter

DAY = 86400
WEEK_S = 7 * DAY
# Monday 2026-01-05 00:00 UTC: the first week boundary after T0 (a Thursday).
MONDAY = partitions.week_start(T0 * 1000) // 1000 + WEEK_S


@pytest.fixture
def pg(pg_cluster):  # noqa: F811
    url = fresh_database(pg_cluster)
    s = open_store(url)
    yield url, s
    s.close()


def names(store) -> list[str]:
    with store._tx(write=False) as cur:
        return [p.name for p in partitions.partitions(cur)]


def where_rows(store, device: str) -> dict[str, int]:
    """Partition name -> rows of ``device`` in it."""
    return dict(store._all("SELECT tableoid::regclass::text, COUNT(*) FROM scans "
                           "WHERE device_id = ? GROUP BY 1", (device,)))


def enrol(store, dev: FakeDevice) -> None:
    store.add_token(b"t" * 31 + dev.device_id[-1].encode(), dev.device_id, T0, T0 + 60)
    store.enrol(b"t" * 31 + dev.device_id[-1].encode(), dev.device_id, dev.pubkey, b"k" * 8, T0)


def send(store, dev: FakeDevice, rows: list[dict], now: int) -> list[str]:
    batch = protocol.parse_batch(protocol.decode_signed(dev.batch_body(rows), "batch"))
    return [r.get("reason") or r["status"] for r in apply_batch(store, batch, now)]


def unique_keys(store) -> dict[str, list[str]]:
    """Partition -> the column lists of its unique indexes."""
    rows = store._all(
        "SELECT c.relname, pg_get_indexdef(x.indexrelid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_index x ON x.indrelid = c.oid "
        "WHERE i.inhparent = 'scans'::regclass AND x.indisunique")
    out: dict[str, list[str]] = {}
    for name, definition in rows:
        out.setdefault(name, []).append(definition.split("(", 1)[1].rstrip(")"))
    return out


def january_weeks(store) -> None:
    """The weeks from T0 to three weeks after it (MONDAY's week among them)."""
    partitions.ensure(store, T0 * 1000, (T0 + 3 * WEEK_S) * 1000)


def stored_in_week(store, device: str, n: int) -> tuple[FakeDevice, list[dict]]:
    """January's weeks made, ``device`` enrolled and ``n`` of its scans stored a minute apart
    from MONDAY + 60 s (all in MONDAY's week); the device and its rows."""
    january_weeks(store)
    dev = FakeDevice(device)
    enrol(store, dev)
    rows = dev.scans(n, t0=MONDAY + 60, step=60)
    assert send(store, dev, rows, MONDAY + 600) == ["stored"] * n
    return dev, rows


def test_weeks_are_made_ahead_at_start_and_by_the_hourly_run(pg):
    url, store = pg
    made = names(store)
    assert partitions.DEFAULT in made
    weeks = [n for n in made if n.startswith("scans_w")]
    assert len(weeks) == 2 + partitions.AHEAD_WEEKS  # last week, this week, two ahead
    later = int(__import__("time").time()) + 30 * DAY
    new = retention.maintain(store, later)
    assert new and set(new) <= set(names(store))
    assert partitions.week_name(partitions.week_start(later * 1000)) in new
    assert retention.maintain(store, later) == []  # made once
    # Every partition has its own dedup key, (device_id, nonce) first (the parent has none).
    keys = unique_keys(store)
    assert set(keys) == set(names(store))
    assert all(k == ["device_id, nonce, t_ms"] for k in keys.values()), keys
    store.close()
    open_store(url).close()  # a restart makes nothing twice and fails on nothing


def test_a_week_out_of_the_window_is_dropped_but_a_tampered_checkpoints_rows_stay(pg):
    _url, store = pg
    january_weeks(store)
    tampered, plain, recent = FakeDevice("gate-t"), FakeDevice("gate-p"), FakeDevice("gate-r")
    for dev in (tampered, plain, recent):
        enrol(store, dev)
    assert send(store, tampered, tampered.scans(4, t0=MONDAY + 3600, step=60), MONDAY + DAY) \
        == ["stored"] * 4
    assert send(store, plain, plain.scans(5, t0=MONDAY + 7200, step=60), MONDAY + DAY) \
        == ["stored"] * 5
    now = MONDAY + 120 * DAY
    partitions.ensure(store, (now - DAY) * 1000, now * 1000)
    assert send(store, recent, recent.scans(3, t0=now - 3600, step=60), now) == ["stored"] * 3
    week = partitions.week_name(MONDAY * 1000)
    assert where_rows(store, "gate-p") == {week: 5}
    store.add_alert("gate-t", "chain_break", "row 3 edited", MONDAY + DAY)

    r = retention.run(store, now, 90)
    gone = {d.name for d in r.dropped}
    assert week in gone and r.kept_devices == ("gate-t",)
    assert {d.name: d.moved for d in r.dropped}[week] == 4
    assert week not in names(store)
    assert where_rows(store, "gate-p") == {}
    assert where_rows(store, "gate-t") == {partitions.DEFAULT: 4}  # moved, not lost
    assert where_rows(store, "gate-r") == {partitions.week_name(partitions.week_start(
        (now - 3600) * 1000)): 3}
    # The console still finds them, by checkpoint and in the scans list.
    f = ScanFilter(MONDAY * 1000, (MONDAY + DAY) * 1000, device="gate-t")
    assert [s["seq"] for s in store.find_scans(f, 10)] == [4, 3, 2, 1]
    assert len(store.recent_scans(10, ["gate-t"])["gate-t"]) == 4
    # A resend of the tampered checkpoint's batch still dedups against the moved rows.
    assert send(store, tampered, tampered.rows, now) == ["duplicate"] * 4
    # Acknowledged: DEFAULT's batched deletes take them (both times are old).
    alert_id = store.alerts(10)[0]["id"]
    assert store.acknowledge(f"tamper:{alert_id}", "chain_break", "sup", now)
    r = retention.run(store, now, 90, batch=3)
    assert r.scans == 4 and r.kept_devices == () and where_rows(store, "gate-t") == {}


def test_the_default_partition_takes_clocks_years_off_and_keeps_the_rule(pg):
    _url, store = pg
    dev = FakeDevice("gate-odd")
    enrol(store, dev)
    import time

    now = int(time.time())
    behind = dev.scan(now - 3 * 365 * DAY)  # a clock years behind, received today
    ahead = dev.scan(now + 200 * DAY)  # years ahead is the same story: no week made yet
    assert send(store, dev, [behind, ahead], now) == ["stored"] * 2
    assert where_rows(store, "gate-odd") == {partitions.DEFAULT: 2}
    # Retention keeps the row behind (received within the window) and the row ahead.
    r = retention.run(store, now, 90)
    assert r.scans == 0 and where_rows(store, "gate-odd") == {partitions.DEFAULT: 2}
    # When its week is made (200 days on), the row ahead moves out of DEFAULT into it.
    later = now + 200 * DAY
    retention.maintain(store, later)
    week = partitions.week_name(partitions.week_start(ahead["t_ms"]))
    assert where_rows(store, "gate-odd") == {partitions.DEFAULT: 1, week: 1}
    assert send(store, dev, [behind, ahead], later) == ["duplicate"] * 2
    # 91 days after it arrived, the row behind goes by the batched rule.
    r = retention.run(store, now + 91 * DAY, 90)
    assert r.scans == 1 and where_rows(store, "gate-odd") == {week: 1}


def test_resent_batches_across_a_week_boundary_are_duplicates(pg):
    _url, store = pg
    january_weeks(store)
    dev = FakeDevice("gate-edge")
    enrol(store, dev)
    rows = dev.scans(6, t0=MONDAY - 150, step=60)  # 3 rows on Sunday, 3 on Monday
    assert send(store, dev, rows, MONDAY + 600) == ["stored"] * 6
    before, after = (partitions.week_name(partitions.week_start(MONDAY * 1000) - d)
                     for d in (partitions.WEEK_MS, 0))
    assert where_rows(store, "gate-edge") == {before: 3, after: 3}
    assert send(store, dev, rows, MONDAY + 700) == ["duplicate"] * 6  # the whole batch again
    assert send(store, dev, rows[2:4], MONDAY + 700) == ["duplicate"] * 2  # the two rows
    # A stored row under a new seq in a new batch: COPY fails on the partition's key
    # (StoredNonce), the lookup then finds the row: other content, a nonce_conflict.
    more = dev.scans(2, t0=MONDAY + 900, step=60)
    out = send(store, dev, more + [dict(rows[1], seq=more[-1]["seq"] + 1)], MONDAY + 1000)
    assert out == ["stored", "stored", "nonce_conflict"]
    # The same nonce with another t_ms in another week (a broken device) is stored as a second
    # row (the documented limit); a resend of the original batch still answers duplicate.
    reuse = dict(dev.scan(MONDAY + WEEK_S + 60), nonce=rows[0]["nonce"])
    dev.rows[-1] = reuse
    send(store, dev, [reuse], MONDAY + WEEK_S + 100)
    assert store._all("SELECT COUNT(*) FROM scans WHERE nonce = ?", (rows[0]["nonce"],)) \
        == [(2,)]
    assert send(store, dev, rows, MONDAY + WEEK_S + 200) == ["duplicate"] * 6
    assert store._all("SELECT COUNT(*) FROM scans WHERE device_id = 'gate-edge'") == [(9,)]


def _schema_9(url: str) -> None:
    """The tables of schema 9 (scans one plain table keyed by (device_id, nonce))."""
    types = dict(schema.POSTGRES_TYPES, scans_key=",\n    PRIMARY KEY (device_id, nonce)",
                 scans_partitioned="")
    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in schema.statements(types) + schema.late_statements(types):
            conn.execute(stmt)
        conn.execute("ALTER TABLE devices DROP COLUMN last_seq, DROP COLUMN last_chain")  # 11
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '9')")


def _insert_v9(url: str, dev: FakeDevice, rows: list[dict], received: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id, pubkey, kid, enrolled_at) VALUES "
                     "(%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (dev.device_id, dev.pubkey, b"k" * 8, T0))
        for r in rows:
            conn.execute(f"INSERT INTO scans ({partitions.ALL_COLS}) VALUES "
                         "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, NULL)",
                         (dev.device_id, r["nonce"], r["seq"], r["t_ms"], r["clock_state"],
                          r["verdict"], r["reason"], r["pass_hash"], r["kid"], r["purpose"],
                          r["zone"], " ".join(r["flags"]), r["chain"], received))


def test_a_schema_9_database_with_rows_is_converted_in_place(pg_cluster):  # noqa: F811
    import time

    url = fresh_database(pg_cluster)
    _schema_9(url)
    now = int(time.time())
    old, fresh = FakeDevice("gate-old"), FakeDevice("gate-new")
    _insert_v9(url, old, old.scans(50, t0=T0, step=60), T0 + 600)
    _insert_v9(url, fresh, fresh.scans(20, t0=now - 3 * DAY, step=60), now - 2 * DAY)
    far = fresh.scan(now + 300 * DAY)  # a clock far ahead: past the old table's new bound
    _insert_v9(url, fresh, [far], now - DAY)
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = dict(conn.execute("SELECT indexrelid::regclass::text, indexrelid FROM pg_index "
                                    "WHERE indrelid = 'scans'::regclass").fetchall())
        table = conn.execute("SELECT 'scans'::regclass::oid").fetchone()[0]
    assert len(indexes) == 8  # the key and seven secondary indexes

    store = open_store(url)
    try:
        assert store._all("SELECT value FROM meta WHERE key = 'schema'") \
            == [(str(schema.SCHEMA_VERSION),)]
        with store._tx(write=False) as cur:
            parts = {p.name: p for p in partitions.partitions(cur)}
            assert partitions.is_partitioned(cur)
        legacy = parts[partitions.LEGACY]
        assert legacy.lo is None and legacy.hi is not None and legacy.hi > now * 1000
        # The same table and the same index files, renamed: nothing was rewritten or built.
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 'scans_legacy'::regclass::oid").fetchone()[0] == table
            kept = dict(conn.execute("SELECT indexrelid::regclass::text, indexrelid FROM pg_index "
                                     "WHERE indrelid = 'scans_legacy'::regclass").fetchall())
        assert sorted(kept.values()) == sorted(indexes.values())
        assert sorted(kept) == sorted("scans_legacy_" + n[len("scans_"):] for n in indexes)
        assert where_rows(store, "gate-old") == {partitions.LEGACY: 50}
        assert where_rows(store, "gate-new") == {partitions.LEGACY: 20, partitions.DEFAULT: 1}
        # Dedup against the old table: a resend is all duplicate, new rows are stored.
        assert send(store, old, old.rows[-10:], now) == ["duplicate"] * 10
        assert send(store, old, old.scans(2, t0=now - 60, step=10), now) == ["stored"] * 2
        # Retention empties the old table by batches, then drops it once empty.
        r = retention.run(store, now + 400 * DAY, 90, batch=7)
        assert r.scans == 50 + 2 + 20 + 1
        assert partitions.LEGACY in {d.name for d in r.dropped}
        assert partitions.LEGACY not in names(store)
    finally:
        store.close()
    open_store(url).close()  # opened again: nothing left to migrate


def test_retention_run_command_drops_weeks(pg_cluster, capsys):  # noqa: F811
    url = fresh_database(pg_cluster)
    store = open_store(url)
    partitions.ensure(store, T0 * 1000, (T0 + WEEK_S) * 1000)
    dev = FakeDevice("gate-cli")
    enrol(store, dev)
    assert send(store, dev, dev.scans(3, t0=MONDAY + 60), MONDAY + 600) == ["stored"] * 3
    store.close()
    assert main(["retention", "run", "--db", url]) == 0  # T0 is long before today - 90 days
    out = capsys.readouterr().out
    assert f"dropped the weekly partition {partitions.week_name(MONDAY * 1000)}" in out
    store = open_store(url)
    assert where_rows(store, "gate-cli") == {}
    store.close()


def test_the_serve_thread_makes_weeks_ahead_even_when_keeping_everything(pg):
    import time

    _url, store = pg
    later = int(time.time()) + 60 * DAY
    week = partitions.week_name(partitions.week_start(later * 1000))
    assert week not in names(store)
    thread, stop = retention.start(store, 0, clock=lambda: later, every_s=0.05,
                                   first_after_s=0.01)  # --retention-days 0
    try:
        deadline = time.monotonic() + 20
        while week not in names(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert week in names(store)
    finally:
        stop.set()
        thread.join(5)


# --- attacks of the review (each states what it tried; the ones that held stay as guards) ---


def test_a_clock_far_ahead_makes_no_partition(pg):
    """Partition DDL follows the server's clock only: a device's t_ms (years ahead, the
    largest the protocol allows) lands in DEFAULT and creates nothing."""
    import time

    _url, store = pg
    dev = FakeDevice("gate-skew")
    enrol(store, dev)
    before = names(store)
    now = int(time.time())
    rows = [dev.scan(now + 5 * 365 * DAY), dev.scan(now + 30 * DAY)]
    assert send(store, dev, rows, now) == ["stored"] * 2
    far = dict(dev.scan(now), t_ms=2 ** 62)
    dev.rows[-1] = far
    send(store, dev, [far], now)
    assert names(store) == before
    assert set(where_rows(store, "gate-skew")) == {partitions.DEFAULT}
    assert retention.maintain(store, now) == []


def test_a_resend_after_its_week_was_dropped_is_stored_once_in_default(pg):
    """The documented behaviour: the week is gone, so the re-sent row is stored again (in
    DEFAULT, as SQLite stores a row again once retention deleted it); a second resend of
    it answers duplicate and stores nothing more."""
    _url, store = pg
    dev, rows = stored_in_week(store, "gate-late", 3)
    now = MONDAY + 120 * DAY
    retention.run(store, now, 90)
    assert where_rows(store, "gate-late") == {}
    assert send(store, dev, rows, now) == ["stored"] * 3
    assert where_rows(store, "gate-late") == {partitions.DEFAULT: 3}
    assert send(store, dev, rows, now + 60) == ["duplicate"] * 3
    assert send(store, dev, rows[1:], now + 60) == ["duplicate"] * 2
    assert where_rows(store, "gate-late") == {partitions.DEFAULT: 3}
    # Kept for the window after its arrival (received_at), then the batched rule takes it.
    assert retention.run(store, now + 30 * DAY, 90).scans == 0
    assert retention.run(store, now + 91 * DAY, 90).scans == 3


def test_a_week_straddling_the_cutoff_stays_whole(pg):
    _url, store = pg
    stored_in_week(store, "gate-cut", 2)
    week = partitions.week_name(MONDAY * 1000)
    # The cutoff one second before the week's end: the week is not wholly outside.
    now = MONDAY + WEEK_S - 1 + 90 * DAY
    r = retention.run(store, now, 90)
    assert week not in {d.name for d in r.dropped} and week in names(store)
    assert where_rows(store, "gate-cut") == {week: 2}
    r = retention.run(store, now + 1, 90)  # the cutoff on the week's end: it goes
    assert week in {d.name for d in r.dropped}


def _open_at_once(url: str, n: int) -> list[BaseException]:
    """Open the store from ``n`` threads at once (collectors starting together): the errors."""
    import threading

    errors: list[BaseException] = []
    stores = []

    def start() -> None:
        try:
            stores.append(open_store(url))
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    return errors


def test_two_collectors_starting_at_once(pg_cluster):  # noqa: F811
    url = fresh_database(pg_cluster)
    assert _open_at_once(url, 4) == []
    store = open_store(url)
    try:
        made = names(store)
        assert made.count(partitions.DEFAULT) == 1
        assert len([n for n in made if n.startswith("scans_w")]) == 2 + partitions.AHEAD_WEEKS
    finally:
        store.close()


def _wait_for_lock_wait(url: str, table: str, timeout: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT COUNT(*) FROM pg_locks WHERE NOT granted "
                            "AND relation = to_regclass(%s)", (table,)).fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"nobody waited for a lock on {table}")


def test_making_a_week_while_a_row_of_it_is_being_written_to_default(pg):
    """A row of a week not made yet (a clock ahead) is written to DEFAULT by an ingest
    transaction that commits while ``ensure`` makes that week: the week must take it out of
    DEFAULT (before the fix, the move missed the uncommitted row and ATTACH failed on it)."""
    import threading
    import time

    url, store = pg
    dev = FakeDevice("gate-race")
    enrol(store, dev)
    lo = partitions.week_start(int(time.time() * 1000)) + 5 * partitions.WEEK_MS
    writer = psycopg.connect(url)
    writer.execute("INSERT INTO scans (device_id, nonce, seq, t_ms, clock_state, verdict, "
                   "reason, zone, flags, chain, received_at) VALUES ('gate-race', %s, 1, %s, "
                   "'synced', 'allow', '', '', '', %s, 0)", (b"n" * 16, lo + 60_000, b"c" * 32))
    out: list = []
    maker = threading.Thread(target=lambda: out.append(
        _ensure_or_error(store, lo, lo + 1000)))
    maker.start()
    try:
        _wait_for_lock_wait(url, partitions.DEFAULT)
    finally:
        writer.commit()
        writer.close()
        maker.join(30)
    assert out == [[partitions.week_name(lo)]], out
    assert where_rows(store, "gate-race") == {partitions.week_name(lo): 1}


def _ensure_or_error(store, lo: int, hi: int):
    try:
        return partitions.ensure(store, lo, hi)
    except Exception as exc:  # noqa: BLE001 - the test compares it
        return exc


def test_a_drop_that_cannot_get_its_lock_gives_up_and_ingest_goes_on(pg, monkeypatch):
    """A long reader holds the week to drop: DETACH waits at most LOCK_TIMEOUT, ingest queued
    behind it then goes on (stored, no error for the agent), the run says which week it left
    for the next one instead of failing with the driver's error, and the next run drops it."""
    import threading

    url, store = pg
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "700ms")
    stored_in_week(store, "gate-old", 3)
    busy = FakeDevice("gate-busy")
    enrol(store, busy)
    week = partitions.week_name(MONDAY * 1000)
    now = MONDAY + 120 * DAY
    partitions.ensure(store, (now - DAY) * 1000, now * 1000)
    reader = psycopg.connect(url)
    reader.execute(f"SELECT COUNT(*) FROM {week}").fetchone()  # holds its lock, open
    out: list = []

    def run() -> None:
        try:
            out.append(retention.run(store, now, 90))
        except Exception as exc:  # noqa: BLE001 - the test compares it
            out.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        _wait_for_lock_wait(url, week)
        assert send(store, busy, busy.scans(2, t0=now - 60, step=10), now) == ["stored"] * 2
        runner.join(30)
    finally:
        reader.rollback()
        reader.close()
    assert len(out) == 1 and isinstance(out[0], retention.Removed), out
    assert week not in {d.name for d in out[0].dropped} and week in out[0].busy
    assert where_rows(store, "gate-old") == {week: 3}
    r = retention.run(store, now, 90)
    assert week in {d.name for d in r.dropped} and r.busy == ()
    assert where_rows(store, "gate-old") == {} and len(where_rows(store, "gate-busy")) == 1


def test_a_tamper_alert_raised_while_retention_runs_still_protects_the_week(pg, monkeypatch):
    """The alert lands after retention read the protected checkpoints and before it drops
    the week (maintenance, other weeks and lock waits lie between): the drop must decide on
    the alerts as they are when it holds the table's lock, not as they were a while ago."""
    _url, store = pg
    dev, _rows = stored_in_week(store, "gate-late-alert", 3)
    week = partitions.week_name(MONDAY * 1000)
    now = MONDAY + 120 * DAY
    real = retention.protected_devices
    calls: list[int] = []

    def read_then_alert(*args, **kwargs):
        out = real(*args, **kwargs)
        if not calls:
            store.add_alert("gate-late-alert", "chain_break", "row 2 edited", now)
        calls.append(1)
        return out

    monkeypatch.setattr(retention, "protected_devices", read_then_alert)
    r = retention.run(store, now, 90)
    assert week in {d.name for d in r.dropped}
    assert where_rows(store, "gate-late-alert") == {partitions.DEFAULT: 3}
    assert "gate-late-alert" in r.kept_devices


def _v9_with_rows(pg_cluster, now: int):  # noqa: F811
    url = fresh_database(pg_cluster)
    _schema_9(url)
    old, fresh = FakeDevice("gate-old"), FakeDevice("gate-new")
    _insert_v9(url, old, old.scans(30, t0=now - 10 * DAY, step=60), now - 9 * DAY)
    far = fresh.scans(3, t0=now + 300 * DAY, step=60)  # past the bound: held in scans_ahead
    _insert_v9(url, fresh, far, now - DAY)
    return url, old, fresh


def test_a_collector_that_waited_while_another_converted_leaves_the_rows(pg_cluster,  # noqa: F811
                                                                         monkeypatch):
    """Two collectors upgrade at once: one saw the old table, then waited for the lock while
    the other converted it. Under the lock it looks again and leaves the partitioned table
    alone; before, it bounded it and set the rows past the bound aside in scans_ahead, where
    nothing puts them back (the rows of gate-new were gone: seen once in CI)."""
    import time

    now = int(time.time())
    url, _old, _fresh = _v9_with_rows(pg_cluster, now)
    store = open_store(url)  # the first collector: converted, gate-new's rows in DEFAULT
    try:
        assert where_rows(store, "gate-new") == {partitions.DEFAULT: 3}
        seen: list[bool] = []
        real = partitions._legacy

        def stale_then_real(cur) -> bool:  # the second collector's look before the lock
            seen.append(real(cur))
            return True if len(seen) == 1 else seen[-1]

        monkeypatch.setattr(partitions, "_legacy", stale_then_real)
        partitions.prepare_legacy(store, now * 1000)
        assert where_rows(store, "gate-new") == {partitions.DEFAULT: 3}
        assert where_rows(store, "gate-old") == {partitions.LEGACY: 30}
        assert seen == [False, False]  # looked twice; the second, under the lock, decided
    finally:
        store.close()


def test_the_upgrade_interrupted_between_its_two_steps_resumes(pg_cluster, monkeypatch):  # noqa: F811
    """A restart after the bound was added and the rows past it set aside (scans_ahead), but
    before the migration's transaction: the next start converts, and no row is lost or
    doubled; the rows that were set aside dedup on resend."""
    import time

    now = int(time.time())
    url, old, fresh = _v9_with_rows(pg_cluster, now)

    def crash(cur, types):
        raise RuntimeError("power cut")

    monkeypatch.setattr(partitions, "convert", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        open_store(url)
    monkeypatch.undo()
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("9",)
        assert conn.execute(f"SELECT COUNT(*) FROM {partitions.AHEAD}").fetchone() == (3,)
        # The bound added but not validated yet (a cut between the two): validated on restart.
        conn.execute(f"ALTER TABLE scans DROP CONSTRAINT {partitions.LEGACY_BOUND}")
        until = (partitions.week_start(now * 1000)
                 + (partitions.AHEAD_WEEKS + 1) * partitions.WEEK_MS)
        conn.execute(f"ALTER TABLE scans ADD CONSTRAINT {partitions.LEGACY_BOUND} "
                     f"CHECK (t_ms < {until}) NOT VALID")
    store = open_store(url)
    try:
        assert store._all("SELECT value FROM meta WHERE key = 'schema'") \
            == [(str(schema.SCHEMA_VERSION),)]
        assert where_rows(store, "gate-old") == {partitions.LEGACY: 30}
        assert where_rows(store, "gate-new") == {partitions.DEFAULT: 3}
        assert store._all(f"SELECT to_regclass('{partitions.AHEAD}')") == [(None,)]
        assert send(store, old, old.rows[-5:], now) == ["duplicate"] * 5
        assert send(store, fresh, fresh.rows, now) == ["duplicate"] * 3
        assert send(store, fresh, fresh.scans(1, t0=now, step=1), now) == ["stored"]
        assert store._all("SELECT COUNT(*) FROM scans") == [(34,)]
    finally:
        store.close()


def test_two_collectors_upgrading_at_once(pg_cluster):  # noqa: F811
    import time

    now = int(time.time())
    url, _old, _fresh = _v9_with_rows(pg_cluster, now)
    assert _open_at_once(url, 3) == []
    store = open_store(url)
    try:
        assert where_rows(store, "gate-old") == {partitions.LEGACY: 30}
        assert where_rows(store, "gate-new") == {partitions.DEFAULT: 3}
    finally:
        store.close()


def test_a_collector_starts_while_another_holds_the_makers_lock(pg, monkeypatch, caplog):
    """Another collector holds the lock that makes and drops weeks for longer than
    LOCK_TIMEOUT (moving a flooded DEFAULT's rows, or waiting for a long query): the start's
    upkeep (``_after_migrate``, run after the migration lock was granted) does not fail on it;
    it says which weeks it could not make, their rows go to DEFAULT and are stored, and the
    hourly run makes the weeks and moves the rows out once the lock is free."""
    import logging
    import time

    url, store = pg
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "300ms")
    with store._tx() as cur:
        for p in partitions.partitions(cur):
            if not p.default:
                cur.execute(f"ALTER TABLE scans DETACH PARTITION {p.name}")
                cur.execute(f"DROP TABLE {p.name}")
    holder = psycopg.connect(url)
    holder.execute("SELECT pg_advisory_xact_lock(74726)")  # held, transaction open
    now = int(time.time())
    dev = FakeDevice("gate-wait")
    try:
        with caplog.at_level(logging.WARNING, logger=partitions.log.name):
            store._after_migrate()  # the start's upkeep: must not raise
        assert [n for n in names(store) if n.startswith("scans_w")] == []
        assert "were not made" in caplog.text
        enrol(store, dev)
        rows = dev.scans(2, t0=now - 60, step=10)
        assert send(store, dev, rows, now) == ["stored"] * 2
        assert set(where_rows(store, "gate-wait")) == {partitions.DEFAULT}
    finally:
        holder.rollback()
        holder.close()
    made = retention.maintain(store, now)
    assert partitions.week_name(partitions.week_start(now * 1000)) in made
    assert set(where_rows(store, "gate-wait")) == {
        partitions.week_name(partitions.week_start((now - 60) * 1000))}
    assert send(store, dev, rows, now) == ["duplicate"] * 2  # moved, still found
