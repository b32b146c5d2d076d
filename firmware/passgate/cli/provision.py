"""``passgate provision``: apply a device file (first boot, or a technician on site).

    passgate provision --device-file FILE [--state DIR] [--etc DIR] [--sync-dir DIR]
                       [--bundle FILE] [--remove] [--show-for SECONDS] [--no-chown]
    passgate provision --check --device-file FILE [--json]

Validates everything before writing anything (exit 2 with one line if the file or the
device's state refuses it), then applies (:mod:`passgate.provision`). The result is recorded
three ways: a log line (the systemd journal), ``provision.json`` in the state folder, and a
message on the OLED. ``--remove`` then deletes the device file (zeroed first) and the bundle
beside it; if it cannot be deleted it is made unreadable, and if even that fails the command
exits 1 and says so: the file holds the enrolment token and the fleet's pass-hash key.
Exit codes: 0 provisioned (or already), 1 applying or removing failed, 2 refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from passgate.util.i18n import ENGLISH, N_, language

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("provision", help="apply a device file (passgate-device.toml)")
    p.add_argument("--device-file", type=Path, required=True, help="the device file to apply")
    p.add_argument("--state", type=Path, help="checkpoint state folder (default: from the config)")
    p.add_argument("--etc", type=Path, help="config folder (default /etc/passgate)")
    p.add_argument("--sync-dir", type=Path, help="sync agent folder (/var/lib/passgate-sync)")
    p.add_argument("--bundle", type=Path, help="initial bundle (default: [trust] bundle)")
    p.add_argument("--remove", action="store_true",
                   help="delete the device file (and its bundle) after success")
    p.add_argument("--show-for", type=float, default=0.0, metavar="SECONDS",
                   help="keep the result on the OLED this long before exiting")
    p.add_argument("--no-chown", action="store_true",
                   help="as root, leave files owned by root (staging into a folder)")
    p.add_argument("--check", action="store_true", help="only validate the device file itself")
    p.add_argument("--json", action="store_true", help="--check: print the summary as JSON")
    p.set_defaults(func=provision)


def provision(args: argparse.Namespace, *, now: float | None = None,
              output: object | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """The command. ``now`` (POSIX seconds) and ``output`` (a luma-like device) are for tests:
    by default the checkpoint's clock is read once and the configured OLED is opened."""
    from passgate.provision import DEFAULT_ETC, DEFAULT_SYNC_DIR, ProvisionError, read_device_file

    etc = args.etc or DEFAULT_ETC
    base = _base_config(etc)
    if now is None:
        now = _clock_now(args.state, base)
    try:
        device = read_device_file(args.device_file, args.bundle)
        if args.check:
            return _print_check(device, now, args.json)
        from passgate.provision import Owners, check

        owners = None if args.no_chown or os.geteuid() != 0 else Owners.lookup()
        plan = check(device, now, etc_dir=etc, state_dir=args.state,
                     sync_dir=args.sync_dir or DEFAULT_SYNC_DIR)
    except ProvisionError as exc:
        if args.check:
            raise
        log.error("provisioning refused, nothing changed: %s", exc)
        state = args.state or (base.checkpoint.state_dir if base else None)
        record = {"status": "invalid", "ok": False, "error": str(exc)}
        _record(state, record, now, None, args.device_file)
        why = str(exc).removeprefix(f"{args.device_file}: ")
        _show(_screen(N_("Setup refused"), why), base, output, args.show_for, sleep)
        raise
    return _apply(args, plan, owners, now, output, sleep)


def _apply(args, plan, owners, now, output, sleep) -> int:
    from passgate.errors import PassgateError
    from passgate.provision import apply

    dev = plan.device
    summary = {"device_id": dev.device_id, "zone": dev.zone, "hostname": dev.hostname,
               "collector": dev.collector_url, "roots": dev.roots.describe(),
               "hash_key_id": dev.hash_key_id, "bundle_note": plan.bundle_note or None}
    try:
        outcome = apply(plan, now, owners)
    except (OSError, PassgateError) as exc:
        log.error("provisioning failed part-way (run it again once fixed): %s", exc)
        record = {**summary, "status": "failed", "ok": False, "error": str(exc)}
        _record(plan.state_dir, record, now, owners, args.device_file, dev.sha256)
        _show(_screen(N_("Setup failed"), str(exc)), plan.config, output, args.show_for, sleep)
        print(f"provisioning failed: {exc}")
        return 1
    status = "provisioned" if outcome.changes else "unchanged"
    removal = "not asked (no --remove)"
    if args.remove:
        removal = dispose([args.device_file] + ([dev.bundle] if dev.bundle else []))
    record = {**summary, "status": status, "ok": True, "changes": list(outcome.changes),
              "device_key": outcome.fingerprint, "bundle_version": outcome.bundle_version,
              "device_file": removal, "error": None}
    _record(plan.state_dir, record, now, owners, args.device_file, dev.sha256)
    for change in outcome.changes:
        print(f"changed: {change}")
    if plan.bundle_note:
        print(f"kept: {plan.bundle_note}")
    what = "provisioned" if outcome.changes else "already provisioned, nothing to change:"
    log.info("%s %s in zone %s (device key %s); device file %s", what, dev.device_id, dev.zone,
             outcome.fingerprint, removal)
    title = N_("Provisioned") if outcome.changes else N_("Already set up")
    body = language(plan.config.display.language).gettext("{device} zone {zone} key {key}")
    _show(_screen(title, body.format(device=dev.device_id, zone=dev.zone,
                                     key=outcome.fingerprint[:8])),
          plan.config, output, args.show_for, sleep)
    if args.remove and removal not in ("removed", "unreadable"):
        log.error("the device file holds secrets and is still readable: %s", removal)
        return 1
    return 0


def dispose(paths: list[Path]) -> str:
    """Delete the device file (zeroed first: FAT keeps deleted data) and the files beside it.

    Returns ``removed``, ``unreadable`` (could not delete, mode 000 took) or ``kept: why``
    for the device file (the first path); the others are public and only deleted.
    """
    from passgate.util.atomicfile import fsync_dir

    outcome = "removed"
    for i, path in enumerate(paths):
        path = Path(path)
        try:
            if i == 0:
                size = path.stat().st_size
                with open(path, "r+b") as f:
                    f.write(b"\0" * size)
                    f.flush()
                    os.fsync(f.fileno())
            path.unlink()
            fsync_dir(path.parent)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if i > 0:
                log.warning("could not delete %s: %s", path, exc.strerror or exc)
                continue
            outcome = f"kept: {exc.strerror or exc}"
            try:
                os.chmod(path, 0)
                if path.stat().st_mode & 0o444 == 0:  # FAT ignores modes: check it took
                    outcome = "unreadable"
            except OSError as exc2:
                outcome = f"kept: {exc.strerror or exc}; chmod: {exc2.strerror or exc2}"
    return outcome


def _record(state, record, now, owners, device_file, sha256=None) -> None:
    """Write ``provision.json`` in the state folder (if it exists); a failure is logged."""
    from passgate import __version__
    from passgate.provision import RESULT_FILE
    from passgate.util.atomicfile import write_atomic
    from passgate.util.timefmt import iso

    if state is None or not Path(state).is_dir():
        log.warning("no state folder %s: provisioning result not recorded", state)
        return
    full = {**record, "at": iso(now), "at_s": now, "device_file_path": str(device_file),
            "device_file_sha256": sha256, "firmware": __version__}
    path = Path(state) / RESULT_FILE
    try:
        write_atomic(path, json.dumps(full, indent=1, sort_keys=True).encode() + b"\n", 0o640)
        if owners is not None:
            os.chown(path, *owners.scanner)
    except OSError as exc:
        log.error("cannot write %s: %s", path, exc)


def _print_check(device, now: float, as_json: bool) -> int:
    from passgate.bundle import read_bundle
    from passgate.provision import ProvisionError
    from passgate.util.timefmt import iso

    bundle = None
    if device.bundle is not None:
        try:
            b = read_bundle(device.bundle, device.roots)
        except ValueError as exc:
            raise ProvisionError(f"{device.bundle}: {exc}") from None
        if now >= b.manifest.expires:
            raise ProvisionError(f"{device.bundle}: bundle v{b.version} has expired")
        bundle = {"path": str(device.bundle), "version": b.version,
                  "expires": iso(b.manifest.expires)}
    out = {"device_id": device.device_id, "zone": device.zone, "hostname": device.hostname,
           "collector": device.collector_url, "roots": device.roots.describe(),
           "hash_key_id": device.hash_key_id, "bundle": bundle, "sha256": device.sha256}
    if as_json:
        print(json.dumps(out, sort_keys=True))
    else:
        for key, value in out.items():
            print(f"{key}: {value if not isinstance(value, dict) else value['version']}")
    return 0


def _base_config(etc: Path):
    """The config as it is before provisioning (for the clock and the OLED), or None."""
    from passgate.config.load import load_config
    from passgate.errors import ConfigError

    main = Path(etc) / "passgate.toml"
    if not main.is_file():
        return None
    try:
        return load_config(main)
    except ConfigError as exc:
        log.warning("current config unusable, defaults for the display: %s", exc)
        return None


def _clock_now(state: Path | None, cfg) -> float:
    from passgate.clock.clock import ClockConfig, SystemClock
    from passgate.clock.store import ClockStore

    floor = (Path(state) / "clock.floor") if state else (cfg.clock.floor_file if cfg else None)
    store = ClockStore(floor) if floor is not None and floor.parent.is_dir() else None
    settings = ClockConfig.from_section(cfg.clock) if cfg else ClockConfig()
    return SystemClock(store, settings, persist=False).read().now


def _screen(title: str, body: str):
    from passgate.hardware.display import MessageScreen

    return MessageScreen(title, body)


def _show(screen, cfg, output, hold_s: float, sleep) -> None:
    """Put ``screen`` on the OLED and keep it ``hold_s``; a missing panel is only logged.
    The words are the config's ``[display] language`` (an error's own text stays English)."""
    from passgate.errors import PassgateError
    from passgate.hardware.display import render
    from passgate.hardware.display.screens import localised

    screen = localised(screen, language(cfg.display.language) if cfg is not None else ENGLISH)

    try:
        if output is None:
            output = _open_output(cfg)
        if output is None:
            return
        output.display(render(screen))
        if hold_s > 0:
            sleep(hold_s)
        output.cleanup()
    except (OSError, PassgateError) as exc:
        log.warning("result not shown on the OLED: %s", exc)


def _open_output(cfg):
    from passgate.config.schema import DisplaySection
    from passgate.hardware.display import PngFolder, open_luma

    d = cfg.display if cfg is not None else DisplaySection()
    if d.driver == "none":
        return None
    if d.png_dir is not None:
        return PngFolder(d.png_dir, prefix="provision")
    return open_luma(d.driver, d.i2c_port, d.i2c_address, d.rotate, persist=True)
