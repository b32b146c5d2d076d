"""PostgreSQL backend (psycopg 3) for fleets that outgrow one machine.

Selected with ``--db postgresql://user@host/dbname``. Transactions are explicit (autocommit
connections plus BEGIN/COMMIT, as for SQLite), and a batch locks its device row with
``SELECT ... FOR UPDATE`` so concurrent deliveries of one device's batches run one at a time
while different devices ingest in parallel.

Ingest is set-based so its cost per row stays flat however long a device's history grows: the
dedup lookup passes the batch's nonces as one array (``nonce = ANY(%s)``, a probe of the
(device_id, nonce) primary key per nonce; with an ``IN`` list of 200 separate parameters the
generic plan chose the (device_id, seq) index and filtered every row the device ever sent),
and the new rows go in as one ``INSERT ... SELECT FROM unnest(arrays)``: one statement, one
round trip, with ``ON CONFLICT DO NOTHING`` kept as the second line of defence that COPY
could not give.
"""

from __future__ import annotations

from . import pairs, schema
from .base import SCAN_INSERT_COLS, SqlStore
from .reports import SCAN_COLS

# The dedup lookup (tests/test_collector_scale.py checks its plan on a large history).
NONCE_LOOKUP = f"SELECT {SCAN_COLS} FROM scans WHERE device_id = %s AND nonce = ANY(%s)"
# The element type of each SCAN_INSERT_COLS column, for unnest().
_ARRAY_TYPES = ("text", "bytea", "bigint", "bigint", "text", "text", "text", "bytea", "text",
                "text", "text", "text", "bytea", "bigint", "text", "text")


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

    def _delete_some_sql(self, table: str, where: str) -> str:
        # By ctid, as one array: PostgreSQL then fetches the rows by their address (TID scan).
        return (f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} "
                f"WHERE {where} LIMIT ?))")

    def _lock_passes(self, cur, hashes: list[bytes]) -> None:
        # Sorted in a subquery: the locks are taken in key order, so no two batches deadlock.
        keys = sorted({pairs.lock_key(h) for h in hashes})
        cur.execute("SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(%s::bigint[]) AS k "
                    "ORDER BY k) s", (keys,))

    def _select_nonces(self, cur, device_id: str, nonces: list[bytes]) -> list:
        if not nonces:
            return []
        cur.execute(NONCE_LOOKUP, (device_id, nonces))
        return cur.fetchall()

    def _insert_scans(self, cur, values: list[tuple]) -> None:
        arrays = ", ".join(f"%s::{t}[]" for t in _ARRAY_TYPES)
        cur.execute(f"INSERT INTO scans ({SCAN_INSERT_COLS}) SELECT * FROM unnest({arrays}) "
                    "ON CONFLICT (device_id, nonce) DO NOTHING",
                    [list(col) for col in zip(*values, strict=True)])
