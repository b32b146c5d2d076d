"""Review of issue 16: attacks on the live code, each kept as a test (no wrong green, no crash).

Rules: a level 2 by another key, or over another level 1, is ``holder_mismatch``; a
malleated (high-S) signature is the same live code (same id) or refused; r or s out of
range is refused; a cnf x >= p or off the curve is refused whatever y; the window is
inclusive at +-30 s with ``now`` floored; every payload the holder could sign that is not
``[uint < 2**40, uint < 2**32]`` in deterministic CBOR is ``malformed``; outer arrays of
another shape, trailing bytes, tags, indefinite lengths are refused and no input raises; a
live code of a pass without cnf is ``malformed``; the debouncer keys a live code by its
level 1, so another pass (or the bare pass) is its own presentation.
"""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import NOW
from passgate.issuing.issuer import Issuer
from passgate.passes import base45, holder
from passgate.passes.verdict import Reason, Result
from passgate.passes.verify import Verifier
from test_holder_checkpoint import bound, phone, thief  # noqa: F401 (fixtures)

HOUR = 3600
ZONE = "gate-1"  # the zone of test_holder_checkpoint's passes
P = 2**256 - 2**224 + 2**192 + 2**96 - 1


def _parts(text: str) -> tuple[bytes, bytes, bytes]:
    live = holder.parse_live_text(text)
    return live.l1, live.payload, live.signature


def _denied(v, text, now=NOW):
    verdict = v.check(text, now, ZONE)
    assert verdict.result is Result.DENY, verdict
    return verdict


def test_other_key_level2(verifier: Verifier, bound: str, thief) -> None:  # noqa: F811
    assert _denied(verifier, holder.make_live_code(bound, thief, NOW, 1)).reason is \
        Reason.HOLDER_MISMATCH


def test_level2_over_another_level1(verifier: Verifier, issuer: Issuer, bound: str, phone) -> None:  # noqa: F811
    other = issuer.issue("work", [ZONE], NOW - 60, HOUR, holder_key=holder.compressed_point(phone))
    code = holder.make_live_code(other, phone, NOW, 1)
    l1, payload, sig = _parts(code)
    swapped = holder.live_text(holder.pass_cose(bound), payload, sig)
    assert _denied(verifier, swapped).reason is Reason.HOLDER_MISMATCH


def test_high_s_same_id(verifier: Verifier, bound: str, phone) -> None:  # noqa: F811
    code = holder.make_live_code(bound, phone, NOW, 1)
    l1, payload, sig = _parts(code)
    s = int.from_bytes(sig[32:], "big")
    malleated = holder.live_text(l1, payload, sig[:32] + (holder._ORDER - s).to_bytes(32, "big"))
    a, b = verifier.check(code, NOW, ZONE), verifier.check(malleated, NOW, ZONE)
    assert a.accepted and a.live_id is not None
    assert a.live_id == b.live_id or not b.accepted


@pytest.mark.parametrize("sig", [b"\0" * 64, holder._ORDER.to_bytes(32, "big") * 2, b"\xff" * 64])
def test_signature_out_of_range(verifier: Verifier, bound: str, phone, sig: bytes) -> None:  # noqa: F811
    l1, payload, _ = _parts(holder.make_live_code(bound, phone, NOW, 1))
    assert _denied(verifier, holder.live_text(l1, payload, sig)).reason is Reason.HOLDER_MISMATCH


@pytest.mark.parametrize("x", [0, 1, P, P + 1, 2**256 - 1])  # x = 0 is on the curve: P aliases it
@pytest.mark.parametrize("y", [True, False])
def test_cnf_bad_points(x: int, y: bool) -> None:
    from passgate.errors import PassFormatError
    value = {1: {1: 2, -1: 1, -2: x.to_bytes(32, "big"), -3: y}}
    try:
        point = holder.point_of_cnf(value)
    except PassFormatError:
        return
    assert int.from_bytes(point[1:], "big") < P


@pytest.mark.parametrize("age", [-31, -30, 0, 30, 31])
def test_window_edges(verifier: Verifier, bound: str, phone, age: int) -> None:  # noqa: F811
    code = holder.make_live_code(bound, phone, NOW - age, 1)
    for now in (NOW, NOW + 0.999):
        v = verifier.check(code, now, ZONE)
        assert v.accepted is (abs(age) <= 30), (age, now, v)


@pytest.mark.parametrize("payload", [
    cbor2.dumps([2**40, 1]), cbor2.dumps([NOW, 2**32]), cbor2.dumps([-1, 1]),
    cbor2.dumps([float(NOW), 1]), cbor2.dumps([NOW, 1, 2]), cbor2.dumps([NOW]),
    cbor2.dumps([cbor2.CBORTag(1, NOW), 1]), b"\x82\x1b" + NOW.to_bytes(8, "big") + b"\x01",
    cbor2.dumps([NOW, 1]) + b"\x00", cbor2.dumps([True, 1]), cbor2.dumps({NOW: 1}),
])
def test_bad_payloads_signed_by_holder(verifier: Verifier, bound: str, phone, payload) -> None:  # noqa: F811
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    l1 = holder.pass_cose(bound)
    tbs = holder.sig_structure(holder._PROTECTED, payload, l1)
    der = phone.sign(tbs, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    text = holder.live_text(l1, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    if len(text) > holder.MAX_LIVE_TEXT:
        return
    v = _denied(verifier, text)
    assert v.reason in (Reason.MALFORMED, Reason.UNSUPPORTED), v


def test_outer_variants(verifier: Verifier, bound: str, phone) -> None:  # noqa: F811
    code = holder.make_live_code(bound, phone, NOW, 1)
    raw = base45.decode(code[4:])
    outer = cbor2.loads(raw)
    variants = [
        raw + b"\x00",
        cbor2.dumps(outer + [b""]),
        cbor2.dumps(cbor2.CBORTag(55799, outer)),
        b"\x9f" + raw[1:] + b"\xff",
        cbor2.dumps(outer[::-1]),
    ]
    for bad in variants:
        v = _denied(verifier, "PG2:" + base45.encode(bad))
        assert v.reason in (Reason.MALFORMED, Reason.UNSUPPORTED), v
    for text in ("pg2:" + code[4:], " " + code, code + " ", code.encode(), code + "\r\n"):
        v = verifier.check(text, NOW, ZONE)  # must not raise
        assert v.result in (Result.ACCEPT, Result.DENY)
    assert _denied(verifier, "PG2:" + "A" * 2000).reason is Reason.MALFORMED
    assert _denied(verifier, b"PG2:\xff\xfe").reason is Reason.MALFORMED


def test_plain_pass_live(verifier: Verifier, issuer: Issuer, phone) -> None:  # noqa: F811
    plain = issuer.issue("work", [ZONE], NOW - 60, HOUR)
    assert _denied(verifier, holder.make_live_code(plain, phone, NOW, 1)).reason is Reason.MALFORMED


def test_debouncer_live_codes_of_a_do_not_hide_b(issuer: Issuer, bound: str, phone) -> None:  # noqa: F811
    from passgate.checkpoint.debounce import Debouncer

    other = issuer.issue("work", [ZONE], NOW - 60, HOUR, holder_key=holder.compressed_point(phone))
    a1, a2 = (holder.make_live_code(bound, phone, NOW + i, i) for i in (0, 1))
    b1 = holder.make_live_code(other, phone, NOW, 0)
    d = Debouncer(absent_frames=2, absent_s=0.5)
    assert d.feed([a1], 0.0) == [a1]
    assert d.feed([a2], 0.1) == []  # a refresh of A in view: one presentation
    assert d.feed([a2, b1], 0.2) == [b1]  # B beside A is its own presentation
    assert d.feed([bound], 0.3) == [bound]  # A's bare level 1 is not its live code
    assert d.feed(["PG2:" + "0" * 10], 0.4) == ["PG2:" + "0" * 10]  # unreadable: itself


def test_live_code_as_bytearray_is_read_as_a_live_code(  # noqa: F811
        verifier: Verifier, bound: str, phone) -> None:  # noqa: F811
    """Bytes-like input is read as the text it holds, whatever its Python type: a live code
    in a bytearray was sent down the level-1 path and denied ``unsupported`` ("version PG2")."""
    code = holder.make_live_code(bound, phone, NOW, 1)
    for text in (code.encode(), bytearray(code.encode())):
        verdict = verifier.check(text, NOW, ZONE)
        assert verdict.accepted and verdict.live_id is not None, verdict
