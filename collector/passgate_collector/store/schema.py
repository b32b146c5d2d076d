"""The collector's tables, written once for both SQL backends.

``{blob}``, ``{big}`` and ``{serial}`` are filled per dialect (SQLite: BLOB / INTEGER /
INTEGER PRIMARY KEY; PostgreSQL: BYTEA / BIGINT / an identity column). Times the collector
makes are POSIX seconds; scan times are the device's POSIX milliseconds (``t_ms``), exactly
as chained. ``flags`` is stored as the journal does: space-separated, sorted.

Staff accounts (``staff_users``, ``login_failures``; ``store/accounts.py``) are new tables
only, made by ``CREATE ... IF NOT EXISTS``: they need no migration step. ``pw_hash`` is an
argon2id hash, ``epoch`` a random value changed with the password, the second factor or the
role (sessions carry it, so a change signs them out), ``login_failures.key_hash`` a SHA-256 of
"account:NAME" or "address:IP" (no typed name or address is stored in clear).

``scans`` is the one table the dialects build differently: SQLite keys it by (device_id,
nonce); PostgreSQL partitions it by week of ``t_ms`` (``{scans_key}``, ``{scans_partitioned}``;
the partitions, their keys and the conversion of an older table: ``store/partitions.py``).

A database made by an older collector is brought up to date by ``MIGRATIONS`` (run once, in
order, after the ``CREATE ... IF NOT EXISTS`` statements have added any new table).
"""

SCHEMA_VERSION = 13

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    pubkey {blob} NOT NULL,
    kid {blob} NOT NULL,
    enrolled_at {big} NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    last_seen {big},
    clock_offset_s {big},
    clock_state TEXT,
    backlog {big},
    dead_letters {big},
    bundle_version {big},
    bundle_issued_at {big},
    firmware TEXT,
    last_scan_ms {big},
    health_sent_at {big},
    live_challenge_ms {big},
    site TEXT,
    update_state TEXT,
    update_target TEXT,
    update_reason TEXT,
    last_seq {big},
    last_chain {blob}
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash {blob} PRIMARY KEY,
    device_id TEXT NOT NULL,
    created_at {big} NOT NULL,
    expires_at {big} NOT NULL,
    used_at {big},
    pubkey {blob}
);
CREATE TABLE IF NOT EXISTS scans (
    device_id TEXT NOT NULL,
    nonce {blob} NOT NULL,
    seq {big} NOT NULL,
    t_ms {big} NOT NULL,
    clock_state TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    pass_hash {blob},
    kid TEXT,
    purpose TEXT,
    zone TEXT NOT NULL,
    flags TEXT NOT NULL,
    chain {blob} NOT NULL,
    received_at {big} NOT NULL,
    problem TEXT,
    site TEXT{scans_key}
){scans_partitioned};
CREATE INDEX IF NOT EXISTS scans_device_seq ON scans (device_id, seq);
CREATE INDEX IF NOT EXISTS scans_time ON scans (t_ms);
{pass_index};
CREATE TABLE IF NOT EXISTS rejected (
    id {serial},
    device_id TEXT NOT NULL,
    seq {big} NOT NULL,
    nonce {blob},
    chain {blob},
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at {big} NOT NULL,
    raw {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_device_seq ON rejected (device_id, seq);
CREATE TABLE IF NOT EXISTS alerts (
    id {serial},
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at {big} NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (created_at);
CREATE TABLE IF NOT EXISTS alert_kinds (
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    n {big} NOT NULL,
    first_at {big} NOT NULL,
    last_at {big} NOT NULL,
    first_detail TEXT NOT NULL,
    last_detail TEXT NOT NULL,
    PRIMARY KEY (device_id, kind)
);
CREATE TABLE IF NOT EXISTS sites (
    site TEXT PRIMARY KEY,
    tz TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (
    alert_key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    by_user TEXT NOT NULL,
    at {big} NOT NULL
);
CREATE INDEX IF NOT EXISTS acks_time ON acks (at);
CREATE TABLE IF NOT EXISTS health_log (
    id {serial},
    device_id TEXT NOT NULL,
    at {big} NOT NULL,
    clock_state TEXT,
    clock_offset_s {big},
    backlog {big},
    dead_letters {big},
    bundle_version {big},
    firmware TEXT
);
CREATE INDEX IF NOT EXISTS health_log_device ON health_log (device_id, id);
CREATE TABLE IF NOT EXISTS bundles (
    version {big} PRIMARY KEY,
    data {blob} NOT NULL,
    sha256 TEXT NOT NULL,
    published_at {big} NOT NULL
);
CREATE TABLE IF NOT EXISTS staff_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    pw_hash TEXT NOT NULL,
    totp_secret TEXT,
    totp_last_step {big},
    epoch TEXT NOT NULL,
    created_at {big} NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
    key_hash {blob} NOT NULL,
    at {big} NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key_hash, at);
CREATE TABLE IF NOT EXISTS scan_hours (
    hour_ms {big} NOT NULL,
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    n {big} NOT NULL,
    PRIMARY KEY (hour_ms, site, zone, verdict, reason)
);
CREATE TABLE IF NOT EXISTS pass_pairs (
    pass_hash {blob} NOT NULL,
    first_device TEXT NOT NULL,
    first_ms {big} NOT NULL,
    first_verdict TEXT NOT NULL,
    second_device TEXT NOT NULL,
    second_ms {big} NOT NULL,
    second_verdict TEXT NOT NULL,
    PRIMARY KEY (pass_hash, first_device, first_ms, second_device, second_ms)
);
CREATE INDEX IF NOT EXISTS pass_pairs_time ON pass_pairs (second_ms);
CREATE TABLE IF NOT EXISTS seen_batches (
    device_id TEXT NOT NULL,
    digest {blob} NOT NULL,
    until_s {big} NOT NULL,
    PRIMARY KEY (device_id, digest)
);
"""

# ``scans`` diverges: one SQLite table keyed by (device_id, nonce); on PostgreSQL a table
# partitioned by week of ``t_ms`` whose parent has no key: each partition has its own unique
# key, made with it (store/partitions.py says which and why).
#
# The pass index differs too. PostgreSQL keeps (pass_hash, t_ms): each weekly partition has
# its own, and its ingest stays within +-20% from 0 to 1,000,000 stored rows with it
# (docs/collector.md). SQLite's one table had that index grow with all history, random-keyed:
# past the cache each new row dirtied its own leaf page. Since schema 12 it leads with the UTC
# day, ``scans_pass_day`` on (t_ms / 86400000, pass_hash, t_ms), so new rows land in the
# current day's part of it; a query uses it only when it names the day (``DAY_SQL``) with
# equality or IN (store/pairs.py, store/console.py).
# The largest BIGINT (PostgreSQL int8, SQLite INTEGER), every integer column's bound; the
# protocol's integers stop at the same value (protocol.MAX_INT).
INT8_MAX = (1 << 63) - 1
DAY_MS = 86_400_000
DAY_SQL = "t_ms / 86400000"  # exactly the index's expression, or SQLite will not use it
SQLITE_TYPES = {"blob": "BLOB", "big": "INTEGER", "serial": "INTEGER PRIMARY KEY",
                "scans_key": ",\n    PRIMARY KEY (device_id, nonce)", "scans_partitioned": "",
                "pass_index": "CREATE INDEX IF NOT EXISTS scans_pass_day ON scans "
                              f"({DAY_SQL}, pass_hash, t_ms)"}
POSTGRES_TYPES = {
    "blob": "BYTEA",
    "big": "BIGINT",
    "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "scans_key": "",
    "scans_partitioned": " PARTITION BY RANGE (t_ms)",
    "pass_index": "CREATE INDEX IF NOT EXISTS scans_pass ON scans (pass_hash, t_ms)",
}


def day_of(t_ms: int) -> int:
    """The UTC day of a scan time as ``DAY_SQL`` computes it (t_ms >= 0: protocol.py)."""
    return max(t_ms, 0) // DAY_MS


# Each device's highest stored seq and that row's chain, from its scans (migration 11; the
# bench runs them after writing a history straight into scans).
FILL_HEADS = (
    "UPDATE devices SET last_seq = (SELECT MAX(seq) FROM scans "
    "WHERE scans.device_id = devices.device_id)",
    "UPDATE devices SET last_chain = (SELECT chain FROM scans WHERE scans.device_id = "
    "devices.device_id AND scans.seq = devices.last_seq LIMIT 1) WHERE last_seq IS NOT NULL",
)

# version -> statements that bring a database of version - 1 to it (types filled as above).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: alerts counted per (device, kind) in alert_kinds; the old alert rows are summed up.
    2: (
        "INSERT INTO alert_kinds (device_id, kind, n, first_at, last_at, first_detail, "
        "last_detail) SELECT device_id, kind, COUNT(*), MIN(created_at), MAX(created_at), "
        "(SELECT b.detail FROM alerts b WHERE b.device_id = a.device_id AND b.kind = a.kind "
        "ORDER BY b.id LIMIT 1), "
        "(SELECT b.detail FROM alerts b WHERE b.device_id = a.device_id AND b.kind = a.kind "
        "ORDER BY b.id DESC LIMIT 1) "
        "FROM alerts a GROUP BY device_id, kind",
    ),
    # 3: the device clock's sent_at of the status the health columns come from.
    3: ("ALTER TABLE devices ADD COLUMN health_sent_at {big}",),
    # 4: the forged-batch rows migration 2 counted but left in alerts, where they buried the
    # real tamper events. The kinds of reports.UNSIGNED_ALERTS as they were at version 4.
    4: ("DELETE FROM alerts WHERE kind = 'bad_signature'",),
    # 5: the issue time of the last liveness challenge taken (liveness.py): replays refused.
    5: ("ALTER TABLE devices ADD COLUMN live_challenge_ms {big}",),
    # 6: the staff console: a site per device (and per scan, copied at ingest, so a filter by
    # site reads one index range), time zones per site, acknowledged alerts, health history.
    6: ("ALTER TABLE devices ADD COLUMN site TEXT", "ALTER TABLE scans ADD COLUMN site TEXT"),
    # 7: the updater's state as the device reports it (issue 13; releases.py).
    7: (
        "ALTER TABLE devices ADD COLUMN update_state TEXT",
        "ALTER TABLE devices ADD COLUMN update_target TEXT",
        "ALTER TABLE devices ADD COLUMN update_reason TEXT",
    ),
    # 8: scans counted per (hour, site, zone, verdict, reason) at ingest (store/rollup.py):
    # the charts and the zone list read these counts, never the scans. Filled once here.
    8: (
        "INSERT INTO scan_hours (hour_ms, site, zone, verdict, reason, n) "
        "SELECT (t_ms / 3600000) * 3600000, COALESCE(site, ''), zone, verdict, reason, "
        "COUNT(*) FROM scans GROUP BY 1, 2, 3, 4, 5",
    ),
    # 9: "possible sharing" pairs found at ingest (store/pairs.py). Filled once here from the
    # last week's scans (the self-join the views used to run per request, done one last time).
    9: (
        "INSERT INTO pass_pairs (pass_hash, first_device, first_ms, first_verdict, "
        "second_device, second_ms, second_verdict) "
        "SELECT a.pass_hash, a.device_id, a.t_ms, a.verdict, b.device_id, b.t_ms, b.verdict "
        "FROM scans a JOIN scans b ON b.pass_hash = a.pass_hash "
        # The one or two days b lies in: SQLite's pass index leads with the day (schema 12,
        # made before this step runs); only a filter on PostgreSQL.
        # Written so no sum passes 2^63-1 for a t_ms the protocol allows (up to it): the day
        # of a.t_ms + 1 h as a's day plus its carry, and b within the hour as b - 1 h <= a.
        f"AND b.{DAY_SQL} IN (a.{DAY_SQL}, "
        f"a.t_ms / {DAY_MS} + (a.t_ms % {DAY_MS} + 3600000) / {DAY_MS}) "
        "AND b.device_id <> a.device_id AND b.t_ms >= a.t_ms AND b.t_ms - 3600000 <= a.t_ms "
        "AND (b.t_ms > a.t_ms OR b.device_id > a.device_id) "
        "WHERE a.pass_hash IS NOT NULL "
        "AND a.t_ms >= (SELECT COALESCE(MAX(t_ms), 0) FROM scans) - 7 * 86400000 "
        "ON CONFLICT DO NOTHING",
    ),
    # 10: PostgreSQL's scans partitioned by week of t_ms, so retention drops whole weeks.
    # No statement here: the old table is kept whole and attached as one partition by
    # store/partitions.py (PostgresStore runs it); SQLite's scans stay as they are.
    10: (),
    # 11: the device's highest stored seq and that row's chain, kept in its row by ingest
    # (``store.base.Tx.insert_scans``, under the batch lock): a batch reads them with the lock
    # instead of descending every weekly partition's (device_id, seq) index. Filled here.
    11: (
        "ALTER TABLE devices ADD COLUMN last_seq {big}",
        "ALTER TABLE devices ADD COLUMN last_chain {blob}",
        *FILL_HEADS,
    ),
    # 12: SQLite's pass index leads with the day (``SQLITE_TYPES["pass_index"]``, made by the
    # DDL above, before the migrations); SqliteStore._migrate_step drops the old
    # (pass_hash, t_ms) one. PostgreSQL keeps its index: nothing to do.
    12: (),
    # 13: the signed batches taken, each kept while a replay of it could look fresh
    # (``seen_batches``, made by the DDL above; ``store.base.Tx.update_health``). A
    # collector from before it would not look there: it refuses to start on this schema.
    13: (),
}

# Indexes on columns a migration may have added: created after the migrations ran, for new
# and upgraded databases alike. The console's queries are written to use them: a filter by
# site or by checkpoint reads one (site, t_ms) or (device_id, t_ms) range, newest first; a
# pass search reads the pass index (on SQLite day by day: store/console.py); a filter by
# reason (a rare one, over 31 days, read the whole range through scans_time: 0.4 s at a
# million rows) reads scans_reason_time. The staff page's flagged rows (a chain that does
# not check) read scans_problem, a partial index of only those rows (a few, or none: it
# costs ingest one test of the column per row), where they were a whole-table read.
LATE_DDL = """
CREATE INDEX IF NOT EXISTS scans_site_time ON scans (site, t_ms);
CREATE INDEX IF NOT EXISTS scans_device_time ON scans (device_id, t_ms);
CREATE INDEX IF NOT EXISTS scans_reason_time ON scans (reason, t_ms);
CREATE INDEX IF NOT EXISTS scans_problem ON scans (received_at, seq) WHERE problem IS NOT NULL;
"""


def statements(types: dict[str, str]) -> list[str]:
    """The DDL for one dialect, split into single statements."""
    return [s.strip() for s in DDL.format(**types).split(";") if s.strip()]


def late_statements(types: dict[str, str]) -> list[str]:
    """``LATE_DDL`` for one dialect: run after the migrations."""
    return [s.strip() for s in LATE_DDL.format(**types).split(";") if s.strip()]


def migration(version: int, types: dict[str, str]) -> list[str]:
    """The statements that upgrade a database from ``version - 1`` to ``version``."""
    return [stmt.format(**types) for stmt in MIGRATIONS.get(version, ())]
