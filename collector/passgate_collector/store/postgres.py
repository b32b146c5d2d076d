"""PostgreSQL backend (psycopg 3) for fleets that outgrow one machine.

Selected with ``--db postgresql://user@host/dbname``. Transactions are explicit (autocommit
connections plus BEGIN/COMMIT, as for SQLite), and a batch locks its device row with
``SELECT ... FOR UPDATE`` so concurrent deliveries of one device's batches run one at a time
while different devices ingest in parallel.
"""

from __future__ import annotations

from . import schema
from .base import SqlStore


class PostgresStore(SqlStore):
    kind = "postgresql"
    types = schema.POSTGRES_TYPES
    placeholder = "%s"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = url
        super().__init__(pool_size=pool_size)

    def _connect(self):
        import psycopg  # imported here so SQLite-only installs need no psycopg

        return psycopg.connect(self.url, autocommit=True)

    def _lock_device(self, cur, device_id: str) -> None:
        cur.execute("SELECT 1 FROM devices WHERE device_id = %s FOR UPDATE", (device_id,))

    def _lock_migration(self, cur) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(74726)")
