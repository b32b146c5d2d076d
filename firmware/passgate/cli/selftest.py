"""``passgate selftest``: on-site checks for a technician, one line per check.

    sudo systemctl stop passgate-scanner      # it holds the camera, the OLED and the pins
    sudo /opt/passgate/venv/bin/passgate selftest [--config FILE] [--frames N] [--skip CHECK ...]
    passgate selftest --simulate [--state DIR]   # a laptop: simulated camera, pins and OLED

Checks, in order: camera, decode, display, signals, clock, bundle, collector, disk, journal
(:mod:`passgate.selftest.checks`, :mod:`passgate.selftest.state`). The hardware objects (frame
source, gpiozero pin factory, OLED, clock) are built here and only here; with ``--simulate``
they are the fakes ``passgate run --simulate`` uses. Exit codes: 0 no check failed (warnings
allowed), 1 a check failed, 2 usage or configuration error.

The lines are printed in the device's language (``[display] language``: en, ru, tt), or in
``--language``'s. The check names that ``--skip`` takes, and everything ``--json`` prints, stay
English: a script or a report sent from the field reads the same from every device.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from passgate.selftest.checks import CHECKS
from passgate.util.i18n import ENGLISH, LANGUAGES, Language, language

DEFAULT_SYNC_DIR = Path("/var/lib/passgate-sync")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftest",
        help="on-site checks: camera, decode, display, outputs, clock, trust, collector, disk, "
        "journal",
    )
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="main config file (default /etc/passgate/passgate.toml)")
    p.add_argument("--simulate", action="store_true",
                   help="no hardware: simulated camera showing a demo pass, MockFactory pins, "
                   "OLED as PNG files in STATE/oled/")
    p.add_argument("--state", type=Path, default=Path("state"), metavar="DIR",
                   help="--simulate: state folder (default ./state, as passgate run --simulate)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--frames", type=int, default=30, metavar="N",
                   help="frames to capture for the camera and decode checks (default 30)")
    p.add_argument("--skip", nargs="+", action="extend", default=[], choices=CHECKS,
                   metavar="CHECK", help=f"leave out checks: {', '.join(CHECKS)}")
    p.add_argument("--collector", metavar="URL",
                   help="collector to try a TCP connection to (default: the sync agent's "
                   "enrolment record)")
    p.add_argument("--sync-dir", type=Path, default=DEFAULT_SYNC_DIR, metavar="DIR",
                   help=f"the sync agent's folder with enrolment.json (default {DEFAULT_SYNC_DIR})")
    p.add_argument("--no-connect", action="store_true",
                   help="do not open a TCP connection to the collector")
    p.add_argument("--language", choices=LANGUAGES, metavar="LANG",
                   help="language of the lines: en, ru (Russian), tt (Tatar); default the "
                   "config's [display] language; with --simulate also the simulated OLED's "
                   "(--json is always English)")
    p.set_defaults(func=selftest)


class RealTime:
    """The monotonic clock and sleep every timed check uses (tests pass a fake)."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


@dataclass
class Hardware:
    """Everything that touches hardware, made by the entry point.

    ``source``: a frame source, not opened. ``pin_factory()``: makes the gpiozero factory.
    ``display()``: opens the OLED (or PNG output); ``None`` when none is configured.
    ``clock``: ``read()`` (and ``status()`` for the real clock). ``camera_note``: what the
    camera line adds about the camera's settings (the lens position). The names and the note
    are in the lines' language.
    """

    source: Any
    pin_factory: Callable[[], Any]
    display: Callable[[], Any] | None
    display_name: str
    clock: Any
    camera_note: str = ""


def selftest(args: argparse.Namespace, *, out: TextIO | None = None,
             timer: Any = RealTime) -> int:
    """The command; ``out`` and ``timer`` (``monotonic``/``sleep``) are for tests.

    Informational log lines (the camera starting, the bundle loading) would interleave with
    the result lines on the terminal, so only warnings are logged unless ``-v`` is given.
    """
    root = logging.getLogger()
    before = root.level
    if not getattr(args, "verbose", False):
        root.setLevel(max(before, logging.WARNING))
    try:
        return _selftest(args, out or sys.stdout, timer)
    finally:
        root.setLevel(before)


def _selftest(args: argparse.Namespace, out: TextIO, timer: Any) -> int:
    from passgate.errors import UsageError
    from passgate.selftest.checks import exit_code, run_checks, summary
    from passgate.util.version import version

    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    if args.simulate and args.config is not None:
        raise UsageError("--simulate needs no config; drop --config")
    with contextlib.ExitStack() as stack:
        wanted = getattr(args, "language", None)  # None: the device's own
        if args.simulate:
            lang = ENGLISH if args.json else language(wanted or "en")
            cfg, hw = simulated(args.state, stack, timer, wanted or "en", lang)
        else:
            from passgate.config.load import load_config

            cfg = load_config(args.config)  # ConfigError: one line, exit 2
            lang = ENGLISH if args.json else language(wanted or cfg.display.language)
            hw = device_hardware(cfg, stack, lang)
        url, note = collector_url(args.collector, args.sync_dir, lang)
        checks = build_checks(cfg, hw, frames=args.frames, url=url, url_note=note,
                              connect=not args.no_connect, timer=timer,
                              check_mounts=not args.simulate, lang=lang)

        def emit(result):
            if not args.json:
                print(result.line(lang), file=out, flush=True)

        results = run_checks(checks, skip=args.skip, emit=emit, lang=lang)
    if args.json:
        doc = {"ok": exit_code(results) == 0, "version": version(),
               "results": [r.to_json() for r in results]}
        print(json.dumps(doc, sort_keys=True), file=out)
    else:
        print(summary(results, version(), lang), file=out)
    return exit_code(results)


def collector_url(given: str | None, sync_dir: Path,
                  lang: Language = ENGLISH) -> tuple[str | None, str]:
    """The collector URL to try, and a note (in ``lang``) when it cannot be known."""
    from passgate.errors import ConfigError
    from passgate.sync.enrolment import ENROLMENT_FILE, load_enrolment

    if given:
        return given, ""
    try:
        record = load_enrolment(Path(sync_dir) / ENROLMENT_FILE)
    except ConfigError as exc:  # typically: permission denied without sudo
        return None, lang.gettext("collector URL unknown ({error})").format(error=exc)
    return (record.collector, "") if record is not None else (None, "")


def build_checks(cfg: Any, hw: Hardware, *, frames: int, url: str | None = None,
                 url_note: str = "", connect: bool = True, timer: Any = RealTime,
                 check_mounts: bool = True,
                 lang: Language = ENGLISH) -> list[tuple[str, Callable[[], Any]]]:
    """The checks for ``cfg`` around the given hardware, as ``(name, thunk)`` in order.

    ``check_mounts``: look at the state folder's file system type (not in a simulation,
    whose state folder may well be on a laptop's tmpfs). ``lang``: of the lines; the
    self-test message on the OLED is in the config's ``[display] language``."""
    from passgate.journal.syncstate import read_state, state_path
    from passgate.selftest import checks as st
    from passgate.selftest import state as ss

    zone = cfg.checkpoint.zone
    shared: dict[str, Any] = {}  # each look-up made once, by the checks that need it

    def trust() -> tuple[Any, Any]:
        """(Loaded bundle or None, TrustStore or None), read once."""
        if "trust" not in shared:
            if cfg.trust.source == "dir":
                from passgate.errors import PassgateError
                from passgate.passes.truststore import TrustStore

                try:
                    shared["trust"] = (None, TrustStore.from_dir(cfg.trust.dir))
                except (PassgateError, OSError):  # the bundle check reports why
                    shared["trust"] = (None, None)
            else:
                from passgate.bundle.watch import BundleWatcher

                loaded = BundleWatcher(cfg.trust.bundle_dir).current()
                shared["trust"] = (loaded, loaded.store)
        return shared["trust"]

    def camera():
        shared["capture"] = cap = st.capture(hw.source, frames, timer.monotonic)
        return st.check_camera(cap, cfg.camera.fps, setting=hw.camera_note, lang=lang)

    def decode():
        from passgate.hardware.decode import make_decoder
        from passgate.passes.verify import Verifier

        cap = shared.get("capture")
        if cap is None:
            return st.Result("decode", st.Status.SKIP,
                             lang.gettext("camera check skipped: no frames"))
        store = trust()[1]
        judge = None
        if store is not None:
            verifier = Verifier(store)

            def judge(text):
                return verifier.check(text, hw.clock.read().now, zone)

        decoder = make_decoder(cfg.decoder.backend, try_invert=cfg.decoder.try_invert)
        return st.check_decode(cap.frames, decoder, judge, lang=lang,
                               purposes=store.purposes if store is not None else None)

    def display():
        return st.check_display(hw.display, hw.display_name, sleep=timer.sleep,
                                monotonic=timer.monotonic, lang=lang,
                                screen_lang=language(cfg.display.language))

    def signals():
        return st.check_signals(cfg.signals, hw.pin_factory,
                                clock=timer.monotonic, sleep=timer.sleep, lang=lang)

    def clock():
        return _clock_check(cfg, hw.clock, trust()[0], lang)

    def bundle():
        if cfg.trust.source == "dir":
            from passgate.passes.truststore import TrustStore

            return ss.check_trust_folder(partial(TrustStore.from_dir, cfg.trust.dir),
                                         cfg.trust.dir, lang)
        return ss.check_bundle(trust()[0], hw.clock.read().now, zone, cfg.checkpoint.site,
                               lang)

    def collector():
        state = read_state(state_path(cfg.checkpoint.state_dir))
        return ss.check_collector(state, hw.clock.read().now, url=url, url_note=url_note,
                                  connect=ss.tcp_connect if connect else None,
                                  monotonic=timer.monotonic, lang=lang)

    def disk():
        return ss.check_disk(cfg.checkpoint.state_dir,
                             mounts=ss.read_mounts if check_mounts else None, lang=lang)

    def journal():
        return ss.check_journal(cfg.journal.path, lang)

    return [("camera", camera), ("decode", decode), ("display", display),
            ("signals", signals), ("clock", clock), ("bundle", bundle),
            ("collector", collector), ("disk", disk), ("journal", journal)]


def _camera_setting(cam: Any, lang: Language = ENGLISH) -> str:
    """The camera's settings as the camera line ends: config keys and their values."""
    if cam.source != "picamera2":
        return f"source {cam.source}"
    if cam.focus == "manual":
        cm = (", " + lang.gettext("~{cm} cm").format(cm=f"{100 / cam.lens_position:.0f}")
              if cam.lens_position > 0 else ", " + lang.gettext("infinity"))
        return f"lens_position {cam.lens_position:g}{cm}"
    return f"focus {cam.focus}"


def _clock_check(cfg: Any, clock: Any, loaded: Any, lang: Language = ENGLISH) -> Any:
    """The clock line: the state, the saved floor, and the policy that applies here."""
    from passgate.checkpoint.trustview import local_policy
    from passgate.clock.store import ClockStore
    from passgate.errors import TrustError
    from passgate.selftest.state import check_clock

    status = clock.status() if hasattr(clock, "status") else None
    reading = status.reading if status is not None else clock.read()
    floor, floor_error = None, ""
    if cfg.clock.floor_file is not None:
        try:
            floor = ClockStore(cfg.clock.floor_file).load().floor
        except TrustError as exc:
            floor_error = str(exc)
    info = loaded.info if loaded is not None else None
    policy = (info.fleet.for_checkpoint(cfg.checkpoint.zone, cfg.checkpoint.site or None)
              if info is not None
              else local_policy(cfg)).clock
    return check_clock(reading, source=status.source if status else "",
                       system=status.system if status else None, stored_floor=floor,
                       floor_error=floor_error, policy=policy, lang=lang)


def device_hardware(cfg: Any, stack: contextlib.ExitStack, lang: Language = ENGLISH
                    ) -> Hardware:
    """The real camera, pins, OLED and clock from the config (nothing opened yet); their
    names in ``lang``."""
    from passgate.checkpoint.wiring import make_source
    from passgate.clock.clock import ClockConfig, SystemClock
    from passgate.clock.store import ClockStore
    from passgate.hardware.signals.gpio import make_pin_factory

    def pins() -> Any:
        wanted = os.environ.get("GPIOZERO_PIN_FACTORY", "auto").lower()
        factory = make_pin_factory(wanted if wanted in ("lgpio", "rpigpio", "mock") else "auto")
        stack.callback(factory.close)
        return factory

    opener, name = display_output(cfg.display, lang)
    # persist=False: a self-test reads the clock, it never moves the saved floor.
    clock = SystemClock(ClockStore(cfg.clock.floor_file), ClockConfig.from_section(cfg.clock),
                        persist=False)
    return Hardware(make_source(cfg), pins, opener, name, clock,
                    _camera_setting(cfg.camera, lang))


def display_output(d: Any, lang: Language = ENGLISH) -> tuple[Callable[[], Any] | None, str]:
    """(opener, name in ``lang``) for the ``[display]`` section; the opener raises if the panel
    is absent."""
    from passgate.hardware.display import PngFolder, open_luma

    if d.driver == "none":
        return None, "none"
    if d.driver == "dummy":
        if d.png_dir is not None:
            return (partial(PngFolder, d.png_dir, prefix="selftest"),
                    lang.gettext("PNG files in {folder}").format(folder=d.png_dir))
        return partial(open_luma, "dummy"), lang.gettext("dummy display (no panel)")
    return (partial(open_luma, d.driver, d.i2c_port, d.i2c_address, d.rotate, persist=True),
            lang.gettext("{driver} on {bus} at {address}").format(
                driver=d.driver, bus=f"/dev/i2c-{d.i2c_port}", address=f"0x{d.i2c_address:02X}"))


def simulated(state: Path, stack: contextlib.ExitStack, timer: Any = RealTime,
              device_language: str = "en", lang: Language = ENGLISH) -> tuple[Any, Hardware]:
    """The simulation's config and fakes: a scene with the demo pass held up to the camera,
    MockFactory pins, the dummy OLED writing PNGs, the laptop's clock taken as trusted.

    The state folder is prepared as ``passgate run --simulate`` prepares it (demo keys, trust
    folder, hash key), and an empty journal is created if there is none yet, as the
    scanner would at its first start. ``device_language``: the simulated device's
    ``[display] language`` (its OLED); ``lang``: of the lines (the hardware's names)."""
    from passgate.checkpoint.simulate import SystemTimeClock, prepare, sim_config
    from passgate.checkpoint.wiring import read_hash_key
    from passgate.hardware.camera import Paced, SceneSource, SceneStep
    from passgate.hardware.signals.gpio import make_pin_factory
    from passgate.journal.journal import Journal

    state = Path(state)
    cast = prepare(state, time.time())
    cfg = sim_config(state, language=device_language)
    if not cfg.journal.path.exists():
        key = read_hash_key(cfg.journal.hash_key_file)
        Journal(cfg.journal.path, key, cfg.checkpoint.device_id).close()
    card = dict(cast.passes)["valid pass"]
    scene = SceneSource([SceneStep(card, 1_000_000)], seed=11)
    source = Paced(scene, cfg.camera.fps, clock=timer.monotonic, sleep=timer.sleep)

    def pins() -> Any:
        factory = make_pin_factory("mock")
        stack.callback(factory.close)
        return factory

    opener, name = display_output(cfg.display, lang)
    return cfg, Hardware(source, pins, opener, name, SystemTimeClock(),
                         lang.gettext("simulated camera: the demo pass held up"))
