"""Holder-bound passes (spec 1.2): the key code, the cnf claim, the live code, and issuing them."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import cbor2
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import NOW
from passgate.errors import PassFormatError
from passgate.issuing.issuer import Issuer
from passgate.passes import base45, holder
from passgate.passes.cose import dumps
from passgate.passes.format import BOUND_CLAIM_KEYS, claims_cbor, parse_claims, parse_text
from test_cli_pass import issuer_dir, run  # noqa: F401 (issuer_dir: a fixture)

HOUR = 3600


@pytest.fixture(scope="module")
def holder_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())


@pytest.fixture(scope="module")
def point(holder_key: ec.EllipticCurvePrivateKey) -> bytes:
    return holder.compressed_point(holder_key)


@pytest.fixture
def bound(issuer: Issuer, point: bytes) -> str:
    return issuer.issue("shopping", ["gate-1"], NOW - HOUR, 3 * HOUR, hint="AB12",
                        holder_key=point)


# -- the key code -----------------------------------------------------------------------


def test_key_code_round_trip_and_layout(point: bytes) -> None:
    code = holder.format_holder_key(point)
    assert code.startswith("PGK1:") and len(code) == 5 + 56
    raw = base64.b32decode(code[5:])
    assert raw[:33] == point and raw[33:] == hashlib.sha256(point).digest()[:2]
    assert holder.parse_holder_key(code) == point


def test_key_code_forgives_spaces_dashes_and_lower_case(point: bytes) -> None:
    code = holder.format_holder_key(point)
    spaced = "pgk1:" + " ".join(code[5 + i:5 + i + 4] for i in range(0, 56, 4)).lower()
    assert holder.parse_holder_key(spaced) == point
    assert holder.parse_holder_key(code[:20] + "-" + code[20:] + "\n") == point


def _code_of(raw35: bytes) -> str:
    return "PGK1:" + base64.b32encode(raw35).decode()


@pytest.mark.parametrize("case", ["prefix", "short", "long", "checksum", "alphabet",
                                  "off_curve", "prefix_byte", "not_text"])
def test_key_code_refusals(point: bytes, case: str) -> None:
    good = holder.format_holder_key(point)
    check = hashlib.sha256
    off = b"\x02" + b"\x00" * 31 + b"\x01"  # x = 1: no y on P-256 (1 - 3 + b not a square)
    bad_prefix = b"\x04" + point[1:]
    texts = {
        "prefix": "PGK2:" + good[5:],
        "short": good[:-1],
        "long": good + "A",
        "checksum": _code_of(point + bytes(b ^ 1 for b in check(point).digest()[:2])),
        "alphabet": good[:-1] + "1",
        "off_curve": _code_of(off + check(off).digest()[:2]),
        "prefix_byte": _code_of(bad_prefix + check(bad_prefix).digest()[:2]),
        "not_text": None,
    }
    with pytest.raises(PassFormatError):
        holder.parse_holder_key(texts[case])  # type: ignore[arg-type]


# -- level 1 with cnf -------------------------------------------------------------------


def test_bound_pass_carries_cnf_exactly(bound: str, point: bytes) -> None:
    cose = parse_text(bound)
    claims = parse_claims(cose.payload)
    assert claims.holder_key == point
    raw = cbor2.loads(cose.payload)
    assert set(raw) == BOUND_CLAIM_KEYS
    assert raw[8] == {1: {1: 2, -1: 1, -2: point[1:], -3: point[0] == 3}}
    assert claims_cbor(claims) == dumps(claims.to_cbor_map()) == cose.payload


@pytest.mark.parametrize("cnf", [
    {1: {1: 2, -1: 1, -2: b"\x01" * 32}},  # no y
    {1: {1: 2, -1: 1, -2: b"\x01" * 32, -3: 1}},  # y an int, not a bool
    {1: {1: 2, -1: 1, -2: b"\x01" * 31, -3: True}},  # x short
    {1: {1: 2, -1: 2, -2: b"\x01" * 32, -3: True}},  # P-384
    {1: {1: 1, -1: 6, -2: b"\x01" * 32}},  # OKP Ed25519
    {1: {1: 2, -1: 1, -2: b"\x01" * 32, -3: True, 2: b"kid"}},  # extra label
    {3: {1: 2, -1: 1, -2: b"\x01" * 32, -3: True}},  # cnf kid form, not COSE_Key
    [1, 2],
    b"\x02" * 33,
])
def test_any_other_cnf_shape_is_malformed(cnf: object, point: bytes) -> None:
    with pytest.raises(PassFormatError) as exc:
        holder.point_of_cnf(cnf)
    assert exc.value.reason == "malformed"


def test_cnf_point_off_curve_is_malformed() -> None:
    with pytest.raises(PassFormatError, match="not a point"):
        holder.point_of_cnf({1: {1: 2, -1: 1, -2: b"\x00" * 31 + b"\x01", -3: False}})


# -- level 2, the live code -------------------------------------------------------------


def test_live_code_layout(bound: str, holder_key: ec.EllipticCurvePrivateKey,
                          point: bytes) -> None:
    text = holder.make_live_code(bound, holder_key, NOW, 7)
    assert text.startswith("PG2:")
    outer = cbor2.loads(base45.decode(text[4:]))
    l1, l2 = outer
    assert l1 == base45.decode(bound[4:])
    tag = cbor2.loads(l2)
    assert tag.tag == 18
    prot, unprot, payload, sig = tag.value
    assert prot == b"\xa1\x01\x26" and unprot == {} and len(sig) == 64
    assert cbor2.loads(payload) == [NOW, 7]
    code = holder.parse_live_text(text)
    assert (code.t, code.n, code.l1) == (NOW, 7, l1) and code.verifies(point)
    # The signature is over the whole level 1 as external AAD (RFC 9052 Sig_structure).
    assert code.to_be_signed == dumps(["Signature1", prot, l1, payload])
    other = holder.compressed_point(ec.derive_private_key(99, ec.SECP256R1()))
    assert not code.verifies(other)


def test_live_code_high_s_also_verifies_and_keeps_its_id(
        bound: str, holder_key: ec.EllipticCurvePrivateKey, point: bytes) -> None:
    """ECDSA malleability: the id is over the signed content, so (r, n - s) is the same code."""
    code = holder.parse_live_text(holder.make_live_code(bound, holder_key, NOW, 7))
    n = holder._ORDER
    s = int.from_bytes(code.signature[32:], "big")
    twin_sig = code.signature[:32] + (n - s).to_bytes(32, "big")
    twin = holder.parse_live_text(holder.live_text(code.l1, code.payload, twin_sig))
    assert twin.verifies(point)
    assert twin.code_id(b"id") == code.code_id(b"id")


def test_live_code_length_bound(bound: str, holder_key: ec.EllipticCurvePrivateKey) -> None:
    worst = holder.make_live_code(bound, holder_key, holder.MAX_T - 1, holder.MAX_N - 1)
    assert len(worst) == holder.live_text_len(bound)


def _l2(payload: bytes, prot: bytes = b"\xa1\x01\x26", unprot: object = None,
        sig: bytes = b"\x01" * 64) -> bytes:
    return dumps(cbor2.CBORTag(18, [prot, {} if unprot is None else unprot, payload, sig]))


@pytest.mark.parametrize("case,reason", [
    ("three_items", "malformed"), ("not_bytes", "malformed"), ("payload_map", "malformed"),
    ("t_negative", "malformed"), ("t_too_big", "malformed"), ("n_too_big", "malformed"),
    ("t_bool", "malformed"), ("alg_eddsa", "unsupported"), ("extra_header", "malformed"),
    ("unprotected", "malformed"), ("short_sig", "malformed"), ("untagged", "malformed"),
    ("padded_t", "malformed"), ("trailing", "malformed"), ("tag_in_payload", "malformed"),
])
def test_live_code_strict_decoding(bound: str, case: str, reason: str) -> None:
    l1 = base45.decode(bound[4:])
    good = dumps([NOW, 1])
    l2 = {
        "payload_map": _l2(dumps({1: NOW})),
        "t_negative": _l2(dumps([-1, 1])),
        "t_too_big": _l2(dumps([2**40, 1])),
        "n_too_big": _l2(dumps([NOW, 2**32])),
        "t_bool": _l2(dumps([True, 1])),
        "alg_eddsa": _l2(good, prot=b"\xa1\x01\x27"),
        "extra_header": _l2(good, prot=dumps({1: -7, 4: b"12345678"})),
        "unprotected": _l2(good, unprot={4: b"x"}),
        "short_sig": _l2(good, sig=b"\x01" * 63),
        "untagged": dumps([b"\xa1\x01\x26", {}, good, b"\x01" * 64]),
        "padded_t": _l2(b"\x82\x1b" + NOW.to_bytes(8, "big") + b"\x01"),
        "tag_in_payload": _l2(b"\x82\xc1" + dumps(NOW) + b"\x01"),
    }.get(case, _l2(good))
    outer = dumps([l1, l2])
    if case == "three_items":
        outer = dumps([l1, l2, b""])
    elif case == "not_bytes":
        outer = dumps([l1, [1]])
    elif case == "trailing":
        outer = outer + b"\x00"
    with pytest.raises(PassFormatError) as exc:
        holder.parse_live_text("PG2:" + base45.encode(outer))
    assert exc.value.reason == reason


# -- issuing ----------------------------------------------------------------------------


@pytest.fixture
def issuer_file(issuer_dir: Path) -> Path:  # noqa: F811 (the imported fixture)
    return issuer_dir / "issuer.key"


def test_cli_issue_holder_key_text_and_image(tmp_path: Path, capsys: pytest.CaptureFixture,
                                             issuer_file: Path, point: bytes) -> None:
    code_text = holder.format_holder_key(point)
    code, out, err = run(capsys, "issue", "--key", str(issuer_file), "--purpose", "shopping",
                         "--zone", "gate-1", "--holder-key", code_text.lower())
    assert code == 0, err
    assert parse_claims(parse_text(out.strip()).payload).holder_key == point
    photo = tmp_path / "key.png"
    segno.make_qr(code_text, error="m").save(photo, scale=5)
    code, out, err = run(capsys, "issue", "--key", str(issuer_file), "--purpose", "shopping",
                         "--zone", "gate-1", "--holder-key-image", str(photo))
    assert code == 0, err
    assert parse_claims(parse_text(out.strip()).payload).holder_key == point


def test_cli_issue_refuses_bad_holder_keys(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           issuer_file: Path, point: bytes) -> None:
    base = ["issue", "--key", str(issuer_file), "--purpose", "shopping", "--zone", "gate-1"]
    typo = holder.format_holder_key(point)[:-1] + "A"
    code, out, err = run(capsys, *base, "--holder-key", typo)
    assert code == 2 and not out and "checksum" in err
    other = tmp_path / "other.png"
    segno.make_qr("PG1:NOTAKEY", error="m").save(other, scale=5)
    code, out, err = run(capsys, *base, "--holder-key-image", str(other))
    assert code == 2 and not out and "no holder key QR" in err


def test_batch_holder_key_column(tmp_path: Path, capsys: pytest.CaptureFixture,
                                 issuer_file: Path, point: bytes) -> None:
    import csv

    rows = tmp_path / "rows.csv"
    rows.write_text("purpose,zones,hint,holder_key\nshopping,gate-1,,\n"
                    f"shopping,gate-1,,{holder.format_holder_key(point)}\n")
    code, out, err = run(capsys, "issue", "--key", str(issuer_file), "--batch", str(rows),
                         "--out", str(tmp_path / "out"), "--no-png")
    assert code == 0, err
    with open(tmp_path / "out" / "passes.csv", newline="") as f:
        issued = list(csv.DictReader(f))
    keys = [parse_claims(parse_text(r["text"]).payload).holder_key for r in issued]
    assert keys == [None, point] and [r["bound"] for r in issued] == ["no", "yes"]
    rows.write_text("purpose,zones,holder_key\nshopping,gate-1,PGK1:AAAA\n")
    code, out, err = run(capsys, "issue", "--key", str(issuer_file), "--batch", str(rows),
                         "--out", str(tmp_path / "out2"), "--no-png")
    assert code == 2 and "rows.csv:2" in err and not (tmp_path / "out2").exists()


def test_the_spec_worked_example() -> None:
    """docs/pass-format.md 10.9: the holder code and the live code in the text are what the
    reference makes from the stated keys, and verify as the text says."""
    import re

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from passgate.passes.truststore import IssuerKey, TrustStore
    from passgate.passes.verdict import Reason
    from passgate.passes.verify import Verifier

    doc = (Path(__file__).parents[1] / "docs" / "pass-format.md").read_text(encoding="utf-8")
    section = doc.split("### 10.9 Worked example", 1)[1].split("### 10.10", 1)[0]
    d = int(hashlib.sha256(b"passgate doc holder").hexdigest(), 16)
    assert f"{d:064x}" in section
    phone = ec.derive_private_key(d, ec.SECP256R1())
    point = holder.compressed_point(phone)
    assert holder.format_holder_key(point) in section and point.hex() in section
    issuer_key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    t0 = 1586944800
    bound = Issuer(issuer_key, "NNOV").issue(
        "shopping", ["gate-1"], t0, 3 * HOUR, hint="AB12", issued_at=t0,
        pass_id=bytes.fromhex("00112233445566778899aabb"), holder_key=point)
    live = holder.make_live_code(bound, phone, t0 + HOUR, 42)
    assert re.search(r"^" + re.escape(live) + r"$", section, re.M)
    assert holder.parse_live_text(live).signature.hex()[:32] in section.replace("\n", "")
    verifier = Verifier(TrustStore([IssuerKey.from_public(issuer_key.public_key(),
                                                          issuer="NNOV")]))
    assert verifier.check(live, t0 + HOUR + 20, "gate-1").accepted
    assert verifier.check(live, t0 + HOUR + 31, "gate-1").reason is Reason.LIVE_CODE_STALE


def test_cli_verify_live_code(tmp_path: Path, capsys: pytest.CaptureFixture, issuer_file: Path,
                              holder_key: ec.EllipticCurvePrivateKey, point: bytes) -> None:
    import shutil
    import time

    code, out, err = run(capsys, "issue", "--key", str(issuer_file), "--purpose", "shopping",
                         "--zone", "gate-1", "--holder-key", holder.format_holder_key(point))
    assert code == 0, err
    trust = tmp_path / "trust"
    trust.mkdir()
    for name in ("issuer.pub", "issuer.toml"):
        shutil.copy(issuer_file.with_name(name), trust / name)
    now = int(time.time())
    live = holder.make_live_code(out.strip(), holder_key, now, 3)
    code, out, err = run(capsys, "verify", live, "--trust", str(trust), "--zone", "gate-1")
    assert code == 0 and out.startswith("ACCEPT shopping") and "live code" in out, err
    code, out, _ = run(capsys, "verify", live, "--trust", str(trust), "--zone", "gate-1",
                       "--at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 120)))
    assert code == 1 and out.startswith("DENY live_code_stale") and "not a picture" in out
