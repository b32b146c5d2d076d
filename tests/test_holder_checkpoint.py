"""Holder-bound passes at the checkpoint (issue 16): the verifier's level-2 rules, the binding
policy in decide(), the words on the OLED, the journal flags, and the whole loop in a scene.

Rules tested (docs/pass-format.md section 10): a fresh live code of a bound pass is accepted;
older than the window is ``live_code_stale`` with its words, further ahead
``live_code_future``; a level 2 by another holder's key is ``holder_mismatch``; a live code
of a pass without cnf is ``malformed``; level-1 rules come first; where the policy requires
binding, a bound pass shown bare is ``live_code_required`` and an unbound pass ``not_bound``,
and where it does not both are accepted as before; the journal row says how the pass was
shown (flags ``bound``, ``live``, ``live_<keyed hash>``) and its chain still verifies.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from checkpoint_support import NOW, POLICY, ZONE, build_checkpoint
from passgate.bundle.policy import FleetPolicy
from passgate.checkpoint.decide import FRESH, binding_flags, decide
from passgate.checkpoint.trustview import StaticTrust
from passgate.clock.clock import ClockState, TimeReading
from passgate.hardware.display import screens
from passgate.hardware.display.screens import reason_words
from passgate.issuing.issuer import Issuer
from passgate.passes import holder
from passgate.passes.verdict import Binding, Reason
from passgate.passes.verify import Verifier
from passgate.util.i18n import language

HOUR = 3600


@pytest.fixture(scope="module")
def phone() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(0xC0FFEE, ec.SECP256R1())


@pytest.fixture(scope="module")
def thief() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(0xBADBAD, ec.SECP256R1())


@pytest.fixture
def bound(issuer: Issuer, phone: ec.EllipticCurvePrivateKey) -> str:
    return issuer.issue("work", [ZONE], NOW - 60, HOUR,
                        holder_key=holder.compressed_point(phone))


@pytest.fixture
def plain(issuer: Issuer) -> str:
    return issuer.issue("work", [ZONE], NOW - 60, HOUR)


# -- the verifier -----------------------------------------------------------------------


def test_fresh_live_code_accepted_with_its_facts(verifier: Verifier, bound: str, phone) -> None:
    v = verifier.check(holder.make_live_code(bound, phone, NOW - 4, 12), NOW, ZONE)
    assert v.accepted and v.binding is Binding.LIVE and v.live_t == NOW - 4
    assert v.live_id is not None and len(v.live_id) == 32
    assert v.purpose == "work" and v.remaining_s == HOUR - 60
    assert v.to_json()["binding"] == "live" and "live_id" not in v.to_json()


@pytest.mark.parametrize(("age", "reason"), [
    (30, Reason.VALID), (31, Reason.LIVE_CODE_STALE), (3600, Reason.LIVE_CODE_STALE),
    (-30, Reason.VALID), (-31, Reason.LIVE_CODE_FUTURE),
])
def test_freshness_window_edges(verifier: Verifier, bound: str, phone, age: int,
                                reason: Reason) -> None:
    v = verifier.check(holder.make_live_code(bound, phone, NOW - age, 1), NOW, ZONE)
    assert v.reason is reason
    if reason is Reason.LIVE_CODE_STALE:
        assert "show the live code, not a picture" in v.detail


def test_window_is_configurable(trust, bound: str, phone) -> None:
    code = holder.make_live_code(bound, phone, NOW - 50, 1)
    assert Verifier(trust, live_window_s=60).check(code, NOW, ZONE).accepted
    assert Verifier(trust).check(code, NOW, ZONE).reason is Reason.LIVE_CODE_STALE


def test_another_holders_level_2_is_denied(verifier: Verifier, bound: str, thief) -> None:
    v = verifier.check(holder.make_live_code(bound, thief, NOW, 1), NOW, ZONE)
    assert v.reason is Reason.HOLDER_MISMATCH and v.live_id is None


def test_level_2_of_another_pass_is_denied(verifier: Verifier, issuer: Issuer, bound: str,
                                           phone) -> None:
    """The level 2 signs the whole level 1: moved onto another pass of the same holder, it
    no longer verifies."""
    second = issuer.issue("work", [ZONE], NOW - 60, HOUR, holder_key=holder.compressed_point(phone))
    a = holder.parse_live_text(holder.make_live_code(bound, phone, NOW, 1))
    moved = holder.live_text(holder.pass_cose(second), a.payload, a.signature)
    assert verifier.check(moved, NOW, ZONE).reason is Reason.HOLDER_MISMATCH


def test_live_code_of_unbound_pass_is_malformed(verifier: Verifier, plain: str, phone) -> None:
    v = verifier.check(holder.make_live_code(plain, phone, NOW, 1), NOW, ZONE)
    assert v.reason is Reason.MALFORMED and "holder key" in v.detail


def test_level_1_rules_come_first(verifier: Verifier, issuer: Issuer, phone) -> None:
    expired = issuer.issue("work", [ZONE], NOW - 3 * HOUR, HOUR,
                           holder_key=holder.compressed_point(phone))
    stale = holder.make_live_code(expired, phone, NOW - 600, 1)
    assert verifier.check(stale, NOW, ZONE).reason is Reason.EXPIRED
    assert verifier.check(stale, NOW, "lobby").reason in (Reason.EXPIRED, Reason.WRONG_ZONE)


def test_bound_pass_alone_is_a_plain_verdict(verifier: Verifier, bound: str, plain: str) -> None:
    assert verifier.check(bound, NOW, ZONE).binding is Binding.BOUND
    assert verifier.check(plain, NOW, ZONE).binding is Binding.NONE


@pytest.mark.parametrize("garbage", ["PG2:", "PG2:%%%", "PG2:" + "0" * 2000, b"PG2:AB"])
def test_live_code_garbage_denied_never_raises(verifier: Verifier, garbage) -> None:
    v = verifier.check(garbage, NOW, ZONE)
    assert v.reason is Reason.MALFORMED and v.binding is Binding.LIVE


# -- decide(): the binding policy ------------------------------------------------------

READING = TimeReading(NOW, ClockState.TRUSTED)


@pytest.mark.parametrize(("required", "shown", "reason"), [
    ((), "plain", Reason.VALID), ((), "bound", Reason.VALID), ((), "live", Reason.VALID),
    (("work",), "plain", Reason.NOT_BOUND), (("work",), "bound", Reason.LIVE_CODE_REQUIRED),
    (("work",), "live", Reason.VALID), (("*",), "bound", Reason.LIVE_CODE_REQUIRED),
    (("shopping",), "plain", Reason.VALID), (("shopping",), "bound", Reason.VALID),
])
def test_binding_policy_per_purpose(verifier: Verifier, bound: str, plain: str, phone,
                                    required, shown, reason) -> None:
    text = {"plain": plain, "bound": bound,
            "live": holder.make_live_code(bound, phone, NOW, 1)}[shown]
    policy = replace(POLICY, holder_binding=required)
    d = decide(verifier.check(text, NOW, ZONE), READING, FRESH, False, policy)
    assert d.verdict.reason is reason


def test_binding_policy_per_zone_from_the_bundle() -> None:
    fleet = FleetPolicy.from_toml_table(
        {"holder_binding": [], "zones": {"hospital": {"holder_binding": ["doctor", "work"]}},
         "sites": {"north": {"holder_binding": ["*"]}}}, "policy.toml")
    assert fleet.for_checkpoint("lobby").holder_binding == ()
    assert fleet.for_checkpoint("hospital").binding_required("work")
    assert not fleet.for_checkpoint("hospital").binding_required("shopping")
    assert fleet.for_checkpoint("gate", "north").binding_required("shopping")
    again = FleetPolicy.from_cbor_obj(fleet.to_cbor_obj())
    assert again.for_checkpoint("hospital").holder_binding == ("doctor", "work")
    # An unset setting is not written: bundles without it read as before on older firmware.
    assert "holder_binding" not in FleetPolicy().to_cbor_obj()["default"]
    assert FleetPolicy.from_cbor_obj(FleetPolicy().to_cbor_obj()) == FleetPolicy()


@pytest.mark.parametrize("bad", ["work", ["*", "work"], ["work", "work"], [1]])
def test_binding_policy_refuses_bad_lists(bad) -> None:
    from passgate.errors import TrustError

    with pytest.raises(TrustError):
        FleetPolicy.from_toml_table({"holder_binding": bad}, "policy.toml")


def test_flags_say_how_the_pass_was_shown(verifier: Verifier, bound: str, plain: str,
                                          phone) -> None:
    def key(b: bytes) -> bytes:
        return b"\x11" * 16

    assert binding_flags(verifier.check(plain, NOW, ZONE), key) == frozenset()
    assert binding_flags(verifier.check(bound, NOW, ZONE), key) == {"bound"}
    live = verifier.check(holder.make_live_code(bound, phone, NOW, 1), NOW, ZONE)
    assert binding_flags(live, key) == {"live", "live_" + "11" * 12}
    broken = verifier.check("PG2:AB", NOW, ZONE)
    assert binding_flags(broken, key) == {"live"}


@pytest.mark.parametrize("lang", ["en", "ru", "tt"])
def test_deny_words_on_the_oled(verifier: Verifier, bound: str, phone, lang: str) -> None:
    v = verifier.check(holder.make_live_code(bound, phone, NOW - 120, 1), NOW, ZONE)
    line, detail = reason_words(v, NOW, language(lang))
    assert (line, detail) == {"en": ("code too old", "live code, no photo"),
                              "ru": ("код устарел", "живой код, не фото"),
                              "tt": ("код искергән", "тере код, фото түгел")}[lang]


# -- the scene -------------------------------------------------------------------------


def test_scene_live_codes_at_a_checkpoint_that_requires_binding(
        trust, journal, issuer: Issuer, bound: str, plain: str, phone, thief) -> None:
    """A door that requires binding for work passes: the holder's fresh live code opens it, a
    screenshot of an older code, another phone's code, the bound pass shown bare and an
    unbound pass do not; each row says how the pass was shown; the chain verifies."""
    policy = replace(POLICY, anti_passback_s=0, holder_binding=("work",))
    visitor = issuer.issue("shopping", [ZONE], NOW - 60, HOUR)  # binding not required
    fresh = holder.make_live_code(bound, phone, NOW - 3, 41)
    old = holder.make_live_code(bound, phone, NOW - 95, 22)  # a screenshot from before
    stolen = holder.make_live_code(bound, thief, NOW, 1)
    frames = []
    for text in (fresh, old, stolen, bound, plain, visitor):
        frames += [(text,)] * 2 + [()] * 40
    cp = build_checkpoint(frames, trust, journal,
                          trust=StaticTrust(trust, policy, journal, live_window_s=30))
    cp.run()
    assert cp.reasons() == ["valid", "live_code_stale", "holder_mismatch", "live_code_required",
                            "not_bound", "valid"]
    assert cp.signals.calls == ["accept", "deny", "deny", "deny", "deny", "accept"]
    rows = journal.since(0)
    flags = [r.flags for r in rows]
    assert flags[0][0] == "live" and flags[0][1].startswith("live_")
    assert flags[1][0] == "live" and flags[1][1].startswith("live_") and flags[1] != flags[0]
    assert flags[2:] == [("live",), ("bound",), (), ()]
    assert journal.verify() is None
    assert screens.DeniedScreen("code too old", "live code, no photo") in cp.display.shown
    assert screens.DeniedScreen("show live code", "open the pass app") in cp.display.shown


def test_scene_same_live_code_gives_the_same_keyed_id(trust, journal, bound: str, phone) -> None:
    """One live code shown twice (a second phone showing a picture of it) carries the same
    journal id: what the collector matches across checkpoints."""
    code = holder.make_live_code(bound, phone, NOW, 5)
    policy = replace(POLICY, anti_passback_s=0)
    frames = [(code,)] * 2 + [()] * 40 + [(code,)] * 2 + [()] * 40
    cp = build_checkpoint(frames, trust, journal, trust=StaticTrust(trust, policy, journal))
    cp.run()
    rows = journal.since(0)
    assert len(rows) == 2 and rows[0].flags == rows[1].flags
    assert rows[0].flags[1] not in code  # keyed: not derivable from the code without the key


def test_config_reaches_the_checkpoint(tmp_path) -> None:
    """checkpoint.live_code_window reaches the verifier, trust.holder_binding the local policy
    (a trust folder's, and the fallback while no bundle is usable)."""
    from passgate.checkpoint.trustview import local_policy
    from passgate.checkpoint.wiring import make_trust
    from passgate.config.load import from_dict
    from passgate.errors import ConfigError
    from passgate.journal.journal import Journal
    from passgate.passes.truststore import TrustStore

    cfg = from_dict({"checkpoint": {"zone": ZONE, "state_dir": str(tmp_path),
                                    "live_code_window": "45s"},
                     "trust": {"source": "dir", "holder_binding": ["work", "doctor"]}},
                    origin="test")
    assert local_policy(cfg).holder_binding == ("doctor", "work")
    with Journal(tmp_path / "j.sqlite", b"k" * 32, "dev") as journal:
        view = make_trust(cfg, journal, TrustStore([])).current(NOW)
    assert view.verifier.live_window_s == 45 and view.policy.binding_required("work")
    for bad in ({"checkpoint": {"zone": ZONE, "live_code_window": "2s"}},
                {"checkpoint": {"zone": ZONE}, "trust": {"holder_binding": ["*", "work"]}},
                {"checkpoint": {"zone": ZONE}, "trust": {"holder_binding": "work"}}):
        with pytest.raises(ConfigError):
            from_dict(bad, origin="test")
