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

Vector fields: ``name``, ``text``, ``zone`` (null: any zone), ``at`` (ISO-8601) and
``at_s`` (POSIX seconds), ``expect`` (``verdict``, ``reason``, and for accepts
``remaining_s`` and ``purpose``), ``why``. The ``trust`` object describes the trust store
the vectors are checked against.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.passes import base45

OUT = Path(__file__).with_name("passgate_vectors.json")
AT = 1_767_261_600  # 2026-01-01T10:00:00Z
HOUR = 3600
SKEW = 60  # the verifier's documented grace (verify.DEFAULT_SKEW_S)
PURPOSE = {"work": 1, "shopping": 2, "dog_walk": 3, "trash": 4, "doctor": 5}

# name -> (seed label, issuer name, metadata in the trust store or None if not trusted)
KEYS = {
    "city": ("passgate vectors: city", "Test City", {}),
    "old": ("passgate vectors: old", "Old Issuer", {"valid_until": "2025-06-01T00:00:00Z"}),
    "limited": ("passgate vectors: limited", "Gatehouse",
                {"zones": ["lobby"], "purposes": ["work"]}),
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
    """A CWT claims map (RFC 8392 labels, passgate's -65537 array) with overrides by name."""
    c = {"iss": KEYS[signer][1], "exp": AT + 2 * HOUR, "nbf": AT - HOUR, "iat": AT - HOUR,
         "cti": hashlib.sha256(repr(sorted(over.items())).encode()).digest()[:12],
         "purpose": PURPOSE["shopping"], "zones": ["gate-1", "lobby"], "hint": "AB12"}
    c.update(over)
    extra = [c["purpose"], c["zones"]] + ([] if c["hint"] is None else [c["hint"]])
    return {1: c["iss"], 4: c["exp"], 5: c["nbf"], 6: c["iat"], 7: c["cti"], -65537: extra}


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


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vectors() -> list[dict]:
    out: list[dict] = []

    def add(name: str, text: str, reason: str, why: str, zone: str | None = "gate-1",
            at: int = AT, remaining: int | None = None, purpose: str | None = None) -> None:
        expect: dict = {"verdict": "accept" if reason == "valid" else "deny", "reason": reason}
        if reason == "valid":
            expect.update(remaining_s=remaining, purpose=purpose)
        elif name in DETAILS:
            expect["detail"] = DETAILS[name]  # shows the intended check is the one that failed
        out.append({"name": name, "text": text, "zone": zone, "at": iso(at), "at_s": at,
                    "expect": expect, "why": why})

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
    add("malformed_oversized_padding", base_text + "\r\n" * 400, "malformed",
        "a valid pass padded past 1,024 characters: the cap comes before anything else")
    big = sign1(dumps({**claims(zones=[f"zone-{i:02d}-" + "x" * 24 for i in range(16)],
                                iss="I" * 32, hint="H" * 12), 8: b"\0" * 200}))
    add("malformed_oversized_signed", pg1(big), "malformed",
        f"{len(pg1(big))} characters, signed: refused by length before decoding")
    add("malformed_not_cbor", pg1(b"\xff" * 30), "malformed", "base45 of non-CBOR bytes")

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
    add("malformed_unknown_claim", pg1(sign1(dumps({**ok_map, 8: 1}))), "malformed",
        "an extra claim 8")
    add("malformed_hint_too_long", pg1(good(hint="ABCDEFGHIJKLM")), "malformed",
        "13-character hint")
    add("malformed_exp_before_nbf", pg1(good(exp=AT - HOUR)), "malformed", "exp == nbf")
    long_int = dumps(ok_map).replace(b"\x04\x1a", b"\x04\x1b\x00\x00\x00\x00", 1)
    add("malformed_non_deterministic_claims", pg1(sign1(long_int)), "malformed",
        "exp as an 8-byte integer")

    # --- unsupported --------------------------------------------------------------------------
    add("unsupported_version", "PG2:" + base_text[4:], "unsupported", "format version 2")
    add("unsupported_alg_es256", pg1(sign1(dumps(claims()), prot={1: -7, 4: kid("city")})),
        "unsupported", "alg ES256 (signed with the Ed25519 key all the same)")
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
    add("purpose_not_allowed_too_long", pg1(good(purpose=PURPOSE["trash"])),
        "purpose_not_allowed", "trash is at most 30 min, this pass is 3 h")
    add("purpose_not_allowed_unknown_code", pg1(good(purpose=99)), "purpose_not_allowed",
        "purpose code 99 is not in the table")
    add("purpose_not_allowed_issuer_limited", pg1(good("limited", zones=["lobby"])),
        "purpose_not_allowed", "issuer may only issue work passes", zone="lobby")
    add("purpose_not_allowed_zone_rule", pg1(good(zones=["pharmacy"])), "purpose_not_allowed",
        "pharmacy admits doctor passes only", zone="pharmacy")
    return out


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
    "malformed_unknown_claim": "unknown claims [8]",
    "malformed_hint_too_long": "hint must be",
    "malformed_exp_before_nbf": "exp must be after nbf",
    "malformed_non_deterministic_claims": "claims: not deterministic",
    "unsupported_version": "version PG2",
    "unsupported_alg_es256": "algorithm -7",
    "unsupported_critical_header": "critical header 99",
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
            "purposes": "default", "skew_s": SKEW}


def build() -> str:
    doc = {
        "description": "passgate PG1 pass vectors; generated by tests/vectors/make_vectors.py",
        "trust": trust(),
        "untrusted_keys": {n: raw_pub(n).hex() for n, (_, _, m) in KEYS.items() if m is None},
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
