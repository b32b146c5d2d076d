"""One storage interface, written once in SQL; the backends only supply connections.

:class:`SqlStore` holds every query. SQL is written with ``?`` placeholders and the
PostgreSQL backend rewrites them to ``%s``; DDL types come from ``schema``. Each public
method is one transaction. Ingest runs inside :meth:`SqlStore.batch`, which serialises
batches per device (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE`` on the
device row), so two deliveries of the same batch racing each other store it once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import StoredNonce, StoreError
from . import pairs, rollup, schema
from .accounts import Accounts
from .console import ConsoleQueries, log_health
from .reports import SCAN_COLS, UNSIGNED_ALERTS, Reports, scan_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    device_id: str
    pubkey: bytes
    enrolled_at: int
    disabled: bool
    last_seen: int | None = None
    clock_offset_s: int | None = None
    clock_state: str | None = None
    backlog: int | None = None
    dead_letters: int | None = None
    bundle_version: int | None = None
    bundle_issued_at: int | None = None
    firmware: str | None = None
    last_scan_ms: int | None = None
    update_state: str | None = None  # the updater's report (passgate.update.state.report)
    update_target: str | None = None
    update_reason: str | None = None


DEVICE_COLS = (
    "device_id, pubkey, enrolled_at, disabled, last_seen, clock_offset_s, clock_state, backlog, "
    "dead_letters, bundle_version, bundle_issued_at, firmware, last_scan_ms, update_state, "
    "update_target, update_reason"
)
HEALTH_KEYS = (
    "clock_offset_s", "clock_state", "backlog", "dead_letters", "bundle_version",
    "bundle_issued_at", "firmware", "last_scan_ms", "health_sent_at", "live_challenge_ms",
    "update_state", "update_target", "update_reason",
)


SCAN_INSERT_COLS = (
    "device_id, nonce, seq, t_ms, clock_state, verdict, reason, pass_hash, kid, purpose, zone, "
    "flags, chain, received_at, problem, site"
)


def nonce_lookup_sql(n: int) -> str:
    """The dedup lookup of ``n`` nonces (tests/test_collector_scale.py checks its plan)."""
    return (f"SELECT {SCAN_COLS} FROM scans WHERE device_id = ? "
            f"AND nonce IN ({', '.join('?' * n)})")


def _device(r: Sequence) -> Device:
    return Device(r[0], bytes(r[1]), r[2], bool(r[3]), *r[4:])


class Pool:
    """A few reusable connections (per store, never global); a broken one is dropped."""

    def __init__(self, connect: Callable[[], object], size: int) -> None:
        self._connect, self._idle = connect, queue.LifoQueue(maxsize=size)

    @contextlib.contextmanager
    def connection(self) -> Iterator:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok:
                try:
                    self._idle.put_nowait(conn)
                except queue.Full:
                    conn.close()
            else:
                conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


@dataclass(frozen=True)
class Held:
    """What a batch needs of its device, read once with the batch lock (:meth:`SqlStore.batch`)."""

    site: str | None = None
    live_challenge_ms: int | None = None
    health_sent_at: int | None = None
    max_seq: int | None = None  # the highest seq stored for the device (None: no row yet)
    # The stored chain of the row before the batch's first, when that row is the device's
    # highest (a batch of new rows); else None, and ``Tx.chain_at`` reads it.
    chain_before: bytes | None = None
    bundle_version: int | None = None  # the newest published bundle, for the reply


# One statement under the lock: the device row, its highest stored seq and that row's chain
# (kept in the row, schema 11: ``Tx.insert_scans``), the newest bundle. The chain is the one
# a batch of new rows builds on; any other batch (a resend, a gap) gets None and
# ``Tx.chain_at`` reads the row it builds on. A row without ``last_seq`` (a device enrolled
# again while its scans stayed; rows written around the API) falls back to MAX(seq) over its
# scans, which on PostgreSQL descends every weekly partition's (device_id, seq) index: the
# cost this column saves (docs/collector.md). COALESCE evaluates the subquery only then.
# Parameters: device, seq before the batch, device.
HELD_SQL = (
    "SELECT site, live_challenge_ms, health_sent_at, "
    "COALESCE(last_seq, (SELECT MAX(seq) FROM scans WHERE device_id = ?)), "
    "CASE WHEN last_seq = ? THEN last_chain END, "
    "(SELECT MAX(version) FROM bundles) FROM devices WHERE device_id = ?"
)


class Tx:
    """The queries one ingest transaction needs (see ``ingest.apply_batch``)."""

    def __init__(self, store: SqlStore, cur, device_id: str, held: Held | None = None,
                 first_seq: int | None = None) -> None:
        self._s, self._cur, self.device_id = store, cur, device_id
        self.held = held or Held()
        self._first_seq = first_seq
        self._head: tuple[int, bytes] | None = None  # a new (last_seq, last_chain) to write

    def _q(self, sql: str, params: Sequence = ()) -> None:
        self._cur.execute(self._s.sql(sql), tuple(params))

    def stored(self, nonces: Sequence[tuple[bytes, int | None]]) -> dict[bytes, dict]:
        """The rows this device already has with any of these (nonce, t_ms), by nonce.

        Set-based: one lookup per nonce in the (device_id, nonce) key, never a walk over the
        device's history, so the cost of a batch does not grow with what is stored
        (``tests/test_collector_scale.py`` pins the query plan on both backends). ``t_ms``
        (None if the row has none that fits) picks, of several stored rows with one nonce
        (PostgreSQL only: store/partitions.py), the one with the same device time.
        """
        out: dict[bytes, dict] = {}
        for r in self._s._select_nonces(self._cur, self.device_id, list(dict.fromkeys(nonces))):
            row = scan_dict(r)
            out[row["nonce"]] = row
        return out

    def chain_at(self, seq: int) -> bytes | None:
        """The chain value of this device's row ``seq`` if the collector holds it."""
        held = self.held.chain_before
        if held is not None and self._first_seq is not None and seq == self._first_seq - 1:
            r: Sequence | None = (held,)  # read with the lock (HELD_SQL)
        else:
            self._q("SELECT chain FROM scans WHERE device_id = ? AND seq = ? LIMIT 1",
                    (self.device_id, seq))
            r = self._cur.fetchone()
        if r is None:
            self._q("SELECT chain FROM rejected WHERE device_id = ? AND seq = ? "
                    "AND chain IS NOT NULL LIMIT 1", (self.device_id, seq))
            r = self._cur.fetchone()
        return bytes(r[0]) if r and r[0] is not None and len(r[0]) == 32 else None

    def max_seq_below(self, seq: int) -> int:
        """The highest seq below ``seq`` the collector holds for this device, or 0."""
        best = 0
        for table in ("scans", "rejected"):
            self._q(f"SELECT MAX(seq) FROM {table} WHERE device_id = ? AND seq < ?",
                    (self.device_id, seq))
            r = self._cur.fetchone()
            best = max(best, r[0] or 0)
        return best

    def insert_scans(self, rows: Sequence[tuple[dict, str | None]], now: int) -> None:
        """Insert checked (row, problem) pairs in one bulk statement (see
        :meth:`SqlStore._insert_scans`), with the counts kept beside them.

        The rows' nonces must be new: either :meth:`stored` did not find them under the batch
        lock (see :meth:`SqlStore.batch`), or the batch starts past every stored seq and no
        lookup was made. Either way the unique key decides (SQLite's primary key; on
        PostgreSQL the key of the partition the row goes to, store/partitions.py): a nonce
        already stored makes the insert raise :class:`StoredNonce` on both backends, nothing
        of the batch is kept, and ``ingest.apply_batch`` applies it again with the lookup.
        """
        if not rows:
            return
        # The device's site is copied into each scan (read with the lock), so a console
        # filter by site reads one (site, t_ms) index range.
        site, device = self.held.site, self.device_id
        self._s._insert_scans(self._cur, [
            (device, r["nonce"], r["seq"], r["t_ms"], r["clock_state"], r["verdict"],
             r["reason"], r["pass_hash"], r["kid"], r["purpose"], r["zone"],
             " ".join(r["flags"]), r["chain"], now, problem, site)
            for r, problem in rows])
        # The device's head (highest stored seq, its chain), read by the next batch with the
        # lock (HELD_SQL), moves only forward: rows filling a gap below it leave it alone.
        # Written with the health (one UPDATE of the row) or on its own (:meth:`finish`).
        head = max((r for r, _p in rows), key=lambda r: r["seq"])
        if self.held.max_seq is None or head["seq"] > self.held.max_seq:
            self._head = (head["seq"], head["chain"])
        # The hourly counts the charts read, in the same transaction (store/rollup.py).
        rollup.add(self._s, self._cur,
                   ((r["t_ms"], site, r["zone"], r["verdict"], r["reason"]) for r, _p in rows))
        # Possible sharing, found once here instead of per view (store/pairs.py).
        seqs = [r["seq"] for r, _p in rows]
        lo, hi = min(seqs), max(seqs)
        times = [r["t_ms"] for r, _p in rows]
        pairs.note(self._s, self._cur, self.device_id,
                   [(r["pass_hash"], r["t_ms"], r["verdict"]) for r, _p in rows
                    if r["pass_hash"] is not None],
                   (lo, hi) if hi - lo + 1 == len(rows) == len(set(seqs)) else None,
                   (min(times), max(times)))
        pairs.live_reuse(self._s, self._cur, self.device_id,
                         [(r["pass_hash"], r["t_ms"], r["verdict"], r["flags"])
                          for r, _p in rows if r["flags"]],
                         now)

    def finish(self) -> None:
        """Write the device's new head if :meth:`update_health` did not (a batch that was not
        fresh, or a caller that records no health); run at the end of every batch."""
        if self._head is not None:
            self._q("UPDATE devices SET last_seq = ?, last_chain = ? WHERE device_id = ?",
                    (*self._head, self.device_id))
            self._head = None

    def insert_rejected(self, seq: int, nonce, chain, reason: str, detail: str,
                        raw: bytes, now: int) -> bool:
        """Keep a refused row (its ``raw`` encoding) for staff; False, and nothing kept, when
        the device's same row was refused for the same reason before: a resend, or a
        captured batch replayed, answers the same and adds nothing (its probe is the
        (device_id, seq) index)."""
        self._q("SELECT 1 FROM rejected WHERE device_id = ? AND seq = ? AND reason = ? "
                "AND raw = ? LIMIT 1", (self.device_id, seq, reason, raw))
        if self._cur.fetchone() is not None:
            return False
        nonce = nonce if isinstance(nonce, bytes) else None
        chain = chain if isinstance(chain, bytes) and len(chain) == 32 else None
        self._q("INSERT INTO rejected (device_id, seq, nonce, chain, reason, detail, received_at,"
                " raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.device_id, seq, nonce, chain, reason, detail, now, raw))
        return True

    def alert(self, kind: str, detail: str, now: int) -> None:
        self._s._alert(self._cur, self.device_id, kind, detail, now)

    def update_health(self, health: dict, now: int, sent_at: int | None = None, *,
                      challenge_ms: int | None = None, digest: bytes | None = None,
                      window_s: int = 600, future_slack_ms: int = 0) -> bool:
        """Record a batch's status as the device's health and move ``last_seen``, only when
        the batch is fresh (docs/sync-protocol.md section 4, "Liveness"); True if it was.

        Fresh: taken for the first time, and either it echoes a genuine challenge
        (``challenge_ms``: when it was issued, its HMAC checked by the caller,
        ``liveness.Challenges.genuine_ms``) issued within ``window_s`` of ``now`` (up to
        ``future_slack_ms`` ahead: another process's clock), or its ``sent_at`` is within
        ``window_s`` of ``now``. "For the first time" is the batch's ``digest`` (of its signed
        payload), kept in ``seen_batches`` under the device's lock, fresh or not, for as long
        as a replay of it could look fresh: until the later of its challenge's time, its
        ``sent_at`` and now, plus the window. So the same bytes are never fresh again, to any
        process, whatever clock they carry (a heartbeat from a clock running ahead, refused
        at once, is not taken when its time comes), and no wrong clock, the device's or a
        collector process's, shuts out the device's later batches. ``digest`` None (a
        caller without the signed payload): no replay record, the windows alone.
        """
        window_ms = window_s * 1000
        now_ms = now * 1000
        by_challenge = challenge_ms is not None and (
            now_ms - window_ms <= challenge_ms <= now_ms + future_slack_ms)
        by_sent_at = sent_at is not None and abs(sent_at - now) <= window_s
        if digest is not None:
            latest = max(now, sent_at or 0, (challenge_ms or 0) // 1000 + 1)
            until = min(latest, schema.INT8_MAX - window_s) + window_s
            if not self._s._take_batch(self._cur, self.device_id, digest, until, now):
                return False  # a replay: nothing but the dedup answers
        if not (by_challenge or by_sent_at):
            return False
        # The status itself only moves forward: a batch delivered late (held by the network,
        # within the window) moves last_seen but does not turn the health back. Newer: its
        # sent_at is not before the last one taken, or its challenge is after the last one
        # taken. Only values inside the window are taken as those markers, so a clock that
        # was wrong once (the device's, or a process's) does not hold later statuses back.
        taken, held = self.held.live_challenge_ms, self.held.health_sent_at  # read with the lock
        newer = (sent_at is None or held is None or sent_at >= held
                 or (by_challenge and (taken is None or challenge_ms > taken)))  # type: ignore[operator]
        marks: dict = {}
        if by_sent_at and (held is None or sent_at > held):  # type: ignore[operator]
            marks["health_sent_at"] = sent_at
        if by_challenge and (taken is None or challenge_ms > taken):  # type: ignore[operator]
            marks["live_challenge_ms"] = challenge_ms
        if not newer:
            self._set_device(marks, now)
            return True
        health = dict(health, **marks)
        cols = [k for k in HEALTH_KEYS if k in health]
        self._set_device({k: health[k] for k in cols}, now)
        if health:
            log_health(self._s, self._cur, self.device_id, health, now)
        return True

    def _set_device(self, values: dict, seen: int) -> None:
        """One UPDATE of the device row: ``last_seen``, ``values``, and the device's new
        head if the batch moved it (see :meth:`finish`)."""
        values = {"last_seen": seen, **values}
        if self._head is not None:
            values["last_seq"], values["last_chain"] = self._head
            self._head = None
        sets = ", ".join(f"{k} = ?" for k in values)
        self._q(f"UPDATE devices SET {sets} WHERE device_id = ?",
                [*values.values(), self.device_id])


class SqlStore(Reports, ConsoleQueries, Accounts):
    """The storage interface. Subclasses set ``kind``, ``types`` and ``_connect``; the staff
    page's read-only queries come from :class:`~.reports.Reports`, the console's from
    :class:`~.console.ConsoleQueries`, staff accounts from :class:`~.accounts.Accounts`."""

    kind = "sql"
    types: dict[str, str] = {}
    placeholder = "?"
    for_update = ""  # a row lock on a SELECT (PostgreSQL; SQLite's write transactions are one)

    def __init__(self, pool_size: int = 4) -> None:
        self._pool = Pool(self._connect, pool_size)
        self.migrate()

    # --- backend hooks -------------------------------------------------------------------
    def _connect(self):
        raise NotImplementedError

    def _begin(self, cur, write: bool) -> None:
        cur.execute("BEGIN")

    def _lock_device(self, cur, device_id: str, first_seq: int | None) -> Held:
        """Serialise batches of one device (SQLite: BEGIN IMMEDIATE already did) and read
        what the batch needs of it (:data:`HELD_SQL`)."""
        return self._held(cur, self.sql(HELD_SQL), device_id, first_seq)

    @staticmethod
    def _held(cur, sql: str, device_id: str, first_seq: int | None) -> Held:
        before = first_seq - 1 if first_seq is not None else 0
        cur.execute(sql, (device_id, before, device_id))
        r = cur.fetchone()
        if r is None:  # removed since the signature was checked: nothing to read
            return Held()
        chain = bytes(r[4]) if r[4] is not None else None
        return Held(r[0], r[1], r[2], r[3], chain, r[5])

    def _lock_migration(self, cur) -> None:
        """Keep two collectors starting at once from both creating tables (no-op here)."""

    def _take_batch(self, cur, device_id: str, digest: bytes, until: int, now: int) -> bool:
        """Keep a signed batch's digest until ``until`` (POSIX s); False if it was kept
        already (a replay). The device's entries past their time go at the same moment: a
        device keeps about one window's batches here."""
        cur.execute(self.sql("DELETE FROM seen_batches WHERE device_id = ? AND until_s < ?"),
                    (device_id, now))
        cur.execute(self.sql("INSERT INTO seen_batches (device_id, digest, until_s) VALUES "
                             "(?, ?, ?) ON CONFLICT (device_id, digest) DO NOTHING"),
                    (device_id, digest, until))
        return cur.rowcount == 1

    def _delete_some_sql(self, table: str, where: str) -> str:
        """A DELETE of at most ``?`` rows of ``table`` matching ``where`` (its last parameter
        is the limit): SQLite by rowid (see retention.py)."""
        return (f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                f"WHERE {where} LIMIT ?)")

    def _select_nonces(self, cur, device_id: str, nonces: list[tuple[bytes, int | None]]
                       ) -> list:
        """``SCAN_COLS`` of the device's rows with these (nonce, t_ms) nonces (SQLite: ``IN``
        lists, each a probe of the primary key, which holds one row per nonce; chunked to stay
        far below the parameter limit)."""
        found: list = []
        unique = list(dict.fromkeys(n for n, _t in nonces))
        for i in range(0, len(unique), 400):
            chunk = unique[i:i + 400]
            cur.execute(self.sql(nonce_lookup_sql(len(chunk))), (device_id, *chunk))
            found += cur.fetchall()
        return found

    def _insert_scans(self, cur, values: list[tuple]) -> None:
        """Insert whole ``SCAN_INSERT_COLS`` tuples (SQLite: ``executemany``, one statement
        prepared once, inside the batch's one transaction); a stored nonce raises
        :class:`StoredNonce` (the caller's transaction then rolls back)."""
        cur.executemany(self.sql(
            f"INSERT INTO scans ({SCAN_INSERT_COLS}) VALUES ({', '.join('?' * 16)}) "
            "ON CONFLICT (device_id, nonce) DO NOTHING"), values)
        if cur.rowcount != len(values):
            raise StoredNonce(f"{len(values) - cur.rowcount} of {len(values)} nonces were "
                              "stored already")

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    # --- plumbing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator:
        with self._pool.connection() as conn:
            cur = conn.cursor()
            self._begin(cur, write)
            try:
                yield cur
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except Exception as exc:  # the connection is dropped by the pool anyway
                    log.warning("rollback failed: %s", type(exc).__name__)
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def _all(self, sql: str, params: Sequence = ()) -> list:
        with self._tx(write=False) as cur:
            cur.execute(self.sql(sql), tuple(params))
            return cur.fetchall()

    def _one_statement(self, sql: str, params: Sequence = ()) -> list:
        """The rows of one read-only statement, run as its own transaction (both backends'
        connections autocommit): one round trip where :meth:`_all` takes three. For reads
        made on every request (the batch handler's device lookup)."""
        with self._pool.connection() as conn:
            cur = conn.cursor()
            try:
                cur.execute(self.sql(sql), tuple(params))
                return cur.fetchall()
            finally:
                cur.close()

    def close(self) -> None:
        self._pool.close()

    def _before_migrate(self) -> None:
        """Work a migration must do outside its one transaction (PostgreSQL: see
        ``partitions.prepare_legacy``); nothing here."""

    def _migrate_step(self, cur, version: int) -> None:
        """Steps of migration ``version`` written in Python, after its statements (none here)."""

    def _after_migrate(self) -> None:
        """Upkeep at every start, after the migrations (PostgreSQL: partitions made ahead)."""

    def migrate(self) -> None:
        self._before_migrate()
        with self._tx() as cur:
            self._lock_migration(cur)
            for stmt in schema.statements(self.types):
                cur.execute(stmt)
            cur.execute(self.sql("SELECT value FROM meta WHERE key = 'schema'"))
            r = cur.fetchone()
            if r is None:
                cur.execute(self.sql("INSERT INTO meta (key, value) VALUES ('schema', ?)"),
                            (str(schema.SCHEMA_VERSION),))
            have = schema.SCHEMA_VERSION if r is None else int(r[0])
            if have > schema.SCHEMA_VERSION:
                raise StoreError(f"database schema {r[0]} is newer than this collector's")
            for version in range(have + 1, schema.SCHEMA_VERSION + 1):
                for stmt in schema.migration(version, self.types):
                    cur.execute(stmt)
                self._migrate_step(cur, version)
                log.info("database schema upgraded to version %d", version)
            if have < schema.SCHEMA_VERSION:
                cur.execute(self.sql("UPDATE meta SET value = ? WHERE key = 'schema'"),
                            (str(schema.SCHEMA_VERSION),))
            for stmt in schema.late_statements(self.types):
                cur.execute(stmt)
        self._after_migrate()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            return self._all("SELECT 1")[0][0] == 1
        except Exception as exc:  # any driver error means "not healthy"; say which
            log.warning("database health check failed: %s", type(exc).__name__)
            return False

    def _alert(self, cur, device_id: str, kind: str, detail: str, now: int) -> int:
        """Count one alert for (device, kind); keep it as an event too unless anyone could
        have caused it (``UNSIGNED_ALERTS``). Returns how many of this kind there are now."""
        cur.execute(self.sql(
            "INSERT INTO alert_kinds (device_id, kind, n, first_at, last_at, first_detail, "
            "last_detail) VALUES (?, ?, 1, ?, ?, ?, ?) ON CONFLICT (device_id, kind) DO UPDATE "
            "SET n = alert_kinds.n + 1, last_at = excluded.last_at, "
            "last_detail = excluded.last_detail"), (device_id, kind, now, now, detail, detail))
        if kind not in UNSIGNED_ALERTS:
            cur.execute(self.sql("INSERT INTO alerts (device_id, kind, detail, created_at) "
                                 "VALUES (?, ?, ?, ?)"), (device_id, kind, detail, now))
        cur.execute(self.sql("SELECT n FROM alert_kinds WHERE device_id = ? AND kind = ?"),
                    (device_id, kind))
        return int(cur.fetchone()[0])

    # --- enrolment -----------------------------------------------------------------------
    def add_token(self, token_hash: bytes, device_id: str, now: int, expires_at: int) -> None:
        with self._tx() as cur:
            cur.execute(self.sql("INSERT INTO tokens (token_hash, device_id, created_at, "
                                 "expires_at) VALUES (?, ?, ?, ?)"),
                        (token_hash, device_id, now, expires_at))

    def enrol(self, token_hash: bytes, device_id: str, pubkey: bytes, kid: bytes,
              now: int) -> str:
        """Use a one-time token. Returns ``"created"`` or ``"again"`` (same token and key,
        the first answer was lost); raises :class:`StoreError` with ``bad_token`` or
        ``already_enrolled`` as its message otherwise."""
        with self._tx() as cur:
            # Locked (PostgreSQL): the same enrolment retried at a second process waits for
            # the first, then finds the token used by its key: "again", not a conflict.
            cur.execute(self.sql("SELECT device_id, expires_at, used_at, pubkey FROM tokens "
                                 "WHERE token_hash = ?" + self.for_update), (token_hash,))
            tok = cur.fetchone()
            if tok is None or tok[0] != device_id:
                raise StoreError("bad_token")
            cur.execute(self.sql("SELECT pubkey FROM devices WHERE device_id = ?"), (device_id,))
            dev = cur.fetchone()
            if tok[2] is not None:
                if tok[3] is not None and bytes(tok[3]) == pubkey and dev is not None \
                        and bytes(dev[0]) == pubkey:
                    return "again"
                raise StoreError("bad_token")
            if tok[1] < now:
                raise StoreError("bad_token")
            if dev is not None:
                raise StoreError("already_enrolled")
            cur.execute(self.sql("UPDATE tokens SET used_at = ?, pubkey = ? WHERE token_hash = ?"),
                        (now, pubkey, token_hash))
            cur.execute(self.sql("INSERT INTO devices (device_id, pubkey, kid, enrolled_at) "
                                 "VALUES (?, ?, ?, ?)"), (device_id, pubkey, kid, now))
            return "created"

    def device(self, device_id: str) -> Device | None:
        rows = self._one_statement(f"SELECT {DEVICE_COLS} FROM devices WHERE device_id = ?",
                                   (device_id,))
        return _device(rows[0]) if rows else None

    def devices(self) -> list[Device]:
        return [_device(r) for r in self._all(f"SELECT {DEVICE_COLS} FROM devices "
                                              "ORDER BY device_id")]

    def set_disabled(self, device_id: str, disabled: bool) -> bool:
        with self._tx() as cur:
            cur.execute(self.sql("UPDATE devices SET disabled = ? WHERE device_id = ?"),
                        (int(disabled), device_id))
            return cur.rowcount == 1

    def remove_device(self, device_id: str) -> bool:
        """Forget a device's key (its scans stay); it can enrol again with a new token."""
        with self._tx() as cur:
            cur.execute(self.sql("DELETE FROM devices WHERE device_id = ?"), (device_id,))
            return cur.rowcount == 1

    # --- ingest --------------------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self, device_id: str, first_seq: int | None = None) -> Iterator[Tx]:
        """One transaction for one device's batch; batches of a device never interleave.
        ``first_seq``: the batch's first seq (the chain it builds on is read with the lock)."""
        with self._tx() as cur:
            held = self._lock_device(cur, device_id, first_seq)
            tx = Tx(self, cur, device_id, held, first_seq)
            yield tx
            tx.finish()

    def add_alert(self, device_id: str, kind: str, detail: str, now: int) -> int:
        """Record one alert; returns the count of this (device, kind) so far."""
        with self._tx() as cur:
            return self._alert(cur, device_id, kind, detail, now)

    # --- bundles -------------------------------------------------------------------------
    def publish_bundle(self, version: int, data: bytes, sha256: str, now: int) -> None:
        with self._tx() as cur:
            cur.execute("SELECT MAX(version) FROM bundles")
            latest = cur.fetchone()[0]
            if latest is not None and version <= latest:
                raise StoreError(f"bundle version {version} is not newer than the published "
                                 f"{latest}; devices refuse rollbacks, so the collector does too")
            cur.execute(self.sql("INSERT INTO bundles (version, data, sha256, published_at) "
                                 "VALUES (?, ?, ?, ?)"), (version, data, sha256, now))

    def latest_bundle(self) -> tuple[int, str, int] | None:
        """(version, sha256, published_at) of the newest bundle, or None."""
        rows = self._all("SELECT version, sha256, published_at FROM bundles "
                         "ORDER BY version DESC LIMIT 1")
        return tuple(rows[0]) if rows else None

    def bundle_data(self, version: int) -> bytes | None:
        rows = self._all("SELECT data FROM bundles WHERE version = ?", (version,))
        return bytes(rows[0][0]) if rows else None

    def bundle_published_at(self) -> dict[int, int]:
        return dict(self._all("SELECT version, published_at FROM bundles"))
