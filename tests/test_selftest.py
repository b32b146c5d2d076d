"""``passgate selftest``: every check against fakes, passing and failing, and the command.

Hardware is faked the way the rest of the suite fakes it: frames from ``SceneSource`` and
``FlakyFrameSource``, gpiozero's ``MockFactory`` with its timestamps on a fake clock, luma's
dummy device or a recording output, a fake ``statvfs``, a loopback TCP listener.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import gpiozero.pins.mock
import numpy as np
import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory, MockPWMPin
from PIL import Image, ImageChops

from bundle_support import DAY, NOW, Fleet
from fakes import FakeClock
from passgate.bundle import CheckpointPolicy, FleetPolicy, install_bundle, pin_roots
from passgate.bundle.watch import BundleWatcher
from passgate.cli import main as cli_main
from passgate.cli.selftest import register, selftest
from passgate.clock.clock import ClockState, SystemClock, TimeReading
from passgate.clock.store import ClockStore
from passgate.errors import HardwareError
from passgate.hardware.camera import FlakyFrameSource, Paced, SceneSource, SceneStep, synth
from passgate.hardware.decode import make_decoder
from passgate.hardware.display import MessageScreen, TestPatternScreen, open_luma, render
from passgate.hardware.signals.gpio import SignalsConfig
from passgate.journal.journal import Journal, ScanRecord
from passgate.journal.syncstate import SyncState
from passgate.passes.truststore import TrustStore
from passgate.passes.verify import Verifier
from passgate.selftest.checks import (
    CHECKS,
    Capture,
    Result,
    Status,
    capture,
    check_camera,
    check_decode,
    check_display,
    check_signals,
    exit_code,
    focus_measure,
    run_checks,
    summary,
)
from passgate.selftest.state import (
    check_bundle,
    check_clock,
    check_collector,
    check_disk,
    check_journal,
    check_trust_folder,
    collector_address,
    tcp_connect,
)
from passgate.util.version import version

LINE_RE = re.compile(r"^(PASS|WARN|FAIL|SKIP)  [a-z]{4,9} {1,6} \S.*$")
TEXT = "a QR code on the wall"


def scene_frames(text: str | None, n: int = 6, seed: int = 3) -> list[np.ndarray]:
    src = SceneSource([SceneStep(text, n)], seed=seed)
    return capture(src, n).frames


@pytest.fixture(scope="module")
def code_frames(issuer_key):
    from passgate.issuing.issuer import Issuer

    text = Issuer(issuer_key, "Test City").issue("shopping", ["gate-1"], NOW - 600, 3 * 3600)
    return text, scene_frames(text)


# ---- framework ------------------------------------------------------------------------------


def test_a_result_is_always_one_line_with_a_fixed_layout():
    r = Result("camera", Status.WARN, "too dark\nand\tblurry")
    assert r.line() == "WARN  camera     too dark and blurry"
    assert LINE_RE.match(r.line())
    assert json.loads(json.dumps(r.to_json()))["status"] == "WARN"


def test_run_checks_skips_reports_crashes_and_emits_in_order(caplog):
    def boom() -> Result:
        raise RuntimeError("kaput")

    emitted = []
    results = run_checks(
        [("disk", lambda: Result("disk", Status.PASS, "ok")), ("clock", boom),
         ("camera", lambda: pytest.fail("a skipped check must not run"))],
        skip=["camera"], emit=emitted.append)
    assert [(r.name, r.status) for r in results] == [
        ("disk", Status.PASS), ("clock", Status.FAIL), ("camera", Status.SKIP)]
    assert emitted == results
    assert "RuntimeError: kaput" in results[1].detail
    assert "the check itself failed" in caplog.text  # logged with its traceback
    assert exit_code(results) == 1
    assert summary(results) == "selftest: 1 PASS, 0 WARN, 1 FAIL, 1 SKIP: FAIL"
    assert exit_code([Result("x", Status.WARN, "w"), Result("y", Status.SKIP, "s")]) == 0


# ---- camera ---------------------------------------------------------------------------------


def test_camera_reports_size_rate_focus_and_exposure(code_frames):
    timer = FakeClock()
    src = Paced(SceneSource([SceneStep(code_frames[0], 20)], seed=3), 15.0,
                clock=timer.monotonic, sleep=timer.sleep)
    cap = capture(src, 12, timer.monotonic)
    assert len(cap.frames) == 12 and not cap.error and not src.is_open
    r = check_camera(cap, expected_fps=15.0, setting="lens_position 6.7")
    assert r.status is Status.PASS, r.line()
    f = r.figures
    assert (f["width"], f["height"], f["frames"], f["fps"]) == (640, 480, 12, 15.0)
    assert f["focus"] > 1000 and 60 < f["brightness"] < 180
    assert f["dark_pct"] < 1 and f["bright_pct"] < 1
    assert "640x480" in r.detail and "15.0 fps (asked 15)" in r.detail
    assert r.detail.endswith("lens_position 6.7")


def test_camera_that_cannot_open_fails():
    src = FlakyFrameSource(SceneSource([SceneStep(None, 5)]), initial_open_failures=1)
    r = check_camera(capture(src, 5))
    assert r.status is Status.FAIL and r.detail.startswith("no frame:")
    assert "device not found" in r.detail


def test_a_busy_camera_says_to_stop_the_scanner():
    class Busy(SceneSource):
        def _open(self):
            raise RuntimeError("Failed to acquire camera: Device or resource busy")

    r = check_camera(capture(Busy([SceneStep(None, 1)]), 3))
    assert r.status is Status.FAIL and "systemctl stop passgate-scanner" in r.detail


def test_a_source_without_frames_fails():
    empty = SceneSource([SceneStep(None, 1)])
    empty.read = lambda: None  # opens, then has nothing
    assert check_camera(capture(empty, 3)).status is Status.FAIL


def test_camera_failing_mid_capture_warns():
    src = FlakyFrameSource(SceneSource([SceneStep(None, 20)]), fail_reads=[(4, 100)])
    cap = capture(src, 10)
    assert len(cap.frames) == 4 and cap.error
    r = check_camera(cap)
    assert r.status is Status.WARN and "failed after 4 frames" in r.detail


def _capture(frames, period=1 / 15) -> Capture:
    return Capture(tuple(frames), tuple(1.0 + i * period for i in range(len(frames))), 0.9)


@pytest.mark.parametrize("transform, words", [
    (lambda f: f * 0.12, "too dark"),
    (lambda f: f * 2.6, "too bright"),
    (lambda f: synth.blur(f, 3.0), "blurry"),
])
def test_dark_bright_and_blurry_frames_warn(code_frames, transform, words):
    frames = [synth.to_uint8(transform(f.astype(np.float32))) for f in code_frames[1]]
    r = check_camera(_capture(frames), 15.0)
    assert r.status is Status.WARN and words in r.detail, r.line()
    assert check_camera(_capture(code_frames[1]), 15.0).status is Status.PASS


def test_a_slow_camera_warns(code_frames):
    r = check_camera(_capture(code_frames[1], period=0.25), expected_fps=15.0)
    assert r.status is Status.WARN and "slow: 4.0 fps of 15 asked" in r.detail


def test_focus_drops_with_blur_and_ignores_sensor_noise(code_frames):
    sharp = code_frames[1][0].astype(np.float32)
    blurred = [focus_measure(synth.to_uint8(synth.blur(sharp, s))) for s in (0, 1, 2, 3)]
    assert blurred == sorted(blurred, reverse=True)
    flat = np.full((480, 640), 120.0, np.float32)
    noisy = synth.to_uint8(synth.noise(flat, 2.5, np.random.default_rng(1)))
    assert focus_measure(noisy) < 50  # noise alone stays far below the WARN threshold (150)


# ---- decode ---------------------------------------------------------------------------------


def test_no_code_in_view_is_not_a_failure():
    r = check_decode(scene_frames(None, 4), make_decoder())
    assert r.status is Status.PASS and "no code in view" in r.detail
    assert r.figures["read_frames"] == 0


def test_a_pass_is_verified_and_its_verdict_shown(code_frames, trust):
    text, frames = code_frames
    verifier = Verifier(trust)
    r = check_decode(frames, make_decoder(), lambda t: verifier.check(t, NOW, "gate-1"))
    assert r.status is Status.PASS, r.line()
    assert "passgate pass read in 6 of 6 frames: ACCEPT shopping, 2h 50m left" in r.detail
    assert text not in r.detail and text[4:20] not in r.detail  # the pass is never printed
    assert (r.figures["verdict"], r.figures["reason"]) == ("accept", "valid")
    late = check_decode(frames, make_decoder(),
                        lambda t: verifier.check(t, NOW + 4 * 3600, "gate-1"))
    assert "DENY expired 1h 10m ago" in late.detail
    wrong = check_decode(frames, make_decoder(), lambda t: verifier.check(t, NOW, "lobby"))
    assert "DENY not valid here" in wrong.detail
    unchecked = check_decode(frames, make_decoder(), None)
    assert "not verified (no trust data)" in unchecked.detail


def test_other_qr_text_is_shown_shortened():
    r = check_decode(scene_frames(TEXT, 3), make_decoder())
    assert r.status is Status.PASS and repr(TEXT) in r.detail and r.figures["kind"] == "qr"
    long = "x" * 60
    r = check_decode(scene_frames(long, 3), make_decoder())
    assert "'" + "x" * 37 + "...'" in r.detail


def test_a_code_read_only_sometimes_warns():
    frames = scene_frames(None, 8) + scene_frames(TEXT, 2)
    r = check_decode(frames, make_decoder())
    assert r.status is Status.WARN and "read in 2 of 10 frames" in r.detail


def test_decode_without_frames_is_skipped():
    assert check_decode([], make_decoder()).status is Status.SKIP


# ---- display --------------------------------------------------------------------------------


class Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.images: list[Image.Image] = []
        self.fail_at = fail_at
        self.cleaned = False

    def display(self, image) -> None:
        if self.fail_at is not None and len(self.images) == self.fail_at:
            raise OSError(121, "Remote I/O error")
        self.images.append(image.copy())

    def cleanup(self) -> None:
        self.cleaned = True


def test_display_draws_both_pattern_phases_then_a_message():
    out, timer = Recorder(), FakeClock()
    r = check_display(lambda: out, "ssd1306 on /dev/i2c-1", hold_s=1.5, sleep=timer.sleep,
                      monotonic=timer.monotonic)
    assert r.status is Status.PASS and r.detail.startswith("ssd1306 on /dev/i2c-1:")
    a, b, msg = out.images
    assert a.tobytes() == render(TestPatternScreen(0)).tobytes()
    # the two phases are each other's inverse: every pixel lit once and dark once
    assert ImageChops.logical_xor(a, b).getbbox() == (0, 0, 128, 64)
    assert ImageChops.logical_xor(a, b).histogram()[0] == 0
    assert msg.tobytes() == render(MessageScreen("selftest", "display ok; results on the "
                                                 "terminal")).tobytes()
    assert timer.waits == [1.5, 1.5] and out.cleaned


def test_display_through_luma_dummy_and_png_files(tmp_path):
    from passgate.hardware.display import PngFolder

    assert check_display(lambda: open_luma("dummy"), sleep=lambda s: None).status is Status.PASS
    r = check_display(lambda: PngFolder(tmp_path, prefix="selftest"), sleep=lambda s: None)
    assert r.status is Status.PASS
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "selftest-00001.png", "selftest-00002.png", "selftest-00003.png"]


def test_a_display_that_cannot_be_opened_fails():
    class DeadBus:
        def write_i2c_block_data(self, *a):
            raise OSError(121, "Remote I/O error")

    r = check_display(lambda: open_luma("ssd1306", 1, 0x3C, bus=DeadBus()), "ssd1306")
    assert r.status is Status.FAIL
    assert r.detail.startswith("cannot open ssd1306:") and "0x3C" in r.detail


def test_a_display_failing_mid_test_fails_and_is_cleaned_up():
    out = Recorder(fail_at=1)
    r = check_display(lambda: out, sleep=lambda s: None)
    assert r.status is Status.FAIL and "after 1 screen:" in r.detail and out.cleaned


def test_no_display_configured_is_skipped():
    assert check_display(None).status is Status.SKIP


# ---- signals --------------------------------------------------------------------------------


@pytest.fixture
def pins(monkeypatch):
    timer = FakeClock()
    monkeypatch.setattr(gpiozero.pins.mock, "monotonic", timer.monotonic)
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory, timer
    factory.reset()
    factory.close()


def _timeline(pin) -> list[tuple[float, float]]:
    """(absolute time from the first state, value) of a MockPin's recorded states."""
    out, t = [], 0.0
    for s in pin.states:
        t += s.timestamp
        out.append((round(t, 3), float(s.state)))
    return out


def test_signals_cycle_each_output_in_turn_with_a_short_relay_pulse(pins):
    factory, timer = pins
    r = check_signals(SignalsConfig(), lambda: factory, clock=timer.monotonic,
                      sleep=timer.sleep)
    assert r.status is Status.PASS, r.line()
    assert "relay pulsed 0.2 s (the door lock clicks)" in r.detail
    assert _timeline(factory.pin(17))[:3] == [(0, 0), (0, 1), (0.2, 0)]  # buzzer 0.2 s
    assert _timeline(factory.pin(27))[:3] == [(0, 0), (0.5, 1), (1.0, 0)]  # green
    assert _timeline(factory.pin(22))[:3] == [(0, 0), (1.1, 1), (1.6, 0)]  # red
    # The relay board is active-low: idle high, pulled low for 0.2 s, high again.
    assert _timeline(factory.pin(23))[:4] == [(0, 0), (0, 1), (1.7, 0), (1.9, 1)]
    assert round(sum(timer.waits), 3) == 1.9
    # Everything released afterwards: the pins are free for the scanner.
    assert all(factory.pin(n).function == "input" for n in (17, 27, 22, 23))


def test_an_active_high_relay_and_a_missing_relay(pins):
    factory, timer = pins
    cfg = SignalsConfig(relay_active_high=True)
    assert check_signals(cfg, lambda: factory, clock=timer, sleep=timer.sleep).status \
        is Status.PASS
    assert _timeline(factory.pin(23))[1:3] == [(1.7, 1), (1.9, 0)]
    r = check_signals(SignalsConfig(relay_pin=None), lambda: factory, clock=timer,
                      sleep=timer.sleep)
    assert r.status is Status.PASS and "not fitted: relay" in r.detail


def test_a_pin_in_use_fails(pins):
    factory, timer = pins
    holder = LED(23, pin_factory=factory)
    try:
        r = check_signals(SignalsConfig(), lambda: factory, clock=timer, sleep=timer.sleep)
    finally:
        holder.close()
    assert r.status is Status.FAIL and "GPIO23" in r.detail


def test_no_gpio_library_fails():
    def no_gpio():
        raise HardwareError("no GPIO pin factory: lgpio: No module named 'lgpio'")

    r = check_signals(SignalsConfig(), no_gpio)
    assert r.status is Status.FAIL and "no GPIO pin factory" in r.detail


def test_an_output_that_cannot_be_switched_fails(pins, monkeypatch, caplog):
    factory, timer = pins
    pin = factory.pin(23)
    real = pin._set_state

    def stuck_high(value):  # the board idles high; energising it (low) fails
        if not value:
            raise OSError("stuck")
        real(value)

    monkeypatch.setattr(pin, "_set_state", stuck_high)
    r = check_signals(SignalsConfig(), lambda: factory, clock=timer, sleep=timer.sleep)
    assert r.status is Status.FAIL and "could not switch relay" in r.detail
    assert "signals.relay: cannot set output" in caplog.text


# ---- clock ----------------------------------------------------------------------------------


def test_clock_states_and_policy():
    trusted = check_clock(TimeReading(NOW, ClockState.TRUSTED), source="timesyncd",
                          stored_floor=NOW - 3 * 60)
    assert trusted.status is Status.PASS and "trusted (timesyncd)" in trusted.detail
    assert "floor saved 3 min ago" in trusted.detail and trusted.figures["floor_age_s"] == 180
    floor = check_clock(TimeReading(NOW, ClockState.FLOOR), policy="flag")
    assert floor.status is Status.WARN and "no floor saved yet" in floor.detail
    assert "passes accepted but flagged" in floor.detail
    denied = check_clock(TimeReading(NOW, ClockState.FLOOR), policy="deny")
    assert denied.status is Status.FAIL and "passes refused" in denied.detail
    bad = check_clock(TimeReading(NOW, ClockState.TRUSTED), floor_error="bad field")
    assert bad.status is Status.WARN and "unreadable" in bad.detail


def test_a_clock_gone_backwards_reports_how_far(tmp_path):
    store = ClockStore(tmp_path / "clock.floor")
    store.raise_floor(NOW, "boot-a", 5.0, "token")
    clock = SystemClock(store, system_time=lambda: NOW - 2 * DAY, monotonic=lambda: 10.0,
                        boot_id="boot-b", timesync_flag=tmp_path / "none", persist=False)
    st = clock.status()
    r = check_clock(st.reading, source=st.source, system=st.system,
                    stored_floor=store.load().floor, policy="deny")
    assert st.reading.state is ClockState.BACKWARDS
    assert r.status is Status.FAIL and "system clock 2d 0h behind the floor" in r.detail


# ---- trust data -----------------------------------------------------------------------------


def _installed(tmp_path, who: Fleet, **kw) -> BundleWatcher:
    pin_roots(tmp_path, who.roots.set)
    install_bundle(who.bundle(3, **kw), tmp_path, NOW)
    return BundleWatcher(tmp_path)


def test_bundle_fresh_stale_expiring_and_missing(tmp_path):
    fleet = Fleet()
    watcher = _installed(tmp_path / "b", fleet, expires=NOW + 30 * DAY)
    ok = check_bundle(watcher.current(), NOW + 3600, "gate-1")
    assert ok.status is Status.PASS, ok.line()
    assert ok.detail.startswith("v3, refreshed 1h 00m ago, 1 issuer key, 0 revoked, expires")
    stale = check_bundle(watcher.current(), NOW + 8 * DAY, "gate-1")
    assert stale.status is Status.FAIL and "stale (trust data 8 days old" in stale.detail
    assert "passes refused" in stale.detail and stale.figures["stale"] is True
    expired = check_bundle(watcher.current(), NOW + 31 * DAY, "gate-1")
    assert expired.status is Status.FAIL and "expired 1 day ago" in expired.detail
    missing = check_bundle(BundleWatcher(tmp_path / "empty").current(), NOW)
    assert missing.status is Status.FAIL and "every pass is denied" in missing.detail


def test_stale_under_a_flag_policy_warns_and_near_expiry_warns(tmp_path):
    flag = FleetPolicy(CheckpointPolicy(stale="flag", max_offline_s=60 * DAY))
    watcher = _installed(tmp_path, Fleet(), expires=NOW + 10 * DAY, fleet=flag)
    soon = check_bundle(watcher.current(), NOW + 10 * DAY - 3600)
    assert soon.status is Status.WARN and "expires soon" in soon.detail
    flag_stale = FleetPolicy(CheckpointPolicy(stale="flag", max_offline_s=DAY))
    watcher = _installed(tmp_path / "2", Fleet(), expires=NOW + 10 * DAY, fleet=flag_stale)
    r = check_bundle(watcher.current(), NOW + 2 * DAY)
    assert r.status is Status.WARN and "passes accepted, flagged" in r.detail


def test_trust_folder(tmp_path, issuer_key):
    from passgate.passes.keys import public_pem

    (tmp_path / "issuer.pub").write_bytes(public_pem(issuer_key))
    ok = check_trust_folder(lambda: TrustStore.from_dir(tmp_path), tmp_path)
    assert ok.status is Status.PASS and "1 issuer key," in ok.detail
    gone = tmp_path / "nothing"
    bad = check_trust_folder(lambda: TrustStore.from_dir(gone), gone)
    assert bad.status is Status.FAIL and "does not exist" in bad.detail


# ---- collector ------------------------------------------------------------------------------

ONLINE = SyncState("online", NOW - 60, NOW - 60, None, 3, 0, 3, NOW - 60)


def test_collector_standalone_and_online():
    r = check_collector(SyncState(), NOW, url=None, connect=None)
    assert r.status is Status.PASS and "no collector configured" in r.detail
    calls = []
    r = check_collector(ONLINE, NOW, url="https://collector.example.org/",
                        connect=lambda h, p, t: calls.append((h, p, t)))
    assert r.status is Status.PASS, r.line()
    assert calls == [("collector.example.org", 443, 3.0)]
    assert "online, last success 1 min ago, 3 pending" in r.detail
    assert "collector.example.org:443 reachable" in r.detail


def test_collector_problems_are_warnings_never_failures():
    def refuse(host, port, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    unreachable = check_collector(ONLINE, NOW, url="http://10.0.0.9:8470", connect=refuse)
    assert unreachable.status is Status.WARN and "Connection refused" in unreachable.detail
    offline = SyncState("offline", NOW - 30, NOW - 5 * DAY, "timeout after 10 s", 412, 0, 3,
                        NOW - 30)
    r = check_collector(offline, NOW, url=None, connect=None)
    assert r.status is Status.WARN and "last error: timeout after 10 s" in r.detail
    assert "last success 5d 0h ago, 412 pending" in r.detail
    old = SyncState("online", NOW - 7200, NOW - 7200, None, 0, 0, 3, NOW - 7200)
    r = check_collector(old, NOW, connect=None)
    assert r.status is Status.WARN and "is passgate-sync running?" in r.detail
    dead = SyncState("online", NOW - 60, NOW - 60, None, 0, 2, 3, NOW - 60)
    r = check_collector(dead, NOW, connect=None)
    assert r.status is Status.WARN and "2 rows refused" in r.detail
    r = check_collector(ONLINE, NOW, url="ftp://x", connect=lambda *a: None)
    assert r.status is Status.WARN and "not an http(s) URL" in r.detail


def test_tcp_connect_over_loopback():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        r = check_collector(ONLINE, NOW, url=f"http://127.0.0.1:{port}", connect=tcp_connect)
        assert r.status is Status.PASS and f"127.0.0.1:{port} reachable" in r.detail
    r = check_collector(ONLINE, NOW, url=f"http://127.0.0.1:{port}", connect=tcp_connect,
                        timeout=1.0)
    assert r.status is Status.WARN and "cannot connect" in r.detail
    assert collector_address("https://c.example:8443/x") == ("c.example", 8443)


# ---- disk -----------------------------------------------------------------------------------


@pytest.mark.parametrize("free_mb, status", [(4000, Status.PASS), (300, Status.WARN),
                                             (20, Status.FAIL)])
def test_disk_thresholds(tmp_path, free_mb, status):
    def statvfs(path):
        assert path == tmp_path
        return SimpleNamespace(f_bavail=free_mb * 256, f_frsize=4096, f_blocks=8000 * 256)

    r = check_disk(tmp_path, statvfs=statvfs, mounts=None)
    assert r.status is status and r.figures["free_mb"] == free_mb
    assert r.detail.startswith(f"{free_mb} MB free of 8000 MB on {tmp_path}")


MOUNTS = """\
/dev/mmcblk0p2 / ext4 rw,noatime 0 0
overlay / overlay rw,lowerdir=/media/root-ro,upperdir=/media/root-rw/overlay 0 0
/dev/mmcblk0p3 /var/lib/passgate ext4 rw,noatime 0 0
tmpfs /run tmpfs rw,nosuid 0 0
/dev/sda1 /media/my\\040stick vfat rw 0 0
"""


def test_a_state_folder_lost_at_reboot_warns(tmp_path):
    from passgate.selftest.state import mount_of

    assert mount_of(Path("/var/lib/passgate/journal.sqlite"), MOUNTS) == (
        "/var/lib/passgate", "ext4")
    assert mount_of(Path("/var/lib/passgate-sync"), MOUNTS) == ("/", "overlay")
    assert mount_of(Path("/run/x"), MOUNTS) == ("/run", "tmpfs")
    assert mount_of(Path("/media/my stick/a"), MOUNTS) == ("/media/my stick", "vfat")

    def statvfs(path):
        return SimpleNamespace(f_bavail=10**6, f_frsize=4096, f_blocks=2 * 10**6)

    r = check_disk(Path("/var/lib/passgate-sync"), statvfs=statvfs, mounts=lambda: MOUNTS)
    assert r.status is Status.WARN and "on overlay at /, lost at every reboot" in r.detail
    ok = check_disk(Path("/var/lib/passgate"), statvfs=statvfs, mounts=lambda: MOUNTS)
    assert ok.status is Status.PASS and ok.figures["fstype"] == "ext4"


def test_disk_on_a_missing_folder_fails(tmp_path):
    assert check_disk(tmp_path / "missing").status is Status.FAIL
    real = check_disk(tmp_path)  # os.statvfs itself
    assert 0 < real.figures["free_mb"] <= real.figures["total_mb"]


# ---- journal --------------------------------------------------------------------------------


def test_journal_counts_pending_rows_and_runs_quick_check(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, bytes(range(32)), "gate-1") as j:
        for i in range(3):
            j.record(ScanRecord(os.urandom(16), NOW + i, "trusted", "accept", "valid",
                                j.pass_hash(b"%d" % i), None, "work", "gate-1"))
        j.mark_uploaded([1], NOW + 10)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    r = check_journal(path)
    assert r.status is Status.PASS, r.line()
    assert r.figures == {**r.figures, "pending": 2, "dead_letters": 0, "quick_check": "ok"}
    assert "2 rows pending upload" in r.detail
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # read-only


def test_journal_read_while_the_scanner_writes(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, bytes(range(32)), "gate-1") as j:  # open: its -wal holds the rows
        for i in range(2):
            j.record(ScanRecord(os.urandom(16), NOW + i, "trusted", "accept", "valid",
                                j.pass_hash(b"%d" % i), None, "work", "gate-1"))
        assert (tmp_path / "journal.sqlite-wal").stat().st_size > 0
        r = check_journal(path)
        assert r.status is Status.PASS and r.figures["pending"] == 2
        j.record(ScanRecord(os.urandom(16), NOW + 5, "trusted", "deny", "expired",
                            j.pass_hash(b"x"), None, "work", "gate-1"))
    assert check_journal(path).figures["pending"] == 3


def test_missing_and_damaged_journals_fail(tmp_path):
    r = check_journal(tmp_path / "journal.sqlite")
    assert r.status is Status.FAIL and "no journal at" in r.detail
    assert not (tmp_path / "journal.sqlite").exists()  # never created by the self-test
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(8192))
    assert check_journal(junk).status is Status.FAIL


def test_a_journal_with_a_damaged_page_fails(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, bytes(range(32)), "gate-1") as j:
        for i in range(300):
            j.record(ScanRecord(os.urandom(16), NOW + i, "trusted", "accept", "valid",
                                j.pass_hash(b"%d" % i), None, "work", "gate-1"))
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page + 100: 3 * page + 400] = os.urandom(300)  # inside a table page
    path.write_bytes(bytes(data))
    r = check_journal(path)
    assert r.status is Status.FAIL, r.line()


# ---- the command ----------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["selftest", *argv])


def test_simulated_selftest_passes_every_check_one_line_each(tmp_path):
    out, timer = io.StringIO(), FakeClock()
    code = selftest(_args("--simulate", "--state", str(tmp_path), "--frames", "6",
                          "--sync-dir", str(tmp_path / "sync")), out=out, timer=timer)
    lines = out.getvalue().splitlines()
    assert code == 0, out.getvalue()
    assert len(lines) == len(CHECKS) + 1
    assert [line.split()[1] for line in lines[:-1]] == list(CHECKS)
    assert all(LINE_RE.match(line) for line in lines[:-1]), lines
    # Issue 13: the summary names the release that ran the checks.
    assert lines[-1] == f"selftest: passgate {version()}: 9 PASS, 0 WARN, 0 FAIL, 0 SKIP: ok"
    assert "15.0 fps (asked 15)" in lines[0]
    assert "passgate pass read in 6 of 6 frames: ACCEPT" in lines[1]
    assert len(list((tmp_path / "oled").glob("selftest-*.png"))) == 3


def test_simulated_selftest_as_json_with_skips(tmp_path):
    out = io.StringIO()
    code = selftest(_args("--simulate", "--state", str(tmp_path), "--json", "--frames", "3",
                          "--skip", "camera", "signals", "--sync-dir", str(tmp_path)),
                    out=out, timer=FakeClock())
    doc = json.loads(out.getvalue())
    assert code == 0 and doc["ok"] is True and doc["version"] == version()
    status = {r["name"]: r["status"] for r in doc["results"]}
    assert status == {**dict.fromkeys(CHECKS, "PASS"), "camera": "SKIP", "decode": "SKIP",
                      "signals": "SKIP"}
    disk = next(r for r in doc["results"] if r["name"] == "disk")
    assert disk["figures"]["free_mb"] > 0


def test_a_failing_check_makes_the_exit_code_1(tmp_path):
    selftest(_args("--simulate", "--state", str(tmp_path), "--frames", "2", "--skip",
                   *CHECKS), out=io.StringIO(), timer=FakeClock())  # prepares the state
    (tmp_path / "journal.sqlite").write_bytes(b"not a database" * 100)
    out = io.StringIO()
    code = selftest(_args("--simulate", "--state", str(tmp_path), "--frames", "2",
                          "--sync-dir", str(tmp_path)), out=out, timer=FakeClock())
    assert code == 1
    assert out.getvalue().splitlines()[-1].endswith("1 FAIL, 0 SKIP: FAIL")
    assert re.search(r"^FAIL  journal ", out.getvalue(), re.M)


def test_usage_errors_exit_2(tmp_path, capsys):
    assert cli_main(["selftest", "--simulate", "--frames", "0"]) == 2
    assert cli_main(["selftest", "--simulate", "--config", str(tmp_path / "x.toml")]) == 2
    assert cli_main(["selftest", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def device_config(tmp_path: Path, lang: str | None = None) -> Path:
    """A device config on a laptop: frames from a folder, the dummy OLED writing PNGs, nothing
    provisioned (trust data and journal fail), an enrolment naming a collector that refuses;
    ``lang``: its ``[display] language`` (none: the default)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(scene_frames(TEXT, 3)):
        Image.fromarray(f).save(frames / f"{i}.png")
    (tmp_path / "sync").mkdir()
    (tmp_path / "sync" / "enrolment.json").write_text(json.dumps(
        {"collector": "http://127.0.0.1:9", "device": "gate-1", "fingerprint": "x"}))
    (tmp_path / "state").mkdir()
    cfg = tmp_path / "passgate.toml"
    language_line = f'language = "{lang}"' if lang else ""
    cfg.write_text(f"""
[checkpoint]
zone = "gate-1"
device_id = "gate-1"
state_dir = "{tmp_path / 'state'}"
[camera]
source = "files"
path = "{frames}"
[display]
driver = "dummy"
png_dir = "{tmp_path / 'oled'}"
{language_line}
""")
    return cfg


def test_device_mode_from_a_config_on_a_laptop(tmp_path, monkeypatch):
    """The real entry point with a config: frames from a folder, the dummy OLED writing PNGs,
    GPIO on MockFactory through GPIOZERO_PIN_FACTORY; nothing provisioned, so the trust data
    and the journal fail, and the collector URL comes from the enrolment record."""
    cfg = device_config(tmp_path)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    out = io.StringIO()
    code = selftest(_args("--config", str(cfg), "--sync-dir", str(tmp_path / "sync")),
                    out=out, timer=FakeClock())
    text = out.getvalue()
    got = {line.split()[1]: line.split()[0] for line in text.splitlines()[:-1]}
    assert code == 1, text
    assert got == {"camera": "PASS", "decode": "PASS", "display": "PASS", "signals": "PASS",
                   "clock": got["clock"], "bundle": "FAIL", "collector": "WARN",
                   "disk": got["disk"], "journal": "FAIL"}, text
    assert "640x480, 3 frames" in text  # a folder of 3 images ends: not a camera fault
    assert repr(TEXT) in text
    assert "cannot connect to http://127.0.0.1:9" in text
    assert len(list((tmp_path / "oled").glob("selftest-*.png"))) == 3
