"""Key files, key ids, weak-key refusal, and the Wycheproof and CCTV Ed25519 vectors.

The vectors run through the same two doors a pass's key and signature go through: the
trust-store loader (``IssuerKey.from_raw`` -> ``keys.check_public_point``) and the signature
check (``IssuerKey.verifies``). Counts are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from conftest import fixed_key, shared_vector
from passgate.errors import KeyFileError, TrustError
from passgate.passes import keys
from passgate.passes.truststore import IssuerKey, TrustStore

SPKI_ED25519_PREFIX = bytes.fromhex("302a300506032b6570032100")  # SubjectPublicKeyInfo header
IDENTITY = bytes.fromhex("01" + "00" * 31)  # the neutral point: y = 1
ORDER_2 = bytes.fromhex("ec" + "ff" * 30 + "7f")  # y = p - 1
ORDER_4 = bytes(32)  # y = 0
NON_CANONICAL_IDENTITY = bytes.fromhex("ee" + "ff" * 30 + "7f")  # y = p + 1, i.e. 1 again


def pem_of_raw(raw: bytes) -> bytes:
    der = SPKI_ED25519_PREFIX + raw
    body = base64.encodebytes(der).decode().replace("\n", "")
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n".encode()


def test_kid_is_first_8_bytes_of_sha256() -> None:
    raw = keys.raw_public(fixed_key("kid"))
    assert keys.kid_of(raw) == hashlib.sha256(raw).digest()[:8]
    assert IssuerKey.from_raw(raw).kid == keys.kid_of(raw)


@pytest.mark.parametrize("raw", [IDENTITY, ORDER_2, ORDER_4, NON_CANONICAL_IDENTITY],
                         ids=["identity", "order-2", "order-4", "non-canonical"])
def test_weak_points_refused_loudly(raw: bytes) -> None:
    with pytest.raises(KeyFileError, match="refused: not a canonical prime-order Ed25519 point"):
        IssuerKey.from_raw(raw, source="issuer-x.pub")
    with pytest.raises(KeyFileError, match="^issuer-x.pub: refused"):
        keys.check_public_point(raw, "issuer-x.pub")


@pytest.mark.parametrize("raw", [b"", b"\x01" * 31, b"\x01" * 33])
def test_wrong_length_refused(raw: bytes) -> None:
    with pytest.raises(KeyFileError, match="32 bytes"):
        keys.check_public_point(raw)


def test_identity_key_would_verify_anything_without_the_check() -> None:
    """Why the check exists: cryptography takes the identity point and a trivial signature."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    trivial = IDENTITY + bytes(32)  # R = identity, S = 0
    # Raises InvalidSignature if a future OpenSSL refuses it; then this premise is moot.
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(trivial, b"any pass at all")
    with pytest.raises(KeyFileError):
        IssuerKey.from_raw(IDENTITY)


# --- PEM path -----------------------------------------------------------------------------

def test_load_public_pem_refuses_identity_point(tmp_path: Path) -> None:
    path = tmp_path / "evil.pub"
    path.write_bytes(pem_of_raw(IDENTITY))
    with pytest.raises(KeyFileError, match=r"evil\.pub: refused"):
        keys.load_public(path)


def test_trust_folder_refuses_identity_point(tmp_path: Path) -> None:
    (tmp_path / "good.pub").write_bytes(keys.public_pem(fixed_key("good")))
    (tmp_path / "evil.pub").write_bytes(pem_of_raw(IDENTITY))
    with pytest.raises(TrustError, match=r"evil\.pub: refused"):
        TrustStore.from_dir(tmp_path)


def test_load_public_pem_round_trip(tmp_path: Path) -> None:
    key = fixed_key("pem")
    path = tmp_path / "issuer.pub"
    path.write_bytes(pem_of_raw(keys.raw_public(key)))
    assert keys.raw_public(keys.load_public(path)) == keys.raw_public(key)
    assert keys.public_pem(key) == path.read_bytes()


def test_load_public_refuses_other_key_types_and_garbage(tmp_path: Path) -> None:
    ec_pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    x_pub = x25519.X25519PrivateKey.generate().public_key()
    fmt = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    cases = {
        "ec.pub": (ec_pub.public_bytes(*fmt), "not an Ed25519 public key"),
        "x25519.pub": (x_pub.public_bytes(*fmt), "not an Ed25519 public key"),
        "truncated.pub": (pem_of_raw(b"\x01" * 5), "cannot read"),  # DER says 32 bytes
        "empty.pub": (b"", "cannot read"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(KeyFileError, match=message):
            keys.load_public(tmp_path / name)
    with pytest.raises(KeyFileError, match="cannot read"):
        keys.load_public(tmp_path / "missing.pub")


def test_new_keypair_mode_and_no_overwrite(tmp_path: Path) -> None:
    key_path, pub_path, kid = keys.new_keypair(tmp_path / "k", "issuer")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    private = keys.load_private(key_path)
    assert kid == keys.kid_of(keys.raw_public(private))
    assert keys.raw_public(keys.load_public(pub_path)) == keys.raw_public(private)
    with pytest.raises(KeyFileError, match="already exists"):
        keys.new_keypair(tmp_path / "k", "issuer")
    with pytest.raises(KeyFileError, match="not an Ed25519 private key|cannot read"):
        keys.load_private(pub_path)


class _DiskFull:
    """A file whose writes fail: the card fills (or dies) while a key is being written."""

    def __init__(self, f) -> None:
        self._f = f

    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def __getattr__(self, name: str):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def test_a_key_write_that_fails_leaves_no_key_never_a_short_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 point 4: keys are written whole or not at all (before, a failure or a kill
    between creating the file and writing it left a 0-byte key behind)."""
    import os

    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _DiskFull(real(fd, *a, **k)))
    with pytest.raises(OSError, match="No space"):
        keys.new_keypair(tmp_path, "device")
    monkeypatch.setattr(os, "fdopen", real)
    assert list(tmp_path.iterdir()) == []  # no key, no public half, no temporary file
    key_path, pub_path, _ = keys.new_keypair(tmp_path, "device")  # and it can be made now
    assert keys.load_private(key_path) and keys.load_public(pub_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_verifies_never_raises() -> None:
    key = fixed_key("never raises")
    ik = IssuerKey.from_raw(keys.raw_public(key))
    sig = key.sign(b"m")
    assert ik.verifies(b"m", sig)
    for bad in (sig[:-1], sig + b"\0", b"", sig[:32]):
        assert not ik.verifies(b"m", bad)
    assert not ik.verifies(b"m", bytearray(sig))  # type: ignore[arg-type]
    assert not ik.verifies("m", sig)  # type: ignore[arg-type]


# --- Wycheproof ---------------------------------------------------------------------------

def test_wycheproof_ed25519() -> None:
    data = json.loads(shared_vector("ed25519/wycheproof_ed25519_test.json").read_text())
    counts = {"valid": 0, "invalid": 0}
    wrong = []
    groups = 0
    for group in data["testGroups"]:
        issuer_key = IssuerKey.from_raw(bytes.fromhex(group["publicKey"]["pk"]))  # must load
        groups += 1
        for test in group["tests"]:
            ok = issuer_key.verifies(bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
            counts[test["result"]] += 1
            if ok != (test["result"] == "valid"):
                wrong.append((test["tcId"], test["result"], test["comment"]))
    total = counts["valid"] + counts["invalid"]
    print(f"\nwycheproof ed25519: {groups} keys loaded, {total} tests: "
          f"{counts['valid']} valid verified, {counts['invalid']} invalid refused, "
          f"{len(wrong)} wrong")
    assert total == data["numberOfTests"]
    assert not wrong


# --- CCTV ---------------------------------------------------------------------------------

WEAK_A = {"low_order_A", "non_canonical_A"}


def test_cctv_ed25519_weak_keys_refused_at_load() -> None:
    vectors = json.loads(shared_vector("ed25519/cctv_ed25519vectors.json").read_text())
    refused: dict[str, str] = {}
    loaded: dict[str, IssuerKey] = {}
    for v in vectors:
        if v["key"] in refused or v["key"] in loaded:
            continue
        try:
            loaded[v["key"]] = IssuerKey.from_raw(bytes.fromhex(v["key"]), source="cctv")
        except KeyFileError as exc:
            refused[v["key"]] = str(exc)
    flagged = [v for v in vectors if WEAK_A & set(v.get("flags") or ())]
    mixed = [v for v in vectors if "low_order_component_A" in (v.get("flags") or ())
             and not WEAK_A & set(v["flags"])]
    clean = [v for v in vectors if not any(f.endswith("_A") for f in v.get("flags") or ())]

    # Every key flagged low-order or non-canonical is refused, with the loud message.
    assert flagged and all(v["key"] in refused for v in flagged)
    assert all("refused: not a canonical prime-order Ed25519 point" in refused[v["key"]]
               for v in flagged)
    # Stricter than asked: mixed-order keys (a small-order component) are refused too.
    assert all(v["key"] in refused for v in mixed)
    # And no good key is lost: every key without an *_A flag loads.
    assert all(v["key"] in loaded for v in clean)

    under_loaded = [v for v in vectors if v["key"] in loaded]
    verified = [v for v in under_loaded
                if loaded[v["key"]].verifies(v["msg"].encode(), bytes.fromhex(v["sig"]))]
    accepted = len(verified)
    # Strict RFC 8032 verification: a signature whose R is low-order, non-canonical or has a
    # low-order component is refused; exactly the unflagged vectors verify.
    assert under_loaded and verified == [v for v in under_loaded if not v.get("flags")]
    print(f"\ncctv ed25519: {len(vectors)} vectors, {len(refused) + len(loaded)} distinct keys; "
          f"{len(flagged)} vectors flagged low_order_A/non_canonical_A, all refused at load; "
          f"{len(mixed)} more with a low-order component, refused; {len(refused)} keys refused, "
          f"{len(loaded)} loaded; {accepted} of {len(vectors) - len(flagged) - len(mixed)} "
          f"signatures under loaded keys verify")


def test_missing_shared_vectors_skip_with_a_clear_message(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    import conftest

    monkeypatch.setattr(conftest, "SHARED_VECTORS", tmp_path / "absent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"absent.*\.\./shared/vectors"):
        shared_vector("ed25519/wycheproof_ed25519_test.json")
    monkeypatch.setenv("CI", "true")  # in CI the vectors are beside the clone: fail, not skip
    with pytest.raises(pytest.fail.Exception, match=r"absent"):
        shared_vector("ed25519/wycheproof_ed25519_test.json")
