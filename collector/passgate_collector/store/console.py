"""Queries behind the staff console (mixed into :class:`~.base.SqlStore`).

Rules kept here, because the console must stay fast at a city's scale (70 million scans):

* Every query is bounded: a time range, a ``LIMIT``, or both. Nothing counts or sorts a
  whole table per view.
* Scan lists are keyset-paginated, newest first, on ``(t_ms, device_id, seq)`` - unique per
  scan - never with ``OFFSET``: page 1,000 costs what page 1 costs.
* A filter by site reads the ``(site, t_ms)`` index, by checkpoint ``(device_id, t_ms)``, a
  pass search the pass index, by reason ``(reason, t_ms)`` (see ``schema.LATE_DDL``);
  on SQLite the pass index leads with the day (schema 12), so a pass search names the days
  of its range that hold scans, found by one index search each (``PASS_DAYS``);
  other filters (zone, verdict) narrow rows inside the time range those indexes give.
* Health history grows by a row only when something a guard cares about changed, or once an
  hour at most otherwise: a batch a minute from 2,000 devices must not add 3 million rows a day.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from . import rollup, schema

FEED_COLS = "t_ms, device_id, seq, site, zone, verdict, reason, pass_hash, purpose, flags, problem"
FEED_KEYS = tuple(k.strip() for k in FEED_COLS.split(","))
HEALTH_LOG_EVERY_S = 3600  # an unchanged health is logged at most hourly
# Changes of these are logged at once; backlog alone changes with every batch.
HEALTH_LOG_KEYS = ("clock_state", "dead_letters", "bundle_version", "firmware")
HEALTH_COLS = ("clock_state", "clock_offset_s", "backlog", "dead_letters", "bundle_version",
               "firmware")


@dataclass(frozen=True)
class ScanFilter:
    """One filtered view of the scans; every field optional except the time range.

    ``since_ms`` <= t_ms < ``until_ms`` (device milliseconds, UTC), always set by the caller,
    so no view reads unbounded history.
    """

    since_ms: int
    until_ms: int
    site: str | None = None
    zone: str | None = None
    device: str | None = None
    verdict: str | None = None
    reason: str | None = None
    pass_hash: bytes | None = None

    def where(self) -> tuple[str, list]:
        clauses, params = ["t_ms >= ?", "t_ms < ?"], [self.since_ms, self.until_ms]
        for col in ("site", "zone", "verdict", "reason", "pass_hash"):
            value = getattr(self, col)
            if value is not None:
                clauses.append(f"{col} = ?")
                params.append(value)
        if self.device is not None:
            clauses.append("device_id = ?")
            params.append(self.device)
        return " AND ".join(clauses), params


# SQLite: the days in [lo, hi] that hold any scan, read from scans_pass_day one index search
# per day found (a loose index scan), so a search "since 0" costs the days stored, not the
# days since 1970; the query then probes (day, pass_hash) once per such day.
PASS_DAYS = (
    f"WITH RECURSIVE pass_days(d) AS (SELECT (SELECT MIN({schema.DAY_SQL}) FROM scans "
    f"WHERE {schema.DAY_SQL} >= ? AND {schema.DAY_SQL} <= ?) UNION ALL "
    f"SELECT (SELECT MIN({schema.DAY_SQL}) FROM scans WHERE {schema.DAY_SQL} > pass_days.d "
    f"AND {schema.DAY_SQL} <= ?) FROM pass_days WHERE pass_days.d IS NOT NULL) ")


def _pass_days(store, f: ScanFilter, where: str, params: list) -> tuple[str, str, list]:
    """(start of the query up to WHERE, the WHERE, params) for ``f`` on ``store``: on SQLite,
    with a pass hash, each row's day bound to the days of ``f``'s range that hold scans
    (schema 12), and the index named: with statistics (ANALYZE) and a LIMIT, the planner
    otherwise walked the whole range through scans_time newest first to save a sort of the
    few rows the pass has (tests/test_collector_passday.py pins the plan)."""
    if f.pass_hash is None or store.kind != "sqlite" or f.until_ms <= f.since_ms:
        return f"SELECT {FEED_COLS} FROM scans", where, params
    lo, hi = schema.day_of(f.since_ms), schema.day_of(f.until_ms - 1)
    return (f"{PASS_DAYS}SELECT {FEED_COLS} FROM scans INDEXED BY scans_pass_day",
            f"{schema.DAY_SQL} IN (SELECT d FROM pass_days) AND {where}", [lo, hi, hi, *params])


Cursor = tuple[int, str, int]  # (t_ms, device_id, seq): the keyset of a scan


def cursor_text(c: Cursor) -> str:
    return f"{c[0]}:{c[2]}:{c[1]}"  # the device id last: it is the only part with letters


def parse_cursor(text: str | None) -> Cursor | None:
    """A cursor from a URL, or None when absent or not one (a bad cursor is the first page)."""
    if not text:
        return None
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(_int_text(p) for p in (parts[0].removeprefix("-"), parts[1])):
        return None
    t_ms, seq = int(parts[0]), int(parts[1])
    if not (-schema.INT8_MAX - 1 <= t_ms <= schema.INT8_MAX and seq <= schema.INT8_MAX):
        return None  # no stored row lies there; a BIGINT parameter could not hold it either
    return t_ms, parts[2], seq


def _int_text(text: str) -> bool:
    """ASCII digits ("²" and "٣" pass str.isdigit(); int() refuses one, reads the other)."""
    return text.isascii() and text.isdigit()


def _feed_row(r: Sequence) -> dict:
    d = dict(zip(FEED_KEYS, r, strict=True))
    if d["pass_hash"] is not None:
        d["pass_hash"] = bytes(d["pass_hash"])
    d["flags"] = d["flags"].split(" ") if d["flags"] else []  # joined with " " (Tx.insert_scans)
    d["cursor"] = cursor_text((d["t_ms"], d["device_id"], d["seq"]))
    return d


def log_health(store, cur, device_id: str, health: dict, now: int) -> None:
    """Append ``health`` to the device's history if it changed, or an hour passed."""
    cur.execute(store.sql(f"SELECT at, {', '.join(HEALTH_COLS)} FROM health_log "
                          "WHERE device_id = ? ORDER BY id DESC LIMIT 1"), (device_id,))
    last = cur.fetchone()
    if last is not None:
        held = dict(zip(HEALTH_COLS, last[1:], strict=True))
        changed = any(k in health and health[k] != held[k] for k in HEALTH_LOG_KEYS)
        if not changed and now - last[0] < HEALTH_LOG_EVERY_S:
            return
        health = {**held, **health}
    cur.execute(store.sql(f"INSERT INTO health_log (device_id, at, {', '.join(HEALTH_COLS)}) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                (device_id, now, *(health.get(k) for k in HEALTH_COLS)))


class ConsoleQueries:
    """Needs ``self._all(sql, params)``, ``self._tx()``, ``self.sql(text)`` and ``self.kind``
    from the store."""

    kind: str

    def _all(self, sql: str, params: Sequence = ()) -> list:
        raise NotImplementedError

    def _tx(self, write: bool = True) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def sql(self, text: str) -> str:
        raise NotImplementedError

    # --- sites ---------------------------------------------------------------------------
    def sites(self) -> dict[str, str]:
        """Site name -> IANA time zone."""
        return dict(self._all("SELECT site, tz FROM sites ORDER BY site"))

    def device_sites(self) -> dict[str, str | None]:
        return dict(self._all("SELECT device_id, site FROM devices ORDER BY device_id"))

    def set_site(self, site: str, tz: str, devices: Sequence[str] = ()) -> list[str]:
        """Create or update a site, and move ``devices`` to it (their stored scans too, so a
        filter by site finds their history). Returns the device ids not enrolled (left out)."""
        missing = []
        with self._tx() as cur:
            cur.execute(self.sql("INSERT INTO sites (site, tz) VALUES (?, ?) ON CONFLICT (site) "
                                 "DO UPDATE SET tz = excluded.tz"), (site, tz))
            for dev in devices:
                cur.execute(self.sql("UPDATE devices SET site = ? WHERE device_id = ?"),
                            (site, dev))
                if cur.rowcount != 1:
                    missing.append(dev)
                    continue
                # One-off, per device (its (device_id, t_ms) range): an admin action, not a view.
                rollup.move_device(self, cur, dev, site)
                cur.execute(self.sql("UPDATE scans SET site = ? WHERE device_id = ?"),
                            (site, dev))
        return missing

    # --- scans ---------------------------------------------------------------------------
    def find_scans(self, f: ScanFilter, limit: int, before: Cursor | None = None) -> list[dict]:
        """Up to ``limit`` scans matching ``f``, newest first, strictly older than ``before``."""
        if before is not None:
            # The cursor's time bounds the range itself: SQLite narrows its index range by one
            # lower and one upper bound only, and with the row value alone walked the whole
            # day (0.1 s a page at 10 M rows).
            f = replace(f, until_ms=min(f.until_ms, before[0] + 1))
        where, params = f.where()
        if before is not None:
            where += " AND (t_ms, device_id, seq) < (?, ?, ?)"
            params += list(before)
        select, where, params = _pass_days(self, f, where, params)
        rows = self._all(f"{select} WHERE {where} "
                         "ORDER BY t_ms DESC, device_id DESC, seq DESC LIMIT ?",
                         (*params, limit))
        return [_feed_row(r) for r in rows]

    def scans_after(self, f: ScanFilter, after: Cursor, limit: int) -> list[dict]:
        """Scans matching ``f`` newer than ``after``, oldest first: the live feed's poll."""
        f = replace(f, since_ms=max(f.since_ms, after[0]))  # as above
        select, where, params = _pass_days(self, f, *f.where())
        rows = self._all(f"{select} WHERE {where} "
                         "AND (t_ms, device_id, seq) > (?, ?, ?) "
                         "ORDER BY t_ms, device_id, seq LIMIT ?", (*params, *after, limit))
        return [_feed_row(r) for r in rows]

    def zones(self, since_ms: int, limit: int = 200) -> list[str]:
        """Zones seen since ``since_ms``'s hour (for the filter's choices; from the hourly
        counts, so it costs the same at 70 million scans as at 1,000)."""
        return [r[0] for r in self._all("SELECT DISTINCT zone FROM scan_hours WHERE hour_ms >= ? "
                                        "ORDER BY 1 LIMIT ?", (rollup.hour_of(since_ms), limit))]

    # --- charts --------------------------------------------------------------------------
    # Both read scan_hours (kept at ingest, store/rollup.py); the range is whole hours: an
    # hour is counted when its start is in [since_ms, until_ms).
    def hourly_by_site(self, since_ms: int, until_ms: int) -> list[tuple]:
        """(site or None, hour start in ms, scans, denials) per site and hour in the range."""
        # int(): PostgreSQL's SUM of a BIGINT is NUMERIC (a Decimal).
        return [(r[0] or None, r[1], int(r[2]), int(r[3])) for r in self._all(
            "SELECT site, hour_ms, SUM(n), SUM(CASE WHEN verdict = 'deny' THEN n ELSE 0 END) "
            "FROM scan_hours WHERE hour_ms >= ? AND hour_ms < ? GROUP BY site, hour_ms "
            "HAVING SUM(n) > 0 ORDER BY hour_ms, site", (since_ms, until_ms))]

    def hourly_reasons(self, since_ms: int, until_ms: int, site: str | None = None) -> list[tuple]:
        """(hour start in ms, reason, denials) for denials in the range (one site if given)."""
        extra, params = ("AND site = ? ", [site]) if site else ("", [])
        return [(r[0], r[1], int(r[2])) for r in self._all(
            "SELECT hour_ms, reason, SUM(n) FROM scan_hours "
            f"WHERE verdict = 'deny' AND hour_ms >= ? AND hour_ms < ? {extra}"
            "GROUP BY hour_ms, reason HAVING SUM(n) > 0 ORDER BY hour_ms, reason",
            (since_ms, until_ms, *params))]

    # --- alerts --------------------------------------------------------------------------
    def acks(self, since: int) -> dict[str, dict]:
        """Acknowledgements made since ``since`` (POSIX s), by alert key."""
        rows = self._all("SELECT alert_key, label, by_user, at FROM acks WHERE at >= ? "
                         "ORDER BY at DESC LIMIT 1000", (since,))
        return {r[0]: {"label": r[1], "by": r[2], "at": r[3]} for r in rows}

    def acks_for(self, keys: Sequence[str]) -> dict[str, dict]:
        """The acknowledgements of these alert keys, however old, by key (primary-key
        lookups, 500 keys a query). An alert is acknowledged or open by its own key, never by
        the ack's age or by how many others were made since: retention spares the scans of an
        open tamper alert by the same rule (``retention.protected_devices``)."""
        out: dict[str, dict] = {}
        unique = sorted(set(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            for r in self._all("SELECT alert_key, label, by_user, at FROM acks WHERE alert_key "
                               f"IN ({', '.join('?' * len(chunk))})", chunk):
                out[r[0]] = {"label": r[1], "by": r[2], "at": r[3]}
        return out

    def acknowledge(self, key: str, label: str, by: str, now: int) -> bool:
        """Record who acknowledged alert ``key`` and when; False if it already was."""
        with self._tx() as cur:
            cur.execute(self.sql("INSERT INTO acks (alert_key, label, by_user, at) "
                                 "VALUES (?, ?, ?, ?) ON CONFLICT (alert_key) DO NOTHING"),
                        (key, label, by, now))
            return cur.rowcount == 1

    # --- one checkpoint ------------------------------------------------------------------
    def health_history(self, device_id: str, limit: int) -> list[dict]:
        rows = self._all(f"SELECT at, {', '.join(HEALTH_COLS)} FROM health_log "
                         "WHERE device_id = ? ORDER BY id DESC LIMIT ?", (device_id, limit))
        return [dict(zip(("at", *HEALTH_COLS), r, strict=True)) for r in rows]
