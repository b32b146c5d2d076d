"""The wire format of ``docs/sync-protocol.md``: signed CBOR requests in, CBOR answers out.

Everything here is pure (bytes in, values or :class:`ProtocolError` out), so the web layer
stays thin and the rules are tested without a server. Device requests are COSE_Sign1
envelopes read with ``passgate.passes.cose`` (deterministic CBOR enforced by re-encoding); row
shapes follow ``passgate.journal.journal``'s row.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain as chain_from

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from passgate.bundle.verify import DEFAULT_MAX_BYTES
from passgate.errors import KeyFileError, PassFormatError
from passgate.passes import cose
from passgate.passes.keys import check_public_point, kid_of, public_from_raw, raw_public

from .errors import ProtocolError

VERSION = 1
CONTENT_TYPE = "application/cbor"
TIME_HEADER = "Passgate-Time"
DEVICE_HEADER = "Passgate-Device"
NONCE_HEADER = "Passgate-Time-Nonce"
TIME_NONCE_LEN = 16
BUNDLE_VERSION_HEADER = "Passgate-Bundle-Version"
MAX_ROWS = 500
MAX_BODY = 1 << 20
MAX_BUNDLE = DEFAULT_MAX_BYTES  # what a device's installer accepts (1,000,000 revocations ~16 MB)

DEVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Every integer the collector stores is a signed 64-bit column on both backends (BIGINT,
# SQLite INTEGER): the protocol's integers are 0..MAX_INT, so no value can reach the driver
# and overflow there (a 500, which a device would retry forever). docs/sync-protocol.md 2.
MAX_INT = (1 << 63) - 1
# Text the collector stores: no control characters (PostgreSQL refuses NUL in TEXT while
# SQLite keeps it; the others would break the staff page or a log line), at most MAX_TEXT.
BAD_TEXT_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_FLAGS = 16
# The liveness challenge (docs/sync-protocol.md section 4, "Liveness").
CHALLENGE_HEADER = "Passgate-Challenge"

# Row field -> accepted Python types after CBOR decoding. ``None`` in the tuple = nullable.
ROW_FIELDS: dict[str, tuple[type | None, ...]] = {
    "seq": (int,),
    "nonce": (bytes,),
    "t_ms": (int,),
    "clock_state": (str,),
    "verdict": (str,),
    "reason": (str,),
    "pass_hash": (bytes, None),
    "kid": (str, None),
    "purpose": (str, None),
    "zone": (str,),
    "flags": (list,),
    "chain": (bytes,),
}
BYTE_LENGTHS = {"nonce": 16, "pass_hash": 16, "chain": 32}
MAX_TEXT = 64
CLOCK_STATES = frozenset({"trusted", "floor", "backwards"})
VERDICTS = frozenset({"accept", "deny"})

# Row results (docs/sync-protocol.md section 4).
STORED, DUPLICATE, REJECTED = "stored", "duplicate", "rejected"


def int_ok(value: object, lo: int = 0) -> bool:
    """An integer (not a bool) the backends store as it is: ``lo``..:data:`MAX_INT`."""
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= MAX_INT


def text_problem(value: str) -> str | None:
    """Why a text value cannot be stored identically by both backends, or None."""
    if len(value) > MAX_TEXT:
        return f"longer than {MAX_TEXT} characters"
    if BAD_TEXT_RE.search(value):
        return "contains a control character"
    return None


def malformed(detail: str) -> ProtocolError:
    return ProtocolError(400, "malformed", detail)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(obj: object) -> bytes:
    """Deterministic CBOR for response bodies."""
    return cose.dumps(obj)


def error_body(code: str, detail: str) -> bytes:
    return encode({"error": code, "detail": detail})


@dataclass(frozen=True)
class Signed:
    """A decoded, not yet verified, device request."""

    envelope: cose.Sign1
    payload: dict

    def verifies_with(self, raw_pub: bytes) -> bool:
        """True when the header kid is this key's and the signature verifies."""
        if kid_of(raw_pub) != self.envelope.kid:
            return False
        try:
            _public_key(raw_pub).verify(self.envelope.signature, self.envelope.to_be_signed)
        except (InvalidSignature, KeyFileError):
            return False
        return True


@functools.lru_cache(maxsize=4096)
def _public_key(raw_pub: bytes) -> Ed25519PublicKey:
    """``public_from_raw``, remembered per key: its point check costs ~40 us, a fifth of a
    200-row batch's signature check, and gives the same answer every time (a refused key
    raises, and a raise is not remembered). Bounded, least recently used out: enrolment
    requests bring keys of their own."""
    return public_from_raw(raw_pub)


def loads_payload(data: bytes) -> object:
    """:func:`cose.loads_strict` for a request payload, by its shortcut
    :func:`cose.loads_canonical` (the exact check re-encodes the decoded value in Python,
    20-30 us per row of a batch; tests/test_collector_ingest_fast.py compares the two)."""
    return cose.loads_canonical(data, "payload")


def decode_signed(body: bytes, expect_type: str) -> Signed:
    """Parse a COSE_Sign1 request whose payload is a map with ``v`` = 1 and ``t``."""
    try:
        env = cose.decode_sign1(body)
        payload = loads_payload(env.payload)
    except PassFormatError as exc:
        raise malformed(exc.detail) from None
    if not isinstance(payload, Mapping):
        raise malformed("payload must be a map")
    payload = dict(payload)
    if payload.get("v") != VERSION:
        raise malformed(f"unsupported protocol version {payload.get('v')!r}")
    if payload.get("t") != expect_type:
        raise malformed(f"request type must be {expect_type!r}")
    device = payload.get("device")
    if not isinstance(device, str) or not DEVICE_ID_RE.fullmatch(device):
        raise malformed("device id must be 1-64 characters of [a-z0-9._-]")
    return Signed(env, payload)


def sign_request(payload: Mapping, key: Ed25519PrivateKey) -> bytes:
    """Build a signed request (the device's side; used by tests and tools)."""
    protected = {cose.HDR_ALG: cose.ALG_EDDSA, cose.HDR_KID: kid_of(raw_public(key))}
    return cose.encode_sign1(cose.dumps(dict(payload)), key.sign, protected)


@dataclass(frozen=True)
class EnrolRequest:
    device: str
    token: str
    pubkey: bytes


def parse_enrol(signed: Signed) -> EnrolRequest:
    """Check an enrolment payload, including proof of possession of ``pubkey``."""
    p = signed.payload
    token, pubkey = p.get("token"), p.get("pubkey")
    if not isinstance(token, str) or not 16 <= len(token) <= 128:  # hashed, never stored
        raise malformed("token must be text")
    if not isinstance(pubkey, bytes):
        raise malformed("pubkey must be 32 bytes")
    try:
        check_public_point(pubkey, "device key")
    except KeyFileError as exc:
        raise malformed(str(exc)) from None
    if not signed.verifies_with(pubkey):
        raise ProtocolError(403, "bad_signature", "signature does not verify with pubkey")
    return EnrolRequest(p["device"], token, pubkey)


@dataclass(frozen=True)
class Batch:
    device: str
    sent_at: int | None
    prev_chain: bytes
    rows: tuple[dict, ...]
    status: dict
    challenge: bytes | None = None  # echoed from a Passgate-Challenge header: liveness
    digest: bytes | None = None  # SHA-256 of the signed payload, first 16 bytes: the batch's
    # identity, so that a replay of it is never fresh (store.base.Tx.update_health)


def parse_batch(signed: Signed, max_rows: int = MAX_ROWS) -> Batch:
    """Check the batch envelope; rows are checked one by one later (:func:`row_problem`)."""
    p = signed.payload
    prev, rows, status = p.get("prev_chain"), p.get("rows"), p.get("status", {})
    if not isinstance(prev, bytes) or len(prev) != 32:
        raise malformed("prev_chain must be 32 bytes")
    if not isinstance(rows, list | tuple):
        raise malformed("rows must be an array")
    if len(rows) > max_rows:
        raise ProtocolError(413, "too_large", f"{len(rows)} rows; at most {max_rows} per batch")
    if not isinstance(status, Mapping):
        raise malformed("status must be a map")
    sent_at = p.get("sent_at")
    if sent_at is not None and not int_ok(sent_at):
        raise malformed(f"sent_at must be an integer 0..{MAX_INT}")
    challenge = p.get("challenge")
    if challenge is not None and not isinstance(challenge, bytes):
        raise malformed("challenge must be a byte string")
    last = None
    for i, row in enumerate(rows):
        # type() first: the ABC check of isinstance costs more than the rest of the loop.
        seq = row.get("seq") if type(row) is dict or isinstance(row, Mapping) else None
        if not int_ok(seq, 1):
            raise malformed(f"rows[{i}]: a row must be a map with an integer seq 1..{MAX_INT}")
        if last is not None and seq <= last:
            raise malformed(f"rows[{i}]: seq {seq} after {last}; rows must ascend")
        last = seq
    # Decoded maps are dicts already; a copy per row would only add work.
    return Batch(p["device"], sent_at, prev, tuple(r if type(r) is dict else dict(r) for r in rows),
                 dict(status), challenge, hashlib.sha256(signed.envelope.payload).digest()[:16])


_ROW_KEYS = frozenset(ROW_FIELDS)
_STR = frozenset({str})
_ROW_VALUES = operator.itemgetter(*ROW_FIELDS)


def _row_ok(row: Mapping) -> bool:
    """The common case of :func:`row_problem` in one pass of exact type checks: True only
    when the row is certainly well-formed (False: the detailed check decides and says why)."""
    if row.keys() != _ROW_KEYS:
        return False
    seq, nonce, t_ms, clock, verdict, reason, ph, kid, purpose, zone, flags, chain = \
        _ROW_VALUES(row)
    if not (type(seq) is int and type(t_ms) is int and 0 <= seq <= MAX_INT
            and 0 <= t_ms <= MAX_INT and type(nonce) is bytes and len(nonce) == 16
            and type(chain) is bytes and len(chain) == 32
            and (ph is None or (type(ph) is bytes and len(ph) == 16))
            and type(clock) is str and clock in CLOCK_STATES
            and type(verdict) is str and verdict in VERDICTS
            and type(flags) is list and len(flags) <= MAX_FLAGS):
        return False
    texts = [reason, zone, *flags]
    if kid is not None:
        texts.append(kid)
    if purpose is not None:
        texts.append(purpose)
    if not _STR.issuperset(map(type, texts)) or max(map(len, texts)) > MAX_TEXT:
        return False
    # One search over all the text: the pattern matches single characters, so joining
    # cannot make or hide a match.
    if BAD_TEXT_RE.search("".join(texts)):
        return False
    return not flags or (all(f and " " not in f for f in flags) and flags == sorted(set(flags)))


_DICT, _INT, _BYTES, _LIST = (frozenset({t}) for t in (dict, int, bytes, list))
_BYTES_OR_NONE, _STR_OR_NONE = frozenset({bytes, type(None)}), frozenset({str, type(None)})
_not_none = functools.partial(operator.is_not, None)


def rows_ok(rows: Sequence[Mapping[object, object]]) -> bool:
    """:func:`_row_ok` of every row of a batch at once, a field (column) at a time in C loops:
    True only when every row is certainly well-formed; False: check each row with
    :func:`row_problem`, which decides and says why. Per row of a 200-row batch about a
    fifth of the row-by-row shortcut (docs/collector.md, "Ingest cost, measured")."""
    if not rows or not _DICT.issuperset(map(type, rows)) or set(map(len, rows)) != {
            len(ROW_FIELDS)}:
        return False
    try:  # every field present, and as many keys as fields: exactly the fields
        columns = list(zip(*map(_ROW_VALUES, rows), strict=True))
    except KeyError:
        return False
    seq, nonce, t_ms, clock, verdict, reason, ph, kid, purpose, zone, flags, chain = columns
    if not (_INT.issuperset(map(type, seq)) and _INT.issuperset(map(type, t_ms))
            and min(seq) >= 0 and max(seq) <= MAX_INT
            and min(t_ms) >= 0 and max(t_ms) <= MAX_INT
            and _BYTES.issuperset(map(type, nonce)) and set(map(len, nonce)) == {16}
            and _BYTES.issuperset(map(type, chain)) and set(map(len, chain)) == {32}
            and _BYTES_OR_NONE.issuperset(map(type, ph))
            and {16}.issuperset(map(len, filter(_not_none, ph)))
            and _STR.issuperset(map(type, clock)) and CLOCK_STATES.issuperset(clock)
            and _STR.issuperset(map(type, verdict)) and VERDICTS.issuperset(verdict)
            and _LIST.issuperset(map(type, flags)) and max(map(len, flags)) <= MAX_FLAGS
            and _STR_OR_NONE.issuperset(map(type, kid))
            and _STR_OR_NONE.issuperset(map(type, purpose))):
        return False
    words = list(chain_from.from_iterable(flags))
    texts = [*reason, *zone, *filter(_not_none, kid), *filter(_not_none, purpose), *words]
    if not _STR.issuperset(map(type, texts)) or max(map(len, texts)) > MAX_TEXT:
        return False
    joined = "".join(texts)  # single-character pattern: joining cannot make or hide a match
    if BAD_TEXT_RE.search(joined):
        return False
    # Flags: non-empty words without a space, sorted and unique in each row.
    return not words or (all(words) and " " not in "".join(words)
                         and all(f == sorted(set(f)) for f in flags if f))


def row_problem(row: Mapping) -> str | None:
    """Why a row is not a well-formed journal row, or None when it is."""
    return None if _row_ok(row) else row_detail(row)


def row_detail(row: Mapping) -> str | None:
    """:func:`row_problem` field by field, naming the first problem found."""
    if set(row) != set(ROW_FIELDS):
        extra, missing = set(row) - set(ROW_FIELDS), set(ROW_FIELDS) - set(row)
        return f"fields: unknown {sorted(map(str, extra))}, missing {sorted(missing)}"
    for name, types in ROW_FIELDS.items():
        value = row[name]
        if value is None:
            if None not in types:
                return f"{name} is null"
            continue
        accepted = tuple(t for t in types if t) + ((tuple,) if list in types else ())
        if isinstance(value, bool) or not isinstance(value, accepted):
            return f"{name} has the wrong type"
        if name in BYTE_LENGTHS and len(value) != BYTE_LENGTHS[name]:
            return f"{name} must be {BYTE_LENGTHS[name]} bytes"
        if isinstance(value, int) and not int_ok(value):
            return f"{name} must be 0..{MAX_INT}"
        if isinstance(value, str) and (problem := text_problem(value)) is not None:
            return f"{name} {problem}"
    flags = row["flags"]
    # Stored space-separated (as the journal does): a flag must be a non-empty word.
    if len(flags) > MAX_FLAGS or any(
            not isinstance(f, str) or not f or " " in f or text_problem(f) for f in flags):
        return f"flags must be an array of at most {MAX_FLAGS} short words"
    if list(flags) != sorted(set(flags)):
        return "flags must be sorted, without duplicates"
    if row["clock_state"] not in CLOCK_STATES:
        return "unknown clock_state"
    if row["verdict"] not in VERDICTS:
        return "unknown verdict"
    return None


# passgate.update.state.report: what a device's updater may say.
UPDATE_STATES = ("up_to_date", "downloading", "updating", "rolled_back", "failed")


def result(seq: int, nonce: object, status: str, *, reason: str | None = None,
             flag: str | None = None) -> dict:
    """One row's result, its keys in canonical order (seq, flag, nonce, reason, status) so
    that :func:`batch_reply` can encode it without sorting."""
    out: dict = {"seq": seq}
    if flag is not None:
        out["flag"] = flag
    out["nonce"] = nonce
    if reason is not None:
        out["reason"] = reason
    out["status"] = status
    return out


def batch_reply(results: list[dict], bundle_version: int | None) -> bytes:
    """The answer to a batch in deterministic CBOR (the agent checks it is), written by
    cbor2's plain C encoder: every map here is built in canonical key order (:func:`result`;
    v, results, bundle_version), which is what sorting would give, at a fifth of the cost
    (tests/test_collector_ingest_fast.py compares with :func:`encode`)."""
    return cbor2.dumps({"v": VERSION, "results": results, "bundle_version": bundle_version})


def health_fields(status: Mapping) -> dict:
    """The known device-health keys with the right types; anything else is ignored."""
    out: dict = {}
    for key in ("backlog", "dead_letters", "bundle_version", "bundle_issued_at", "last_scan_ms"):
        v = status.get(key)
        if int_ok(v):
            out[key] = v
    for key in ("clock_state", "firmware", "update_target", "update_reason"):
        v = status.get(key)
        if isinstance(v, str) and text_problem(v) is None:
            out[key] = v
    if status.get("update_state") in UPDATE_STATES:
        out["update_state"] = status["update_state"]
    return out
