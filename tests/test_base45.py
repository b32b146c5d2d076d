"""base45 (RFC 9285): the RFC's own examples, round trips and strict rejections."""

from __future__ import annotations

import pytest

from passgate.passes import base45

# RFC 9285 section 4.3 (encoding) and 4.4 (decoding) examples.
RFC_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


@pytest.mark.parametrize(("raw", "text"), RFC_EXAMPLES)
def test_rfc9285_examples_encode(raw: bytes, text: str) -> None:
    assert base45.encode(raw) == text


@pytest.mark.parametrize(("raw", "text"), RFC_EXAMPLES)
def test_rfc9285_examples_decode(raw: bytes, text: str) -> None:
    assert base45.decode(text) == raw


def test_empty() -> None:
    assert base45.encode(b"") == ""
    assert base45.decode("") == b""


def test_round_trip_every_byte_value_and_length() -> None:
    data = bytes(range(256)) * 2
    for n in range(0, 40):
        assert base45.decode(base45.encode(data[:n])) == data[:n]
    assert base45.decode(base45.encode(data)) == data


def test_extremes() -> None:
    # 0xFFFF is the largest triple ("FGW"), 0xFF the largest pair ("U5").
    assert base45.encode(b"\xff\xff") == "FGW"
    assert base45.decode("FGW") == b"\xff\xff"
    assert base45.encode(b"\xff") == "U5"
    assert base45.decode("U5") == b"\xff"
    assert base45.decode("000") == b"\x00\x00"
    assert base45.decode("00") == b"\x00"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("GGW", "triple exceeds"),  # 65536: one past 0xFFFF (RFC 9285 section 6)
        (":::", "triple exceeds"),  # 44 + 44*45 + 44*2025, the largest three characters
        ("V5", "pair exceeds"),  # 256: one past 0xFF
        ("::", "pair exceeds"),
        ("BB8A", "single character"),  # a dangling character is never valid
        ("A", "single character"),
        ("bb8", "not base45"),  # lower case is not in the alphabet
        ("BB#", "not base45"),
        ("BB\n", "not base45"),
        ("BB_", "not base45"),
        ("BBé", "non-ASCII"),
        ("BB\u0660", "non-ASCII"),  # Arabic-Indic zero: a digit to Python, not to base45
    ],
)
def test_strict_rejections(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        base45.decode(text)


def test_canonical_every_valid_text_re_encodes_to_itself() -> None:
    """Strictness means one text per byte string: decode then encode gives the text back."""
    for text in ["BB8", "%69 VD92EX0", "FGW", "U5", "00", "000", "", "FGWU5"]:
        assert base45.encode(base45.decode(text)) == text


def test_texts_longer_than_a_pass_decode_and_leave_no_cached_masks() -> None:
    # Masks are kept per length only up to a pass's longest text (342 triples).
    data = bytes(range(256)) * 6  # 1,536 bytes: 768 triples
    kept = dict(base45._MASKS)
    assert base45.decode(base45.encode(data)) == data
    assert base45.decode(base45.encode(data + b"\x07")) == data + b"\x07"
    assert set(base45._MASKS) == set(kept)
    with pytest.raises(ValueError, match="triple exceeds"):
        base45.decode(base45.encode(data) + "GGW")
