"""Benchmark ``Journal.record`` beside a bare SQLite insert+commit. Prints figures only.

    .venv/bin/python bench/journal.py [--rows 300] [--repeats 7] [--dir DIR]

Each repeat appends ``--rows`` scans through ``Journal.record`` (chain hash, durable COMMIT
with ``journal_mode=WAL`` and ``synchronous=FULL``), then, interleaved, the same number of
rows into a bare table of the same columns by ``sqlite3`` with the same pragmas, one
INSERT and COMMIT each: the anchor. CPU time of this thread, wall beside it (the fsync's
wait shows in wall time only), medians of the repeats and the ratio (``bench/measure.py``).
``--dir``: put the files on the medium to measure (an SD card on a Pi); default a temp folder.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from passgate.journal.journal import Journal
from passgate.journal.schema import ScanRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402

BARE_DDL = """CREATE TABLE IF NOT EXISTS scans (seq INTEGER PRIMARY KEY, nonce BLOB, t_ms INTEGER,
    clock_state TEXT, verdict TEXT, reason TEXT, pass_hash BLOB, kid TEXT, purpose TEXT,
    zone TEXT, flags TEXT, chain BLOB)"""


def bare_connection(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute(BARE_DDL)
    return db


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dir", type=Path, help="folder for the database files")
    args = ap.parse_args(argv)
    print("passgate bench/journal.py: Journal.record vs bare insert+commit (WAL, FULL)")
    print(measure.machine_line())
    with tempfile.TemporaryDirectory(prefix="pg-journal-bench-", dir=args.dir) as tmp:
        journal = Journal(Path(tmp) / "journal.db", b"k" * 32, "bench")
        bare = bare_connection(Path(tmp) / "bare.db")
        seq = [0]

        def run_record() -> int:
            for _ in range(args.rows):
                journal.record(ScanRecord(
                    nonce=os.urandom(16), scanned_at=time.time(), clock_state="trusted",
                    verdict="accept", reason="valid", pass_hash=journal.pass_hash(os.urandom(12)),
                    kid="0011223344556677", purpose="work", zone="gate-1"))
            return args.rows

        def run_bare() -> int:
            for _ in range(args.rows):
                seq[0] += 1
                bare.execute("BEGIN")
                bare.execute("INSERT INTO scans VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                             (seq[0], os.urandom(16), int(time.time() * 1000), "trusted", "accept",
                              "valid", os.urandom(16), "0011223344556677", "work", "gate-1", "",
                              os.urandom(32)))
                bare.execute("COMMIT")
            return args.rows

        got = measure.repeat({"Journal.record": run_record,
                              "bare insert+commit": run_bare}, args.repeats)
        journal.close()
        bare.close()
    rec, anchor = got["Journal.record"], got["bare insert+commit"]
    print(rec.line(anchor=anchor))
    print(anchor.line())
    print(f"  the journal's own work                  {(rec.median - anchor.median) * 1e6:9.2f}"
          " us CPU per row (chain hash, head look-up, checks)")


if __name__ == "__main__":
    main()
