"""The pass format: text layer, claims, their one deterministic encoding, and the QR size."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from passgate.errors import PassFormatError
from passgate.issuing import qr
from passgate.issuing.issuer import Issuer
from passgate.passes import base45, cose
from passgate.passes import format as passformat
from passgate.passes.format import Claims, claims_cbor, parse_claims, parse_text, visible_name
from passgate.passes.keys import kid_of, raw_public

T0 = 1_586_944_800  # 2020-04-15T10:00:00Z

# docs/pass-format.md section 6: test key 00..1f, NNOV, shopping, gate-1, hint AB12.
DOC_EXAMPLE_TEXT = (
    "PG1:RRQT 9P60GO0$+AWKB3UAR098CKFO7-70L+9F1AFN05/BAU01T04/BQVRWY04/BQVRN-0H00PE4XS8-.C4CHCQ"
    "L/E7V50-20BE0P.CIECQZC:A6BB8*9627BG$E3NE/SV$0KQ8OQ-G2ERDH1*BCJ88F+OR6FANA7:0LLJNLC-KU+ BSM"
    "H9IV+COSOFIJG9%4B695R3Q7A-XATDV8GH4C8ISM"
)


def claims(**changes: object) -> Claims:
    base = dict(issuer="NNOV", pass_id=bytes.fromhex("00112233445566778899aabb"), not_before=T0,
                expires=T0 + 3 * 3600, issued_at=T0, purpose=2, zones=("gate-1",), hint="AB12")
    base.update(changes)
    return Claims(**base)  # type: ignore[arg-type]


def test_docs_worked_example_byte_for_byte() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    assert kid_of(raw_public(key)).hex() == "56475aa75463474c"
    text = passformat.encode(claims(), key.sign, kid_of(raw_public(key)))
    assert text == DOC_EXAMPLE_TEXT
    assert len(text) == 220 and qr.version_of(text) == 8


def test_typical_pass_fits_qr_version_8_m(issuer_key: Ed25519PrivateKey) -> None:
    """The issue's size budget: a typical pass (short issuer, one zone) is QR 8-M or smaller."""
    issuer = Issuer(issuer_key, "NNOV")
    for hint in (None, "AB12"):
        for purpose in ("shopping", "work", "moving"):
            text = issuer.issue(purpose, ["gate-1"], T0, 3600, hint=hint)
            assert qr.version_of(text) <= 8, (purpose, hint, len(text))


def test_round_trip_and_encoding_matches_cbor2() -> None:
    for c in (claims(), claims(hint=None), claims(zones=("a", "b.c", "Z_9-x")),
              claims(issuer="Нижний Новгород", hint="ÄÖ 12")):
        key = Ed25519PrivateKey.from_private_bytes(bytes(32))
        s = parse_text(passformat.encode(c, key.sign, b"k" * 8))
        assert parse_claims(s.payload) == c
        assert claims_cbor(c) == cbor2.dumps(c.to_cbor_map(), canonical=True) == s.payload


# The name class (spec 1.1): letters and digits of any script, a little punctuation, single
# spaces between words, NFC.
name_char = (st.characters(whitelist_categories=("Lu", "Ll", "Lt", "Lm", "Lo", "Nd"))
             | st.sampled_from(passformat.NAME_PUNCTUATION[1:]))
name_word = st.text(name_char, min_size=1, max_size=8)


def names(max_len: int) -> st.SearchStrategy[str]:
    return st.lists(name_word, min_size=1, max_size=4).map(" ".join).filter(
        lambda s: visible_name(s, max_len))


valid_claims = st.builds(
    Claims,
    issuer=names(32),
    pass_id=st.binary(min_size=12, max_size=32),
    not_before=st.integers(0, 2**40 - 2),
    expires=st.just(None),
    issued_at=st.just(None),
    purpose=st.integers(0, 65535),
    zones=st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True),
                   min_size=1, max_size=16, unique=True).map(tuple),
    hint=st.none() | names(12),
).flatmap(lambda c: st.tuples(st.integers(0, c.not_before),
                                st.integers(c.not_before + 1, 2**40 - 1)).map(
    lambda t: Claims(c.issuer, c.pass_id, c.not_before, t[1], t[0], c.purpose, c.zones,
                     c.hint)))


@settings(max_examples=200, deadline=None)
@given(valid_claims)
def test_claims_cbor_is_cbor2_canonical(c: Claims) -> None:
    c.validate()
    encoded = cbor2.dumps(c.to_cbor_map(), canonical=True)
    assert claims_cbor(c) == encoded
    assert parse_claims(encoded) == c


# --- text layer ---------------------------------------------------------------------------

def test_text_layer_accepts_scanner_line_endings_and_bytes() -> None:
    s = parse_text(DOC_EXAMPLE_TEXT)
    for ending in ("\r\n", "\n", "\r", "\n\n", "\r\n\r\n", "\n" * 5000):
        assert parse_text(DOC_EXAMPLE_TEXT + ending) == s
        assert parse_text((DOC_EXAMPLE_TEXT + ending).encode()) == s
    assert parse_text(DOC_EXAMPLE_TEXT.encode()) == s
    assert parse_text(bytearray(DOC_EXAMPLE_TEXT.encode())) == s


@pytest.mark.parametrize("text", [
    "\t" + DOC_EXAMPLE_TEXT,  # spec 1.1: only trailing CR and LF are removed
    DOC_EXAMPLE_TEXT + "\t",
    DOC_EXAMPLE_TEXT + "\n\t",
    "\n" + DOC_EXAMPLE_TEXT,
    DOC_EXAMPLE_TEXT + " \n",
])
def test_text_layer_removes_trailing_cr_lf_and_nothing_else(text: str) -> None:
    with pytest.raises(PassFormatError) as err:
        parse_text(text)
    assert err.value.reason == "malformed"


def test_cap_counts_the_pass_without_its_line_ending() -> None:
    """A 1,024-character text plus the scanner's line ending is read; 1,025 are not."""
    exact = "PG1:" + base45.encode(b"\x00" * 680)
    assert len(exact) == 1024
    for ending in ("", "\n", "\r", "\r\n", "\r\n" * 400):
        with pytest.raises(PassFormatError) as err:  # zero bytes are not CBOR of a pass
            parse_text(exact + ending)
        assert "longer than" not in err.value.detail
        with pytest.raises(PassFormatError) as err:
            parse_text((exact + ending).encode())
        assert "longer than" not in err.value.detail
    with pytest.raises(PassFormatError, match="longer than"):
        parse_text(exact + "0\r\n")


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ("", "malformed", "no PG1: prefix"),
        ("PG1:", "malformed", "not valid CBOR"),
        ("pg1:" + DOC_EXAMPLE_TEXT[4:], "malformed", "no PG1: prefix"),
        ("HC1:" + DOC_EXAMPLE_TEXT[4:], "malformed", "no PG1: prefix"),
        (" " + DOC_EXAMPLE_TEXT, "malformed", "no PG1: prefix"),
        ("PG2:" + DOC_EXAMPLE_TEXT[4:], "unsupported", "PG2"),
        ("PG10:ABC", "unsupported", "PG10"),
        (DOC_EXAMPLE_TEXT + " ", "malformed", "base45"),  # one more character: length mod 3 == 1
        (DOC_EXAMPLE_TEXT[:-1] + "a", "malformed", "base45"),
        (DOC_EXAMPLE_TEXT + "00", "malformed", "deterministic"),  # one trailing byte
        (DOC_EXAMPLE_TEXT[:-3], "malformed", "CBOR"),  # one byte short
        ("PG1:" + "0" * 1021, "malformed", "longer than 1024"),
        (b"PG1:" + b"0" * 1021, "malformed", "longer than 1024"),
        (b"PG1:\xff\xfe", "malformed", "not ASCII"),
        ("PG1:ÄÖÜ", "malformed", "base45"),
    ],
)
def test_text_layer_rejections(text: str | bytes, reason: str, detail: str) -> None:
    with pytest.raises(PassFormatError) as err:
        parse_text(text)
    assert err.value.reason == reason
    assert detail in err.value.detail


def test_length_capped_before_decoding() -> None:
    """The cap holds even for text that would decode (a 1,025-character valid-looking pass)."""
    big = "PG1:" + base45.encode(b"\x00" * 682)
    assert len(big) == 1027
    with pytest.raises(PassFormatError, match="longer than"):
        parse_text(big)


@pytest.mark.parametrize("value", [None, 42, ["PG1:"], object()])
def test_text_layer_non_text(value: object) -> None:
    with pytest.raises(PassFormatError, match="not text"):
        parse_text(value)  # type: ignore[arg-type]


# --- claims -------------------------------------------------------------------------------

def enc(m: object) -> bytes:
    return cbor2.dumps(m, canonical=True)


def claims_map(**changes: object) -> dict:
    m = claims().to_cbor_map()
    for k, v in changes.items():
        key = {"iss": 1, "exp": 4, "nbf": 5, "iat": 6, "cti": 7, "pg": -65537}[k]
        if v is KeyError:
            del m[key]
        else:
            m[key] = v
    return m


def dup_exp_payload() -> bytes:
    """A claims map whose exp (key 4) appears twice, hand-assembled (cbor2 cannot write it)."""
    body = enc(claims().to_cbor_map())
    assert body[0] == 0xA6
    return b"\xa7" + body[1:7] + b"\x04\x1a\x00\x00\x00\x01" + body[7:]


BAD_CLAIMS = {
    "not a map": enc([1, 2]),
    "missing cti": enc(claims_map(cti=KeyError)),
    "missing passgate": enc(claims_map(pg=KeyError)),
    "extra claim": enc({**claims_map(), 9: 1}),  # 8 is cnf since spec 1.2
    "text key": enc({**{k: v for k, v in claims_map().items() if k != 1}, "1": "NNOV"}),
    "duplicate exp": dup_exp_payload(),
    "exp as text": enc(claims_map(exp="1586955600")),
    "exp as bool": enc(claims_map(exp=True)),
    "nbf as float": enc(claims_map(nbf=float(T0))),
    "negative time": enc(claims_map(iat=-1)),
    "time too large": enc(claims_map(exp=2**40)),
    "exp before nbf": enc(claims_map(exp=T0)),
    "cti as text": enc(claims_map(cti="0011223344556677")),
    "cti 11 bytes": enc(claims_map(cti=b"x" * 11)),
    "cti 33 bytes": enc(claims_map(cti=b"x" * 33)),
    "iss empty": enc(claims_map(iss="")),
    "iss 33 chars": enc(claims_map(iss="x" * 33)),
    "iss control char": enc(claims_map(iss="NN\nOV")),
    "iss as bytes": enc(claims_map(iss=b"NNOV")),
    "passgate not array": enc(claims_map(pg={0: 2})),
    "passgate too short": enc(claims_map(pg=[2])),
    "passgate too long": enc(claims_map(pg=[2, ["gate-1"], "AB", "x"])),
    "purpose as text": enc(claims_map(pg=["shopping", ["gate-1"]])),
    "purpose negative": enc(claims_map(pg=[-1, ["gate-1"]])),
    "purpose too large": enc(claims_map(pg=[65536, ["gate-1"]])),
    "purpose bool": enc(claims_map(pg=[True, ["gate-1"]])),
    "zones not array": enc(claims_map(pg=[2, "gate-1"])),
    "zones empty": enc(claims_map(pg=[2, []])),
    "zones duplicate": enc(claims_map(pg=[2, ["a", "a"]])),
    "zones 17": enc(claims_map(pg=[2, [f"z{i}" for i in range(17)]])),
    "zone bad chars": enc(claims_map(pg=[2, ["gate 1"]])),
    "zone as bytes": enc(claims_map(pg=[2, [b"gate-1"]])),
    "zone holds an array": enc(claims_map(pg=[2, [["gate-1"]]])),
    "hint 13 chars": enc(claims_map(pg=[2, ["gate-1"], "x" * 13])),
    "hint empty": enc(claims_map(pg=[2, ["gate-1"], ""])),
    "hint control char": enc(claims_map(pg=[2, ["gate-1"], "A\x00B"])),
    "hint as int": enc(claims_map(pg=[2, ["gate-1"], 12])),
    "hint null": enc(claims_map(pg=[2, ["gate-1"], None])),
    # spec 1.1: names are visible characters only (the hint is compared by eye)
    "hint of zero-width spaces": enc(claims_map(pg=[2, ["gate-1"], "\u200b" * 12])),
    "hint with a bidi override": enc(claims_map(pg=[2, ["gate-1"], "AB\u202e21"])),
    "hint with a C1 control": enc(claims_map(pg=[2, ["gate-1"], "AB\x8512"])),
    "hint with a soft hyphen": enc(claims_map(pg=[2, ["gate-1"], "AB\xad12"])),
    "hint of spaces": enc(claims_map(pg=[2, ["gate-1"], " " * 4])),
    "hint with a double space": enc(claims_map(pg=[2, ["gate-1"], "AB  12"])),
    "hint not NFC": enc(claims_map(pg=[2, ["gate-1"], "И\u0306"])),
    "hint of Hangul fillers": enc(claims_map(pg=[2, ["gate-1"], "\u3164" * 3])),
    "hint with a symbol": enc(claims_map(pg=[2, ["gate-1"], "AB*12"])),
    "iss with a zero-width joiner": enc(claims_map(iss="NN\u200dOV")),
    "iss with a C1 control": enc(claims_map(iss="NN\x9bOV")),
    "iss with a trailing space": enc(claims_map(iss="NNOV ")),
    # spec 1.1: iat <= nbf (an iat after expiry used to be accepted)
    "iat after nbf": enc(claims_map(iat=T0 + 1)),
    "iat after exp": enc(claims_map(iat=T0 + 4 * 3600)),
    "iat too large": enc(claims_map(iat=2**40)),
    # exp as an 8-byte integer although it fits 4 bytes
    "long-form int": enc(claims().to_cbor_map()).replace(b"\x04\x1a", b"\x04\x1b\0\0\0\0", 1),
    "keys out of order": b"\xa6" + b"".join(
        enc(k) + enc(v) for k, v in sorted(claims().to_cbor_map().items(), key=lambda kv: -kv[0])),
    "trailing byte": enc(claims().to_cbor_map()) + b"\x00",
    "bool key for iss": b"\xa6\xf5" + enc(claims().to_cbor_map())[2:],
}


@pytest.mark.parametrize("name", sorted(BAD_CLAIMS))
def test_claims_rejections(name: str) -> None:
    with pytest.raises(PassFormatError) as err:
        parse_claims(BAD_CLAIMS[name])
    assert err.value.reason == "malformed"


def test_claims_rejection_details() -> None:
    def detail(name: str) -> str:
        with pytest.raises(PassFormatError) as err:
            parse_claims(BAD_CLAIMS[name])
        return err.value.detail

    assert "missing [7]" in detail("missing cti")
    assert "unknown claims [9]" in detail("extra claim")
    assert "not valid CBOR" in detail("duplicate exp")
    assert "deterministic" in detail("long-form int")
    assert "deterministic" in detail("keys out of order")
    assert "integers" in detail("bool key for iss")
    assert "integers" in detail("text key")
    assert "hint" in detail("hint 13 chars")


@pytest.mark.parametrize("name", [
    "AB12", "A.B. 1985", "ЖК-7781", "ÄÖ 12", "№ 12", "әөүҗңһ", "ӘӨҮҖҢҺ", "Ёж (7)", "O'Neil/2",
    "Й", "ß", "Ω12", "北京", "١٢٣",
])
def test_name_class_accepts_letters_and_digits_of_any_script(name: str) -> None:
    c = claims(hint=name, issuer=name)
    assert parse_claims(claims_cbor(c)) == c


def test_iat_may_be_any_time_up_to_nbf() -> None:
    """Spec 1.1: iat <= nbf; a pass issued a year ahead of its start is fine."""
    for iat in (0, T0 - 365 * 86400, T0):
        c = claims(issued_at=iat)
        assert parse_claims(claims_cbor(c)) == c


def test_encode_refuses_invalid_claims() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    with pytest.raises(PassFormatError, match="hint"):
        passformat.encode(claims(hint="x" * 13), key.sign, b"k" * 8)


def test_protected_header_is_the_plain_form(issuer: Issuer) -> None:
    s = parse_text(issuer.issue("shopping", ["gate-1"], T0, 3600))
    assert s.protected == cose.dumps({cose.HDR_ALG: cose.ALG_EDDSA, cose.HDR_KID: issuer.kid})


def test_encode_refuses_a_pass_the_verifier_would_not_read() -> None:
    """Every field within its limit, but 16 long zones and a long name: over 1,024 chars."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    big = claims(issuer="Я" * 32, hint="Ж" * 12,
                 zones=tuple(f"z{i:02d}" + "x" * 29 for i in range(16)))
    big.validate()
    with pytest.raises(PassFormatError, match="over the 1024"):
        passformat.encode(big, key.sign, b"k" * 8)
    # The largest zone list with a short name still fits, and parses.
    fits = claims(zones=tuple(f"z{i:02d}" + "x" * 29 for i in range(16)), hint=None)
    assert len(passformat.encode(fits, key.sign, b"k" * 8)) <= passformat.MAX_TEXT


# --- the issuer keeps the spec: passgate issue ------------------------------------------

def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    from passgate.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def issuer_key_file(tmp_path, capsys: pytest.CaptureFixture):
    code, _, err = cli(capsys, "keys", "new-issuer", "--out", str(tmp_path / "iss"),
                       "--name", "NNOV")
    assert code == 0, err
    return str(tmp_path / "iss" / "issuer.key")


def test_issue_writes_iat_as_the_time_of_issue(issuer_key_file: str,
                                                capsys: pytest.CaptureFixture) -> None:
    """Spec 1.1: --from sets nbf; iat is when the pass was signed (it used to be --from)."""
    import time

    from passgate.util.timefmt import parse_instant

    before = int(time.time())
    code, out, err = cli(capsys, "issue", "--key", issuer_key_file, "--purpose", "shopping",
                         "--zone", "gate-1", "--from", "2099-01-01T10:00:00Z")
    assert code == 0, err
    c = parse_claims(parse_text(out.strip()).payload)
    assert c.not_before == parse_instant("2099-01-01T10:00:00Z")
    assert before <= c.issued_at <= int(time.time())
    # A start in the past is its own iat: a pass is never valid before it exists.
    code, out, err = cli(capsys, "issue", "--key", issuer_key_file, "--purpose", "shopping",
                         "--zone", "gate-1", "--from", "2020-01-01T10:00:00Z")
    assert code == 0, err
    c = parse_claims(parse_text(out.strip()).payload)
    assert c.issued_at == c.not_before == parse_instant("2020-01-01T10:00:00Z")


@pytest.mark.parametrize(("args", "word"), [
    (["--hint", "\u200b" * 12], "hint"),  # twelve zero-width spaces: was a valid pass
    (["--hint", "AB\u202e21"], "hint"),  # a bidi override reverses what staff read
    (["--hint", "AB\x8512"], "hint"),  # a C1 control
    (["--hint", "И\u0306"], "hint"),  # not NFC
    (["--issuer", "NN\u200dOV"], "iss"),
    (["--issuer", "Я" * 32, "--hint", "Ж" * 12,
      *[a for i in range(15) for a in ("--zone", f"z{i:02d}" + "x" * 29)]], "over the 1024"),
])
def test_issue_refuses_what_the_spec_refuses(issuer_key_file: str, capsys: pytest.CaptureFixture,
                                             args: list[str], word: str) -> None:
    code, out, err = cli(capsys, "issue", "--key", issuer_key_file, "--purpose", "shopping",
                         "--zone", "gate-1", *args)
    assert (code, out) == (2, "") and word in err, err


@pytest.mark.parametrize("name", [
    "\u1100" * 12,  # twelve conjoining initial consonants: one grapheme cluster
    "\uac00" + "\u1161" * 11,  # a syllable and eleven conjoining vowels: one cluster
    "AB\u11a8",  # a conjoining final consonant joins the letter before it
    "\ua960\ud7b0",  # extended jamo
    "AB\uff9e\uff9f",  # halfwidth voiced marks: letters (Lm) that extend the previous one
    "\u0d4eA",  # Malayalam dot reph: a letter that joins the next one (Prepend)
])
def test_name_class_refuses_letters_that_join_a_neighbour_into_one_cluster(name: str) -> None:
    """Review of issue 10: a hint of 12 code points that draws as one grapheme (conjoining
    Hangul jamo) was valid, and ``passgate issue --hint`` issued it, in the field staff
    compare by eye. Each character of a name must be a grapheme of its own; Korean is
    written with the precomposed NFC syllables, which stay allowed."""
    assert not visible_name(name, 12)
    with pytest.raises(PassFormatError, match="hint"):
        parse_claims(claims_cbor(claims(hint=name)))
    assert visible_name("\uac00\ub098\ub2e4 12", 12)  # 가나다 12
