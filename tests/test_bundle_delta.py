"""Deltas and revocation keys: kilobytes instead of the whole bundle, and a stolen revocation
key can only deny. Every refusal leaves the installed files byte for byte as they were."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import DAY, NOW, Fleet
from passgate.bundle import (
    BundleRefused,
    FleetPolicy,
    Refusal,
    build_bundle,
    install_bundle,
    load_installed,
)
from passgate.bundle.build import build_revocations
from passgate.bundle.delta import DELTA_MAGIC, apply_chain, apply_delta, encode_chain, make_delta
from passgate.bundle.format import (
    MAGIC,
    PREFIX,
    REVOCATION_PARTS,
    REVOCATIONS_TYPE,
    Manifest,
    PartRef,
    Revoker,
    Signature,
    body_protected,
    encode_header,
    sig_structure,
    signer_protected,
)
from passgate.bundle.install import BUNDLE_FILE, RECORD_FILE, ROOTS_FILE
from passgate.bundle.parts import encode_fleet, encode_issuers, encode_policy
from passgate.bundle.verify import read_bundle
from passgate.passes.cose import dumps
from passgate.passes.keys import kid_of, raw_public
from passgate.passes.purposes import PurposeTable
from passgate.passes.revocation import RevocationList, digest
from passgate.passes.truststore import IssuerKey

REVOKER = Ed25519PrivateKey.generate()


def ids(n: int, tag: bytes = b"") -> list[bytes]:
    return [tag + os.urandom(12 - len(tag)) for _ in range(n)]


def packed(pass_ids: list[bytes]) -> bytes:
    return b"".join(digest(i) for i in pass_ids)


class City:
    """A fleet with one revocation key authorised until ``NOW + 2 days``."""

    def __init__(self, revoker_expires: int = NOW + 2 * DAY) -> None:
        self.fleet = Fleet()
        self.revoker = Revoker(raw_public(REVOKER), revoker_expires)

    def root(self, version: int, revoked: list[bytes], revokers=None, **kw) -> bytes:
        return build_bundle(
            self.fleet.content(revoked, **kw),
            self.fleet.roots.keys[:2],
            version,
            NOW,
            NOW + 7 * DAY,
            revokers=(self.revoker,) if revokers is None else revokers,
        )

    def revocations(self, base: bytes, version: int, new: list[bytes], key=REVOKER, **kw):
        verified = read_bundle(base, self.fleet.roots.set)
        return build_revocations(verified, key, packed(new), version, NOW + 60, **kw)


def snapshot(d):
    return {n: (d / n).read_bytes() for n in (BUNDLE_FILE, RECORD_FILE, ROOTS_FILE)}


def installed(city: City, tmp_path, data: bytes):
    d = tmp_path / "dev"
    install_bundle(data, d, NOW + 60, roots=city.fleet.roots.set)
    return d


def test_root_delta_rebuilds_the_full_bundle_byte_for_byte(tmp_path):
    city = City()
    old, new = ids(50), ids(20)
    v1, v2 = city.root(1, old), city.root(2, old + new)
    d = installed(city, tmp_path, v1)
    delta = make_delta(v1, v2)
    assert len(delta) < len(v2)
    info = apply_delta(delta, d, NOW + 120)
    assert info.version == 2
    assert (d / BUNDLE_FILE).read_bytes() == v2


def test_revocations_delta_gives_the_trust_data_of_the_full_bundle(tmp_path):
    city = City()
    old, new = ids(200), ids(30)
    v1 = city.root(1, old)
    v2_full = city.root(2, old + new)
    v2_rev = city.revocations(v1, 2, new)
    d = installed(city, tmp_path, v1)
    apply_delta(make_delta(v1, v2_rev), d, NOW + 120)
    assert (d / BUNDLE_FILE).read_bytes() == v2_rev
    store, info = load_installed(d)
    full, _ = read_bundle(v2_full, city.fleet.roots.set).trust()
    assert info.kind == REVOCATIONS_TYPE and info.version == 2 and info.anchor_version == 1
    assert store.revoked.packed() == full.revoked.packed()
    assert store.keys == full.keys
    assert list(store.purposes) == list(full.purposes)
    assert dict(store.zone_purposes) == dict(full.zone_purposes)
    assert all(i in store.revoked for i in new + old)


def test_a_day_of_10000_revocations_is_kilobytes_not_the_full_bundle(tmp_path):
    city = City()
    v1 = city.root(1, ids(20_000))
    v2 = city.revocations(v1, 2, ids(10_000))
    delta = make_delta(v1, v2)
    assert len(delta) < 10_000 * 16 + 4096  # the digests and two headers, nothing else
    assert len(delta) < len(v2) / 2


def test_a_chain_of_revocations_then_a_root_bundle(tmp_path):
    city = City()
    a, b, c = ids(10), ids(10), ids(10)
    v1 = city.root(1, a)
    v2 = city.revocations(v1, 2, b)
    v3 = city.revocations(v2, 3, c)
    v4 = city.root(4, a + b + c)
    d = installed(city, tmp_path, v1)
    chain = encode_chain([make_delta(v1, v2), make_delta(v2, v3), make_delta(v3, v4)])
    assert apply_chain(chain, d, NOW + 120).version == 4
    assert (d / BUNDLE_FILE).read_bytes() == v4


def test_a_full_revocations_bundle_installs_on_a_fresh_device(tmp_path):
    city = City()
    v1 = city.root(1, ids(5))
    new = ids(3)
    v2 = city.revocations(v1, 2, new)
    store, info = load_installed(installed(city, tmp_path, v2))
    assert info.version == 2 and all(i in store.revoked for i in new)


# --- attacks: a stolen revocation key ------------------------------------------------------


def forged(city: City, base: bytes, version: int, parts_change=None, key=REVOKER,
           base_field=None, expires=None, issued=NOW + 60) -> bytes:
    """A revocations bundle signed by ``key`` with arbitrary parts (the attacker's builder)."""
    b = read_bundle(base, city.fleet.roots.set)
    parts = {n: b.parts.get(n, b"") for n in REVOCATION_PARTS}
    parts.update(parts_change or {})
    refs = tuple(PartRef(n, len(parts[n]), hashlib.sha256(parts[n]).digest())
                 for n in REVOCATION_PARTS)
    m = Manifest(version, issued, expires or b.root_manifest.expires, refs,
                 kind=REVOCATIONS_TYPE, anchor=b.anchor_header,
                 base=base_field or (b.version, bytes.fromhex(b.manifest_sha256)))
    payload = m.to_cbor()
    raw = raw_public(key)
    prot = signer_protected(kid_of(raw))
    sig = Signature(kid_of(raw), prot, key.sign(sig_structure(body_protected(), prot, payload)))
    header = encode_header(payload, [sig])
    return b"".join([PREFIX.pack(MAGIC, len(header)), header,
                     *(parts[n] for n in REVOCATION_PARTS)])


def refused(reason: Refusal, d, delta: bytes, now: float = NOW + 120, apply=apply_delta):
    """``apply(delta, d, now)`` is refused for ``reason`` and leaves the files as they were."""
    before = snapshot(d)
    with pytest.raises(BundleRefused) as exc:
        apply(delta, d, now)
    assert exc.value.reason is reason, exc.value
    assert snapshot(d) == before


def test_revocation_key_cannot_remove_a_revocation(tmp_path):
    city = City()
    victim = ids(1)
    v1 = city.root(1, victim + ids(5))
    d = installed(city, tmp_path, v1)
    without = RevocationList.from_pass_ids(ids(5)).packed()
    refused(Refusal.BEYOND_REVOKER, d, make_delta(v1, forged(city, v1, 2, {"revoked": without})))
    assert victim[0] in load_installed(d)[0].revoked


def test_revocation_key_cannot_drop_what_an_earlier_delta_added(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    victim = ids(1)
    v2 = city.revocations(v1, 2, victim)
    d = installed(city, tmp_path, v1)
    apply_delta(make_delta(v1, v2), d, NOW + 120)
    v3 = forged(city, v2, 3, {"added": b""})
    refused(Refusal.BEYOND_REVOKER, d, make_delta(v2, v3))
    with pytest.raises(BundleRefused) as exc:  # nor as a full bundle
        install_bundle(v3, d, NOW + 120)
    assert exc.value.reason is Refusal.BEYOND_REVOKER


@pytest.mark.parametrize("part", ["issuers", "policy", "fleet"])
def test_revocation_key_cannot_change_issuers_policy_or_fleet(tmp_path, part):
    city = City()
    v1 = city.root(1, ids(3))
    changed = {  # a pass of another issuer admitted, a zone opened, offline age unlimited
        "issuers": encode_issuers([*load_installed_store(city, v1).keys, other_issuer()]),
        "policy": encode_policy(PurposeTable.default(), {"gate-9": frozenset({"work"})}),
        "fleet": encode_fleet(
            FleetPolicy(replace(FleetPolicy().default, max_offline_s=99_999_999))
        ),
    }[part]
    d = installed(city, tmp_path, v1)
    refused(Refusal.BEYOND_REVOKER, d, make_delta(v1, forged(city, v1, 2, {part: changed})))


def load_installed_store(city: City, data: bytes):
    return read_bundle(data, city.fleet.roots.set).trust()[0]


def other_issuer():
    return IssuerKey.from_public(Ed25519PrivateKey.generate().public_key(), issuer="forger")


def test_revocation_key_cannot_extend_the_expiry(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    refused(Refusal.BEYOND_REVOKER, d, make_delta(v1, forged(city, v1, 2, expires=NOW + 90 * DAY)))


def test_revocation_key_cannot_skip_or_roll_back_versions(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    refused(Refusal.BEYOND_REVOKER, d, make_delta(v1, forged(city, v1, 5)))
    v2 = city.revocations(v1, 2, ids(1))
    apply_delta(make_delta(v1, v2), d, NOW + 120)
    # a delta from v1 again (replayed) is for another base; a revocations "v2" over v2 too
    refused(Refusal.UNKNOWN_BASE, d, make_delta(v1, v2))
    refused(Refusal.UNKNOWN_BASE, d, make_delta(v1, city.revocations(v1, 2, ids(2))))


def test_a_delta_for_another_base_is_refused(tmp_path):
    city = City()
    v1, v1b = city.root(1, ids(3)), city.root(1, ids(4))
    d = installed(city, tmp_path, v1)
    refused(Refusal.UNKNOWN_BASE, d, make_delta(v1b, city.revocations(v1b, 2, ids(1))))
    refused(Refusal.UNKNOWN_BASE, d, make_delta(v1b, city.root(2, ids(3))))


def test_an_expired_revocation_key_is_refused(tmp_path):
    city = City(revoker_expires=NOW + 3600)
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    v2 = city.revocations(v1, 2, ids(1))
    refused(Refusal.REVOKER_EXPIRED, d, make_delta(v1, v2), now=NOW + 7200)
    apply_delta(make_delta(v1, v2), d, NOW + 120)  # while valid, the same delta installs


def test_a_de_authorised_revocation_key_is_refused(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    v2 = city.root(2, ids(3), revokers=())  # the roots withdraw the key
    d = installed(city, tmp_path, v1)
    apply_delta(make_delta(v1, v2), d, NOW + 120)
    refused(Refusal.NOT_AUTHORISED, d, make_delta(v2, forged(city, v2, 3)))
    # nor can it come back on the old anchor that still listed it
    with pytest.raises(BundleRefused) as exc:
        install_bundle(forged(city, v1, 3), d, NOW + 120)
    assert exc.value.reason is Refusal.NOT_AUTHORISED


def test_a_key_the_roots_never_authorised_is_refused(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    stranger = Ed25519PrivateKey.generate()
    refused(Refusal.NOT_AUTHORISED, d, make_delta(v1, forged(city, v1, 2, key=stranger)))


def test_a_delta_whose_parts_do_not_hash_is_refused(tmp_path):
    city = City()
    old = ids(3)
    v1, v2 = city.root(1, old), city.root(2, old + ids(2))
    d = installed(city, tmp_path, v1)
    doc = cbor2.loads(make_delta(v1, v2)[len(DELTA_MAGIC):])
    digests = bytearray(doc["merge"]["revoked"])
    digests[-1] ^= 1
    doc["merge"]["revoked"] = bytes(digests)
    refused(Refusal.PART_MISMATCH, d, DELTA_MAGIC + dumps(doc))


def test_a_broken_chain_stops_at_the_last_good_version(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    v2 = city.revocations(v1, 2, ids(1))
    v3 = city.revocations(v2, 3, ids(1))
    d = installed(city, tmp_path, v1)
    with pytest.raises(BundleRefused) as exc:
        apply_chain(encode_chain([make_delta(v1, v2), make_delta(v1, v3)]), d, NOW + 120)
    assert exc.value.reason is Refusal.UNKNOWN_BASE
    assert (d / BUNDLE_FILE).read_bytes() == v2
