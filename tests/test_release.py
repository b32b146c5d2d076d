"""Signed releases: only a key the roots authorise makes a release a device accepts.

Each rule of ``passgate.release.manifest`` broken once: an unauthorised signer, a tampered
manifest, an expired one, another architecture, a version below the roots' minimum, a
package longer or different than signed; and the bundle carrying the release keyring.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import NOW
from passgate.bundle import BundleRefused, load_installed, read_bundle
from passgate.errors import ReleaseRefused
from passgate.passes.cose import dumps, loads_strict
from passgate.release import ReleaseAuth, check_package, parse_version, verify_release
from passgate.release.version import version_key
from release_support import ReleaseFleet

DEB = b"!<arch>\n" + b"x" * 1000


@pytest.fixture
def rf() -> ReleaseFleet:
    return ReleaseFleet()


def test_a_release_signed_by_an_authorised_key_verifies(rf):
    rel = verify_release(rf.release("0.2.0", DEB), rf.auth(), now=NOW, arch="amd64")
    assert (rel.version, rel.arch, rel.length) == ("0.2.0", "amd64", len(DEB))
    assert rel.sha256 == hashlib.sha256(DEB).digest()
    assert check_package(rel, [DEB[:10], DEB[10:]]) == DEB


def test_a_release_signed_by_a_key_the_roots_do_not_authorise_is_refused(rf):
    stolen = Ed25519PrivateKey.generate()  # e.g. a key found on a collector
    with pytest.raises(ReleaseRefused) as err:
        verify_release(rf.release("0.2.0", DEB, key=stolen), rf.auth(), now=NOW)
    assert err.value.reason == "not_authorised"


def test_no_release_key_in_the_bundle_refuses_every_release(rf):
    with pytest.raises(ReleaseRefused) as err:
        verify_release(rf.release("0.2.0", DEB), None, now=NOW)
    assert err.value.reason == "not_authorised"


def test_a_changed_manifest_breaks_the_signature(rf):
    outer = loads_strict(rf.release("0.2.0", DEB), "t")
    doc = loads_strict(outer["manifest"], "t")
    doc["version"] = "9.9.9"
    forged = dumps(dict(outer, manifest=dumps(doc)))
    with pytest.raises(ReleaseRefused) as err:
        verify_release(forged, rf.auth(), now=NOW)
    assert err.value.reason == "unsigned"


def test_expired_wrong_arch_and_below_minimum_are_refused(rf):
    with pytest.raises(ReleaseRefused) as err:
        verify_release(rf.release("0.2.0", DEB, expires=NOW + 1), rf.auth(), now=NOW + 1)
    assert err.value.reason == "expired"
    with pytest.raises(ReleaseRefused) as err:
        verify_release(rf.release("0.2.0", DEB, arch="arm64"), rf.auth(), now=NOW, arch="amd64")
    assert err.value.reason == "wrong_arch"
    rf.min_version = "0.3.0"
    with pytest.raises(ReleaseRefused) as err:
        verify_release(rf.release("0.2.0", DEB), rf.auth(), now=NOW)
    assert err.value.reason == "below_minimum"
    assert verify_release(rf.release("0.3.0", DEB), rf.auth(), now=NOW).version == "0.3.0"


def test_a_package_longer_or_different_than_signed_is_refused(rf):
    rel = verify_release(rf.release("0.2.0", DEB), rf.auth(), now=NOW)
    with pytest.raises(ReleaseRefused) as err:
        check_package(rel, [DEB, b"more"])  # stops at the declared length: no endless data
    assert err.value.reason == "too_large"
    with pytest.raises(ReleaseRefused) as err:
        check_package(rel, [DEB[:-1] + b"y"])
    assert err.value.reason == "hash_mismatch"
    with pytest.raises(ReleaseRefused) as err:
        check_package(rel, [DEB[:-1]])
    assert err.value.reason == "hash_mismatch"


def test_an_oversized_or_garbled_release_file_is_refused(rf):
    for data, reason in ((b"\0" * 5000, "too_large"), (b"\xa0garbage", "malformed")):
        with pytest.raises(ReleaseRefused) as err:
            verify_release(data, rf.auth(), now=NOW)
        assert err.value.reason == reason


def test_versions_compare_numerically():
    assert version_key("0.10.0") > version_key("0.9.9")
    assert version_key("1.0") == version_key("1.0.0")
    for bad in ("1.2.3-rc1", "01.2", "", "1..2", "1.2.3.4.5", 3):
        with pytest.raises(ReleaseRefused):
            parse_version(bad)


def test_the_bundle_carries_the_release_keyring_under_the_roots_signatures(rf, tmp_path):
    rf.provision(tmp_path)
    _store, info = load_installed(tmp_path)
    assert info.releases == rf.auth()
    plain = read_bundle(rf.bundle(releases=False), rf.fleet.roots.set)
    assert plain.trust()[1].releases is None


def test_a_bundle_with_a_low_order_release_key_is_refused(rf):
    identity = bytes([1]) + bytes(31)  # the identity point: a trivial signature verifies
    with pytest.raises(BundleRefused):
        read_bundle(rf.bundle(auth=ReleaseAuth((identity,), "0.1.0")), rf.fleet.roots.set)


def test_release_keys_in_a_bundle_cannot_be_changed_without_the_roots(rf):
    data = bytearray(rf.bundle())
    raw = rf.auth().keys[0]
    at = bytes(data).index(raw)
    data[at] ^= 1  # another release key: the root signatures no longer cover the manifest
    with pytest.raises(BundleRefused):
        read_bundle(bytes(data), rf.fleet.roots.set)

