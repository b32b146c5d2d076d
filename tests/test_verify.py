"""The offline verifier: every reason code, the order of checks, skew grace, key lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import ISSUER_NAME, NOW, fixed_key
from passgate.issuing.issuer import Issuer
from passgate.passes import base45, keys
from passgate.passes.format import parse_text
from passgate.passes.keys import raw_public
from passgate.passes.purposes import PurposeTable
from passgate.passes.revocation import RevocationList
from passgate.passes.truststore import IssuerKey, TrustStore
from passgate.passes.verdict import Reason, Result
from passgate.passes.verify import DEFAULT_SKEW_S, Verifier

HOUR = 3600
PASS_ID = bytes.fromhex("0102030405060708090a0b0c")


@pytest.fixture
def text(issuer: Issuer) -> str:
    """A shopping pass (3 h) for gate-1 and lobby, valid from NOW - 1 h."""
    return issuer.issue("shopping", ["gate-1", "lobby"], NOW - HOUR, 3 * HOUR, hint="AB12",
                        pass_id=PASS_ID)


def store(issuer_key: Ed25519PrivateKey, **meta: object) -> TrustStore:
    """A trust store with the test issuer's key; ``meta`` is the key's metadata, except
    ``revoked`` and ``zone_purposes`` which go to the store."""
    extra = {k: meta.pop(k) for k in ("revoked", "zone_purposes") if k in meta}
    meta.setdefault("issuer", ISSUER_NAME)
    return TrustStore([IssuerKey.from_raw(raw_public(issuer_key), **meta)], **extra)


def test_valid_pass_accepted_with_all_facts(verifier: Verifier, issuer: Issuer, text: str) -> None:
    v = verifier.check(text, NOW, "gate-1")
    assert v.result is Result.ACCEPT and v.reason is Reason.VALID and v.accepted
    assert v.remaining_s == 2 * HOUR and v.detail == "2h 00m left"
    assert (v.purpose, v.hint, v.issuer, v.zones) == ("shopping", "AB12", ISSUER_NAME,
                                                      ("gate-1", "lobby"))
    assert v.kid == issuer.kid.hex() and v.pass_id == PASS_ID
    assert (v.not_before, v.expires, v.checked_at) == (NOW - HOUR, NOW + 2 * HOUR, NOW)
    assert set(v.to_json()) >= {"verdict", "reason", "remaining_s", "purpose", "kid"}
    assert "AB12" not in str(v.to_json()) and PASS_ID.hex() not in str(v.to_json())


def test_no_zone_means_any_zone_and_float_now(verifier: Verifier, text: str) -> None:
    assert verifier.check(text, NOW + 0.9, None).remaining_s == 2 * HOUR


@pytest.mark.parametrize("value", [None, 7, "", "PG1:", b"\xff" * 3000, "x" * 100_000])
def test_garbage_denied_never_raises(verifier: Verifier, value: object) -> None:
    v = verifier.check(value, NOW, "gate-1")  # type: ignore[arg-type]
    assert v.result is Result.DENY and v.reason is Reason.MALFORMED and v.detail


def test_unsupported_version(verifier: Verifier, text: str) -> None:
    # PG2: is the live code since spec 1.2 (tests/test_holder.py); PG3: is not a format.
    assert verifier.check("PG3:" + text[4:], NOW).reason is Reason.UNSUPPORTED


def test_unknown_key(text: str) -> None:
    v = Verifier(store(fixed_key("someone else"))).check(text, NOW)
    assert v.reason is Reason.UNKNOWN_KEY and v.kid is not None and v.remaining_s is None


def test_issuer_name_must_match_the_key(issuer_key: Ed25519PrivateKey, text: str) -> None:
    v = Verifier(store(issuer_key, issuer="Other City")).check(text, NOW)
    assert v.reason is Reason.UNKNOWN_KEY and "does not belong" in v.detail
    assert Verifier(store(issuer_key, issuer=None)).check(text, NOW).accepted


def test_bad_signature(verifier: Verifier, issuer: Issuer, text: str) -> None:
    raw = bytearray(base45.decode(text[4:]))
    raw[-1] ^= 0x01  # last byte of the signature
    v = verifier.check("PG1:" + base45.encode(bytes(raw)), NOW)
    assert v.reason is Reason.BAD_SIGNATURE and v.kid == issuer.kid.hex()


def test_forged_pass_under_a_trusted_kid(verifier: Verifier, issuer: Issuer) -> None:
    """Another key signs a pass claiming the trusted issuer's kid: bad_signature."""
    from passgate.passes import format as passformat
    from passgate.passes.format import Claims

    forger = fixed_key("forger")
    c = Claims(ISSUER_NAME, PASS_ID, NOW, NOW + HOUR, NOW, 1, ("gate-1",))
    forged = passformat.encode(c, forger.sign, issuer.kid)
    assert verifier.check(forged, NOW).reason is Reason.BAD_SIGNATURE


def test_key_validity_window(issuer_key: Ed25519PrivateKey, text: str) -> None:
    expired_key = store(issuer_key, valid_until=NOW - 10)
    assert Verifier(expired_key).check(text, NOW).reason is Reason.KEY_NOT_VALID
    future_key = store(issuer_key, valid_from=NOW + 10)
    assert Verifier(future_key).check(text, NOW).reason is Reason.KEY_NOT_VALID
    # Issued (iat = NOW - 1 h) before the key's window opened: refused even if now is inside.
    late_key = store(issuer_key, valid_from=NOW - 10)
    assert Verifier(late_key).check(text, NOW).reason is Reason.KEY_NOT_VALID
    ok_key = store(issuer_key, valid_from=NOW - HOUR, valid_until=NOW + 1)
    assert Verifier(ok_key).check(text, NOW).accepted


def test_time_window_and_skew_grace(verifier: Verifier, text: str) -> None:
    nbf, exp, skew = NOW - HOUR, NOW + 2 * HOUR, DEFAULT_SKEW_S
    assert verifier.check(text, nbf - skew - 1).reason is Reason.NOT_YET_VALID
    assert "valid in" in verifier.check(text, nbf - 600).detail
    assert verifier.check(text, nbf - skew).accepted  # inside the grace
    assert verifier.check(text, exp + skew - 1).accepted
    assert verifier.check(text, exp + skew - 1).remaining_s == 0
    v = verifier.check(text, exp + skew)
    assert v.reason is Reason.EXPIRED and v.detail == "expired 1 min ago"
    assert v.expires == exp and v.remaining_s is None  # facts kept for the screen
    assert Verifier(verifier.trust, skew_s=0).check(text, exp).reason is Reason.EXPIRED


def test_key_window_edges_have_no_grace(issuer_key: Ed25519PrivateKey, text: str) -> None:
    """Spec 1.1: valid_from <= t < valid_until, for now and for iat, with no skew grace."""
    iat = NOW - HOUR
    assert Verifier(store(issuer_key, valid_from=iat)).check(text, NOW).accepted
    assert Verifier(store(issuer_key, valid_from=iat + 1)).check(
        text, NOW).reason is Reason.KEY_NOT_VALID
    assert Verifier(store(issuer_key, valid_until=NOW + 1)).check(text, NOW).accepted
    assert Verifier(store(issuer_key, valid_until=NOW)).check(
        text, NOW).reason is Reason.KEY_NOT_VALID


def test_purpose_maximum_has_the_skew_grace(issuer_key: Ed25519PrivateKey,
                                            issuer: Issuer) -> None:
    """Spec 1.1: exp - nbf may exceed the purpose's maximum by the skew (60 s), no more."""
    verifier = Verifier(store(issuer_key))
    at_grace = issuer.issue("trash", ["gate-1"], NOW, 30 * 60 + DEFAULT_SKEW_S)
    over = issuer.issue("trash", ["gate-1"], NOW, 30 * 60 + DEFAULT_SKEW_S + 1)
    assert verifier.check(at_grace, NOW).accepted
    assert verifier.check(over, NOW).reason is Reason.PURPOSE_NOT_ALLOWED


def test_now_is_floored_and_a_broken_clock_denies(verifier: Verifier, text: str) -> None:
    exp = NOW + 2 * HOUR
    assert verifier.check(text, exp - 0.5).remaining_s == 1  # floor(exp - 0.5) = exp - 1
    assert verifier.check(text, -0.5).checked_at == -1  # floored, not truncated towards 0
    for broken in (float("nan"), float("inf"), float("-inf")):
        v = verifier.check(text, broken)
        assert v.reason is Reason.CLOCK_UNTRUSTED and not v.accepted


def test_revoked_beats_expired(issuer_key: Ed25519PrivateKey, text: str) -> None:
    trust = store(issuer_key, revoked=RevocationList.from_pass_ids([PASS_ID, b"x" * 12]))
    assert Verifier(trust).check(text, NOW).reason is Reason.REVOKED
    assert Verifier(trust).check(text, NOW + 10 * HOUR).reason is Reason.REVOKED


def test_wrong_zone(issuer_key: Ed25519PrivateKey, verifier: Verifier, text: str) -> None:
    assert verifier.check(text, NOW, "lobby").accepted
    v = verifier.check(text, NOW, "garage")
    assert v.reason is Reason.WRONG_ZONE and "garage" in v.detail
    limited = Verifier(store(issuer_key, zones=frozenset({"lobby"})))
    assert limited.check(text, NOW, "lobby").accepted
    assert limited.check(text, NOW, "gate-1").reason is Reason.WRONG_ZONE


def test_zones_compare_case_sensitively(verifier: Verifier, text: str) -> None:
    assert verifier.check(text, NOW, "Gate-1").reason is Reason.WRONG_ZONE
    assert verifier.check(text, NOW, "LOBBY").reason is Reason.WRONG_ZONE


def test_zone_limited_key_admits_nowhere_without_a_zone(issuer_key: Ed25519PrivateKey,
                                                        text: str) -> None:
    """Spec 1.1: with no checkpoint zone the key's zone limit cannot be checked: deny."""
    v = Verifier(store(issuer_key, zones=frozenset({"lobby"}))).check(text, NOW, None)
    assert v.reason is Reason.WRONG_ZONE and "no zone" in v.detail
    # Zone purpose rules are per zone: with no zone none applies.
    rules = Verifier(store(issuer_key, zone_purposes={"": frozenset({"work"})}))
    assert rules.check(text, NOW, None).accepted


def test_purpose_not_allowed(issuer_key: Ed25519PrivateKey, issuer: Issuer, text: str) -> None:
    only_work = Verifier(store(issuer_key, purposes=frozenset({"work"})))
    assert only_work.check(text, NOW).reason is Reason.PURPOSE_NOT_ALLOWED
    zone_rules = Verifier(store(issuer_key, zone_purposes={"gate-1": frozenset({"work"})}))
    assert zone_rules.check(text, NOW, "gate-1").reason is Reason.PURPOSE_NOT_ALLOWED
    assert zone_rules.check(text, NOW, "lobby").accepted
    # A trash pass (30 min maximum) issued for 2 hours.
    long_trash = issuer.issue("trash", ["gate-1"], NOW, 2 * HOUR)
    v = Verifier(store(issuer_key)).check(long_trash, NOW)
    assert v.reason is Reason.PURPOSE_NOT_ALLOWED and "30 min" in v.detail
    # A purpose code the checkpoint's table does not know.
    table = PurposeTable.from_toml('[purposes.work]\ncode = 1\nmax = ""\n', "test")
    v = Verifier(TrustStore([IssuerKey.from_raw(raw_public(issuer_key))], purposes=table)).check(
        text, NOW)
    assert v.reason is Reason.PURPOSE_NOT_ALLOWED and v.purpose == "#2"


def test_colliding_kids_are_all_tried(issuer_key: Ed25519PrivateKey, text: str) -> None:
    """Two different keys under one kid (8 bytes may collide): the one that verifies decides."""
    good = IssuerKey.from_raw(raw_public(issuer_key), issuer=ISSUER_NAME)
    impostor = IssuerKey(kid=good.kid, raw=raw_public(fixed_key("collides")), issuer=ISSUER_NAME)
    for order in ([impostor, good], [good, impostor]):
        assert Verifier(TrustStore(order)).check(text, NOW).accepted
    assert Verifier(TrustStore([impostor])).check(text, NOW).reason is Reason.BAD_SIGNATURE


def test_same_key_listed_twice_any_entry_may_admit(issuer_key: Ed25519PrivateKey,
                                                   text: str) -> None:
    """An old entry (window closed) and a renewed one for the same key: the renewed admits."""
    raw = raw_public(issuer_key)
    old = IssuerKey.from_raw(raw, issuer=ISSUER_NAME, valid_until=NOW - 1)
    renewed = IssuerKey.from_raw(raw, issuer=ISSUER_NAME, valid_until=NOW + 365 * 86400)
    for order in ([old, renewed], [renewed, old]):
        assert Verifier(TrustStore(order)).check(text, NOW).accepted
    # Both refuse: the first entry's reason is given.
    v = Verifier(TrustStore([old, IssuerKey.from_raw(raw, issuer="X")])).check(text, NOW)
    assert v.reason is Reason.KEY_NOT_VALID


def test_malformed_claims_after_a_valid_signature(issuer_key: Ed25519PrivateKey,
                                                  verifier: Verifier, issuer: Issuer) -> None:
    from passgate.passes import cose

    payload = cose.dumps({1: ISSUER_NAME})  # signed, but claims missing
    raw = cose.encode_sign1(payload, issuer_key.sign, {1: -8, 4: issuer.kid})
    v = verifier.check("PG1:" + base45.encode(raw), NOW)
    assert v.reason is Reason.MALFORMED and "missing" in v.detail and v.kid == issuer.kid.hex()


def test_trust_folder_end_to_end(tmp_path: Path, issuer_key: Ed25519PrivateKey, text: str) -> None:
    (tmp_path / "city.pub").write_bytes(keys.public_pem(issuer_key))
    (tmp_path / "city.toml").write_text(
        f'name = "{ISSUER_NAME}"\nvalid_from = 2025-01-01T00:00:00Z\n'
        'zones = ["gate-1", "lobby"]\npurposes = ["shopping", "work"]\n')
    verifier = Verifier(TrustStore.from_dir(tmp_path))
    assert verifier.check(text, NOW, "gate-1").accepted
    (tmp_path / "revoked.txt").write_text(f"# revoked today\n\n{PASS_ID.hex()}\n")
    (tmp_path / "zones.toml").write_text('[zones.lobby]\npurposes = ["work"]\n')
    verifier = Verifier(TrustStore.from_dir(tmp_path))
    assert verifier.check(text, NOW, "gate-1").reason is Reason.REVOKED
    (tmp_path / "revoked.txt").write_text("")
    verifier = Verifier(TrustStore.from_dir(tmp_path))
    assert verifier.check(text, NOW, "lobby").reason is Reason.PURPOSE_NOT_ALLOWED
    assert verifier.check(text, NOW, "gate-1").accepted


@pytest.mark.parametrize("name", ["NN\u200bOV", "NNOV\u202e", "", "x" * 33, "A  B", 7])
def test_trust_folder_refuses_an_issuer_name_no_pass_can_carry(
        tmp_path: Path, issuer_key: Ed25519PrivateKey, name: object) -> None:
    """Spec 1.1: the key's name is in the iss name class, or the folder does not load."""
    from passgate.errors import TrustError

    (tmp_path / "city.pub").write_bytes(keys.public_pem(issuer_key))
    value = f'"{name}"' if isinstance(name, str) else str(name)
    (tmp_path / "city.toml").write_text(f"name = {value}\n", encoding="utf-8")
    with pytest.raises(TrustError, match="name must be"):
        TrustStore.from_dir(tmp_path)


def test_trust_folder_keys_sharing_a_kid_are_tried_in_file_name_order(
        tmp_path: Path, issuer_key: Ed25519PrivateKey, text: str) -> None:
    """Both entries deny: the first file's reason is the verdict's."""
    for stem, toml in (("a", "valid_until = 2000-01-01T00:00:00Z\n"), ("b", 'name = "Other"\n')):
        (tmp_path / f"{stem}.pub").write_bytes(keys.public_pem(issuer_key))
        (tmp_path / f"{stem}.toml").write_text(toml)
    trust = TrustStore.from_dir(tmp_path)
    assert [k.source.rsplit("/", 1)[-1] for k in trust.keys] == ["a.pub", "b.pub"]
    assert Verifier(trust).check(text, NOW).reason is Reason.KEY_NOT_VALID


def test_verdict_kid_is_the_protected_header_kid(verifier: Verifier, text: str) -> None:
    assert verifier.check(text, NOW).kid == parse_text(text).kid.hex()


def test_revocation_list_is_exact() -> None:
    """Membership equals a Python set's, for revoked ids, others, and a shared-prefix bucket."""
    import random

    rng = random.Random(5)
    revoked_ids = [rng.randbytes(12) for _ in range(20_000)] + [b"", b"x" * 32]
    others = [rng.randbytes(12) for _ in range(5_000)]
    revoked_set = set(revoked_ids)
    rl = RevocationList.from_pass_ids(revoked_ids + revoked_ids[:100])  # duplicates collapse
    assert len(rl) == len(revoked_set) and rl.nbytes >= 16 * len(rl)
    assert all(p in rl for p in revoked_ids)
    assert not any(p in rl for p in others if p not in revoked_set)
    assert "text" not in rl and None not in rl  # type: ignore[operator]
    again = RevocationList.from_packed(rl.packed())
    assert again.packed() == rl.packed() and all(p in again for p in revoked_ids[:500])
    empty = RevocationList.empty()
    assert len(empty) == 0 and PASS_ID not in empty


def test_revocation_packed_form_checked() -> None:
    from passgate.errors import TrustError
    from passgate.passes.revocation import digest

    a, b = sorted([digest(b"a" * 12), digest(b"b" * 12)])
    assert len(RevocationList.from_packed(a + b)) == 2
    for bad, why in [(b + a, "sorted"), (a + a, "sorted"), (a + b[:15], "multiple of 16")]:
        with pytest.raises(TrustError, match=why):
            RevocationList.from_packed(bad)
