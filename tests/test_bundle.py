"""Bundle format, building from the operator's files, fleet policy and the pure decisions."""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import DAY, NOW, Fleet
from passgate.bundle import (
    BundleRefused,
    CheckpointPolicy,
    FleetPolicy,
    Refusal,
    build_bundle,
    clock_policy_decision,
    content_from_files,
    read_bundle,
    stale_policy_decision,
    trust_status,
)
from passgate.bundle.format import MAGIC, PART_NAMES, PREFIX, TAG_SIGN
from passgate.bundle.policy import TrustStatus, age_words
from passgate.clock.clock import ClockState, TimeReading
from passgate.errors import TrustError
from passgate.issuing.issuer import Issuer
from passgate.passes.keys import new_keypair
from passgate.passes.verdict import Reason
from passgate.passes.verify import Verifier

POLICY = """
[purposes.work]
code = 1
label = "Work"
max = ""

[purposes.shopping]
code = 2
label = "Shopping"
max = "3h"

[zones.gate-1]
purposes = ["work", "shopping"]

[zones.lab]
purposes = ["work"]

[fleet]
max_offline_age = "3d"
clock_policy = "deny"
stale_policy = "deny"
anti_passback = "15m"
anti_passback_purposes = { shopping = "1h" }

[fleet.sites.hq]
clock_policy = "flag"
max_offline_age = "1d"

[fleet.zones.lab]
stale_policy = "flag"
anti_passback = 0
"""


@pytest.fixture
def operator_files(tmp_path):
    """An issuers folder, a revocation list and a policy, as an operator keeps them."""
    issuers = tmp_path / "issuers"
    key_path, pub, kid = new_keypair(issuers, "city")
    pub.with_suffix(".toml").write_text('name = "city"\nzones = ["gate-1", "lab"]\n')
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("# revoked passes\n" + "\n".join(f"{i:024x}" for i in range(1, 11)) + "\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return issuers, revoked, policy, key_path


def test_build_from_files_round_trip(operator_files):
    issuers, revoked, policy, key_path = operator_files
    roots = [Ed25519PrivateKey.generate() for _ in range(2)]
    data = build_bundle(content_from_files(issuers, revoked, policy), roots, 3, NOW, NOW + 7 * DAY)
    bundle = read_bundle(data, None)
    assert not bundle.verified and bundle.version == 3
    store, info = bundle.trust()
    assert info.issuers == 1 and info.revoked == 10 and info.expires == NOW + 7 * DAY
    (key,) = store.keys
    assert key.issuer == "city" and key.zones == {"gate-1", "lab"}
    assert bytes.fromhex(f"{5:024x}") in store.revoked
    assert bytes.fromhex(f"{11:024x}") not in store.revoked
    assert store.zone_purposes == {"gate-1": {"work", "shopping"}, "lab": {"work"}}
    assert store.purposes.get("shopping").max_s == 3 * 3600
    assert info.fleet.for_checkpoint("gate-1").anti_passback_for("shopping") == 3600

    # The verifier works from the bundle's trust store as from a folder.
    issuer = Issuer.from_key_file(key_path, "city")
    text = issuer.issue(
        purpose="shopping", zones=["gate-1", "lab"], not_before=NOW, duration_s=3600
    )
    verifier = Verifier(store)
    assert verifier.check(text, NOW + 60, "gate-1").accepted
    lab = verifier.check(text, NOW + 60, "lab")
    assert lab.reason is Reason.PURPOSE_NOT_ALLOWED  # the lab admits work passes only


def test_build_is_deterministic(operator_files):
    issuers, revoked, policy, _ = operator_files
    roots = [Ed25519PrivateKey.generate() for _ in range(2)]
    content = content_from_files(issuers, revoked, policy)
    assert build_bundle(content, roots, 1, NOW, NOW + DAY) == build_bundle(
        content, list(reversed(roots)), 1, NOW, NOW + DAY
    )


def test_byte_layout_is_as_documented():
    fleet = Fleet()
    data = fleet.bundle(9, [b"one-pass-id-0001", b"two-pass-id-0002"])
    magic, header_len = PREFIX.unpack(data[:12])
    assert magic == MAGIC == b"PGBUNDL1"
    header = cbor2.loads(data[12 : 12 + header_len])
    assert header.tag == TAG_SIGN == 98
    body_protected, unprotected, payload, signatures = header.value
    assert cbor2.loads(body_protected) == {3: "application/x.passgate-bundle+cbor"}
    assert unprotected == {} and len(signatures) == 2
    for sig_prot, sig_unprot, sig in signatures:
        h = cbor2.loads(sig_prot)
        assert h[1] == -8 and len(h[4]) == 8 and sig_unprot == {} and len(sig) == 64
    manifest = cbor2.loads(payload)
    assert manifest["type"] == "passgate-bundle" and manifest["format"] == 1
    assert manifest["version"] == 9 and manifest["expires"] == NOW + 7 * DAY
    offset = 12 + header_len
    for name, part in zip(PART_NAMES, manifest["parts"], strict=True):
        assert part["name"] == name
        body = data[offset : offset + part["length"]]
        assert hashlib.sha256(body).digest() == part["sha256"]
        offset += part["length"]
    assert offset == len(data)
    revoked = manifest["parts"][1]
    assert revoked["length"] == 32  # two 16-byte digests


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda d: b"PGBUNDL2" + d[8:], Refusal.MALFORMED),
        (lambda d: d[:8] + (300_000).to_bytes(4, "big") + d[12:], Refusal.TOO_LARGE),
        (lambda d: d[:11], Refusal.MALFORMED),
        (lambda d: d[:12] + b"\xff" + d[13:], Refusal.MALFORMED),
    ],
    ids=["magic", "header-length", "short-prefix", "header-cbor"],
)
def test_malformed_bundles(mangle, reason):
    data = Fleet().bundle(1)
    with pytest.raises(BundleRefused) as exc:
        read_bundle(mangle(data), None)
    assert exc.value.reason is reason


def test_weak_issuer_key_in_a_bundle_is_refused():
    from passgate.bundle.parts import decode_issuers

    with pytest.raises(BundleRefused) as exc:
        decode_issuers(cbor2.dumps([{"key": bytes(32)}], canonical=True), "test")
    assert exc.value.reason is Refusal.MALFORMED


def test_policy_file_errors_name_the_problem(tmp_path, operator_files):
    issuers, revoked, _, _ = operator_files
    bad = tmp_path / "bad.toml"
    for text, words in [
        ("[fleet]\nclock_policy = 'maybe'\n", 'must be "deny" or "flag"'),
        ("[fleet]\nmax_offline_age = 'soon'\n", "max_offline_age"),
        ("[fleet]\nfavourite_colour = 'red'\n", "unknown setting"),
        ("[zones.gate-1]\npurposes = ['juggling']\n", "unknown purpose"),
        # A holder_binding naming no purpose would silently require nothing (issue 16 review):
        # a typo must stop the bundle at the desk, not let bare passes through at the door.
        ("[fleet]\nholder_binding = ['Work']\n", "holder_binding.*unknown purpose 'Work'"),
        ("[fleet.zones.gate-1]\nholder_binding = ['wrok']\n", "unknown purpose 'wrok'"),
        ("[fleet.sites.hq]\nholder_binding = ['juggling']\n", "unknown purpose 'juggling'"),
        # The same for a per-purpose anti-passback window: a typo would silently give that
        # purpose the general window (often none).
        ("[fleet.anti_passback_purposes]\ndogwalk = '30m'\n",
         "anti_passback_purposes.*unknown purpose 'dogwalk'"),
        ("[fleet.zones.gate-1.anti_passback_purposes]\nShopping = '1h'\n",
         "zones.gate-1.anti_passback_purposes.*unknown purpose 'Shopping'"),
        ("[something]\n", "unknown table"),
    ]:
        bad.write_text(text)
        with pytest.raises(TrustError, match=words):
            content_from_files(issuers, revoked, bad)


def test_policy_defaults_embed_the_purpose_table(operator_files):
    issuers, revoked, _, _ = operator_files
    content = content_from_files(issuers, None, None)
    assert content.purposes.get("dog_walk").max_s == 3600  # the default table, embedded
    assert len(content.revoked) == 0


def test_fleet_policy_resolution(operator_files):
    issuers, revoked, policy, _ = operator_files
    fleet = content_from_files(issuers, revoked, policy).fleet
    assert fleet.for_checkpoint("gate-1") == CheckpointPolicy(
        "deny", "deny", 3 * DAY, 900, fleet.default.anti_passback_purposes
    )
    hq = fleet.for_checkpoint("gate-1", site="hq")
    assert (hq.clock, hq.max_offline_s) == ("flag", DAY)
    lab = fleet.for_checkpoint("lab", site="hq")  # zone over site over fleet
    assert (lab.clock, lab.stale, lab.anti_passback_s, lab.max_offline_s) == (
        "flag",
        "flag",
        0,
        DAY,
    )
    assert FleetPolicy.from_cbor_obj(cbor2.loads(cbor2.dumps(fleet.to_cbor_obj()))) == fleet


def test_clock_policy_decision():
    fleet = FleetPolicy(CheckpointPolicy(clock="deny"), zones={"lab": {"clock": "flag"}})
    trusted = TimeReading(NOW, ClockState.TRUSTED)
    floor = TimeReading(NOW, ClockState.FLOOR)
    back = TimeReading(NOW, ClockState.BACKWARDS)
    assert clock_policy_decision(trusted, fleet, "gate-1") is None
    d = clock_policy_decision(back, fleet, "gate-1")
    assert d.deny is Reason.CLOCK_UNTRUSTED and d.flag == "clock_untrusted"
    assert d.detail == "clock backwards"
    d = clock_policy_decision(floor, fleet, "lab")
    assert d.deny is None and d.flag == "clock_untrusted"


def test_stale_policy_decision():
    fleet = FleetPolicy(CheckpointPolicy(stale="deny"), zones={"lab": {"stale": "flag"}})
    stale = TrustStatus(True, 3 * DAY, "3 days old")
    assert stale_policy_decision(TrustStatus(False, 0, "current"), fleet, "gate-1") is None
    d = stale_policy_decision(stale, fleet, "gate-1")
    assert d.deny is Reason.TRUST_STALE and d.detail == "trust data 3 days old"
    assert stale_policy_decision(stale, fleet, "lab").deny is None


def test_trust_status():
    info = read_bundle(Fleet().bundle(1), None).trust()[1]  # issued NOW, expires NOW + 7 d
    assert not trust_status(info, NOW + DAY).stale
    s = trust_status(info, NOW + 4 * DAY, max_offline_s=3 * DAY)
    assert s.stale and s.message == "trust data 4 days old" and s.age_s == 4 * DAY
    # A later successful refresh counts; a bundle newer than the refresh counts from its issue.
    assert not trust_status(
        info, NOW + 4 * DAY, last_refresh=NOW + 2 * DAY, max_offline_s=3 * DAY
    ).stale
    s = trust_status(info, NOW + 7 * DAY + 7200, last_refresh=NOW + 7 * DAY)
    assert s.stale and s.expired and s.message == "trust data expired 2 hours ago"


def test_age_words():
    assert [age_words(s) for s in (30, 60, 7200, 86400, 3 * 86400 + 5)] == [
        "less than a minute",
        "1 minute",
        "2 hours",
        "1 day",
        "3 days",
    ]


def test_shipped_policy_example_builds(operator_files):
    from conftest import REPO_ROOT

    issuers, revoked, _, _ = operator_files
    content = content_from_files(issuers, revoked, REPO_ROOT / "docs" / "policy.example.toml")
    lab = content.fleet.for_checkpoint("lab", site="hospital")
    assert (lab.clock, lab.stale, lab.anti_passback_s, lab.max_offline_s) == (
        "deny",
        "flag",
        0,
        DAY,
    )
    assert content.fleet.for_checkpoint("gate-1").anti_passback_for("shopping") == 3 * 3600
    assert content.zone_purposes["lab"] == {"work"}


@pytest.mark.parametrize("version", [0, 2**53, 10**19, True])
def test_build_refuses_versions_readers_refuse_or_that_freeze_versioning(version):
    fleet = Fleet()
    with pytest.raises(TrustError, match="version"):
        build_bundle(fleet.content(), fleet.roots.keys[:2], version, NOW, NOW + DAY)


def test_the_highest_buildable_version_reads_back():
    fleet = Fleet()
    data = build_bundle(fleet.content(), fleet.roots.keys[:2], 2**53 - 1, NOW, NOW + DAY)
    assert read_bundle(data, fleet.roots.set).version == 2**53 - 1
