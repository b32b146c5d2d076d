"""Fast readers for the one byte layout every passgate issuer writes; ``None`` for anything else.

Rules kept:

- These readers only ever *accept less*: each returns ``None`` unless the bytes are exactly
  the deterministic CBOR an issuer writes (shortest heads, definite lengths, the fixed key
  order 1, 4, 5, 6, 7, 8 (cnf, bound passes only), -65537, valid UTF-8, no trailing byte),
  and the caller then runs the general strict decoder (``cose.decode_sign1``,
  ``format.parse_claims``), which accepts or refuses with the precise reason. So a pass is
  accepted by the fast path only if the general path would accept the same values, and every
  refusal keeps its reason and detail.
- No exception on the happy path, and none escapes: a truncated input is ``None``.
- Values are checked for shape only; ``Claims.validate`` still checks every limit.

Why: ``Verifier.check`` was 1.62x a bare libsodium verify of the same bytes (CPU time, same
run), the extra being cbor2's object graph, re-encoding and joins around the crypto; with these
readers it was ~1.5x, and ~1.35x with the other cuts of issue 15 (``slotinit.py``, the
base45 decoder; ``bench/verify.py`` prints both and the ratio). :func:`read_signed`
gives the verifier libsodium's signed-message form (signature + ToBeSigned) joined once.
``tests/test_wire.py`` checks the readers agree with the
general decoders on issued passes and on every one-byte change of them.
"""

from __future__ import annotations

import struct

# tag 18, array of 4, a 13-byte protected header {1: -8, 4: h'<8-byte kid>'} (kid follows)
_SIGN1_PLAIN = b"\xd2\x84\x4d\xa2\x01\x27\x04\x48"
_KID_END = len(_SIGN1_PLAIN) + 8
_SIG_HEAD = b"\x58\x40"  # byte string of 64
# ToBeSigned = ["Signature1", protected, h'', payload]: array head and context string.
TBS_PREFIX = b"\x84\x6aSignature1"
_CLAIM_PASSGATE_KEY = b"\x3a\x00\x01\x00\x00"  # -65537


def _payload_bounds(data: bytes) -> tuple[int, int]:
    """(start, end) of the payload in an issuer's COSE_Sign1; ``(-1, 0)`` for anything else."""
    if (not data.startswith(_SIGN1_PLAIN) or len(data) < _KID_END + 2 + 66
            or data[_KID_END] != 0xA0):  # the empty unprotected map
        return -1, 0
    if data[_KID_END + 1] == 0x58:  # a payload of 24-255 bytes (every pass's): read inline
        n, start = data[_KID_END + 2], _KID_END + 3
        if n < 24:  # not the shortest form
            return -1, 0
    else:
        n, start = _arg(data, _KID_END + 1, 2)
        if n < 0:
            return -1, 0
    end = start + n
    if len(data) != end + 2 + 64 or data[end:end + 2] != _SIG_HEAD:
        return -1, 0
    return start, end


def read_sign1(data: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes] | None:
    """``(protected, kid, payload, signature, to_be_signed)`` of an issuer's COSE_Sign1."""
    start, end = _payload_bounds(data)
    if start < 0:
        return None
    protected = data[3:_KID_END]
    # [context, bstr protected (its head is data[2]), bstr h'', bstr payload (head included)]
    to_be_signed = b"".join((TBS_PREFIX, data[2:_KID_END], b"\x40", data[_KID_END + 1:end]))
    kid = data[len(_SIGN1_PLAIN):_KID_END]
    return protected, kid, data[start:end], data[end + 2:], to_be_signed


def read_signed(data: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``(kid, signed, payload)`` of an issuer's COSE_Sign1, the verifier's fast path.

    ``signed`` is the signature followed by the ToBeSigned bytes: libsodium's signed-message
    form (``crypto_sign_open``), joined once instead of once here and once for the check.
    """
    start, end = _payload_bounds(data)
    if start < 0:
        return None
    signed = b"".join((data[end + 2:], TBS_PREFIX, data[2:_KID_END], b"\x40",
                       data[_KID_END + 1:end]))
    return data[len(_SIGN1_PLAIN):_KID_END], signed, data[start:end]


def _arg(data: bytes, pos: int, major: int) -> tuple[int, int]:
    """(argument, position after the head) of a shortest-form head of ``major`` at ``pos``.

    ``(-1, 0)`` if the byte is another major type, truncated or not in shortest form.
    """
    if pos >= len(data):
        return -1, 0
    b = data[pos]
    if b >> 5 != major:
        return -1, 0
    ai = b & 0x1F
    if ai < 24:
        return ai, pos + 1
    if ai > 27:
        return -1, 0
    width = 1 << (ai - 24)  # 1, 2, 4 or 8 bytes
    end = pos + 1 + width
    if end > len(data):
        return -1, 0
    n = int.from_bytes(data[pos + 1:end], "big")
    # Shortest form: the value needs this width (24 and up for one byte).
    if n < (24 if width == 1 else 1 << (4 * width)):
        return -1, 0
    return n, end


cbor_arg = _arg  # for the live code's [t, n] (holder.py)


def _text(data: bytes, pos: int) -> tuple[str | None, int]:
    n, start = _arg(data, pos, 3)
    if n < 0:
        return None, 0
    end = start + n
    raw = data[start:end]
    if len(raw) != n:
        return None, 0
    try:
        return raw.decode("utf-8"), end
    except UnicodeDecodeError:
        return None, 0


# exp, nbf, iat as 4-byte integers (any time from 1970-01-01T18:12 to 2106), each after its
# one-byte key and the head 0x1a: read with one unpack, the keys and heads as integers.
_TIMES4 = struct.Struct(">HIHIHI")
_EXP4, _NBF4, _IAT4 = 0x041A, 0x051A, 0x061A


def _uint_after(data: bytes, pos: int, key: bytes) -> tuple[int, int]:
    """The unsigned integer after the one-byte map key ``key`` at ``pos``; ``(-1, 0)`` if not."""
    if data[pos:pos + 1] != key:
        return -1, 0
    return _arg(data, pos + 1, 0)


ClaimFields = tuple[str, bytes, int, int, int, int, tuple[str, ...], str | None, bytes | None]
# Claim 8 (cnf, spec 1.2) as issued: key 8, {1: {1: 2, -1: 1, -2: h'<x, 32 bytes>', -3: y}}
# with y the sign bit as a CBOR bool (holder.cnf_cbor; tests/test_wire.py checks they agree).
CNF_CLAIM_HEAD = b"\x08\xa1\x01\xa4\x01\x02\x20\x01\x21\x58\x20"
_Y_ODD, _Y_EVEN = b"\x22\xf5", b"\x22\xf4"


def read_claims(data: bytes) -> ClaimFields | None:
    """``(iss, cti, nbf, exp, iat, purpose, zones, hint, holder_key)`` of a deterministic claims
    map; ``holder_key`` (the 33-byte compressed point of claim 8) is None for an unbound pass."""
    first = data[:2]
    if first != b"\xa6\x01" and first != b"\xa7\x01":
        return None
    try:
        return _read_claims(data)
    except (IndexError, UnicodeDecodeError):  # truncated, or a name that is not UTF-8
        return None


def _read_claims(data: bytes) -> ClaimFields | None:
    # Texts under 24 bytes (every issuer name, zone and hint a pass holds: 32 and 12
    # characters at most, mostly ASCII) and byte strings under 24 (the pass ids issuers
    # write) are read inline: head + length, then the bytes; longer ones through _arg.
    size = len(data)
    n = data[2] - 0x60
    if 0 <= n < 24:
        p = 3 + n
        if p > size:
            return None
        issuer = data[3:p].decode("utf-8")
    else:
        text, p = _text(data, 2)
        if text is None:
            return None
        issuer = text
    if data[p:p + 2] == b"\x04\x1a" and size >= p + 18:
        _, expires, k5, not_before, k6, issued_at = _TIMES4.unpack_from(data, p)
        # Shortest form: each is at least 65536.
        if (k5 != _NBF4 or k6 != _IAT4 or expires < 65536 or not_before < 65536
                or issued_at < 65536):
            return None
        p += 18
    else:
        expires, p = _uint_after(data, p, b"\x04")
        not_before, p = _uint_after(data, p, b"\x05") if expires >= 0 else (-1, 0)
        issued_at, p = _uint_after(data, p, b"\x06") if not_before >= 0 else (-1, 0)
        if issued_at < 0:
            return None
    if data[p] != 0x07:
        return None
    n = data[p + 1] - 0x40
    if 0 <= n < 24:
        start = p + 2
    else:
        n, start = _arg(data, p + 1, 2)
        if n < 0:
            return None
    p = start + n
    if p > size:
        return None
    pass_id = data[start:p]
    holder_key = None
    if data[0] == 0xA7:  # seven claims: the seventh is cnf, between cti and -65537
        if data[p:p + 11] != CNF_CLAIM_HEAD:
            return None
        y = data[p + 43:p + 45]
        if y != _Y_ODD and y != _Y_EVEN:  # also when truncated: then x is short too
            return None
        holder_key = (b"\x03" if y == _Y_ODD else b"\x02") + data[p + 11:p + 43]
        p += 45
    if data[p:p + 5] != _CLAIM_PASSGATE_KEY:
        return None
    items = data[p + 5]
    if items != 0x82 and items != 0x83:
        return None
    purpose = data[p + 6]
    if purpose < 24:  # codes 0-23: one byte
        p += 7
    else:
        purpose, p = _arg(data, p + 6, 0)
        if purpose < 0:
            return None
    count = data[p] - 0x80
    if 0 <= count < 24:  # up to 16 zones: one byte
        p += 1
    else:
        count, p = _arg(data, p, 4)
        if count < 0:
            return None
    zones = []
    for _ in range(count):
        n = data[p] - 0x60
        if 0 <= n < 24:
            end = p + 1 + n
            if end > size:
                return None
            zones.append(data[p + 1:end].decode("utf-8"))
            p = end
        else:
            text, p = _text(data, p)
            if text is None:
                return None
            zones.append(text)
    hint = None
    if items == 0x83:
        n = data[p] - 0x60
        if 0 <= n < 24:
            end = p + 1 + n
            if end > size:
                return None
            hint = data[p + 1:end].decode("utf-8")
            p = end
        else:
            hint, p = _text(data, p)
            if hint is None:
                return None
    if p != size:
        return None
    return (issuer, pass_id, not_before, expires, issued_at, purpose, tuple(zones), hint,
            holder_key)
