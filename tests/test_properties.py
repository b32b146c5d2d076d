"""Property tests (hypothesis): arbitrary input and mutated passes against ``Verifier.check``.

For every generated input: ``check`` returns (never raises), a deny carries a verifier
reason, nothing but an unchanged pass is accepted, and one check takes under 100 ms.

"Unchanged" is judged on the COSE bytes: a mutation of the text that decodes to the
identical COSE bytes (a trailing CR/LF, which scanners add and the text layer strips) is
the same pass and may be accepted; any other accepted mutation is a failure.

Timing: each check is timed with ``time.perf_counter``; one over 100 ms is re-timed twice and
the fastest of the three counts, so a scheduling stall on this shared machine is not taken
for a slow input (a genuinely slow input is slow every time). The largest per-example time
is printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

import time

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ISSUER_NAME, NOW, fixed_key
from passgate.issuing.issuer import Issuer
from passgate.passes import base45
from passgate.passes.keys import raw_public
from passgate.passes.truststore import IssuerKey, TrustStore
from passgate.passes.verdict import Reason
from passgate.passes.verify import Verifier

LIMIT_S = 0.100
VERIFIER_REASONS = {Reason.MALFORMED, Reason.UNSUPPORTED, Reason.UNKNOWN_KEY,
                    Reason.BAD_SIGNATURE, Reason.KEY_NOT_VALID, Reason.NOT_YET_VALID,
                    Reason.EXPIRED, Reason.REVOKED, Reason.WRONG_ZONE,
                    Reason.PURPOSE_NOT_ALLOWED}
SETTINGS = settings(max_examples=250, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

_KEY = fixed_key("passgate test issuer")
VERIFIER = Verifier(TrustStore([IssuerKey.from_raw(raw_public(_KEY), issuer=ISSUER_NAME)]))
_ISSUER = Issuer(_KEY, ISSUER_NAME)
VALID = [
    _ISSUER.issue("shopping", ["gate-1"], NOW - 600, 3 * 3600, hint="AB12"),
    _ISSUER.issue("work", ["gate-1", "lobby", "garage"], NOW - 600, 86400),
    _ISSUER.issue("dog_walk", ["gate-1"], NOW - 60, 3600, hint="ЖК-7781"),
]
VALID_COSE = {t: base45.decode(t[4:]) for t in VALID}
STATS = {"checks": 0, "max_s": 0.0, "accepted_mutations": 0}


def timed_check(text: object, zone: str | None = "gate-1"):
    """``VERIFIER.check`` with the time bound; returns the verdict."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        verdict = VERIFIER.check(text, NOW, zone)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - t0)
        if best < LIMIT_S:
            break
    STATS["checks"] += 1
    STATS["max_s"] = max(STATS["max_s"], best)
    assert best < LIMIT_S, f"check took {best * 1e3:.1f} ms for {text!r:.80}"
    if not verdict.accepted:
        assert verdict.reason in VERIFIER_REASONS and verdict.remaining_s is None
    return verdict


@pytest.fixture(scope="module", autouse=True)
def report_timing():
    yield
    print(f"\nproperties: {STATS['checks']} checks, slowest {STATS['max_s'] * 1e3:.2f} ms "
          f"(bound {LIMIT_S * 1e3:.0f} ms); accepted mutations, all identical COSE bytes: "
          f"{STATS['accepted_mutations']}")


def test_the_valid_passes_are_accepted() -> None:
    for text in VALID:
        assert timed_check(text).accepted


def cose_of(text: str) -> bytes | None:
    """The COSE bytes a text stands for, as the text layer would read them, or None."""
    text = text.rstrip("\r\n")  # spec 1.1: only trailing CR and LF are removed
    if not text.startswith("PG1:"):
        return None
    try:
        return base45.decode(text[4:])
    except ValueError:
        return None


def assert_unchanged_if_accepted(original: str, mutated_text: str, mutated_cose: bytes | None,
                                 zone: str | None = "gate-1") -> None:
    if timed_check(mutated_text, zone).accepted:
        assert mutated_cose == VALID_COSE[original], f"changed pass accepted: {mutated_text!r}"
        STATS["accepted_mutations"] += 1


# --- arbitrary input ----------------------------------------------------------------------

B45 = base45.ALPHABET


@SETTINGS
@given(st.text(max_size=1200))
def test_arbitrary_text(text: str) -> None:
    assert not timed_check(text).accepted


@SETTINGS
@given(st.binary(max_size=1200))
def test_arbitrary_bytes(data: bytes) -> None:
    assert not timed_check(data).accepted


@SETTINGS
@given(st.text(alphabet=B45, max_size=1100))
def test_arbitrary_base45_text(body: str) -> None:
    assert not timed_check("PG1:" + body).accepted


@SETTINGS
@given(st.binary(max_size=700))
def test_arbitrary_bytes_as_base45(data: bytes) -> None:
    assert not timed_check("PG1:" + base45.encode(data)).accepted


cbor_leaf = (st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=80) | st.text(max_size=20)
             | st.booleans() | st.none() | st.floats(allow_nan=False))
cbor_value = st.recursive(
    cbor_leaf,
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(st.integers(-70000, 70000) | st.text(max_size=4), inner, max_size=7)
    | st.builds(cbor2.CBORTag, st.sampled_from([1, 2, 18, 24, 28, 29, 99, 55799]), inner),
    max_leaves=25,
)


@SETTINGS
@given(st.lists(cbor_value, min_size=0, max_size=5), st.booleans())
def test_arbitrary_cbor_in_a_sign1_tag(items: list, canonical: bool) -> None:
    try:
        data = cbor2.dumps(cbor2.CBORTag(18, items), canonical=canonical)
    except (cbor2.CBOREncodeError, ValueError, TypeError, OverflowError):
        return  # not encodable (e.g. a bad CBORTag); nothing to check
    assert not timed_check("PG1:" + base45.encode(data)).accepted


# --- mutations of valid passes: text --------------------------------------------------------

@st.composite
def text_mutation(draw) -> tuple[str, str]:
    original = draw(st.sampled_from(VALID))
    chars = list(original)
    kind = draw(st.sampled_from(["replace", "truncate", "insert", "delete", "append"]))
    i = draw(st.integers(0, len(chars) - 1))
    alphabet = st.sampled_from(B45) | st.characters(max_codepoint=0x2FF)
    if kind == "replace":
        chars[i] = draw(alphabet)
    elif kind == "truncate":
        chars = chars[:i]
    elif kind == "insert":
        chars[i:i] = draw(st.lists(alphabet, min_size=1, max_size=4))
    elif kind == "delete":
        del chars[i:i + draw(st.integers(1, 6))]
    else:
        chars += draw(st.lists(alphabet | st.sampled_from("\r\n\t"), min_size=1, max_size=4))
    return original, "".join(chars)


@SETTINGS
@given(text_mutation())
def test_text_mutations(case: tuple[str, str]) -> None:
    original, mutated = case
    assert_unchanged_if_accepted(original, mutated, cose_of(mutated))


# --- mutations of valid passes: COSE bytes ----------------------------------------------------

@st.composite
def byte_mutation(draw) -> tuple[str, bytes]:
    original = draw(st.sampled_from(VALID))
    data = bytearray(VALID_COSE[original])
    kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "extend"]))
    i = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        data[i] = draw(st.integers(0, 255))  # may be the same value: then it is unchanged
    elif kind == "truncate":
        del data[i:]
    elif kind == "insert":
        data[i:i] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        del data[i:i + draw(st.integers(1, 8))]
    else:
        data += draw(st.binary(min_size=1, max_size=8))
    return original, bytes(data)


@SETTINGS
@given(byte_mutation())
def test_cose_byte_mutations(case: tuple[str, bytes]) -> None:
    original, data = case
    assert_unchanged_if_accepted(original, "PG1:" + base45.encode(data), data)


# --- mutations of valid passes: decoded CBOR, re-encoded (no re-signing) ----------------------

@st.composite
def cbor_mutation(draw) -> tuple[str, bytes]:
    original = draw(st.sampled_from(VALID))
    prot, unprot, payload, signature = cbor2.loads(VALID_COSE[original]).value
    header, claims = cbor2.loads(prot), cbor2.loads(payload)
    target = draw(st.sampled_from(["claims", "header", "unprotected", "signature", "array",
                                   "tag"]))
    tag, items = 18, [prot, unprot, payload, signature]
    if target in ("claims", "header"):
        m = dict(claims if target == "claims" else header)
        action = draw(st.sampled_from(["set", "drop", "add"]))
        keys = sorted(m)
        if action == "set":
            m[draw(st.sampled_from(keys))] = draw(cbor_value)
        elif action == "drop":
            del m[draw(st.sampled_from(keys))]
        else:
            m[draw(st.integers(-70000, 70000) | st.text(max_size=3))] = draw(cbor_value)
        encoded = cbor2.dumps(m, canonical=draw(st.booleans()))
        items[2 if target == "claims" else 0] = encoded
    elif target == "unprotected":
        items[1] = draw(st.dictionaries(st.integers(-10, 10), cbor_value, min_size=1, max_size=3)
                        | cbor_value)
    elif target == "signature":
        items[3] = draw(st.binary(min_size=0, max_size=70)
                        | st.just(signature[:-1] + bytes([signature[-1] ^ 0x80])))
    elif target == "array":
        order = draw(st.permutations(range(4)))
        items = [items[j] for j in order] + draw(st.lists(cbor_value, max_size=1))
    else:
        tag = draw(st.sampled_from([16, 17, 96, 98, 61, 24]))
    try:
        data = cbor2.dumps(cbor2.CBORTag(tag, items), canonical=draw(st.booleans()))
    except (cbor2.CBOREncodeError, ValueError, TypeError, OverflowError):
        data = VALID_COSE[original][:-1]  # unencodable mutation: use a truncation instead
    return original, data


@SETTINGS
@given(cbor_mutation())
def test_cbor_structure_mutations(case: tuple[str, bytes]) -> None:
    original, data = case
    assert_unchanged_if_accepted(original, "PG1:" + base45.encode(data), data)


@SETTINGS
@given(st.sampled_from(VALID), st.sampled_from(["\r\n", "\n", "\r", "\r\n\r\n"]))
def test_line_endings_are_the_same_pass(original: str, ending: str) -> None:
    """The one text change that keeps the COSE bytes: scanner line endings. Accepted."""
    mutated = original + ending
    assert cose_of(mutated) == VALID_COSE[original]
    assert timed_check(mutated).accepted
