"""PostgreSQL backend (psycopg 3) for fleets that outgrow one machine.

Selected with ``--db postgresql://user@host/dbname``. Transactions are explicit (autocommit
connections plus BEGIN/COMMIT, as for SQLite), and a batch locks its device row with
``SELECT ... FOR UPDATE`` so concurrent deliveries of one device's batches run one at a time
while different devices ingest in parallel.

Ingest is set-based so its cost per row stays flat however long a device's history grows.
New rows go in with one ``COPY``, formatted by psycopg's C code (the previous ``INSERT ...
SELECT FROM unnest(arrays)`` spent ~30 us per row in psycopg's Python array quoting). A batch
that starts past the device's highest stored seq (read with the device's row lock,
``base.HELD_SQL``) is copied without a lookup: the primary key checks every nonce as COPY
inserts it, so a lookup first would repeat that work. Any other batch (a resend) looks its
nonces up first, one probe of the (device_id, nonce) primary key per nonce.

COPY has no ``ON CONFLICT DO NOTHING``, and needs none: a stored nonce makes the COPY fail
with a unique violation, reported as :class:`StoredNonce`; the batch's whole transaction
rolls back and ``ingest.apply`` applies it again with the lookup, which answers
``duplicate`` or ``nonce_conflict``: nothing lost, nothing stored twice. The device's row
lock (:meth:`_lock_device`) keeps two deliveries of one device's batch from racing. No
temporary table: it would be session state, which PgBouncer's transaction pooling does not
keep (docs/collector.md).

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

from ..errors import StoredNonce
from . import schema
from .base import HELD_SQL, SCAN_INSERT_COLS, Held, SqlStore
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

    def _lock_device(self, cur, device_id: str, first_seq: int | None) -> Held:
        return self._held(cur, self.sql(HELD_SQL) + " FOR UPDATE", device_id, first_seq)

    def _lock_migration(self, cur) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(74726)")

    def _delete_some_sql(self, table: str, where: str) -> str:
        # By ctid, as one array: PostgreSQL then fetches the rows by their address (TID scan).
        return (f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} "
                f"WHERE {where} LIMIT ?))")

    def _select_nonces(self, cur, device_id: str, nonces: list[bytes]) -> list:
        if not nonces:
            return []
        cur.execute(NONCE_LOOKUP, (nonces, device_id))
        return cur.fetchall()

    def _insert_scans(self, cur, values: list[tuple]) -> None:
        import psycopg

        try:
            with cur.copy(COPY_SCANS) as copy:
                for row in values:
                    copy.write_row(row)
        except psycopg.errors.UniqueViolation:
            raise StoredNonce("a nonce of the batch was stored already") from None
