"""SQLite backend: the zero-setup default (``--db sqlite:///path/collector.db``).

WAL lets the staff page read while a batch is written; ``synchronous=FULL`` because the
collector answers "stored" only after the commit, and the device then forgets the row is
pending. ``BEGIN IMMEDIATE`` takes the write lock at the start, which serialises batches.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import schema
from .base import SqlStore, StoreError


class SqliteStore(SqlStore):
    kind = "sqlite"
    types = schema.SQLITE_TYPES

    def __init__(self, path: str | Path, pool_size: int = 4) -> None:
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
        return conn

    def _begin(self, cur, write: bool) -> None:
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
