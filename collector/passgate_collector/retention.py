"""Retention: scans older than a window (``serve --retention-days``, default 90) are removed.

Rules kept here:

* A scan goes when both its device time (``t_ms``) and the time the collector received it
  (``received_at``) are older than the window: a checkpoint whose clock ran years behind does
  not lose a fresh scan on arrival. (PostgreSQL's weekly partitions: see below.)
* Never rows an open alert refers to: a checkpoint with a tamper alert nobody has acknowledged
  keeps all its scans (the evidence of an edited or missing journal row) until a supervisor
  acknowledges it. "Possible sharing" alerts look back one day (``console/alerts.py``), so a
  window of at least ``MIN_DAYS`` days never reaches their scans.
* SQLite deletes in batches of ``batch`` rows, each its own short transaction, so ingest never
  waits long behind retention.
* PostgreSQL's ``scans`` is partitioned by week of ``t_ms`` (``store/partitions.py``): a
  week wholly before the window is detached and dropped (its protected checkpoints' rows
  copied into the DEFAULT partition first), so the window is kept plus up to a week. A week
  goes by its device time alone: a row that arrived late (a checkpoint offline for weeks)
  goes with its week. DEFAULT (clocks years off, protected rows) and the table of a database
  upgraded from schema 9 (``scans_legacy``, dropped once empty) are emptied by the batched
  deletes and the rule above. Every run first makes the weeks ahead (``maintain``).
* The hourly counts (``scan_hours``) and sharing pairs (``pass_pairs``) of hours wholly
  before the window go too, on both backends.
* ``serve`` runs it in a thread once an hour (first a minute after start); ``retention run``
  runs it once from the command line. A failed run is logged and tried again next hour. With
  ``--retention-days 0`` (keep everything) the thread still makes PostgreSQL's weeks ahead.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from passgate.errors import UsageError

from .store import SqlStore, partitions
from .store.reports import UNSIGNED_ALERTS
from .store.rollup import hour_of

log = logging.getLogger(__name__)

DEFAULT_DAYS = 90
MIN_DAYS = 2  # above the one day "possible sharing" looks back
BATCH = 5000
EVERY_S = 3600
FIRST_AFTER_S = 60


@dataclass(frozen=True)
class Removed:
    scans: int  # rows deleted one by one (SQLite; PostgreSQL's DEFAULT and old table)
    hours: int
    pairs: int
    kept_devices: tuple[str, ...]  # checkpoints spared for an open tamper alert
    dropped: tuple[partitions.Dropped, ...] = ()  # PostgreSQL's weeks dropped whole
    busy: tuple[str, ...] = ()  # PostgreSQL's weeks due to go whose lock was not granted


def _protected_sql() -> tuple[str, list[str]]:
    unsigned = sorted(UNSIGNED_ALERTS)
    return ("SELECT DISTINCT device_id FROM alerts "
            f"WHERE kind NOT IN ({', '.join('?' * len(unsigned))}) AND NOT EXISTS "
            "(SELECT 1 FROM acks WHERE acks.alert_key = 'tamper:' || CAST(alerts.id AS TEXT))",
            unsigned)


def protected_devices(store: SqlStore, cur=None) -> list[str]:
    """Checkpoints with a tamper alert not acknowledged (ack key ``tamper:<id>``); read in
    ``cur``'s transaction when given (PostgreSQL's drop reads them under the table's lock)."""
    sql, params = _protected_sql()
    if cur is None:
        return [r[0] for r in store._all(sql + " ORDER BY 1", params)]
    cur.execute(store.sql(sql + " ORDER BY 1"), params)
    return [r[0] for r in cur.fetchall()]


def run(store: SqlStore, now: int, days: int, batch: int = BATCH) -> Removed:
    """Remove what is older than ``days`` before ``now`` (POSIX s); returns what went."""
    if days < MIN_DAYS:
        raise UsageError(f"retention shorter than {MIN_DAYS} days would cut into the "
                         "scans behind 'possible sharing'")
    cutoff_s = now - days * 86400
    cutoff_ms = cutoff_s * 1000
    maintain(store, now)
    kept = protected_devices(store)
    # Each statement reads the alerts again (an alert raised while retention runs counts):
    # the batched deletes by a subquery, PostgreSQL's drop under the table's lock.
    protected, protected_params = _protected_sql()
    where = f"t_ms < ? AND received_at < ? AND device_id NOT IN ({protected})"
    params: list = [cutoff_ms, cutoff_s, *protected_params]
    dropped: list[partitions.Dropped] = []
    busy: list[str] = []
    tables = ["scans"]

    def kept_now(cur) -> list[str]:
        now_kept = protected_devices(store, cur)
        kept.extend(d for d in now_kept if d not in kept)
        return now_kept

    if store.kind == "postgresql":
        dropped, busy = partitions.drop_before(store, cutoff_ms, kept_now)
        tables = partitions.batched_tables(store)
    scans = 0
    for table in tables:
        while True:
            with store._tx() as cur:
                cur.execute(store.sql(store._delete_some_sql(table, where)), (*params, batch))
                n = cur.rowcount
            scans += n
            if n < batch:
                break
    if partitions.LEGACY in tables:
        # The old table goes once the deletes above emptied it. Only then a second pass: it
        # would also wait again for every week the first one found busy.
        more, busy = partitions.drop_before(store, cutoff_ms, kept_now)
        dropped += more
    with store._tx() as cur:
        # Whole hours before the window only: the hour the cutoff falls in keeps its count.
        cur.execute(store.sql("DELETE FROM scan_hours WHERE hour_ms < ?"), (hour_of(cutoff_ms),))
        hours = cur.rowcount
        cur.execute(store.sql("DELETE FROM pass_pairs WHERE second_ms < ?"), (cutoff_ms,))
        pairs = cur.rowcount
    if scans or hours or pairs or dropped:
        log.info("retention (%d days): removed %d scans, %d weekly partitions, %d hourly "
                 "counts, %d sharing pairs%s", days, scans, len(dropped), hours, pairs,
                 f"; kept {len(kept)} checkpoints with open tamper alerts" if kept else "")
    return Removed(scans, hours, pairs, tuple(kept), tuple(dropped), tuple(busy))


def maintain(store: SqlStore, now: int) -> list[str]:
    """PostgreSQL: make the weekly partitions of ``scans`` from this week to
    ``partitions.AHEAD_WEEKS`` ahead that are missing; returns their names (SQLite: none)."""
    if store.kind != "postgresql":
        return []
    return partitions.ensure(store, now * 1000,
                             now * 1000 + partitions.AHEAD_WEEKS * partitions.WEEK_MS)


def start(store: SqlStore, days: int, clock: Callable[[], int] = lambda: int(time.time()),
          every_s: float = EVERY_S, first_after_s: float = FIRST_AFTER_S
          ) -> tuple[threading.Thread, threading.Event]:
    """Run :func:`run` in a daemon thread every ``every_s``; set the event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        wait = first_after_s
        while not stop.wait(wait):
            wait = every_s
            try:
                if days:
                    run(store, clock(), days)
                else:
                    maintain(store, clock())
            except Exception:  # a database hiccup: say so, try again next hour
                log.exception("retention run failed; next try in %d s", every_s)

    thread = threading.Thread(target=loop, name="retention", daemon=True)
    thread.start()
    return thread, stop


def cmd_run(args, db: Callable) -> int:
    from .store import open_store

    if args.retention_days < MIN_DAYS:
        print(f"passgate-collector: --retention-days must be at least {MIN_DAYS}", file=sys.stderr)
        return 2
    store = open_store(db(args))
    try:
        r = run(store, int(time.time()), args.retention_days, batch=args.batch)
    finally:
        store.close()
    print(f"removed {r.scans} scans, {r.hours} hourly counts, {r.pairs} sharing pairs older "
          f"than {args.retention_days} days")
    for d in r.dropped:
        print(f"dropped the weekly partition {d.name} (about {d.rows} scans; {d.moved} scans of "
              "checkpoints with an open tamper alert kept)")
    for name in r.busy:
        print(f"left the weekly partition {name} for the next run: its lock was not granted "
              f"within {partitions.LOCK_TIMEOUT} (a long query was reading it)")
    for dev in r.kept_devices:
        print(f"kept the scans of {dev}: it has a tamper alert not yet acknowledged")
    return 0


def add_parser(sub, with_db, db: Callable) -> None:
    r = sub.add_parser("retention", help="remove scans older than the retention window")
    a = r.add_subparsers(dest="action", required=True, metavar="ACTION")
    rr = with_db(a.add_parser("run", help="remove them now (serve does it every hour)"))
    rr.add_argument("--retention-days", type=int, default=DEFAULT_DAYS,
                    help=f"keep this many days of scans (default {DEFAULT_DAYS})")
    rr.add_argument("--batch", type=int, default=BATCH, help="rows deleted per transaction")
    rr.set_defaults(func=lambda args: cmd_run(args, db))
