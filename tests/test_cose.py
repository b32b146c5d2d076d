"""COSE_Sign1: the cose-wg EdDSA examples byte for byte, and the strict decoder's refusals."""

from __future__ import annotations

import json

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_vector
from passgate.errors import PassFormatError
from passgate.passes import cose
from passgate.passes.truststore import IssuerKey

# cose-wg header names used in the examples -> COSE labels (RFC 9052 section 3.1)
ALG, CTYP, KID = 1, 3, 4
KID8 = bytes.fromhex("0102030405060708")


def load_example(name: str) -> dict:
    return json.loads(shared_vector(f"cose/{name}").read_text())


def test_cose_wg_eddsa_sig_01_byte_for_byte() -> None:
    ex = load_example("eddsa-examples_eddsa-sig-01.json")
    inp = ex["input"]
    key = inp["sign0"]["key"]
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["d_hex"]))
    payload = inp["plaintext"].encode()
    protected = {ALG: cose.ALG_EDDSA, CTYP: inp["sign0"]["protected"]["ctyp"]}
    unprotected = {KID: inp["sign0"]["unprotected"]["kid"].encode()}

    tbs = cose.sig_structure(cose.dumps(protected), payload)
    assert tbs.hex().upper() == ex["intermediates"]["ToBeSign_hex"]
    full = cose.encode_sign1(payload, private.sign, protected, unprotected)
    assert full.hex().upper() == ex["output"]["cbor"]

    # The example's own signature verifies with its public key through our verifier.
    signature = cbor2.loads(full).value[3]
    issuer_key = IssuerKey.from_raw(bytes.fromhex(key["x_hex"]))
    assert issuer_key.verifies(tbs, signature)
    assert not issuer_key.verifies(tbs[:-1] + b"!", signature)


def test_cose_wg_eddsa_sig_01_refused_as_a_pass() -> None:
    """A valid COSE_Sign1, but not a passgate one: its kid is only in the unprotected header."""
    ex = load_example("eddsa-examples_eddsa-sig-01.json")
    with pytest.raises(PassFormatError) as err:
        cose.decode_sign1(bytes.fromhex(ex["output"]["cbor"]))
    assert err.value.reason == "malformed"


def test_cose_wg_eddsa_sig_02_ed448_refused_cleanly() -> None:
    """Ed448 (alg EdDSA too, 114-byte signature, kid unprotected): malformed for passgate.

    EdDSA (-8) names both curves; passgate's profile fixes Ed25519, whose signatures are 64
    bytes, so the structure is not a passgate COSE_Sign1 at all.
    """
    ex = load_example("eddsa-examples_eddsa-sig-02.json")
    data = bytes.fromhex(ex["output"]["cbor"])
    with pytest.raises(PassFormatError) as err:
        cose.decode_sign1(data)
    assert err.value.reason == "malformed"


def test_sig_structure_matches_cbor2() -> None:
    for prot, aad, payload in [(b"", b"", b""), (b"\xa0", b"x" * 30, b"y" * 300),
                               (b"p" * 24, b"", b"z" * 70000)]:
        expected = cbor2.dumps(["Signature1", prot, aad, payload], canonical=True)
        assert cose.sig_structure(prot, payload, aad) == expected


def sign1(prot: object, unprot: object = None, payload: bytes = b"\xa0", sig: object = None,
          tag: int = cose.TAG_SIGN1, encode_prot: bool = True) -> bytes:
    """A COSE_Sign1-shaped item, built with cbor2; ``prot`` a header dict unless raw bytes."""
    prot_bytes = cbor2.dumps(prot, canonical=True) if encode_prot else prot
    items = [prot_bytes, {} if unprot is None else unprot, payload,
             b"\x00" * 64 if sig is None else sig]
    return cbor2.dumps(cbor2.CBORTag(tag, items), canonical=True)


GOOD_HEADER = {ALG: cose.ALG_EDDSA, KID: KID8}


def test_decode_plain_pass_structure() -> None:
    s = cose.decode_sign1(sign1(GOOD_HEADER, payload=b"\xa1\x01\x02"))
    assert s.kid == KID8 and s.payload == b"\xa1\x01\x02" and s.signature == b"\x00" * 64
    assert s.to_be_signed == cose.sig_structure(s.protected, s.payload)


def test_decode_general_header_path() -> None:
    """Headers other than the plain {alg, kid} take the general path and still decode."""
    s = cose.decode_sign1(sign1({ALG: -8, cose.HDR_CRIT: [ALG], KID: KID8}))
    assert s.kid == KID8
    s = cose.decode_sign1(sign1({ALG: -8, cose.HDR_CRIT: [KID, ALG], KID: KID8}))
    assert s.kid == KID8


def test_cbor2_interprets_no_tag_we_do_not_refuse() -> None:
    """Every tag cbor2 would turn into an object is refused while decoding (spec 1.1: no tag
    but the outer 18); a newer cbor2 that learns a tag must not slip it past the list."""
    interpreted = set()
    for tag in [*range(0, 1100), 43000, 55799, 2**16, 2**32 - 1]:
        for value in (0, b"", "", [], {}, [0, 0], [0, []]):
            try:
                decoded = cbor2.loads(cbor2.dumps(cbor2.CBORTag(tag, value)))
            except Exception:
                interpreted.add(tag)
                break
            if type(decoded) is not cbor2.CBORTag:
                interpreted.add(tag)
                break
    assert interpreted <= set(cose._REFUSED_TAGS)


MALFORMED = {
    "empty": b"",
    "not cbor": b"\xff\xff",
    "untagged": cbor2.dumps([cbor2.dumps(GOOD_HEADER), {}, b"", b"\0" * 64]),
    "tag 17 (Mac0)": sign1(GOOD_HEADER, tag=17),
    "tag 98 (COSE_Sign)": sign1(GOOD_HEADER, tag=98),
    "array of 3": cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(GOOD_HEADER), {}, b""])),
    "protected not bytes": sign1({1: -8}, encode_prot=False),
    "payload not bytes": sign1(GOOD_HEADER, payload="text"),  # type: ignore[arg-type]
    "unprotected not a map": sign1(GOOD_HEADER, unprot=[]),
    "unprotected not empty": sign1(GOOD_HEADER, unprot={KID: KID8}),
    "kid unprotected only": sign1({ALG: -8}, unprot={KID: KID8}),
    "signature 63 bytes": sign1(GOOD_HEADER, sig=b"\0" * 63),
    "signature 114 bytes": sign1(GOOD_HEADER, sig=b"\0" * 114),
    "signature not bytes": sign1(GOOD_HEADER, sig="x" * 64),
    "no alg": sign1({KID: KID8}),
    "empty protected": sign1(b"", encode_prot=False),
    "protected is an array": sign1([1, -8], encode_prot=True),
    "protected trailing byte": sign1(cbor2.dumps(GOOD_HEADER) + b"\0", encode_prot=False),
    "kid 7 bytes": sign1({ALG: -8, KID: KID8[:7]}),
    "kid text": sign1({ALG: -8, KID: "01234567"}),
    "crit empty": sign1({ALG: -8, cose.HDR_CRIT: [], KID: KID8}),
    "crit not array": sign1({ALG: -8, cose.HDR_CRIT: 1, KID: KID8}),
    # Regression: an array inside crit used to raise TypeError (unhashable) out of check().
    "crit holds an array": sign1({ALG: -8, cose.HDR_CRIT: [[1]], KID: KID8}),
    "crit holds a map": sign1({ALG: -8, cose.HDR_CRIT: [{}], KID: KID8}),
    "crit holds a bool": sign1({ALG: -8, cose.HDR_CRIT: [True], KID: KID8}),
    "bool header label": sign1({True: -8, KID: KID8}),
    "trailing byte": sign1(GOOD_HEADER) + b"\x00",
    "indefinite array": b"\xd2\x9f" + sign1(GOOD_HEADER)[2:] + b"\xff",
    "long-form length": b"\xd2\x98\x04" + sign1(GOOD_HEADER)[2:],
    "long-form tag": b"\xd8\x12" + sign1(GOOD_HEADER)[1:],
    "nested tags": b"\xd8\x63" * 300 + sign1(GOOD_HEADER),
    "shared reference": b"\xd8\x1c" + sign1(GOOD_HEADER),
    "truncated": sign1(GOOD_HEADER)[:-1],
    # Regression: -8.0 == -8 in Python, so a float alg used to pass as EdDSA.
    "alg as float": sign1({ALG: -8.0, KID: KID8}),
    # Spec 1.1: the protected header holds 1, 4 and optionally 2, nothing else.
    "extra label": sign1({ALG: -8, KID: KID8, 99: "not critical"}),
    "extra text label": sign1({ALG: -8, KID: KID8, "x": 1}),
    "content type label": sign1({ALG: -8, 3: 0, KID: KID8}),
    "crit lists a label twice": sign1({ALG: -8, cose.HDR_CRIT: [KID, KID], KID: KID8}),
    "alg as bool": sign1({ALG: True, KID: KID8}),
    "alg as bytes": sign1({ALG: b"\xf8", KID: KID8}),
    "alg as array": sign1({ALG: [-8], KID: KID8}),
    "alg in tag 1": sign1({ALG: cbor2.CBORTag(1, -8), KID: KID8}),
    "alg in an unknown tag": sign1({ALG: cbor2.CBORTag(4242, -8), KID: KID8}),
    "kid in tag 24": sign1({ALG: -8, KID: cbor2.CBORTag(24, KID8)}),
    "protected in tag 24": sign1(cbor2.CBORTag(24, cbor2.dumps(GOOD_HEADER)), encode_prot=False),
    "header in an unknown tag": sign1(cbor2.CBORTag(4242, GOOD_HEADER)),
    "payload in a tag": sign1(GOOD_HEADER, payload=cbor2.CBORTag(4242, b"")),  # type: ignore
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed(name: str) -> None:
    with pytest.raises(PassFormatError) as err:
        cose.decode_sign1(MALFORMED[name])
    assert err.value.reason == "malformed", err.value.detail


UNSUPPORTED = {
    "ES256": {ALG: -7, KID: KID8},
    "Ed448 named by curve-specific id": {ALG: -53, KID: KID8},
    "alg as text": {ALG: "EdDSA", KID: KID8},
    "unknown critical header": {ALG: -8, cose.HDR_CRIT: [99], KID: KID8, 99: 1},
    "unknown critical text label": {ALG: -8, cose.HDR_CRIT: ["x"], KID: KID8, "x": 1},
    "crit lists itself": {ALG: -8, cose.HDR_CRIT: [cose.HDR_CRIT], KID: KID8},
    "unknown critical label absent": {ALG: -8, cose.HDR_CRIT: [99], KID: KID8},
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported(name: str) -> None:
    with pytest.raises(PassFormatError) as err:
        cose.decode_sign1(sign1(UNSUPPORTED[name]))
    assert err.value.reason == "unsupported", err.value.detail


def test_shared_reference_expansion_refused() -> None:
    """~250 bytes of CBOR shared references expand to 12**7 items; refused while decoding."""

    def level(j: int, depth: int, fan: int) -> bytes:
        if j == 0:
            return b"\x00"
        ref = b"\xd8\x1d" + bytes((depth - j,))  # reference to the level below, by index
        return bytes((0x80 | fan,)) + b"\xd8\x1c" + level(j - 1, depth, fan) + ref * (fan - 1)

    bomb = level(7, 7, 12)
    assert len(bomb) < 300
    with pytest.raises(PassFormatError, match="not valid CBOR"):
        cose.loads_strict(bomb, "bomb")


def test_loads_strict_rejects_floats_and_accepts_plain_values() -> None:
    assert cose.loads_strict(cbor2.dumps({1: [b"x", "y", True, None]}), "x") == {
        1: [b"x", "y", True, None]}
    with pytest.raises(PassFormatError, match="unexpected CBOR item"):
        cose.loads_strict(cbor2.dumps(1.5, canonical=True), "x")


# Values of the types canonical() knows, to compare it with cbor2's own encoder.
cbor_values = st.recursive(
    st.integers(min_value=-(2**64), max_value=2**64 - 1) | st.binary(max_size=300)
    | st.text(max_size=40) | st.booleans() | st.none(),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.integers(-(2**33), 2**33) | st.text(max_size=5) | st.binary(max_size=5),
                      inner, max_size=5)
    | st.builds(cbor2.CBORTag, st.integers(min_value=6, max_value=2**64 - 1).filter(
        lambda t: t not in (18,) and t not in cose._REFUSED_TAGS), inner),
    max_leaves=20,
)


def has_tag(value: object) -> bool:
    if type(value) is cbor2.CBORTag:
        return True
    if isinstance(value, list | tuple):
        return any(has_tag(v) for v in value)
    if isinstance(value, dict):
        return any(has_tag(k) or has_tag(v) for k, v in value.items())
    return False


@settings(max_examples=300, deadline=None)
@given(cbor_values)
def test_canonical_equals_cbor2_canonical(value: object) -> None:
    expected = cbor2.dumps(value, canonical=True)
    assert cose.canonical(value) == expected
    assert cose.loads_strict(expected, "value") == cbor2.loads(expected)
    if has_tag(value):  # spec 1.1: no tag inside a pass's protected header
        with pytest.raises(PassFormatError, match="CBOR tag"):
            cose.loads_strict(expected, "value", tags=False)
    else:
        assert cose.loads_strict(expected, "value", tags=False) == cbor2.loads(expected)
