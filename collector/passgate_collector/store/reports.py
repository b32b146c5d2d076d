"""Read-only queries behind the staff page (mixed into :class:`~.base.SqlStore`)."""

from __future__ import annotations

from collections.abc import Sequence

from .pairs import PAIR_WINDOW_MS

# Alert kinds anyone can cause without the device key (a forged batch for a known device id):
# counted in alert_kinds only, never one row each, so a flood can neither grow the database
# nor push the signed tamper alerts out of sight.
UNSIGNED_ALERTS = frozenset({"bad_signature"})

SCAN_COLS = (
    "seq, nonce, t_ms, clock_state, verdict, reason, pass_hash, kid, purpose, zone, flags, chain"
)


def scan_dict(r: Sequence) -> dict:
    """A row in ``SCAN_COLS`` order as the journal-shaped mapping ``chain_of`` takes."""
    keys = [k.strip() for k in SCAN_COLS.split(",")]
    d = dict(zip(keys, r, strict=True))
    for k in ("nonce", "pass_hash", "chain"):
        if d[k] is not None:
            d[k] = bytes(d[k])
    d["flags"] = d["flags"].split(" ") if d["flags"] else []  # joined with " " (Tx.insert_scans)
    return d


class Reports:
    """Needs ``self._all(sql, params)`` from the store."""

    def _all(self, sql: str, params: Sequence = ()) -> list:
        raise NotImplementedError

    # --- staff page ----------------------------------------------------------------------
    # Every query the page runs is bounded at a city's scale (70 million scans, 2,000
    # devices): an index range with a LIMIT, the per-hour counts, or a small table. The
    # whole-table ones below (scan_counts, devices_with_scans, recent_scans without a device
    # list) are for tests and tools, never a page.
    def recent_scans(self, per_device: int,
                     devices: Sequence[str] | None = None) -> dict[str, list[dict]]:
        """The newest ``per_device`` scans of each of ``devices`` (default: every device
        with scans, a whole-index read), newest first: one (device_id, seq) range each."""
        out: dict[str, list[dict]] = {}
        wanted = self.devices_with_scans() if devices is None else list(devices)
        if getattr(self, "kind", "") == "postgresql":
            # One statement for all the devices: each range still one (device_id, seq) read
            # per partition (store/partitions.py), but one plan and one set of partition
            # locks per page instead of one per device (the staff page asks for 20).
            for r in self._all(f"SELECT d.dev, s.* FROM unnest(?::text[]) WITH ORDINALITY "
                               f"AS d(dev, i) CROSS JOIN LATERAL (SELECT {SCAN_COLS}, problem "
                               "FROM scans WHERE device_id = d.dev ORDER BY seq DESC LIMIT ?) "
                               "AS s ORDER BY d.i, s.seq DESC", (wanted, per_device)):
                out.setdefault(r[0], []).append(dict(scan_dict(r[1:-1]), problem=r[-1]))
            return out
        for dev in wanted:
            rows = self._all(f"SELECT {SCAN_COLS}, problem FROM scans WHERE device_id = ? "
                             "ORDER BY seq DESC LIMIT ?", (dev, per_device))
            if rows:
                out[dev] = [dict(scan_dict(r[:-1]), problem=r[-1]) for r in rows]
        return out

    def devices_with_scans(self) -> list[str]:
        return [r[0] for r in self._all("SELECT DISTINCT device_id FROM scans ORDER BY 1")]

    def denials_by_reason(self, since_ms: int) -> list[tuple[str, int]]:
        """Denials per reason in the hours from the one holding ``since_ms`` on, from the
        counts kept at ingest (``scan_hours``; at most hours x sites x zones x reasons rows),
        never the scans: a day of a city is 10 million of them."""
        hour = 3_600_000
        # int(): PostgreSQL's SUM of a BIGINT is NUMERIC (a Decimal).
        return [(r[0], int(r[1])) for r in self._all(
            "SELECT reason, SUM(n) FROM scan_hours WHERE verdict = 'deny' AND hour_ms >= ? "
            "GROUP BY reason HAVING SUM(n) > 0 ORDER BY 2 DESC, 1",
            (since_ms // hour * hour,))]

    def scan_counts(self) -> dict[str, int]:
        return dict(self._all("SELECT device_id, COUNT(*) FROM scans GROUP BY device_id"))

    def shared_passes(self, window_ms: int, since_ms: int, limit: int) -> list[dict]:
        """Pairs of scans of one pass hash at two devices less than ``window_ms`` apart (at
        most ``pairs.PAIR_WINDOW_MS``), the first at or after ``since_ms``, newest second scan
        first. Read from ``pass_pairs`` (found at ingest, store/pairs.py): bounded by time
        and the limit, never a join of scans."""
        rows = self._all(
            "SELECT pass_hash, first_device, first_ms, first_verdict, second_device, second_ms, "
            "second_verdict FROM pass_pairs WHERE second_ms >= ? AND first_ms >= ? "
            "AND second_ms - first_ms <= ? ORDER BY second_ms DESC, pass_hash, first_device, "
            "first_ms, second_device LIMIT ?",
            (since_ms, since_ms, min(window_ms, PAIR_WINDOW_MS), limit))
        keys = ("pass_hash", "first_device", "first_ms", "first_verdict", "second_device",
                "second_ms", "second_verdict")
        return [dict(zip(keys, (bytes(r[0]), *r[1:]), strict=True)) for r in rows]

    def alert_summary(self) -> list[dict]:
        """One entry per (device, kind) ever alerted: count, first and last time, first and
        latest detail. Signed tamper kinds first, then forged batches; newest first within.
        At most (devices x kinds) entries, so the staff page shows all of them."""
        unsigned = sorted(UNSIGNED_ALERTS)
        rows = self._all(
            "SELECT device_id, kind, n, first_at, last_at, first_detail, last_detail "
            f"FROM alert_kinds ORDER BY CASE WHEN kind IN ({', '.join('?' * len(unsigned))}) "
            "THEN 1 ELSE 0 END, last_at DESC, device_id, kind", unsigned)
        keys = ("device_id", "kind", "count", "first_at", "last_at", "first_detail",
                "last_detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def alerts(self, limit: int) -> list[dict]:
        """The newest ``limit`` alert events, one per incident (forged batches are only
        counted, see :meth:`alert_summary`; rows of them an older collector kept are left
        out here too, should any remain)."""
        unsigned = sorted(UNSIGNED_ALERTS)
        rows = self._all("SELECT id, device_id, kind, detail, created_at FROM alerts "
                         f"WHERE kind NOT IN ({', '.join('?' * len(unsigned))}) "
                         "ORDER BY id DESC LIMIT ?", (*unsigned, limit))
        return [dict(zip(("id", "device_id", "kind", "detail", "created_at"), r, strict=True))
                for r in rows]

    def flagged_scans(self, limit: int) -> list[dict]:
        """The newest ``limit`` stored rows whose chain does not check (``problem`` set):
        read through the partial index ``scans_problem``, which holds only those rows."""
        rows = self._all(f"SELECT device_id, {SCAN_COLS}, problem FROM scans "
                         "WHERE problem IS NOT NULL ORDER BY received_at DESC, seq DESC LIMIT ?",
                         (limit,))
        return [dict(scan_dict(r[1:-1]), device_id=r[0], problem=r[-1]) for r in rows]

    def rejected_rows(self, limit: int) -> list[dict]:
        rows = self._all("SELECT device_id, seq, reason, detail, received_at FROM rejected "
                         "ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(zip(("device_id", "seq", "reason", "detail", "received_at"), r,
                         strict=True)) for r in rows]
