"""``passgate update``: one run of the updater (the ``passgate-update`` unit runs it as root).

    sudo passgate update                 # resume or start an update, check health, roll back
    sudo passgate update --resume-only   # only go on with one in progress (at boot)
    passgate update status [--json]      # the state file, as the staff page will show it

The collector and the device id come from the sync agent's enrolment record, the bundle
folder and site from the config; each can be given. Exit codes: 0 up to date or updated,
1 rolled back or failed (the reason is printed and sent in the next heartbeat), 2 usage or
configuration error. Example: ``sudo passgate update --health-timeout 180``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}
QUICK_SELFTEST = ("/opt/passgate/venv/bin/passgate", "selftest", "--config",
                  "/etc/passgate/passgate.toml", "--no-connect",
                  "--skip", "camera", "decode", "display", "signals", "collector")


def register(sub: argparse._SubParsersAction) -> None:
    from passgate.update.state import DEFAULT_DIR

    p = sub.add_parser(
        "update", help="install the release the collector names, or roll back (root)",
        description="Download the release the collector names for this device, verify it "
        "against the release keys of the installed trust bundle, install it, restart the "
        "services and check their health; roll back by itself if they are not healthy. "
        "Resumes an interrupted update. Exit codes: 0 up to date or updated, 1 rolled back "
        "or failed, 2 usage error.",
        epilog="example: sudo passgate update --health-timeout 180",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="checkpoint config (bundle, site)")
    p.add_argument("--collector", metavar="URL", help="default: the sync enrolment record")
    p.add_argument("--device", help="device id (default: the sync enrolment record)")
    p.add_argument("--site", help="site for a per-site rollout (default: checkpoint.site)")
    p.add_argument("--sync-dir", type=Path, default=Path("/var/lib/passgate-sync"), metavar="DIR")
    p.add_argument("--bundle-dir", type=Path, metavar="DIR", help="default: trust.bundle_dir")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_DIR, metavar="DIR",
                   help=f"update state and package cache (default {DEFAULT_DIR})")
    p.add_argument("--arch", default=ARCHES.get(platform.machine(), platform.machine()))
    p.add_argument("--health-timeout", type=float, default=120.0, metavar="S",
                   help="seconds the new version has to reach READY (default 120)")
    p.add_argument("--selftest-cmd", nargs="+", default=list(QUICK_SELFTEST), metavar="ARG",
                   help="quick self-test run once the scanner is READY; '' for none")
    p.add_argument("--resume-only", action="store_true",
                   help="only go on with an update in progress (the boot-time unit); "
                   "do nothing when none is")
    p.set_defaults(func=update)
    s = p.add_subparsers(dest="update_cmd")
    st = s.add_parser("status", help="show the update state")
    st.add_argument("--json", action="store_true")
    st.add_argument("--state-dir", type=Path, default=DEFAULT_DIR, metavar="DIR")
    st.set_defaults(func=status)


def update(args: argparse.Namespace) -> int:
    import logging

    from passgate.config.load import DEFAULT_PATH, load_config
    from passgate.errors import UsageError
    from passgate.sync.enrolment import load_enrolment
    from passgate.update.source import HttpSource
    from passgate.update.state import FAILED, ROLLED_BACK, STATE_FILE
    from passgate.update.system import DebianSystem
    from passgate.update.updater import Paths, Updater

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.resume_only:
        from passgate.update.state import IDLE, read_state

        if read_state(args.state_dir / STATE_FILE).step == IDLE:
            print("update: nothing in progress")
            return 0
    config = args.config or (DEFAULT_PATH if DEFAULT_PATH.is_file() else None)
    cfg = load_config(config) if config is not None else None
    enrolment = load_enrolment(args.sync_dir / "enrolment.json")
    collector = args.collector or (enrolment.collector if enrolment else None)
    device = args.device or (enrolment.device if enrolment else None) or (
        cfg.checkpoint.device_id if cfg else None)
    bundle_dir = args.bundle_dir or (cfg.trust.bundle_dir if cfg else None)
    if not collector or not device or bundle_dir is None:
        raise UsageError("need a collector, a device id and a bundle folder: enrol the sync "
                         "agent and give --config, or --collector/--device/--bundle-dir")
    site = args.site if args.site is not None else (cfg.checkpoint.site if cfg else "")
    selftest = [a for a in args.selftest_cmd if a]
    updater = Updater(
        DebianSystem(selftest_cmd=selftest),
        HttpSource(collector, device, args.arch, site),
        Paths(args.state_dir / STATE_FILE, args.state_dir / "cache", Path(bundle_dir)),
        arch=args.arch, health_timeout=args.health_timeout,
    )
    state = updater.run_once()
    print(_line(state))
    return 1 if state.outcome in (FAILED, ROLLED_BACK) else 0


def status(args: argparse.Namespace) -> int:
    from passgate.update.state import STATE_FILE, read_state, report

    state = read_state(args.state_dir / STATE_FILE)
    if args.json:
        print(json.dumps({**report(state), "step": state.step, "previous": state.previous,
                          "bad": list(state.bad)}, sort_keys=True))
    else:
        print(_line(state))
    return 0


def _line(state) -> str:
    from passgate.update.state import report

    r = report(state)
    text = f"update: {r['update_state']}"
    if "update_target" in r:
        text += f" (target {r['update_target']})"
    if "update_reason" in r:
        text += f": {r['update_reason']}"
    return text
