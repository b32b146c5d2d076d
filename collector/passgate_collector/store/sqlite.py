"""SQLite backend: the zero-setup default (``--db sqlite:///path/collector.db``).

WAL lets the staff page read while a batch is written; ``synchronous=FULL`` because the
collector answers "stored" only after the commit, and the device then forgets the row is
pending. ``BEGIN IMMEDIATE`` takes the write lock at the start, which serialises batches.

The WAL is checkpointed into the database file every ``wal_pages`` pages (SQLite's
``wal_autocheckpoint``, default 1,000 there, :data:`DEFAULT_WAL_PAGES` here). Once the
(pass_hash, t_ms) index outgrew memory (schema 11), each new row dirtied its own leaf page of
it; a longer interval writes a page that several batches changed once per checkpoint instead of
once per batch or two (docs/collector.md, "Ingest cost, measured"). It costs disk, not
memory: the WAL file grows to about ``wal_pages`` x 4 KiB and stays that size. A larger page
cache (``cache_size``) or a memory map was measured too and saved nothing: the growth is
page writes, not reads.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import schema
from .base import SqlStore, StoreError

# WAL pages between automatic checkpoints: 10,000 pages of 4 KiB, a WAL of about 40 MiB.
DEFAULT_WAL_PAGES = 10_000
# Below SQLite's own default nothing is gained; above 262,144 (1 GiB of WAL) a crash's
# recovery reads that much and a reader searches a large WAL index.
MIN_WAL_PAGES, MAX_WAL_PAGES = 1_000, 262_144


def valid_wal_pages(pages: int) -> int:
    """``pages`` if it is a usable checkpoint interval, else :class:`StoreError` saying why
    (0, SQLite's "never", would let the WAL grow without bound)."""
    if type(pages) is not int or not MIN_WAL_PAGES <= pages <= MAX_WAL_PAGES:
        raise StoreError(f"WAL checkpoint interval {pages!r}: give {MIN_WAL_PAGES:,}-"
                         f"{MAX_WAL_PAGES:,} pages of 4 KiB")
    return pages


class SqliteStore(SqlStore):
    kind = "sqlite"
    types = schema.SQLITE_TYPES

    def __init__(self, path: str | Path, pool_size: int = 4,
                 wal_pages: int = DEFAULT_WAL_PAGES) -> None:
        self.wal_pages = valid_wal_pages(wal_pages)
        self.path = str(path)
        if self.path == ":memory:" or self.path.startswith("file:"):
            # Each pooled connection to :memory: would be a different, empty database.
            raise StoreError("the collector needs a database file, e.g. sqlite:///collector.db")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(pool_size=pool_size)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see SqlStore._tx).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(f"PRAGMA wal_autocheckpoint={self.wal_pages:d}")
        return conn

    def _migrate_step(self, cur, version: int) -> None:
        if version == 12:  # the day-led pass index replaces (pass_hash, t_ms): schema.py
            cur.execute("DROP INDEX IF EXISTS scans_pass")

    def _begin(self, cur, write: bool) -> None:
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
