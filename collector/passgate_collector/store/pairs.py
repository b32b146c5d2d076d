""""Possible sharing" found at ingest: pairs of scans of one pass at two checkpoints.

The console used to find them with a self-join of a day of scans per view (10 million rows at
a city's scale). Now each batch looks up, for its own scans that carry a pass hash, the other
checkpoints' scans of the same hashes within ``PAIR_WINDOW_MS`` (a probe of the
``(pass_hash, t_ms)`` index per hash), and stores each pair once in ``pass_pairs``. A view then
reads the newest pairs from the ``pass_pairs_time`` index and keeps those closer than its
window.

Rules kept here:

* A pair is (first, second) in (t_ms, device_id) order, the order the self-join used, so the
  pair is the same whichever of its two batches arrived last; the primary key stores it once.
* Windows wider than ``PAIR_WINDOW_MS`` (one hour) are cut to it: pairs further apart are not
  kept (a pass used at entry and exit hours apart is not sharing).
* The same live code (spec 1.2: a holder's ``PG2:`` code, journal flag ``live_<keyed hash>``)
  in both scans of a pair is more than possible sharing: one screen shown at two doors, or a
  picture of it passed on. Each such pair raises a ``live_code_reused`` alert for the device
  whose batch found it (the later one to arrive); a live code belongs to one pass, so its
  scans are always pairs of that pass, and no other lookup is needed.
* PostgreSQL runs batches of different devices at once. Two batches holding the same pass
  could each miss the other's uncommitted scan, so each batch takes a transaction-scoped
  advisory lock per pass hash (sorted, so no two batches deadlock) after inserting its scans
  and before looking: the second one waits, then sees the first one's committed rows. SQLite
  writes one batch at a time and needs none.
"""

from __future__ import annotations

from collections.abc import Sequence

PAIR_WINDOW_MS = 3600 * 1000
LIVE_CODE_REUSED = "live_code_reused"  # alert kind
LIVE_FLAG_PREFIX = "live_"  # passgate.checkpoint.decide.LIVE_ID_PREFIX
CHUNK = 400  # hashes per IN list (far below SQLite's parameter limit)

INSERT = ("INSERT INTO pass_pairs (pass_hash, first_device, first_ms, first_verdict, "
          "second_device, second_ms, second_verdict) VALUES (?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT DO NOTHING")


def note(store, cur, device_id: str, rows: Sequence[tuple[bytes, int, str, Sequence[str]]],
         now: int = 0) -> None:
    """Record the pairs that this device's new (pass_hash, t_ms, verdict, flags) scans make,
    and alert on a live code seen at another checkpoint too."""
    rows = [r for r in rows if r[0] is not None]
    if not rows:
        return
    hashes = sorted({bytes(r[0]) for r in rows})
    store._lock_passes(cur, hashes)
    lo = min(r[1] for r in rows) - PAIR_WINDOW_MS
    hi = max(r[1] for r in rows) + PAIR_WINDOW_MS
    others: dict[bytes, list[tuple[str, int, str, str]]] = {}
    # PostgreSQL takes the hashes as one array (as the dedup lookup does, store/postgres.py:
    # a long IN list once got a generic plan that walked another index); SQLite IN lists.
    step = len(hashes) if store.kind == "postgresql" else CHUNK
    for i in range(0, len(hashes), step):
        chunk = hashes[i:i + step]
        params: list = chunk
        if store.kind == "postgresql":
            match, params = "pass_hash = ANY(?)", [chunk]
        else:
            match = f"pass_hash IN ({', '.join('?' * len(chunk))})"
        cur.execute(store.sql(
            f"SELECT pass_hash, device_id, t_ms, verdict, flags FROM scans WHERE {match} "
            "AND t_ms >= ? AND t_ms <= ? AND device_id <> ?"), (*params, lo, hi, device_id))
        for h, dev, t, verdict, flags in cur.fetchall():
            others.setdefault(bytes(h), []).append((dev, t, verdict, flags or ""))
    found = []
    reused = []
    for h, t, verdict, flags in rows:
        live = _live_code(flags)
        for dev, t2, verdict2, flags2 in others.get(bytes(h), ()):
            if abs(t2 - t) > PAIR_WINDOW_MS:
                continue
            a, b = sorted([(t, device_id, verdict), (t2, dev, verdict2)])
            found.append((bytes(h), a[1], a[0], a[2], b[1], b[0], b[2]))
            if live is not None and live in flags2.split():
                reused.append(f"{live} also at {dev}, {abs(t2 - t) / 1000:.1f} s apart "
                              f"({verdict2} there, {verdict} here)")
    if found:
        cur.executemany(store.sql(INSERT), found)
    for detail in reused:
        store._alert(cur, device_id, LIVE_CODE_REUSED, detail, now)


def _live_code(flags: Sequence[str]) -> str | None:
    """The ``live_<hex>`` flag of a scan, if it shows a live code with an id."""
    for flag in flags:
        if flag.startswith(LIVE_FLAG_PREFIX):
            return flag
    return None


def lock_key(pass_hash: bytes) -> int:
    """A signed 64-bit advisory-lock key from a pass hash (a collision only waits longer)."""
    return int.from_bytes(pass_hash[:8], "big", signed=True)
