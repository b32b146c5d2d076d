"""Benchmark collector ingest as CPU time of every process, beside the bare-library ceiling.

    .venv/bin/python bench/sync.py [--rows 20000] [--repeats 3] [--history 0,1000000]
                                   [--backend sqlite|postgresql|both] [--batch 500]
                                   [--nonces time|random|time,random]
                                   [--sqlite-wal-pages 1000,10000]

Prints figures, asserts nothing. For each backend and each history size H: a fresh database
with H rows already stored for the device (written with ``generate_series`` / ``executemany``,
not through the API) and ``passgate-collector serve`` as its own process; then ``--repeats``
rounds, each history in turn (0, 1M, 0, 1M...: a burst of load from the neighbours hits
every history alike, which matters for the flatness figure), in which an agent process
uploads ``--rows`` new rows, chained on the history, in batches of ``--batch`` through the
agent's real client (CBOR, Ed25519, HTTP on 127.0.0.1), and then the ceiling is measured.

Nonces (``--nonces``): ``time``, the layout agents make (``journal.schema.new_nonce``:
48-bit milliseconds then 80 random bits; here the row's t_ms and a hash, reproducible), in
the history and in the uploads alike; ``random``, the 16 random bytes agents made before.
Both: each layout gets its own databases, and the rounds take every (layout, history) in
turn, so the two layouts are compared under the same load.

SQLite's WAL checkpoint interval (``--sqlite-wal-pages``, the collector's option of that
name; default: the collector's default): several values each get their own databases and
take their rounds in turn with the others, as the nonce layouts do; the anchor's connection
uses the same interval.

Measured per repeat: the CPU seconds of the agent (its own ``process_time`` over the upload),
of the collector and of the PostgreSQL server (postmaster and all its children, from
``/proc/<pid>/stat`` before and after), and the wall time. Rows/s "by CPU" = rows / the sum of
those CPU seconds: on a shared 2-core machine wall time mostly measures the neighbours.
Medians over the repeats are printed, with the spread (lowest-highest) of the per-row CPU.

Flatness, paired: in each round every history is measured one after the other, so the
ratio of a round's per-row CPU at H rows to the same round's at the first history is taken
under nearly the same load; the median of these per-round ratios is printed with their
spread and how many fall within +-20%, beside the ratio of the medians (which pairs
nothing, and moves with load bursts that hit one history's repeats and not the other's).

The collector runs with ``--retention-days 0``: the rows are dated around ``fleet.T0``
(January 2026), and the default 90-day retention, first run 60 s after the collector
starts, removed the whole history in the middle of the rounds (so were the runs made after
retention came, 41884e7, and before this was found: see docs/collector.md).

Fair to both history sizes: after the history is written, the database's own debt for it is
paid before anything is measured (PostgreSQL: ``VACUUM (ANALYZE)`` and ``CHECKPOINT``, else
autovacuum and the checkpointer would bill a million rows' worth of work to the first
uploads; SQLite: a WAL checkpoint), and the same is done for the empty history. The 0-row
database then has no statistics at all, the case where a plan that depends on them would
show (``store/postgres.py``).

The ceiling, measured in the same round on the same database: the same number of rows
written by the bare library, one ``--batch``-row transaction at a time (the agent's batches):
``COPY`` (text, as the collector's) for PostgreSQL, ``executemany`` for SQLite (same pragmas
as the collector), into an empty copy of the ``scans`` table with all its indexes, made and
dropped each round. Empty at every history: the strict ceiling (a copy holding the history
would be slower to write).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402
import measure  # noqa: E402

DEVICE = "bench-1"


def worker(url: str, first: int, n: int, prev_hex: str, batch: int, nonces: str) -> None:
    """Agent side (its own process): upload ``n`` rows, then re-send one batch (must be all
    duplicate), print JSON with the CPU and wall time of the upload phase."""
    rows = fleet.make_rows(DEVICE, first, n, bytes.fromhex(prev_hex), nonces)
    cl = fleet.client(url, DEVICE)
    prev = bytes.fromhex(prev_hex)
    cpu0, t0 = time.process_time(), time.perf_counter()
    stored = 0
    for i in range(0, n, batch):
        reply = cl.upload(prev, rows[i:i + batch], {"backlog": n - i})
        stored += sum(r.status == "stored" for r in reply.results)
        prev = rows[i + batch - 1]["chain"] if i + batch <= n else rows[-1]["chain"]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    again = cl.upload(bytes.fromhex(prev_hex), rows[:batch], {"backlog": 0})
    dup = all(r.status == "duplicate" for r in again.results)
    print(json.dumps({"cpu": cpu, "wall": wall, "stored": stored, "resent_all_duplicate": dup}))


def bare_postgres(db_url: str, rows: list[dict], batch: int, postmaster: int) -> float:
    """CPU seconds (this process + server) to COPY ``rows`` in ``batch``-row transactions."""
    import psycopg

    from passgate_collector.store.base import SCAN_INSERT_COLS

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bare (LIKE scans INCLUDING ALL)")
        # A partitioned scans has no key of its own (each partition has one): the anchor
        # gets a partition's, so it checks a unique key as ingest does.
        conn.execute("ALTER TABLE bare ADD PRIMARY KEY (device_id, nonce, t_ms)")
        vals = _values(rows)
        cpu0, srv0 = time.process_time(), fleet.server_cpu(postmaster)
        for i in range(0, len(vals), batch):
            with conn.transaction(), conn.cursor().copy(
                    f"COPY bare ({SCAN_INSERT_COLS}) FROM STDIN") as cp:
                for v in vals[i:i + batch]:
                    cp.write_row(v)
        cpu = time.process_time() - cpu0 + fleet.server_cpu(postmaster) - srv0
        conn.execute("DROP TABLE bare")
    return cpu


def bare_sqlite(path: str, rows: list[dict], batch: int, wal_pages: int) -> float:
    import sqlite3

    from passgate_collector.store.base import SCAN_INSERT_COLS

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # the collector's pragmas (store/sqlite.py)
    db.execute(f"PRAGMA wal_autocheckpoint={wal_pages:d}")
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'scans'").fetchone()[0]
    db.execute(sql.replace("TABLE scans", "TABLE bare", 1))
    for (index,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' "
                               "AND tbl_name = 'scans' AND sql IS NOT NULL").fetchall():
        db.execute(index.replace("INDEX IF NOT EXISTS scans_", "INDEX bare_", 1)
                   .replace("INDEX scans_", "INDEX bare_", 1).replace(" ON scans ", " ON bare ", 1))
    vals = _values(rows)
    ins = f"INSERT INTO bare ({SCAN_INSERT_COLS}) VALUES ({', '.join('?' * 16)})"
    cpu0 = time.process_time()
    for i in range(0, len(vals), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(ins, vals[i:i + batch])
        db.execute("COMMIT")
    cpu = time.process_time() - cpu0
    db.execute("DROP TABLE bare")
    db.close()
    return cpu


def _values(rows: list[dict]) -> list[tuple]:
    return [("bare", r["nonce"], r["seq"], r["t_ms"], r["clock_state"], r["verdict"],
             r["reason"], r["pass_hash"], r["kid"], r["purpose"], r["zone"], "", r["chain"],
             fleet.T0, None, None) for r in rows]


def settle(db_url: str, sqlite_path: str | None) -> None:
    """Pay the database's background debt for the history before measuring (see above)."""
    if sqlite_path is not None:
        import sqlite3

        db = sqlite3.connect(sqlite_path, isolation_level=None)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) scans" if conn.execute(
            "SELECT COUNT(*) > 0 FROM scans").fetchone()[0] else "VACUUM scans")
        conn.execute("CHECKPOINT")


def prepare(backend: str, db_url: str, history: int, postmaster: int | None,
            sqlite_path: str | None, nonces: str, wal_pages: int | None = None) -> dict:
    """A database with ``history`` rows stored for the device, settled, and its collector."""
    from passgate_collector.store import open_store

    store = open_store(db_url)
    fleet.enrol_direct(store, DEVICE)
    if backend == "postgresql":
        from passgate_collector.store import partitions

        # The weeks of a 90-day window before fleet.T0 (January 2026; the store makes the
        # weeks around today), whatever the history: as many partitions as in service, the
        # same at every history size (rows older than the window go to DEFAULT).
        partitions.ensure(store, (fleet.T0 - 91 * 86_400) * 1000, (fleet.T0 + 7 * 86_400) * 1000)
    store.close()
    t = time.perf_counter()
    if backend == "postgresql":
        prev = fleet.history_postgres(db_url, DEVICE, history, nonces)
    else:
        prev = fleet.history_sqlite(sqlite_path, DEVICE, history, nonces)
    fill_s = time.perf_counter() - t
    settle(db_url, sqlite_path)
    port = fleet.free_port()
    # Retention off (fleet.start_collector): the bench's rows are dated around fleet.T0
    # (January 2026), and the collector's first retention run, 60 s after its start, removed
    # the whole history in the middle of the rounds before it was.
    extra: tuple[str, ...] = ()
    if wal_pages is not None:
        extra += ("--sqlite-wal-pages", str(wal_pages))
    return {"backend": backend, "nonces": nonces, "db_url": db_url, "history": history,
            "fill_s": fill_s, "wal_pages": wal_pages,
            "postmaster": postmaster, "sqlite_path": sqlite_path, "prev": prev,
            "first": history + 1, "collector": fleet.start_collector(db_url, port, *extra),
            "url": f"http://127.0.0.1:{port}", "reps": [], "bare": []}


def one_round(st: dict, args) -> None:
    """One repeat for one history: the agent uploads ``--rows`` new rows, then the anchor."""
    collector, postmaster = st["collector"], st["postmaster"]
    c0 = fleet.cpu_seconds(collector.pid)
    s0 = fleet.server_cpu(postmaster) if postmaster else 0.0
    out = subprocess.run([sys.executable, __file__, "--worker", st["url"], str(st["first"]),
                          str(args.rows), st["prev"].hex(), str(args.batch), st["nonces"]],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"agent failed: {out.stderr[-1500:]}")
    w = json.loads(out.stdout)
    w["collector"] = fleet.cpu_seconds(collector.pid) - c0
    w["server"] = (fleet.server_cpu(postmaster) - s0) if postmaster else 0.0
    st["reps"].append(w)
    st["prev"] = fleet.make_rows(DEVICE, st["first"], args.rows, st["prev"],
                                 st["nonces"])[-1]["chain"]
    st["first"] += args.rows
    bare_rows = fleet.make_rows("bare", 1, args.rows, fleet.ZERO_CHAIN, st["nonces"])
    from passgate_collector.store.sqlite import DEFAULT_WAL_PAGES

    st["bare"].append(bare_postgres(st["db_url"], bare_rows, args.batch, postmaster)
                      if postmaster else bare_sqlite(st["sqlite_path"], bare_rows, args.batch,
                                                     st["wal_pages"] or DEFAULT_WAL_PAGES))


def finish(st: dict, args) -> dict:
    from passgate_collector.store import open_store

    st["collector"].send_signal(signal.SIGTERM)
    st["collector"].wait(60)
    store = open_store(st["db_url"])
    alerts = store._all("SELECT COUNT(*) FROM alerts")[0][0]  # a chain flag would show here
    # Every row still there: the history and all the uploads (nothing removed under the bench).
    held = store._all("SELECT COUNT(*) FROM scans")[0][0]
    store.close()
    reps = st["reps"]
    med = {k: statistics.median(r[k] for r in reps)
           for k in ("cpu", "wall", "collector", "server")}
    totals = [r["cpu"] + r["collector"] + r["server"] for r in reps]
    return {"backend": st["backend"], "nonces": st["nonces"], "history": st["history"],
            "wal_pages": st["wal_pages"], "fill_s": st["fill_s"], **med,
            "total": statistics.median(totals), "totals": totals,
            "sides": [r["collector"] + r["server"] for r in reps],
            "side": statistics.median(r["collector"] + r["server"] for r in reps),
            "low": min(totals), "high": max(totals),
            "rows": args.rows, "bare": statistics.median(st["bare"]),
            "ok": alerts == 0 and held == st["history"] + args.rows * len(reps)
            and all(r["stored"] == args.rows and r["resent_all_duplicate"] for r in reps),
            "why": f"alerts {alerts}, rows held {held:,} of "
                   f"{st['history'] + args.rows * len(reps):,}, stored "
                   f"{[r['stored'] for r in reps]}, resent all "
                   f"duplicate {[r['resent_all_duplicate'] for r in reps]}"}


def run_interleaved(states: list[dict], args) -> list[dict]:
    """Repeats taken in turns over the histories (0, 1M, 0, 1M...), each with its anchor, so
    a burst of load from the neighbours hits every history alike (bench/measure.py)."""
    try:
        for _ in range(args.repeats):
            for st in states:
                one_round(st, args)
    except BaseException:
        for st in states:
            st["collector"].kill()
        raise
    return [finish(st, args) for st in states]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(a[0], int(a[1]), int(a[2]), a[3], int(a[4]), a[5])
        return
    from passgate.sync.agent import DEFAULT_BATCH

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000, help="rows uploaded per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--history", default="0,1000000",
                    help="comma-separated counts of rows already stored for the device")
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH)  # the agent's batches
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--nonces", default="time",
                    help="comma-separated nonce layouts: time (agents' now), random (before)")
    ap.add_argument("--sqlite-wal-pages", default="",
                    help="comma-separated WAL checkpoint intervals for SQLite, each measured "
                         "in turn with the others (default: the collector's default)")
    args = ap.parse_args()
    histories = [int(h) for h in args.history.split(",")]
    layouts = args.nonces.split(",")
    if not set(layouts) <= set(fleet.NONCES):
        ap.error(f"--nonces: each of {', '.join(fleet.NONCES)}")
    wals: list[int | None] = ([int(w) for w in args.sqlite_wal_pages.split(",")]
                              if args.sqlite_wal_pages else [None])
    cases = [(lay, h) for lay in layouts for h in histories]

    results = []
    if args.backend in ("sqlite", "both"):
        with contextlib.ExitStack() as stack:
            states = []
            for wal in wals:
                for lay, h in cases:
                    tmp = stack.enter_context(
                        tempfile.TemporaryDirectory(prefix="passgate-bench-sync-"))
                    path = f"{tmp}/collector.db"
                    states.append(prepare("sqlite", f"sqlite:///{path}", h, None, path, lay,
                                          wal))
            results += run_interleaved(states, args)
    if args.backend in ("postgresql", "both"):
        from passgate_collector.pgcluster import PgCluster, PgUnavailable

        try:
            cluster = PgCluster(durable=True)
        except PgUnavailable as exc:
            print(f"postgresql: skipped ({exc})")
        else:
            with cluster:
                pm = fleet.postmaster_pid(cluster)
                states = [prepare("postgresql", cluster.create_database(f"bench_{lay}_{h}"), h,
                                  pm, None, lay) for lay, h in cases]
                results += run_interleaved(states, args)

    report(results, args)


def _case(r: dict) -> str:
    wal = f" wal {r['wal_pages']}" if r["wal_pages"] is not None else ""
    return f"{r['backend']}, {r['nonces']} nonces{wal}"


def report(results: list[dict], args) -> None:
    print(measure.machine_line())
    print(f"{args.rows:,} rows per repeat, batches of {args.batch}, median of {args.repeats}; "
          "CPU = agent + collector + database server; 'side' = collector + server only")
    print(f"{'backend':<11} {'nonces':<6} {'wal':>6} {'history':>9} {'rows/s CPU':>10} "
          f"{'us/row':>7} {'agent':>6} {'collector':>9} {'db':>5} {'spread us':>9} "
          f"{'rows/s wall':>11} {'bare rows/s':>11} {'ratio':>6} {'side rows/s':>11} "
          f"{'side ratio':>10} ok")
    for r in results:
        n = r["rows"]
        per = {k: r[k] / n * 1e6 for k in ("total", "cpu", "collector", "server")}
        bare = n / r["bare"]
        side = n / r["side"]
        wal = "-" if r["wal_pages"] is None else str(r["wal_pages"])
        print(f"{r['backend']:<11} {r['nonces']:<6} {wal:>6} {r['history']:>9,} "
              f"{n / r['total']:>10,.0f} "
              f"{per['total']:>7.0f} {per['cpu']:>6.0f} {per['collector']:>9.0f} "
              f"{per['server']:>5.0f} {r['low'] / n * 1e6:>4.0f}-{r['high'] / n * 1e6:<4.0f} "
              f"{n / r['wall']:>11,.0f} {bare:>11,.0f} "
              f"{n / r['total'] / bare:>5.2f}x {side:>11,.0f} {side / bare:>9.2f}x "
              f"{'yes' if r['ok'] else 'NO: ' + r['why']}")
    print("ratio = rows/s by CPU / the bare library's rows/s (x bare COPY or x bare executemany, "
          "the anchor, same run)")
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(_case(r), []).append(r)
    for name, mine in groups.items():
        base = mine[0]
        for r in mine[1:]:
            print(f"  {name}: per-row CPU at {r['history']:,} stored rows / at "
                  f"{base['history']:,}: {flatness(r['totals'], base['totals'])}; "
                  f"collector + server {flatness(r['sides'], base['sides'])}; "
                  f"ratio of medians {r['total'] / base['total']:.2f}x "
                  f"(history written in {r['fill_s']:.0f} s)")


def flatness(at: list[float], base: list[float]) -> str:
    """The per-round ratios ``at[i] / base[i]`` (same round, same load): median, spread,
    and how many are within +-20%."""
    ratios = sorted(a / b for a, b in zip(at, base, strict=True))
    within = sum(0.8 <= x <= 1.2 for x in ratios)
    return (f"paired median {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f}, "
            f"{within} of {len(ratios)} rounds within +-20%)")


if __name__ == "__main__":
    main()
