"""The pass-format vector suite (tests/vectors/passgate_vectors.json) through the verifier.

Each vector is a QR text, a checkpoint zone and an instant with the expected verdict and
reason; the suite has at least one vector per reason code the verifier produces, and no
negative vector may be accepted. The JSON is generated from fixed keys by
``tests/vectors/make_vectors.py``; a test checks the committed file is what it generates.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from passgate.bundle.policy import CheckpointPolicy
from passgate.checkpoint.decide import FRESH, decide
from passgate.clock.clock import ClockState, TimeReading
from passgate.issuing.issuer import Issuer
from passgate.passes.revocation import RevocationList
from passgate.passes.truststore import IssuerKey, TrustStore
from passgate.passes.verdict import Reason, Verdict
from passgate.passes.verify import Verifier
from passgate.util.timefmt import parse_instant

VECTOR_DIR = Path(__file__).with_name("vectors")
DOC = json.loads((VECTOR_DIR / "passgate_vectors.json").read_text())
VECTORS = DOC["vectors"]

VERIFIER_REASONS = {"valid", "malformed", "unsupported", "unknown_key", "bad_signature",
                    "key_not_valid", "not_yet_valid", "expired", "revoked", "wrong_zone",
                    "purpose_not_allowed",
                    # spec 1.2
                    "holder_mismatch", "live_code_stale", "live_code_future"}
POLICY_REASONS = {"live_code_required", "not_bound"}  # the checkpoint's binding policy
MALFORMED_FLAVOURS = {
    "malformed_wrong_prefix", "malformed_base45_lowercase", "malformed_base45_overflow",
    "malformed_trailing_bytes", "malformed_tag_17", "malformed_untagged",
    "malformed_array_of_3", "malformed_duplicate_claim", "malformed_mistyped_exp",
    "malformed_kid_unprotected_only", "malformed_oversized_signed", "unsupported_alg_es256",
    "unsupported_critical_header",
    # spec 1.1
    "valid_1024_chars_plus_lf", "malformed_leading_tab", "malformed_header_extra_label",
    "malformed_alg_in_unknown_tag", "malformed_crit_duplicate", "malformed_iat_after_exp",
    "malformed_hint_zero_width", "malformed_hint_bidi_override", "malformed_hint_not_nfc",
    "wrong_zone_limited_key_no_zone", "key_not_valid_at_valid_until",
    # spec 1.2
    "valid_live_code", "live_code_stale", "live_code_future", "holder_mismatch_other_phone",
    "holder_mismatch_moved_level_2", "malformed_live_code_unbound_pass", "malformed_cnf_y_int",
    "malformed_cnf_not_on_curve", "expired_live_code", "live_code_required", "not_bound",
}


def trust_from_doc(t: dict) -> TrustStore:
    def opt_time(meta: dict, name: str) -> int | None:
        return parse_instant(meta[name]) if name in meta else None

    def opt_set(meta: dict, name: str) -> frozenset[str] | None:
        return frozenset(meta[name]) if name in meta else None

    keys = [IssuerKey.from_raw(bytes.fromhex(k["public_hex"]), issuer=k["issuer"],
                               valid_from=opt_time(k, "valid_from"),
                               valid_until=opt_time(k, "valid_until"),
                               zones=opt_set(k, "zones"), purposes=opt_set(k, "purposes"),
                               source=k["name"])
            for k in t["keys"]]
    assert t["purposes"] == "default"
    revoked = RevocationList.from_pass_ids(bytes.fromhex(h) for h in t["revoked_hex"])
    zone_purposes = {z: frozenset(p) for z, p in t["zone_purposes"].items()}
    return TrustStore(keys, revoked, None, zone_purposes)


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier(trust_from_doc(DOC["trust"]), skew_s=DOC["trust"]["skew_s"],
                    live_window_s=DOC["trust"]["live_window_s"])


def judged(verifier: Verifier, vector: dict) -> Verdict:
    """The verifier's verdict, then the checkpoint's binding policy if the vector names one."""
    v = verifier.check(vector["text"], vector["at_s"], vector["zone"])
    if "policy" in vector:
        policy = CheckpointPolicy(holder_binding=tuple(vector["policy"]["holder_binding"]))
        v = decide(v, TimeReading(vector["at_s"], ClockState.TRUSTED), FRESH, False,
                   policy).verdict
    return v


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(verifier: Verifier, vector: dict) -> None:
    assert parse_instant(vector["at"]) == vector["at_s"]
    v = judged(verifier, vector)
    expect = vector["expect"]
    assert (v.result.value, v.reason.value) == (expect["verdict"], expect["reason"]), v.detail
    if expect["verdict"] == "accept":
        assert (v.remaining_s, v.purpose) == (expect["remaining_s"], expect["purpose"])
    assert expect.get("detail", "") in v.detail


def test_suite_coverage_and_no_negative_accepted(verifier: Verifier) -> None:
    reasons = Counter(v["expect"]["reason"] for v in VECTORS)
    assert set(reasons) >= VERIFIER_REASONS | POLICY_REASONS
    checkpoint_own = {"already_used", "clock_untrusted", "trust_stale", "journal_fault"}
    assert {r.value for r in Reason} - checkpoint_own <= VERIFIER_REASONS | POLICY_REASONS
    names = {v["name"] for v in VECTORS}
    assert names >= MALFORMED_FLAVOURS
    negatives = [v for v in VECTORS if v["expect"]["verdict"] == "deny"]
    accepted = [v["name"] for v in negatives
                if judged(verifier, v).accepted]
    print(f"\nvectors: {len(VECTORS)} ({len(VECTORS) - len(negatives)} positive, "
          f"{len(negatives)} negative); reasons {dict(sorted(reasons.items()))}; "
          f"negative vectors accepted: {len(accepted)}")
    assert accepted == []


def test_vectors_name_the_spec_version_the_document_states() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "pass-format.md").read_text(encoding="utf-8")
    assert f"spec version {DOC['spec_version']}," in doc.lower()


def test_oversized_vector_is_over_the_cap() -> None:
    big = next(v for v in VECTORS if v["name"] == "malformed_oversized_signed")
    assert len(big["text"]) > 1024


def load_generator():
    spec = importlib.util.spec_from_file_location("make_vectors", VECTOR_DIR / "make_vectors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_what_the_generator_makes() -> None:
    assert load_generator().build() == (VECTOR_DIR / "passgate_vectors.json").read_text(), (
        "run .venv/bin/python tests/vectors/make_vectors.py and commit the result")


def test_passgate_issuer_writes_the_generators_bytes() -> None:
    """The generator builds passes with cbor2 alone; passgate's issuer gives the same text."""
    gen = load_generator()
    valid = next(v for v in VECTORS if v["name"] == "valid")
    cti = gen.claims()[7]
    text = Issuer(gen.key("city"), "Test City").issue(
        "shopping", ["gate-1", "lobby"], gen.AT - gen.HOUR, 3 * gen.HOUR, hint="AB12",
        pass_id=cti)
    assert text == valid["text"]


def test_passgate_makes_the_generators_live_code() -> None:
    """Spec 1.2: the generator's bound pass and live code are what passgate's issuer and
    make_live_code write for the same fields (both sign deterministically)."""
    from passgate.passes import holder

    gen = load_generator()
    valid = next(v for v in VECTORS if v["name"] == "valid_live_code")
    cti = gen.claims(cnf=gen.cnf())[7]
    bound = Issuer(gen.key("city"), "Test City").issue(
        "shopping", ["gate-1", "lobby"], gen.AT - gen.HOUR, 3 * gen.HOUR, hint="AB12",
        pass_id=cti, holder_key=holder.compressed_point(gen.holder_key("phone")))
    assert holder.make_live_code(bound, gen.holder_key("phone"), gen.AT - 5, 17) == valid["text"]
