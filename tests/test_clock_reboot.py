"""No expired pass opens the door after an offline reboot (issue 10, point 1).

The real checkpoint (``run_checkpoint``: journal, verifier, decide, the relay on gpiozero's
MockFactory pins, the display policy) runs on a :class:`SystemClock` whose system time,
monotonic time and boot id are injected, over a real clock file in ``tmp_path``. A "reboot"
is a new SystemClock with a new boot id on the same file: monotonic time restarts, the
network is gone (no NTP), and the system clock comes back wherever it comes back.

The rules: while the clock is trusted its time reaches the clock file every
``persist_every_s`` and at a clean stop, so after a reboot the floor is the last moment the
device knew the time; a pass that had expired by then is ``expired`` (said on the OLED,
measured from the floor) under every clock policy, and the relay stays shut. What remains
(time passing while the device is off) is written down in docs/trust.md section 5.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from passgate.checkpoint import simulate
from passgate.checkpoint.wiring import make_source, run_checkpoint
from passgate.clock.clock import ClockConfig, ClockState, SystemClock
from passgate.clock.store import ClockStore
from passgate.config.load import load_config
from passgate.hardware.display.screens import reason_words
from passgate.hardware.signals.gpio import make_pin_factory

NOW = 1_790_000_000.0  # 2026-09-21
HOUR, DAY, YEAR = 3600.0, 86400.0, 365 * 86400.0
ZONE = "gate-1"


class Device:
    """One checkpoint's sense of time. ``real`` is the true time; the system clock follows
    it until a reboot sets it somewhere else; NTP is synchronised until the first reboot (the
    site is offline from then on); monotonic time restarts at every boot."""

    def __init__(self, tmp_path: Path) -> None:
        self.real = self.system = NOW
        self.mono, self.boot, self.synced = 1000.0, 1, True
        self.flag = tmp_path / "timesync-synchronized"  # timesyncd's flag, per boot
        self.flag.touch()

    def run(self, seconds: float) -> None:
        self.real += seconds
        self.system += seconds
        self.mono += seconds

    def reboot(self, off_s: float, system: float) -> None:
        """Power off for ``off_s``, then boot offline with the system clock at ``system``."""
        self.real += off_s
        self.mono, self.boot, self.synced, self.system = 5.0, self.boot + 1, False, system
        self.flag.unlink(missing_ok=True)

    def clock(self, store: ClockStore, **config: float) -> SystemClock:
        return SystemClock(
            store,
            ClockConfig(**config),
            system_time=lambda: self.system,
            monotonic=lambda: self.mono,
            boot_id=f"boot-{self.boot}",
            timesync_flag=self.flag,
            kernel_sync=lambda: self.synced,
        )


def run_trusted(device: Device, clock: SystemClock, seconds: float, step: float = 30.0) -> None:
    """The scanner's frame loop reads the clock all the time; every ``step`` is plenty."""
    end = device.real + seconds
    while device.real < end:
        device.run(step)
        assert clock.read().trusted


@dataclass
class Door:
    """What the checkpoint did with one presented pass."""

    reason: str = ""
    flags: frozenset[str] = frozenset()
    state: ClockState | None = None
    words: str = ""  # the OLED's reason line
    relay_opened: bool = False
    relay_states: list[bool] = field(default_factory=list)


def setup(tmp_path: Path, policy: str = "flag") -> tuple[Path, object, ClockStore]:
    """A laptop 'device': trust folder, hash key, a few blank frames, a config file."""
    state = tmp_path / "state"
    simulate.prepare(state, NOW)
    issuer, _ = simulate.load_issuer(state)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(8):
        Image.new("L", (64, 48), 200).save(frames / f"f{i}.png")
    config = tmp_path / "passgate.toml"
    config.write_text(f"""
[checkpoint]
zone = "{ZONE}"
state_dir = "{state}"
[camera]
source = "files"
path = "{frames}"
loop = false
fps = 100
[decoder]
absent_s = 0.01
[display]
driver = "dummy"
[trust]
source = "dir"
dir = "{state / "trust"}"
[clock]
untrusted_policy = "{policy}"
""")
    return config, issuer, ClockStore(state / "clock.floor")


class Script:
    """A decoder that 'sees' ``text`` in frames 2-4 of the folder and nothing else."""

    def __init__(self, text: str | None) -> None:
        self.text, self.n = text, 0

    def decode(self, frame: object) -> list[str]:
        self.n += 1
        return [self.text] if self.text is not None and 2 <= self.n <= 4 else []


def present(config: Path, clock: SystemClock, text: str) -> Door:
    """Run the real checkpoint on ``clock`` while ``text`` is shown once."""
    cfg = load_config(config)
    factory = make_pin_factory("mock")
    relay = factory.pin(cfg.signals.relay_pin)
    door = Door()
    parts: list = []

    def on_scan(scan) -> None:
        door.reason, door.flags = scan.verdict.reason.value, scan.flags
        door.state = scan.reading.state
        door.words = reason_words(scan.verdict, scan.reading.now)[0]
        door.relay_opened = not relay.state  # active low: energised is low

    run_checkpoint(
        cfg,
        source=make_source(cfg),
        pin_factory=factory,
        clock=clock,
        decoder=Script(text),
        on_scan=on_scan,
        ready=parts.append,
    )
    door.relay_states = [bool(s.state) for s in relay.states]
    assert parts[0].scans == 1
    return door


def expired_pass(issuer, expires: float) -> str:
    return issuer.issue("work", [ZONE], int(expires) - 2 * HOUR, 2 * HOUR)


# -- the attack: a clock set back after an offline reboot ----------------------------------
@pytest.mark.parametrize("policy", ["flag", "deny"])
@pytest.mark.parametrize("back", [HOUR, DAY, YEAR], ids=["hour", "day", "year"])
def test_a_pass_expired_before_a_clean_stop_stays_expired_after_a_reboot_set_back(
    tmp_path, policy, back
):
    config, issuer, store = setup(tmp_path, policy)
    device = Device(tmp_path)
    with device.clock(store) as scanner:  # the scanner: trusted by NTP for nearly 3 hours
        run_trusted(device, scanner, 3 * HOUR - 5 * 60)
    stop = device.real  # SIGTERM: a planned power-off
    pass_text = expired_pass(issuer, stop - 3 * 60)  # expired 3 min before the stop

    device.reboot(10 * 60, system=stop - back)  # offline, the clock comes back set back
    door = present(config, device.clock(store), pass_text)

    assert door.state is ClockState.BACKWARDS
    assert (door.reason, door.relay_opened) == ("expired", False)
    assert door.words == "expired 3 min ago"  # measured from the floor: the stop
    assert door.flags == {"clock_untrusted"}  # said, but it is not the reason
    assert store.load().floor >= stop  # and the floor never went back


def test_a_pass_still_valid_at_the_floor_is_accepted_flagged_the_window_that_remains(tmp_path):
    """Real time passing while the device is off cannot be known without an RTC: a pass
    that was valid at the stop and expired while the device was off is accepted under
    ``flag``, flagged (docs/trust.md section 5). ``deny`` refuses it: clock_untrusted."""
    config, issuer, store = setup(tmp_path)
    device = Device(tmp_path)
    with device.clock(store) as scanner:
        run_trusted(device, scanner, HOUR)
    stop = device.real
    pass_text = expired_pass(issuer, stop + HOUR)
    device.reboot(2 * HOUR, system=stop)  # off 2 h; timesyncd's saved time: the stop
    door = present(config, device.clock(store), pass_text)
    assert door.reason == "valid" and door.flags == {"clock_untrusted"}
    config.write_text(config.read_text().replace('"flag"', '"deny"'))
    door = present(config, device.clock(store), pass_text)
    assert (door.reason, door.relay_opened) == ("clock_untrusted", False)


@pytest.mark.parametrize("off_hours", [1, 8, 72])
def test_a_power_cut_while_offline_loses_at_most_the_persist_interval(tmp_path, off_hours):
    """No clean stop: what the periodic writes put down is all there is."""
    config, issuer, store = setup(tmp_path)
    device = Device(tmp_path)
    scanner = device.clock(store)
    run_trusted(device, scanner, 3 * HOUR - 60)  # then the power goes
    cut = device.real
    assert store.load().floor >= cut - ClockConfig().persist_every_s
    pass_text = expired_pass(issuer, cut - 7 * 60)  # expired 7 min before the cut
    device.reboot(off_hours * HOUR, system=cut - DAY)  # no saved time: a day back
    door = present(config, device.clock(store), pass_text)
    assert (door.reason, door.relay_opened) == ("expired", False)


def test_no_floor_file_the_scanner_makes_one_and_it_holds(tmp_path):
    config, issuer, store = setup(tmp_path)
    assert not store.path.exists()
    device = Device(tmp_path)
    with device.clock(store) as scanner:
        run_trusted(device, scanner, 4 * 60)  # less than one persist interval, then stopped
    stop = device.real
    assert store.load().floor == pytest.approx(stop)
    pass_text = expired_pass(issuer, stop - 2 * 60)
    device.reboot(5 * 60, system=stop - HOUR)
    door = present(config, device.clock(store), pass_text)
    assert (door.reason, door.words, door.relay_opened) == ("expired", "expired 2 min ago", False)


def test_forward_a_year_after_a_reboot_does_not_raise_the_floor_even_at_a_clean_stop(tmp_path):
    """An unauthenticated jump forward must not reach the file: not by the periodic writes,
    not by the write at the stop. Back at the right time the clock is not ``backwards``."""
    config, issuer, store = setup(tmp_path)
    device = Device(tmp_path)
    with device.clock(store) as scanner:
        run_trusted(device, scanner, HOUR)
    stop = device.real
    device.reboot(60, system=stop + YEAR)
    with device.clock(store) as scanner:
        device.run(2 * HOUR)
        assert scanner.read().state is ClockState.FLOOR
    assert store.load().floor < stop + DAY
    device.reboot(60, system=device.real)  # the clock right again
    valid = issuer.issue("work", [ZONE], int(device.real) - 60, 3600)
    door = present(config, device.clock(store), valid)
    assert door.state is ClockState.FLOOR and door.reason == "valid"


def test_the_write_at_the_stop_is_what_was_known_not_more(tmp_path):
    """``save`` writes the floor (trusted time, carried by monotonic time), never the
    system clock of an untrusted boot, and writes nothing when the floor has not moved."""
    store = ClockStore(tmp_path / "clock.floor")
    device = Device(tmp_path)
    with device.clock(store) as scanner:
        run_trusted(device, scanner, 60)
    stop = device.real
    stamp = store.stamp()
    device.clock(store).save()  # same boot, nothing moved: no write (the SD card)
    assert store.stamp() == stamp
    device.reboot(60, system=stop + DAY)
    with device.clock(store):
        device.run(30)
    assert store.load().floor == pytest.approx(stop + 30)  # monotonic progress only


# -- the scanner itself, stopped by SIGTERM ---------------------------------------------------
def test_the_running_scanner_raises_the_floor_and_writes_it_at_sigterm(tmp_path):
    """The real ``run_checkpoint`` on a trusted clock whose time runs 1800 times fast: the
    floor reaches the file while it runs, and SIGTERM writes the last of it; a reboot with
    the clock a day back starts from there."""
    config, _, store = setup(tmp_path)
    frames = tmp_path / "frames"
    for i in range(8, 400):  # enough frames to run on (the folder is read once, not looped)
        Image.new("L", (64, 48), 200).save(frames / f"f{i:03d}.png")
    cfg = load_config(config)
    start_real, start_mono = time.monotonic(), 1000.0

    def fast() -> float:
        return start_mono + (time.monotonic() - start_real) * 1800

    clock = SystemClock(
        store,
        system_time=lambda: NOW + fast() - start_mono,
        monotonic=fast,
        boot_id="boot-1",
        timesync_flag=(tmp_path / "synced"),
        kernel_sync=lambda: True,
    )
    (tmp_path / "synced").touch()
    sent: list[float] = []

    def stop_when_the_floor_moved() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            floor = store.load().floor if store.path.exists() else None
            if floor is not None and floor >= NOW + 20 * 60:  # written while running
                break
            time.sleep(0.02)
        sent.append(NOW + fast() - start_mono)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=stop_when_the_floor_moved)
    factory = make_pin_factory("mock")

    def ready(_checkpoint) -> None:
        watcher.start()

    cp = run_checkpoint(
        cfg, source=make_source(cfg), pin_factory=factory, clock=clock, ready=ready,
        decoder=Script(None),
    )
    watcher.join()
    assert cp.stopping  # stopped by the SIGTERM, not by the end of the frames
    assert store.load().floor >= sent[0]  # the write at the stop

    reboot = SystemClock(
        store,
        system_time=lambda: sent[0] - DAY,
        monotonic=lambda: 5.0,
        boot_id="boot-2",
        timesync_flag=tmp_path / "not-synced",
        kernel_sync=lambda: False,
    )
    reading = reboot.read()
    assert reading.state is ClockState.BACKWARDS and reading.now >= sent[0]
