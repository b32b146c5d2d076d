"""PostgreSQL's ``scans``: partitioned by week of the device time ``t_ms``, so retention drops
whole weeks instead of deleting 10 million rows a day one by one.

Rules kept here (docs/collector.md, "Retention"):

* **Weekly partitions** ``scans_wYYYYMMDD`` (the Monday, UTC, of ``[lo, lo + 7 days)``), made
  ahead by :func:`ensure`: at every start (the week before now to ``AHEAD_WEEKS`` after) and
  by the hourly maintenance (retention's thread). Weekly, not daily: a query with no ``t_ms``
  bound (the device's highest seq and the chain under the batch lock, the resend lookup by
  nonce, a checkpoint's recent rows by seq) probes every partition, about 16 weekly ones at a
  90-day window where daily ones would be 95; the price is that a week is dropped whole, so up
  to 7 days beyond the window stay on disk.
* **DEFAULT** ``scans_default`` takes what no week holds: a checkpoint clock years off, a
  re-sent row of a week already dropped, and the rows of a checkpoint with an open tamper
  alert when their week is dropped. Retention empties it by batched deletes with SQLite's
  rule (``t_ms`` and ``received_at`` both older than the window, never a protected
  checkpoint). A week made later takes its rows out of it first (the attach would refuse),
  and the attach reads DEFAULT whole under its lock to check that: DEFAULT must stay small
  (rows of clocks far off and of open tamper alerts), or making a week holds up the queries
  that read it (those with no t_ms bound) for that read.
* **Dedup keys.** A partitioned table's unique key must hold the partition key, so the parent
  has none; each partition gets its own, made with it: weeks and DEFAULT are unique on
  ``(device_id, nonce, t_ms)``, the old table (``scans_legacy``) keeps its
  ``(device_id, nonce)`` primary key (no index to build on 70 million rows). A re-sent row
  carries the identical signed ``t_ms``, so it meets its stored copy in the same partition and
  COPY fails on the key exactly as before (``StoredNonce``, then the lookup answers
  ``duplicate``). A row that reuses a stored nonce with another ``t_ms`` (only a broken or
  forged device signs that) is stored as a second row when it arrives as new rows, where the
  unpartitioned table refused it; in a resend the lookup still answers ``duplicate`` for the
  identical row and ``nonce_conflict`` otherwise (``postgres.NONCE_LOOKUP`` prefers the
  stored row with the same ``t_ms``).
* **Protected rows move, the week goes.** Before a week is dropped, the rows in it of
  checkpoints with an unacknowledged tamper alert are copied into DEFAULT, in the same
  transaction as DETACH and DROP: the console reads them through ``scans`` as before.
* **Locks stay short.** DETACH and DROP take the parent's exclusive lock for the catalog
  change and the copy of protected rows (usually none); ``lock_timeout`` makes a run that
  cannot get it within ``LOCK_TIMEOUT`` give up (next hour tries again) instead of queueing
  every ingest and view behind a long query.
* **Plans.** A week made ahead is empty with its key built, so the planner knows it holds no
  rows and may read it with a Seq Scan of no page; autovacuum analyses it once rows arrive
  (after 50), which makes cached plans again. The weeks holding rows are read by their
  indexes (tests/test_collector_scale.py checks the plans).
* **From the old table** (schema version 10, :func:`prepare_legacy` then :func:`convert`): it
  is renamed ``scans_legacy`` and attached whole as the partition ``[MINVALUE, until)``
  (``until``: the Monday that starts the third week after the upgrade's, 2-3 weeks ahead),
  with no row moved and no index built:
  its indexes match the parent's, and a ``CHECK (t_ms < until)`` added NOT VALID and then
  validated while ingest goes on proves the range, so the attach scans nothing. Retention then
  empties it by batched deletes like DEFAULT and drops it when empty.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from .base import SCAN_INSERT_COLS

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONDAY_MS = 4 * DAY_MS  # 1970-01-05, the first Monday after the epoch (a Thursday)
AHEAD_WEEKS = 2  # weeks made ahead of the current one
DEFAULT = "scans_default"
LEGACY = "scans_legacy"
LEGACY_BOUND = "scans_legacy_bound"  # the CHECK that proves the old table's range
AHEAD = "scans_ahead"  # the old table's rows past that range, held during the upgrade
LOCK_TIMEOUT = "5s"
MIGRATION_LOCK = 74727  # session advisory lock of prepare_legacy (74726: the migration's)
ALL_COLS = SCAN_INSERT_COLS  # every column, in the order the rows are copied

_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'?-?\d+'?)\) TO \((MAXVALUE|'?-?\d+'?)\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lo: int | None  # None: MINVALUE (the old table) or DEFAULT
    hi: int | None  # None: DEFAULT
    default: bool = False


def week_start(t_ms: int) -> int:
    """The start (Monday 00:00 UTC, in ms) of the week holding ``t_ms``."""
    return (t_ms - MONDAY_MS) // WEEK_MS * WEEK_MS + MONDAY_MS


def week_name(lo_ms: int) -> str:
    day = dt.datetime.fromtimestamp(lo_ms / 1000, dt.UTC)
    return f"scans_w{day:%Y%m%d}"


def _bound(text: str) -> int | None:
    return None if text in ("MINVALUE", "MAXVALUE") else int(text.strip("'"))


def partitions(cur) -> list[Partition]:
    """The partitions of ``scans``, by range (DEFAULT last)."""
    cur.execute("SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'scans'::regclass ORDER BY 1")
    out = []
    for name, bound in cur.fetchall():
        if bound == "DEFAULT":
            out.append(Partition(name, None, None, default=True))
            continue
        m = _BOUND.search(bound)
        if m is None:
            raise StoreError(f"partition {name} of scans has an unexpected bound: {bound}")
        out.append(Partition(name, _bound(m.group(1)), _bound(m.group(2))))
    return sorted(out, key=lambda p: (p.default, p.lo if p.lo is not None else -(2 ** 63)))


def is_partitioned(cur) -> bool:
    cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('scans')")
    r = cur.fetchone()
    return r is not None and r[0] == "p"


def short_locks(cur) -> None:
    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    cur.execute("SELECT pg_advisory_xact_lock(74726)")  # one maker at a time (and migrations)


def has_default(cur) -> bool:
    """Whether DEFAULT exists, read from ``pg_class`` with the statement's snapshot (not
    ``to_regclass``, whose name lookup can answer from this backend's cache a "missing" that
    another collector has made since: then CREATE fails with "already exists")."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = %s "
                "AND relnamespace = current_schema()::regnamespace)", (DEFAULT,))
    return bool(cur.fetchone()[0])


def ensure_default(cur) -> None:
    """Make the DEFAULT partition if it is missing (inside the caller's transaction)."""
    if not has_default(cur):
        cur.execute(f"CREATE TABLE {DEFAULT} PARTITION OF scans DEFAULT")
        cur.execute(f"ALTER TABLE {DEFAULT} ADD PRIMARY KEY (device_id, nonce, t_ms)")


def ensure(store, from_ms: int, to_ms: int) -> list[str]:
    """Make the weekly partitions that cover ``[from_ms, to_ms]`` and are missing (a week
    that overlaps any existing range is left alone); returns the names made. Each week is its
    own short transaction: the table is made apart, takes the week's rows out of DEFAULT,
    gets its unique key, and is attached (which builds the parent's indexes on it)."""
    import psycopg

    made: list[str] = []
    busy: list[str] = []
    lo = week_start(from_ms)
    while lo <= to_ms:
        try:
            with store._tx() as cur:
                short_locks(cur)
                taken = [p for p in partitions(cur) if not p.default
                         and (p.lo is None or p.lo < lo + WEEK_MS)
                         and (p.hi is None or p.hi > lo)]
                if not taken:
                    _make_week(cur, lo)
                    made.append(week_name(lo))
        except psycopg.errors.LockNotAvailable:
            # Another collector is making or dropping a week (or upgrading), or a long query
            # reads DEFAULT: this week's rows go to DEFAULT meanwhile, and the hourly run
            # (retention.maintain) makes it and moves them. A start never fails on it.
            busy.append(week_name(lo))
        lo += WEEK_MS
    if made:
        log.info("scans: made the weekly partitions %s", ", ".join(made))
    if busy:
        log.warning("scans: the weekly partitions %s were not made: their lock was not granted "
                    "within %s; their rows go to %s until the hourly run makes them",
                    ", ".join(busy), LOCK_TIMEOUT, DEFAULT)
    return made


def _make_week(cur, lo: int) -> None:
    name, hi = week_name(lo), lo + WEEK_MS
    cur.execute(f"CREATE TABLE {name} (LIKE scans INCLUDING DEFAULTS)")
    if has_default(cur):
        # The lock ATTACH takes on DEFAULT anyway, taken before the move: a row of this week
        # that an ingest transaction is writing to DEFAULT now commits first and is moved too
        # (taken after, ATTACH would find it and fail; tests/test_collector_partitions.py).
        cur.execute(f"LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE")
        cur.execute(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE t_ms >= %s AND t_ms < %s "
                    f"RETURNING {ALL_COLS}) INSERT INTO {name} ({ALL_COLS}) "
                    f"SELECT {ALL_COLS} FROM moved", (lo, hi))
        if cur.rowcount:
            log.info("scans: %d rows of the week %s moved out of the default partition",
                     cur.rowcount, name)
    cur.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (device_id, nonce, t_ms)")
    cur.execute(f"ALTER TABLE scans ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")


@dataclass(frozen=True)
class Dropped:
    name: str
    rows: int  # the planner's estimate of the rows it held (pg_class.reltuples), not a count
    moved: int  # rows of protected checkpoints copied into DEFAULT first


def drop_before(store, cutoff_ms: int, kept: Callable[[Any], list[str]]
                ) -> tuple[list[Dropped], list[str]]:
    """Detach and drop every weekly partition wholly before ``cutoff_ms``, the rows of the
    checkpoints ``kept(cur)`` names copied into DEFAULT first (read in the drop's transaction
    once DETACH holds the table's lock: an alert raised a moment before counts); the old
    table goes once it is empty.
    Returns the partitions dropped and those left for the next run because their lock was
    not granted within ``LOCK_TIMEOUT`` (a long query reading them, or another collector
    making or dropping one): each is its own transaction, so the others still go."""
    import psycopg

    out: list[Dropped] = []
    busy: list[str] = []
    with store._tx(write=False) as cur:
        parts = partitions(cur)
    for p in parts:
        if p.default or p.hi is None or p.hi > cutoff_ms:
            continue
        try:
            dropped = _drop(store, p, kept)
        except psycopg.errors.LockNotAvailable:
            busy.append(p.name)
            log.warning("scans: the partition %s is due to go but its lock was not granted "
                        "within %s; the next run tries again", p.name, LOCK_TIMEOUT)
            continue
        if dropped is not None:
            out.append(dropped)
            log.info("scans: dropped the partition %s (about %d rows; %d rows of checkpoints "
                     "with an open tamper alert kept in %s)", p.name, dropped.rows,
                     dropped.moved, DEFAULT)
    return out, busy


def _drop(store, p: Partition, kept: Callable[[Any], list[str]]) -> Dropped | None:
    with store._tx() as cur:
        short_locks(cur)
        if p not in partitions(cur):
            return None  # another collector dropped it meanwhile
        if p.lo is None:  # the old table: emptied by batched deletes first
            cur.execute(f"SELECT EXISTS (SELECT 1 FROM {p.name})")
            if cur.fetchone()[0]:
                return None
        cur.execute("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class "
                    "WHERE oid = %s::regclass", (p.name,))
        estimate = cur.fetchone()[0]
        ensure_default(cur)
        cur.execute(f"ALTER TABLE scans DETACH PARTITION {p.name}")
        moved = 0
        devices = kept(cur)
        if devices:
            cur.execute(f"INSERT INTO {DEFAULT} ({ALL_COLS}) SELECT {ALL_COLS} FROM {p.name} "
                        "WHERE device_id = ANY(%s)", (devices,))
            moved = cur.rowcount
        cur.execute(f"DROP TABLE {p.name}")
    return Dropped(p.name, estimate, moved)


def batched_tables(store) -> list[str]:
    """The partitions retention empties by batched deletes: DEFAULT and the old table."""
    with store._tx(write=False) as cur:
        return [p.name for p in partitions(cur) if p.default or p.lo is None]


def _legacy_bound(cur, table: str) -> tuple[int, bool] | None:
    """(until, validated) of the old table's ``LEGACY_BOUND`` check, or None."""
    cur.execute("SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint "
                "WHERE conrelid = to_regclass(%s) AND conname = %s", (table, LEGACY_BOUND))
    r = cur.fetchone()
    if r is None:
        return None
    m = re.search(r"t_ms < '?(-?\d+)'?", r[0])
    if m is None:
        raise StoreError(f"{LEGACY_BOUND} on {table} is not the expected check: {r[0]}")
    return int(m.group(1)), bool(r[1])


def _legacy(cur) -> bool:
    """Whether ``scans`` is still the old, unpartitioned table: read from ``pg_class`` by name
    in a statement of its own, so it sees what other sessions committed (``has_default`` says
    why not ``to_regclass``)."""
    cur.execute("SELECT c.relkind FROM pg_class c WHERE c.relname = 'scans' "
                "AND c.relnamespace = current_schema()::regnamespace")
    r = cur.fetchone()
    return r is not None and r[0] == "r"


def prepare_legacy(store, now_ms: int) -> None:
    """Step one of the upgrade to partitions, before the migration's transaction: bound the
    old ``scans`` by ``CHECK (t_ms < until)`` and validate it, ingest going on meanwhile.

    Rows already stored past ``until`` (clocks running weeks ahead) wait in ``scans_ahead``
    until :func:`convert` puts them back through the parent. Adding the check takes a short
    lock (a read of the ``t_ms`` index for those rows); VALIDATE reads the whole table under
    a lock that lets ingest and the views go on. Until :func:`convert` runs, a new row with
    ``t_ms`` past ``until`` fails the check (5xx: the agent retries, nothing is lost).
    """
    with store._pool.connection() as conn:  # autocommit: VALIDATE is its own transaction
        cur = conn.cursor()
        try:
            if not _legacy(cur):
                return  # a new database, or partitioned already
            cur.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            try:
                # Again under the lock: another collector starting at the same time may have
                # converted the table while this one waited for it. Bounding the partitioned
                # table then set its rows past the bound aside in scans_ahead, where nothing
                # would ever put them back (seen once in CI, three collectors upgrading).
                if not _legacy(cur):
                    return
                bound = _legacy_bound(cur, "scans")
                if bound is None:
                    until = week_start(now_ms) + (AHEAD_WEEKS + 1) * WEEK_MS
                    cur.execute("BEGIN")
                    try:
                        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                        cur.execute("LOCK TABLE scans IN SHARE ROW EXCLUSIVE MODE")
                        cur.execute(f"CREATE TABLE IF NOT EXISTS {AHEAD} (LIKE scans)")
                        cur.execute(f"INSERT INTO {AHEAD} SELECT * FROM scans "
                                    "WHERE t_ms >= %s", (until,))
                        cur.execute("DELETE FROM scans WHERE t_ms >= %s", (until,))
                        cur.execute(f"ALTER TABLE scans ADD CONSTRAINT {LEGACY_BOUND} "
                                    f"CHECK (t_ms < {until}) NOT VALID")
                    except BaseException:
                        cur.execute("ROLLBACK")  # then the session lock can be let go
                        raise
                    cur.execute("COMMIT")
                    bound = (until, False)
                    log.info("scans: bounded below %d for the upgrade to partitions", until)
                if not bound[1]:
                    cur.execute(f"ALTER TABLE scans VALIDATE CONSTRAINT {LEGACY_BOUND}")
            finally:
                cur.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        finally:
            cur.close()


def convert(cur, types: dict[str, str]) -> None:
    """Step two, inside the migration's transaction: rename the old table ``scans_legacy``
    (its indexes too), make the partitioned ``scans`` with the same indexes, attach the old
    table as ``[MINVALUE, until)`` (catalog work only: the check proves the range, the indexes
    match), make DEFAULT, and put the held rows back."""
    from . import schema

    if is_partitioned(cur):
        return
    bound = _legacy_bound(cur, "scans")
    if bound is None or not bound[1]:
        raise StoreError("scans has no validated bound: the upgrade's first step did not run")
    until = bound[0]
    cur.execute("ALTER TABLE scans RENAME TO scans_legacy")
    cur.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'scans_legacy'::regclass "
                "AND contype = 'p'")
    for (pkey,) in cur.fetchall():
        cur.execute(f"ALTER TABLE scans_legacy RENAME CONSTRAINT {pkey} TO scans_legacy_pkey")
    cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'scans_legacy' "
                "AND indexname LIKE 'scans\\_%' AND indexname NOT LIKE 'scans\\_legacy\\_%'")
    for (index,) in cur.fetchall():
        cur.execute(f"ALTER INDEX {index} RENAME TO scans_legacy_{index[len('scans_'):]}")
    for stmt in schema.statements(types) + schema.late_statements(types):
        if stmt.startswith(("CREATE TABLE IF NOT EXISTS scans ",
                            "CREATE TABLE IF NOT EXISTS scans(")) or \
                re.match(r"CREATE INDEX IF NOT EXISTS scans_\w+ ON scans ", stmt):
            cur.execute(stmt)
    cur.execute(f"ALTER TABLE scans ATTACH PARTITION scans_legacy "
                f"FOR VALUES FROM (MINVALUE) TO ({until})")
    ensure_default(cur)
    cur.execute("SELECT to_regclass(%s)", (AHEAD,))
    if cur.fetchone()[0] is not None:
        cur.execute(f"ALTER TABLE {AHEAD} ADD COLUMN IF NOT EXISTS site TEXT")  # migration 6
        cur.execute(f"INSERT INTO scans ({ALL_COLS}) SELECT {ALL_COLS} FROM {AHEAD}")
        cur.execute(f"DROP TABLE {AHEAD}")
    log.info("scans: partitioned by week; the old table is the partition scans_legacy "
             "(rows before %d), emptied by retention", until)
