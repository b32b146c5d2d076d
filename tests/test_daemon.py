"""The frame loop, driven frame by frame with injected time.

The real journal (SQLite in tmp_path), debouncer, anti-passback, verifier and display policy
run; the camera is a list of frames (each frame is the tuple of texts a fake decoder "sees"),
wrapped in the camera package's FlakyFrameSource for faults; signals and the display are
recording fakes (pin-level tests of the real Signals are in test_signals.py, and the
SIGTERM test below uses the real Signals on MockFactory pins).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import replace

import pytest

from passgate.bundle.policy import CheckpointPolicy, FleetPolicy, TrustStatus
from passgate.bundle.verify import BundleInfo
from passgate.bundle.watch import Loaded
from passgate.checkpoint.debounce import Debouncer
from passgate.checkpoint.loop import Checkpoint, Timing
from passgate.checkpoint.parts import FixedOutputs, FixedTrust
from passgate.checkpoint.sdnotify import Notifier
from passgate.checkpoint.trustview import BundleTrust, StaticTrust, TrustView, antipassback_for
from passgate.clock.clock import ClockState, FixedClock
from passgate.errors import JournalError
from passgate.hardware.camera import FlakyFrameSource
from passgate.hardware.camera.base import SourceBase
from passgate.hardware.display import screens
from passgate.journal.journal import Journal

NOW = 1_767_261_600
ZONE = "gate-1"
FRAME_S = 0.1  # each frame takes this long on the fake monotonic clock
POLICY = CheckpointPolicy(clock="flag", stale="deny", anti_passback_s=600)


class Mono:
    """A monotonic clock that moves only when the loop waits or a frame is decoded; the
    wall clock (a FixedClock) moves with it."""

    def __init__(self, clock: FixedClock) -> None:
        self.t = 1000.0
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s
        self.clock.advance(s)

    def wait(self, s: float) -> None:
        self.waits.append(s)
        self.advance(s)


class Frames(SourceBase):
    """Frames from a list (then None: the scene ended). Position survives close/open."""

    name = "test frames"

    def __init__(self, frames) -> None:
        super().__init__()
        self.frames = list(frames)

    def _open(self) -> None:
        pass

    def _read(self):
        return self.frames.pop(0) if self.frames else None

    def _close(self) -> None:
        pass


class Decoder:
    def __init__(self, mono: Mono) -> None:
        self.mono = mono

    def decode(self, frame):
        self.mono.advance(FRAME_S)
        return list(frame)


class Signals(FixedOutputs):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.relay = False

    def accept(self):
        self.calls.append("accept")
        self.relay = True

    def deny(self):
        self.calls.append("deny")
        self.relay = False

    def fault(self, on):
        self.calls.append(f"fault({on})")

    def release(self):
        self.calls.append("release")
        self.relay = False


class Display:
    def __init__(self, broken: bool = False) -> None:
        self.shown = []
        self.broken = broken

    def show(self, screen):
        if self.broken:
            raise OSError(121, "Remote I/O error")
        if not self.shown or self.shown[-1] != screen:
            self.shown.append(screen)


class FailingJournal:
    """The real journal, with record() failing while ``fail`` is set (disk full, read-only)."""

    def __init__(self, journal: Journal) -> None:
        self.inner, self.fail = journal, None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def record(self, rec):
        if self.fail:
            raise JournalError(f"journal record failed: {self.fail}")
        return self.inner.record(rec)


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite", b"k" * 32, "test-device") as j:
        yield j


def make(
    frames,
    store,
    journal,
    *,
    flaky=None,
    display=None,
    clock=None,
    policy=POLICY,
    trust=None,
    timing=None,
):
    clock = clock or FixedClock(NOW)
    mono = Mono(clock)
    source = Frames(frames)
    if flaky is not None:
        source = FlakyFrameSource(source, **flaky)
    cp = Checkpoint(
        source=source,
        decoder=Decoder(mono),
        debouncer=Debouncer(absent_frames=3, absent_s=0.5),
        trust=trust or StaticTrust(store, policy, journal),
        journal=journal,
        signals=Signals(),
        display=display if display is not None else Display(),
        clock=clock,
        zone=ZONE,
        timing=timing or Timing(verdict_hold_s=3.0),
        monotonic=mono,
        wait=mono.wait,
    )
    cp.mono = mono
    cp.seen = []
    cp.on_scan = cp.seen.append
    return cp


def later(cp, seconds: float) -> None:
    """Let time pass: the wall clock and the monotonic clock together."""
    cp.mono.advance(seconds)


def reasons(cp) -> list[str]:
    return [s.verdict.reason.value for s in cp.seen]


def issue(issuer, zones=(ZONE,), start=NOW - 60, duration=3600, purpose="work"):
    return issuer.issue(purpose, list(zones), start, duration)


def test_debounce_and_anti_passback_over_frame_sequences(issuer, trust, journal):
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
    cp = make(frames, trust, journal)
    assert cp.run() == len(frames)
    assert reasons(cp) == ["valid", "already_used", "expired", "wrong_zone"]
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


def test_anti_passback_survives_a_restart(issuer, trust, tmp_path):
    ok = issue(issuer)
    path = tmp_path / "j.sqlite"
    with Journal(path, b"k" * 32) as j1:
        cp = make([(ok,)], trust, j1)
        cp.run()
    with Journal(path, b"k" * 32) as j2:  # a new process: only the journal remembers
        cp2 = make([(ok,)], trust, j2)
        cp2.run()
    assert reasons(cp) == ["valid"] and reasons(cp2) == ["already_used"]
    window_off = make(
        [(ok,)], trust, Journal(path, b"k" * 32), policy=CheckpointPolicy(anti_passback_s=0)
    )
    window_off.run()
    assert reasons(window_off) == ["valid"]


def test_journal_failure_means_no_green_and_a_visible_fault_until_it_clears(
    issuer, trust, journal, caplog
):
    caplog.set_level(logging.INFO, "passgate")
    ok, ok2 = issue(issuer), issue(issuer)
    failing = FailingJournal(journal)
    failing.fail = "database or disk is full"
    cp = make([], trust, failing)
    s1 = cp.scan(ok)
    assert s1.seq is None and not s1.verdict.accepted
    assert s1.verdict.reason.value == "journal_fault"
    assert cp.signals.calls == ["deny", "fault(True)"]
    assert cp.display.shown[-1] == screens.DeniedScreen("not recorded", "journal fault")
    cp.scan(ok2)  # still failing: still red, not logged again
    later(cp, 5)
    cp.handle_texts([])  # the verdict's hold is over: the fault stays on screen
    assert cp.display.shown[-1] == screens.journal_fault()
    assert journal.since(0) == []
    failing.fail = None
    s3 = cp.scan(ok)
    assert s3.seq == 1 and s3.verdict.accepted
    assert cp.signals.calls[-2:] == ["accept", "fault(False)"]
    later(cp, 5)
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: journal" in m for m in logs) == 1
    assert sum("recovered: journal" in m for m in logs) == 1


def test_a_journal_fault_on_a_reshow_does_not_cut_the_door_either(issuer, trust, journal):
    ok = issue(issuer)
    failing = FailingJournal(journal)
    cp = make([], trust, failing)
    assert cp.scan(ok).verdict.accepted
    failing.fail = "disk I/O error"
    later(cp, 1)
    again = cp.scan(ok)  # the same person, still in the door's hold
    assert again.verdict.reason.value == "journal_fault" and again.flags == {"reshow"}
    assert cp.signals.calls == ["accept", "fault(True)"] and cp.signals.relay
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)
    later(cp, 3)
    assert cp.scan(ok).verdict.reason.value == "journal_fault"  # the hold is over: red
    assert cp.signals.calls[-1] == "deny"


def test_anti_passback_lookup_failure_is_a_journal_fault_too(issuer, trust, journal):
    cp = make([], trust, journal)

    class Broken:
        def already_used(self, *a):
            raise JournalError("database is locked")

    view = cp.trust.current(NOW)
    cp.trust = type(
        "T",
        (FixedTrust,),
        {"current": lambda self, now: TrustView(view.verifier, view.policy, Broken())},
    )()
    s = cp.scan(issue(issuer))
    assert s.verdict.reason.value == "journal_fault" and journal.since(0) == []
    assert cp.signals.calls == ["deny", "fault(True)"]


def test_camera_fault_backoff_and_recovery(issuer, trust, journal, caplog):
    caplog.set_level(logging.INFO, "passgate")
    ok = issue(issuer)
    frames = [()] * 3 + [(ok,)] * 3 + [()] * 3
    # reads 3 and 4 fail; after each failed read the next 2 opens fail too
    cp = make(frames, trust, journal, flaky=dict(fail_reads=[(3, 5)], open_failures_after_fault=2))
    cp.run()
    assert reasons(cp) == ["valid"]  # scanning resumed
    # read 3 fails: wait 0.5; opens fail twice: 1, 2; read 4 fails: 4; opens: 8, 16; then up
    assert sum(cp.mono.waits) == pytest.approx(0.5 + 1 + 2 + 4 + 8 + 16)
    assert cp.signals.calls == ["fault(True)", "fault(False)", "accept"]
    assert screens.camera_fault() in cp.display.shown
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: camera" in m for m in logs) == 1
    assert sum("recovered: camera" in m for m in logs) == 1
    assert cp.source.faults == 6


def test_camera_backoff_is_capped_and_stop_interrupts_it(trust, journal):
    cp = make(
        [()],
        trust,
        journal,
        flaky=dict(initial_open_failures=100),
        timing=Timing(backoff_initial_s=1, backoff_max_s=4),
    )
    opened_at = []
    real_open = cp.source.open

    def open_():
        opened_at.append(cp.mono.t)
        if len(opened_at) == 7:
            cp.stop()  # as SIGTERM would, in the middle of the backoff
        real_open()

    cp.source.open = open_
    cp.run()
    gaps = [b - a for a, b in zip(opened_at, opened_at[1:], strict=False)]
    assert gaps == [1, 2, 4, 4, 4, 4]
    assert cp.signals.calls == ["fault(True)"]
    assert cp.frames == 0


def test_display_failure_does_not_stop_scanning(issuer, trust, journal, caplog):
    caplog.set_level(logging.INFO, "passgate")
    cp = make([(issue(issuer),), ()], trust, journal, display=Display(broken=True))
    assert cp.run() == 2
    assert reasons(cp) == ["valid"] and cp.signals.calls == ["accept"]
    assert sum("fault: display" in r.getMessage() for r in caplog.records) == 1


def test_a_real_display_with_no_panel_does_not_stop_scanning(issuer, trust, journal, caplog):
    from passgate.hardware.display import Display as RealDisplay

    def no_panel():
        raise OSError(2, "No such file or directory: '/dev/i2c-1'")

    with RealDisplay({"ssd1306": no_panel}, retry_s=60) as display:
        cp = make([(issue(issuer),), ()], trust, journal, display=display)
        cp.run()
        display.wait_idle(5)
        assert display.healthy == {"ssd1306": False}
    assert reasons(cp) == ["valid"] and cp.signals.calls == ["accept"]
    assert sum("display output ssd1306 failed" in r.getMessage() for r in caplog.records) == 1


def test_decoder_exception_is_logged_once_and_scanning_goes_on(issuer, trust, journal, caplog):
    ok = issue(issuer)
    cp = make([("boom",), ("boom",), (ok,)], trust, journal)

    class Flaky(Decoder):
        def decode(self, frame):
            if frame == ("boom",):
                raise RuntimeError("bad frame")
            return super().decode(frame)

    cp.decoder = Flaky(cp.mono)
    cp.run()
    assert reasons(cp) == ["valid"]
    assert sum("fault: decoder" in r.getMessage() for r in caplog.records) == 1


def test_clock_policy_reaches_the_journal_and_the_screen(issuer, trust, journal, tmp_path):
    ok = issue(issuer)
    floor = FixedClock(NOW, ClockState.FLOOR)
    cp = make([], trust, journal, clock=floor)
    s = cp.scan(ok)
    assert s.verdict.accepted and s.flags == {"clock_untrusted"}
    row = journal.since(0)[0]
    assert row.flags == ("clock_untrusted",) and row.clock_state == "floor"

    with Journal(tmp_path / "strict.sqlite", b"k" * 32) as j2:
        strict = make([], trust, j2, clock=floor, policy=CheckpointPolicy(clock="deny"))
        assert strict.scan(ok).verdict.reason.value == "clock_untrusted"
        later(strict, 10)
        strict.handle_texts([])
        assert strict.display.shown[-1] == screens.clock_not_set()
        assert "fault(True)" not in strict.signals.calls  # shown, but not a hardware fault


def test_stale_trust_data_is_refused_and_shown(issuer, trust, journal):
    stale = TrustStatus(True, 3 * 86400, "3 days old")

    class Stale(FixedTrust):
        def current(self, now):
            return TrustView(
                StaticTrust(trust, POLICY, journal).current(now).verifier,
                POLICY,
                antipassback_for(journal, POLICY),
                stale,
            )

    cp = make([], trust, journal, trust=Stale())
    s = cp.scan(issue(issuer))
    assert s.verdict.reason.value == "trust_stale" and s.flags == {"trust_stale"}
    assert s.verdict.detail == "trust data 3 days old"
    later(cp, 10)
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
    issuer, trust, journal
):
    class Watcher:
        loaded = Loaded(None, None, "no trust data: no bundle installed")

        def current(self):
            return self.loaded

    watcher = Watcher()
    provider = BundleTrust(watcher, journal, ZONE, POLICY)
    cp = make([], trust, journal, trust=provider)
    ok = issue(issuer)
    # not "unknown issuer": the pass may be fine, the checkpoint has nothing to check it with
    s = cp.scan(ok)
    assert (s.verdict.reason.value, s.verdict.detail) == ("trust_stale", "no trust data")
    assert s.flags == {"trust_stale"} and journal.since(0)[-1].reason == "trust_stale"
    assert cp.display.shown[-1] == screens.DeniedScreen("no trust data")  # not "stale"
    assert cp.scan("not a pass").verdict.reason.value == "malformed"  # that stands
    later(cp, 5)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.no_trust_data()
    assert "fault(True)" in cp.signals.calls
    # the sync agent installs a bundle whose fleet policy sets a 1 h window for this zone
    fleet = FleetPolicy(
        CheckpointPolicy(anti_passback_s=0), zones={ZONE: {"anti_passback_s": 3600}}
    )
    watcher.loaded = Loaded(trust, _info(fleet))
    assert cp.scan(ok).verdict.accepted
    later(cp, 5)
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert cp.signals.calls[-1] == "fault(False)"
    assert cp.scan(ok).verdict.reason.value == "already_used"  # the zone's window applies
    # the bundle ages past its expiry: stale, and the fleet default policy denies
    watcher.loaded = Loaded(trust, _info(fleet, expires=NOW - 60))
    assert cp.scan(issue(issuer)).verdict.reason.value == "trust_stale"


def test_idle_screen_returns_after_the_hold_with_the_pending_count(issuer, trust, journal):
    clock = FixedClock(NOW)
    cp = make([], trust, journal, clock=clock)
    cp.handle_texts([])
    cp.handle_texts([])
    assert len(cp.display.shown) == 1
    cp.handle_texts([issue(issuer)])
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)
    later(cp, 2.9)
    cp.handle_texts([])
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)
    later(cp, 0.4)
    cp.handle_texts([])
    assert cp.display.shown[-1] == screens.IdleScreen(
        screens.idle_screen(NOW + 3.3, tz=None).time_text, pending=1
    )


def test_shutdown_releases_the_relay_and_says_stopped(issuer, trust, journal):
    cp = make([(issue(issuer),)], trust, journal)
    cp.run()
    assert cp.signals.relay
    cp.shutdown()
    assert not cp.signals.relay and cp.signals.calls[-1] == "release"
    assert cp.display.shown[-1] == screens.StoppedScreen()


def test_watchdog_pings_while_the_loop_runs_ready_once_frames_flow(trust, journal, tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    got = []

    def drain():
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except BlockingIOError:
                return

    cp = make([()] * 20, trust, journal)

    class Slow(Decoder):  # each frame takes 0.5 s; read what systemd would have read
        def decode(self, frame):
            self.mono.advance(0.5)
            drain()
            return []

    cp.decoder = Slow(cp.mono)
    cp.notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"})
    cp.run()
    drain()
    sock.close()
    assert got[0] == "WATCHDOG=1"
    assert got.count("READY=1\nSTATUS=scanning") == 1
    # 20 frames x 0.5 s = 10 s of loop, a ping at most every 1 s (a third of the timeout)
    assert 8 <= got.count("WATCHDOG=1") <= 11


def test_idle_screen_shows_the_sync_agents_view_of_the_network(trust, journal, tmp_path):
    from passgate.checkpoint.wiring import sync_connectivity
    from passgate.journal.syncstate import SyncState, state_path, write_state

    write_state(state_path(tmp_path), SyncState(connectivity="online", updated_at=NOW))
    cp = make([], trust, journal)
    cp._connectivity = sync_connectivity(tmp_path)
    cp.handle_texts([])
    assert cp.display.shown[-1].connectivity is screens.Connectivity.ONLINE
    later(cp, 1000)  # the agent stopped writing: no longer believed
    cp.handle_texts([])
    assert cp.display.shown[-1].connectivity is screens.Connectivity.UNKNOWN


def test_a_hung_frame_loop_stops_the_watchdog_pings(trust, journal, tmp_path):
    """systemd restarts a hung scanner only if the pings stop: they come from the loop alone."""
    import threading
    import time

    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    hung, release = threading.Event(), threading.Event()

    class Hangs(Frames):
        def _read(self):
            if len(self.frames) == 5:  # the camera stops answering mid-stream
                hung.set()
                release.wait(10)
            return super()._read()

    def pings() -> int:
        n = 0
        while True:
            try:
                n += sock.recv(4096) == b"WATCHDOG=1"
            except BlockingIOError:
                return n

    cp = Checkpoint(
        source=Hangs([()] * 10),
        decoder=Decoder(Mono(FixedClock(NOW))),
        debouncer=Debouncer(),
        trust=StaticTrust(trust, POLICY, journal),
        journal=journal,
        signals=Signals(),
        display=Display(),
        clock=FixedClock(NOW),
        zone=ZONE,
        notifier=Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"}),
    )
    loop = threading.Thread(target=cp.run)
    loop.start()
    assert hung.wait(10)
    assert pings() >= 1  # while frames flowed
    time.sleep(0.5)  # several watchdog periods (0.1 s each) with the loop stuck in read()
    assert pings() == 0
    release.set()
    loop.join(10)
    assert pings() >= 1  # the loop is alive again
    sock.close()


def pin_signals(cp, relay_hold_s=3.0):
    """The real Signals on MockFactory pins, stepped by the loop's fake monotonic clock: each
    decoded frame polls them, and every output change is kept as (seconds, channel, value)."""
    from passgate.hardware.signals.gpio import Signals as RealSignals
    from passgate.hardware.signals.gpio import SignalsConfig, make_pin_factory

    factory = make_pin_factory("mock")
    changes = []
    cfg = SignalsConfig(relay_hold_s=relay_hold_s)
    signals = RealSignals(
        cfg,
        pin_factory=factory,
        clock=cp.mono,
        background=False,
        on_change=lambda ch, v: changes.append((round(cp.mono.t - 1000, 2), ch, v)),
    )
    decoder = cp.decoder

    class Polled:
        def decode(self, frame):
            texts = decoder.decode(frame)  # time moves on by a frame
            signals.poll()
            return texts

    cp.decoder, cp.signals = Polled(), signals
    return signals, factory.pin(cfg.relay_pin), changes


def test_the_same_pass_shown_again_during_its_own_hold_keeps_the_door_open(
    issuer, trust, journal
):
    """Accepted, taken away long enough to count as gone (> 0.5 s), shown again while the
    door is still released: recorded as already used, but nothing is signalled, the relay
    keeps its full hold and the accept screen stays. After the hold it is a plain deny."""
    ok = issue(issuer)
    frames = (
        [(ok,)] * 3  # accepted at 0.1 s
        + [()] * 8  # gone
        + [(ok,)] * 3  # shown again at 1.2 s, inside the 3 s hold
        + [()] * 30
        + [(ok,)] * 2  # and at 4.5 s, after the hold: a real repeat
        + [()] * 3
    )
    cp = make(frames, trust, journal, timing=Timing(verdict_hold_s=3.0, relay_hold_s=3.0))
    signals, relay, changes = pin_signals(cp, relay_hold_s=3.0)
    at_scan = []
    cp.on_scan = lambda s: (cp.seen.append(s), at_scan.append(relay.state))
    cp.run()
    assert reasons(cp) == ["valid", "already_used", "already_used"]
    assert [s.flags for s in cp.seen] == [frozenset(), {"reshow"}, frozenset()]
    assert at_scan == [0, 0, 1]  # active low: energised (0) through the reshow
    relay_steps = [(t, v) for t, ch, v in changes if ch == "relay"]
    assert relay_steps == [(0.1, 1.0), (3.1, 0.0)]  # the whole hold, not cut at 1.2 s
    assert [(t, v) for t, ch, v in changes if ch == "red"] == [(4.5, 1.0)]  # one deny
    rows = journal.since(0)
    assert [(r.verdict, r.reason, r.flags) for r in rows] == [
        ("accept", "valid", ()),
        ("deny", "already_used", ("reshow",)),
        ("deny", "already_used", ()),
    ]
    kinds = [type(s).__name__ for s in cp.display.shown]
    assert kinds == ["IdleScreen", "AcceptedScreen", "IdleScreen", "DeniedScreen"]
    assert cp.display.shown[-1] == screens.DeniedScreen("already used")


def test_a_camera_dead_at_boot_still_tells_systemd_ready_after_the_start_grace(
    trust, journal, tmp_path
):
    """With Type=notify a missing READY=1 makes systemd kill and restart the scanner (at
    TimeoutStartSec), which resets the backoff and flickers the OLED. The loop is alive and
    retrying, so after the start grace it says READY=1 with the camera fault as its status."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    got: list[tuple[float, str]] = []

    # 8 opens fail (at 0, 1, 3, 7, 11, 15, 19 and 23 s of backoff), the 9th at 27 s works
    cp = make(
        [()] * 5,
        trust,
        journal,
        flaky=dict(initial_open_failures=8),
        timing=Timing(backoff_initial_s=1, backoff_max_s=4, ready_grace_s=20),
    )
    cp.notifier = Notifier({"NOTIFY_SOCKET": path})
    start = cp.mono.t

    def wait(s):
        cp.mono.wait(s)
        while True:
            try:
                got.append((cp.mono.t - start, sock.recv(4096).decode()))
            except BlockingIOError:
                return

    cp._wait = wait
    cp.run()
    wait(0)
    sock.close()
    ready = [(t, m) for t, m in got if "READY=1" in m]
    assert [m for _, m in ready] == ["READY=1\nSTATUS=fault: camera"]  # once, saying why
    assert 20 <= ready[0][0] <= 20.5  # at the grace, not when frames came (27 s)
    assert got[-1][1] == "STATUS=scanning"  # the camera came back: status, not READY again
    assert cp.frames == 5


def test_a_bad_sync_state_file_reads_unknown_and_is_logged_once_per_problem(
    trust, journal, tmp_path, caplog
):
    """The sync agent's file is not the scanner's to trust: whatever is in it, the idle screen
    says "unknown" and the loop carries on (it used to crash ``passgate run``)."""
    from passgate.checkpoint.wiring import sync_connectivity
    from passgate.journal.syncstate import SyncState, state_path, write_state

    caplog.set_level(logging.INFO, "passgate")
    path = state_path(tmp_path)
    cp = make([], trust, journal)
    cp._connectivity = sync_connectivity(tmp_path)
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
            later(cp, 10)
            cp.handle_texts([])
            assert cp.display.shown[-1].connectivity is screens.Connectivity.UNKNOWN
    path.unlink()
    path.mkdir()  # unreadable: a folder where the file should be
    for _ in range(3):
        later(cp, 10)
        cp.handle_texts([])
    path.rmdir()
    write_state(path, SyncState(connectivity="online", updated_at=NOW + 270))
    later(cp, 10)
    cp.handle_texts([])
    assert cp.display.shown[-1].connectivity is screens.Connectivity.ONLINE
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(bad) + 1, warnings
    assert all(w.startswith(f"sync state {path}: ") for w in warnings), warnings
    assert sum("sync state" in r.getMessage() for r in caplog.records) == len(bad) + 2


def test_a_journal_not_openable_at_start_is_a_fault_that_clears_when_it_opens(
    issuer, trust, tmp_path, caplog
):
    caplog.set_level(logging.INFO, "passgate")
    blocker = tmp_path / "state"
    blocker.write_text("not a folder yet\n")  # e.g. the state partition is not mounted
    journal = Journal(blocker / "journal.sqlite", b"k" * 32, connect=False)
    cp = make([], trust, journal)
    cp.handle_texts([])  # the first look at the journal (the pending count) fails
    assert cp.display.shown[-1] == screens.journal_fault()
    assert cp.signals.calls == ["fault(True)"]
    assert cp.scan(issue(issuer)).verdict.reason.value == "journal_fault"
    blocker.unlink()  # the folder appears: the journal opens on its next use
    later(cp, 11)  # the pending count is looked at again
    cp.handle_texts([])
    assert cp.faults.active == {} and cp.signals.calls[-1] == "fault(False)"
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)
    assert cp.scan(issue(issuer)).verdict.accepted and journal.pending_count() == 1
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: journal" in m for m in logs) == 1
    assert sum("recovered: journal" in m for m in logs) == 1


def test_a_journal_that_reads_but_cannot_write_stays_a_fault_until_a_scan_records(
    issuer, trust, journal
):
    failing = FailingJournal(journal)
    failing.fail = "database or disk is full"
    cp = make([], trust, failing)
    cp.scan(issue(issuer))
    later(cp, 11)
    cp.handle_texts([])  # the pending count still reads fine on a full disk
    assert "journal" in cp.faults.active
    assert cp.display.shown[-1] == screens.journal_fault()


def test_a_bundle_window_longer_than_the_journal_retention_is_warned_and_honoured(
    issuer, trust, journal, caplog
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
    cp = make([], trust, journal, clock=clock, trust=provider)
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


class Told(Notifier):
    """systemd's side of the notify socket: the STATUS= texts the loop sends, in order."""

    def __init__(self) -> None:
        super().__init__({})
        self.lines: list[str] = []

    def notify(self, *lines: str) -> bool:
        self.lines.extend(lines)
        return True


def test_gpio_missing_at_start_is_a_fault_and_accepts_are_flagged_no_relay_until_it_works(
    issuer, trust, journal, caplog
):
    """No pin factory at start-up: the loop runs without outputs under a "GPIO fault" screen,
    still verifying, recording and showing scans; an accept opens nothing and its row says
    so (``no_relay``) but it counts for anti-passback. The factory is made again with the
    loop's backoff; once it works the fault clears and the relay is driven."""
    import functools

    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from passgate.errors import HardwareError
    from passgate.hardware.signals.gpio import Signals as RealSignals
    from passgate.hardware.signals.gpio import SignalsConfig
    from passgate.hardware.signals.retry import RetryingSignals

    caplog.set_level(logging.INFO, "passgate")
    cp = make([], trust, journal, timing=Timing(backoff_initial_s=1, backoff_max_s=4))
    factory = MockFactory(pin_class=MockPWMPin)
    works, attempts = [], []

    def maker():
        attempts.append(round(cp.mono.t - 1000, 2))
        if not works:
            raise HardwareError("no GPIO pin factory: lgpio: can not open gpiochip")
        return factory

    quiet = functools.partial(RealSignals, clock=cp.mono, background=False)
    cfg = SignalsConfig()
    cp.signals = RetryingSignals(cfg, maker, make_signals=quiet, initial_s=1, max_s=4)
    cp.notifier = told = Told()
    cp.handle_texts([])  # the first look: the fault is raised, the retry timer starts
    assert cp.display.shown[-1] == screens.gpio_fault()
    assert told.lines == ["STATUS=fault: gpio"]

    ok = issue(issuer)
    first = cp.scan(ok)
    assert first.verdict.accepted and first.flags == {"no_relay"}
    row = journal.since(0)[-1]
    assert (row.verdict, row.reason, row.flags) == ("accept", "valid", ("no_relay",))
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)  # the result is shown
    later(cp, 3.1)
    cp.handle_texts([])  # the retry due at 1 s fails (at 3.1 s): the next waits 2 s
    assert cp.display.shown[-1] == screens.gpio_fault()
    assert attempts == [0, 3.1]

    works.append(True)
    later(cp, 1.8)
    cp.handle_texts([])
    assert attempts == [0, 3.1]  # not due yet (at 5.1 s)
    later(cp, 0.3)  # the next look (every tick_s)
    cp.handle_texts([])
    assert attempts == [0, 3.1, 5.2] and cp.faults.active == {}
    assert told.lines[-1] == "STATUS=scanning"
    assert isinstance(cp.display.shown[-1], screens.IdleScreen)

    again = cp.scan(ok)  # the no_relay accept counted: a copy of the pass gets no green
    assert again.verdict.reason.value == "already_used" and again.flags == frozenset()
    assert factory.pin(cfg.red_pin).state  # and now the red LED says so
    fresh = cp.scan(issue(issuer, purpose="shopping"))
    assert fresh.verdict.accepted and fresh.flags == frozenset()
    assert not factory.pin(cfg.relay_pin).state  # active low: the door is released
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: gpio" in m for m in logs) == 1
    assert sum("recovered: gpio" in m for m in logs) == 1
    cp.signals.close()
    factory.close()


def _presented(*texts, gap=6):
    """Frames showing each text for 2 frames then nothing for ``gap`` (a new presentation
    each time: the debouncer's 3 frames and 0.5 s of absence), then 4 s of nothing."""
    frames = []
    for text in texts:
        frames += [(text,)] * 2 + [()] * gap
    return frames + [()] * 40


def _relay_steps(changes):
    return [(t, v) for t, ch, v in changes if ch == "relay"]


def test_every_accept_still_holding_is_remembered_and_another_deny_ends_the_holds(
    issuer, trust, journal
):
    """A accepted, B accepted 0.8 s later, A shown again: A's own hold is not over, so that
    is a quiet reshow (it used to be a plain deny that cut the relay during B's hold). A
    stranger's deny follows the normal rules (the relay drops at once), and ends every hold:
    B shown again then is an ordinary repeat, red."""
    a, b = issue(issuer), issue(issuer)
    stranger = issue(issuer, start=NOW - 4 * 3600, duration=3 * 3600)  # expired
    cp = make(_presented(a, b, a, stranger, b), trust, journal)
    _, _, changes = pin_signals(cp)
    cp.run()
    assert reasons(cp) == ["valid", "valid", "already_used", "expired", "already_used"]
    assert [s.flags for s in cp.seen] == [set(), set(), {"reshow"}, set(), set()]
    assert _relay_steps(changes) == [(0.1, 1.0), (2.5, 0.0)]  # cut by the stranger only
    assert [(t, v) for t, ch, v in changes if ch == "red"][:1] == [(2.5, 1.0)]


def test_a_pass_that_expires_during_its_own_hold_does_not_cut_the_relay(issuer, trust, journal):
    """Accepted one second before it expires, shown again 1.2 s later: now expired, recorded
    so (flag reshow), but nothing is signalled and the door keeps its hold (a deny used to
    cut it)."""
    skew = 60  # the verifier's default clock-skew grace
    ok = issuer.issue("work", [ZONE], NOW - 3600, 3600 - skew + 1)  # expired from NOW + 1
    cp = make(_presented(ok, ok, gap=10), trust, journal)  # shown at 0.1 s and 1.3 s
    _, _, changes = pin_signals(cp)
    cp.run()
    assert reasons(cp) == ["valid", "expired"]
    assert cp.seen[1].flags == {"reshow"}
    assert _relay_steps(changes) == [(0.1, 1.0), (3.1, 0.0)]
    assert not [c for c in changes if c[1] == "red"]
    assert journal.since(0)[-1].flags == ("reshow",)
    assert not any(isinstance(s, screens.DeniedScreen) for s in cp.display.shown)


def test_a_clock_policy_flip_during_a_hold_does_not_cut_the_relay_for_that_pass(
    issuer, trust, journal
):
    clock = FixedClock(NOW)
    ok = issue(issuer)
    cp = make([], trust, journal, clock=clock, policy=CheckpointPolicy(clock="deny"))
    assert cp.scan(ok).verdict.accepted
    later(cp, 1)
    clock.state = ClockState.FLOOR  # the clock is no longer believed (a jump, a lost sync)
    again = cp.scan(ok)
    assert again.verdict.reason.value == "clock_untrusted"
    assert again.flags == {"clock_untrusted", "reshow"}
    assert cp.signals.calls == ["accept"] and cp.signals.relay
    assert isinstance(cp.display.shown[-1], screens.AcceptedScreen)


def test_with_anti_passback_off_a_reshow_during_the_hold_does_not_retrigger_the_relay(
    issuer, trust, journal
):
    """Window 0: the pass is accepted again by the checks, and recorded so (flag reshow),
    but the relay keeps the first accept's hold (it used to start a new one: a reshow
    every 2 s kept the door open indefinitely). After the hold it is a new accept."""
    ok = issue(issuer)
    off = CheckpointPolicy(anti_passback_s=0)
    cp = make(_presented(ok, ok, ok, gap=14), trust, journal, policy=off)  # 0.1, 1.7, 3.3 s
    _, _, changes = pin_signals(cp)
    cp.run()
    assert reasons(cp) == ["valid", "valid", "valid"]
    assert [s.flags for s in cp.seen] == [set(), {"reshow"}, set()]
    assert _relay_steps(changes) == [(0.1, 1.0), (3.1, 0.0), (3.3, 1.0), (6.3, 0.0)]
    assert [(r.verdict, r.flags) for r in journal.since(0)] == [
        ("accept", ()), ("accept", ("reshow",)), ("accept", ()),
    ]


def test_a_reshow_after_the_relay_dropped_is_an_ordinary_repeat_even_on_a_green_screen(
    issuer, trust, journal
):
    """verdict_hold_s 10 s, relay_hold_s 3 s: the hold that makes a reshow quiet is the
    relay's. Shown at 1.7 s: quiet. Shown at 4.9 s, with the door shut and the green screen
    still up, the pass is an ordinary repeat: red, already used (it used to stay quiet, so a
    second person with a copy saw green at a shut door)."""
    ok = issue(issuer)
    frames = [(ok,)] * 2 + [()] * 14 + [(ok,)] * 2 + [()] * 30 + [(ok,)] * 2 + [()] * 20
    cp = make(frames, trust, journal, timing=Timing(verdict_hold_s=10.0, relay_hold_s=3.0))
    _, _, changes = pin_signals(cp, relay_hold_s=3.0)
    cp.run()
    assert reasons(cp) == ["valid", "already_used", "already_used"]
    assert [s.flags for s in cp.seen] == [set(), {"reshow"}, set()]
    assert _relay_steps(changes) == [(0.1, 1.0), (3.1, 0.0)]
    assert [(t, v) for t, ch, v in changes if ch == "red"][:1] == [(4.9, 1.0)]
    kinds = [type(s).__name__ for s in cp.display.shown]
    assert kinds == ["IdleScreen", "AcceptedScreen", "DeniedScreen"]
    assert cp.display.shown[-1] == screens.DeniedScreen("already used")


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
    issuer, trust, tmp_path, caplog
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
    cp = make([], trust, journal, clock=clock, trust=provider)
    cp.handle_texts([])  # the bundle loads; the journal cannot be opened
    assert "journal" in cp.faults.active
    later(cp, 11)
    cp.handle_texts([])  # still not: tried again, said once
    blocker.unlink()
    later(cp, 11)
    cp.handle_texts([])  # it opens: the window is recorded now
    assert cp.faults.active == {}
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
