"""The scan journal's data: what a row holds, its SQL schema and its hash chain.

This module is pure (no database, no I/O) so the fleet collector can import it to
recompute and check the chain of rows it receives.

Canonical encoding and chain (version 1)
----------------------------------------
Each row's ``chain`` is::

    chain = SHA-256(prev || CBOR([1, seq, nonce, t_ms, clock_state, verdict, reason,
                                  pass_hash, kid, purpose, zone, flags]))

where ``prev`` is the ``chain`` of the row with the previous sequence number (32 zero bytes
for the journal's first row), ``||`` is concatenation, and CBOR is RFC 8949 with only
definite lengths and shortest-form integers (``cbor2.dumps(..., canonical=True)``) of an
array of exactly these 12 items, in this order:

=========== =================== ==================================================
item        CBOR type           meaning
=========== =================== ==================================================
1           uint                encoding version
seq         uint                row sequence number, 1, 2, 3 ... (never reused)
nonce       bstr (16)           client nonce, the upload idempotency key (:func:`new_nonce`)
t_ms        int                 effective scan time, POSIX milliseconds
clock_state tstr                :class:`passgate.clock.clock.ClockState` value
verdict     tstr                ``"accept"`` or ``"deny"``
reason      tstr                :class:`passgate.passes.verdict.Reason` value
pass_hash   bstr (16) / null    HMAC-SHA256(fleet hash key, pass id)[:16]
kid         tstr / null         issuer key id, lower-case hex
purpose     tstr / null         purpose name
zone        tstr                the checkpoint's zone
flags       array of tstr       sorted, without duplicates (``"stale"``, ...)
=========== =================== ==================================================

Time is an integer so the encoding holds no floats (whose CBOR width is an encoder choice).
Because ``seq`` is in every encoded row and each chain covers its predecessor's, a removed,
inserted, reordered or edited row makes :func:`verify_chain` fail at that point.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import cbor2

from passgate.clock.clock import ClockState
from passgate.errors import ArgumentError
from passgate.passes.verdict import Reason, Result

if TYPE_CHECKING:
    from passgate.clock.clock import TimeReading
    from passgate.passes.verdict import Verdict

ENCODING_VERSION = 1
SCHEMA_VERSION = 1  # PRAGMA user_version of the database
ZERO_CHAIN = bytes(32)
NONCE_LEN = PASS_HASH_LEN = 16

NONCE_TIME_BYTES = 6  # a time-ordered nonce's prefix: POSIX milliseconds, 48 bits, big-endian
_MS_MASK = (1 << 48) - 1


def new_nonce(now_ms: int | None = None) -> bytes:
    """A fresh row nonce: 48 bits of POSIX milliseconds (big-endian) then 80 random bits.

    The protocol asks only for 16 bytes unique per device (docs/sync-protocol.md, section 2);
    the time prefix, like UUIDv7's, makes a device's nonces grow with time, so the
    collector's (device_id, nonce) key takes each new row at its right edge instead of on a
    random leaf page of an index too large for the cache (docs/collector.md, "Ingest cost").
    80 random bits keep two rows of one millisecond apart (a collision needs ~2^40 rows in
    one millisecond). The time is the system clock's, whatever its state: a wrong clock only
    moves where the nonces sort, never their uniqueness. ``now_ms`` (tests, the bench) is
    taken modulo 2^48 (the year 10889)."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return (ms & _MS_MASK).to_bytes(NONCE_TIME_BYTES, "big") + os.urandom(
        NONCE_LEN - NONCE_TIME_BYTES)


_FLAG_RE = re.compile(r"[a-z0-9_]{1,32}")
_REASONS = frozenset(r.value for r in Reason)
_CLOCK_STATES = frozenset(s.value for s in ClockState)
_VERDICTS = frozenset(r.value for r in Result)

# Columns shared by ``scans`` and ``dead_letter``, in SELECT order (see ``Row.from_db``).
COLUMNS = (
    "seq, nonce, t_ms, clock_state, verdict, reason, pass_hash, kid, purpose, zone, flags, chain"
)

# ``seq`` is assigned by the journal (last seq + 1, never reused, see Journal.record), not
# by AUTOINCREMENT, because the chain needs the previous row's chain in the same transaction.
DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scans (
    seq INTEGER PRIMARY KEY,
    nonce BLOB NOT NULL CHECK (length(nonce) = 16),
    t_ms INTEGER NOT NULL,
    clock_state TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'deny')),
    reason TEXT NOT NULL,
    pass_hash BLOB CHECK (pass_hash IS NULL OR length(pass_hash) = 16),
    kid TEXT,
    purpose TEXT,
    zone TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    chain BLOB NOT NULL CHECK (length(chain) = 32),
    uploaded_at INTEGER  -- POSIX ms when the collector confirmed it; NULL = pending
);
-- The sync agent's queue: pending rows oldest first, and their count.
CREATE INDEX IF NOT EXISTS scans_pending ON scans (seq) WHERE uploaded_at IS NULL;
-- Anti-passback: accepted rows of one pass in one zone, by time.
CREATE INDEX IF NOT EXISTS scans_accepted ON scans (pass_hash, zone, t_ms)
    WHERE verdict = 'accept';
-- passgate log --since.
CREATE INDEX IF NOT EXISTS scans_time ON scans (t_ms);
-- Rows the collector refused for good: moved here, kept, never deleted.
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY,
    nonce BLOB NOT NULL,
    t_ms INTEGER NOT NULL,
    clock_state TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    pass_hash BLOB,
    kid TEXT,
    purpose TEXT,
    zone TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    chain BLOB NOT NULL,
    dead_at INTEGER,
    dead_reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letter_accepted ON dead_letter (pass_hash, zone, t_ms)
    WHERE verdict = 'accept';
CREATE INDEX IF NOT EXISTS dead_letter_time ON dead_letter (t_ms);
"""


# -- SQL helpers for passgate.journal.journal ------------------------------------------------

_CHUNK = 500  # seqs per "IN (...)" statement, far below SQLite's variable limit

SELECT_ALL = f"""
    SELECT {COLUMNS}, uploaded_at, NULL, NULL FROM scans WHERE t_ms >= :t AND seq > :after
    UNION ALL
    SELECT {COLUMNS}, NULL, dead_reason, dead_at FROM dead_letter WHERE t_ms >= :t AND seq > :after
"""


def ms_bound(t: float) -> int:
    """A time bound in ms; -inf (no bound) becomes the smallest stored value."""
    return -(2**62) if t == float("-inf") else to_ms(t)


def row_with_status(r: Sequence[Any]) -> Row:
    """A row from a SELECT of COLUMNS plus uploaded_at, dead_reason, dead_at."""
    return Row.from_db(r[:12], r[12], r[13], r[14])


def seq_chunks(seqs: Iterable[int]) -> Iterator[list[int]]:
    """Distinct seqs, sorted, in lists short enough for one ``IN (...)``."""
    items = sorted({int(s) for s in seqs})
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def to_ms(t: float) -> int:
    """POSIX seconds (float) -> the integer milliseconds stored and chained."""
    return round(t * 1000)


def _value(x: object) -> object:
    return x.value if isinstance(x, Enum) else x


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One scan as the daemon hands it to :meth:`Journal.record`.

    Enum members (``ClockState``, ``Reason``, ``Result``) are accepted and stored as their
    string values. ``pass_hash`` comes from :meth:`Journal.pass_hash`; the pass, its id and
    its hint are never given to the journal. Raises ``ValueError`` on a malformed field.
    """

    nonce: bytes
    scanned_at: float
    clock_state: str
    verdict: str
    reason: str
    pass_hash: bytes | None
    kid: str | None
    purpose: str | None
    zone: str
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("clock_state", "verdict", "reason"):
            object.__setattr__(self, name, _value(getattr(self, name)))
        if isinstance(self.flags, str):
            raise ArgumentError("flags must be a tuple of strings, not one string")
        for flag in self.flags:
            if not isinstance(flag, str) or not _FLAG_RE.fullmatch(flag):
                raise ArgumentError(f"flag {flag!r} must match [a-z0-9_]{{1,32}}")
        object.__setattr__(self, "flags", tuple(sorted(set(self.flags))))
        if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_LEN:
            raise ArgumentError("nonce must be 16 bytes")
        if self.pass_hash is not None and (
            not isinstance(self.pass_hash, bytes) or len(self.pass_hash) != PASS_HASH_LEN
        ):
            raise ArgumentError("pass_hash must be 16 bytes or None")
        if self.clock_state not in _CLOCK_STATES:
            raise ArgumentError(f"unknown clock state {self.clock_state!r}")
        if self.verdict not in _VERDICTS:
            raise ArgumentError(f"verdict must be 'accept' or 'deny', not {self.verdict!r}")
        if self.reason not in _REASONS:
            raise ArgumentError(f"unknown reason {self.reason!r}")
        if not isinstance(self.zone, str):
            raise ArgumentError("zone must be a string")
        if not isinstance(self.scanned_at, int | float) or self.scanned_at != self.scanned_at:
            raise ArgumentError("scanned_at must be a number")

    @classmethod
    def of(cls, verdict: Verdict, reading: TimeReading, zone: str, nonce: bytes,
           pass_hash: bytes | None, flags: Iterable[str] = ()) -> ScanRecord:
        """Build a record from a final :class:`~passgate.passes.verdict.Verdict` and the
        :class:`~passgate.clock.clock.TimeReading` it was decided at."""
        return cls(
            nonce=nonce, scanned_at=reading.now, clock_state=reading.state.value,
            verdict=verdict.result.value, reason=verdict.reason.value, pass_hash=pass_hash,
            kid=verdict.kid, purpose=verdict.purpose, zone=zone, flags=tuple(flags),
        )


@dataclass(frozen=True, slots=True)
class Row:
    """A stored journal row. ``status`` is ``"pending"``, ``"uploaded"`` or ``"dead"``."""

    seq: int
    nonce: bytes
    t_ms: int
    clock_state: str
    verdict: str
    reason: str
    pass_hash: bytes | None
    kid: str | None
    purpose: str | None
    zone: str
    flags: tuple[str, ...]
    chain: bytes
    uploaded_at: float | None = None
    dead_reason: str | None = None
    dead_at: float | None = None

    @property
    def scanned_at(self) -> float:
        return self.t_ms / 1000

    @property
    def accepted(self) -> bool:
        return self.verdict == "accept"

    @property
    def status(self) -> str:
        if self.dead_reason is not None:
            return "dead"
        return "pending" if self.uploaded_at is None else "uploaded"

    @classmethod
    def from_db(
        cls,
        r: Sequence[Any],
        uploaded_ms: int | None = None,
        dead_reason: str | None = None,
        dead_ms: int | None = None,
    ) -> Row:
        """From a tuple in :data:`COLUMNS` order plus the status columns."""
        return cls(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
            tuple(r[10].split()) if r[10] else (), r[11],
            None if uploaded_ms is None else uploaded_ms / 1000, dead_reason,
            None if dead_ms is None else dead_ms / 1000,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (bytes as lower-case hex), used by ``passgate log --json``."""
        return {
            "seq": self.seq, "nonce": self.nonce.hex(), "t_ms": self.t_ms,
            "scanned_at": self.scanned_at, "clock_state": self.clock_state,
            "verdict": self.verdict, "reason": self.reason,
            "pass_hash": self.pass_hash.hex() if self.pass_hash is not None else None,
            "kid": self.kid, "purpose": self.purpose, "zone": self.zone,
            "flags": list(self.flags), "chain": self.chain.hex(), "status": self.status,
            "uploaded_at": self.uploaded_at, "dead_reason": self.dead_reason,
        }


_FIELDS = ("seq", "nonce", "t_ms", "clock_state", "verdict", "reason", "pass_hash", "kid",
           "purpose", "zone", "flags")


def encode_row(row: Row | Mapping[str, Any]) -> bytes:
    """The canonical CBOR encoding of a row's chained fields (see the module docstring).

    ``row`` is a :class:`Row` or a mapping with the same field names and types (bytes for
    ``nonce`` and ``pass_hash``, int ``t_ms``), so a collector can use its own rows.
    """
    get: Callable[[str], Any] = row.get if isinstance(row, Mapping) else (lambda k: getattr(row, k))
    seq, nonce, t_ms, clock, verdict, reason, ph, kid, purpose, zone, flags = (
        get(k) for k in _FIELDS
    )
    return cbor2.dumps(
        [ENCODING_VERSION, int(seq), bytes(nonce), int(t_ms), clock, verdict, reason,
         None if ph is None else bytes(ph), kid, purpose, zone, sorted(set(flags or ()))],
        canonical=True,
    )


def chain_of(prev: bytes, row: Row | Mapping[str, Any]) -> bytes:
    """``SHA-256(prev || encode_row(row))``: the chain value ``row`` must carry."""
    return hashlib.sha256(bytes(prev) + encode_row(row)).digest()


def verify_chain(rows: Iterable[Row | Mapping[str, Any]], prev: bytes = ZERO_CHAIN) -> int | None:
    """Check consecutive rows against the chain value ``prev`` of the row before the first.

    Returns the index (into ``rows``) of the first row whose stored ``chain`` is not what
    its fields and predecessor give, or ``None`` when every row checks. A removed row shows
    as a failure at the row after the gap; an edited row at itself.
    """
    for i, row in enumerate(rows):
        chain = row.get("chain") if isinstance(row, Mapping) else row.chain
        expected = chain_of(prev, row)
        if chain is None or bytes(chain) != expected:
            return i
        prev = expected
    return None
