"""The frame loop and systemd: ``READY=1`` once, watchdog pings from the loop alone.

``READY=1`` goes out once frames flow, or after ``ready_grace_s`` without a frame (with the
camera fault as its status), and the watchdog is fed only while the loop turns, so systemd
restarts a hung scanner but not one that is alive and retrying. These tests read a real
notify socket; the loop is built by the ``checkpoint`` fixture (tests/checkpoint_support.py).
"""

from __future__ import annotations

import socket

from checkpoint_support import NOW, POLICY, ZONE
from fakes import FakeClock, Frames, RecordingDisplay, RecordingSignals, TextDecoder
from passgate.checkpoint.debounce import Debouncer
from passgate.checkpoint.loop import Checkpoint, Timing
from passgate.checkpoint.sdnotify import Notifier
from passgate.checkpoint.trustview import StaticTrust
from passgate.clock.clock import FixedClock


def test_watchdog_pings_while_the_loop_runs_ready_once_frames_flow(checkpoint, journal, tmp_path):
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

    class Slow(TextDecoder):  # each frame takes 0.5 s; read what systemd would have read
        def decode(self, frame):
            self.clock.advance(0.5)
            drain()
            return []

    mono = FakeClock(wall=FixedClock(NOW))
    cp = checkpoint(
        [()] * 20,
        journal,
        mono=mono,
        decoder=Slow(mono),
        notifier=Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"}),
    )
    cp.run()
    drain()
    sock.close()
    assert got[0] == "WATCHDOG=1"
    assert got.count("READY=1\nSTATUS=scanning") == 1
    # 20 frames x 0.5 s = 10 s of loop, a ping at most every 1 s (a third of the timeout)
    assert 8 <= got.count("WATCHDOG=1") <= 11


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
        decoder=TextDecoder(FakeClock(wall=FixedClock(NOW))),
        debouncer=Debouncer(),
        trust=StaticTrust(trust, POLICY, journal),
        journal=journal,
        signals=RecordingSignals(),
        display=RecordingDisplay(),
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


def test_a_camera_dead_at_boot_still_tells_systemd_ready_after_the_start_grace(
    checkpoint, journal, tmp_path
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
    mono = FakeClock(wall=FixedClock(NOW))
    start = mono.t

    def wait(s):
        mono.wait(s)
        while True:
            try:
                got.append((mono.t - start, sock.recv(4096).decode()))
            except BlockingIOError:
                return

    cp = checkpoint(
        [()] * 5,
        journal,
        mono=mono,
        wait=wait,
        notifier=Notifier({"NOTIFY_SOCKET": path}),
        flaky=dict(initial_open_failures=8),
        timing=Timing(backoff_initial_s=1, backoff_max_s=4, ready_grace_s=20),
    )
    cp.run()
    wait(0)
    sock.close()
    ready = [(t, m) for t, m in got if "READY=1" in m]
    assert [m for _, m in ready] == ["READY=1\nSTATUS=fault: camera"]  # once, saying why
    assert 20 <= ready[0][0] <= 20.5  # at the grace, not when frames came (27 s)
    assert got[-1][1] == "STATUS=scanning"  # the camera came back: status, not READY again
    assert cp.loop.frames == 5
