"""Generate the pass-format vector suite: ``tests/vectors/passgate_vectors.json``.

    .venv/bin/python tests/vectors/make_vectors.py          # rewrite the JSON
    .venv/bin/python tests/vectors/make_vectors.py --check  # exit 1 if it is out of date

Every key comes from a fixed seed and every time is fixed, and Ed25519 signatures are
deterministic, so the output is the same on every run (``tests/test_vectors.py`` checks
that the committed file matches). The bytes are built here with ``cbor2`` and signed with
the fixed keys, independently of passgate's own encoder; only base45 comes from passgate
(checked against RFC 9285 in ``tests/test_base45.py``). Each broken vector is broken in one
way only, and signed where a signature could matter, so that the intended check is the one
that fails and not an earlier one.

The vectors follow ``docs/pass-format.md`` spec version ``SPEC_VERSION`` (the JSON says
which). Vector fields: ``name``, ``text``, ``zone`` (null: any zone), ``at`` (ISO-8601) and
``at_s`` (POSIX seconds), ``expect`` (``verdict``, ``reason``, and for accepts
``remaining_s`` and ``purpose``), ``why``, and for the checkpoint's holder-binding rule
``policy`` (``{"holder_binding": [...]}``: apply that policy after the verifier, as the
checkpoint's ``decide`` does). The ``trust`` object describes the trust store the vectors are
checked against (with ``skew_s`` and, since spec 1.2, ``live_window_s``).

Spec 1.2 (holder-bound passes): the holder keys are P-256 keys from fixed seeds, and the
level-2 signatures are deterministic ECDSA (RFC 6979, ``cryptography``'s
``deterministic_signing``), so the file stays reproducible; a phone's randomised signatures
verify the same way. The live codes are built here with cbor2 and ``cryptography`` alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from passgate.passes import base45

OUT = Path(__file__).with_name("passgate_vectors.json")
SPEC_VERSION = "1.2"
AT = 1_767_261_600  # 2026-01-01T10:00:00Z
HOUR = 3600
SKEW = 60  # the verifier's documented grace (verify.DEFAULT_SKEW_S)
LIVE_WINDOW = 30  # the live-code freshness window (checkpoint.live_code_window's default)
HOLDERS = {"phone": "passgate vectors: holder phone", "thief": "passgate vectors: thief"}
P256_N = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
PURPOSE = {"work": 1, "shopping": 2, "dog_walk": 3, "trash": 4, "doctor": 5}

# name -> (seed label, issuer name, metadata in the trust store or None if not trusted)
KEYS = {
    "city": ("passgate vectors: city", "Test City", {}),
    "old": ("passgate vectors: old", "Old Issuer", {"valid_until": "2025-06-01T00:00:00Z"}),
    "limited": ("passgate vectors: limited", "Gatehouse",
                {"zones": ["lobby"], "purposes": ["work"]}),
    "region": ("passgate vectors: region", "Я" * 32, {}),  # the longest name, for size
    "stranger": ("passgate vectors: stranger", "Test City", None),
}
REVOKED_ID = bytes.fromhex("5245564f4b45442d30303031")  # "REVOKED-0001"
ZONE_PURPOSES = {"pharmacy": ["doctor"]}


def key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(KEYS[name][0].encode()).digest())


def raw_pub(name: str) -> bytes:
    return key(name).public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)


def kid(name: str) -> bytes:
    return hashlib.sha256(raw_pub(name)).digest()[:8]


def dumps(obj: object) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def claims(signer: str = "city", **over: object) -> dict:
    """A CWT claims map (RFC 8392 labels, passgate's -65537 array) with overrides by name;
    ``cnf`` (spec 1.2) is the claim 8 value as given, absent by default."""
    c = {"iss": KEYS[signer][1], "exp": AT + 2 * HOUR, "nbf": AT - HOUR, "iat": AT - HOUR,
         "cti": hashlib.sha256(repr(sorted(over.items())).encode()).digest()[:12],
         "purpose": PURPOSE["shopping"], "zones": ["gate-1", "lobby"], "hint": "AB12"}
    c.update(over)
    extra = [c["purpose"], c["zones"]] + ([] if c["hint"] is None else [c["hint"]])
    out = {1: c["iss"], 4: c["exp"], 5: c["nbf"], 6: c["iat"], 7: c["cti"], -65537: extra}
    if "cnf" in c:
        out[8] = c["cnf"]
    return out


def holder_key(name: str) -> ec.EllipticCurvePrivateKey:
    seed = int.from_bytes(hashlib.sha256(HOLDERS[name].encode()).digest(), "big")
    return ec.derive_private_key(seed % (P256_N - 1) + 1, ec.SECP256R1())


def holder_point(name: str) -> bytes:
    return holder_key(name).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def cnf(name: str = "phone") -> dict:
    """The cnf claim value: {1: COSE_Key} with kty EC2, crv P-256, x, and y's sign bit."""
    point = holder_point(name)
    return {1: {1: 2, -1: 1, -2: point[1:], -3: point[0] == 3}}


def level2(l1: bytes, t: int, n: int = 1, holder: str = "phone", prot: bytes = b"\xa1\x01\x26",
           payload: bytes | None = None, unprot: object = None, tag: int | None = 18) -> bytes:
    """The holder's COSE_Sign1 over ``[t, n]`` with the level 1 as external AAD (ES256)."""
    payload = dumps([t, n]) if payload is None else payload
    tbs = dumps(["Signature1", prot, l1, payload])
    der = holder_key(holder).sign(tbs, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    body = [prot, {} if unprot is None else unprot, payload,
            r.to_bytes(32, "big") + s.to_bytes(32, "big")]
    return dumps(body if tag is None else cbor2.CBORTag(tag, body))


def pg2(l1: bytes, l2: bytes, extra: list | None = None) -> str:
    return "PG2:" + base45.encode(dumps([l1, l2] + (extra or [])))


def sign1(payload: bytes, signer: str = "city", prot: object = None, unprot: object = None,
          tag: int | None = 18, signature: bytes | None = None, as_kid: str | None = None,
          items: list | None = None) -> bytes:
    """A COSE_Sign1 built with cbor2 and signed (RFC 9052 Sig_structure) by ``signer``."""
    if prot is None:
        prot = {1: -8, 4: kid(as_kid or signer)}
    prot_bytes = prot if isinstance(prot, bytes) else dumps(prot)
    if signature is None:
        to_be_signed = dumps(["Signature1", prot_bytes, b"", payload])
        signature = key(signer).sign(to_be_signed)
    body = items if items is not None else [prot_bytes, {} if unprot is None else unprot,
                                            payload, signature]
    return dumps(body if tag is None else cbor2.CBORTag(tag, body))


def pg1(cose_bytes: bytes) -> str:
    return "PG1:" + base45.encode(cose_bytes)


def good(signer: str = "city", **over: object) -> bytes:
    return sign1(dumps(claims(signer, **over)), signer)


def sized(total_chars: int) -> bytes:
    """A valid signed pass whose QR text is exactly ``total_chars`` long.

    The "region" key (a 32-character Cyrillic issuer name), a 12-character hint and 16
    zones, the last one ``n`` characters long: each character adds a byte.
    """
    for n in range(1, 33):
        zones = ["gate-1", "lobby"] + [f"z{i:02d}-" + "x" * 28 for i in range(13)] + ["y" * n]
        cose = good("region", zones=zones, hint="H" * 12)
        if len(pg1(cose)) == total_chars:
            return cose
    raise AssertionError(f"no pass of {total_chars} characters")


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vectors() -> list[dict]:
    out: list[dict] = []

    def add(name: str, text: str, reason: str, why: str, zone: str | None = "gate-1",
            at: int = AT, remaining: int | None = None, purpose: str | None = None,
            policy: dict | None = None) -> None:
        expect: dict = {"verdict": "accept" if reason == "valid" else "deny", "reason": reason}
        if reason == "valid":
            expect.update(remaining_s=remaining, purpose=purpose)
        elif name in DETAILS:
            expect["detail"] = DETAILS[name]  # shows the intended check is the one that failed
        vector = {"name": name, "text": text, "zone": zone, "at": iso(at), "at_s": at,
                  "expect": expect, "why": why}
        if policy is not None:
            vector["policy"] = policy
        out.append(vector)

    base = good()
    base_text = pg1(base)

    # --- valid ----------------------------------------------------------------------------
    add("valid", base_text, "valid", "shopping, 3 h window, 2 h left", remaining=2 * HOUR,
        purpose="shopping")
    add("valid_any_zone_no_hint", pg1(good(hint=None)), "valid", "no hint; checkpoint has no zone",
        zone=None, remaining=2 * HOUR, purpose="shopping")
    add("valid_in_skew_before_nbf", pg1(good(nbf=AT + 30, iat=AT + 30, exp=AT + HOUR)), "valid",
        "starts in 30 s: inside the 60 s grace", remaining=HOUR, purpose="shopping")
    add("valid_in_skew_after_exp", pg1(good(exp=AT - 30)), "valid",
        "ended 30 s ago: inside the 60 s grace", remaining=0, purpose="shopping")
    add("valid_work_open_ended", pg1(good(purpose=PURPOSE["work"], exp=AT + 30 * 24 * HOUR)),
        "valid", "work has no maximum duration", remaining=30 * 24 * HOUR, purpose="work")
    add("valid_limited_issuer", pg1(good("limited", purpose=PURPOSE["work"], zones=["lobby"])),
        "valid", "issuer limited to lobby/work, pass for lobby/work", zone="lobby",
        remaining=2 * HOUR, purpose="work")
    add("valid_trailing_newline", base_text + "\r\n", "valid", "scanners append CR LF",
        remaining=2 * HOUR, purpose="shopping")
    add("valid_trailing_cr", base_text + "\r", "valid", "one trailing CR is removed",
        remaining=2 * HOUR, purpose="shopping")
    exact = pg1(sized(1024))
    add("valid_1024_chars_plus_lf", exact + "\n", "valid",
        "the cap counts the text without the scanner's line ending", remaining=2 * HOUR,
        purpose="shopping")
    add("valid_crit_alg_kid",
        pg1(sign1(dumps(claims()), prot={1: -8, 2: [1, 4], 4: kid("city")})), "valid",
        "crit may list the labels this format has", remaining=2 * HOUR, purpose="shopping")
    add("valid_hint_tatar", pg1(good(hint="Әөүҗ-ңһ 7")), "valid",
        "Tatar letters are letters", remaining=2 * HOUR, purpose="shopping")
    add("valid_hint_cyrillic_punctuation", pg1(good(hint="Ж.К. № 7781")), "valid",
        "Cyrillic, digits, single spaces and the listed punctuation", remaining=2 * HOUR,
        purpose="shopping")
    add("valid_iat_before_nbf", pg1(good(iat=AT - 30 * 24 * HOUR)), "valid",
        "issued a month before it starts: iat <= nbf", remaining=2 * HOUR, purpose="shopping")
    add("valid_purpose_max_plus_grace",
        pg1(good(purpose=PURPOSE["trash"], nbf=AT - 600, iat=AT - 600, exp=AT + 1200 + SKEW)),
        "valid", "trash: 30 min maximum plus the 60 s grace", remaining=1200 + SKEW,
        purpose="trash")
    old_until = 1_748_736_000  # the old key's valid_until, 2025-06-01T00:00:00Z
    old_pass = pg1(good("old", nbf=old_until - 2 * HOUR, iat=old_until - 2 * HOUR,
                        exp=old_until + HOUR))
    add("valid_key_window_last_second", old_pass, "valid",
        "the key window is [valid_from, valid_until): its last second admits", at=old_until - 1,
        remaining=HOUR + 1, purpose="shopping")

    # --- malformed: text layer --------------------------------------------------------------
    add("malformed_empty", "", "malformed", "empty text")
    add("malformed_wrong_prefix", "PX1:" + base_text[4:], "malformed", "prefix is not PG1:")
    add("malformed_lowercase_prefix", "pg1:" + base_text[4:], "malformed", "case-sensitive prefix")
    add("malformed_no_prefix", base_text[4:], "malformed", "bare base45")
    add("malformed_base45_lowercase", base_text[:10] + "a" + base_text[11:], "malformed",
        "lower case is not base45")
    body = base_text[4:]
    add("malformed_base45_length", base_text + "0" * (1 if len(body) % 3 == 0 else 2),
        "malformed", "length mod 3 == 1")
    full = len(body) - len(body) % 3
    add("malformed_base45_overflow", "PG1:" + body[:full - 3] + "GGW" + body[full:], "malformed",
        "last whole triple is 65536")
    add("malformed_oversized_padding", base_text + " " * 810, "malformed",
        "a valid pass padded with spaces past 1,024 characters: the cap comes before decoding")
    big = sign1(dumps({**claims(zones=[f"zone-{i:02d}-" + "x" * 24 for i in range(16)],
                                iss="I" * 32, hint="H" * 12), 8: b"\0" * 200}))
    add("malformed_oversized_signed", pg1(big), "malformed",
        f"{len(pg1(big))} characters, signed: refused by length before decoding")
    add("malformed_not_cbor", pg1(b"\xff" * 30), "malformed", "base45 of non-CBOR bytes")
    add("malformed_1024_chars_plus_space", exact + " ", "malformed",
        "only CR and LF are removed: a space is part of the text, now 1,025 characters")
    add("malformed_1026_chars_signed", pg1(sized(1026)), "malformed",
        "a signed pass within every claim limit, over 1,024: issuers must not write it")
    add("malformed_leading_tab", "\t" + base_text, "malformed", "only a trailing line ending "
        "is removed")
    add("valid_two_line_endings", base_text + "\r\n" * 400, "valid",
        "every trailing CR and LF is removed before the length is counted",
        remaining=2 * HOUR, purpose="shopping")
    add("malformed_line_ending_then_tab", base_text + "\n\t", "malformed",
        "a TAB after the line ending is part of the text")
    add("malformed_prefix_pg_no_digit", "PG:" + base_text[4:], "malformed",
        "PG<n>: needs digits")

    # --- malformed: COSE structure ----------------------------------------------------------
    add("malformed_trailing_bytes", pg1(base + b"\x00"), "malformed", "one byte after the item")
    items = cbor2.loads(base).value
    add("malformed_tag_17", pg1(sign1(b"", items=list(items), tag=17)), "malformed",
        "COSE_Mac0 tag instead of COSE_Sign1")
    add("malformed_tag_98", pg1(sign1(b"", items=list(items), tag=98)), "malformed",
        "COSE_Sign tag (multi-signer)")
    add("malformed_untagged", pg1(sign1(b"", items=list(items), tag=None)), "malformed",
        "COSE_Sign1 array without its tag")
    add("malformed_array_of_3", pg1(sign1(b"", items=list(items[:3]))), "malformed",
        "COSE_Sign1 without its signature")
    add("malformed_unprotected_not_map", pg1(sign1(dumps(claims()), unprot=[])), "malformed",
        "unprotected header is an array")
    add("malformed_unprotected_not_empty", pg1(sign1(dumps(claims()), unprot={4: kid("city")})),
        "malformed", "kid repeated in the (unsigned) unprotected header")
    add("malformed_kid_unprotected_only",
        pg1(sign1(dumps(claims()), prot={1: -8}, unprot={4: kid("city")})), "malformed",
        "kid only in the unprotected header")
    add("malformed_signature_63_bytes", pg1(sign1(b"", items=[*items[:3], items[3][:63]])),
        "malformed", "signature one byte short")
    add("malformed_payload_not_bytes", pg1(sign1(b"", items=[items[0], {}, claims(), items[3]])),
        "malformed", "claims map inline instead of a byte string")
    add("malformed_non_deterministic_cose", pg1(base.replace(b"\xd2\x84", b"\xd2\x98\x04", 1)),
        "malformed", "array length in a 2-byte form")
    hdr = {1: -8, 4: kid("city")}
    for name, header, why in [
        ("malformed_header_extra_label", {**hdr, 99: 1}, "label 99, not critical"),
        ("malformed_header_text_label", {**hdr, "x": 1}, "a text label"),
        ("malformed_header_content_type", {**hdr, 3: 0}, "content type: not a label we allow"),
        ("malformed_alg_float", {**hdr, 1: -8.0}, "alg -8.0: a float"),
        ("malformed_alg_bool", {**hdr, 1: True}, "alg true"),
        ("malformed_alg_bytes", {**hdr, 1: b"\xf8"}, "alg as a byte string"),
        ("malformed_alg_in_tag_1", {**hdr, 1: cbor2.CBORTag(1, -8)}, "alg inside tag 1"),
        ("malformed_alg_in_unknown_tag", {**hdr, 1: cbor2.CBORTag(4242, -8)},
         "alg inside an unknown tag: no tag but the outer 18"),
        ("malformed_kid_in_tag_24", {**hdr, 4: cbor2.CBORTag(24, kid("city"))},
         "kid inside tag 24"),
        ("malformed_crit_empty", {**hdr, 2: []}, "crit must not be empty"),
        ("malformed_crit_duplicate", {**hdr, 2: [4, 4]}, "crit lists 4 twice"),
        ("malformed_crit_holds_bytes", {**hdr, 2: [b"\x01"]}, "crit entry neither int nor text"),
    ]:
        add(name, pg1(sign1(dumps(claims()), prot=header)), "malformed",
            why)
    add("malformed_protected_in_tag_24",
        pg1(sign1(b"", items=[cbor2.CBORTag(24, items[0]), {}, items[2], items[3]])),
        "malformed", "protected header bstr wrapped in tag 24")
    add("malformed_self_described", pg1(b"\xd9\xd9\xf7" + base), "malformed",
        "tag 55799 around tag 18: no tag but the outer 18")
    add("malformed_crit_holds_array",
        pg1(sign1(dumps(claims()), prot={1: -8, 2: [[1]], 4: kid("city")})), "malformed",
        "crit lists an array, not a label (used to raise TypeError)")

    # --- malformed: claims (signed, so the signature is not what fails) ----------------------
    ok_map = claims()
    dup = dumps(ok_map)
    dup = b"\xa7" + dup[1:dup.index(b"\x04\x1a")] + b"\x04\x1a\x00\x00\x00\x01" + dup[
        dup.index(b"\x04\x1a"):]
    add("malformed_duplicate_claim", pg1(sign1(dup)), "malformed", "exp appears twice")
    add("malformed_mistyped_exp", pg1(good(exp=str(AT + 2 * HOUR))), "malformed",
        "exp is text")
    add("malformed_mistyped_nbf_float", pg1(good(nbf=float(AT - HOUR))), "malformed",
        "nbf is a float")
    add("malformed_mistyped_purpose", pg1(good(purpose="shopping")), "malformed",
        "purpose is its name, not its code")
    add("malformed_missing_claim", pg1(sign1(dumps({k: v for k, v in ok_map.items() if k != 7}))),
        "malformed", "no cti (pass id)")
    add("malformed_unknown_claim", pg1(sign1(dumps({**ok_map, 9: 1}))), "malformed",
        "an extra claim 9 (spec 1.1 used 8, which is cnf since 1.2)")
    add("malformed_hint_too_long", pg1(good(hint="ABCDEFGHIJKLM")), "malformed",
        "13-character hint")
    add("malformed_exp_before_nbf", pg1(good(exp=AT - HOUR)), "malformed", "exp == nbf")
    add("malformed_hint_in_tag", pg1(good(hint=cbor2.CBORTag(4242, "AB12"))), "malformed",
        "hint wrapped in an unknown tag")
    add("malformed_iat_after_nbf", pg1(good(iat=AT - HOUR + 1)), "malformed",
        "issued 1 s after it starts")
    add("malformed_iat_after_exp", pg1(good(iat=AT + 3 * HOUR)), "malformed",
        "issued after its expiry")
    add("malformed_iat_2_40", pg1(good(iat=2**40)), "malformed", "iat must be < 2^40")
    for name, hint, why in [
        ("malformed_hint_zero_width", "\u200b" * 12, "12 zero-width spaces: invisible"),
        ("malformed_hint_bidi_override", "AB\u202e21", "U+202E reverses what staff read"),
        ("malformed_hint_c1_control", "AB\x8512", "a C1 control (NEL)"),
        ("malformed_hint_not_nfc", "И\u0306", "decomposed: not NFC"),
        ("malformed_hint_double_space", "AB  12", "two spaces in a row"),
        ("malformed_hint_trailing_space", "AB12 ", "a trailing space"),
        ("malformed_hint_hangul_filler", "\u3164" * 4, "a blank 'letter'"),
        ("malformed_hint_symbol", "AB*12", "'*' is not in the punctuation list"),
    ]:
        add(name, pg1(good(hint=hint)), "malformed", why)
    add("malformed_iss_zero_width_joiner", pg1(good(iss="Test\u200dCity")), "malformed",
        "iss is in the name class too")
    long_int = dumps(ok_map).replace(b"\x04\x1a", b"\x04\x1b\x00\x00\x00\x00", 1)
    add("malformed_non_deterministic_claims", pg1(sign1(long_int)), "malformed",
        "exp as an 8-byte integer")

    # --- unsupported --------------------------------------------------------------------------
    add("unsupported_version", "PG3:" + base_text[4:], "unsupported",
        "format version 3 (spec 1.1 used PG2:, which is the live code since 1.2)")
    add("unsupported_alg_es256", pg1(sign1(dumps(claims()), prot={1: -7, 4: kid("city")})),
        "unsupported", "alg ES256 (signed with the Ed25519 key all the same)")
    add("unsupported_version_pg10", "PG10:" + base_text[4:], "unsupported",
        "PG followed by digits names a format version")
    add("unsupported_version_pg01", "PG01:" + base_text[4:], "unsupported",
        "PG01: is not exactly PG1:")
    add("unsupported_alg_text", pg1(sign1(dumps(claims()), prot={1: "EdDSA", 4: kid("city")})),
        "unsupported", "alg as text is a COSE algorithm name we do not support")
    add("unsupported_critical_text_label",
        pg1(sign1(dumps(claims()), prot={1: -8, 2: ["x"], 4: kid("city"), "x": 1})),
        "unsupported", "critical header 'x' is unknown")
    add("unsupported_critical_header",
        pg1(sign1(dumps(claims()), prot={1: -8, 2: [99], 4: kid("city"), 99: 1})),
        "unsupported", "critical header 99 is unknown")

    # --- key and signature ----------------------------------------------------------------------
    add("unknown_key", pg1(good("stranger")), "unknown_key", "kid not in the trust store")
    add("unknown_key_issuer_name", pg1(good(iss="Other City")), "unknown_key",
        "trusted key, but the pass names another issuer")
    flipped = bytearray(base)
    flipped[-1] ^= 1
    add("bad_signature_flipped_bit", pg1(bytes(flipped)), "bad_signature",
        "last signature bit flipped")
    add("bad_signature_changed_payload",
        pg1(sign1(dumps(claims(exp=AT + 26 * HOUR)), signature=items[3])), "bad_signature",
        "exp moved a day on, old signature kept")
    add("bad_signature_forged_kid", pg1(sign1(dumps(claims()), signer="stranger", as_kid="city")),
        "bad_signature", "another key signs under the trusted kid")
    add("bad_signature_zero", pg1(sign1(dumps(claims()), signature=bytes(64))), "bad_signature",
        "all-zero signature")
    add("key_not_valid", pg1(good("old")), "key_not_valid", "key's validity ended 2025-06-01")
    add("key_not_valid_at_valid_until", old_pass, "key_not_valid",
        "valid_until itself is outside the window; no grace", at=old_until)

    # --- time ---------------------------------------------------------------------------------
    add("not_yet_valid", pg1(good(nbf=AT + 2 * HOUR, iat=AT, exp=AT + 4 * HOUR)), "not_yet_valid",
        "starts in 2 h")
    add("not_yet_valid_just", pg1(good(nbf=AT + SKEW + 1, iat=AT, exp=AT + HOUR)),
        "not_yet_valid", "starts 1 s after the grace")
    add("expired", pg1(good(exp=AT - 2 * HOUR, nbf=AT - 4 * HOUR, iat=AT - 4 * HOUR)), "expired",
        "ended 2 h ago")
    add("expired_just", pg1(good(exp=AT - SKEW)), "expired", "ended exactly the grace ago")
    add("revoked", pg1(good(cti=REVOKED_ID)), "revoked", "pass id on the revocation list")
    add("revoked_and_expired", pg1(good(cti=REVOKED_ID, exp=AT - 2 * HOUR, nbf=AT - 3 * HOUR,
                                        iat=AT - 3 * HOUR)), "revoked",
        "revocation is checked before time")

    # --- zone and purpose -------------------------------------------------------------------------
    add("wrong_zone", base_text, "wrong_zone", "pass is for gate-1 and lobby", zone="garage")
    add("wrong_zone_issuer_limited",
        pg1(good("limited", purpose=PURPOSE["work"], zones=["lobby", "gate-1"])), "wrong_zone",
        "issuer may only admit to lobby", zone="gate-1")
    add("wrong_zone_case", base_text, "wrong_zone", "zones compare case-sensitively",
        zone="Gate-1")
    add("wrong_zone_limited_key_no_zone",
        pg1(good("limited", purpose=PURPOSE["work"], zones=["lobby"])), "wrong_zone",
        "a zone-limited key admits nowhere at a checkpoint with no zone", zone=None)
    add("purpose_not_allowed_max_plus_grace_plus_1",
        pg1(good(purpose=PURPOSE["trash"], nbf=AT - 600, iat=AT - 600,
                 exp=AT + 1200 + SKEW + 1)), "purpose_not_allowed",
        "trash: 1 s over the maximum plus the grace")
    add("purpose_not_allowed_too_long", pg1(good(purpose=PURPOSE["trash"])),
        "purpose_not_allowed", "trash is at most 30 min, this pass is 3 h")
    add("purpose_not_allowed_unknown_code", pg1(good(purpose=99)), "purpose_not_allowed",
        "purpose code 99 is not in the table")
    add("purpose_not_allowed_issuer_limited", pg1(good("limited", zones=["lobby"])),
        "purpose_not_allowed", "issuer may only issue work passes", zone="lobby")
    add("purpose_not_allowed_zone_rule", pg1(good(zones=["pharmacy"])), "purpose_not_allowed",
        "pharmacy admits doctor passes only", zone="pharmacy")
    holder_vectors(add)
    return out


def holder_vectors(add) -> None:
    """Spec 1.2: holder-bound passes (cnf, claim 8) and live codes (PG2:)."""
    bound = good(cnf=cnf())
    live = level2(bound, AT - 5, 17)
    left = {"remaining": 2 * HOUR, "purpose": "shopping"}
    add("valid_bound_pass_alone", pg1(bound), "valid",
        "a holder-bound pass shown as its level 1: the verifier accepts it (binding is the "
        "checkpoint's policy)", **left)
    add("valid_live_code", pg2(bound, live), "valid", "live code made 5 s ago by the holder",
        **left)
    add("valid_live_code_window_edge", pg2(bound, level2(bound, AT - LIVE_WINDOW)), "valid",
        "exactly the window old", **left)
    add("valid_live_code_future_edge", pg2(bound, level2(bound, AT + LIVE_WINDOW)), "valid",
        "the phone clock exactly the window ahead", **left)
    add("valid_live_code_large_t_n", pg2(bound, level2(bound, AT, 2**32 - 1)), "valid",
        "the counter at its largest", **left)
    add("live_code_stale", pg2(bound, level2(bound, AT - LIVE_WINDOW - 1)), "live_code_stale",
        "1 s older than the window: a picture of an old code")
    add("live_code_stale_hour", pg2(bound, level2(bound, AT - HOUR)), "live_code_stale",
        "an hour-old screenshot")
    add("live_code_future", pg2(bound, level2(bound, AT + LIVE_WINDOW + 1)), "live_code_future",
        "the phone clock 1 s past the window ahead")
    add("holder_mismatch_other_phone", pg2(bound, level2(bound, AT, holder="thief")),
        "holder_mismatch", "a level 2 by another phone's key")
    other_pass = good(cnf=cnf(), hint="CD34")
    add("holder_mismatch_moved_level_2", pg2(other_pass, live), "holder_mismatch",
        "the holder's level 2 for one pass, put beside another pass of the same holder")
    items = list(cbor2.loads(live).value)
    flipped_sig = items[3][:-1] + bytes([items[3][-1] ^ 1])
    add("holder_mismatch_flipped_bit",
        pg2(bound, dumps(cbor2.CBORTag(18, items[:3] + [flipped_sig]))), "holder_mismatch",
        "last bit of the level-2 signature flipped")
    add("holder_mismatch_zero_r", pg2(bound, dumps(cbor2.CBORTag(18, items[:3] + [bytes(64)]))),
        "holder_mismatch", "r = s = 0: never a valid ECDSA signature")
    s = int.from_bytes(items[3][32:], "big")
    high_s = items[3][:32] + (P256_N - s).to_bytes(32, "big")
    add("valid_live_code_high_s", pg2(bound, dumps(cbor2.CBORTag(18, items[:3] + [high_s]))),
        "valid", "(r, n - s) verifies too (WebCrypto does not normalise s); the code's id "
        "does not depend on s", **left)
    add("expired_live_code", pg2(good(cnf=cnf(), exp=AT - 2 * HOUR, nbf=AT - 3 * HOUR,
                                      iat=AT - 3 * HOUR), live), "expired",
        "every level-1 rule comes first: a fresh live code of an expired pass")
    add("malformed_live_code_unbound_pass", pg2(base := good(), level2(base, AT)), "malformed",
        "a live code of a pass without cnf")
    add("malformed_live_code_three_items", pg2(bound, live, [b""]), "malformed",
        "the envelope is exactly [level 1, level 2]")
    add("malformed_live_code_untagged", pg2(bound, level2(bound, AT, tag=None)), "malformed",
        "level 2 without tag 18")
    add("unsupported_live_code_alg_eddsa", pg2(bound, level2(bound, AT, prot=b"\xa1\x01\x27")),
        "unsupported", "level 2 names EdDSA: only ES256 (-7)")
    add("malformed_live_code_kid", pg2(bound, level2(bound, AT, prot=dumps({1: -7, 4: b"k"}))),
        "malformed", "level 2 protected header must be exactly {1: -7}")
    add("malformed_live_code_unprotected", pg2(bound, level2(bound, AT, unprot={4: b"k"})),
        "malformed", "level 2 unprotected header must be empty")
    add("malformed_live_code_long_t",
        pg2(bound, level2(bound, AT, payload=b"\x82\x1b" + AT.to_bytes(8, "big") + b"\x01")),
        "malformed", "t as an 8-byte integer: not deterministic")
    add("malformed_live_code_t_2_40", pg2(bound, level2(bound, 2**40)), "malformed",
        "t must be below 2**40")
    add("malformed_live_code_t_text", pg2(bound, level2(bound, AT, payload=dumps(["now", 1]))),
        "malformed", "t must be an unsigned integer")
    add("malformed_live_code_base45", "PG2:" + pg2(bound, live)[4:] + "0", "malformed",
        "base45 length mod 3 == 1")
    add("malformed_live_code_oversized", pg2(bound, live) + " " * 600, "malformed",
        "over 1,024 characters: refused before decoding")
    point = holder_point("phone")
    for name, value, why in (
        ("malformed_cnf_int", 1, "cnf is an integer"),
        ("malformed_cnf_y_int", {1: {1: 2, -1: 1, -2: point[1:], -3: 1}},
         "y's sign bit as an integer, not a bool"),
        ("malformed_cnf_p384", {1: {1: 2, -1: 2, -2: point[1:], -3: True}}, "crv 2 (P-384)"),
        ("malformed_cnf_x_31_bytes", {1: {1: 2, -1: 1, -2: point[2:], -3: True}}, "x is 31 bytes"),
        ("malformed_cnf_full_point", {1: {1: 2, -1: 1, -2: point[1:], -3: point[1:]}},
         "y as 32 bytes: only the compressed form"),
        ("malformed_cnf_extra_label", {1: {1: 2, -1: 1, -2: point[1:], -3: True, 2: b"kid"}},
         "a kid in the COSE_Key"),
        ("malformed_cnf_not_on_curve", {1: {1: 2, -1: 1, -2: b"\x00" * 31 + b"\x01", -3: False}},
         "x = 1 has no point on P-256"),
    ):
        add(name, pg1(good(cnf=value)), "malformed", why)
    # The checkpoint's binding policy (decide), after the verifier.
    required = {"holder_binding": ["shopping"]}
    add("live_code_required", pg1(bound), "live_code_required",
        "binding required for shopping here: the bound pass shown bare", policy=required)
    add("not_bound", base_text_of(), "not_bound",
        "binding required for shopping here: a pass without a holder key", policy=required)
    add("valid_live_code_binding_required", pg2(bound, live), "valid",
        "binding required and met", policy=required, **left)
    add("valid_not_bound_binding_for_other_purpose", base_text_of(), "valid",
        "binding required for work only", policy={"holder_binding": ["work"]}, **left)


def base_text_of() -> str:
    return pg1(good())


# Substrings of Verdict.detail: where a reason has many causes, the one each vector is for.
DETAILS = {
    "malformed_empty": "no PG1: prefix",
    "malformed_wrong_prefix": "no PG1: prefix",
    "malformed_lowercase_prefix": "no PG1: prefix",
    "malformed_no_prefix": "no PG1: prefix",
    "malformed_base45_lowercase": "'a' is not base45",
    "malformed_base45_length": "single character",
    "malformed_base45_overflow": "triple exceeds 65535",
    "malformed_oversized_padding": "longer than 1024",
    "malformed_oversized_signed": "longer than 1024",
    "malformed_not_cbor": "COSE: not valid CBOR",
    "malformed_trailing_bytes": "COSE: not deterministic",
    "malformed_tag_17": "tag 18",
    "malformed_tag_98": "tag 18",
    "malformed_untagged": "tag 18",
    "malformed_array_of_3": "array of 4",
    "malformed_unprotected_not_map": "unprotected header must be a map",
    "malformed_unprotected_not_empty": "unprotected header must be empty",
    "malformed_kid_unprotected_only": "kid belong in the protected header",
    "malformed_signature_63_bytes": "64 bytes",
    "malformed_payload_not_bytes": "byte strings",
    "malformed_non_deterministic_cose": "COSE: not deterministic",
    "malformed_crit_holds_array": "crit must list header labels",
    "malformed_duplicate_claim": "claims: not valid CBOR",
    "malformed_mistyped_exp": "expires must be a non-negative integer",
    "malformed_mistyped_nbf_float": "not_before must be a non-negative integer",
    "malformed_mistyped_purpose": "purpose must be a code",
    "malformed_missing_claim": "claims missing [7]",
    "malformed_unknown_claim": "unknown claims [9]",
    "malformed_hint_too_long": "hint must be",
    "malformed_exp_before_nbf": "exp must be after nbf",
    "malformed_non_deterministic_claims": "claims: not deterministic",
    "unsupported_version": "version PG3",
    "malformed_live_code_unbound_pass": "without a holder key",
    "malformed_live_code_three_items": "[level 1 bytes, level 2 bytes]",
    "malformed_live_code_untagged": "tag 18",
    "unsupported_live_code_alg_eddsa": "not ES256",
    "malformed_live_code_kid": "exactly {1: -7}",
    "malformed_live_code_unprotected": "unprotected header must be the empty map",
    "malformed_live_code_long_t": "live code payload: not deterministic",
    "malformed_live_code_t_2_40": "below 2**40",
    "malformed_live_code_t_text": "unsigned integer",
    "malformed_live_code_base45": "base45",
    "malformed_live_code_oversized": "longer than 1024",
    "malformed_cnf_int": "cnf must be",
    "malformed_cnf_y_int": "sign bit",
    "malformed_cnf_p384": "crv 1 (P-256)",
    "malformed_cnf_x_31_bytes": "x (32 bytes)",
    "malformed_cnf_full_point": "sign bit",
    "malformed_cnf_extra_label": "cnf key must be",
    "malformed_cnf_not_on_curve": "not a point on the P-256 curve",
    "live_code_stale": "show the live code, not a picture",
    "live_code_future": "check the phone's clock",
    "holder_mismatch_other_phone": "holder key",
    "unsupported_alg_es256": "algorithm -7",
    "unsupported_critical_header": "critical header 99",
    "unsupported_critical_text_label": "critical header 'x'",
    "unsupported_alg_text": "algorithm 'EdDSA'",
    "malformed_1024_chars_plus_space": "longer than 1024",
    "malformed_1026_chars_signed": "longer than 1024",
    "malformed_leading_tab": "no PG1: prefix",
    "malformed_line_ending_then_tab": "base45",
    "malformed_prefix_pg_no_digit": "no PG1: prefix",
    "malformed_header_extra_label": "label 99 not allowed",
    "malformed_header_text_label": "label 'x' not allowed",
    "malformed_header_content_type": "label 3 not allowed",
    "malformed_alg_float": "unexpected CBOR item (float)",
    "malformed_alg_bool": "algorithm must be an integer or text",
    "malformed_alg_bytes": "algorithm must be an integer or text",
    "malformed_alg_in_tag_1": "not valid CBOR",
    "malformed_alg_in_unknown_tag": "CBOR tag 4242",
    "malformed_kid_in_tag_24": "CBOR tag 24",
    "malformed_crit_empty": "crit must be a non-empty array",
    "malformed_crit_duplicate": "crit lists a label twice",
    "malformed_crit_holds_bytes": "crit must list header labels",
    "malformed_protected_in_tag_24": "byte strings",
    "malformed_self_described": "not valid CBOR",
    "malformed_hint_in_tag": "hint must be",
    "malformed_iat_after_nbf": "iat must not be after nbf",
    "malformed_iat_after_exp": "iat must not be after nbf",
    "malformed_iat_2_40": "issued_at must be a non-negative integer",
    "malformed_hint_zero_width": "hint must be",
    "malformed_hint_bidi_override": "hint must be",
    "malformed_hint_c1_control": "hint must be",
    "malformed_hint_not_nfc": "hint must be",
    "malformed_hint_double_space": "hint must be",
    "malformed_hint_trailing_space": "hint must be",
    "malformed_hint_hangul_filler": "hint must be",
    "malformed_hint_symbol": "hint must be",
    "malformed_iss_zero_width_joiner": "iss must be",
    "key_not_valid_at_valid_until": "outside its validity window",
    "wrong_zone_case": "pass not valid in zone Gate-1",
    "wrong_zone_limited_key_no_zone": "checkpoint has no zone",
    "purpose_not_allowed_max_plus_grace_plus_1": "longer than 30 min",
    "unknown_key": "no trusted key",
    "unknown_key_issuer_name": "does not belong to issuer 'Other City'",
    "wrong_zone": "pass not valid in zone garage",
    "wrong_zone_issuer_limited": "issuer not allowed to admit",
    "purpose_not_allowed_too_long": "longer than 30 min",
    "purpose_not_allowed_unknown_code": "unknown purpose code 99",
    "purpose_not_allowed_issuer_limited": "issuer not allowed to issue",
    "purpose_not_allowed_zone_rule": "not allowed in zone pharmacy",
}


def trust() -> dict:
    keys = []
    for name, (_, issuer, meta) in KEYS.items():
        if meta is not None:
            keys.append({"name": name, "public_hex": raw_pub(name).hex(), "issuer": issuer,
                         **meta})
    return {"keys": keys, "revoked_hex": [REVOKED_ID.hex()], "zone_purposes": ZONE_PURPOSES,
            "purposes": "default", "skew_s": SKEW, "live_window_s": LIVE_WINDOW}


def build() -> str:
    doc = {
        "description": "passgate PG1 pass and PG2 live code vectors; generated by "
                       "tests/vectors/make_vectors.py",
        "spec_version": SPEC_VERSION,
        "trust": trust(),
        "untrusted_keys": {n: raw_pub(n).hex() for n, (_, _, m) in KEYS.items() if m is None},
        "holder_keys": {n: holder_point(n).hex() for n in HOLDERS},
        "vectors": vectors(),
    }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description="generate tests/vectors/passgate_vectors.json")
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = ap.parse_args()
    text = build()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        print(f"{OUT}: {'up to date' if current == text else 'OUT OF DATE'}")
        return 0 if current == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
