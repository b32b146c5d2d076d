"""Tamper tests: a batch with a bad device signature, a removed row, an edited row, rewritten
history. Each is refused or flagged, raises an alert, and shows on the staff page; clean
uploads verify end to end with the journal's own ``verify_chain``. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector_support import (  # noqa: F401
    T0,
    FakeDevice,
    add_staff,
    cheap_argon2,
    fake_time_token,
    pg_cluster,
    sign_in,
    store,
)
from passgate.journal.schema import ZERO_CHAIN, chain_of, verify_chain
from passgate_collector.web import create_app

CBOR = {"Content-Type": "application/cbor"}
# What schema 5 (the staff console) added, taken away again to make an older database.
SCHEMA_6_UNDO = ("DROP INDEX scans_site_time", "DROP INDEX scans_device_time",
                 "ALTER TABLE scans DROP COLUMN site", "ALTER TABLE devices DROP COLUMN site")

pytestmark = pytest.mark.usefixtures("cheap_argon2")  # page() signs in


@pytest.fixture
def app(store):  # noqa: F811
    return create_app(store, time_token=fake_time_token, now=lambda: T0 + 7200)


@pytest.fixture
def dev(app, store):  # noqa: F811
    d = FakeDevice("gate-east")
    store.add_token(hashlib.sha256(b"t" * 20).digest(), d.device_id, T0, T0 + 86400)
    r = app.test_client().post("/v1/enrol", data=d.enrol_body("t" * 20), headers=CBOR)
    assert r.status_code == 201
    return d


def upload(app, body: bytes):
    r = app.test_client().post("/v1/batches", data=body, headers=CBOR)
    return r.status_code, cbor2.loads(r.data)


def page(app) -> str:
    """The staff page as a signed-in viewer sees it (the page is behind the sign-in)."""
    client = app.test_client()
    store = app.extensions["passgate_auth"].store  # noqa: F811
    if store.user("viewer") is None:
        add_staff(store, "viewer")
    assert sign_in(client, "viewer").status_code == 302
    r = client.get("/")
    assert r.status_code == 200
    return r.get_data(as_text=True)


def alert_rows(html: str) -> list[tuple[str, str]]:
    """(kind, device) of every alert row on the staff page."""
    return re.findall(r'<tr class="alert" data-kind="([a-z_]+)" data-device="([a-z0-9._-]+)"',
                      html)


def stored_rows(store, device: str) -> list[dict]:  # noqa: F811
    return sorted(store.recent_scans(10_000)[device], key=lambda r: r["seq"])


def test_clean_upload_has_no_alerts_and_verifies_end_to_end(app, store, dev):  # noqa: F811
    rows = dev.scans(30)
    for i in range(0, 30, 7):  # uneven batches
        assert upload(app, dev.batch_body(rows[i:i + 7]))[0] == 200
    held = stored_rows(store, dev.device_id)
    assert [r["seq"] for r in held] == list(range(1, 31))
    assert verify_chain(held, ZERO_CHAIN) is None  # the collector's copy is the journal's chain
    assert store.alerts(10) == [] and alert_rows(page(app)) == []
    assert "No tamper alerts." in page(app)


def test_bad_signature_is_refused_and_shown(app, store, dev):  # noqa: F811
    rows = dev.scans(5)
    status, body = upload(app, dev.batch_body(rows, key=Ed25519PrivateKey.generate()))
    assert (status, body["error"]) == (401, "unauthenticated")  # as for an unknown id (issue 11)
    # A valid signature over other bytes: flip one byte of the signed payload.
    good = bytearray(dev.batch_body(rows))
    good[-70] ^= 0x01
    status, body = upload(app, bytes(good))
    assert status in (400, 401)
    assert store.scan_counts() == {}
    assert ("bad_signature", "gate-east") in alert_rows(page(app))
    # The rows stay pending on the device and upload fine once signed properly.
    assert upload(app, dev.batch_body(rows))[0] == 200
    assert store.scan_counts() == {"gate-east": 5}


def test_removed_row_inside_a_batch_is_flagged(app, store, dev):  # noqa: F811
    rows = dev.scans(10)
    assert upload(app, dev.batch_body(rows[:4]))[0] == 200
    tampered = rows[4:5] + rows[6:]  # row 6 deleted on the device before upload
    status, body = upload(app, dev.batch_body(tampered))
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["stored"] * 5  # nothing is lost
    assert [r.get("flag") for r in body["results"]] == [None, "gap", None, None, None]
    (alert,) = store.alerts(10)
    assert alert["kind"] == "chain_break" and "rows 6-6 missing" in alert["detail"]
    html = page(app)
    assert ("chain_break", "gate-east") in alert_rows(html)
    assert 'data-problem="gap"' in html and "rows 6-6 missing before seq 7" in html


def test_removed_rows_between_batches_are_flagged(app, store, dev):  # noqa: F811
    rows = dev.scans(12)
    upload(app, dev.batch_body(rows[:5]))
    # Rows 6-8 deleted; the device sends 9.. with the chain of the last row it still has.
    status, body = upload(app, dev.batch_body(rows[8:], prev=rows[4]["chain"]))
    assert status == 200 and body["results"][0]["flag"] == "gap"
    assert any("rows 6-8 missing" in a["detail"] for a in store.alerts(10))
    assert ("chain_break", "gate-east") in alert_rows(page(app))


def test_edited_row_is_flagged_where_it_was_edited(app, store, dev):  # noqa: F811
    rows = dev.scans(6, verdict="deny", reason="expired")
    edited = [dict(r) for r in rows]
    edited[2]["verdict"], edited[2]["reason"] = "accept", "valid"  # chain left as it was
    status, body = upload(app, dev.batch_body(edited))
    assert status == 200
    assert [r.get("flag") for r in body["results"]] == [None, None, "chain_mismatch", None, None,
                                                        None]
    (alert,) = store.alerts(10)
    assert alert["kind"] == "chain_mismatch" and "row 3" in alert["detail"]
    (flagged,) = store.flagged_scans(10)
    assert (flagged["seq"], flagged["problem"], flagged["verdict"]) == (3, "chain_mismatch",
                                                                         "accept")
    html = page(app)
    assert ("chain_mismatch", "gate-east") in alert_rows(html)
    assert 'data-problem="chain_mismatch"' in html


def test_rewritten_history_is_caught(app, store, dev):  # noqa: F811
    rows = dev.scans(8)
    upload(app, dev.batch_body(rows[:5]))
    # The attacker rewrites row 2 and re-chains everything after it, consistently.
    forged = [dict(r) for r in rows]
    forged[1]["verdict"], forged[1]["reason"] = "deny", "revoked"
    prev = forged[0]["chain"]
    for r in forged[1:]:
        r["chain"] = prev = chain_of(prev, r)
    # Resending the rewritten rows: same nonces, other content -> refused and alerted.
    status, body = upload(app, dev.batch_body(forged[1:5], prev=forged[0]["chain"]))
    assert [r["status"] for r in body["results"]] == ["rejected"] * 4
    assert {r["reason"] for r in body["results"]} == {"nonce_conflict"}
    # Only the new rows, on top of the forged chain: prev_chain disagrees with row 5 held.
    status, body = upload(app, dev.batch_body(forged[5:], prev=forged[4]["chain"]))
    assert status == 200 and body["results"][0]["flag"] == "gap"
    kinds = {a["kind"] for a in store.alerts(20)}
    assert kinds == {"nonce_conflict", "chain_break"}
    assert any("rows were replaced" in a["detail"] for a in store.alerts(20))
    # What the collector first stored is kept untouched.
    assert stored_rows(store, dev.device_id)[1]["verdict"] == "accept"
    assert ("nonce_conflict", "gate-east") in alert_rows(page(app))


def enrolled_device(app, store, device_id: str) -> FakeDevice:  # noqa: F811
    d = FakeDevice(device_id)
    token = ("t-" + device_id).ljust(20, "x")
    store.add_token(hashlib.sha256(token.encode()).digest(), device_id, T0, T0 + 86400)
    assert app.test_client().post("/v1/enrol", data=d.enrol_body(token),
                                  headers=CBOR).status_code == 201
    return d


def rechained(rows: list[dict], prev: bytes, first_seq: int) -> list[dict]:
    """``rows`` renumbered from ``first_seq`` and chained on ``prev``, as someone with write
    access to the journal would leave them (the chain has no key: anyone can recompute it)."""
    out = []
    for i, r in enumerate(rows):
        r = dict(r, seq=first_seq + i)
        r["chain"] = prev = chain_of(prev, r)
        out.append(r)
    return out


def test_what_the_chain_detects_and_what_it_cannot(app, store):  # noqa: F811
    """docs/sync-protocol.md, "What the chain detects": every case it claims stays detected,
    and the one it disclaims (a consistent rewrite of rows never uploaded) is documented by
    this test too: a per-row MAC would turn its last assertion around."""
    kinds = {}

    def alerts_of(device: str) -> list[str]:
        return sorted(a["kind"] for a in store.alerts(100) if a["device_id"] == device)

    # 1. A held row edited and re-sent (same nonce, other content): refused and alerted.
    d = enrolled_device(app, store, "gate-a")
    rows = d.scans(6)
    upload(app, d.batch_body(rows[:5]))
    edited = dict(rows[4], verdict="deny", reason="revoked")
    _, body = upload(app, d.batch_body([edited], prev=rows[3]["chain"]))
    assert body["results"][0]["reason"] == "nonce_conflict"
    kinds["gate-a"] = alerts_of("gate-a")

    # 2. Unsent rows removed, the rest left as they were: the seq gap is flagged.
    d = enrolled_device(app, store, "gate-b")
    rows = d.scans(10)
    upload(app, d.batch_body(rows[:5]))
    _, body = upload(app, d.batch_body(rows[7:], prev=rows[4]["chain"]))
    assert body["results"][0]["flag"] == "gap"
    kinds["gate-b"] = alerts_of("gate-b")

    # 3. A rewrite that straddles what the collector holds: held row 5 changed on the
    # device, rows 6.. re-chained on it. The next batch's prev_chain contradicts row 5 held.
    d = enrolled_device(app, store, "gate-c")
    rows = d.scans(10)
    upload(app, d.batch_body(rows[:5]))
    forged5 = dict(rows[4], verdict="deny", reason="revoked")
    forged5["chain"] = chain_of(rows[3]["chain"], forged5)
    rest = rechained(rows[5:], forged5["chain"], 6)
    _, body = upload(app, d.batch_body(rest, prev=forged5["chain"]))
    assert body["results"][0]["flag"] == "gap"
    kinds["gate-c"] = alerts_of("gate-c")

    # 4. An edit inside a batch without re-chaining: the edited row is flagged.
    d = enrolled_device(app, store, "gate-d")
    rows = [dict(r) for r in d.scans(5)]
    rows[2]["verdict"] = "deny"
    _, body = upload(app, d.batch_body(rows))
    assert [r.get("flag") for r in body["results"]][2] == "chain_mismatch"
    kinds["gate-d"] = alerts_of("gate-d")

    assert kinds == {"gate-a": ["nonce_conflict"], "gate-b": ["chain_break"],
                     "gate-c": ["chain_break"], "gate-d": ["chain_mismatch"]}
    assert {k for k, _ in alert_rows(page(app))} == {"nonce_conflict", "chain_break",
                                                      "chain_mismatch"}

    # 5. The limit: rows 6-7 never uploaded are deleted, 8.. renumbered to 6.. and re-chained
    # on the real row 5. Whoever can write the journal (root, the sync user) can do this, and
    # without a key the collector cannot tell: no alert, no flag.
    d = enrolled_device(app, store, "gate-e")
    rows = d.scans(10)
    upload(app, d.batch_body(rows[:5]))
    rewritten = rechained(rows[7:], rows[4]["chain"], 6)
    _, body = upload(app, d.batch_body(rewritten, prev=rows[4]["chain"]))
    assert [r["status"] for r in body["results"]] == ["stored"] * 3
    assert [r.get("flag") for r in body["results"]] == [None] * 3
    assert alerts_of("gate-e") == []


def test_a_flood_of_forged_batches_cannot_bury_tamper_alerts(app, store, dev):  # noqa: F811
    """Anyone who knows a device id can POST batches with a bad signature. They are counted
    per (device, kind), not listed one by one, so a flood neither grows the database nor
    pushes the real tamper alerts of that device off the staff page."""
    rows = [dict(r) for r in dev.scans(6)]
    rows[2]["verdict"] = "deny"  # edited on the device: chain_mismatch
    assert upload(app, dev.batch_body(rows[:4]))[0] == 200
    assert upload(app, dev.batch_body(rows[5:], prev=rows[3]["chain"]))[0] == 200  # 5 gone
    forger = Ed25519PrivateKey.generate()
    for _ in range(60):
        assert upload(app, dev.batch_body(dev.scans(1), key=forger))[0] == 401
    html = page(app)
    shown = alert_rows(html)
    assert ("chain_mismatch", "gate-east") in shown and ("chain_break", "gate-east") in shown
    assert shown.count(("bad_signature", "gate-east")) == 1  # one line with its count
    row = re.search(r'data-kind="bad_signature" data-device="gate-east">(.*?)</tr>', html, re.S)
    assert '<td class="count">60</td>' in row.group(1)
    summary = {a["kind"]: a for a in store.alert_summary()}
    assert (summary["bad_signature"]["count"], summary["chain_mismatch"]["count"]) == (60, 1)
    assert summary["bad_signature"]["last_at"] >= summary["bad_signature"]["first_at"]
    # Only signed tamper events are kept one by one: the flood added no rows to the list.
    assert sorted(a["kind"] for a in store.alerts(1000)) == ["chain_break", "chain_mismatch"]


def test_alerts_of_a_version_1_database_are_summed_up_on_upgrade(store):  # noqa: F811
    from passgate_collector.store import open_store
    from passgate_collector.store.schema import SCHEMA_VERSION

    with store._tx() as cur:  # back to schema 1: no alert_kinds, one row per alert
        cur.execute("DROP TABLE alert_kinds")
        cur.execute("ALTER TABLE devices DROP COLUMN health_sent_at")  # schema 3
        for stmt in SCHEMA_6_UNDO:
            cur.execute(stmt)
        cur.execute("ALTER TABLE devices DROP COLUMN live_challenge_ms")  # schema 5 (liveness)
        for col in ("update_state", "update_target", "update_reason",  # schema 7
                    "last_seq", "last_chain"):  # schema 11
            cur.execute(f"ALTER TABLE devices DROP COLUMN {col}")
        cur.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
        for i, kind in enumerate(["bad_signature"] * 3 + ["chain_break"]):
            cur.execute(store.sql("INSERT INTO alerts (device_id, kind, detail, created_at) "
                                  "VALUES (?, ?, ?, ?)"), ("gate-old", kind, f"d{i}", T0 + i))
    url = store.url if store.kind == "postgresql" else f"sqlite:///{store.path}"
    upgraded = open_store(url)
    try:
        got = {a["kind"]: a for a in upgraded.alert_summary()}
        assert [a["kind"] for a in upgraded.alert_summary()] == ["chain_break", "bad_signature"]
        bad = got["bad_signature"]
        assert (bad["count"], bad["first_at"], bad["last_at"]) == (3, T0, T0 + 2)
        assert (bad["first_detail"], bad["last_detail"]) == ("d0", "d2")
        version = upgraded._all("SELECT value FROM meta WHERE key = 'schema'")[0][0]
        assert version == str(SCHEMA_VERSION)
        assert upgraded._all("SELECT COUNT(health_sent_at) FROM devices") == [(0,)]
        # Only counted from now on: the old forged-batch rows no longer bury real events.
        assert [a["kind"] for a in upgraded.alerts(1)] == ["chain_break"]
        assert upgraded._all("SELECT kind FROM alerts") == [("chain_break",)]
    finally:
        upgraded.close()


def test_forged_batch_rows_left_by_an_earlier_upgrade_are_dropped(store):  # noqa: F811
    """A database upgraded from schema 1 by an earlier collector still holds its forged-batch
    rows in ``alerts`` (already counted in alert_kinds): they are neither listed nor kept."""
    from passgate_collector.store import open_store

    store.add_alert("gate-old", "chain_break", "real", T0)
    with store._tx() as cur:  # as migration 2 left them: counted, and still there
        for i in range(3):
            cur.execute(store.sql("INSERT INTO alerts (device_id, kind, detail, created_at) "
                                  "VALUES (?, ?, ?, ?)"),
                        ("gate-old", "bad_signature", "f", T0 + i))
    assert [a["kind"] for a in store.alerts(1)] == ["chain_break"]  # not listed, even now
    with store._tx() as cur:
        cur.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
        for stmt in SCHEMA_6_UNDO:
            cur.execute(stmt)
        cur.execute("ALTER TABLE devices DROP COLUMN live_challenge_ms")  # schema 5 (liveness)
        for col in ("update_state", "update_target", "update_reason",  # schema 7
                    "last_seq", "last_chain"):  # schema 11
            cur.execute(f"ALTER TABLE devices DROP COLUMN {col}")
    url = store.url if store.kind == "postgresql" else f"sqlite:///{store.path}"
    upgraded = open_store(url)
    try:
        assert upgraded._all("SELECT kind FROM alerts") == [("chain_break",)]
        assert [(a["kind"], a["count"]) for a in upgraded.alert_summary()] == [("chain_break", 1)]
    finally:
        upgraded.close()


def test_a_seq_jump_is_flagged_only_when_the_missing_rows_are_not_held(app, store, dev):  # noqa: F811
    rows = dev.scans(6)
    assert upload(app, dev.batch_body(rows[2:3]))[0] == 200  # row 3 first (flagged: 1-2 missing)
    store_alerts = len(store.alerts(100))
    # Rows 1, 2, 4: a jump after 2, but the collector holds row 3, and row 4 chains on it.
    _, body = upload(app, dev.batch_body([rows[0], rows[1], rows[3]]))
    assert [r.get("flag") for r in body["results"]] == [None, None, None]
    assert len(store.alerts(100)) == store_alerts
    # Rows 5 and 7 with 6 held nowhere: row 7 is flagged and the gap named.
    rows7 = dev.scans(1)
    _, body = upload(app, dev.batch_body([rows[4], rows7[0]]))
    assert [r.get("flag") for r in body["results"]] == [None, "gap"]
    assert "rows 6-6 missing before seq 7" in store.alerts(1)[0]["detail"]


@pytest.mark.parametrize("lang", ["ru", "tt"])
def test_tamper_alerts_are_said_in_the_pages_language(app, store, dev, lang):  # noqa: F811
    """Every kind of tamper alert the collector raises, made by real uploads, is shown in the
    page's language on the staff page and the console: its kind and its detail, with the
    numbers kept (issue 14). The stored detail stays English (the database's language)."""
    rows = dev.scans(12)
    upload(app, dev.batch_body(rows[:3]))
    upload(app, dev.batch_body(rows[5:7], prev=rows[2]["chain"]))  # rows 4-5 removed
    edited = [dict(r) for r in rows[7:9]]
    edited[0]["verdict"] = "deny"  # chain left as it was: row 8 edited
    upload(app, dev.batch_body(edited, prev=rows[6]["chain"]))
    forged = dict(rows[1], reason="revoked")  # row 2 again with other content
    upload(app, dev.batch_body([forged], prev=rows[0]["chain"]))
    upload(app, dev.batch_body(rows[9:], key=Ed25519PrivateKey.generate()))
    details = {a["detail"] for a in store.alerts(20)} | {
        s["last_detail"] for s in store.alert_summary()}
    kinds = {a["kind"] for a in store.alerts(20)} | {s["kind"] for s in store.alert_summary()}
    assert kinds == {"chain_break", "chain_mismatch", "nonce_conflict", "bad_signature"}
    client = app.test_client()
    add_staff(store, "viewer")
    assert sign_in(client, "viewer").status_code == 302
    for path in (f"/?lang={lang}", f"/console/?lang={lang}"):
        html = client.get(path).get_data(as_text=True)
        for detail in details:
            assert detail not in html, (path, detail)  # said again, not shown as stored
        for number in ("4-5", "seq 6" if lang == "en" else "6", "8"):
            assert number in html, (path, number)
    # A detail the collector does not know (an older version's words) is shown as it is.
    from passgate_collector.console.words import detail_words
    assert detail_words("some older words") == "some older words"
