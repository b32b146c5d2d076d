"""PostgreSQL backend (psycopg 3) for fleets that outgrow one machine.

Selected with ``--db postgresql://user@host/dbname``. Transactions are explicit (autocommit
connections plus BEGIN/COMMIT, as for SQLite), and a batch locks its device row with
``SELECT ... FOR UPDATE`` so concurrent deliveries of one device's batches run one at a time
while different devices ingest in parallel.

Ingest is set-based so its cost per row stays flat however long a device's history grows.
New rows go in with one ``COPY``, formatted by psycopg's C code (the previous ``INSERT ...
SELECT FROM unnest(arrays)`` spent ~30 us per row in psycopg's Python array quoting). A batch
that starts past the device's highest stored seq (read with the device's row lock,
``base.HELD_SQL``) is copied without a lookup: the unique key of the partition a row goes to
checks it as COPY inserts it, so a lookup first would repeat that work. Any other batch (a
resend) looks its nonces up first, one probe of each partition's key per nonce. ``scans`` is
partitioned by week of ``t_ms`` (``store/partitions.py``: the keys, and why a re-sent row
always meets its stored copy).

COPY has no ``ON CONFLICT DO NOTHING``, and needs none: a stored nonce makes the COPY fail
with a unique violation, reported as :class:`StoredNonce`; the batch's whole transaction
rolls back and ``ingest.apply`` applies it again with the lookup, which answers
``duplicate`` or ``nonce_conflict``: nothing lost, nothing stored twice. The device's row
lock (:meth:`_lock_device`) keeps two deliveries of one device's batch from racing. No
temporary table: it would be session state, which PgBouncer's transaction pooling does not
keep (docs/collector.md).

The probes are written so that no statistics can change the plan: each nonce is looked up in
a ``LATERAL`` subquery with ``LIMIT 1``, which the planner cannot flatten into a join, and
whose only fitting index is each partition's unique key. ``nonce = ANY(array)`` left the
choice to the statistics: on a table not yet analysed (a new database, or a device whose
rows grew since the last ANALYZE) the planner took the (device_id, seq) index and filtered
every row the device ever sent, so the server's CPU per row grew from 56 to 204 us over the
first 15,000 rows of one device (measured; tests/test_collector_scale.py pins the plan
without statistics and with them).
"""

from __future__ import annotations

import time

from ..errors import StoredNonce
from . import partitions, schema
from .base import HELD_SQL, SCAN_INSERT_COLS, Held, SqlStore
from .reports import SCAN_COLS

# The dedup lookup (tests/test_collector_scale.py checks its plan on a large history).
# %b: the nonces and their rows' t_ms go as binary arrays (as text, psycopg quotes each
# element in Python). Each nonce probes every partition's unique key by its (device_id,
# nonce) prefix; of several stored rows with the nonce (a broken device's, in two weeks:
# store/partitions.py) the one with the same t_ms comes first, so an honest resend always
# meets its own copy and answers ``duplicate``.
NONCE_LOOKUP = (f"SELECT s.* FROM unnest(%b::bytea[], %b::int8[]) AS n(nonce, t) CROSS JOIN "
                f"LATERAL (SELECT {SCAN_COLS} FROM scans WHERE device_id = %s "
                "AND nonce = n.nonce ORDER BY t_ms = n.t DESC NULLS LAST LIMIT 1) AS s")
COPY_SCANS = f"COPY scans ({SCAN_INSERT_COLS}) FROM STDIN"


class PostgresStore(SqlStore):
    kind = "postgresql"
    types = schema.POSTGRES_TYPES
    placeholder = "%s"
    for_update = " FOR UPDATE"

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

    def _select_nonces(self, cur, device_id: str, nonces: list[tuple[bytes, int | None]]
                       ) -> list:
        if not nonces:
            return []
        cur.execute(NONCE_LOOKUP, ([n for n, _t in nonces], [t for _n, t in nonces], device_id))
        return cur.fetchall()

    # --- partitions of scans (store/partitions.py) ------------------------------------------
    def _before_migrate(self) -> None:
        partitions.prepare_legacy(self, int(time.time() * 1000))

    def _migrate_step(self, cur, version: int) -> None:
        if version == 10:
            partitions.convert(cur, self.types)

    def _after_migrate(self) -> None:
        # Checked before the lock, in its own transaction (a catalog read taken before an
        # advisory lock is not refreshed by it): a collector starting while another holds the
        # lock (making a week, dropping one) has nothing to wait for once DEFAULT is there.
        with self._tx(write=False) as cur:
            missing = not partitions.has_default(cur)
        if missing:
            with self._tx() as cur:
                partitions.short_locks(cur)
                partitions.ensure_default(cur)
        now_ms = int(time.time() * 1000)
        partitions.ensure(self, now_ms - partitions.WEEK_MS,
                          now_ms + partitions.AHEAD_WEEKS * partitions.WEEK_MS)

    def _insert_scans(self, cur, values: list[tuple]) -> None:
        import psycopg

        try:
            with cur.copy(COPY_SCANS) as copy:
                for row in values:
                    copy.write_row(row)
        except psycopg.errors.UniqueViolation:
            raise StoredNonce("a nonce of the batch was stored already") from None
