"""Holder-bound passes (spec 1.2): the holder key, the ``cnf`` claim and the ``PG2:`` live code.

See ``docs/pass-format.md`` section 10. In short:

- The holder key is ECDSA P-256 (COSE ES256, alg -7): every browser keeps one as a
  non-extractable WebCrypto key, and WebCrypto's signature (IEEE P1363 ``r || s``, 64 bytes)
  is COSE's ES256 signature as it is.
- Holder key text code: ``PGK1:`` + base32 (RFC 4648, upper case, no padding) of the
  33-byte compressed SEC1 point followed by the first 2 bytes of its SHA-256 (a typo check):
  56 characters after the prefix. Readers ignore ASCII spaces and ``-``, accept lower case,
  and refuse a wrong prefix, length, checksum or a point not on the curve.
- Level 1 (``PG1:``) may carry claim 8, ``cnf`` = ``{1: {1: 2, -1: 1, -2: x, -3: y_odd}}``
  (RFC 8747 with the compressed EC2 COSE_Key of RFC 9053 section 7.1.1), nothing else.
- Level 2 (``PG2:``) = base45 of the deterministic CBOR array ``[L1, L2]``: L1 the issued
  COSE_Sign1 bytes, L2 a tagged COSE_Sign1 by the holder key with protected ``{1: -7}``,
  empty unprotected, payload ``[t, n]`` (phone time, counter) and the whole L1 as external
  AAD, so a level 2 is bound to that one pass.

Rules kept: decoding is as strict as level 1 (deterministic CBOR, exact types, no tag but the
outer 18, exactly one encoding per code); every refusal is a :class:`PassFormatError`
(``malformed``, or ``unsupported`` for another algorithm), never another exception. The
identifier of a live code (:attr:`LiveCode.code_id`) is taken over the *signed* content (pass
id and payload), never over the signature: ECDSA signatures are malleable (``s`` and
``n - s`` both verify), so an id over the signature would let a copier make a "new" code.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from passgate.errors import PassFormatError
from passgate.passes import base45
from passgate.passes.cose import (
    SIG_LEN,
    TAG_SIGN1,
    head,
    loads,
    loads_strict,
    malformed,
    not_deterministic,
    sig_structure,
    unsupported,
)
from passgate.passes.wire import cbor_arg as _arg

KEY_PREFIX = "PGK1:"
LIVE_PREFIX = "PG2:"
PASS_PREFIX = "PG1:"
POINT_LEN = 33  # compressed SEC1: 02/03 || x
CHECK_LEN = 2
KEY_CODE_LEN = 56  # base32 characters of 35 bytes, no padding needed
CLAIM_CNF = 8
ALG_ES256 = -7
MAX_T = 2**40
MAX_N = 2**32
# What the live code may be at most, in characters: the checkpoint reads up to this much.
MAX_LIVE_TEXT = 1024

# COSE_Key labels (RFC 9052/9053): kty 1 = EC2 (2), crv -1 = P-256 (1), x -2, y -3.
_KTY, _CRV, _X, _Y = 1, -1, -2, -3
_CNF_COSE_KEY = 1
# {1: {1: 2, -1: 1, -2: h'<32>', -3: bool}} in deterministic CBOR, less x and the y bit.
_CNF_HEAD = b"\xa1\x01\xa4\x01\x02\x20\x01\x21\x58\x20"
_PROTECTED = b"\xa1\x01\x26"  # {1: -7}
# tag 18, array of 4, bstr(3) {1: -7}, the empty unprotected map
_L2_HEAD = b"\xd2\x84\x43" + _PROTECTED + b"\xa0"
_SIG_HEAD = head(2, SIG_LEN)
_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


# -- the holder key ---------------------------------------------------------------------


def check_point(point: object) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a 33-byte compressed point; ``malformed`` if it is not one."""
    if type(point) is not bytes or len(point) != POINT_LEN or point[0] not in (2, 3):
        raise malformed("holder key must be a 33-byte compressed P-256 point (02/03 || x)")
    try:
        return _decompress(point)
    except ValueError:
        raise malformed("holder key is not a point on the P-256 curve") from None


@functools.lru_cache(maxsize=64)
def _decompress(point: bytes) -> ec.EllipticCurvePublicKey:
    """Decompressing costs ~40 us (a square root mod p); a live code's check needs the key
    three times (cnf read, claims checked, level 2 verified): once is enough. Refusals
    (ValueError) are not cached."""
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def compressed_point(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> bytes:
    """The 33-byte compressed SEC1 form of a P-256 key (of the public half of a private key)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if not isinstance(key.curve, ec.SECP256R1):
        raise TypeError(f"holder keys are P-256, not {key.curve.name}")
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def _checksum(point: bytes) -> bytes:
    return hashlib.sha256(point).digest()[:CHECK_LEN]


def format_holder_key(point33: bytes) -> str:
    """``PGK1:`` + base32 of the point and its 2-byte SHA-256 check (56 characters)."""
    check_point(point33)
    return KEY_PREFIX + base64.b32encode(point33 + _checksum(point33)).decode("ascii")


def parse_holder_key(text: str) -> bytes:
    """The 33-byte compressed point of a ``PGK1:`` key code; ``PassFormatError`` if refused.

    ASCII spaces and ``-`` are ignored anywhere and lower case is accepted (people retype
    codes); the prefix, length, checksum and the point itself are all checked.
    """
    if not isinstance(text, str):
        raise malformed("a holder key code is text")
    cleaned = text.strip("\r\n").replace(" ", "").replace("-", "").upper()
    if not cleaned.startswith(KEY_PREFIX):
        raise malformed(f"not a holder key code (no {KEY_PREFIX} prefix)")
    body = cleaned[len(KEY_PREFIX):]
    if len(body) != KEY_CODE_LEN:
        raise malformed(f"a holder key code has {KEY_CODE_LEN} characters after {KEY_PREFIX}, "
                        f"this one {len(body)}")
    try:
        raw = base64.b32decode(body)
    except (binascii.Error, ValueError):
        raise malformed("holder key code: not base32 (A-Z, 2-7)") from None
    point, check = raw[:POINT_LEN], raw[POINT_LEN:]
    if _checksum(point) != check:
        raise malformed("holder key code: checksum does not match (a typo?)")
    check_point(point)
    return point


# -- claim 8, cnf -----------------------------------------------------------------------


def cnf_cbor(point33: bytes) -> bytes:
    """Deterministic CBOR of the ``cnf`` claim value for a (checked) compressed point."""
    return _CNF_HEAD + point33[1:] + (b"\x22\xf5" if point33[0] == 3 else b"\x22\xf4")


def cnf_value(point33: bytes) -> dict[int, object]:
    """The ``cnf`` claim value as a Python map (for cbor2 and the tests)."""
    return {_CNF_COSE_KEY: {_KTY: 2, _CRV: 1, _X: point33[1:], _Y: point33[0] == 3}}


def point_of_cnf(value: object) -> bytes:
    """The compressed point in a decoded ``cnf`` claim value; ``malformed`` for any other shape.

    Exact types: a bool is not an int and an int is not a bool (``{-3: 1}`` is refused).
    """
    if type(value) is not dict or list(value) != [_CNF_COSE_KEY]:
        raise malformed("cnf must be {1: COSE_Key}")
    key = value[_CNF_COSE_KEY]
    if type(key) is not dict or set(key) != {_KTY, _CRV, _X, _Y}:
        raise malformed("cnf key must be {1: 2, -1: 1, -2: x, -3: y-sign} (EC2, P-256)")
    if any(type(label) is not int for label in key):
        raise malformed("cnf key labels must be integers")
    kty, crv, x, y = key[_KTY], key[_CRV], key[_X], key[_Y]
    if type(kty) is not int or kty != 2 or type(crv) is not int or crv != 1:
        raise malformed("cnf key must be kty 2 (EC2), crv 1 (P-256)")
    if type(x) is not bytes or len(x) != 32 or type(y) is not bool:
        raise malformed("cnf key needs x (32 bytes) and y as its sign bit (true/false)")
    point = (b"\x03" if y else b"\x02") + x
    check_point(point)
    return point


# -- level 2, the live code -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveCode:
    """A decoded ``PG2:`` text: the issued pass's COSE bytes and the holder's signed part."""

    l1: bytes
    payload: bytes  # deterministic CBOR [t, n]
    signature: bytes  # r || s
    t: int
    n: int

    def verifies(self, point33: bytes) -> bool:
        """True if the level 2 is the signature of holder key ``point33`` over this pass."""
        r = int.from_bytes(self.signature[:32], "big")
        s = int.from_bytes(self.signature[32:], "big")
        if not (0 < r < _ORDER and 0 < s < _ORDER):
            return False
        try:
            key = check_point(point33)
            key.verify(encode_dss_signature(r, s), self.to_be_signed, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, PassFormatError):
            return False
        return True

    @property
    def to_be_signed(self) -> bytes:
        return sig_structure(_PROTECTED, self.payload, self.l1)

    def code_id(self, pass_id: bytes) -> bytes:
        """What identifies this live code (keyed-hashed by the journal): SHA-256 of the pass
        id and the signed payload; not the signature, which a copier could re-form."""
        return hashlib.sha256(head(2, len(pass_id)) + pass_id + self.payload).digest()


def _time_counter(payload: bytes) -> tuple[int, int]:
    t, pos = _arg(payload, 1, 0) if payload[:1] == b"\x82" else (-1, 0)
    n, end = _arg(payload, pos, 0) if t >= 0 else (-1, 0)
    if n >= 0 and end == len(payload):
        value: object = [t, n]  # two shortest-form unsigned integers: what cbor2 gives, read
    else:  # anything else: decoded and re-encoded strictly, which names the fault
        value = loads_strict(payload, "live code payload", tags=False)
    if type(value) is not list or len(value) != 2:
        raise malformed("live code payload must be the array [t, n]")
    t, n = value
    if type(t) is not int or not 0 <= t < MAX_T:
        raise malformed("live code time must be an unsigned integer below 2**40")
    if type(n) is not int or not 0 <= n < MAX_N:
        raise malformed("live code counter must be an unsigned integer below 2**32")
    return t, n


def _decode_l2(data: bytes) -> tuple[bytes, bytes]:
    """(payload, signature) of the holder's COSE_Sign1, strictly."""
    if data.startswith(_L2_HEAD):
        n, pos = _bstr_at(data, len(_L2_HEAD))
        payload = data[pos:pos + n]
        signature = data[pos + n + len(_SIG_HEAD):]
        if (len(payload) == n and data[pos + n:pos + n + len(_SIG_HEAD)] == _SIG_HEAD
                and len(signature) == SIG_LEN):
            return payload, signature
    # Not the one layout: say why, as the level-1 decoder would.
    obj = loads(data, "live code signature")
    if type(obj) is not cbor2.CBORTag or obj.tag != TAG_SIGN1:
        raise malformed("live code: level 2 is not a tagged COSE_Sign1 (CBOR tag 18)")
    items = obj.value
    if type(items) not in (list, tuple) or len(items) != 4:
        raise malformed("live code: COSE_Sign1 must be an array of 4")
    prot, unprot, payload, signature = items
    if type(prot) is not bytes or type(payload) is not bytes:
        raise malformed("live code: protected header and payload must be byte strings")
    if prot != _PROTECTED:
        header = loads_strict(prot, "live code protected header", tags=False) if prot else {}
        alg = header.get(1) if type(header) is dict else None
        if type(header) is dict and set(header) == {1} and type(alg) in (int, str):
            raise unsupported(f"live code algorithm {alg!r} is not ES256 (-7)")
        raise malformed("live code: protected header must be exactly {1: -7}")
    if type(unprot) is not dict or unprot:
        raise malformed("live code: unprotected header must be the empty map")
    if type(signature) is not bytes or len(signature) != SIG_LEN:
        raise malformed("live code: signature must be 64 bytes (r || s)")
    raise not_deterministic("live code signature")


def _bstr_at(data: bytes, pos: int) -> tuple[int, int]:
    """(length, start) of a shortest-form byte string head at ``pos``; (-1, pos) if not."""
    if pos >= len(data) or data[pos] >> 5 != 2:
        return -1, pos
    ai = data[pos] & 0x1F
    if ai < 24:
        return ai, pos + 1
    if ai > 27:
        return -1, pos
    width = 1 << (ai - 24)
    n = int.from_bytes(data[pos + 1:pos + 1 + width], "big")
    if head(2, n) != data[pos:pos + 1 + width]:
        return -1, pos
    return n, pos + 1 + width


def _two_bstrs(raw: bytes) -> list[bytes] | None:
    """``[l1, l2]`` if ``raw`` is exactly an array of two byte strings in deterministic CBOR
    (shortest heads, nothing after): what ``loads_strict`` returns for those bytes, without
    cbor2 and the re-encoding; None for anything else."""
    if raw[:1] != b"\x82":
        return None
    n1, p1 = _bstr_at(raw, 1)
    if n1 < 0 or p1 + n1 > len(raw):
        return None
    n2, p2 = _bstr_at(raw, p1 + n1)
    if n2 < 0 or p2 + n2 != len(raw):
        return None
    return [raw[p1:p1 + n1], raw[p2:]]


def parse_live_text(text: str | bytes) -> LiveCode:
    """Decode a ``PG2:`` text strictly (its signature is checked by :meth:`LiveCode.verifies`).

    The caller has seen the prefix; the length cap (``MAX_LIVE_TEXT``, trailing CR/LF not
    counted) applies before any decoding.
    """
    if not isinstance(text, str):
        if not isinstance(text, bytes | bytearray):
            raise malformed("not text")
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise malformed("not ASCII text") from None
    text = text.rstrip("\r\n")
    if len(text) > MAX_LIVE_TEXT:
        raise malformed(f"longer than {MAX_LIVE_TEXT} characters")
    if not text.startswith(LIVE_PREFIX):
        raise malformed(f"not a live code (no {LIVE_PREFIX} prefix)")
    try:
        raw = base45.decode(text[len(LIVE_PREFIX):])
    except ValueError as exc:
        raise malformed(f"bad base45: {exc}") from None
    outer: object = _two_bstrs(raw)
    if outer is None:  # not the one layout: decoded and re-encoded strictly, naming the fault
        outer = loads_strict(raw, "live code", tags=False)
    if type(outer) is not list or len(outer) != 2 or any(type(b) is not bytes for b in outer):
        raise malformed("live code must be the array [level 1 bytes, level 2 bytes]")
    l1, l2 = outer
    payload, signature = _decode_l2(l2)
    t, n = _time_counter(payload)
    return LiveCode(l1, payload, signature, t, n)


def presentation_key(text: str) -> str:
    """What makes two decoded texts the same presentation: the text itself, except that the
    live codes of one pass (the app refreshes every few seconds while the phone is held up)
    are one presentation: ``PG2:`` + base45 of their level 1. Never raises; an unreadable
    ``PG2:`` text is its own key."""
    if not text.startswith(LIVE_PREFIX):
        return text
    try:
        return LIVE_PREFIX + base45.encode(parse_live_text(text).l1)
    except PassFormatError:
        return text


def live_text(l1: bytes, payload: bytes, signature: bytes) -> str:
    """The ``PG2:`` text of the parts (no checks: the reference encoder for tests)."""
    l2 = b"".join((_L2_HEAD, head(2, len(payload)), payload, _SIG_HEAD, signature))
    outer = b"\x82" + head(2, len(l1)) + l1 + head(2, len(l2)) + l2
    return LIVE_PREFIX + base45.encode(outer)


def pass_cose(pass_text: str) -> bytes:
    """The COSE_Sign1 bytes (level 1) of a ``PG1:`` pass text."""
    if not isinstance(pass_text, str) or not pass_text.startswith(PASS_PREFIX):
        raise malformed(f"not a passgate pass (no {PASS_PREFIX} prefix)")
    try:
        return base45.decode(pass_text.rstrip("\r\n")[len(PASS_PREFIX):])
    except ValueError as exc:
        raise malformed(f"bad base45: {exc}") from None


def live_text_len(pass_text: str) -> int:
    """The most characters a live code of this pass can have (t and n at their largest)."""
    l1 = len(pass_cose(pass_text))
    l2 = len(_L2_HEAD) + 1 + 15 + len(_SIG_HEAD) + SIG_LEN  # payload [2**40-1, 2**32-1]
    raw = 1 + len(head(2, l1)) + l1 + len(head(2, l2)) + l2
    return len(LIVE_PREFIX) + raw // 2 * 3 + raw % 2 * 2


def make_live_code(pass_text: str, private_key: ec.EllipticCurvePrivateKey, t: int,
                   n: int) -> str:
    """The ``PG2:`` live code the holder app shows: the Python reference, for tests and vectors.

    ``t`` is the phone's POSIX time in whole seconds, ``n`` its refresh counter. The
    signature is deterministic (RFC 6979).
    """
    if type(t) is not int or not 0 <= t < MAX_T or type(n) is not int or not 0 <= n < MAX_N:
        raise malformed("t must be a uint below 2**40 and n a uint below 2**32")
    l1 = pass_cose(pass_text)
    payload = cbor2.dumps([t, n], canonical=True)
    # Deterministic ECDSA (RFC 6979): same inputs, same code, so vectors are reproducible;
    # the app's randomised WebCrypto signatures verify the same way.
    der = private_key.sign(sig_structure(_PROTECTED, payload, l1),
                           ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return live_text(l1, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
