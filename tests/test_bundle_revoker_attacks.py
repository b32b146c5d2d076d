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
from test_bundle_delta import REVOKER, City, forged, ids, installed, packed, refused, snapshot


def refused_install(reason: Refusal, d, data: bytes, now: float = NOW + 120) -> None:
    refused(reason, d, data, now, apply=install_bundle)


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


def test_the_roots_bundle_past_the_keys_reach_installs_over_any_number_it_chose(tmp_path):
    # Installed: revocations at the highest number the key may give on anchor v1. Versions
    # only go up, so the roots number the bundle that withdraws the key above the key's
    # reach (anchor + MAX_REVOCATION_STEPS, docs/trust.md): it installs, and the key's
    # bundles on the old anchor are refused from then on.
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    high = forged(city, v1, 1 + MAX_REVOCATION_STEPS)
    install_bundle(high, d, NOW + 120)
    refused_install(Refusal.ROLLBACK, d, city.root(2, ids(3), revokers=()), NOW + 150)
    past = 2 + MAX_REVOCATION_STEPS
    info = install_bundle(city.root(past, ids(3), revokers=()), d, NOW + 180)
    assert (info.version, info.kind) == (past, "passgate-bundle")
    # Nothing the key can number on anchor v1 comes after it (at most v1 + 10,000).
    refused_install(Refusal.ROLLBACK, d, forged(city, v1, 3), NOW + 240)
    refused_install(Refusal.ROLLBACK, d, high, NOW + 240)  # nor replayed
    refused_install(Refusal.ROLLBACK, d, v1, NOW + 240)


def test_a_superseded_root_bundle_cannot_unrevoke_what_the_key_added(tmp_path):
    # The roots sign v2 from the office list (k-of-n signatures take a while); meanwhile the
    # key publishes v2 (+b) and v3 (+c). The roots' v2 is genuine but superseded: served by
    # a malicious collector, it must not un-revoke b and c (review 34).
    city = City()
    a, b, c = ids(3, b"a"), ids(1, b"b"), ids(1, b"c")
    v1 = city.root(1, a)
    roots_v2 = city.root(2, a)
    r2 = city.revocations(v1, 2, b)
    r3 = city.revocations(r2, 3, c)
    d = installed(city, tmp_path, v1)
    install_bundle(r3, d, NOW + 120)
    refused_install(Refusal.ROLLBACK, d, roots_v2, NOW + 180)
    refused_install(Refusal.ROLLBACK, d, r2, NOW + 180)
    store = load_installed(d)[0]
    assert b[0] in store.revoked and c[0] in store.revoked
    # Nor can the key anchor a bundle of its own on that superseded root bundle (review 35).
    refused_install(Refusal.ROLLBACK, d, forged(city, roots_v2, 4), NOW + 180)
    refused_install(Refusal.ROLLBACK, d, forged(city, roots_v2, 9), NOW + 180)
    store = load_installed(d)[0]
    assert b[0] in store.revoked and c[0] in store.revoked
    # The roots' next bundle is numbered above what they saw published, and installs.
    assert install_bundle(city.root(4, a + b + c), d, NOW + 240).kind == "passgate-bundle"


def test_the_root_bundle_under_installed_revocations_is_not_reinstalled(tmp_path):
    # Re-installing the anchor would drop what the key added: a rollback.
    city = City()
    v1 = city.root(1, ids(3))
    victim = ids(1)
    d = installed(city, tmp_path, v1)
    install_bundle(city.revocations(v1, 2, victim), d, NOW + 120)
    refused_install(Refusal.ROLLBACK, d, v1, NOW + 180)
    refused_install(Refusal.ROLLBACK, d, city.root(1, ids(2)), NOW + 180)
    refused_install(Refusal.SAME_VERSION, d, city.root(2, ids(2)), NOW + 180)
    assert victim[0] in load_installed(d)[0].revoked


def test_a_revocations_bundle_on_a_newer_anchor_starts_the_chain_afresh(tmp_path):
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    install_bundle(forged(city, v1, 9), d, NOW + 120)
    refused_install(Refusal.ROLLBACK, d, city.revocations(city.root(5, ids(3)), 6, ids(1)),
                    NOW + 150)  # versions only go up, on a newer anchor too
    v10 = city.root(10, ids(3))
    info = install_bundle(city.revocations(v10, 11, ids(1)), d, NOW + 180)
    assert (info.version, info.anchor_version) == (11, 10)


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


def _device_on_v1(tmp_path):
    """A device with a journal, a device key and the chain's root v1 installed: (its state
    folder, the CLI's folder arguments, test_sync_deltas.Chain)."""
    pytest.importorskip("flask")
    from passgate.cli import main
    from test_sync_deltas import Chain, fill_journal

    state, sync = tmp_path / "state", tmp_path / "sync"
    fill_journal(state / "journal.sqlite", 1)
    assert main(["keys", "new-device", "--out", str(sync)]) == 0
    c = Chain()
    install_bundle(c.v1, state / "bundle", c.now, roots=c.fleet.roots.set)
    return state, ["--state", str(state), "--sync-dir", str(sync)], c


def test_the_agent_does_not_turn_a_refused_skip_into_a_full_install(tmp_path):
    # The delta that skips is refused; the agent's fallback to the full bundle must refuse
    # the same skip (it installed it before).
    from passgate.cli import main
    from sync_support import LiveCollector
    from test_sync_deltas import enrol, publish

    state, args, c = _device_on_v1(tmp_path)
    skip = _chain_forged(c, c.v1, 1_000_000)
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        publish(collector, c.v1, 1)
        publish(collector, skip, 1_000_000)
        enrol(collector, args)
        main(["sync", "--once", *args])
    assert load_installed(state / "bundle")[1].version == 1


def test_the_agent_reaches_the_roots_bundle_above_the_installed_revocations(tmp_path):
    # The device holds revocations v9 on anchor v1 (within the key's reach). The collector
    # publishes the roots' v2: below the installed number, no refresh and nothing fetched
    # (the device would refuse it as a rollback). The roots then publish v10 (above the
    # key's numbers), which withdraws the key: it installs.
    from passgate.cli import main
    from sync_support import LiveCollector
    from test_sync_deltas import enrol, publish

    state, args, c = _device_on_v1(tmp_path)
    install_bundle(_chain_forged(c, c.v1, 9), state / "bundle", c.now + 1)
    refreshed = load_installed(state / "bundle")[1].last_refresh
    v2 = build_bundle(c.fleet.content(c.old), c.fleet.roots.keys[:2], 2, c.now - 60,
                      c.now + 86400)
    v10 = build_bundle(c.fleet.content(c.old), c.fleet.roots.keys[:2], 10, c.now - 60,
                       c.now + 86400)
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        publish(collector, v2, 2)
        enrol(collector, args)
        assert main(["sync", "--once", *args]) == 0
        _, info = load_installed(state / "bundle")
        assert (info.version, info.last_refresh) == (9, refreshed)  # no refresh
        publish(collector, v10, 10)
        assert main(["sync", "--once", *args]) == 0
    _, info = load_installed(state / "bundle")
    assert (info.version, info.kind, info.revokers) == (10, "passgate-bundle", ())


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


def test_a_power_cut_after_the_roots_bundle_over_revocations_loses_nothing(tmp_path):
    # root v10 over revocations v9: the file is written, the record still says v9. The
    # header is the later: v10 counts as installed, v10 again is a no-op, an older root
    # bundle a rollback, and the old anchor's revocations are refused.
    city = City()
    v1 = city.root(1, ids(3))
    d = installed(city, tmp_path, v1)
    install_bundle(forged(city, v1, 9), d, NOW + 120)
    record = (d / RECORD_FILE).read_bytes()
    v10 = city.root(10, ids(3))
    install_bundle(v10, d, NOW + 180)
    (d / RECORD_FILE).write_bytes(record)  # the power cut
    refused_install(Refusal.ROLLBACK, d, city.root(8, ids(3)), NOW + 240)
    refused_install(Refusal.NOT_AUTHORISED, d, forged(city, v1, 11), NOW + 240)
    assert install_bundle(v10, d, NOW + 300).version == 10


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
    assert install_bundle(forged(city, v1, 10), d, NOW + 150).version == 10
    refused_install(Refusal.ROLLBACK, d, city.root(2, ids(3)), NOW + 180)
    assert install_bundle(city.root(11, ids(3)), d, NOW + 180).version == 11


def test_a_record_from_older_firmware_one_install_behind_does_not_lock_out_the_key(tmp_path):
    # Older firmware: installed.json has no root fields. A power cut after writing
    # revocations v3 (anchor v1) left the record at v2: the header is the later (review 34).
    import json

    city = City()
    v1 = city.root(1, ids(3))
    r2 = city.revocations(v1, 2, ids(1, b"x"))
    r3 = city.revocations(r2, 3, ids(1, b"y"))
    r4 = city.revocations(r3, 4, ids(1, b"z"))
    d = installed(city, tmp_path, v1)
    install_bundle(r2, d, NOW + 120)
    old = json.loads((d / RECORD_FILE).read_text())
    for k in ("root_version", "root_sha256"):
        old.pop(k, None)
    (d / BUNDLE_FILE).write_bytes(r3)  # the power cut: file written, record one behind
    (d / RECORD_FILE).write_text(json.dumps(old))
    assert install_bundle(r3, d, NOW + 180).version == 3  # finishes the record
    assert install_bundle(r4, d, NOW + 240).version == 4  # the key's next revocations


def test_a_damaged_bundle_file_does_not_block_the_keys_full_bundle(tmp_path):
    # SD card damage: no usable trust data. The key's next full bundle stands on its own
    # (anchor, key, only additions to the anchor) and brings it back (review 34).
    city = City()
    v1 = city.root(1, ids(3))
    r2 = city.revocations(v1, 2, ids(1, b"x"))
    r3 = city.revocations(r2, 3, ids(1, b"y"))
    d = installed(city, tmp_path, v1)
    install_bundle(r2, d, NOW + 120)
    (d / BUNDLE_FILE).write_bytes(b"garbage")
    assert install_bundle(r3, d, NOW + 180).version == 3


def test_the_normal_flow_installs_from_every_point_in_full_and_by_delta(tmp_path):
    # Roots v1, the key's v2 and v3, the roots' v4 (with the key's revocations), the key's
    # v5 on v4: from each point to each later one, in full and as a chain (review 34).
    from passgate.bundle.delta import apply_chain, encode_chain

    city = City()
    a, b, c, e = (ids(3, t) for t in (b"a", b"b", b"c", b"e"))
    v1 = city.root(1, a)
    r2 = city.revocations(v1, 2, b)
    r3 = city.revocations(r2, 3, c)
    v4 = city.root(4, a + b + c)
    r5 = city.revocations(v4, 5, e)
    seq = [v1, r2, r3, v4, r5]
    n = 0
    for i in range(len(seq)):
        for j in range(i + 1, len(seq)):
            for how in ("full", "chain"):
                n += 1
                d = tmp_path / f"d{n}"
                install_bundle(v1, d, NOW + 60, roots=city.fleet.roots.set)
                for k in range(1, i + 1):
                    install_bundle(seq[k], d, NOW + 60 + k)
                if how == "full":
                    info = install_bundle(seq[j], d, NOW + 120)
                else:
                    chain = encode_chain([make_delta(seq[k], seq[k + 1]) for k in range(i, j)])
                    info = apply_chain(chain, d, NOW + 120)
                assert info.version == j + 1, (i, j, how)
                store = load_installed(d)[0]
                want = [a, a + b, a + b + c, a + b + c, a + b + c + e][j]
                assert all(x in store.revoked for x in want)
                with pytest.raises(BundleRefused):  # nothing earlier goes back in
                    install_bundle(seq[i], d, NOW + 130)


def test_the_revocations_part_hashes_are_those_the_key_signed(tmp_path):
    # sanity for the helpers above: a forged bundle is a well-formed revocations bundle
    city = City()
    v1 = city.root(1, ids(3))
    b = read_bundle(forged(city, v1, 2), city.fleet.roots.set)
    assert b.manifest.kind == REVOCATIONS_TYPE
    assert all(hashlib.sha256(b.parts[r.name]).digest() == r.sha256 for r in b.manifest.parts)
