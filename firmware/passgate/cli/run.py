"""``passgate run``: the checkpoint daemon (``--simulate``: the same on a laptop).

The hardware objects are built here and only here: the frame source from ``[camera]``
(picamera2 is imported when it opens), gpiozero's pin factory (lgpio on a Pi 5, RPi.GPIO on
older boards; ``GPIOZERO_PIN_FACTORY=mock`` runs the real entry point on a laptop), and the
real clock with its persisted floor. The luma I2C device is opened by the display worker
from ``[display]``. Everything else is assembled by
:func:`passgate.checkpoint.wiring.run_checkpoint`.
"""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

PIN_FACTORIES = {"lgpio": "lgpio", "rpigpio": "rpigpio", "mock": "mock"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the checkpoint (--simulate: on a laptop, no hardware)")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="main config file (default /etc/passgate/passgate.toml)",
    )
    p.add_argument(
        "--wait-for-setup",
        action="store_true",
        help="no config or journal key yet (an unprovisioned box): show 'not set up' and wait "
        "for them instead of exiting (what passgate-scanner.service runs)",
    )
    sim = p.add_argument_group("simulation (no config, no hardware)")
    sim.add_argument(
        "--simulate",
        action="store_true",
        help="simulated camera, GPIO on MockFactory, OLED as PNG files",
    )
    sim.add_argument(
        "--state",
        type=Path,
        default=Path("state"),
        metavar="DIR",
        help="state folder for keys, trust data, journal and PNGs (default ./state)",
    )
    sim.add_argument("--loop", action="store_true", help="play the scene (or frames) forever")
    sim.add_argument("--frames", type=Path, metavar="DIR", help="frames from a folder of images")
    sim.add_argument(
        "--camera",
        choices=("scene", "webcam"),
        default="scene",
        help="scene: the scripted scene (default); webcam: a V4L2/USB webcam",
    )
    sim.add_argument(
        "--language",
        choices=("en", "ru", "tt"),
        default="en",
        help="language of the screens and verdict lines: en, ru (Russian), tt (Tatar)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from passgate.errors import UsageError

    if args.simulate:
        if args.config is not None:
            raise UsageError("--simulate needs no config; drop --config")
        if args.frames is not None and args.camera != "scene":
            raise UsageError("give --frames DIR or --camera webcam, not both")
        if args.frames is not None and not args.frames.is_dir():
            # A device's camera.path may appear later (a mount) and is retried; a folder
            # typed on the command line that is not there is a mistake to say at once.
            raise UsageError(f"--frames {args.frames}: not a folder")
        from passgate.checkpoint.simulate import main

        return main(
            args.state,
            loop=args.loop,
            frames=args.frames,
            camera=args.camera,
            language=args.language,
        )
    sim_only = [
        o
        for o, v in (
            ("--loop", args.loop),
            ("--frames", args.frames),
            ("--camera", args.camera != "scene"),
            ("--language", args.language != "en"),
        )
        if v
    ]
    if args.wait_for_setup and args.simulate:
        raise UsageError("--wait-for-setup: not with --simulate")
    if sim_only:
        raise UsageError(f"{', '.join(sim_only)}: only with --simulate")
    if args.wait_for_setup:
        return run_when_set_up(args.config)
    return run_device(args.config)


def run_when_set_up(config: Path | None) -> int:
    """``--wait-for-setup``: "not set up" (or "journal key damaged") on the OLED, systemd fed,
    until the files are there; then the checkpoint, in this process (no restart)."""
    import threading
    import time

    from passgate.checkpoint.sdnotify import Notifier
    from passgate.checkpoint.setupwait import wait_for_setup
    from passgate.checkpoint.wiring import stop_on_signals
    from passgate.config.load import DEFAULT_PATH
    from passgate.config.schema import DisplaySection
    from passgate.hardware.display import Display

    stop = threading.Event()
    with Notifier() as notifier, stop_on_signals(stop.set):
        cfg = wait_for_setup(
            config or DEFAULT_PATH,
            display=lambda c: Display.from_config(c.display if c else DisplaySection()),
            notifier=notifier,
            stop=stop,
            monotonic=time.monotonic,
            wait=stop.wait,
        )
    if cfg is None:  # SIGTERM while waiting
        return 0
    return run_device(config, cfg)


def run_device(config: Path | None, cfg=None) -> int:
    """The real checkpoint: config, hardware, loop until SIGTERM. ``cfg``: already loaded."""
    from passgate.checkpoint.wiring import loaded_path, make_source, run_checkpoint
    from passgate.clock.clock import ClockConfig, SystemClock
    from passgate.clock.store import ClockStore
    from passgate.config.load import load_config
    from passgate.hardware.signals.gpio import make_pin_factory

    if cfg is None:
        cfg = load_config(config)  # ConfigError -> exit 2 with one line naming file and key
    wanted = os.environ.get("GPIOZERO_PIN_FACTORY", "auto").lower()
    # Built by the checkpoint, and built again while it fails: no GPIO at start-up is a
    # "GPIO fault" on the OLED, not an exit (under systemd, a restart loop, a blank screen).
    pin_factory = functools.partial(make_pin_factory, PIN_FACTORIES.get(wanted, "auto"))
    floor_file = loaded_path(cfg.clock.floor_file, "clock.floor_file")
    clock = SystemClock(ClockStore(floor_file), ClockConfig.from_section(cfg.clock))
    run_checkpoint(cfg, source=make_source(cfg), pin_factory=pin_factory, clock=clock)
    return 0
