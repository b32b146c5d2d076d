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
    ("Bound", ["gate-1", "lobby"], "AB12", T0, 3600),  # holder-bound (cnf), see issued()
    ("Нижний Новгород", ["gate-1", "lobby", "garage"], None, T0, 3 * 3600),
    ("N", ["z" * 32] * 1 + [f"zone-{i}" for i in range(15)], "№ 7 (ab)", T0, 1800),
    ("Early", ["a"], "x", 30, 1800),  # times below 65536: one- and two-byte heads
    ("Late", ["a"], None, 2**33, 3600),  # times above 2**32: eight-byte heads
]


def holder_point(seed: int) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    from passgate.passes.holder import compressed_point

    return compressed_point(ec.derive_private_key(seed, ec.SECP256R1()))


def issued(issuer: Issuer) -> list[bytes]:
    out = []
    for name, zones, hint, nbf, duration in SHAPES:
        iss = Issuer(issuer.key, name)
        bound = {"holder_key": holder_point(7)} if name == "Bound" else {}
        text = iss.issue("work", zones, nbf, duration, hint=hint, **bound)
        out.append(base45.decode(text[len(PREFIX):]))
    # Both signs of y (the point's prefix 02 and 03) and a 32-byte pass id.
    points = {holder_point(seed)[0]: holder_point(seed) for seed in range(1, 9)}
    for point in points.values():
        text = Issuer(issuer.key, "Bound").issue("work", ["a"], T0, 3600, holder_key=point,
                                                   pass_id=bytes(range(32)))
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
    from passgate.passes.holder import cnf_cbor

    signs = []
    for raw in raws:
        fixed = wire.read_sign1(raw)
        assert fixed is not None
        fields = wire.read_claims(fixed[2])
        assert fields is not None
        if fields[-1] is not None:
            signs.append(fields[-1][0])
            assert b"\x08" + cnf_cbor(fields[-1]) in fixed[2]
    assert len(signs) >= 3 and set(signs) == {2, 3}  # bound shapes, both signs of y


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


def test_signed_reader_agrees_with_the_general_decoder(raws: list[bytes]) -> None:
    """read_signed (the verifier's fast path) reads exactly what read_sign1 reads: the kid,
    libsodium's signed-message form (signature + ToBeSigned) and the payload."""
    read = 0
    for raw in raws:
        for data in [raw, *variants(raw)]:
            fast = wire.read_signed(data)
            fixed = wire.read_sign1(data)
            assert (fast is None) == (fixed is None), data.hex()
            if fast is None or fixed is None:
                continue
            read += 1
            ref = decode_sign1_general(data)
            assert fast == (ref.kid, ref.signature + ref.to_be_signed, ref.payload)
    assert read >= len(raws)


def test_text_reader_takes_issued_passes_and_leaves_the_rest_to_parse_text(
        issuer: Issuer) -> None:
    from passgate.passes.format import parse_text, read_text

    text = issuer.issue("work", ["gate-1"], T0, 3600, hint="AB12")
    for t in (text, text + "\r\n"):
        kid, signed, payload = read_text(t)  # type: ignore[misc]
        ref = parse_text(t)
        assert (kid, signed, payload) == (ref.kid, ref.signature + ref.to_be_signed, ref.payload)
    for bad in ("", "PG1:", text.lower(), "PG2:" + text[4:], text[:-1], text + "A",
                text[:4] + "%" * (len(text) - 4), text + " " * 1100):
        assert read_text(bad) is None


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
