"""The staff console (issue 12, points 2-5) through Flask's test client, and the queries behind
it on SQLite and PostgreSQL: alerts first with acknowledge, the live feed's cursor, health by
severity, filters with keyset pages, the CSV export, site time zones, charts' numbers. Pass
search is in test_collector_console_pass; the real-browser test in
test_collector_console_browser."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import pytest

from collector_support import (  # noqa: F401
    T0,
    FakeDevice,
    add_staff,
    cheap_argon2,
    csrf_of,
    fake_time_token,
    pass_hash,
    pg_cluster,
    sign_in,
    store,
)
from passgate.passes.verdict import Reason
from passgate_collector.auth import AuthOptions
from passgate_collector.console import ConsoleOptions, views, words
from passgate_collector.store.console import ScanFilter, parse_cursor
from passgate_collector.store.schema import SCHEMA_VERSION
from passgate_collector.web import create_app

CBOR = {"Content-Type": "application/cbor"}
NOW = T0 + 3600
STATIC = Path(__file__).resolve().parents[1] / "collector/passgate_collector/console/static"

pytestmark = pytest.mark.usefixtures("cheap_argon2")  # every console page needs a session


def enrol(client, store, dev: FakeDevice) -> None:  # noqa: F811
    tok = "tok-" + dev.device_id + "-" * 16
    store.add_token(hashlib.sha256(tok.encode()).digest(), dev.device_id, T0, T0 + 86400)
    assert client.post("/v1/enrol", data=dev.enrol_body(tok), headers=CBOR).status_code == 201


def send(client, dev: FakeDevice, rows, status=None, sent_at: int = NOW) -> None:
    body = dev.batch_body(rows, status=status, sent_at=sent_at)
    r = client.post("/v1/batches", data=body, headers=CBOR)
    assert r.status_code == 200, r.data


class Fleet:
    def __init__(self, store, now: int = NOW) -> None:  # noqa: F811
        self.store, self.now = store, now
        # Sessions long enough for the tests that move the clock on by hours.
        self.app = create_app(store, time_token=fake_time_token, now=lambda: self.now,
                              console=ConsoleOptions(page_size=20),
                              auth=AuthOptions(idle_s=10**6, absolute_s=10**6))
        self.c = self.app.test_client()
        self.north, self.south, self.east = (FakeDevice("gate-north"), FakeDevice("gate-south"),
                                             FakeDevice("gate-east"))
        for d in (self.north, self.south, self.east):
            enrol(self.c, store, d)
        # A supervisor signed in through the form (acknowledge and export are theirs); the
        # session's CSRF token rides along with every request, as the page's scripts send it.
        add_staff(store, "sup", "supervisor")
        assert sign_in(self.c, "sup").status_code == 302
        token = csrf_of(self.c.get("/console/pass").get_data(as_text=True))
        self.c.environ_base["HTTP_X_CSRF_TOKEN"] = token
        # Sites are set before the scans arrive: ingest copies the site into each scan.
        assert store.set_site("moscow", "Europe/Moscow", ["gate-north", "gate-south"]) == []

    def html(self, path: str) -> str:
        r = self.c.get(path)
        assert r.status_code == 200, r.data[:500]
        return r.get_data(as_text=True)


@pytest.fixture
def fleet(store):  # noqa: F811
    f = Fleet(store)
    f.north.scans(30, t0=T0 + 60, step=60)  # one a minute for half an hour
    f.north.scan(T0 + 1900, verdict="deny", reason="expired", ph=pass_hash(500))
    f.north.scan(T0 + 1910, verdict="deny", reason="wrong_zone", ph=pass_hash(501), zone="vault")
    f.south.scan(T0 + 1920, ph=pass_hash(1))  # pass 1 was at north at T0 + 60: 31 min apart
    f.south.scan(T0 + 1930, verdict="deny", reason="revoked", ph=pass_hash(502))
    f.east.scans(3, t0=T0 + 100, verdict="deny", reason="expired")
    send(f.c, f.north, f.north.rows, {"backlog": 0, "clock_state": "trusted", "firmware": "0.2.0",
                                      "bundle_version": 3})
    send(f.c, f.south, f.south.rows, {"backlog": 4, "clock_state": "backwards",
                                      "dead_letters": 2})
    send(f.c, f.east, f.east.rows, {"backlog": 0, "clock_state": "trusted"})
    return f


def all_pages(store, f: ScanFilter, limit: int) -> list[dict]:  # noqa: F811
    out, before = [], None
    while True:
        page = store.find_scans(f, limit, before)
        out += page
        if len(page) < limit:
            return out
        before = parse_cursor(page[-1]["cursor"])


def test_keyset_pages_cover_every_scan_once_newest_first(store, fleet):  # noqa: F811
    f = ScanFilter(since_ms=0, until_ms=NOW * 1000)
    rows = all_pages(store, f, 7)
    keys = [(r["t_ms"], r["device_id"], r["seq"]) for r in rows]
    assert len(keys) == len(set(keys)) == 30 + 2 + 2 + 3
    assert keys == sorted(keys, reverse=True)


def test_filters_by_site_zone_checkpoint_verdict_reason_and_time(store, fleet):  # noqa: F811
    def find(**kw):
        base = {"since_ms": 0, "until_ms": NOW * 1000}
        return {(r["device_id"], r["seq"]) for r in store.find_scans(
            ScanFilter(**{**base, **kw}), 100)}

    assert {d for d, _ in find(site="moscow")} == {"gate-north", "gate-south"}
    assert find(zone="vault") == {("gate-north", 32)}
    assert find(device="gate-east") == {("gate-east", 1), ("gate-east", 2), ("gate-east", 3)}
    assert find(verdict="deny", site="moscow") == {("gate-north", 31), ("gate-north", 32),
                                                   ("gate-south", 2)}
    assert find(reason="expired") == {("gate-north", 31), ("gate-east", 1), ("gate-east", 2),
                                      ("gate-east", 3)}
    assert find(since_ms=(T0 + 1900) * 1000, until_ms=(T0 + 1920) * 1000) == {
        ("gate-north", 31), ("gate-north", 32)}  # half-open: T0 + 1920 is out


def test_a_checkpoint_moved_to_a_site_takes_its_stored_scans(store, fleet):  # noqa: F811
    f = ScanFilter(since_ms=0, until_ms=NOW * 1000, site="kazan")
    assert store.find_scans(f, 10) == []
    assert store.set_site("kazan", "Europe/Moscow", ["gate-east", "gate-nowhere"]) == [
        "gate-nowhere"]
    assert len(store.find_scans(f, 10)) == 3
    assert store.sites() == {"kazan": "Europe/Moscow", "moscow": "Europe/Moscow"}


def test_the_console_queries_read_the_indexes_sqlite(tmp_path):
    from passgate_collector.store import open_store

    s = open_store(f"sqlite:///{tmp_path}/c.db")
    try:
        def plan(f: ScanFilter) -> str:
            where, params = f.where()
            rows = s._all(f"EXPLAIN QUERY PLAN SELECT t_ms FROM scans WHERE {where} "
                          "ORDER BY t_ms DESC, device_id DESC, seq DESC LIMIT 5", params)
            return " ".join(str(r[-1]) for r in rows)

        base = {"since_ms": 0, "until_ms": 10}
        assert "scans_site_time" in plan(ScanFilter(**base, site="x"))
        assert "scans_device_time" in plan(ScanFilter(**base, device="x"))
        # A pass search: the day-led pass index (schema 12), its query as find_scans makes
        # it: test_collector_passday.
        assert "USING INDEX" in plan(ScanFilter(**base))  # scans_time: never a full scan
    finally:
        s.close()


def test_a_version_4_database_is_upgraded_with_the_new_columns_and_indexes(tmp_path):
    import sqlite3

    from passgate_collector.store import open_store

    path = tmp_path / "old.db"
    open_store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)  # turn it back into what a version-4 collector made
    for stmt in ("DROP INDEX scans_site_time", "DROP INDEX scans_device_time",
                 "ALTER TABLE scans DROP COLUMN site", "ALTER TABLE devices DROP COLUMN site",
                 "ALTER TABLE devices DROP COLUMN live_challenge_ms",  # schema 5 (liveness)
                 "ALTER TABLE devices DROP COLUMN update_state",  # schema 7 (the updater)
                 "ALTER TABLE devices DROP COLUMN update_target",
                 "ALTER TABLE devices DROP COLUMN update_reason",
                 "ALTER TABLE devices DROP COLUMN last_seq",  # schema 11 (the device's head)
                 "ALTER TABLE devices DROP COLUMN last_chain",
                 "UPDATE meta SET value = '4' WHERE key = 'schema'"):
        db.execute(stmt)
    db.commit()
    db.close()
    s = open_store(f"sqlite:///{path}")
    try:
        assert s._all("SELECT value FROM meta WHERE key = 'schema'") == [(str(SCHEMA_VERSION),)]
        names = {r[0] for r in s._all("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"scans_site_time", "scans_device_time"} <= names
        assert s._all("SELECT site FROM scans") == []
    finally:
        s.close()


def test_alerts_come_first_by_severity_and_the_summary_counts_checkpoints(fleet):
    fleet.store.add_alert("gate-east", "chain_mismatch", "row 2 edited", NOW - 60)
    html = fleet.html("/console/")
    kinds = re.findall(r'<li class="alert sev-(\w+)"', html)
    assert kinds[0] == "tamper"
    assert kinds.index("clock") < kinds.index("dead")
    assert html.index('id="alerts"') < html.index('id="health"') < html.index('id="live"')
    # gate-south: clock went backwards and 2 dead letters; the others were heard a moment ago.
    assert "1 of 3 checkpoints needs attention" in html
    order = re.findall(r'<tr class="device state-\w+" data-device="([\w-]+)"', html)
    assert order[0] == "gate-south"


def test_a_silent_checkpoint_becomes_an_offline_alert(fleet):
    fleet.now = NOW + 3600  # nobody uploaded for an hour
    html = fleet.html("/console/")
    assert html.count('data-kind="offline"') == 3
    assert "3 of 3 checkpoints need attention" in html


def test_acknowledge_records_who_and_when_and_moves_the_alert_to_the_collapsed_list(fleet):
    html = fleet.html("/console/")
    key = re.search(r'data-key="(dead:gate-south:2)"', html).group(1)
    r = fleet.c.post("/console/ack", data={"key": key, "label": "dead letters"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/console/#alerts")
    assert fleet.store.acks(0)[key] == {"label": "dead letters", "by": "sup", "at": NOW}
    html = fleet.html("/console/")
    opened, acked = html.split('<details class="acked">')
    assert f'data-key="{key}"' not in opened and f'data-key="{key}"' in acked
    assert "acknowledged by sup" in acked
    assert fleet.store.acknowledge(key, "again", "someone", NOW + 5) is False  # first one stays
    # The same condition in another form (3 dead letters) is a new, open alert.
    fleet.south.scan(T0 + 2000)
    # A later status (liveness: only a fresh batch moves a device's health).
    send(fleet.c, fleet.south, fleet.south.rows[-1:], {"dead_letters": 3}, sent_at=NOW + 5)
    opened = fleet.html("/console/").split('<details class="acked">')[0]
    assert 'data-key="dead:gate-south:3"' in opened


def test_an_acknowledgement_holds_however_old_and_however_many_came_after(fleet):
    """Open or acknowledged is decided by the alert's own key: once only the newest 1,000 acks
    of 90 days were read, so an older one let its alert open again in the console while
    retention (which reads every ack) already treated it as closed and removed its scans."""
    fleet.store.add_alert("gate-east", "chain_mismatch", "row 2 edited", NOW - 200 * 86400)
    key = re.search(r'data-key="(tamper:\d+)"', fleet.html("/console/")).group(1)
    fleet.store.acknowledge(key, "tamper", "sup", NOW - 100 * 86400)  # 100 days ago
    with fleet.store._tx() as cur:
        cur.executemany(fleet.store.sql("INSERT INTO acks (alert_key, label, by_user, at) "
                                        "VALUES (?, ?, ?, ?)"),
                        [(f"offline:gate-x{i}:1", "x", "sup", NOW - i) for i in range(1200)])
    opened, acked = fleet.html("/console/").split('<details class="acked">')
    assert f'data-key="{key}"' not in opened and f'data-key="{key}"' in acked
    from passgate_collector import retention

    assert "gate-east" not in retention.protected_devices(fleet.store)  # the same verdict


def test_ack_without_a_key_is_refused(fleet):
    assert fleet.c.post("/console/ack", data={}).status_code == 400


def test_the_live_feed_returns_only_rows_after_the_cursor(fleet):
    first = fleet.c.get("/console/feed.json").get_json()
    assert len(first["rows"]) == 20 and first["cursor"] == first["rows"][-1]["cursor"]
    assert fleet.c.get(f"/console/feed.json?after={first['cursor']}").get_json()["rows"] == []
    fleet.north.scan(T0 + 2100, verdict="deny", reason="wrong_zone", ph=pass_hash(9))
    send(fleet.c, fleet.north, fleet.north.rows[-1:])
    new = fleet.c.get(f"/console/feed.json?after={first['cursor']}").get_json()
    assert [(r["checkpoint"], r["reason_words"]) for r in new["rows"]] == [
        ("gate-north", "not valid here")]
    row = new["rows"][0]
    assert row["time_utc"] == "2026-01-01T00:35:00.000Z"
    assert row["local"] == "2026-01-01 03:35:00 MSK" and row["utc"].endswith("UTC")


def test_every_reason_the_firmware_stores_has_words():
    assert {r.value for r in Reason} <= set(words.REASON_WORDS)
    assert words.reason_words("wrong_zone") == "not valid here"
    assert words.reason_words("from_a_newer_device") == "from_a_newer_device"


def test_scans_page_shows_site_local_time_with_utc_on_hover_and_reasons_in_words(fleet):
    html = fleet.html("/console/scans?reason=wrong_zone")
    assert ('<time datetime="2026-01-01T00:31:50.000Z" title="2026-01-01 00:31:50 UTC">'
            '2026-01-01 03:31:50 MSK</time>') in html
    assert 'data-reason="wrong_zone">not valid here</span>' in html
    assert ">wrong_zone<" not in html
    # A checkpoint with no site: UTC.
    html = fleet.html("/console/scans?device=gate-east")
    assert '2026-01-01 00:01:40 UTC</time>' in html


def test_scans_page_pages_by_keyset_and_keeps_the_filters(fleet):
    html = fleet.html("/console/scans?site=moscow")
    older = re.search(r'id="older" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "site=moscow" in older and "before=" in older and "offset" not in older
    rows = re.findall(r'data-cursor="([^"]+)"', html)
    html2 = fleet.html(older)
    rows2 = re.findall(r'data-cursor="([^"]+)"', html2)
    assert (len(rows), len(rows2)) == (20, 14) and not set(rows) & set(rows2)
    assert 'id="older"' not in html2 and "&larr; newest" in html2


def test_the_time_range_is_in_the_sites_zone_and_capped(fleet):
    # 03:31 to 03:32 Moscow time is 00:31 to 00:32 UTC: the two north denials.
    html = fleet.html("/console/scans?site=moscow&from=2026-01-01T03:31&to=2026-01-01T03:32")
    assert len(re.findall(r'<tr class="scan', html)) == 2
    assert "times in Europe/Moscow" in html
    html = fleet.html("/console/scans?from=2025-01-01T00:00&to=2026-01-01T01:00")
    assert "cut to the last 31 days" in html


def test_csv_export_streams_every_filtered_row_in_utc(fleet, monkeypatch):
    monkeypatch.setattr(views, "EXPORT_PAGE", 4)  # several pages, to prove the keyset walk
    r = fleet.c.get("/console/export.csv?verdict=deny&from=2026-01-01T00:00"
                    "&to=2026-01-01T02:00")
    assert r.status_code == 200 and r.is_streamed
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 2 + 1 + 3 and all(row["verdict"] == "deny" for row in rows)
    assert rows[0]["time_utc"] == "2026-01-01T00:32:10.000Z"  # newest first, UTC
    assert (rows[0]["checkpoint"], rows[0]["reason"], rows[0]["reason_words"]) == (
        "gate-south", "revoked", "revoked")
    assert rows[1]["reason_words"] == "not valid here"
    assert {row["site"] for row in rows} == {"moscow", ""}
    assert all(re.fullmatch(r"[0-9a-f]{32}", row["pass_hash"]) for row in rows)


def test_checkpoint_page_has_recent_scans_health_history_version_and_bundle(fleet):
    send(fleet.c, fleet.north, [], {"bundle_version": 4, "firmware": "0.2.1"}, sent_at=NOW + 5)
    html = fleet.html("/console/checkpoint/gate-north")
    assert "<dt>version</dt><dd>0.2.1</dd>" in html
    assert "<dt>trust bundle</dt><dd>4" in html
    assert html.count('<tr class="scan') == 20  # a page; the rest through the scans link
    history = fleet.store.health_history("gate-north", 10)
    assert [h["bundle_version"] for h in history] == [4, 3]  # newest first, a change each
    assert fleet.c.get("/console/checkpoint/gate-nowhere").status_code == 404


def test_health_history_grows_on_change_or_hourly_not_per_batch(fleet):
    # Each a fresh batch (liveness: a later sent_at), or it would not move the health at all.
    for i in range(3):
        send(fleet.c, fleet.east, [], {"backlog": 5, "clock_state": "trusted"}, sent_at=NOW + i)
    assert len(fleet.store.health_history("gate-east", 10)) == 1
    fleet.now = NOW + 3601
    send(fleet.c, fleet.east, [], {"backlog": 6, "clock_state": "trusted"}, sent_at=NOW + 3601)
    send(fleet.c, fleet.east, [], {"backlog": 6, "clock_state": "floor"}, sent_at=NOW + 3602)
    assert [h["clock_state"] for h in fleet.store.health_history("gate-east", 10)] == [
        "floor", "trusted", "trusted"]


def test_charts_count_scans_and_denials_per_site_and_hour(fleet):
    fleet.now = T0 + 7200
    html = fleet.html("/console/charts")
    data = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>',
                     html, re.S).group(1)
    import json

    data = json.loads(data)
    i = data["labels"].index("01-01 00:00")
    assert data["sites"]["moscow"]["scans"][i] == 34 and data["sites"]["moscow"]["denials"][i] == 3
    assert data["sites"]["(no site)"]["denials"][i] == 3
    assert data["reasons"]["expired"][i] == 4 and data["reasons"]["revoked"][i] == 1
    assert "vendor/chart.umd.min.js" in html


def test_console_pages_reference_no_external_url(fleet):
    for path in ("/console/", "/console/scans", "/console/charts", "/console/pass",
                 "/console/checkpoint/gate-north"):
        html = fleet.html(path)
        refs = re.findall(r'(?:src|href|action)="([^"]*)"', html)
        assert refs and all(ref.startswith(("/", "#")) for ref in refs), (path, refs)
        assert "http://" not in html and "https://" not in html
    for name in ("console.js", "charts.js", "console.css"):
        assert "http" not in (STATIC / name).read_text()


def test_the_vendored_chart_library_is_the_pinned_file_with_its_licence():
    data = (STATIC / "vendor/chart.umd.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == (
        "3f288f4f26882c26b58931fb586a9b4f30370b5de38d69dc005b0bd05b08e113")
    assert data.startswith(b"/*!\n * Chart.js v4.6.2")
    assert "MIT License" in (STATIC / "vendor/chart.js-LICENSE.md").read_text()
    assert "4.6.2" in (STATIC / "vendor/README.md").read_text()


def test_static_files_are_served(fleet):
    r = fleet.c.get("/console/static/vendor/chart.umd.min.js")
    assert r.status_code == 200 and b"Chart.js v4.6.2" in r.data[:200]
    r.close()


def test_site_command_sets_zone_and_checkpoints_and_refuses_unknown_zones(tmp_path, capsys):
    from passgate_collector.cli import main

    db = f"sqlite:///{tmp_path}/c.db"
    assert main(["site", "set", "north", "--tz", "Mars/Olympus", "--db", db]) == 2
    assert "not an IANA time zone" in capsys.readouterr().err
    assert main(["site", "set", "north", "--tz", "Europe/Moscow", "--device", "gate-x",
                 "--db", db]) == 1
    assert "no device 'gate-x'" in capsys.readouterr().err
    assert main(["site", "list", "--db", db]) == 0
    assert capsys.readouterr().out == "north\tEurope/Moscow\t-\n"
