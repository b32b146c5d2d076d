"""The fast readers of passes.wire accept only what the general strict decoders accept.

Rule (passes/wire.py): a reader returns the same values as the general path or ``None``;
never a value the general path would refuse or read differently. Checked on issued passes of
several shapes and on every one-byte change, truncation and extension of them.
"""

from __future__ import annotations

import pytest

from passgate.errors import PassFormatError
from passgate.issuing.issuer import Issuer
from passgate.passes import base45, wire
from passgate.passes.cose import decode_sign1, decode_sign1_general
from passgate.passes.format import PREFIX, Claims, parse_claims, parse_claims_general

T0 = 1_767_261_600

SHAPES = [  # (issuer name, zones, hint, not_before, duration)
    ("Bench City", ["gate-1"], "AB12", T0, 3600),
    ("Нижний Новгород", ["gate-1", "lobby", "garage"], None, T0, 3 * 3600),
    ("N", ["z" * 32] * 1 + [f"zone-{i}" for i in range(15)], "№ 7 (ab)", T0, 1800),
    ("Early", ["a"], "x", 30, 1800),  # times below 65536: one- and two-byte heads
    ("Late", ["a"], None, 2**33, 3600),  # times above 2**32: eight-byte heads
]


def issued(issuer: Issuer) -> list[bytes]:
    out = []
    for name, zones, hint, nbf, duration in SHAPES:
        iss = Issuer(issuer.key, name)
        text = iss.issue("work", zones, nbf, duration, hint=hint)
        out.append(base45.decode(text[len(PREFIX):]))
    return out


def variants(data: bytes) -> list[bytes]:
    """Every one-byte change (four flips per position), every truncation, one extension."""
    out = [data[:i] for i in range(len(data))] + [data + b"\x00"]
    for i in range(len(data)):
        for flip in (0x01, 0x18, 0x20, 0xFF):
            out.append(data[:i] + bytes([data[i] ^ flip]) + data[i + 1:])
    return out


def general_or_none(fn, data: bytes):
    try:
        return fn(data)
    except PassFormatError:
        return None


@pytest.fixture(scope="module")
def raws(issuer: Issuer) -> list[bytes]:
    return issued(issuer)


def test_issued_passes_take_the_fast_path(raws: list[bytes]) -> None:
    for raw in raws:
        fixed = wire.read_sign1(raw)
        assert fixed is not None
        assert wire.read_claims(fixed[2]) is not None


def test_sign1_reader_agrees_with_the_general_decoder(raws: list[bytes]) -> None:
    for raw in raws:
        for data in variants(raw):
            fast = wire.read_sign1(data)
            if fast is None:
                continue
            ref = general_or_none(decode_sign1_general, data)
            assert ref is not None, data.hex()
            assert (ref.protected, ref.kid, ref.payload, ref.signature, ref.to_be_signed) == fast
            assert decode_sign1(data) == ref


def test_claims_reader_agrees_with_the_general_decoder(raws: list[bytes]) -> None:
    checked = 0
    for raw in raws:
        payload = decode_sign1(raw).payload
        for data in variants(payload):
            fast = wire.read_claims(data)
            ref = general_or_none(parse_claims_general, data)
            if fast is None:
                continue
            checked += 1
            if ref is None:  # refused by a limit: the fast path's validate refuses it too
                with pytest.raises(PassFormatError):
                    parse_claims(data)
                continue
            assert Claims(*fast) == ref
            assert parse_claims(data) == ref
    assert checked > 0
