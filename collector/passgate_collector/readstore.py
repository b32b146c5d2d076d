"""The staff pages' store on a read replica (``serve --read-db postgresql://...``): the old
staff page and the console's views read it; acknowledgements and accounts stay on ``--db``.

Rules kept here (docs/collector.md "Several machines"; tests/test_collector_liveness.py):

- It never writes: no migration, only a check that the replica's schema is the one this
  collector speaks (a replica lagging behind a migration is refused at start, in one line).
- PostgreSQL only: a SQLite file has no replicas, and the staff page reads it through WAL
  without blocking ingest anyway.
"""

from __future__ import annotations

from .errors import StoreError
from .store import schema
from .store.postgres import PostgresStore


class ReadOnlyPostgresStore(PostgresStore):
    """A :class:`PostgresStore` for the read-only queries of the staff page."""

    def migrate(self) -> None:
        rows = self._all("SELECT value FROM meta WHERE key = 'schema'")
        have = int(rows[0][0]) if rows else None
        if have != schema.SCHEMA_VERSION:
            raise StoreError(f"read database schema is {have}, this collector needs "
                             f"{schema.SCHEMA_VERSION} (replica not caught up?)")


def open_read_store(url: str) -> ReadOnlyPostgresStore:
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError("--read-db takes a postgresql:// URL (a replica of --db)")
    import psycopg

    try:
        return ReadOnlyPostgresStore(url)
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise StoreError(f"cannot open the read database: {detail}") from None
