"""SQLite's engine cost per ingested row against the rows already stored, per pragma variant.

    .venv/bin/python bench/sqlite_pragmas.py [--rows 40000] [--rounds 3]
        [--history 0,1000000] [--variants wal1000,wal1000+cache64,wal1000+mmap256,default]

Prints figures, asserts nothing. In one process, without HTTP, the agent or the signature:
``ingest.apply`` of ``--rows`` new rows in 200-row batches into a copy of a database holding
H rows for the device (made once per H in a temporary folder, as ``bench/sync.py`` makes
them), through a ``SqliteStore`` whose connections run the variant's pragmas on top of the
store's own. Each round takes every (history, variant) in turn on a fresh copy, so load
bursts hit them alike; the CPU (user and kernel, ``getrusage``) of this process
over the apply calls is divided by the rows. The growth a variant removes shows as a
smaller difference between its 1,000,000-row and 0-row figures in the same rounds.

Variants, on top of the store's own pragmas (``store/sqlite.py``: its WAL checkpoint
interval included, unless the variant sets that): ``default``, nothing more; ``cacheN``:
``cache_size`` of N MiB per connection; ``mmapN``: ``mmap_size`` of N MiB; ``walN``:
``wal_autocheckpoint`` of N pages (``wal1000`` is SQLite's own default); ``passold``: the
pass index as it was before schema 12, (pass_hash, t_ms), in place of the day-led
``scans_pass_day`` (swapped on the copy before the timed part; the queries are the code's, and
SQLite probes (pass_hash, t_ms) with them too); joined with ``+``.

    .venv/bin/python bench/sqlite_pragmas.py --rows 10000 --variants default,passold
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402
import measure  # noqa: E402

DEVICE = "bench-1"


def pragmas(variant: str) -> list[str]:
    if variant in ("default", "passold"):
        return []
    if "+" in variant:
        return [p for part in variant.split("+") for p in pragmas(part)]
    for prefix, fmt in (("cache", "PRAGMA cache_size=-{}"), ("mmap", "PRAGMA mmap_size={}"),
                        ("wal", "PRAGMA wal_autocheckpoint={}")):
        if variant.startswith(prefix) and variant[len(prefix):].isdigit():
            n = int(variant[len(prefix):])
            return [fmt.format(n * 1024 if prefix == "cache" else
                               n * 1024 * 1024 if prefix == "mmap" else n)]
    raise SystemExit(f"unknown variant {variant!r}: default, passold, cacheN, mmapN, walN, "
                     "joined by +")


def build(folder: str, history: int) -> str:
    from passgate_collector.store import open_store

    path = f"{folder}/h{history}.db"
    store = open_store(f"sqlite:///{path}")
    fleet.enrol_direct(store, DEVICE)
    store.close()
    fleet.history_sqlite(path, DEVICE, history)
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def one(source: str, work: str, variant: str, rows: int) -> float:
    """CPU seconds of ``apply`` for ``rows`` new rows on a fresh copy of ``source``."""
    from passgate_collector.ingest import apply
    from passgate_collector.protocol import Batch
    from passgate_collector.store.sqlite import SqliteStore

    for suffix in ("", "-wal", "-shm"):
        Path(work + suffix).unlink(missing_ok=True)
    shutil.copy(source, work)
    db = sqlite3.connect(work)
    seq, chain = db.execute("SELECT last_seq, last_chain FROM devices "
                            "WHERE device_id = ?", (DEVICE,)).fetchone()
    db.close()
    prev = bytes(chain) if chain else fleet.ZERO_CHAIN
    new = fleet.make_rows(DEVICE, (seq or 0) + 1, rows, prev)
    extra = pragmas(variant)

    class Store(SqliteStore):
        def _connect(self) -> sqlite3.Connection:
            conn = super()._connect()
            for statement in extra:
                conn.execute(statement)
            return conn

    store = Store(work)
    if "passold" in variant.split("+"):  # after the store's migrate(), which makes the new one
        db = sqlite3.connect(work)
        db.execute("DROP INDEX scans_pass_day")
        db.execute("CREATE INDEX scans_pass ON scans (pass_hash, t_ms)")
        db.commit()
        db.close()
    t0 = _cpu()
    for i in range(0, rows, 200):
        out = apply(store, Batch(DEVICE, None, prev, tuple(new[i:i + 200]), {}),
                    fleet.T0 + 10 ** 6).results
        if any(r["status"] != "stored" for r in out):
            raise RuntimeError(f"not stored: {out[:2]}")
        prev = new[min(i + 200, rows) - 1]["chain"]
    cpu = _cpu() - t0
    store.close()
    return cpu


def _cpu() -> float:
    """User + kernel CPU seconds of this process, to the microsecond (os.times ticks 10 ms)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--history", default="0,1000000")
    ap.add_argument("--variants", default="wal1000,wal1000+cache64,wal1000+mmap256,default")
    args = ap.parse_args()
    histories = [int(h) for h in args.history.split(",")]
    variants = args.variants.split(",")
    for v in variants:
        pragmas(v)
    cpu: dict[tuple[int, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="passgate-bench-pragmas-") as tmp:
        sources = {h: build(tmp, h) for h in histories}
        for _ in range(args.rounds):
            for h in histories:
                for v in variants:
                    cpu.setdefault((h, v), []).append(
                        one(sources[h], f"{tmp}/work.db", v, args.rows))
    print(measure.machine_line())
    print(f"ingest.apply in process, {args.rows:,} rows in 200-row batches, "
          f"{args.rounds} rounds; us per row, median (lowest-highest)")
    med = {k: statistics.median(v) for k, v in cpu.items()}
    first = variants[0]
    print(f"{'variant':<20}" + "".join(f"{h:>30,}" for h in histories) + "  growth")
    for v in variants:
        cells = []
        for h in histories:
            us = sorted(c / args.rows * 1e6 for c in cpu[(h, v)])
            cells.append(f"{statistics.median(us):.1f} ({us[0]:.1f}-{us[-1]:.1f}) "
                         f"{med[(h, v)] / med[(h, first)]:.2f}x")
        growth = med[(histories[-1], v)] / med[(histories[0], v)]
        print(f"{v:<20}" + "".join(f"{c:>30}" for c in cells) + f"  {growth:.2f}x")
    print(f"Nx beside a figure = x the anchor, {first} at the same history (same rounds); "
          f"growth = the last history's median / the first's")

if __name__ == "__main__":
    main()
