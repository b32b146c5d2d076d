"""Issue 12 points 7 and 8 on SQLite and PostgreSQL: the counts kept at ingest (hourly
``scan_hours``, sharing ``pass_pairs``) agree with the scans they stand for, and retention
removes old scans in batches but never those of a checkpoint with an open tamper alert."""

from __future__ import annotations

import sqlite3
import time

from collector_support import T0, FakeDevice, pass_hash, pg_cluster, store  # noqa: F401
from passgate_collector import retention
from passgate_collector.cli import main
from passgate_collector.store import open_store
from passgate_collector.store.schema import SCHEMA_VERSION

DAY = 86400


def ingest(store, dev: FakeDevice, rows: list[dict], now: int) -> None:  # noqa: F811
    """Store rows as an accepted batch does (the batch transaction, received at ``now``)."""
    with store.batch(dev.device_id) as tx:
        tx.insert_scans([(r, None) for r in rows], now)


def counted(store) -> dict:  # noqa: F811
    return {(h, s, z, v, r): n for h, s, z, v, r, n in store._all(
        "SELECT hour_ms, site, zone, verdict, reason, n FROM scan_hours WHERE n <> 0")}


def recounted(store) -> dict:  # noqa: F811
    return {tuple(k): n for *k, n in store._all(
        "SELECT (t_ms / 3600000) * 3600000, COALESCE(site, ''), zone, verdict, reason, COUNT(*) "
        "FROM scans GROUP BY 1, 2, 3, 4, 5")}


def scan_count(store) -> int:  # noqa: F811
    return store._all("SELECT COUNT(*) FROM scans")[0][0]


def test_hourly_counts_follow_ingest_and_a_site_move(store):  # noqa: F811
    north, south = FakeDevice("gate-north"), FakeDevice("gate-south")
    ingest(store, north, north.scans(10, t0=T0, step=600) +
           [north.scan(T0 + 7000, verdict="deny", reason="expired", zone="vault")], T0 + DAY)
    ingest(store, south, south.scans(5, t0=T0 + 1800, step=900), T0 + DAY)
    assert counted(store) == recounted(store)
    assert sum(counted(store).values()) == 16
    hour0 = (T0 * 1000 // 3600000) * 3600000
    assert counted(store)[(hour0, "", "lobby", "accept", "valid")] == 6 + 2
    # set_site moves the counts with the scans (devices must be enrolled to be moved).
    with store._tx() as cur:
        for d in (north, south):
            cur.execute(store.sql("INSERT INTO devices (device_id, pubkey, kid, enrolled_at) "
                                  "VALUES (?, ?, ?, ?)"), (d.device_id, d.pubkey, b"k", T0))
    store.set_site("moscow", "Europe/Moscow", ["gate-north"])
    assert counted(store) == recounted(store)
    assert {s for _h, s, *_ in counted(store)} == {"moscow", ""}
    assert [z for z in store.zones(T0 * 1000)] == ["lobby", "vault"]
    by_site = store.hourly_by_site(hour0, hour0 + 3 * 3600000)
    assert (("moscow", hour0, 6, 0) in by_site) and ((None, hour0, 2, 0) in by_site)
    assert store.hourly_reasons(hour0, hour0 + 3 * 3600000, "moscow") == [
        (hour0 + 3600000, "expired", 1)]


def test_sharing_pairs_are_found_whichever_batch_arrives_last(store):  # noqa: F811
    north, south, east = FakeDevice("gate-north"), FakeDevice("gate-south"), FakeDevice("e")
    later = south.scan(T0 + 100, ph=pass_hash(7))  # stored first, scanned 40 s after north's
    ingest(store, south, [later], T0 + 200)
    ingest(store, north, [north.scan(T0 + 60, ph=pass_hash(7)),
                          north.scan(T0 + 61, ph=pass_hash(8))], T0 + 200)
    ingest(store, east, [east.scan(T0 + 5000, ph=pass_hash(7))], T0 + 6000)  # 81 min later
    pairs = store.shared_passes(120_000, 0, 10)
    assert [(p["first_device"], p["first_ms"], p["second_device"], p["second_ms"])
            for p in pairs] == [("gate-north", (T0 + 60) * 1000, "gate-south", (T0 + 100) * 1000)]
    assert store.shared_passes(30_000, 0, 10) == []  # 40 s apart: outside a 30 s window
    # East's scan of pass 7 is 81 min after the others: past the one-hour cap, never a pair.
    # A second scan at south 70 s after north's makes a second pair, the newest first.
    ingest(store, south, [south.scan(T0 + 130, ph=pass_hash(7))], T0 + 300)
    wide = store.shared_passes(3_600_000, 0, 10)
    assert [p["second_ms"] for p in wide] == [(T0 + 130) * 1000, (T0 + 100) * 1000]
    assert store.shared_passes(10 * 3_600_000, 0, 10) == wide  # windows are cut to an hour


def test_migration_fills_the_counts_from_an_older_database(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    s = open_store(url)
    dev = FakeDevice("gate-north")
    ingest(s, dev, dev.scans(3, t0=T0, step=10) + [FakeDevice("x").scan(T0)], T0 + 60)
    other = FakeDevice("gate-south")
    ingest(s, other, [other.scan(T0 + 20, ph=dev.rows[0]["pass_hash"])], T0 + 60)
    want_hours, want_pairs = counted(s), s.shared_passes(120_000, 0, 10)
    assert want_pairs and want_hours
    s.close()
    db = sqlite3.connect(f"{tmp_path}/old.db")
    db.execute("DROP TABLE scan_hours")
    db.execute("DROP TABLE pass_pairs")
    db.execute("ALTER TABLE devices DROP COLUMN last_seq")  # schema 11 (the device's head)
    db.execute("ALTER TABLE devices DROP COLUMN last_chain")
    db.execute("UPDATE meta SET value = '7' WHERE key = 'schema'")
    db.commit()
    db.close()
    s = open_store(url)
    assert s._all("SELECT value FROM meta WHERE key = 'schema'") == [(str(SCHEMA_VERSION),)]
    assert counted(s) == want_hours
    assert s.shared_passes(120_000, 0, 10) == want_pairs
    s.close()


def test_retention_removes_old_scans_in_batches_and_keeps_recent_ones(store):  # noqa: F811
    now = T0 + 200 * DAY
    old, new = FakeDevice("gate-old"), FakeDevice("gate-new")
    ingest(store, old, old.scans(7, t0=T0, step=60), T0 + 120)
    ingest(store, new, new.scans(3, t0=now - DAY, step=60), now - DAY + 600)
    # A checkpoint whose clock ran 200 days behind: old t_ms, received today. Kept.
    slow = FakeDevice("gate-slow")
    ingest(store, slow, slow.scans(2, t0=T0, step=60), now)
    r = retention.run(store, now, 90, batch=3)  # 7 rows, 3 a transaction: three batches
    assert (r.scans, r.kept_devices) == (7, ())
    assert {d for (d,) in store._all("SELECT device_id FROM scans")} == {"gate-new", "gate-slow"}
    # The counts of hours wholly before the window went with them.
    assert all(h >= (now - 90 * DAY) * 1000 - 3600000 for (h,) in store._all(
        "SELECT hour_ms FROM scan_hours"))
    assert r.hours >= 1
    assert retention.run(store, now, 90).scans == 0


def test_retention_spares_a_checkpoint_with_an_open_tamper_alert(store):  # noqa: F811
    now = T0 + 200 * DAY
    tampered, plain = FakeDevice("gate-tampered"), FakeDevice("gate-plain")
    ingest(store, tampered, tampered.scans(4, t0=T0, step=60), T0 + 120)
    ingest(store, plain, plain.scans(4, t0=T0, step=60), T0 + 120)
    store.add_alert("gate-tampered", "chain_break", "row 3 edited", T0 + 130)
    store.add_alert("gate-plain", "bad_signature", "forged batch", T0 + 130)  # counted only
    r = retention.run(store, now, 90)
    assert (r.scans, r.kept_devices) == (4, ("gate-tampered",))
    assert scan_count(store) == 4
    alert_id = store.alerts(10)[0]["id"]
    assert store.acknowledge(f"tamper:{alert_id}", "chain_break", "sup", now)
    r = retention.run(store, now, 90)
    assert (r.scans, r.kept_devices) == (4, ())
    assert scan_count(store) == 0


def test_retention_pairs_and_the_command(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/c.db"
    s = open_store(url)
    a, b = FakeDevice("gate-a"), FakeDevice("gate-b")
    ingest(s, a, [a.scan(T0, ph=pass_hash(1))], T0 + 10)
    ingest(s, b, [b.scan(T0 + 5, ph=pass_hash(1))], T0 + 10)
    assert len(s.shared_passes(60_000, 0, 10)) == 1
    s.close()
    assert main(["retention", "run", "--db", url, "--retention-days", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["retention", "run", "--db", url]) == 0  # T0 is long before today - 90 days
    assert "removed 2 scans" in capsys.readouterr().out
    s = open_store(url)
    assert s.shared_passes(60_000, 0, 10) == [] and scan_count(s) == 0
    s.close()


def test_the_serve_thread_runs_retention_periodically(store):  # noqa: F811
    dev = FakeDevice("gate-old")
    ingest(store, dev, dev.scans(3, t0=T0, step=60), T0 + 120)
    now = [T0 + 200 * DAY]
    thread, stop = retention.start(store, 90, clock=lambda: now[0], every_s=0.05,
                                   first_after_s=0.01)
    try:
        deadline = time.monotonic() + 20
        while scan_count(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scan_count(store) == 0
        ingest(store, dev, dev.scans(2, t0=T0 + 3600, step=60), T0 + 7200)  # also old: goes too
        while scan_count(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scan_count(store) == 0
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_a_pass_shown_at_many_doors_makes_bounded_pairs(store):  # noqa: F811
    """One pass scanned at 40 checkpoints within a minute: each scan pairs with at most
    PAIRS_PER_SCAN others, the earliest first, so the pairs grow with the scans and not with
    their square (a storm of 2,000 checkpoints sharing 200 passes made 44.5 million pairs
    from 133,600 scans before the cap); a pass at fewer doors keeps every pair."""
    from passgate_collector.store.pairs import PAIRS_PER_SCAN

    doors = [FakeDevice(f"gate-{i:02d}") for i in range(40)]
    for i, dev in enumerate(doors):
        ingest(store, dev, [dev.scan(T0 + i, ph=pass_hash(9))], T0 + 100 + i)
    few = [FakeDevice(f"side-{i}") for i in range(4)]
    for i, dev in enumerate(few):
        ingest(store, dev, [dev.scan(T0 + 50 + i, ph=pass_hash(10))], T0 + 200 + i)
    pairs = store.shared_passes(3_600_000, 0, 10_000)
    by_pass: dict[bytes, list[dict]] = {}
    for p in pairs:
        by_pass.setdefault(bytes(p["pass_hash"]), []).append(p)
    assert len(by_pass[pass_hash(10)]) == 4 * 3 // 2  # every pair of four doors
    many = by_pass[pass_hash(9)]
    # Scan i (arriving i-th) pairs with the earliest PAIRS_PER_SCAN of those before it.
    assert len(many) == sum(min(i, PAIRS_PER_SCAN) for i in range(40))
    seconds = {(p["first_device"], p["second_device"]) for p in many}
    assert ("gate-00", "gate-39") in seconds and ("gate-20", "gate-39") not in seconds
