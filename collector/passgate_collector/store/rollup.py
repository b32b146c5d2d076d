"""Counts kept up to date at ingest, so charts and summaries never scan ``scans``.

Rules kept here:

* ``scan_hours`` holds one row per (hour, site, zone, verdict, reason) with the number of
  scans stored in it. It is written in the ingest transaction that stores the scans (one
  ``INSERT ... ON CONFLICT DO UPDATE`` per distinct key of the batch, usually one or two), so
  it is exactly as committed as the scans it counts.
* A scan without a site is counted under site ``''`` (a primary key column cannot be NULL);
  readers turn it back into None.
* Hours are ``(t_ms // 3600000) * 3600000``: the device's time, as the scans list shows it.
  A chart asks whole hours, so reading the rollup gives the same numbers the scans would.
* Moving a checkpoint to another site (``site set``) moves its counts with its scans, in the
  same transaction; retention removes the rows of hours it removed scans from only when the
  whole hour is older than the window (``retention.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

HOUR_MS = 3600 * 1000

UPSERT_HEAD = "INSERT INTO scan_hours (hour_ms, site, zone, verdict, reason, n) VALUES "
UPSERT_TAIL = (" ON CONFLICT (hour_ms, site, zone, verdict, reason) "
               "DO UPDATE SET n = scan_hours.n + excluded.n")
UPSERT = UPSERT_HEAD + "(?, ?, ?, ?, ?, ?)" + UPSERT_TAIL
CHUNK = 200  # keys per statement (1,200 parameters: far below either backend's limit)


def hour_of(t_ms: int) -> int:
    return (t_ms // HOUR_MS) * HOUR_MS


def add(store, cur, scans: Iterable[tuple[int, str | None, str, str, str]],
        sign: int = 1) -> None:
    """Count (t_ms, site, zone, verdict, reason) scans into ``scan_hours`` (``sign`` -1
    takes them out again)."""
    counts = Counter((hour_of(t), site or "", zone, verdict, reason)
                     for t, site, zone, verdict, reason in scans)
    # One statement for the batch's few keys (a batch of one hour at one gate has one or two):
    # executemany would cost a round trip, or a pipeline, per key.
    items = sorted(counts.items())  # keys in order: two batches never lock rows crosswise
    for i in range(0, len(items), CHUNK):
        part = items[i:i + CHUNK]
        cur.execute(store.sql(UPSERT_HEAD + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(part))
                              + UPSERT_TAIL),
                    [v for k, n in part for v in (*k, sign * n)])


def move_device(store, cur, device_id: str, site: str) -> None:
    """Before a device's scans change site: move their counts from the old sites to ``site``.

    Reads the device's own (device_id, t_ms) range once: an admin action, not a view.
    """
    cur.execute(store.sql(
        "SELECT (t_ms / 3600000) * 3600000, COALESCE(site, ''), zone, verdict, reason, "
        "COUNT(*) FROM scans WHERE device_id = ? AND COALESCE(site, '') <> ? "
        "GROUP BY 1, 2, 3, 4, 5"), (device_id, site))
    rows = cur.fetchall()
    if rows:
        cur.executemany(store.sql(UPSERT), [(h, s, z, v, r, -n) for h, s, z, v, r, n in rows])
        cur.executemany(store.sql(UPSERT), [(h, site, z, v, r, n) for h, _s, z, v, r, n in rows])
