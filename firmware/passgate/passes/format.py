"""The passgate pass: ``PG1:`` + base45(COSE_Sign1(CWT claims)). See ``docs/pass-format.md``.

Claims (CWT, RFC 8392), all required unless marked:

====== ============ ==========================================================
key    name         CBOR type and limits
====== ============ ==========================================================
1      iss          name text (below), 1-32 chars: must match the trusted key's
4      exp          uint < 2**40: expiry, POSIX seconds
5      nbf          uint < exp: not before, POSIX seconds
6      iat          uint <= nbf: issued at (signing time, or nbf if that is earlier)
7      cti          bytes, 12-32: the random pass id
8      cnf          optional (spec 1.2): the holder key, {1: COSE_Key} (``holder.py``)
-65537 passgate     array [purpose code uint, zones array of text, hint text (optional)]
====== ============ ==========================================================

Names (iss, hint) are text staff read and compare by eye, so everything in them must be
visible: NFC-normalised; letters (Unicode L*, less the blank Hangul fillers) and decimal
digits (Nd) of any script, the space and ``- . , ' / # № ( )``; no space first, last or
twice in a row. Control, format (bidi, zero-width) and combining characters are refused, and
so are letters that join a neighbour into one grapheme (conjoining Hangul jamo and a few others).

The text is at most 1,024 characters after removing its trailing CR and LF characters (the
line ending a scanner appends); anything else, leading or trailing, is part of the text.

-65537 is the first key of the CWT registry's private-use range; packing purpose, zones
and hint into one array costs 6 bytes instead of 15 for three private keys, and the purpose
is a code from the purpose table (one byte for codes 0-23) instead of its name: together
that is what keeps a typical pass within QR version 8 at ECC M (docs/pass-format.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from passgate.passes import base45, holder
from passgate.passes.cose import (
    ALG_EDDSA,
    HDR_ALG,
    HDR_KID,
    Sign1,
    decode_sign1,
    dumps,
    encode_sign1,
    head,
    loads,
    malformed,
    not_deterministic,
    unsupported,
)
from passgate.passes.slotinit import fast_frozen_init, slot_factory
from passgate.passes.wire import read_claims, read_signed

PREFIX = "PG1:"
MAX_TEXT = 1024  # characters; checked before any decoding
CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_CTI, CLAIM_PASSGATE = 1, 4, 5, 6, 7, -65537
CLAIM_CNF = holder.CLAIM_CNF
CLAIM_KEYS = frozenset({CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_CTI, CLAIM_PASSGATE})
BOUND_CLAIM_KEYS = CLAIM_KEYS | {CLAIM_CNF}
MAX_TIME = 2**40
HINT_MAX = 12
PASS_ID_MIN, PASS_ID_MAX = 12, 32
MAX_PURPOSE_CODE = 65535

_ZONE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
ISSUER_MAX = 32
NAME_PUNCTUATION = " -.,'/#№()"
_ASCII_NAME_RE = re.compile(r"[A-Za-z0-9.,'/#()-]+(?: [A-Za-z0-9.,'/#()-]+)*")
# Category Lo, yet blank: they would make an invisible name out of "letters".
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# Letters that join a neighbour into one grapheme cluster (UAX #29: Hangul conjoining jamo,
# the Prepend letters, the SpacingMark letters, the Extend letters U+FF9E-FF9F): twelve of
# them can draw as one glyph. Korean is written with precomposed NFC syllables, not refused.
_JOINING_LETTERS = (
    (0x0D4E, 0x0D4E), (0x0E33, 0x0E33), (0x0EB3, 0x0EB3), (0x1100, 0x11FF),
    (0xA960, 0xA97F), (0xD7B0, 0xD7FF), (0xFF9E, 0xFF9F), (0x111C2, 0x111C3),
    (0x1193F, 0x1193F), (0x11941, 0x11941), (0x11A3A, 0x11A3A), (0x11A84, 0x11A89),
    (0x11D46, 0x11D46),
)


def _joins(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _JOINING_LETTERS)
_VERSION_RE = re.compile(r"PG[0-9]+:")


def visible_name(s: object, max_len: int) -> bool:
    """True if ``s`` is a name (iss or hint) of 1-``max_len`` characters of the name class."""
    if type(s) is not str or not 0 < len(s) <= max_len:
        return False
    if s.isascii():  # the common case, one regex
        return _ASCII_NAME_RE.fullmatch(s) is not None
    if s[0] == " " or s[-1] == " " or "  " in s or not unicodedata.is_normalized("NFC", s):
        return False
    for ch in s:
        if ch in NAME_PUNCTUATION:
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "L":
            if ch in _BLANK_LETTERS or _joins(ch):
                return False
        elif cat != "Nd":
            return False
    return True


class _Seen:
    """Values of one exact type that passed :meth:`Claims.validate`'s check, remembered.

    A site has a few issuers and a few zone lists, read on every pass: checked once, then
    looked up. Bounded (emptied when full), so a stream of made-up names costs at most
    ``limit`` entries; only values of exactly ``kind`` (str, or a tuple of str) are looked up
    or kept, so nothing unhashable or of a subclass that compares equal takes the shortcut.
    """

    def __init__(self, kind: type, limit: int = 4096) -> None:
        self.kind, self.limit = kind, limit
        self._values: set[object] = set()

    def has(self, value: object) -> bool:
        if type(value) is not self.kind:
            return False
        try:
            return value in self._values
        except TypeError:  # a tuple holding something unhashable: never kept
            return False

    def add(self, value: object) -> None:
        if type(value) is not self.kind or self.has(value):
            return
        if isinstance(value, tuple) and not all(type(v) is str for v in value):
            return
        if len(self._values) >= self.limit:
            self._values.clear()
        self._values.add(value)


_VALID_NAMES = _Seen(str)
_VALID_ZONES = _Seen(tuple)


def strip_line_ending(text: str) -> str:
    """Remove the trailing CR and LF characters a scanner appends; nothing else."""
    return text.rstrip("\r\n")


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Claims:
    issuer: str
    pass_id: bytes
    not_before: int
    expires: int
    issued_at: int
    purpose: int  # code in the purpose table
    zones: tuple[str, ...]
    hint: str | None = None
    holder_key: bytes | None = None  # 33-byte compressed P-256 point (claim 8, cnf)

    def validate(self) -> None:
        """Raise ``PassFormatError('malformed', ...)`` unless every field is within its limits.

        On the verify path: an issuer name and a zone list already found valid are
        remembered (:class:`_Seen`, bounded), so the common pass skips their regexes.
        """
        issuer, zones = self.issuer, self.zones
        known_issuer = _VALID_NAMES.has(issuer)
        if not known_issuer and not visible_name(issuer, ISSUER_MAX):
            raise malformed(f"iss must be 1-{ISSUER_MAX} visible characters (letters, digits, "
                            f"single spaces, {NAME_PUNCTUATION[1:]}; NFC)")
        if type(self.pass_id) is not bytes or not PASS_ID_MIN <= len(self.pass_id) <= PASS_ID_MAX:
            raise malformed("cti (pass id) must be 12-32 bytes")
        not_before, expires, issued_at = self.not_before, self.expires, self.issued_at
        if not (type(not_before) is int and type(expires) is int and type(issued_at) is int
                and 0 <= not_before < MAX_TIME and 0 <= expires < MAX_TIME
                and 0 <= issued_at < MAX_TIME):
            for name, value in (("not_before", not_before), ("expires", expires),
                                ("issued_at", issued_at)):
                if type(value) is not int or not 0 <= value < MAX_TIME:
                    raise malformed(f"{name} must be a non-negative integer time")
        if expires <= not_before:
            raise malformed("exp must be after nbf")
        if issued_at > not_before:
            # A pass is never valid before it exists: iat <= nbf < exp (spec 1.1).
            raise malformed("iat must not be after nbf")
        if type(self.purpose) is not int or not 0 <= self.purpose <= MAX_PURPOSE_CODE:
            raise malformed(f"purpose must be a code 0-{MAX_PURPOSE_CODE}")
        if not _VALID_ZONES.has(zones):
            for zone in zones:
                if not isinstance(zone, str) or not _ZONE_RE.fullmatch(zone):
                    raise malformed("zone names are 1-32 of A-Z a-z 0-9 _ . -")
            if not zones or len(zones) > 16 or len(set(zones)) != len(zones):
                raise malformed("zones must be 1-16 distinct names")
            _VALID_ZONES.add(zones)
        if not known_issuer:
            _VALID_NAMES.add(issuer)
        hint = self.hint
        if hint is not None and not visible_name(hint, HINT_MAX):
            raise malformed(f"hint must be 1-{HINT_MAX} visible characters (letters, digits, "
                            f"single spaces, {NAME_PUNCTUATION[1:]}; NFC)")
        if self.holder_key is not None:
            holder.check_point(self.holder_key)

    def to_cbor_map(self) -> dict[int, object]:
        extra: list[object] = [self.purpose, list(self.zones)]
        if self.hint is not None:
            extra.append(self.hint)
        bound = {} if self.holder_key is None else {CLAIM_CNF: holder.cnf_value(self.holder_key)}
        return {**bound,
            CLAIM_ISS: self.issuer,
            CLAIM_EXP: self.expires,
            CLAIM_NBF: self.not_before,
            CLAIM_IAT: self.issued_at,
            CLAIM_CTI: self.pass_id,
            CLAIM_PASSGATE: extra,
        }


# Claims(...) for the verify path: the same object, built faster (slotinit.py).
_claims = slot_factory(Claims)


def encode(claims: Claims, sign: Callable[[bytes], bytes], kid: bytes) -> str:
    """Return the QR text of a pass; ``sign`` maps bytes to an Ed25519 signature.

    Raises ``PassFormatError`` (malformed) for invalid claims, and for claims that are each
    within limits but together make a text over ``MAX_TEXT`` (16 long zones and a long
    non-ASCII issuer name can): the verifier would refuse such a pass unread.
    """
    claims.validate()
    cose = encode_sign1(dumps(claims.to_cbor_map()), sign, {HDR_ALG: ALG_EDDSA, HDR_KID: kid})
    text = PREFIX + base45.encode(cose)
    if len(text) > MAX_TEXT:
        raise malformed(f"the pass would be {len(text)} characters, over the {MAX_TEXT} a "
                        "checkpoint reads: use fewer or shorter zones, a shorter issuer or hint")
    if claims.holder_key is not None and holder.live_text_len(text) > holder.MAX_LIVE_TEXT:
        raise malformed(f"its live code would be {holder.live_text_len(text)} characters, over "
                        f"the {holder.MAX_LIVE_TEXT} a checkpoint reads: use fewer or shorter "
                        "zones, a shorter issuer or hint")
    return text


def parse_text(text: str | bytes) -> Sign1:
    """From QR text to the COSE structure, with the length capped before any decoding.

    The cap counts the text without its trailing line ending (:func:`strip_line_ending`).
    """
    if type(text) is not str and isinstance(text, bytes | bytearray):
        text = bytes(text).rstrip(b"\r\n")
        if len(text) > MAX_TEXT:
            raise malformed(f"longer than {MAX_TEXT} characters")
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise malformed("not ASCII text") from None
    if not isinstance(text, str):
        raise malformed("not text")
    text = strip_line_ending(text)
    if len(text) > MAX_TEXT:
        raise malformed(f"longer than {MAX_TEXT} characters")
    if not text.startswith(PREFIX):
        if _VERSION_RE.match(text):
            raise unsupported(f"pass format version {text.split(':', 1)[0]} is not supported")
        raise malformed("not a passgate pass (no PG1: prefix)")
    try:
        raw = base45.decode(text[len(PREFIX):])
    except ValueError as exc:
        raise malformed(f"bad base45: {exc}") from None
    return decode_sign1(raw)


def read_text(text: str) -> tuple[bytes, bytes, bytes] | None:
    """``(kid, signed, payload)`` of a pass text in the layout every issuer writes, or None.

    The verifier's fast path (``signed`` is the signature then the ToBeSigned bytes, see
    :func:`passgate.passes.wire.read_signed`). It only ever accepts less than
    :func:`parse_text`: on None the caller runs :func:`parse_text`, which accepts the text or
    names its fault.
    """
    text = text.rstrip("\r\n")  # strip_line_ending
    if len(text) > MAX_TEXT or not text.startswith(PREFIX):
        return None
    try:
        raw = base45.decode(text[4:])
    except ValueError:  # PassFormatError included: parse_text says which
        return None
    return read_signed(raw)


def parse_claims(payload: bytes) -> Claims:
    """Decode and check the CWT claims set (call only after the signature verified).

    Strictness: after every field is checked, ``payload`` must be exactly
    :func:`claims_cbor` of the result, the one deterministic encoding of those claims.
    The layout every issuer writes is read by :func:`passgate.passes.wire.read_claims`,
    which only accepts that one encoding; anything else takes the general path below.
    """
    fields = read_claims(payload) if type(payload) is bytes else None
    if fields is not None:
        claims = _claims(*fields)
        claims.validate()
        return claims
    return parse_claims_general(payload)


def parse_claims_general(payload: bytes) -> Claims:
    """:func:`parse_claims` through cbor2, for any input: the reference the fast reader
    (``wire.read_claims``) must agree with, and the path that names every refusal."""
    obj = loads(payload, "claims")
    if type(obj) is not dict:
        raise malformed("claims must be a map")
    if obj.keys() != CLAIM_KEYS and obj.keys() != BOUND_CLAIM_KEYS:
        keys = set(obj)
        if any(type(k) is not int for k in keys):
            raise malformed("claim keys must be integers")
        missing, extra = CLAIM_KEYS - keys, keys - BOUND_CLAIM_KEYS
        raise malformed(f"claims missing {sorted(missing)}" if missing
                        else f"unknown claims {sorted(extra)}")
    extra = obj[CLAIM_PASSGATE]
    if (type(extra) not in (list, tuple) or len(extra) not in (2, 3)
            or type(extra[1]) not in (list, tuple)):
        raise malformed("passgate claim must be [purpose, zones, hint?]")
    holder_key = holder.point_of_cnf(obj[CLAIM_CNF]) if CLAIM_CNF in obj else None
    claims = Claims(obj[CLAIM_ISS], obj[CLAIM_CTI], obj[CLAIM_NBF], obj[CLAIM_EXP], obj[CLAIM_IAT],
                    extra[0], tuple(extra[1]), extra[2] if len(extra) == 3 else None,
                    holder_key)
    claims.validate()
    if claims_cbor(claims) != payload:
        # Keys equal to the claim numbers but not integers (True == 1) end up here too.
        if any(type(k) is not int for k in obj):
            raise malformed("claim keys must be integers")
        raise not_deterministic("claims")
    return claims


_KEY_PASSGATE = head(1, -1 - CLAIM_PASSGATE)


def claims_cbor(c: Claims) -> bytes:
    """Deterministic CBOR of validated claims: ``cbor2.dumps(c.to_cbor_map(), canonical=True)``.

    Written out (keys 1, 4, 5, 6, 7, 8 (cnf, if bound) then -65537: cbor2's canonical order)
    because it is on the verify path, where cbor2's encoder costs ~7 us;
    ``tests/test_passformat.py`` checks the two agree.
    """
    iss = c.issuer.encode()
    bound = c.holder_key is not None
    parts = [b"\xa7\x01" if bound else b"\xa6\x01", head(3, len(iss)), iss,
             b"\x04", head(0, c.expires), b"\x05", head(0, c.not_before),
             b"\x06", head(0, c.issued_at), b"\x07", head(2, len(c.pass_id)), c.pass_id,
             b"\x08" + holder.cnf_cbor(c.holder_key) if c.holder_key is not None else b"",
             _KEY_PASSGATE, b"\x82" if c.hint is None else b"\x83", head(0, c.purpose),
             head(4, len(c.zones))]
    for zone in c.zones:
        z = zone.encode()
        parts += (head(3, len(z)), z)
    if c.hint is not None:
        h = c.hint.encode()
        parts += (head(3, len(h)), h)
    return b"".join(parts)
