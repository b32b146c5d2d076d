"""An unprovisioned or damaged box waits on the OLED, not in a crash loop (issue 10 points 4, 6).

Rules pinned (``passgate.checkpoint.setupwait``): no config or no journal key is "not set up";
a journal key that is not 32 bytes is "journal key damaged"; while either lasts the OLED says
so, each problem is logged once, systemd hears READY=1 with the STATUS and WATCHDOG=1 within
every period; once the files are there the checkpoint starts in the same process. Through
``passgate run --wait-for-setup`` (the unit's command line) as a process: a 0-byte and a
short key give the fault screen and no exit, and writing the key starts scanning.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakes import FakeClock, RecordingDisplay, Told
from passgate.checkpoint import simulate
from passgate.checkpoint.setupwait import (
    KEY_DAMAGED,
    key_damaged_screen,
    not_set_up_screen,
    wait_for_setup,
)
from passgate.checkpoint.wiring import make_source, run_checkpoint
from passgate.clock.clock import FixedClock
from passgate.hardware.display import render
from passgate.hardware.signals.gpio import make_pin_factory

CLI = [sys.executable, "-c", "import sys; from passgate.cli import main; sys.exit(main())"]
KEY = bytes(range(32))


def write_config(tmp: Path) -> Path:
    """A laptop device's config: a trust folder, a folder of blank frames, PNGs for the OLED.
    The journal key is left out: it is what provisioning writes."""
    state = tmp / "state"
    simulate.prepare(state, time.time())
    (state / "journal.key").unlink()
    frames = tmp / "frames"
    frames.mkdir(exist_ok=True)
    for i in range(3):
        Image.new("L", (320, 240), 200).save(frames / f"f{i}.png")
    config = tmp / "passgate.toml"
    config.write_text(f"""
[checkpoint]
zone = "gate-1"
device_id = "gate-7"
state_dir = "{state}"
[camera]
source = "files"
path = "{frames}"
loop = true
fps = 50
[display]
driver = "dummy"
png_dir = "{state / "oled"}"
[trust]
source = "dir"
dir = "{state / "trust"}"
""")
    return config


class ClosingDisplay(RecordingDisplay):
    closed = False

    def close(self) -> None:
        self.closed = True


class TimedTold(Told):
    """systemd's side, with the monotonic time of every WATCHDOG=1."""

    def __init__(self, clock: FakeClock, watchdog_s: float) -> None:
        super().__init__(watchdog_s)
        self.clock, self.pings = clock, []

    def notify(self, *lines: str) -> bool:
        if "WATCHDOG=1" in lines:
            self.pings.append(self.clock.t)
        return super().notify(*lines)


def test_not_set_up_waits_fed_and_shown_then_starts_without_a_restart(tmp_path, caplog):
    config = tmp_path / "passgate.toml"
    clock = FakeClock(0.0)
    told = TimedTold(clock, watchdog_s=9.0)
    display = ClosingDisplay()
    key = tmp_path / "state" / "journal.key"
    # What a technician (or first boot) does while the box waits: the config appears, then
    # a key cut short, then the real key.
    steps = [(30, lambda: write_config(tmp_path)), (60, lambda: key.write_bytes(b"")),
             (90, lambda: key.write_bytes(KEY))]

    def wait(s: float) -> None:
        clock.wait(s)
        while steps and clock.t >= steps[0][0]:
            steps.pop(0)[1]()

    caplog.set_level(logging.INFO, "passgate.checkpoint.setupwait")
    cfg = wait_for_setup(config, display=lambda c: display, notifier=told,
                         stop=threading.Event(), monotonic=clock, wait=wait, poll_s=5.0)
    assert cfg is not None and cfg.checkpoint.device_id == "gate-7"
    assert display.shown == [not_set_up_screen(os.uname().nodename),
                             not_set_up_screen("gate-7"), key_damaged_screen()]
    assert display.closed  # the checkpoint opens the panel next
    assert told.lines[:2] == ["READY=1", "STATUS=not set up"]
    assert [x for x in told.lines if x.startswith("STATUS=")] == [
        "STATUS=not set up", f"STATUS=fault: {KEY_DAMAGED}", "STATUS=starting"]
    gaps = np.diff([0.0, *told.pings, clock.t])
    assert len(told.pings) >= 25 and gaps.max() <= told.watchdog_s / 3 + 1e-9
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings  # once per problem, not once per look (~18 looks)
    assert "journal.key: 0 bytes, expected 32" in warnings[2] and "provision" in warnings[2]

    # And the checkpoint starts normally, in the same process, with the same notifier.
    checkpoint = run_checkpoint(cfg, source=make_source(cfg), pin_factory=make_pin_factory("mock"),
                                clock=FixedClock(time.time()), notifier=told, max_frames=3)
    assert checkpoint.frames == 3 and told.lines[-1] == "STOPPING=1"


def test_a_config_that_is_there_from_the_start_is_not_waited_on(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "state" / "journal.key").write_bytes(KEY)
    told, calls = Told(3.0), []
    cfg = wait_for_setup(config, display=calls.append, notifier=told, stop=threading.Event(),
                         monotonic=time.monotonic, wait=calls.append)
    assert cfg is not None and calls == [] and told.lines == []  # READY=1 is the loop's


def test_sigterm_while_waiting_ends_the_wait(tmp_path):
    stop, display = threading.Event(), ClosingDisplay()
    clock = FakeClock(0.0)

    def wait(s: float) -> None:
        clock.wait(s)
        if clock.t > 20:
            stop.set()

    assert wait_for_setup(tmp_path / "none.toml", display=lambda c: display, notifier=Told(),
                          stop=stop, monotonic=clock, wait=wait) is None
    assert display.closed


def datagrams(sock: socket.socket, until: str, timeout: float) -> list[str]:
    """Lines systemd would have received, until one equals ``until`` (or the time is up)."""
    lines: list[str] = []
    end = time.monotonic() + timeout
    while until not in lines and time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            lines += sock.recv(4096).decode().splitlines()
        except TimeoutError:
            break
    return lines


@pytest.mark.parametrize("damage", [b"", b"\x07" * 16], ids=["empty", "short"])
def test_passgate_run_with_a_damaged_key_shows_the_fault_and_starts_once_repaired(
    tmp_path, damage
):
    config = write_config(tmp_path)
    key = tmp_path / "state" / "journal.key"
    key.write_bytes(damage)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "WATCHDOG_USEC": "3000000"}
    proc = subprocess.Popen([*CLI, "run", "--config", str(config), "--wait-for-setup"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = datagrams(sock, "WATCHDOG=1", 30)
        assert lines[:3] == ["READY=1", f"STATUS=fault: {KEY_DAMAGED}", "WATCHDOG=1"], lines
        time.sleep(1.5)
        assert proc.poll() is None  # alive and waiting: not exit 2, not a restart loop
        pngs = sorted((tmp_path / "state" / "oled").glob("*.png"))
        shown = np.asarray(Image.open(pngs[-1]).convert("1"), dtype=bool)
        assert (shown == np.asarray(render(key_damaged_screen()).convert("1"))).all()
        key.write_bytes(KEY)  # what `passgate provision --device-file FILE` does, atomically
        lines = datagrams(sock, "READY=1", 30)  # the loop's own, once frames flow
        assert lines.index("STATUS=starting") < lines.index("READY=1"), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
        sock.close()
    assert proc.returncode == 0, err
    assert err.count(KEY_DAMAGED) == 1, err  # logged once, however long it waited
    assert "frames flow: scanning" in err
