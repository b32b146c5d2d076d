"""Installing bundles: every refusal leaves the installed bundle active and says why."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import DAY, NOW, Fleet, Roots
from passgate.bundle import (
    BundleRefused,
    NoTrustData,
    Refusal,
    RootSet,
    install_bundle,
    load_installed,
    pinned_roots,
    record_refresh,
    trust_status,
)
from passgate.bundle.format import MAGIC, PREFIX
from passgate.bundle.install import BUNDLE_FILE
from passgate.errors import KeyFileError
from passgate.passes.keys import raw_public

REVOKED_V1 = [b"revoked-pass-0001"]


@pytest.fixture
def fleet():
    return Fleet()


@pytest.fixture
def device(tmp_path, fleet):
    """A provisioned device with bundle v5 installed."""
    state = tmp_path / "bundle"
    install_bundle(fleet.bundle(5, REVOKED_V1), state, NOW, roots=fleet.roots.set)
    return state


def assert_still_v5(state, before: bytes):
    """The previous bundle is still active, byte for byte, with no temp files left."""
    assert (state / BUNDLE_FILE).read_bytes() == before
    store, info = load_installed(state)
    assert info.version == 5 and b"revoked-pass-0001" in store.revoked
    assert not [p for p in os.listdir(state) if p.endswith(".tmp")]


def refused(state, data, reason: Refusal, now=NOW + 60, **kw) -> BundleRefused:
    before = (state / BUNDLE_FILE).read_bytes()
    with pytest.raises(BundleRefused) as exc:
        install_bundle(data, state, now, **kw)
    assert exc.value.reason is reason, exc.value
    assert "\n" not in str(exc.value)  # one readable line
    assert_still_v5(state, before)
    return exc.value


def test_install_and_load(device, fleet):
    store, info = load_installed(device)
    assert info.version == 5 and info.verified and len(info.signed_by) == 2
    assert info.installed_at == NOW == info.last_refresh
    assert pinned_roots(device) == fleet.roots.set
    assert b"revoked-pass-0001" in store.revoked and len(store.keys) == 1


def test_newer_version_replaces(device, fleet):
    info = install_bundle(fleet.bundle(6, []), device, NOW + 60)
    assert info.version == 6
    store, info = load_installed(device)
    assert info.version == 6 and b"revoked-pass-0001" not in store.revoked


def test_rollback_refused(device, fleet):
    e = refused(device, fleet.bundle(4), Refusal.ROLLBACK)
    assert "older than the installed v5" in str(e)


def test_rollback_refused_even_if_the_record_is_lost(device, fleet):
    (device / "installed.json").unlink()
    refused(device, fleet.bundle(4), Refusal.ROLLBACK)


def test_same_version_swap_refused(device, fleet):
    refused(device, fleet.bundle(5, [b"another-pass-2"]), Refusal.SAME_VERSION)


def test_same_bundle_again_is_accepted_but_not_a_refresh(device, fleet):
    info = install_bundle(fleet.bundle(5, REVOKED_V1), device, NOW + 3600)
    assert info.version == 5 and info.last_refresh == NOW
    assert load_installed(device)[1].last_refresh == NOW


def test_mix_and_match_refused(device, fleet):
    a = fleet.bundle(6, [b"pass-in-bundle-a"])
    b = fleet.bundle(6, [b"pass-in-bundle-b"])
    header_len = PREFIX.unpack(a[: PREFIX.size])[1]
    end = PREFIX.size + header_len
    # A's signed header with B's parts: same lengths, different revoked part.
    refused(device, a[:end] + b[end:], Refusal.PART_MISMATCH)
    # A's header with the parts of the installed v5 (other lengths): the same.
    v5 = (device / BUNDLE_FILE).read_bytes()
    v5_end = PREFIX.size + PREFIX.unpack(v5[: PREFIX.size])[1]
    refused(device, a[:end] + v5[v5_end:], Refusal.PART_MISMATCH)


def test_endless_data_refused(device, fleet):
    good = fleet.bundle(6)
    refused(device, good + b"\0" * 100, Refusal.TOO_LARGE)
    refused(device, good, Refusal.TOO_LARGE, max_bytes=len(good) - 1)


class EndlessStream(io.RawIOBase):
    """A sender that never stops: a valid bundle, then zeros forever. Counts what is read."""

    def __init__(self, head: bytes) -> None:
        self.head, self.read_total = head, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = len(buf)
        chunk = self.head[self.read_total : self.read_total + n]
        chunk += b"\0" * (n - len(chunk))
        buf[:n] = chunk
        self.read_total += n
        return n


def test_endless_stream_is_read_at_most_to_the_limit(device, fleet):
    good = fleet.bundle(6)
    limit = len(good) + 10
    stream = EndlessStream(good)
    refused(device, stream, Refusal.TOO_LARGE, max_bytes=limit)
    assert stream.read_total <= limit + 1


def test_declared_size_over_the_limit_is_refused_before_reading_parts(device, fleet):
    big = fleet.bundle(6, [b"%016d" % i for i in range(5000)])  # 80 kB revoked part
    stream = EndlessStream(big)
    refused(device, stream, Refusal.TOO_LARGE, max_bytes=64 * 1024)
    header_end = PREFIX.size + PREFIX.unpack(big[: PREFIX.size])[1]
    assert stream.read_total == header_end  # the parts were never read


def test_under_threshold_refused(device, fleet):
    refused(device, fleet.bundle(6, signers=fleet.roots.keys[:1]), Refusal.UNDER_THRESHOLD)
    strangers = [Ed25519PrivateKey.generate() for _ in range(3)]
    refused(device, fleet.bundle(6, signers=strangers), Refusal.UNDER_THRESHOLD)


def test_one_root_signing_twice_counts_once(device, fleet):
    from passgate.bundle.format import Signature, decode_header, encode_header

    data = fleet.bundle(6, signers=fleet.roots.keys[:1])
    header_len = PREFIX.unpack(data[: PREFIX.size])[1]
    _, payload, sigs = decode_header(data[PREFIX.size : PREFIX.size + header_len])
    doubled = encode_header(
        payload, [sigs[0], Signature(sigs[0].kid, sigs[0].protected, sigs[0].signature)]
    )
    forged = PREFIX.pack(MAGIC, len(doubled)) + doubled + data[PREFIX.size + header_len :]
    refused(device, forged, Refusal.UNDER_THRESHOLD)


def test_bad_signature_refused(device, fleet):
    data = bytearray(fleet.bundle(6))
    # Change the version inside the signed manifest: every signature breaks.
    at = data.index(b"gversion") + len(b"gversion")
    assert data[at] == 6
    data[at] = 7
    e = refused(device, bytes(data), Refusal.BAD_SIGNATURE)
    assert "do not verify" in str(e)


def test_expired_refused(device, fleet):
    refused(device, fleet.bundle(6, issued=NOW - 10 * DAY, expires=NOW - DAY), Refusal.EXPIRED)


def test_malformed_refused(device, fleet):
    refused(device, b"not a bundle at all", Refusal.MALFORMED)
    good = fleet.bundle(6)
    refused(device, good[:-5], Refusal.PART_MISMATCH)  # truncated in the last part
    refused(device, good[:20], Refusal.MALFORMED)  # truncated in the header


def test_weak_root_keys_refused():
    good = raw_public(Ed25519PrivateKey.generate())
    identity = bytes([1]) + bytes(31)  # the identity point: every signature would verify
    with pytest.raises(KeyFileError):
        RootSet(1, (good, identity))


def test_unprovisioned_device_needs_roots(tmp_path, fleet):
    with pytest.raises(BundleRefused) as exc:
        install_bundle(fleet.bundle(1), tmp_path / "new", NOW)
    assert exc.value.reason is Refusal.NO_ROOTS
    with pytest.raises(NoTrustData):
        load_installed(tmp_path / "new")


def test_provisioned_device_ignores_other_roots(device, fleet):
    other = Roots.make()
    refused(device, fleet.bundle(6), Refusal.ROOTS_MISMATCH, roots=other.set)


# -- root rotation -------------------------------------------------------------------------------
def test_root_rotation_forward_then_old_roots_refused(device, fleet):
    old, new = fleet.roots, Roots.make()
    # The old threshold alone cannot move the device to new roots...
    refused(
        device, fleet.bundle(6, signers=old.keys[:2], new_roots=new.set), Refusal.UNDER_THRESHOLD
    )
    # ...nor can the new keys alone.
    refused(
        device, fleet.bundle(6, signers=new.keys[:2], new_roots=new.set), Refusal.UNDER_THRESHOLD
    )
    # Old threshold + new threshold: accepted, the device now pins the new set.
    info = install_bundle(
        fleet.bundle(6, signers=old.keys[:2] + new.keys[:2], new_roots=new.set), device, NOW + 60
    )
    assert info.version == 6 and pinned_roots(device) == new.set
    # The old roots alone are refused from now on...
    with pytest.raises(BundleRefused) as exc:
        install_bundle(fleet.bundle(7, signers=old.keys), device, NOW + 120)
    assert exc.value.reason is Refusal.UNDER_THRESHOLD
    assert load_installed(device)[1].version == 6
    # ...and the new ones work.
    fleet.roots = new
    assert install_bundle(fleet.bundle(7), device, NOW + 180).version == 7


def test_rotation_interrupted_before_the_roots_file_is_finished_later(device, fleet):
    old, new = fleet.roots, Roots.make()
    install_bundle(
        fleet.bundle(6, signers=old.keys[:2] + new.keys[:2], new_roots=new.set), device, NOW
    )
    # Simulate a power cut between writing the bundle and the roots file.
    (device / "roots.toml").write_text(old.set.to_toml())
    fleet.roots = new
    assert install_bundle(fleet.bundle(7), device, NOW + 60).version == 7
    assert pinned_roots(device) == new.set


def test_weak_new_root_set_refused(device, fleet):
    new = Roots.make()
    data = fleet.bundle(6, signers=fleet.roots.keys[:2] + new.keys[:2], new_roots=new.set)
    at = data.index(new.set.keys[0])
    identity = bytes([1]) + bytes(31)  # a low-order point in the declared new root set
    e = refused(device, data[:at] + identity + data[at + 32 :], Refusal.MALFORMED)
    assert "new root set refused" in str(e)
    assert pinned_roots(device) == fleet.roots.set


# -- staleness ---------------------------------------------------------------------------------
def test_failed_refresh_does_not_bump_last_refresh(device, fleet):
    with pytest.raises(BundleRefused):
        install_bundle(fleet.bundle(4), device, NOW + 3 * DAY)
    _, info = load_installed(device)
    assert info.last_refresh == NOW
    status = trust_status(info, NOW + 3 * DAY, max_offline_s=2 * DAY)
    assert status.stale and status.message == "trust data 3 days old"


def test_recorded_refresh_keeps_it_fresh(device):
    record_refresh(device, NOW + 3 * DAY)
    _, info = load_installed(device)
    assert not trust_status(info, NOW + 3 * DAY + 60, max_offline_s=2 * DAY).stale


def test_expired_installed_bundle_still_loads_and_is_stale(device):
    store, info = load_installed(device)
    status = trust_status(info, NOW + 8 * DAY)
    assert status.stale and status.expired and status.why == "expired 1 day ago"
    assert len(store.keys) == 1


def test_tampered_installed_bundle_is_refused_at_load(device):
    path = device / BUNDLE_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleRefused) as exc:
        load_installed(device)
    assert exc.value.reason is Refusal.PART_MISMATCH


def test_transition_bundles_bring_stragglers_along(tmp_path, fleet):
    """After a rotation, bundles signed by both sets and declaring the new one serve devices
    on either side; a device that missed the rotation bundle still rotates."""
    old, new = fleet.roots, Roots.make()
    rotated, straggler = tmp_path / "rotated", tmp_path / "straggler"
    for dev in (rotated, straggler):
        install_bundle(fleet.bundle(5), dev, NOW, roots=old.set)
    both = old.keys[:2] + new.keys[:2]
    install_bundle(fleet.bundle(6, signers=both, new_roots=new.set), rotated, NOW)
    v7 = fleet.bundle(7, signers=both, new_roots=new.set)
    for dev in (rotated, straggler):
        assert install_bundle(v7, dev, NOW + 60).version == 7
        assert pinned_roots(dev) == new.set


def test_watcher_reloads_on_install_and_follows_refreshes(device, fleet, tmp_path):
    from passgate.bundle import BundleWatcher

    watcher = BundleWatcher(device)
    first = watcher.current()
    assert first.info.version == 5 and not first.missing
    assert watcher.current() is first  # nothing changed: no reload
    record_refresh(device, NOW + 2 * DAY)
    refreshed = watcher.current()
    assert refreshed.store is first.store and refreshed.info.last_refresh == NOW + 2 * DAY
    assert not refreshed.status(NOW + 4 * DAY, max_offline_s=3 * DAY).stale
    install_bundle(fleet.bundle(6), device, NOW + 60)
    assert watcher.current().info.version == 6
    assert "no trust data" in BundleWatcher(tmp_path / "empty").current().missing


def test_site_policy_reaches_the_checkpoint_through_its_config(tmp_path, fleet):
    """checkpoint.site selects the bundle's [fleet.sites.NAME]: wiring -> BundleTrust."""
    from passgate.bundle import CheckpointPolicy, FleetPolicy
    from passgate.checkpoint.wiring import make_trust
    from passgate.config.load import from_dict

    policy = FleetPolicy(
        CheckpointPolicy(clock="flag", max_offline_s=7 * DAY),
        sites={"hq": {"clock": "deny", "max_offline_s": DAY}},
        zones={"lab": {"clock": "flag"}},
    )
    state = tmp_path / "state"
    install_bundle(fleet.bundle(5, fleet=policy), state / "bundle", NOW, roots=fleet.roots.set)

    def view(zone="gate-1", **checkpoint):
        cfg = from_dict({"checkpoint": {"zone": zone, "state_dir": str(state), **checkpoint}})
        return make_trust(cfg, journal=None).current(NOW + 2 * DAY)

    at_hq, elsewhere, lab_at_hq = view(site="hq"), view(), view("lab", site="hq")
    assert at_hq.policy.clock == "deny" and at_hq.status.stale  # 2 days > hq's 1 day
    assert elsewhere.policy.clock == "flag" and not elsewhere.status.stale
    assert lab_at_hq.policy.clock == "flag"  # the zone's setting wins over the site's
    assert lab_at_hq.policy.max_offline_s == DAY  # ...and the site's over the fleet default


def test_power_cut_before_the_record_still_refuses_a_same_version_swap(device, fleet):
    """current.pgb is written before installed.json: a power cut between them leaves the record
    saying v5 while v6 is installed. Another v6 must still be refused, and v5 too."""
    old_record = (device / "installed.json").read_bytes()
    v6 = fleet.bundle(6)
    install_bundle(v6, device, NOW + 60)
    (device / "installed.json").write_bytes(old_record)  # the record write never happened
    installed = (device / BUNDLE_FILE).read_bytes()
    for data, reason in (
        (fleet.bundle(6, [b"another-pass-2"]), Refusal.SAME_VERSION),
        (fleet.bundle(5, REVOKED_V1), Refusal.ROLLBACK),
    ):
        with pytest.raises(BundleRefused) as exc:
            install_bundle(data, device, NOW + 120)
        assert exc.value.reason is reason
        assert (device / BUNDLE_FILE).read_bytes() == installed
    # A refresh counts for the bundle really installed, and re-installing it finishes the record.
    record_refresh(device, NOW + 3 * DAY)
    assert load_installed(device)[1].last_refresh == NOW + 3 * DAY
    assert install_bundle(v6, device, NOW + 3 * DAY + 60).version == 6
    _, info = load_installed(device)
    assert (info.version, info.installed_at, info.last_refresh) == (
        6,
        NOW + 3 * DAY + 60,
        NOW + 3 * DAY,
    )
