"""The frame loop's scans: debounce, anti-passback, the policies, the idle screen.

A scan is committed to the journal before its verdict is signalled; what the trust data and
the clock allow reaches both the journal row and the screen. The loop is built by the
``checkpoint`` fixture (tests/checkpoint_support.py) over the real journal, debouncer,
anti-passback and verifier; the camera, decoder, signals and display are the fakes of
tests/fakes.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from checkpoint_support import NOW, POLICY, ZONE, issue
from passgate.bundle.policy import CheckpointPolicy, FleetPolicy, TrustStatus
from passgate.bundle.verify import BundleInfo
from passgate.bundle.watch import Loaded
from passgate.checkpoint.parts import FixedTrust
from passgate.checkpoint.trustview import BundleTrust, StaticTrust, TrustView, antipassback_for
from passgate.clock.clock import ClockState, FixedClock
from passgate.hardware.display import screens
from passgate.journal.journal import Journal


def test_debounce_and_anti_passback_over_frame_sequences(checkpoint, issuer, journal):
    ok = issue(issuer)
    other_zone = issue(issuer, zones=["lobby"])
    expired = issue(issuer, start=NOW - 4 * 3600, duration=3 * 3600, purpose="shopping")
    frames = (
        [(ok,)] * 5  # held in view: one presentation
        + [(), (ok,), ()]  # a missed decode is not "taken away"
        + [()] * 30  # gone (3 frames and 0.5 s), and the accept's 3 s hold is over
        + [(ok,)] * 3  # shown again: anti-passback
        + [()] * 10
        + [(expired, other_zone, expired)]  # two codes in one frame, one listed twice
        + [()] * 3
    )
    cp = checkpoint(frames, journal)
    assert cp.run() == len(frames)
    assert cp.reasons() == ["valid", "already_used", "expired", "wrong_zone"]
    assert cp.signals.calls == ["accept", "deny", "deny", "deny"]
    rows = journal.since(0)
    assert [(r.seq, r.verdict, r.reason) for r in rows] == [
        (1, "accept", "valid"),
        (2, "deny", "already_used"),
        (3, "deny", "expired"),
        (4, "deny", "wrong_zone"),
    ]
    assert [s.seq for s in cp.seen] == [1, 2, 3, 4]
    assert rows[0].pass_hash == rows[1].pass_hash != rows[3].pass_hash
    assert rows[0].zone == ZONE and rows[0].clock_state == "trusted" and rows[0].flags == ()
    assert [r.nonce for r in rows] == [s.nonce for s in cp.seen]
    assert journal.verify() is None
    shown = cp.display.shown
    assert isinstance(shown[0], screens.IdleScreen)
    assert isinstance(shown[1], screens.AcceptedScreen) and shown[1].remaining == "58 min"
    assert screens.DeniedScreen("already used") in shown


def test_anti_passback_survives_a_restart(checkpoint, issuer, tmp_path):
    ok = issue(issuer)
    path = tmp_path / "j.sqlite"
    with Journal(path, b"k" * 32) as j1:
        cp = checkpoint([(ok,)], j1)
        cp.run()
    with Journal(path, b"k" * 32) as j2:  # a new process: only the journal remembers
        cp2 = checkpoint([(ok,)], j2)
        cp2.run()
    assert cp.reasons() == ["valid"] and cp2.reasons() == ["already_used"]
    window_off = checkpoint(
        [(ok,)], Journal(path, b"k" * 32), policy=CheckpointPolicy(anti_passback_s=0)
    )
    window_off.run()
    assert window_off.reasons() == ["valid"]


def test_clock_policy_reaches_the_journal_and_the_screen(checkpoint, issuer, journal, tmp_path):
    ok = issue(issuer)
    floor = FixedClock(NOW, ClockState.FLOOR)
    cp = checkpoint([], journal, clock=floor)
    s = cp.scan(ok)
    assert s.verdict.accepted and s.flags == {"clock_untrusted"}
    row = journal.since(0)[0]
    assert row.flags == ("clock_untrusted",) and row.clock_state == "floor"

    with Journal(tmp_path / "strict.sqlite", b"k" * 32) as j2:
        strict = checkpoint([], j2, clock=floor, policy=CheckpointPolicy(clock="deny"))
        assert strict.scan(ok).verdict.reason.value == "clock_untrusted"
        strict.later(10)
        strict.handle_texts([])
        assert strict.display.shown[-1] == screens.clock_not_set()
        assert "fault(True)" not in strict.signals.calls  # shown, but not a hardware fault


def test_stale_trust_data_is_refused_and_shown(checkpoint, issuer, trust, journal):
    stale = TrustStatus(True, 3 * 86400, "3 days old")

    class Stale(FixedTrust):
        def current(self, now):
            return TrustView(
                StaticTrust(trust, POLICY, journal).current(now).verifier,
                POLICY,
                antipassback_for(journal, POLICY),
                stale,
            )

    cp = checkpoint([], journal, trust=Stale())
    s = cp.scan(issue(issuer))
    assert s.verdict.reason.value == "trust_stale" and s.flags == {"trust_stale"}
    assert s.verdict.detail == "trust data 3 days old"
    cp.later(10)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.trust_data_old(3 * 86400, "passes refused")


def _info(fleet: FleetPolicy, issued=NOW - 3600, expires=NOW + 30 * 86400) -> BundleInfo:
    return BundleInfo(
        version=1,
        issued=issued,
        expires=expires,
        manifest_sha256="0" * 64,
        size=1,
        signed_by=(),
        verified=True,
        new_roots=None,
        parts=(),
        issuers=1,
        revoked=0,
        fleet=fleet,
        last_refresh=None,
    )


def test_bundle_trust_without_a_bundle_denies_and_says_so_then_follows_an_install(
    checkpoint, issuer, trust, journal
):
    class Watcher:
        loaded = Loaded(None, None, "no trust data: no bundle installed")

        def current(self):
            return self.loaded

    watcher = Watcher()
    provider = BundleTrust(watcher, journal, ZONE, POLICY)
    cp = checkpoint([], journal, trust=provider)
    ok = issue(issuer)
    # not "unknown issuer": the pass may be fine, the checkpoint has nothing to check it with
    s = cp.scan(ok)
    assert (s.verdict.reason.value, s.verdict.detail) == ("trust_stale", "no trust data")
    assert s.flags == {"trust_stale"} and journal.since(0)[-1].reason == "trust_stale"
    assert cp.display.shown[-1] == screens.DeniedScreen("no trust data")  # not "stale"
    assert cp.scan("not a pass").verdict.reason.value == "malformed"  # that stands
    cp.later(5)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.no_trust_data()
    assert "fault(True)" in cp.signals.calls
    # the sync agent installs a bundle whose fleet policy sets a 1 h window for this zone
    fleet = FleetPolicy(
        CheckpointPolicy(anti_passback_s=0), zones={ZONE: {"anti_passback_s": 3600}}
    )
    watcher.loaded = Loaded(trust, _info(fleet))
    assert cp.scan(ok).verdict.accepted
    cp.later(5)
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert cp.signals.calls[-1] == "fault(False)"
    assert cp.scan(ok).verdict.reason.value == "already_used"  # the zone's window applies
    # the bundle ages past its expiry: stale, and the fleet default policy denies
    watcher.loaded = Loaded(trust, _info(fleet, expires=NOW - 60))
    assert cp.scan(issue(issuer)).verdict.reason.value == "trust_stale"


def test_idle_screen_returns_after_the_hold_with_the_pending_count(checkpoint, issuer, journal):
    clock = FixedClock(NOW)
    cp = checkpoint([], journal, clock=clock)
    cp.handle_texts([])
    cp.handle_texts([])
    assert len(cp.display.shown) == 1
    cp.handle_texts([issue(issuer)])
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)
    cp.later(2.9)
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)
    cp.later(0.4)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.IdleScreen(
        screens.idle_screen(NOW + 3.3, tz=None).time_text, pending=1
    )


def test_shutdown_releases_the_relay_and_says_stopped(checkpoint, issuer, journal):
    cp = checkpoint([(issue(issuer),)], journal)
    cp.run()
    assert cp.signals.relay
    cp.shutdown()
    assert not cp.signals.relay and cp.signals.calls[-1] == "release"
    assert cp.display.shown[-1] == screens.StoppedScreen()


def test_idle_screen_shows_the_sync_agents_view_of_the_network(checkpoint, journal, tmp_path):
    from passgate.checkpoint.wiring import sync_connectivity
    from passgate.journal.syncstate import SyncState, state_path, write_state

    write_state(state_path(tmp_path), SyncState(connectivity="online", updated_at=NOW))
    cp = checkpoint([], journal, connectivity=sync_connectivity(tmp_path))
    cp.handle_texts([])
    assert cp.display.shown[-1].connectivity is screens.Connectivity.ONLINE
    cp.later(1000)  # the agent stopped writing: no longer believed
    cp.handle_texts([])
    assert cp.display.shown[-1].connectivity is screens.Connectivity.UNKNOWN


def test_a_bad_sync_state_file_reads_unknown_and_is_logged_once_per_problem(
    checkpoint, trust, journal, tmp_path, caplog
):
    """The sync agent's file is not the scanner's to trust: whatever is in it, the idle screen
    says "unknown" and the loop carries on (it used to crash ``passgate run``)."""
    from passgate.checkpoint.wiring import sync_connectivity
    from passgate.journal.syncstate import SyncState, state_path, write_state

    caplog.set_level(logging.INFO, "passgate")
    path = state_path(tmp_path)
    cp = checkpoint([], journal, connectivity=sync_connectivity(tmp_path))
    bad = [
        f'{{"connectivity": "degraded", "updated_at": {NOW}}}',
        '{"connectivity": "online", "updated_at": "soon"}',
        '{"connectivity": "online", "updated_at": 1e999}',
        '{"connectivity": "online", "updated_at": true}',
        f'{{"connectivity": ["online"], "updated_at": {NOW}}}',
        "garbage{",
        "[1, 2]",
        b"\xff\xfe not utf-8",
    ]
    for content in bad:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        for _ in range(3):  # the loop polls every pending_every_s: logged once, not each time
            cp.later(10)
            cp.handle_texts([])
            assert cp.display.shown[-1].connectivity is screens.Connectivity.UNKNOWN
    path.unlink()
    path.mkdir()  # unreadable: a folder where the file should be
    for _ in range(3):
        cp.later(10)
        cp.handle_texts([])
    path.rmdir()
    write_state(path, SyncState(connectivity="online", updated_at=NOW + 270))
    cp.later(10)
    cp.handle_texts([])
    assert cp.display.shown[-1].connectivity is screens.Connectivity.ONLINE
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(bad) + 1, warnings
    assert all(w.startswith(f"sync state {path}: ") for w in warnings), warnings
    assert sum("sync state" in r.getMessage() for r in caplog.records) == len(bad) + 2


def test_a_bundle_window_longer_than_the_journal_retention_is_warned_and_honoured(
    checkpoint, issuer, trust, journal, caplog
):
    """The local config cannot set a window longer than journal.retention (refused at load);
    a bundle's fleet policy can. Then the scanner says so once, and pruning (by the sync
    agent, with the configured retention) keeps accepted rows for the window anyway."""
    day = 86400
    fleet = FleetPolicy(
        CheckpointPolicy(anti_passback_s=0), zones={ZONE: {"anti_passback_s": 60 * day}}
    )

    class Watcher:
        loaded = Loaded(trust, replace(_info(fleet, issued=NOW - 50 * day), last_refresh=NOW))

        def current(self):
            return self.loaded

    clock = FixedClock(NOW - 45 * day)
    provider = BundleTrust(Watcher(), journal, ZONE, POLICY, retention_s=30 * day)
    cp = checkpoint([], journal, clock=clock, trust=provider)
    ok = issue(issuer, start=NOW - 46 * day, duration=50 * day)
    assert cp.scan(ok).verdict.accepted  # 45 days ago
    journal.mark_uploaded([1], at=NOW - 45 * day + 60)
    clock.advance(45 * day)
    assert journal.prune(now=NOW, retention_s=30 * day) == 0  # inside the 60-day window
    assert cp.scan(ok).verdict.reason.value == "already_used"
    assert journal.prune(now=NOW + 20 * day, retention_s=30 * day) >= 1  # past it: pruned
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "60d" in warnings[0] and "journal.retention (30d)" in warnings[0]


def test_a_refresh_of_the_same_bundle_rebuilds_nothing_and_warns_once(trust, journal, caplog):
    """Each sync round records a refresh in installed.json, and the watcher hands out a new
    Loaded for it. The verifier, policy and anti-passback are kept (keyed on the bundle's
    manifest hash); only the staleness follows the refresh. A long window is warned about
    once per bundle (it was warned on every round), again only for a new bundle."""
    day = 86400
    fleet = FleetPolicy(
        CheckpointPolicy(anti_passback_s=0), zones={ZONE: {"anti_passback_s": 60 * day}}
    )
    info = _info(fleet, issued=NOW - 10 * day)

    class Watcher:
        loaded = Loaded(trust, info)

        def current(self):
            return self.loaded

    watcher = Watcher()
    provider = BundleTrust(watcher, journal, ZONE, POLICY, retention_s=30 * day)
    first = provider.current(NOW)
    assert first.status.age_s == 10 * day
    for i in range(1, 5):  # four sync rounds, each a refresh of the same bundle
        watcher.loaded = Loaded(trust, replace(info, last_refresh=NOW + 60 * i))
        view = provider.current(NOW + 60 * i)
        assert view.verifier is first.verifier and view.antipassback is first.antipassback
        assert view.status.age_s == 0  # the refresh itself is followed
    watcher.loaded = Loaded(None, None, "no trust data: bundle unreadable")
    assert provider.current(NOW + 300).missing
    watcher.loaded = Loaded(trust, replace(info, last_refresh=NOW + 360))  # readable again
    assert not provider.current(NOW + 360).missing
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    newer = replace(info, version=2, manifest_sha256="1" * 64)
    watcher.loaded = Loaded(trust, newer)
    provider.current(NOW + 420)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and warnings[1].startswith("bundle 2:"), warnings


def test_the_window_to_keep_rows_for_is_recorded_once_the_journal_recovers(
    checkpoint, issuer, trust, tmp_path, caplog
):
    """A bundle's 60-day window is told to the journal when the bundle loads; if the journal
    cannot be opened then (the state partition not mounted yet), it is told again once the
    journal reads again. It used to be lost until the next bundle, so the sync agent pruned
    accepted rows anti-passback still needed."""
    caplog.set_level(logging.INFO, "passgate")
    day = 86400
    fleet = FleetPolicy(
        CheckpointPolicy(anti_passback_s=0), zones={ZONE: {"anti_passback_s": 60 * day}}
    )

    class Watcher:
        loaded = Loaded(trust, replace(_info(fleet, issued=NOW - 50 * day), last_refresh=NOW))

        def current(self):
            return self.loaded

    blocker = tmp_path / "state"
    blocker.write_text("not a folder yet\n")
    journal = Journal(blocker / "journal.sqlite", b"k" * 32, connect=False)
    clock = FixedClock(NOW - 45 * day)
    provider = BundleTrust(Watcher(), journal, ZONE, POLICY, retention_s=30 * day)
    cp = checkpoint([], journal, clock=clock, trust=provider)
    cp.handle_texts([])  # the bundle loads; the journal cannot be opened
    assert "journal" in cp.loop.faults.active
    cp.later(11)
    cp.handle_texts([])  # still not: tried again, said once
    blocker.unlink()
    cp.later(11)
    cp.handle_texts([])  # it opens: the window is recorded now
    assert cp.loop.faults.active == {}
    ok = issue(issuer, start=NOW - 46 * day, duration=50 * day)
    assert cp.scan(ok).verdict.accepted  # 45 days ago
    clock.advance(45 * day)
    with Journal(journal.path, b"k" * 32, create=False) as agent:  # the sync agent's side
        agent.mark_uploaded([1], at=NOW - 45 * day + 60)
        assert agent.prune(now=NOW, retention_s=30 * day) == 0  # inside the 60-day window
    assert cp.scan(ok).verdict.reason.value == "already_used"
    logs = [r.getMessage() for r in caplog.records]
    assert sum("cannot record the anti-passback window" in m for m in logs) == 1, logs
    assert sum("keeping rows for the anti-passback window" in m for m in logs) == 1, logs
    journal.close()
