"""The scan journal: rows, hash chain, upload queue, pruning, faults, two processes, privacy."""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import subprocess
import sys
import textwrap

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.clock.clock import ClockState, TimeReading
from passgate.errors import JournalError
from passgate.journal.journal import ZERO_CHAIN, Journal, ScanRecord, verify_chain
from passgate.journal.schema import encode_row
from passgate.passes.verdict import Reason

KEY = bytes(range(32))
T0 = 1_775_000_000.0


def rec(t: float = T0, verdict: str = "accept", reason=Reason.VALID, pass_hash=b"h" * 16,
        zone: str = "lobby", purpose: str | None = "work", flags=()) -> ScanRecord:
    return ScanRecord(nonce=os.urandom(16), scanned_at=t, clock_state=ClockState.TRUSTED,
                      verdict=verdict, reason=reason, pass_hash=pass_hash, kid="0a1b2c3d4e5f6071",
                      purpose=purpose, zone=zone, flags=flags)


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.db", KEY, "dev-1") as j:
        yield j


def raw(path):
    """A plain connection for inspecting or tampering with the file behind the journal."""
    return sqlite3.connect(path, isolation_level=None)


def test_record_returns_seq_and_round_trips(journal):
    r = rec(t=T0 + 0.1234, flags=("stale", "clock_untrusted", "stale"))
    assert journal.record(r) == 1
    assert journal.record(rec(verdict="deny", reason=Reason.EXPIRED, pass_hash=None)) == 2
    first, second = journal.pending(10)
    assert (first.seq, first.nonce, first.t_ms) == (1, r.nonce, 1775000000123)
    assert first.scanned_at == 1775000000.123
    assert (first.clock_state, first.verdict, first.reason) == ("trusted", "accept", "valid")
    assert first.flags == ("clock_untrusted", "stale")  # sorted, no duplicates
    assert (first.pass_hash, first.kid) == (b"h" * 16, "0a1b2c3d4e5f6071")
    assert (first.purpose, first.zone) == ("work", "lobby")
    assert first.status == "pending" and len(first.chain) == 32
    assert (second.verdict, second.reason, second.pass_hash) == ("deny", "expired", None)


def test_pragmas(journal):
    db = journal._db  # the journal's own connection: synchronous is per connection
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.parametrize("bad", [
    {"nonce": b"short"}, {"pass_hash": b"x" * 32}, {"verdict": "maybe"}, {"reason": "nope"},
    {"clock_state": "sundial"}, {"flags": "stale"}, {"flags": ("Bad Flag",)},
])
def test_scan_record_refuses_malformed_fields(bad):
    fields = dict(nonce=os.urandom(16), scanned_at=T0, clock_state="trusted", verdict="accept",
                  reason="valid", pass_hash=None, kid=None, purpose=None, zone="lobby")
    with pytest.raises(ValueError):
        ScanRecord(**{**fields, **bad})


def test_pass_hash_is_keyed_hmac_truncated(journal, tmp_path):
    expected = hmac.new(KEY, b"pass-id-1", hashlib.sha256).digest()[:16]
    assert journal.pass_hash(b"pass-id-1") == expected
    with Journal(tmp_path / "other.db", b"another fleet key!") as other:
        assert other.pass_hash(b"pass-id-1") != expected
    with pytest.raises(TypeError):
        journal.pass_hash("pass-id-1")


def test_chain_follows_documented_encoding(journal):
    """Recompute row 1 and 2 from the module docstring's formula, without encode_row."""
    journal.record(rec(flags=("stale",)))
    journal.record(rec(verdict="deny", reason=Reason.REVOKED, pass_hash=None, purpose=None))
    r1, r2 = journal.pending(2)

    def doc(r):
        return cbor2.dumps([1, r.seq, r.nonce, r.t_ms, r.clock_state, r.verdict, r.reason,
                            r.pass_hash, r.kid, r.purpose, r.zone, list(r.flags)], canonical=True)

    assert r1.chain == hashlib.sha256(bytes(32) + doc(r1)).digest()
    assert r2.chain == hashlib.sha256(r1.chain + doc(r2)).digest()
    assert encode_row(r2) == encode_row({f: getattr(r2, f) for f in (
        "seq", "nonce", "t_ms", "clock_state", "verdict", "reason", "pass_hash", "kid",
        "purpose", "zone", "flags")})


def test_verify_chain_finds_edited_and_removed_rows(journal):
    for i in range(5):
        journal.record(rec(t=T0 + i))
    rows = journal.pending(10)
    assert verify_chain(rows, ZERO_CHAIN) is None and journal.verify() is None
    assert verify_chain(rows[2:], rows[1].chain) is None
    assert verify_chain(rows[:2] + rows[3:], ZERO_CHAIN) == 2  # row 3 removed
    assert verify_chain(rows, b"\x01" * 32) == 0  # wrong predecessor
    db = raw(journal.path)
    db.execute("UPDATE scans SET reason = 'expired' WHERE seq = 3")
    assert journal.verify() == 3
    db.execute("UPDATE scans SET reason = 'valid' WHERE seq = 3")
    assert journal.verify() is None
    db.execute("DELETE FROM scans WHERE seq = 4")
    assert journal.verify() == 5
    db.close()


def test_reopen_continues_sequence_and_chain(tmp_path):
    path = tmp_path / "journal.db"
    with Journal(path, KEY) as j:
        j.record(rec())
        j.record(rec())
    with Journal(path, KEY) as j:
        assert j.record(rec()) == 3
        assert j.verify() is None and j.pending_count() == 3
        assert j.device_id == ""
    with Journal(path, KEY, "gate-2") as j:
        pass
    with Journal(path, KEY) as j:
        assert j.device_id == "gate-2"  # remembered in meta


def test_upload_queue(journal):
    for i in range(6):
        journal.record(rec(t=T0 + i))
    assert [r.seq for r in journal.pending(4)] == [1, 2, 3, 4]
    assert journal.mark_uploaded([2, 1, 2, 99], at=T0 + 60) == 2
    assert journal.mark_uploaded([1], at=T0 + 61) == 0  # already uploaded: time not moved
    assert [r.seq for r in journal.pending(10)] == [3, 4, 5, 6]
    assert journal.pending_count() == 4
    assert journal.dead_letter([4, 1], "collector: unknown zone", at=T0 + 70) == 1  # 1 is uploaded
    assert [r.seq for r in journal.pending(10)] == [3, 5, 6]
    [dead] = journal.dead_letters()
    assert (dead.seq, dead.status, dead.dead_at) == (4, "dead", T0 + 70)
    assert dead.dead_reason == "collector: unknown zone"
    assert journal.dead_letter_count() == 1
    assert journal.mark_uploaded([4], at=T0 + 80) == 0
    statuses = {r.seq: r.status for r in journal.since(T0)}
    assert statuses == {1: "uploaded", 2: "uploaded", 3: "pending", 4: "dead", 5: "pending",
                        6: "pending"}
    assert journal.since(T0)[0].uploaded_at == T0 + 60
    assert journal.verify() is None  # the moved row still links the chain
    assert journal.chain_before(5) == dead.chain
    assert journal.record(rec()) == 7  # seq never reused


def test_prune_keeps_pending_and_dead_letters_and_the_chain(journal):
    for i in range(10):
        journal.record(rec(t=T0 + i * 100))
    journal.mark_uploaded([1, 2, 3, 5, 6, 7, 8, 9, 10], at=T0 + 5000)  # 4 still pending
    journal.dead_letter([4], "refused")
    chain8 = journal.since(0)[7].chain
    # retention 250 s at T0+1000: rows scanned before T0+750 (1-8) are old enough.
    assert journal.prune(now=T0 + 1000, retention_s=250, batch=2) == 7  # 1-8 except 4
    assert [r.seq for r in journal.since(0)] == [4, 9, 10]
    assert journal.dead_letter_count() == 1 and journal.verify() is None
    assert journal.chain_before(5) == journal.dead_letters()[0].chain
    with pytest.raises(LookupError):
        journal.chain_before(6)  # row 5 was pruned and only the last pruned chain is kept
    assert journal.chain_before(9) == chain8  # the last pruned row's chain is kept in meta
    assert journal.chain_before(10) == journal.since(0)[1].chain
    # A pending row blocks pruning of everything after it: nothing is evicted out of order.
    journal.record(rec(t=T0 + 1100))
    journal.record(rec(t=T0 + 1200))
    journal.mark_uploaded([12], at=T0 + 5000)
    assert journal.prune(now=T0 + 99_999, retention_s=1) == 2  # 9, 10; pending 11 stops it
    assert [r.seq for r in journal.since(0)] == [4, 11, 12]
    assert journal.verify() is None


def test_prune_everything_then_record_continues_the_chain(journal):
    for i in range(3):
        journal.record(rec(t=T0 + i))
    journal.mark_uploaded([1, 2, 3], at=T0 + 10)
    last_chain = journal.since(0)[-1].chain
    assert journal.prune(now=T0 + 10_000, retention_s=60) == 3
    assert journal.since(0) == [] and journal.chain_before(4) == last_chain
    assert journal.record(rec()) == 4
    assert journal.verify() is None
    assert verify_chain(journal.pending(1), last_chain) is None


def test_since_limit_and_iteration(journal):
    for i in range(12):
        journal.record(rec(t=T0 + i, verdict="deny" if i % 3 == 0 else "accept",
                           reason=Reason.EXPIRED if i % 3 == 0 else Reason.VALID))
    assert [r.seq for r in journal.since(T0 + 5, limit=3)] == [10, 11, 12]
    assert [r.seq for r in journal.since(T0 + 9)] == [10, 11, 12]
    assert [r.seq for r in journal.iter_since(T0, batch=5)] == list(range(1, 13))
    assert journal.counts(T0 + 3) == {("deny", "expired"): 3, ("accept", "valid"): 6}


def test_last_accepted_only_counts_accepts_in_zone(journal):
    h = journal.pass_hash(b"p")
    journal.record(rec(t=T0, pass_hash=h))
    journal.record(rec(t=T0 + 10, pass_hash=h, verdict="deny", reason=Reason.ALREADY_USED))
    journal.record(rec(t=T0 + 20, pass_hash=h, zone="garage"))
    assert journal.last_accepted(h, "lobby", T0 - 60, T0 + 60) == T0
    assert journal.last_accepted(h, "lobby", T0, T0 + 60) is None  # after is exclusive
    assert journal.last_accepted(journal.pass_hash(b"q"), "lobby", 0, T0 + 60) is None


def test_disk_full_raises_journal_error_and_recovers(journal):
    journal.record(rec())
    db = journal._db  # fault injection on the journal's own connection
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(JournalError, match="full"):
        for _ in range(500):  # fills the last free page, then fails
            journal.record(rec(flags=("x" * 32,)))
    written = journal.pending_count()
    assert not db.in_transaction
    with pytest.raises(JournalError):
        journal.record(rec())
    assert journal.pending_count() == written  # nothing half-written
    db.execute("PRAGMA max_page_count = 1073741823")  # the disk has room again
    assert journal.record(rec()) == written + 1
    assert journal.verify() is None
    assert raw(journal.path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_read_only_database_raises_and_recovers(journal):
    journal.record(rec())
    journal._db.execute("PRAGMA query_only = 1")  # as a read-only remount would (tests run as root)
    with pytest.raises(JournalError, match="readonly"):
        journal.record(rec())
    journal._db.execute("PRAGMA query_only = 0")
    assert journal.record(rec()) == 2


def test_lost_connection_is_reopened(journal):
    journal.record(rec())
    journal._db.close()  # e.g. the storage went away under the connection
    with pytest.raises(JournalError):
        journal.record(rec())
    assert journal.record(rec()) == 2 and journal.verify() is None


def test_cannot_open_or_create(tmp_path):
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(JournalError):
        Journal(tmp_path / "dir.db", KEY)
    with pytest.raises(JournalError):
        Journal.open_readonly(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(JournalError):  # the state folder cannot be made
        Journal(tmp_path / "a-file" / "j.db", KEY)
    with pytest.raises(ValueError):
        Journal(tmp_path / "j.db", b"short")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "j.db"
    Journal(path, KEY).close()
    raw(path).execute("PRAGMA user_version = 99")
    with pytest.raises(JournalError, match="newer"):
        Journal(path, KEY)


def test_readonly_reader_sees_writer_rows(journal):
    journal.record(rec())
    reader = Journal.open_readonly(journal.path)
    assert reader.device_id == "dev-1" and [r.seq for r in reader.since(0)] == [1]
    journal.record(rec())
    assert reader.pending_count() == 2
    with pytest.raises(JournalError):
        reader.record(rec())
    reader.close()


def test_two_connections_interleave(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path, KEY) as scanner, Journal(path, KEY) as sync:
        for i in range(20):
            scanner.record(rec(t=T0 + i))
            if i % 4 == 3:
                batch = sync.pending(3)
                sync.mark_uploaded([r.seq for r in batch], at=T0 + i)
        assert sync.pending_count() == 20 - 15 and scanner.verify() is None


WRITER = textwrap.dedent("""
    import os, sys, time
    from passgate.journal.journal import Journal, ScanRecord
    j = Journal(sys.argv[1], bytes(range(32)))
    for i in range(int(sys.argv[2])):
        j.record(ScanRecord(os.urandom(16), 1775000000.0 + i, "trusted", "accept", "valid",
                            j.pass_hash(b"%d" % i), None, "work", "lobby"))
        time.sleep(0.002)  # a scan stream, so the two processes overlap for a while
    print("done")
""")


def test_scanner_and_sync_processes_share_the_file(tmp_path):
    """The scanner process writes while this process (the sync agent) drains and prunes."""
    path, n = tmp_path / "j.db", 300
    Journal(path, KEY).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)],
                              stdout=subprocess.PIPE, text=True)
    uploaded, overlapped = [], 0
    with Journal(path, KEY) as sync:
        while writer.poll() is None or sync.pending_count():
            batch = sync.pending(50)
            overlapped += bool(batch) and writer.poll() is None
            uploaded += [r.seq for r in batch]
            sync.mark_uploaded([r.seq for r in batch], at=T0 + 10**6)
            sync.prune(now=T0 + 10, retention_s=0)
        assert writer.wait(timeout=60) == 0 and writer.stdout.read().strip() == "done"
        assert uploaded == list(range(1, n + 1))  # each row once, in order
        assert overlapped >= 2  # batches were drained while the writer was still writing
        assert sync.verify() is None and sync.pending_count() == 0
        assert raw(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_no_pass_id_hint_or_issuer_in_database_or_wal(tmp_path):
    from passgate.issuing.issuer import Issuer
    from passgate.passes.truststore import IssuerKey, TrustStore
    from passgate.passes.verify import Verifier

    key = Ed25519PrivateKey.generate()
    issuer_name, hint, pass_id = "Zorbatron Municipality", "Qwynn", b"PASSID-7f3a91"
    issuer = Issuer(key, issuer_name)
    verifier = Verifier(TrustStore([IssuerKey.from_public(key.public_key(), issuer=issuer_name)]))
    text = issuer.issue("work", ["lobby"], int(T0) - 60, 3600, hint=hint, pass_id=pass_id)
    path = tmp_path / "journal.db"
    j = Journal(path, KEY)
    for i in range(3):
        verdict = verifier.check(text, T0 + i, "lobby")
        assert verdict.accepted and verdict.hint == hint and verdict.pass_id == pass_id
        reading = TimeReading(T0 + i, ClockState.TRUSTED)
        j.record(ScanRecord.of(verdict, reading, "lobby", os.urandom(16),
                               j.pass_hash(verdict.pass_id), flags=("stale",)))
    wal = tmp_path / "journal.db-wal"
    assert wal.exists() and wal.stat().st_size > 0  # rows are still (also) in the WAL
    blobs = path.read_bytes() + wal.read_bytes()
    for secret in (pass_id, pass_id.hex().encode(), hint.encode(), issuer_name.encode(),
                   text.encode(), text[4:40].encode()):
        assert secret not in blobs
    assert j.pass_hash(pass_id) in blobs  # the check would have seen stored bytes
    j.close()


KILLED_WRITER = textwrap.dedent("""
    import os, sys
    from passgate.journal.journal import Journal, ScanRecord
    j = Journal(sys.argv[1], bytes(range(32)))
    while True:
        rec = ScanRecord(os.urandom(16), 1775000000.0, "trusted", "accept", "valid", None,
                         None, "work", "lobby")
        seq = j.record(rec)
        print(seq, rec.nonce.hex(), flush=True)  # "signalled": only after record() returned
""")


def test_sigkill_loses_no_acknowledged_row(tmp_path):
    path = tmp_path / "j.db"
    acked: dict[int, str] = {}
    for kill_after in (5, 40, 17):
        writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                                  stdout=subprocess.PIPE, text=True)
        for _ in range(kill_after):
            seq, nonce = writer.stdout.readline().split()
            acked[int(seq)] = nonce
        writer.kill()
        writer.wait(timeout=30)
    with Journal(path, KEY) as j:
        stored = {r.seq: r.nonce.hex() for r in j.since(0)}
        assert all(stored.get(seq) == nonce for seq, nonce in acked.items())
        assert sorted(stored) == list(range(1, len(stored) + 1))  # no gaps, no duplicates
        assert j.verify() is None
        assert j.record(rec()) == len(stored) + 1
    assert raw(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_journal_file_is_group_writable_whatever_the_umask(tmp_path):
    """Scanner (passgate) writes, sync agent (group passgate) marks uploaded: both need write."""
    import os
    import stat

    old = os.umask(0o077)
    try:
        path = tmp_path / "state" / "journal.sqlite"
        j = Journal(path, b"k" * 32, "dev")
        j.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660


def test_sync_side_never_creates_the_journal(tmp_path):
    from passgate.errors import JournalError

    with pytest.raises(JournalError, match="no journal yet"):
        Journal(tmp_path / "journal.sqlite", b"k" * 32, create=False)
    assert not (tmp_path / "journal.sqlite").exists()


def test_new_nonces_are_16_bytes_time_ordered_and_unique(monkeypatch):
    """``new_nonce``: 48-bit big-endian milliseconds then 80 random bits (docs/sync-protocol.md
    section 2): a device's nonces sort by the time they were made, and never repeat."""
    import inspect

    from passgate.checkpoint.loop import Checkpoint
    from passgate.journal.schema import NONCE_TIME_BYTES, new_nonce

    made = [new_nonce(1_775_000_000_000 + i // 3) for i in range(3000)]
    assert all(len(n) == 16 for n in made) and len(set(made)) == len(made)
    assert [n[:NONCE_TIME_BYTES] for n in made] == sorted(n[:NONCE_TIME_BYTES] for n in made)
    assert made[0][:NONCE_TIME_BYTES] == (1_775_000_000_000).to_bytes(6, "big")
    assert len({n[NONCE_TIME_BYTES:] for n in made}) == len(made)  # the random part varies
    assert new_nonce(2 ** 48 + 5)[:NONCE_TIME_BYTES] == (5).to_bytes(6, "big")  # wraps
    monkeypatch.setattr("time.time_ns", lambda: 1_775_000_000_123_456_789)
    assert new_nonce()[:NONCE_TIME_BYTES] == (1_775_000_000_123).to_bytes(6, "big")
    # The checkpoint makes its rows' nonces with it unless a test gives another maker.
    assert inspect.signature(Checkpoint).parameters["nonce"].default is new_nonce
