"""The entry points end to end: the simulation, ``passgate run`` on a laptop, SIGTERM."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from passgate.checkpoint import simulate
from passgate.config.load import from_dict
from passgate.hardware.display import render
from passgate.hardware.display.screens import DeniedScreen, StoppedScreen
from passgate.issuing import qr
from passgate.journal.journal import Journal

CLI = [sys.executable, "-c", "import sys; from passgate.cli import main; sys.exit(main())"]
SCENE = [
    ("ACCEPT", "valid pass"),
    ("DENY   expired", "expired pass"),
    ("DENY   bad_signature", "forged pass"),
    ("DENY   revoked", "revoked pass"),
    ("DENY   wrong_zone", "pass for another zone"),
    ("DENY   unknown_key", "unknown issuer"),
    ("DENY   already_used", "valid pass again"),
]


def pixels(path_or_image) -> np.ndarray:
    img = Image.open(path_or_image) if isinstance(path_or_image, Path) else path_or_image
    return np.asarray(img.convert("1"), dtype=bool)


def verdict_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if " ACCEPT " in ln or " DENY " in ln]


def test_the_simulated_checkpoint_plays_the_scene(tmp_path: Path):
    state = tmp_path / "state"
    out = io.StringIO()
    assert simulate.main(state, out=out, fps=300) == 0
    lines = verdict_lines(out.getvalue())
    assert len(lines) == len(SCENE), out.getvalue()
    for line, (verdict, label) in zip(lines, SCENE, strict=True):
        assert f" {verdict}" in line and line.endswith(f"[{label}]"), line
    assert "door released" in out.getvalue()
    assert "7 scans (1 accepted, 6 denied)" in out.getvalue()

    with Journal.open_readonly(state / "journal.sqlite") as j:
        rows = j.since(0)
        assert [r.reason for r in rows] == [
            "valid",
            "expired",
            "bad_signature",
            "revoked",
            "wrong_zone",
            "unknown_key",
            "already_used",
        ]
        assert {r.zone for r in rows} == {"gate-1"} and j.verify() is None
    pngs = sorted((state / "oled").glob("frame-*.png"))
    shown = [pixels(p) for p in pngs]
    assert (shown[-1] == pixels(render(StoppedScreen()))).all()
    for screen in (
        DeniedScreen("revoked"),
        DeniedScreen("invalid signature"),
        DeniedScreen("unknown issuer"),
        DeniedScreen("already used"),
    ):
        assert any((s == pixels(render(screen))).all() for s in shown), screen
    assert len(pngs) >= 9  # idle, 7 verdicts (played fast: no idle between), stopped

    # A second run keeps the keys and the journal: the new scene's passes are new passes.
    key = next((state / "keys").glob("*.key"), None) if (state / "keys").exists() else None
    before = key.read_bytes() if key else None
    out2 = io.StringIO()
    simulate.main(state, out=out2, fps=300)
    assert [ln.split("  [")[1] for ln in verdict_lines(out2.getvalue())] == [
        f"{label}]" for _, label in SCENE
    ]
    assert verdict_lines(out2.getvalue())[0].split()[1] == "#8"
    if key:
        assert key.read_bytes() == before


def test_frames_from_a_folder(tmp_path: Path):
    state = tmp_path / "state"
    simulate.prepare(state, time.time())
    issuer, _ = simulate.load_issuer(state)
    now = int(time.time())
    frames = tmp_path / "frames"
    frames.mkdir()
    blank = Image.new("L", (640, 480), 200)

    def frame(name: str, text: str | None) -> None:
        img = blank.copy()
        if text is not None:
            qr.write_png(text, tmp_path / "code.png", scale=4)
            img.paste(Image.open(tmp_path / "code.png").convert("L"), (150, 80))
        img.save(frames / f"{name}.png")

    valid = issuer.issue("work", ["gate-1"], now - 60, 3600)
    wrong_zone = issuer.issue("work", ["elsewhere"], now - 60, 3600)
    script = [None] * 3 + [valid] * 3 + [None] * 12 + [wrong_zone] * 2 + [None] * 3
    for i, text in enumerate(script):
        frame(f"{i:03d}", text)
    out = io.StringIO()
    simulate.main(state, frames=frames, out=out, fps=300)
    lines = verdict_lines(out.getvalue())
    assert [ln.split()[2:4] for ln in lines] == [["ACCEPT", "work:"], ["DENY", "wrong_zone:"]]
    assert lines[0].endswith("[a code not in the scene]")


def test_run_usage_errors_exit_2(tmp_path: Path):
    for argv, message in (
        (["run", "--loop"], "--loop: only with --simulate"),
        (["run", "--simulate", "--config", "x.toml"], "--simulate needs no config"),
        (["run", "--simulate", "--frames", "d", "--camera", "webcam"], "not both"),
        (["run", "--config", str(tmp_path / "none.toml")], "config file not found"),
        (["run", "--simulate", "--frames", str(tmp_path / "missing")], "not a folder"),
    ):
        r = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=30)
        assert r.returncode == 2, (argv, r.stderr)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def device_setup(tmp_path: Path, frames_loop: bool = True) -> tuple[Path, object]:
    """A laptop 'device': trust folder, hash key, a folder of frames, a config file."""
    state = tmp_path / "state"
    simulate.prepare(state, time.time())
    issuer, _ = simulate.load_issuer(state)
    frames = tmp_path / "frames"
    frames.mkdir()
    now = int(time.time())
    blank = Image.new("L", (640, 480), 200)
    for i in range(6):
        blank.save(frames / f"a{i}.png")
    qr.write_png(issuer.issue("work", ["gate-1"], now - 60, 3600), tmp_path / "code.png", scale=4)
    img = blank.copy()
    img.paste(Image.open(tmp_path / "code.png").convert("L"), (150, 80))
    img.save(frames / "b.png")
    config = tmp_path / "passgate.toml"
    config.write_text(f"""
[checkpoint]
zone = "gate-1"
state_dir = "{state}"
[camera]
source = "files"
path = "{frames}"
loop = {str(frames_loop).lower()}
fps = 50
[decoder]
absent_s = 0.05
[display]
driver = "dummy"
png_dir = "{state / "oled"}"
[trust]
source = "dir"
dir = "{state / "trust"}"
""")
    return config, issuer


def test_sigterm_in_process_releases_the_relay_and_shows_stopped(tmp_path: Path):
    """The entry point's own SIGTERM handler, with the real Signals on MockFactory pins."""
    from passgate.checkpoint.wiring import make_source, run_checkpoint
    from passgate.clock.clock import FixedClock
    from passgate.config.load import load_config
    from passgate.hardware.signals.gpio import make_pin_factory

    config, _ = device_setup(tmp_path)
    cfg = load_config(config)
    factory = make_pin_factory("mock")
    relay = factory.pin(cfg.signals.relay_pin)
    seen = []

    def on_scan(scan):
        seen.append((scan.verdict.accepted, relay.state))
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the loop's handler, main thread

    before = signal.getsignal(signal.SIGTERM)
    checkpoint = run_checkpoint(
        cfg,
        source=make_source(cfg),
        pin_factory=factory,
        clock=FixedClock(time.time()),
        on_scan=on_scan,
    )
    assert seen == [(True, False)]  # accepted: relay energised (active low: pin low)
    assert checkpoint.stopping and checkpoint.scans == 1
    # idle high (active low: off), energised low on accept, released high on SIGTERM, and
    # only then the pin is closed (MockPin reads 0 once closed: an input, no longer driven)
    assert [bool(s.state) for s in relay.states] == [False, True, False, True, False]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler was put back
    last = sorted((cfg.checkpoint.state_dir / "oled").glob("*.png"))[-1]
    assert (pixels(last) == pixels(render(StoppedScreen()))).all()


@pytest.mark.slow
def test_sigterm_to_passgate_run_stops_cleanly(tmp_path: Path):
    """``passgate run --config`` as a process (GPIO on MockFactory), stopped by SIGTERM."""
    config, _ = device_setup(tmp_path)
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*CLI, "run", "--config", str(config)], env=env, stderr=subprocess.PIPE, text=True
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "frames flow" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=20)
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert "SIGTERM: stopping" in log and "stopped after" in log
    pngs = sorted((tmp_path / "state" / "oled").glob("*.png"))
    assert (pixels(pngs[-1]) == pixels(render(StoppedScreen()))).all()
    with Journal.open_readonly(tmp_path / "state" / "journal.sqlite") as j:
        assert [r.reason for r in j.since(0)][:1] == ["valid"]


def test_missing_hash_key_is_a_config_error(tmp_path: Path):
    config, _ = device_setup(tmp_path)
    (tmp_path / "state" / "journal.key").unlink()
    r = subprocess.run(
        [*CLI, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
    )
    assert r.returncode == 2
    assert "journal.hash_key_file" in r.stderr and "not found" in r.stderr


def test_sim_config_is_an_ordinary_config(tmp_path: Path):
    cfg = simulate.sim_config(tmp_path)
    assert cfg == from_dict(
        {
            "checkpoint": {"zone": "gate-1", "device_id": "sim-gate-1", "state_dir": str(tmp_path)},
            "trust": {"source": "dir", "dir": str(tmp_path / "trust")},
            "display": {"driver": "dummy", "png_dir": str(tmp_path / "oled")},
            "decoder": {"absent_frames": 5, "absent_s": 10 / 15},
            "antipassback": {"window": "10m"},
            "clock": {"untrusted_policy": "flag"},
        }
    )


def test_loop_plays_the_scene_again(tmp_path: Path):
    out = io.StringIO()
    scene_frames = simulate.scene(simulate.prepare(tmp_path / "s", time.time()), False).total_frames
    simulate.main(tmp_path / "state", loop=True, out=out, fps=300, max_frames=scene_frames + 45)
    lines = verdict_lines(out.getvalue())
    assert len(lines) == len(SCENE) + 1
    # the second time round the valid pass is already used: anti-passback, across the loop
    assert " DENY   already_used" in lines[-1] and lines[-1].endswith("[valid pass]")


def test_a_journal_that_cannot_be_opened_is_a_fault_on_screen_not_an_exit(tmp_path: Path):
    """Scans are denied journal_fault (never green) and the OLED says "journal fault"; the
    scanner keeps running (under systemd an exit would be a restart loop with a blank OLED)."""
    import dataclasses

    from passgate.checkpoint.wiring import make_source, run_checkpoint
    from passgate.clock.clock import FixedClock
    from passgate.config.load import load_config
    from passgate.hardware.display.screens import journal_fault
    from passgate.hardware.signals.gpio import make_pin_factory

    config, _ = device_setup(tmp_path, frames_loop=False)
    cfg = load_config(config)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the journal's folder should be\n")
    cfg = dataclasses.replace(
        cfg, journal=dataclasses.replace(cfg.journal, path=blocker / "journal.sqlite")
    )
    factory = make_pin_factory("mock")
    relay = factory.pin(cfg.signals.relay_pin)
    seen = []
    checkpoint = run_checkpoint(
        cfg,
        source=make_source(cfg),
        pin_factory=factory,
        clock=FixedClock(time.time()),
        on_scan=lambda scan: seen.append((scan.verdict.reason.value, relay.state)),
    )
    assert seen == [("journal_fault", True)]  # the relay never moved (active low: high)
    assert "journal" in checkpoint.faults.active
    shown = [pixels(p) for p in sorted((cfg.checkpoint.state_dir / "oled").glob("*.png"))]
    assert any((s == pixels(render(journal_fault()))).all() for s in shown)


def test_a_camera_path_missing_at_start_up_is_retried_as_what_it_turns_out_to_be(
    tmp_path: Path,
):
    """camera.path is looked at on every open: a folder that appears later (a mount) is
    read as a folder, not taken for a video file for good."""
    from passgate.checkpoint.wiring import make_source
    from passgate.errors import HardwareError

    frames = tmp_path / "frames"
    cfg = from_dict(
        {
            "checkpoint": {"zone": "gate-1", "state_dir": str(tmp_path)},
            "camera": {"source": "files", "path": str(frames)},
        }
    )
    source = make_source(cfg)
    with pytest.raises(HardwareError, match="no such folder or video file"):
        source.open()
    frames.mkdir()
    Image.new("L", (64, 48), 200).save(frames / "a.png")
    source.open()
    assert source.read().shape == (48, 64)
    assert source.read() is None
    source.close()


def test_gpio_missing_at_start_up_is_a_fault_on_screen_not_an_exit_and_recovers(
    tmp_path: Path, caplog
):
    """``passgate run`` hands in a function that makes the pin factory. While it raises, the
    checkpoint runs without outputs: "GPIO fault" on the OLED, scans recorded and shown, an
    accept flagged ``no_relay`` (the relay never moved). It is made again with backoff, and
    then the door opens. (Under systemd an exit would be a restart loop, a blank OLED.)"""
    import logging

    from passgate.checkpoint.wiring import make_source, run_checkpoint
    from passgate.clock.clock import FixedClock
    from passgate.config.load import load_config
    from passgate.errors import HardwareError
    from passgate.hardware.display.screens import AcceptedScreen, gpio_fault
    from passgate.hardware.signals.gpio import make_pin_factory

    caplog.set_level(logging.INFO, "passgate")
    config, _ = device_setup(tmp_path)
    with config.open("a") as f:
        f.write("[antipassback]\nwindow = 0\n")  # accepted again (quietly: a reshow, in a hold)
    cfg = load_config(config)
    factory = make_pin_factory("mock")
    relay = factory.pin(cfg.signals.relay_pin)
    seen, made, parts, screens = [], [], [], []

    def maker():
        made.append(1)
        if not seen:  # no GPIO until a scan was made without it
            raise HardwareError("no GPIO pin factory: lgpio: can not open gpiochip")
        return factory

    def on_scan(scan):
        seen.append((scan.verdict.reason.value, scan.flags, len(relay.states), relay.state))
        screens.append(parts[0].screens.at(scan.reading.now))
        if not {"no_relay", "reshow"} & scan.flags:  # a signalled accept with the relay
            parts[0].stop()

    checkpoint = run_checkpoint(
        cfg,
        source=make_source(cfg),
        pin_factory=maker,
        clock=FixedClock(time.time()),
        on_scan=on_scan,
        ready=parts.append,
        max_frames=1000,
    )
    assert seen[0] == ("valid", {"no_relay"}, 1, False)  # the relay pin was never claimed
    reason, flags, driven, state = seen[-1]
    assert (reason, flags, state) == ("valid", frozenset(), False)  # active low: released
    assert driven > 1 and len(made) >= 2 and checkpoint.faults.active == {}
    with Journal.open_readonly(cfg.journal.path) as j:
        assert [r.flags for r in j.since(0)] == [tuple(f) for _, f, _, _ in seen]
    shown = [pixels(p) for p in sorted((cfg.checkpoint.state_dir / "oled").glob("*.png"))]
    assert isinstance(screens[0], AcceptedScreen)  # the no_relay accept is shown as one
    for screen in (gpio_fault(), screens[0]):
        assert any((s == pixels(render(screen))).all() for s in shown), screen
    logs = [r.getMessage() for r in caplog.records]
    assert sum("fault: gpio" in m for m in logs) == 1
    assert sum("recovered: gpio" in m for m in logs) == 1


def test_an_illuminator_in_the_config_lights_for_a_candidate_and_goes_dark_after(
    tmp_path: Path,
):
    """``signals.illuminator_pin`` set: ``passgate run``'s wiring builds the illuminator with the
    other outputs (MockFactory pins) and the reader lights it while a candidate (a QR symbol
    located but not decoded) is in view; ``illuminator_hold_s`` after the last one it is dark
    again, while the run goes on, and it stays dark to the end."""
    import dataclasses

    from fakes import Frames
    from passgate.checkpoint.wiring import run_checkpoint
    from passgate.clock.clock import FixedClock
    from passgate.config.load import load_config
    from passgate.hardware.camera import Paced
    from passgate.hardware.signals.gpio import make_pin_factory
    from test_reading import _frame

    config, _ = device_setup(tmp_path)
    cfg = load_config(config)
    cfg = dataclasses.replace(cfg, signals=dataclasses.replace(
        cfg.signals, illuminator_pin=24, illuminator_hold_s=0.1, illuminator_light="candidate"))
    empty = np.full((480, 640), 120, np.uint8)
    candidate = _frame(4.0, spoil=True)  # finder patterns found, data never decodes
    scene = [empty] * 3 + [candidate] * 4 + [empty] * 20
    frames = Frames(scene)
    factory = make_pin_factory("mock")
    changes: list[tuple[float, int]] = []  # (value, frames read when it changed)

    def on_change(channel: str, value: float) -> None:
        if channel == "illuminator":
            changes.append((value, len(scene) - len(frames.frames)))

    run_checkpoint(cfg, source=Paced(frames, 30.0), pin_factory=factory,
                   clock=FixedClock(time.time()), on_signal_change=on_change)
    assert changes[0] == (1.0, 4)  # lit by the first candidate frame (the 4th read)
    assert changes[1][0] == 0.0 and 8 < changes[1][1] < len(scene)  # dark before the end
    assert len(changes) == 2
    assert factory.pin(24).state == 0


def test_no_illuminator_pin_no_light_and_no_reader_around_a_plain_source(tmp_path: Path):
    """Not fitted (the default): a files source keeps the plain decoder, nothing to light."""
    from passgate.checkpoint.wiring import make_reader, make_source
    from passgate.config.load import load_config
    from passgate.hardware.decode import ZxingDecoder

    config, _ = device_setup(tmp_path)
    cfg = load_config(config)
    calls: list[object] = []
    reader = make_reader(cfg, make_source(cfg), lambda *a: calls.append(a))
    assert isinstance(reader, ZxingDecoder)
