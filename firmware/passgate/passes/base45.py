"""Strict base45 (RFC 9285).

Hand-written because it is short, must be strict (no lower case, no overflowing triples or
pairs, no dangling character) and sits on the verify path, which imports no numpy (``passgate
verify`` starts in a fraction of a second; ``tests/test_cli_lazy.py``). Decoding runs no Python
loop per triple: a byte translation table turns characters into values, and the triples are
summed as three big integers whose 32-bit slots each hold one triple's digit (``c + 45*d +
2025*e`` stays below 2**17, so no slot carries into the next); an overflowing triple shows as
a non-zero bit 16 of its slot. That is as fast as the numpy dot product it replaced.
Checked against the RFC's examples in ``tests/test_base45.py``.
"""

from __future__ import annotations

from passgate.errors import PassFormatError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
_TABLE = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else _INVALID for b in range(256))


def encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out.append(ALPHABET[c] + ALPHABET[d] + ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out.append(ALPHABET[c] + ALPHABET[d])
    return "".join(out)


def _slots(digits: bytes, count: int) -> int:
    """``digits`` as one integer with each digit in the low byte of its own 32-bit slot."""
    buf = bytearray(4 * count)
    buf[3::4] = digits
    return int.from_bytes(buf, "big")


def decode(text: str) -> bytes:
    """Decode base45, raising ``ValueError`` for any character, length or value RFC 9285 forbids."""
    if len(text) % 3 == 1:
        raise PassFormatError("malformed", "base45 length leaves a single character")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise PassFormatError("malformed", "non-ASCII character in base45") from None
    values = raw.translate(_TABLE)
    if _INVALID in values:
        bad = chr(raw[values.index(_INVALID)])
        raise PassFormatError("malformed", f"character {bad!r} is not base45")
    full = len(values) - len(values) % 3
    k = full // 3
    total = (_slots(values[0:full:3], k) + 45 * _slots(values[1:full:3], k)
             + 2025 * _slots(values[2:full:3], k))
    slots = total.to_bytes(4 * k, "big")
    if slots[1::4].strip(b"\0"):  # bit 16 of a slot: that triple is above 65535
        raise PassFormatError("malformed", "base45 triple exceeds 65535")
    out = bytearray(2 * k)
    out[0::2] = slots[2::4]
    out[1::2] = slots[3::4]
    if full != len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise PassFormatError("malformed", "base45 pair exceeds 255")
        out.append(n)
    return bytes(out)
