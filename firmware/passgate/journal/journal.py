"""The durable scan journal: one SQLite row per scan, committed before the verdict is shown.

SQLite in WAL mode with ``synchronous=FULL``: a row whose :meth:`Journal.record` returned
survives a crash or power loss (if the storage flushes honestly). Every database error
becomes :class:`~passgate.errors.JournalError` after the transaction is rolled back, and the
next call reopens the connection if needed, so the journal recovers when the fault clears
(that plumbing is :class:`passgate.journal.db.JournalDB`, the base class).

Two processes use the file: the scanner (``record``, anti-passback look-ups) and the sync
agent (``pending``, ``mark_uploaded``, ``dead_letter``, ``prune``). Every transaction is
short and ``busy_timeout`` waits out the other side's lock.

Tables (``journal_schema.DDL``): ``scans`` (every scan; ``uploaded_at`` NULL while pending),
``dead_letter`` (rows the collector refused for good, moved there, kept forever) and
``meta`` (``pruned_seq``/``pruned_chain``: the last pruned row, so the chain of what is
left stays verifiable; ``device_id``). The row encoding and hash chain are documented in
:mod:`passgate.journal.schema`, which the collector can import on its own.

Only a keyed hash of the pass id is stored (:meth:`Journal.pass_hash`, a fleet-wide key so
the collector can match one pass across checkpoints); never the pass, its id or its hint.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from passgate.errors import ArgumentError, RowPruned
from passgate.journal.db import JournalDB
from passgate.journal.schema import (
    COLUMNS,
    SELECT_ALL,
    ZERO_CHAIN,
    Row,
    ScanRecord,
    chain_of,
    encode_row,
    ms_bound,
    row_with_status,
    seq_chunks,
    to_ms,
    verify_chain,
)

__all__ = ["Journal", "Row", "ScanRecord", "verify_chain", "encode_row", "chain_of", "ZERO_CHAIN"]


class Journal(JournalDB):
    """The scan journal at ``path`` (created if missing, unless ``readonly``).

    ``hash_key`` is the fleet-wide secret for :meth:`pass_hash` (at least 16 bytes; ``None``
    only for a read-only journal). ``device_id`` is remembered in the ``meta`` table.
    ``busy_timeout_ms`` bounds how long a call waits for the other process's lock.
    Raises :class:`JournalError` if the database cannot be opened or created; with
    ``connect=False`` it is not opened here but by the first call (which raises then, and
    every later call tries again: the scanner starts with a fault rather than not at all).
    Usable as a context manager; :meth:`close` is idempotent. Thread-safe (one lock).
    """

    def __init__(self, path: str | Path, hash_key: bytes | None, device_id: str = "", *,
                 readonly: bool = False, create: bool = True,
                 busy_timeout_ms: int = 2000, connect: bool = True) -> None:
        if not readonly and (not isinstance(hash_key, bytes) or len(hash_key) < 16):
            raise ArgumentError("hash_key must be at least 16 bytes")
        super().__init__(path, device_id, readonly=readonly, create=create,
                         busy_timeout_ms=busy_timeout_ms)
        self._key = hash_key
        if connect:
            self._run("open", lambda db: None, write=False)

    @classmethod
    def open_readonly(cls, path: str | Path) -> Journal:
        """Open an existing journal for reading only (``passgate log``); never creates it."""
        return cls(path, None, readonly=True)

    # -- writing (scanner) -------------------------------------------------------------

    def pass_hash(self, pass_id: bytes) -> bytes:
        """HMAC-SHA256(fleet hash key, pass id) truncated to 16 bytes: what rows store."""
        if self._key is None:
            raise ArgumentError("a read-only journal has no hash key")
        if not isinstance(pass_id, bytes):
            raise TypeError("pass_id must be bytes")
        return hmac.new(self._key, pass_id, hashlib.sha256).digest()[:16]

    def record(self, rec: ScanRecord) -> int:
        """Append ``rec`` and return its sequence number, only after the COMMIT is durable.

        Raises :class:`JournalError` (nothing written) if the database cannot be written:
        the caller must then not signal an accept.
        """
        def insert(db: sqlite3.Connection) -> int:
            last, prev = self._head(db)
            fields = {
                "seq": last + 1, "nonce": rec.nonce, "t_ms": to_ms(rec.scanned_at),
                "clock_state": rec.clock_state, "verdict": rec.verdict, "reason": rec.reason,
                "pass_hash": rec.pass_hash, "kid": rec.kid, "purpose": rec.purpose,
                "zone": rec.zone, "flags": rec.flags,
            }
            db.execute(
                f"INSERT INTO scans ({COLUMNS}) VALUES (:seq, :nonce, :t_ms, :clock_state,"
                " :verdict, :reason, :pass_hash, :kid, :purpose, :zone, :flags_text, :chain)",
                {**fields, "flags_text": " ".join(rec.flags), "chain": chain_of(prev, fields)},
            )
            return last + 1

        if not isinstance(rec, ScanRecord):
            raise TypeError("record() takes a ScanRecord")
        return self._run("record", insert)

    def _pruned(self, db: sqlite3.Connection) -> tuple[int, bytes]:
        got = dict(db.execute(
            "SELECT key, value FROM meta WHERE key IN ('pruned_seq', 'pruned_chain')"))
        return int(got.get("pruned_seq", 0)), bytes(got.get("pruned_chain", ZERO_CHAIN))

    def _head(self, db: sqlite3.Connection, before: int | None = None) -> tuple[int, bytes]:
        """(seq, chain) of the newest row (below ``before``): in ``scans``, ``dead_letter``
        or pruned; (0, zeros) for an empty journal."""
        best = self._pruned(db)
        if before is not None and best[0] >= before:
            best = (0, ZERO_CHAIN)
        limit = 2**62 if before is None else before
        for table in ("scans", "dead_letter"):
            got = db.execute(f"SELECT seq, chain FROM {table} WHERE seq < ? "
                             "ORDER BY seq DESC LIMIT 1", (limit,)).fetchone()
            if got and got[0] > best[0]:
                best = (got[0], bytes(got[1]))
        return best

    def last_accepted(self, pass_hash: bytes, zone: str, after: float,
                      until: float) -> float | None:
        """Time of the newest accepted scan of ``pass_hash`` in ``zone`` with
        ``after < scanned_at <= until``, or ``None``. Used by anti-passback."""
        where = "verdict = 'accept' AND pass_hash = ? AND zone = ? AND t_ms > ? AND t_ms <= ?"
        args = (pass_hash, zone, to_ms(after), to_ms(until))
        got = self._run("look-up", lambda db: db.execute(
            f"SELECT max(t) FROM (SELECT max(t_ms) AS t FROM scans WHERE {where}"
            f" UNION ALL SELECT max(t_ms) FROM dead_letter WHERE {where})", args * 2,
        ).fetchone()[0], write=False)
        return None if got is None else got / 1000

    # -- upload support (sync agent) ---------------------------------------------------

    def pending(self, limit: int = 500) -> list[Row]:
        """Rows not yet uploaded, oldest first (by seq), at most ``limit``."""
        return self._run("read", lambda db: [Row.from_db(r) for r in db.execute(
            f"SELECT {COLUMNS} FROM scans WHERE uploaded_at IS NULL ORDER BY seq LIMIT ?",
            (int(limit),))], write=False)

    def pending_count(self) -> int:
        return self._run("read", lambda db: int(db.execute(
            "SELECT count(*) FROM scans WHERE uploaded_at IS NULL").fetchone()[0]), write=False)

    def chain_before(self, seq: int) -> bytes:
        """The chain value of the row before ``seq`` (the ``prev`` to verify ``seq`` with).

        Raises ``LookupError`` when that row was pruned and its chain is no longer kept.
        """
        found, chain = self._run("read", lambda db: self._head(db, before=seq), write=False)
        if found != seq - 1:
            raise RowPruned(f"the row before seq {seq} is no longer in the journal")
        return chain

    def mark_uploaded(self, seqs: Iterable[int], at: float) -> int:
        """Mark rows the collector confirmed as uploaded at time ``at``; returns how many
        changed (already uploaded or unknown seqs are ignored)."""
        chunks = list(seq_chunks(seqs))
        if not chunks:  # no write lock for nothing: the scanner may be waiting for it
            return 0

        def mark(db: sqlite3.Connection) -> int:
            n = 0
            for chunk in chunks:
                n += db.execute(
                    "UPDATE scans SET uploaded_at = ? WHERE uploaded_at IS NULL AND seq IN "
                    f"({','.join('?' * len(chunk))})", [to_ms(at), *chunk]).rowcount
            return n
        return self._run("mark uploaded", mark)

    def dead_letter(self, seqs: Iterable[int], reason: str, at: float | None = None) -> int:
        """Move pending rows the collector refused for good to ``dead_letter`` (kept, never
        deleted, still counted by anti-passback and shown by ``passgate log``). Returns how
        many moved; uploaded or unknown seqs are ignored."""
        if not reason:
            raise ArgumentError("a dead-letter reason is required")
        chunks = list(seq_chunks(seqs))
        if not chunks:
            return 0

        def move(db: sqlite3.Connection) -> int:
            n = 0
            for chunk in chunks:
                cond = f"uploaded_at IS NULL AND seq IN ({','.join('?' * len(chunk))})"
                n += db.execute(
                    f"INSERT INTO dead_letter ({COLUMNS}, dead_at, dead_reason) SELECT "
                    f"{COLUMNS}, ?, ? FROM scans WHERE {cond}",
                    [None if at is None else to_ms(at), reason, *chunk]).rowcount
                db.execute(f"DELETE FROM scans WHERE {cond}", chunk)
            return n
        return self._run("dead letter", move)

    def dead_letters(self, limit: int | None = None) -> list[Row]:
        """Dead-lettered rows, oldest first, with ``dead_reason`` and ``dead_at``."""
        return self._run("read", lambda db: [row_with_status(r) for r in db.execute(
            f"SELECT {COLUMNS}, NULL, dead_reason, dead_at FROM dead_letter ORDER BY seq "
            "LIMIT ?", (-1 if limit is None else int(limit),))], write=False)

    def dead_letter_count(self) -> int:
        return self._run("read", lambda db: int(db.execute(
            "SELECT count(*) FROM dead_letter").fetchone()[0]), write=False)

    def keep_for(self, seconds: float) -> None:
        """Keep uploaded rows at least ``seconds`` whatever retention :meth:`prune` is given.

        The scanner sets this to the longest anti-passback window it applies (a bundle's
        fleet policy may ask for more than ``journal.retention``), and the sync agent, which
        prunes, need not know the bundle: anti-passback reads accepted rows from here.
        """
        value = max(0, int(seconds))

        def store(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO meta (key, value) VALUES ('keep_s', ?) ON CONFLICT (key)"
                       " DO UPDATE SET value = excluded.value", (value,))

        if self._run("read", self._keep_s, write=False) != value:
            self._run("keep", store)

    @staticmethod
    def _keep_s(db: sqlite3.Connection) -> int:
        got = db.execute("SELECT value FROM meta WHERE key = 'keep_s'").fetchone()
        return int(got[0]) if got else 0

    def prune(self, now: float, retention_s: float, batch: int = 1000,
              pause_s: float = 0.05) -> int:
        """Delete uploaded rows scanned more than ``retention_s`` before ``now``.

        Pending rows are never deleted. Rows go in seq order, as a prefix (stopping at the
        first pending or recent row), so one kept value (the last pruned chain) keeps the
        rest verifiable. Works in batches of short transactions with ``pause_s`` between
        them: SQLite's lock is not fair, and a process committing back to back would starve
        the scanner's ``record``. Takes no write lock when there is nothing to prune.
        Rows younger than :meth:`keep_for` (the longest anti-passback window, which reads
        accepted rows from here) are kept even when ``retention_s`` is shorter. Returns the
        number deleted.
        """
        keep = self._run("prune", self._keep_s, write=False)
        cutoff = to_ms(now - max(retention_s, keep))

        def prunable(db: sqlite3.Connection) -> bool:
            first = db.execute(
                "SELECT uploaded_at, t_ms FROM scans ORDER BY seq LIMIT 1").fetchone()
            return first is not None and first[0] is not None and first[1] < cutoff

        def one_batch(db: sqlite3.Connection) -> int:
            last = None
            for seq, t_ms, uploaded, chain in db.execute(
                    "SELECT seq, t_ms, uploaded_at, chain FROM scans ORDER BY seq LIMIT ?",
                    (batch,)).fetchall():
                if uploaded is None or t_ms >= cutoff:
                    break
                last = (seq, chain)
            if last is None:
                return 0
            n = db.execute("DELETE FROM scans WHERE seq <= ?", (last[0],)).rowcount
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                           "DO UPDATE SET value = excluded.value",
                           [("pruned_seq", last[0]), ("pruned_chain", bytes(last[1]))])
            return n

        total = 0
        while self._run("prune", prunable, write=False):
            if total:
                time.sleep(pause_s)
            n = self._run("prune", one_batch)
            total += n
            if n < batch:
                break
        return total

    # -- reading (passgate log, checks) ------------------------------------------------

    def since(self, t: float, limit: int | None = None) -> list[Row]:
        """Rows (pending, uploaded and dead-lettered) scanned at or after ``t``: the newest
        ``limit`` of them (all when ``None``), returned oldest first."""
        if limit is None:
            return list(self.iter_since(t))
        rows = self._run("read", lambda db: [row_with_status(r) for r in db.execute(
            f"{SELECT_ALL} ORDER BY seq DESC LIMIT :limit",
            {"t": ms_bound(t), "after": 0, "limit": int(limit)})], write=False)
        return rows[::-1]

    def iter_since(self, t: float = float("-inf"), batch: int = 500) -> Iterator[Row]:
        """All rows scanned at or after ``t`` in seq order, fetched ``batch`` at a time so
        memory stays flat on a large journal."""
        args = {"t": ms_bound(t), "after": 0, "limit": batch}
        while True:
            rows = self._run("read", lambda db: [row_with_status(r) for r in db.execute(
                f"{SELECT_ALL} ORDER BY seq LIMIT :limit", args)], write=False)
            yield from rows
            if len(rows) < batch:
                return
            args["after"] = rows[-1].seq

    def counts(self, t: float = float("-inf")) -> dict[tuple[str, str], int]:
        """Number of rows scanned at or after ``t`` by (verdict, reason)."""
        return self._run("read", lambda db: {(v, r): n for v, r, n in db.execute(
            "SELECT verdict, reason, count(*) FROM (SELECT verdict, reason FROM scans WHERE"
            " t_ms >= :t UNION ALL SELECT verdict, reason FROM dead_letter WHERE t_ms >= :t)"
            " GROUP BY verdict, reason", {"t": ms_bound(t)})}, write=False)

    def verify(self) -> int | None:
        """Recompute the chain of every row still held (scans and dead letters); return the
        seq of the first row that does not check, or ``None``."""
        pruned_seq, prev = self._run("read", self._pruned, write=False)
        for row in self.iter_since():
            if row.seq <= pruned_seq:  # dead letters older than the pruned prefix
                continue
            if verify_chain([row], prev) is not None:
                return row.seq
            prev = row.chain
        return None
