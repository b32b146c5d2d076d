"""Holder-bound passes at the collector (issue 16): the same live code seen at two checkpoints
raises a ``live_code_reused`` alert beside "possible sharing", and the staff page shows how
each recent scan's pass was shown (live code, bound pass shown bare, or neither)."""

from __future__ import annotations

import re

from collector_support import (  # noqa: F401
    T0,
    FakeDevice,
    cheap_argon2,
    fake_time_token,
    pass_hash,
    pg_cluster,
    staff_login,
    store,
)
from passgate_collector.web import Settings, create_app
from test_collector_staff import NOW, enrol, send

LIVE = "live_" + "ab" * 12
OTHER_LIVE = "live_" + "cd" * 12


def test_same_live_code_at_two_checkpoints_is_an_alert(store, staff_login):  # noqa: F811
    app = create_app(store, time_token=fake_time_token, now=lambda: NOW,
                     settings=Settings(sharing_window_s=120, recent_per_device=5))
    c = staff_login(app.test_client(), store)
    north, south = FakeDevice("gate-north"), FakeDevice("gate-south")
    enrol(c, store, north)
    enrol(c, store, south)
    ph, other = pass_hash(7001), pass_hash(7002)
    north.scan(T0 + 100, ph=ph, flags=("live", LIVE))
    north.scan(T0 + 200, ph=other, flags=("live", OTHER_LIVE))
    north.scan(T0 + 300, ph=pass_hash(7003), flags=("bound",))
    # Same pass, same live code 20 s later at another door (denied there: it went stale).
    south.scan(T0 + 120, verdict="deny", reason="live_code_stale", ph=ph, flags=("live", LIVE))
    # Same pass, a *new* live code: possible sharing at most, not a reused code.
    south.scan(T0 + 230, ph=other, flags=("live", "live_" + "ef" * 12))
    send(c, north, north.rows)
    send(c, south, south.rows)
    kinds = [(a["device_id"], a["kind"]) for a in store.alert_summary()]
    assert kinds == [("gate-south", "live_code_reused")]
    events = [a for a in store.alerts(10) if a["kind"] == "live_code_reused"]
    assert len(events) == 1 and LIVE in events[0]["detail"] and "gate-north" in events[0]["detail"]
    assert "20.0 s apart" in events[0]["detail"]
    # Both pairs are still possible sharing.
    assert len(store.shared_passes(120_000, 0, 10)) == 2
    html = c.get("/").get_data(as_text=True)
    assert len(re.findall(r'class="live-reused alert"', html)) == 1
    north_table = re.search(r'data-device="gate-north">(.*?)</table>', html.split(
        'id="recent"')[1], re.S).group(1)
    shown = re.findall(r'<td class="binding">(.*?)</td>', north_table)
    assert shown == ["bound pass, bare", "live code", "live code"]
    # The console's scan list says it too, in the page's language; the alert is in words.
    scans = c.get("/console/scans").get_data(as_text=True)  # the 5 scans, newest first
    assert re.findall(r'<span class="binding">(.*?)</span>', scans) == [
        "bound pass, bare", "live code", "live code", "live code", "live code"]
    ru = c.get("/console/?lang=ru").get_data(as_text=True)
    assert "один живой код на двух пунктах" in ru


def test_resent_batch_raises_no_second_alert(store, staff_login):  # noqa: F811
    app = create_app(store, time_token=fake_time_token, now=lambda: NOW)
    c = staff_login(app.test_client(), store)
    north, south = FakeDevice("gate-north"), FakeDevice("gate-south")
    enrol(c, store, north)
    enrol(c, store, south)
    north.scan(T0 + 100, ph=pass_hash(1), flags=("live", LIVE))
    south.scan(T0 + 105, ph=pass_hash(1), flags=("live", LIVE))
    send(c, north, north.rows)
    send(c, south, south.rows)
    send(c, south, south.rows)  # the agent did not get the answer and sends again
    assert [a["count"] for a in store.alert_summary()] == [1]


def test_a_live_code_shown_at_many_doors_raises_bounded_alerts(store):  # noqa: F811
    """One live code at 40 checkpoints within a minute: each scan is alerted against at most
    PAIRS_PER_SCAN earlier scans of it (the earliest), as its pairs are, so a screenshot passed
    around a city costs a batch a bounded number of statements; a flag that only looks like
    it (another character for its ``_``, or another case: SQLite's LIKE ignores case) raises
    nothing, and cannot fill the look-up's places ahead of the real ones."""
    from passgate_collector.store.pairs import PAIRS_PER_SCAN

    def ingest(dev: FakeDevice, rows: list[dict], now: int) -> None:
        with store.batch(dev.device_id) as tx:
            tx.insert_scans([(r, None) for r in rows], now)

    # Look-alikes of "live_ab...", stored before every door: the same hash, not the same code.
    for n, flag in enumerate([LIVE.replace("_", "x"), LIVE.upper(), "LIVE_" + LIVE[5:]]):
        lookalike = FakeDevice(f"gate-lookalike-{n}")
        ingest(lookalike, [lookalike.scan(T0 - 60 + n, ph=pass_hash(9),
                                          flags=tuple(sorted(("live", flag))))], T0 + 90)
    doors = [FakeDevice(f"gate-{i:02d}") for i in range(40)]
    for i, dev in enumerate(doors):
        ingest(dev, [dev.scan(T0 + i, ph=pass_hash(9), flags=("live", LIVE))], T0 + 100 + i)
    counts = {a["device_id"]: a["count"] for a in store.alert_summary()
              if a["kind"] == "live_code_reused"}
    assert counts == {f"gate-{i:02d}": min(i, PAIRS_PER_SCAN) for i in range(1, 40)}
    last = [a["detail"] for a in store.alerts(1000)
            if a["kind"] == "live_code_reused" and a["device_id"] == "gate-39"]
    assert sorted(d.split(" also at ")[1].split(",")[0] for d in last) == [
        f"gate-{i:02d}" for i in range(PAIRS_PER_SCAN)]  # the earliest ones
