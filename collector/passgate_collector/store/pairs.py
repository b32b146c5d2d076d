""""Possible sharing" found at ingest: pairs of scans of one pass at two checkpoints.

The console used to find them with a self-join of a day of scans per view (10 million rows at
a city's scale). Now each batch looks up, for its own scans that carry a pass hash, the other
checkpoints' scans of the same hashes within ``PAIR_WINDOW_MS`` (a probe of the pass index
per hash: ``(pass_hash, t_ms)`` on PostgreSQL, per day on SQLite, schema.py), and stores each
pair once in ``pass_pairs``. A view then reads the newest pairs from the ``pass_pairs_time``
index and keeps those closer than its window.

Rules kept here:

* A pair is (first, second) in (t_ms, device_id) order, the order the self-join used, so the
  pair is the same whichever of its two batches arrived last; the primary key stores it once.
* Windows wider than ``PAIR_WINDOW_MS`` (one hour) are cut to it: pairs further apart are not
  kept (a pass used at entry and exit hours apart is not sharing).
* The same live code (spec 1.2: a holder's ``PG2:`` code, journal flag ``live_<keyed hash>``)
  in both scans of a pair is more than possible sharing: one screen shown at two doors, or a
  picture of it passed on. Each such pair raises a ``live_code_reused`` alert for the device
  whose batch found it (the later one to arrive). Only a batch's scans that carry a live flag
  are looked up for it (``live_reuse``): most scans are of static passes and pay nothing.
  The look-up finds the earliest ``PAIRS_PER_SCAN`` other scans that carry the same flag, as
  the pairs are capped: a code passed around a city is alerted that many times per scan
  already, and a batch's statements stay bounded.
* A scan pairs with at most ``PAIRS_PER_SCAN`` other checkpoints' scans of its pass, the
  earliest in its window. A pass shown at more doors than that within the hour is flagged
  that many times over already, and without the cap the pairs grow with the square of the
  doors: a reconnect storm in which 2,000 checkpoints had scanned the same 200 passes
  (bench/storm.py, before it gave each checkpoint its own passes) made 44.5 million pairs
  from 133,600 scans and held every batch for seconds. With it a batch's cost is bounded
  whatever it holds: no input blocks a queue.
* PostgreSQL runs batches of different devices at once. Two batches holding the same pass
  could each miss the other's uncommitted scan, so each batch takes a transaction-scoped
  advisory lock per pass hash (sorted, so no two batches deadlock) after inserting its scans
  and before looking: the second one waits, then sees the first one's committed rows. SQLite
  writes one batch at a time and needs none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import schema

PAIR_WINDOW_MS = 3600 * 1000
# The highest t_ms whose window's upper end is still a BIGINT: the probes' upper bound is
# LEAST(t, this) + the window, so a scan near the end of the range never overflows (a row
# the protocol allows must never fail its batch: no input blocks a queue).
T_TOP = schema.INT8_MAX - PAIR_WINDOW_MS
PAIRS_PER_SCAN = 16  # other checkpoints' scans a new scan is paired with, the earliest first
LIVE_CODE_REUSED = "live_code_reused"  # alert kind
LIVE_FLAG_PREFIX = "live_"  # passgate.checkpoint.decide.LIVE_ID_PREFIX
CHUNK = 400  # hashes per IN list (far below SQLite's parameter limit)

INSERT = ("INSERT INTO pass_pairs (pass_hash, first_device, first_ms, first_verdict, "
          "second_device, second_ms, second_verdict) VALUES (?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT DO NOTHING")


# PostgreSQL, set-based. One statement takes the advisory locks (keys = lock_key, computed
# here and sent as one int8 array literal, taken in key order), the next finds and stores the
# pairs (a new statement: its snapshot is taken after the locks were granted, so it sees
# what the batch it waited for committed). The keys were computed by the server from the
# batch's rows read back by their range: the statement cost the server 1.3-1.8 us a row with
# that read and a hex round trip per row, 0.6 now, for ~0.35 more here (docs/collector.md,
# "Ingest cost, measured"); the keys are the same (tests/test_collector_scale.py), so
# collectors of either code lock alike. The batch's new scans are read back from ``scans``
# by their (device_id, seq) range when their seqs are consecutive (the usual batch): nothing
# to send, where psycopg dumps a list parameter in Python, ~0.5 us an element. The batch's
# t_ms range bounds that read too, so only the one or two weekly partitions it falls in are opened
# (store/partitions.py), not all of them. A range can also hold older rows of
# the device with the same seqs (a journal that restarted); their pairs are found again and
# ON CONFLICT keeps them once. Other batches send (hash, t_ms, verdict) as binary arrays.
# Each scan probes the (pass_hash, t_ms) index once, in t_ms order, for at most
# PAIRS_PER_SCAN other scans: the subquery is kept apart by its LIMIT, so no statistics can
# turn the probes into a join that reads the table
# (tests/test_collector_scale.py). The probes are also bounded by the whole batch's time
# range widened by the window (``plo``, ``phi``: implied by each probe's own bounds, so no
# pair is lost): the planner knows it when it plans the statement and keeps only the
# partitions it meets, where each probe alone, bounded by its row's t_ms, is pruned at run
# time over every partition again (in process, PostgreSQL's CPU per row 28 -> 23 us at 0
# stored rows, 33 -> 28 at 1,000,000, 20 weekly partitions; docs/collector.md). Device ids
# are compared byte by byte (COLLATE "C"), as Python orders them, so a pair is ordered the
# same by either backend.
_PG_RANGE = ("SELECT pass_hash AS h, t_ms AS t, verdict AS v FROM scans WHERE device_id = %(d)s "
             "AND seq >= %(lo)s AND seq <= %(hi)s AND t_ms >= %(tlo)s AND t_ms <= %(thi)s "
             "AND pass_hash IS NOT NULL")
_PG_ARRAYS = "SELECT * FROM unnest(%(h)b::bytea[], %(t)b::int8[], %(v)b::text[]) AS a(h, t, v)"
# The keys as text ('{k1,k2,...}'): psycopg sends one string, where a list parameter is
# dumped element by element in Python.
PG_LOCK = ("SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM unnest(%(keys)s::int8[]) AS k "
           "ORDER BY k) AS keys")
_PG_PAIRS = (
    "INSERT INTO pass_pairs (pass_hash, first_device, first_ms, first_verdict, "
    "second_device, second_ms, second_verdict) "
    "SELECT n.h, CASE WHEN o.mine THEN %(d)s ELSE s.device_id END, "
    "CASE WHEN o.mine THEN n.t ELSE s.t_ms END, CASE WHEN o.mine THEN n.v ELSE s.verdict END, "
    "CASE WHEN o.mine THEN s.device_id ELSE %(d)s END, "
    "CASE WHEN o.mine THEN s.t_ms ELSE n.t END, CASE WHEN o.mine THEN s.verdict ELSE n.v END "
    "FROM ({new}) AS n "
    "CROSS JOIN LATERAL (SELECT device_id, t_ms, verdict FROM scans "
    "WHERE pass_hash = n.h AND t_ms >= n.t - %(w)s AND t_ms <= LEAST(n.t, %(top)s) + %(w)s "
    "AND t_ms >= %(plo)s AND t_ms <= %(phi)s AND device_id <> %(d)s "
    "ORDER BY t_ms LIMIT %(k)s) AS s "
    "CROSS JOIN LATERAL (SELECT n.t < s.t_ms OR (n.t = s.t_ms "
    "AND %(d)s::text COLLATE \"C\" < s.device_id COLLATE \"C\") AS mine) AS o "
    "ON CONFLICT DO NOTHING")
PG_PAIRS, PG_PAIRS_RANGE = _PG_PAIRS.format(new=_PG_ARRAYS), _PG_PAIRS.format(new=_PG_RANGE)


# SQLite: one day's scans of some hashes (an index search of scans_pass_day per hash).
SQLITE_PAIRS = (f"SELECT pass_hash, device_id, t_ms, verdict FROM scans WHERE {schema.DAY_SQL} = ? "
                "AND pass_hash IN ({marks}) AND t_ms >= ? AND t_ms <= ? AND device_id <> ?")
# Another checkpoint's scans of one hash within the window that carry the same live flag (the
# flag with a space each side found in the space-separated flags padded likewise: exact and
# case-sensitive on both backends, where SQLite's LIKE ignores case), the earliest
# ``PAIRS_PER_SCAN``, as the pairs are capped; SQLite names the window's days.
# (SQLite is told its index: with statistics, the ORDER BY ... LIMIT makes its planner walk
# scans_time instead.)
_LIVE_PEERS = ("SELECT device_id, t_ms, verdict, flags FROM scans{index} WHERE pass_hash = ? "
               "AND t_ms >= ? AND t_ms <= ? AND device_id <> ? "
               "AND {find}(' ' || flags || ' ', ?) > 0{day} "
               f"ORDER BY t_ms LIMIT {PAIRS_PER_SCAN}")
LIVE_PEERS = _LIVE_PEERS.format(index="", find="strpos", day="")
SQLITE_LIVE_PEERS = _LIVE_PEERS.format(index=" INDEXED BY scans_pass_day", find="instr",
                                       day=f" AND {schema.DAY_SQL} IN (?, ?)")


def _window_days(t: int) -> tuple[int, int]:
    """The first and last UTC day (``schema.DAY_SQL``) of the pairing window around ``t``:
    one day, or two when the window crosses midnight (it is 2 hours wide)."""
    lo, hi = window(t)
    return schema.day_of(lo), schema.day_of(hi)


def window(t: int) -> tuple[int, int]:
    """The pairing window around ``t`` (0 <= t <= ``schema.INT8_MAX``, the protocol's
    range), its ends held inside that range: a BIGINT on both backends, whatever ``t``."""
    return t - PAIR_WINDOW_MS, min(t, T_TOP) + PAIR_WINDOW_MS


def note(store, cur, device_id: str, rows: Sequence[tuple[bytes, int, str]],
         seqs: tuple[int, int] | None = None,
         times: tuple[int, int] | None = None) -> None:
    """Record the pairs that this device's new (pass_hash, t_ms, verdict) scans make.
    ``seqs``: (first, last) when the new scans are the device's rows first..last, consecutive
    (PostgreSQL then reads them back instead of receiving them); ``times``: the lowest and
    highest t_ms of all the new scans (PostgreSQL bounds that read by it)."""
    rows = [r for r in rows if r[0] is not None]
    if not rows:
        return
    if store.kind == "postgresql":
        params: dict = {"d": device_id, "w": PAIR_WINDOW_MS, "k": PAIRS_PER_SCAN,
                        "top": T_TOP}
        if seqs is not None and times is not None:
            params.update(lo=seqs[0], hi=seqs[1], tlo=times[0], thi=times[1])
            find = PG_PAIRS_RANGE
            t_lo, t_hi = times  # every scan the range reads lies in it
        else:
            params.update(h=[bytes(r[0]) for r in rows], t=[r[1] for r in rows],
                          v=[r[2] for r in rows])
            find = PG_PAIRS
            t_lo, t_hi = min(r[1] for r in rows), max(r[1] for r in rows)
        params.update(plo=window(t_lo)[0], phi=window(t_hi)[1])
        cur.execute(PG_LOCK, {"keys": lock_keys(r[0] for r in rows)})
        cur.execute(find, params)
        return
    # SQLite writes one batch at a time: no lock. Its pass index leads with the day
    # (schema.DAY_SQL), so the hashes are looked up day by day: each hash in the one or two
    # days its scans' windows meet (a backlog's batch can span many days), one statement per
    # day and chunk. A stored scan lies in one day only, so no row is read twice.
    by_day: dict[int, set[bytes]] = {}
    for h, t, _v in rows:
        for day in set(_window_days(t)):
            by_day.setdefault(day, set()).add(bytes(h))
    lo, hi = window(min(r[1] for r in rows))[0], window(max(r[1] for r in rows))[1]
    others: dict[bytes, list[tuple[str, int, str]]] = {}
    for day, day_hashes in sorted(by_day.items()):
        hashes = sorted(day_hashes)
        for i in range(0, len(hashes), CHUNK):  # SQLite: IN lists
            chunk = hashes[i:i + CHUNK]
            cur.execute(store.sql(SQLITE_PAIRS.format(marks=", ".join("?" * len(chunk)))),
                        (day, *chunk, lo, hi, device_id))
            for h, dev, t, verdict in cur.fetchall():
                others.setdefault(bytes(h), []).append((dev, t, verdict))
    found = []
    for h, t, verdict in rows:
        near = sorted((t2, dev, verdict2) for dev, t2, verdict2 in others.get(bytes(h), ())
                      if abs(t2 - t) <= PAIR_WINDOW_MS)
        for t2, dev, verdict2 in near[:PAIRS_PER_SCAN]:
            a, b = sorted([(t, device_id, verdict), (t2, dev, verdict2)])
            found.append((bytes(h), a[1], a[0], a[2], b[1], b[0], b[2]))
    if found:
        cur.executemany(store.sql(INSERT), found)


def live_reuse(store, cur, device_id: str,
               rows: Sequence[tuple[bytes | None, int, str, Sequence[str]]], now: int) -> None:
    """Alert (``live_code_reused``) for each of this device's new (pass_hash, t_ms, verdict,
    flags) scans whose live code another checkpoint's scan within ``PAIR_WINDOW_MS`` carries
    too. Runs after ``note`` in the same transaction, under its locks (PostgreSQL)."""
    live = [(bytes(h), t, verdict, flag) for h, t, verdict, flags in rows
            if h is not None for flag in flags if flag.startswith(LIVE_FLAG_PREFIX)]
    for h, t, verdict, flag in live:
        params: tuple = (h, *window(t), device_id, f" {flag} ")
        if store.kind == "sqlite":
            cur.execute(store.sql(SQLITE_LIVE_PEERS), (*params, *_window_days(t)))
        else:
            cur.execute(store.sql(LIVE_PEERS), params)
        for dev, t2, verdict2, flags2 in cur.fetchall():
            if flag in (flags2 or "").split(" "):  # as stored: space-separated (store/reports.py)
                store._alert(cur, device_id, LIVE_CODE_REUSED,
                             f"{flag} also at {dev}, {abs(t2 - t) / 1000:.1f} s apart "
                             f"({verdict2} there, {verdict} here)", now)


def lock_key(pass_hash: bytes) -> int:
    """A signed 64-bit advisory-lock key from a pass hash (a collision only waits longer)."""
    return int.from_bytes(pass_hash[:8], "big", signed=True)


def lock_keys(hashes: Iterable[bytes]) -> str:
    """The distinct :func:`lock_key` of ``hashes`` as an int8 array literal, in key order."""
    return "{" + ",".join(map(str, sorted({lock_key(h) for h in hashes}))) + "}"
