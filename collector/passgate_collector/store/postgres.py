"""PostgreSQL backend (psycopg 3) for fleets that outgrow one machine.

Selected with ``--db postgresql://user@host/dbname``. Transactions are explicit (autocommit
connections plus BEGIN/COMMIT, as for SQLite), and a batch locks its device row with
``SELECT ... FOR UPDATE`` so concurrent deliveries of one device's batches run one at a time
while different devices ingest in parallel.

Ingest is set-based so its cost per row stays flat however long a device's history grows: the
dedup lookup probes the (device_id, nonce) primary key once per nonce of the batch, and the
new rows go in with one ``COPY``, formatted by psycopg's C code. (The previous ``INSERT ...
SELECT FROM unnest(arrays)`` spent ~30 us per row in psycopg's Python array quoting.)

COPY has no ``ON CONFLICT DO NOTHING``, and needs none: rows reach it only after the lookup,
under the device's row lock (:meth:`_lock_device`), so no other transaction can have stored
their nonces since. Were that rule ever broken, the primary key still refuses the second copy:
the COPY fails, the whole batch rolls back, the device gets a 5xx and resends, and the resend
finds the rows ``duplicate``: nothing lost, nothing stored twice. No temporary table either:
it would be session state, which PgBouncer's transaction pooling does not keep
(docs/collector.md).

The probes are written so that no statistics can change the plan: each nonce is looked up in
a ``LATERAL`` subquery with ``LIMIT 1``, which the planner cannot flatten into a join, and
whose only fitting index is the primary key. ``nonce = ANY(array)`` left the choice to the
statistics: on a table not yet analysed (a new database, or a device whose rows grew since
the last ANALYZE) the planner took the (device_id, seq) index and filtered every row the
device ever sent, so the server's CPU per row grew from 56 to 204 us over the first 15,000
rows of one device (measured; tests/test_collector_scale.py pins the plan without statistics
and with them).
"""

from __future__ import annotations

from . import pairs, schema
from .base import SCAN_INSERT_COLS, SqlStore
from .reports import SCAN_COLS

# The dedup lookup (tests/test_collector_scale.py checks its plan on a large history).
# %b: the nonces go as a binary array (as text, psycopg quotes each element in Python).
NONCE_LOOKUP = (f"SELECT s.* FROM unnest(%b::bytea[]) AS n(nonce) CROSS JOIN LATERAL "
                f"(SELECT {SCAN_COLS} FROM scans WHERE device_id = %s AND nonce = n.nonce "
                "LIMIT 1) AS s")
COPY_SCANS = f"COPY scans ({SCAN_INSERT_COLS}) FROM STDIN"


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
        cur.execute(NONCE_LOOKUP, (nonces, device_id))
        return cur.fetchall()

    def _insert_scans(self, cur, values: list[tuple]) -> None:
        with cur.copy(COPY_SCANS) as copy:
            for row in values:
                copy.write_row(row)
