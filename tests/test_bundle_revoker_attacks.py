"""A stolen revocation key, and a malicious collector serving deltas (review 31).

The revocation key sits online and can only *add* revocations: it must not be able to
number its bundles out of the roots' reach, keep a device looking fresh, make the device
work for unsigned data, or double as a key of another role. Every refusal leaves the
installed files byte for byte as they were."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import replace

import pytest

from bundle_support import DAY, NOW
from passgate.bundle import (
    BundleRefused,
    FleetPolicy,
    Refusal,
    build_bundle,
    install_bundle,
    load_installed,
    trust_status,
)
from passgate.bundle.build import build_revocations
from passgate.bundle.delta import DELTA_MAGIC, apply_delta, make_delta
from passgate.bundle.format import (
    MAX_REVOCATION_STEPS,
    MAX_VERSION,
    REVOCATIONS_TYPE,
    Manifest,
    PartRef,
    Revoker,
    Signature,
    encode_header,
    signer_protected,
)
from passgate.bundle.install import BUNDLE_FILE, RECORD_FILE, REVOCATIONS_ISSUED_SKEW_S
from passgate.bundle.verify import read_bundle
from passgate.errors import TrustError
from passgate.passes.cose import dumps
from passgate.passes.keys import raw_public
from test_bundle_delta import REVOKER, City, forged, ids, installed, packed, snapshot


def refused_install(reason: Refusal, d, data: bytes, now: float = NOW + 120) -> None:
    before = snapshot(d)
    with pytest.raises(BundleRefused) as exc:
        install_bundle(data, d, now)
    assert exc.value.reason is reason, exc.value
    assert snapshot(d) == before


# --- D1: the key's version numbers ---------------------------------------------------------


def test_a_stolen_revocation_key_cannot_jump_to_the_last_version_in_a_full_bundle(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    refused_install(Refusal.BEYOND_REVOKER, d, forged(city, v1, MAX_VERSION))
    refused_install(Refusal.BEYOND_REVOKER, d, forged(city, v1, 2 + MAX_REVOCATION_STEPS))
    # the last version the key may number on anchor v1 installs (a full bundle may catch up)
    assert install_bundle(forged(city, v1, 1 + MAX_REVOCATION_STEPS), d, NOW + 120).version \
        == 1 + MAX_REVOCATION_STEPS


def test_the_roots_next_bundle_installs_over_any_number_the_key_chose(tmp_path):
    # Installed: revocations at the highest number the key may give on anchor v1. The roots'
    # v2 (which withdraws the key) is judged against the root bundle in force, v1: it
    # installs, and the key's bundles on the old anchor are refused from then on.
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    high = forged(city, v1, 1 + MAX_REVOCATION_STEPS)
    install_bundle(high, d, NOW + 120)
    v2 = city.root(2, ids(3), revokers=())
    info = install_bundle(v2, d, NOW + 180)
    assert (info.version, info.kind) == (2, "passgate-bundle")
    assert load_installed(d)[1].version == 2
    refused_install(Refusal.NOT_AUTHORISED, d, forged(city, v1, 3), NOW + 240)
    refused_install(Refusal.NOT_AUTHORISED, d, high, NOW + 240)  # nor replayed
    # and the roots' own rollback protection still holds against v2
    refused_install(Refusal.ROLLBACK, d, v1, NOW + 240)


def test_a_revocations_v2_that_lands_first_does_not_block_the_roots_v2(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    apply_delta(make_delta(v1, city.revocations(v1, 2, ids(1))), d, NOW + 120)
    assert install_bundle(city.root(2, ids(4)), d, NOW + 180).kind == "passgate-bundle"


def test_the_root_bundle_under_installed_revocations_is_not_reinstalled(tmp_path):
    # Re-installing the anchor would drop what the key added: a rollback.
    city = City()
    v1 = city.root(1, ids(3))
    victim = ids(1)
    d = installed(city, tmp_path, v1)
    install_bundle(city.revocations(v1, 2, victim), d, NOW + 120)
    refused_install(Refusal.ROLLBACK, d, v1, NOW + 180)
    refused_install(Refusal.SAME_VERSION, d, city.root(1, ids(2)), NOW + 180)
    assert victim[0] in load_installed(d)[0].revoked


def test_a_revocations_bundle_on_a_newer_anchor_starts_the_chain_afresh(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    install_bundle(forged(city, v1, 9), d, NOW + 120)
    v5 = city.root(5, ids(3))
    info = install_bundle(city.revocations(v5, 6, ids(1)), d, NOW + 180)
    assert (info.version, info.anchor_version) == (6, 5)


def test_the_builder_and_the_cli_build_only_the_next_version(tmp_path, capsys):
    from passgate.bundle.install import ROOTS_FILE
    from passgate.cli import main
    from passgate.passes.keys import write_private

    now = int(time.time())  # the CLI signs at the real time
    city = City(revoker_expires=now + DAY)
    v1 = build_bundle(city.fleet.content(ids(3)), city.fleet.roots.keys[:2], 1, now - 60,
                      now + DAY, revokers=(city.revoker,))
    base = read_bundle(v1, city.fleet.roots.set)
    for version in (1, 3, MAX_VERSION - 1):
        with pytest.raises(TrustError, match="base's \\+ 1"):
            build_revocations(base, REVOKER, packed(ids(1)), version, now)
    d = tmp_path / "dev"
    install_bundle(v1, d, now, roots=city.fleet.roots.set)
    (tmp_path / "v1.pgb").write_bytes(v1)
    write_private(tmp_path / "rk.key", REVOKER)
    (tmp_path / "new.txt").write_text(os.urandom(12).hex() + "\n")
    args = ["bundle", "revoke", "--base", str(tmp_path / "v1.pgb"), "--roots",
            str(d / ROOTS_FILE), "--key", str(tmp_path / "rk.key"), "--revoked",
            str(tmp_path / "new.txt"), "--out", str(tmp_path / "v.pgb")]
    assert main([*args, "--version", "1000000"]) != 0
    assert not (tmp_path / "v.pgb").exists()
    assert main([*args, "--version", "2"]) == 0
    assert read_bundle(tmp_path / "v.pgb", city.fleet.roots.set).version == 2


def test_the_agent_does_not_turn_a_refused_skip_into_a_full_install(tmp_path):
    # The delta that skips is refused; the agent's fallback to the full bundle must refuse
    # the same skip (it installed it before).
    pytest.importorskip("flask")
    from passgate.cli import main
    from sync_support import LiveCollector
    from test_sync_deltas import Chain, enrol, fill_journal, publish

    state, sync = tmp_path / "state", tmp_path / "sync"
    fill_journal(state / "journal.sqlite", 1)
    assert main(["keys", "new-device", "--out", str(sync)]) == 0
    args = ["--state", str(state), "--sync-dir", str(sync)]
    c = Chain()
    install_bundle(c.v1, state / "bundle", c.now, roots=c.fleet.roots.set)
    skip = _chain_forged(c, c.v1, 1_000_000)
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        publish(collector, c.v1, 1)
        publish(collector, skip, 1_000_000)
        enrol(collector, args)
        main(["sync", "--once", *args])
    assert load_installed(state / "bundle")[1].version == 1


def test_the_agent_reaches_a_root_bundle_numbered_below_the_installed_revocations(tmp_path):
    # The device holds revocations v9 on anchor v1 (within the key's reach); the collector
    # publishes only the roots' v2, which withdraws the key. The collector's newest is below
    # the installed number: no refresh, but the agent fetches that newest and it installs.
    pytest.importorskip("flask")
    from passgate.cli import main
    from sync_support import LiveCollector
    from test_sync_deltas import Chain, enrol, fill_journal, publish

    state, sync = tmp_path / "state", tmp_path / "sync"
    fill_journal(state / "journal.sqlite", 1)
    assert main(["keys", "new-device", "--out", str(sync)]) == 0
    args = ["--state", str(state), "--sync-dir", str(sync)]
    c = Chain()
    install_bundle(c.v1, state / "bundle", c.now, roots=c.fleet.roots.set)
    install_bundle(_chain_forged(c, c.v1, 9), state / "bundle", c.now + 1)
    v2 = build_bundle(c.fleet.content(c.old), c.fleet.roots.keys[:2], 2, c.now - 60,
                      c.now + 86400)
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        publish(collector, v2, 2)
        enrol(collector, args)
        assert main(["sync", "--once", *args]) == 0
    _, info = load_installed(state / "bundle")
    assert (info.version, info.kind, info.revokers) == (2, "passgate-bundle", ())


def _chain_forged(c, base: bytes, version: int) -> bytes:
    """A revocations bundle a thief of test_sync_deltas' REVOKER signs, at any version."""
    from test_sync_deltas import REVOKER as CHAIN_REVOKER

    class Shim:
        fleet = c.fleet

    return forged(Shim(), base, version, key=CHAIN_REVOKER, issued=c.now - 30)


# --- D2: the key's issue time --------------------------------------------------------------


def _future(city: City, v1: bytes, issued: int) -> bytes:
    b = read_bundle(v1, city.fleet.roots.set)
    return forged(city, v1, 2, issued=issued, expires=b.manifest.expires)


def test_a_revocations_bundle_dated_ahead_is_refused(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    now = NOW + 120
    refused_install(Refusal.BEYOND_REVOKER, d, _future(city, v1, now + REVOCATIONS_ISSUED_SKEW_S
                                                       + 1), now)
    before = snapshot(d)
    with pytest.raises(BundleRefused) as exc:  # as a delta too, before any merging
        apply_delta(make_delta(v1, _future(city, v1, city.revoker.expires - 1)), d, now)
    assert exc.value.reason is Refusal.BEYOND_REVOKER and snapshot(d) == before
    # a small clock difference is fine
    assert install_bundle(_future(city, v1, now + REVOCATIONS_ISSUED_SKEW_S), d, now).version == 2


def test_a_revocations_bundle_never_counts_as_fresher_than_its_install(tmp_path):
    # The thief dates the bundle just inside the skew and cuts the network: with
    # max_offline_age 1 hour the checkpoint must be stale an hour after the install.
    city = City()
    fleet = FleetPolicy(replace(FleetPolicy().default, max_offline_s=3600))
    v1 = city.root(1, ids(3), fleet=fleet)
    d = installed(city, tmp_path, v1)
    now = NOW + 120
    install_bundle(_future(city, v1, now + REVOCATIONS_ISSUED_SKEW_S), d, now)
    _, info = load_installed(d)
    assert not trust_status(info, now + 3600).stale
    assert trust_status(info, now + 3601).stale
    # without an install time (record lost to a power cut) its issue time does not count
    (d / RECORD_FILE).unlink()
    _, info = load_installed(d)
    assert info.installed_at is None and trust_status(info, now + 1).stale
    # a root bundle's issue time counts as signed (unchanged)
    root_info = replace(info, kind="passgate-bundle")
    assert not trust_status(root_info, now + 1).stale


# --- D3: a malicious collector's delta -----------------------------------------------------


def _unsigned_delta(city: City, base: bytes, digests: bytes, kind: str = "passgate-bundle"):
    b = read_bundle(base, city.fleet.roots.set)
    refs = tuple(PartRef(r.name, r.length, r.sha256) for r in b.manifest.parts)
    m = Manifest(2, NOW, NOW + DAY, refs)
    kid = b"\x00" * 8
    header = encode_header(m.to_cbor(), [Signature(kid, signer_protected(kid), b"\x00" * 64)])
    doc = {"base": 1, "base_sha256": bytes.fromhex(b.manifest_sha256), "header": header,
           "merge": {"revoked": digests}, "parts": {}}
    return DELTA_MAGIC + dumps(doc)


def test_a_delta_header_is_verified_before_the_device_merges_its_digests(tmp_path, monkeypatch):
    import passgate.bundle.delta as delta_mod

    city = City()
    v1 = city.root(1, ids(100))
    d = installed(city, tmp_path, v1)
    junk = b"".join(sorted(os.urandom(16) for _ in range(5000)))
    merged: list[int] = []
    real = delta_mod.merge_digests
    monkeypatch.setattr(delta_mod, "merge_digests",
                        lambda a, s: merged.append(len(s)) or real(a, s))
    before = snapshot(d)
    with pytest.raises(BundleRefused) as exc:
        apply_delta(_unsigned_delta(city, v1, junk), d, NOW + 120)
    assert exc.value.reason in (Refusal.UNDER_THRESHOLD, Refusal.BAD_SIGNATURE)
    assert merged == [] and snapshot(d) == before  # no work on unsigned data


def test_a_signed_delta_cannot_carry_more_digests_than_its_target_declares(tmp_path, monkeypatch):
    import cbor2

    import passgate.bundle.delta as delta_mod

    city = City()
    v1 = city.root(1, ids(10))
    v2 = city.root(2, ids(11))
    d = installed(city, tmp_path, v1)
    doc = cbor2.loads(make_delta(v1, v2)[len(DELTA_MAGIC):])
    doc["merge"]["revoked"] = b"".join(sorted(os.urandom(16) for _ in range(1000)))
    merged: list[int] = []
    monkeypatch.setattr(delta_mod, "merge_digests", lambda a, s: merged.append(len(s)) or a)
    with pytest.raises(BundleRefused) as exc:
        apply_delta(DELTA_MAGIC + dumps(doc), d, NOW + 120)
    assert exc.value.reason is Refusal.PART_MISMATCH and merged == []


def test_a_revocations_delta_by_a_withdrawn_key_is_refused_before_merging(tmp_path, monkeypatch):
    import passgate.bundle.delta as delta_mod

    city = City()
    v1 = city.root(1, ids(3))
    v2 = city.root(2, ids(3), revokers=())
    d = installed(city, tmp_path, v1)
    install_bundle(v2, d, NOW + 120)
    delta = make_delta(v2, forged(city, v2, 3, {"added": packed(ids(500))}))
    merged: list[int] = []
    monkeypatch.setattr(delta_mod, "merge_digests", lambda a, s: merged.append(len(s)) or a)
    with pytest.raises(BundleRefused) as exc:
        apply_delta(delta, d, NOW + 180)
    assert exc.value.reason is Refusal.NOT_AUTHORISED and merged == []


# --- D4: one key, one role -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["issuer", "root"])
def test_a_revocation_key_that_is_also_an_issuer_or_root_key_is_refused(tmp_path, role):
    city = City()
    key = city.fleet.issuer if role == "issuer" else city.fleet.roots.keys[0]
    other = Revoker(raw_public(key), NOW + DAY)
    with pytest.raises(TrustError, match=f"also an? {role} key"):  # the builder refuses it
        city.root(1, ids(3), revokers=(other,))
    # and the device, if someone signs one anyway
    good = city.root(1, ids(3))
    hostile = _with_revokers(city, good, (other,))
    with pytest.raises(BundleRefused) as exc:
        install_bundle(hostile, tmp_path / "dev", NOW + 60, roots=city.fleet.roots.set)
    assert exc.value.reason is Refusal.MALFORMED and f"also a{'n' if role == 'issuer' else ''}" \
        in str(exc.value)
    assert not (tmp_path / "dev" / BUNDLE_FILE).exists()


def _with_revokers(city: City, data: bytes, revokers) -> bytes:
    """``data`` re-signed by the roots with other revokers (what a careless root holder's
    hand-made tool might sign; build_bundle refuses)."""
    from passgate.bundle.format import MAGIC, PREFIX, body_protected, sig_structure
    from passgate.passes.keys import kid_of

    b = read_bundle(data, city.fleet.roots.set)
    payload = replace(b.manifest, revokers=tuple(revokers)).to_cbor()
    sigs = []
    for key in city.fleet.roots.keys[:2]:
        kid = kid_of(raw_public(key))
        prot = signer_protected(kid)
        sigs.append(Signature(kid, prot, key.sign(sig_structure(body_protected(), prot,
                                                                 payload))))
    header = encode_header(payload, sigs)
    return b"".join([PREFIX.pack(MAGIC, len(header)), header,
                     *(b.parts[r.name] for r in b.manifest.parts)])


# --- the false tamper warning ----------------------------------------------------------------


def test_installing_over_a_revocations_bundle_logs_no_false_tamper_warning(tmp_path, caplog):
    city = City()
    v1 = city.root(1, ids(3))
    v2 = city.revocations(v1, 2, ids(1))
    d = installed(city, tmp_path, v1)
    apply_delta(make_delta(v1, v2), d, NOW + 120)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        apply_delta(make_delta(v2, city.revocations(v2, 3, ids(1))), d, NOW + 180)
        install_bundle(city.root(4, ids(3)), d, NOW + 240)
    assert "does not verify against the pinned roots" not in caplog.text


def test_a_real_mismatch_under_a_revocations_bundle_is_still_reported(tmp_path, caplog):
    # The installed revocations bundle's anchor no longer meets the pinned roots (the file
    # was swapped): the warning stays.
    city, other = City(), City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    install_bundle(city.revocations(v1, 2, ids(1)), d, NOW + 120)
    o1 = other.root(1, ids(3))
    (d / BUNDLE_FILE).write_bytes(other.revocations(o1, 2, ids(1)))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert install_bundle(city.root(3, ids(3)), d, NOW + 180).version == 3
    assert "does not verify against the pinned roots" in caplog.text


# --- the install record --------------------------------------------------------------------


def test_a_power_cut_after_a_root_bundle_numbered_below_the_revocations_loses_nothing(tmp_path):
    # root v3 over revocations v9: the file is written, the record still says v9. The
    # record's order is (root version, version), so v3 counts as installed: v3 again is a
    # no-op, v2 a rollback, and the old anchor's revocations are refused.
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    v9 = forged(city, v1, 9)
    install_bundle(v9, d, NOW + 120)
    record = (d / RECORD_FILE).read_bytes()
    v3 = city.root(3, ids(3))
    install_bundle(v3, d, NOW + 180)
    (d / RECORD_FILE).write_bytes(record)  # the power cut
    refused_install(Refusal.ROLLBACK, d, city.root(2, ids(3)), NOW + 240)
    refused_install(Refusal.NOT_AUTHORISED, d, forged(city, v1, 10), NOW + 240)
    assert install_bundle(v3, d, NOW + 300).version == 3


def test_a_record_from_before_the_root_fields_still_judges_by_the_anchor(tmp_path):
    import json

    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    install_bundle(forged(city, v1, 9), d, NOW + 120)
    old = json.loads((d / RECORD_FILE).read_text())
    for k in ("root_version", "root_sha256"):
        del old[k]
    (d / RECORD_FILE).write_text(json.dumps(old))
    assert install_bundle(city.root(2, ids(3)), d, NOW + 180).version == 2


def test_the_revocations_part_hashes_are_those_the_key_signed(tmp_path):
    # sanity for the helpers above: a forged bundle is a well-formed revocations bundle
    city = City()
    v1 = city.root(1, ids(3))
    b = read_bundle(forged(city, v1, 2), city.fleet.roots.set)
    assert b.manifest.kind == REVOCATIONS_TYPE
    assert all(hashlib.sha256(b.parts[r.name]).digest() == r.sha256 for r in b.manifest.parts)
