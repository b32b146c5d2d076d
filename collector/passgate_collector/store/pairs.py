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
* PostgreSQL runs batches of different devices at once. Two batches holding the same pass
  could each miss the other's uncommitted scan, so each batch takes a transaction-scoped
  advisory lock per pass hash (sorted, so no two batches deadlock) after inserting its scans
  and before looking: the second one waits, then sees the first one's committed rows. SQLite
  writes one batch at a time and needs none.
"""

from __future__ import annotations

from collections.abc import Sequence

PAIR_WINDOW_MS = 3600 * 1000
CHUNK = 400  # hashes per IN list (far below SQLite's parameter limit)

INSERT = ("INSERT INTO pass_pairs (pass_hash, first_device, first_ms, first_verdict, "
          "second_device, second_ms, second_verdict) VALUES (?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT DO NOTHING")


def note(store, cur, device_id: str, rows: Sequence[tuple[bytes, int, str]]) -> None:
    """Record the pairs that this device's new (pass_hash, t_ms, verdict) scans make."""
    rows = [r for r in rows if r[0] is not None]
    if not rows:
        return
    hashes = sorted({bytes(r[0]) for r in rows})
    store._lock_passes(cur, hashes)
    lo = min(r[1] for r in rows) - PAIR_WINDOW_MS
    hi = max(r[1] for r in rows) + PAIR_WINDOW_MS
    others: dict[bytes, list[tuple[str, int, str]]] = {}
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
            f"SELECT pass_hash, device_id, t_ms, verdict FROM scans WHERE {match} "
            "AND t_ms >= ? AND t_ms <= ? AND device_id <> ?"), (*params, lo, hi, device_id))
        for h, dev, t, verdict in cur.fetchall():
            others.setdefault(bytes(h), []).append((dev, t, verdict))
    found = []
    for h, t, verdict in rows:
        for dev, t2, verdict2 in others.get(bytes(h), ()):
            if abs(t2 - t) > PAIR_WINDOW_MS:
                continue
            a, b = sorted([(t, device_id, verdict), (t2, dev, verdict2)])
            found.append((bytes(h), a[1], a[0], a[2], b[1], b[0], b[2]))
    if found:
        cur.executemany(store.sql(INSERT), found)


def lock_key(pass_hash: bytes) -> int:
    """A signed 64-bit advisory-lock key from a pass hash (a collision only waits longer)."""
    return int.from_bytes(pass_hash[:8], "big", signed=True)
