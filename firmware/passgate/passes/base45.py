"""Strict base45 (RFC 9285).

Hand-written because it is short, must be strict (no lower case, no overflowing triples or
pairs, no dangling character) and sits on the verify path, which imports no numpy (``passgate
verify`` starts in a fraction of a second; ``tests/test_cli_lazy.py``). Decoding runs no Python
loop per triple: a byte translation table turns characters into values, the values are read
as one big integer whose 24-bit slots each hold one triple's three digits, and shifts and
masks turn every slot into ``c + 45*d + 2025*e`` at once (below 2**17, so no slot carries into
the next); an overflowing triple shows as a non-zero high byte of its slot. Each slot's high byte
(zero once checked) is then deleted with one strided ``del``. About 2 us for a pass (6 us
with one integer per digit position, 3 us with masks shifted per call and the output
interleaved by two strided assignments; ``bench/verify.py``).
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


# Per-triple masks, made once per text length (``_masks``): shifting the masks of the longest
# pass down cost ~0.4 us a call. A pass text is at most 1,024 characters, so at most 342
# lengths of at most 1 kB each (~350 kB if every length were seen); longer texts (not passes)
# build theirs without keeping them.
_MAX_TRIPLES = 342
_MASKS: dict[int, tuple[int, int]] = {}


def _masks(k: int) -> tuple[int, int]:
    """The low-byte and high-byte masks of ``k`` 24-bit slots."""
    masks = _MASKS.get(k)
    if masks is None:
        low = int.from_bytes(b"\0\0\xff" * k, "big")
        masks = low, low << 16
        if k <= _MAX_TRIPLES:
            _MASKS[k] = masks
    return masks


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
    # The digits c, d, e of each triple are the three bytes of a 24-bit slot of one integer;
    # the slot's value c + 45 d + 2025 e (at most 91,124) is computed in place for every slot.
    x = int.from_bytes(values[:full] if full != len(values) else values, "big")
    low, high = _masks(k)
    total = ((x >> 16) & low) + 45 * ((x >> 8) & low) + 2025 * (x & low)
    if total & high:  # a slot's high byte: that triple is above 65535
        raise PassFormatError("malformed", "base45 triple exceeds 65535")
    out = bytearray(total.to_bytes(full, "big"))
    del out[0::3]  # each slot's zero high byte; the two bytes of the triple remain, in order
    if full != len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise PassFormatError("malformed", "base45 pair exceeds 255")
        out.append(n)
    return bytes(out)
