"""``passgate sync``: the sync agent process (and ``sync enrol``, ``sync status``).

    passgate sync [--once] [--state DIR] [--collector URL] [--config FILE]
    passgate sync enrol --token TOKEN [--collector URL] [--device ID]
    passgate sync status [--json]

Folders: the checkpoint's state folder (``--state``, else ``checkpoint.state_dir`` of the
config) holds the journal, ``sync-state.json`` (read by the idle screen) and the bundle; the
agent's private folder (``--sync-dir``, else ``$STATE_DIRECTORY`` as systemd sets it for
``passgate-sync.service``, else /var/lib/passgate-sync when it exists, else the state
folder) holds ``device.key`` and
``enrolment.json``. ``sync enrol`` makes the device key when there is none (provisioning
makes it on a device; on a laptop the first enrolment does). Exit codes: 0 done, 1 the
round or enrolment did not complete (rows stay queued), 2 usage or configuration error.

The agent (``passgate sync`` without ``--once``) on a box that is not set up (no config, no
collector, no journal yet: :func:`not_set_up`) logs one line and idles, looking again every
minute or on SIGHUP, instead of exiting into systemd's restart loop.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEVICE_SYNC_DIR = Path("/var/lib/passgate-sync")
_S = argparse.SUPPRESS  # options given before or after "enrol" both count


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=_S, help="passgate.toml (default /etc/...)")
    common.add_argument("--state", type=Path, default=_S, help="checkpoint state folder")
    common.add_argument("--sync-dir", type=Path, default=_S, help="folder of device.key")
    common.add_argument("--collector", default=_S, help="collector base URL (https://...)")
    common.add_argument("--time-keys", type=Path, default=_S,
                        help="pinned time public key(s), a .pub or a folder (STATE/time-keys)")
    p = sub.add_parser("sync", parents=[common], help="upload the journal, fetch trust and time")
    p.add_argument("--once", action="store_true", help="one round, then exit (0 if all sent)")
    p.add_argument("--batch", type=int, default=500,  # passgate.sync.agent.DEFAULT_BATCH
                   help="rows per upload (default 500, the collector's max_rows)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between rounds")
    p.set_defaults(func=run)
    ssub = p.add_subparsers(dest="sync_command", metavar="ACTION")
    e = ssub.add_parser("enrol", parents=[common], help="register the device key (one-time token)")
    e.add_argument("--token", required=True, help="token from 'passgate-collector token new'")
    e.add_argument("--device", default=_S, help="device id (default: checkpoint.device_id)")
    e.set_defaults(func=enrol)
    s = ssub.add_parser("status", parents=[common], help="show the sync state and dead letters")
    s.add_argument("--json", action="store_true", help="print the state file as JSON")
    s.set_defaults(func=status)


@dataclass(frozen=True)
class Paths:
    state_dir: Path
    journal: Path
    bundle_dir: Path
    floor_file: Path
    time_keys: Path
    sync_dir: Path
    retention_s: float | None
    device_id: str | None  # None: no config and no --device (the enrolment record has it)
    # passgate.clock.clock.ClockConfig: the site's clock settings (None: defaults)
    clock: Any = None

    @property
    def key(self) -> Path:
        from passgate.sync.devicekey import KEY_FILE

        return self.sync_dir / KEY_FILE

    @property
    def enrolment(self) -> Path:
        from passgate.sync.enrolment import ENROLMENT_FILE

        return self.sync_dir / ENROLMENT_FILE

    @property
    def sync_state(self) -> Path:
        from passgate.journal.syncstate import state_path

        return state_path(self.state_dir)


def resolve(args: argparse.Namespace) -> Paths:
    """Folders and settings from the options, the config file, and systemd's environment."""
    from passgate.clock.clock import ClockConfig
    from passgate.config.load import DEFAULT_PATH, load_config
    from passgate.config.schema import JournalSection
    from passgate.errors import UsageError

    config = getattr(args, "config", None)
    cfg = load_config(config) if config is not None or DEFAULT_PATH.is_file() else None
    state = getattr(args, "state", None)
    if state is None and cfg is None:
        raise UsageError(f"no config at {DEFAULT_PATH}: give --config FILE or --state DIR")
    if state is not None:
        # An explicit state folder wins over the config's paths (tests, a laptop, a rescue).
        journal, bundle_dir = state / "journal.sqlite", state / "bundle"
        floor = state / "clock.floor"
    else:
        assert cfg is not None  # a state folder or a config: checked above
        state, journal = cfg.checkpoint.state_dir, cfg.journal.path
        bundle_dir, floor = cfg.trust.bundle_dir, cfg.clock.floor_file
    return Paths(
        state_dir=Path(state),
        journal=Path(journal),
        bundle_dir=Path(bundle_dir),
        floor_file=Path(floor),
        time_keys=Path(getattr(args, "time_keys", None) or Path(state) / "time-keys"),
        sync_dir=Path(
            getattr(args, "sync_dir", None) or os.environ.get("STATE_DIRECTORY")
            # An installed device (setup.sh install made it): the same folder the unit uses,
            # so `sudo passgate sync enrol` by hand finds the provisioned device key.
            or (DEVICE_SYNC_DIR if DEVICE_SYNC_DIR.is_dir() else state)
        ),
        retention_s=cfg.journal.retention if cfg else JournalSection().retention,
        device_id=getattr(args, "device", None) or (cfg.checkpoint.device_id if cfg else None),
        clock=ClockConfig.from_section(cfg.clock) if cfg else ClockConfig(),
    )


def _time_link(paths: Paths, device: str):
    """The real clock (persisted floor) and the pinned time keys, loaded when first needed."""
    import time
    from functools import cache

    from passgate.clock.clock import ClockConfig, SystemClock
    from passgate.clock.store import ClockStore
    from passgate.clock.tokens import load_time_keys
    from passgate.sync.hooks import TimeLink

    clock = SystemClock(ClockStore(paths.floor_file), paths.clock or ClockConfig())
    keys = cache(lambda: load_time_keys(paths.time_keys))
    return clock, TimeLink(clock, keys, device, monotonic=time.monotonic)


def _client(paths: Paths, collector: str, device: str):
    """(client, clock) for one collector; the client feeds every time token to the clock."""
    from passgate.sync.client import CollectorClient
    from passgate.sync.devicekey import load_device_key

    key = load_device_key(paths.key)
    clock, link = _time_link(paths, device)
    client = CollectorClient(
        collector, device, key, now=lambda: clock.read().now,
        time_sink=link.accept, time_nonce=link.challenge,
    )
    return client, clock


def check_collector_url(url: str) -> str:
    """``url`` if it is ``http(s)://HOST[:PORT][/PATH]``, else ``UsageError`` (exit 2, one
    line): a URL that can never work must stop the command, not crash-loop the service."""
    from urllib.parse import urlsplit

    from passgate.errors import UsageError

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check (ValueError if not a number)
    except ValueError as exc:
        raise UsageError(f"collector URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"collector URL {url!r} must be https://HOST[:PORT] (or http://)")
    if parts.query or parts.fragment:
        raise UsageError(f"collector URL {url!r}: no ?query or #fragment, only the base URL")
    return url


def enrol(args: argparse.Namespace) -> int:
    from passgate.errors import Refused, Transient, UsageError
    from passgate.sync.enrolment import Enrolment, attempt, load_enrolment, save_enrolment

    paths = resolve(args)
    previous = load_enrolment(paths.enrolment)
    collector = getattr(args, "collector", None) or (previous.collector if previous else None)
    if not collector:
        raise UsageError("--collector URL is required for the first enrolment")
    check_collector_url(collector)
    if not paths.device_id:
        raise UsageError("--device ID is required without a config file")
    done = previous is not None and previous.enrolled_at is not None
    if (done and previous is not None and previous.collector == collector
            and previous.device == paths.device_id):
        print(f"already enrolled with {collector} as {previous.device}")
        return 0
    fingerprint = _enrolment_key(paths.key).fingerprint
    record = Enrolment(collector, paths.device_id, fingerprint, token=args.token)
    paths.sync_dir.mkdir(parents=True, exist_ok=True)
    save_enrolment(paths.enrolment, record)  # kept for the agent if the network is not up yet
    client, clock = _client(paths, collector, paths.device_id)
    try:
        attempt(client, paths.enrolment, record, clock.read().now)
    except Transient as exc:
        print(f"collector not reachable ({exc.detail}); the sync agent will enrol when it can")
        return 1
    except Refused as exc:
        print(f"enrolment refused: {exc.detail}")
        return 1
    print(f"enrolled with {collector} as {paths.device_id} (key {fingerprint})")
    return 0


def _enrolment_key(path: Path):
    """The device key to enrol; made here, as provisioning makes it, when there is none yet
    (a laptop, ``passgate run --simulate``'s state folder). Only an absent file: a key that
    is there but unreadable or too open is refused by ``load_device_key``, never replaced."""
    from passgate.sync.devicekey import load_device_key, new_device_key

    if not path.exists() and not path.is_symlink():
        _, _, fingerprint = new_device_key(path.parent)  # 0600; refuses to overwrite
        print(f"made device key {path} (key {fingerprint})")
    return load_device_key(path)


def not_set_up(args: argparse.Namespace) -> str:
    """Why the agent has nothing to do yet ("" when it has): no config, no collector (the
    device file applied had no ``[sync]``, or none was applied), or no journal yet (the
    scanner creates it). The service idles on these; ``--once`` and a command line still
    stop with exit 2."""
    from passgate.config.load import DEFAULT_PATH
    from passgate.sync.enrolment import load_enrolment

    config = getattr(args, "config", None) or DEFAULT_PATH
    if getattr(args, "state", None) is None and not Path(config).is_file():
        return f"no config at {config}"
    paths = resolve(args)
    enrolment = load_enrolment(paths.enrolment)
    if not (getattr(args, "collector", None) or (enrolment and enrolment.collector)):
        return (f"no collector: no enrolment in {paths.sync_dir} (a device file with [sync] "
                "makes one, or 'passgate sync enrol')")
    if not paths.journal.exists():
        return f"no journal yet at {paths.journal} (the scanner creates it)"
    return ""


IDLE_RECHECK_S = 60.0  # an idle agent looks again this often (and at once on SIGHUP)


def idle_until_set_up(args: argparse.Namespace, stop: threading.Event,
                      wake: threading.Event, recheck_s: float = IDLE_RECHECK_S) -> bool:
    """Idle while :func:`not_set_up` names a reason: one log line per reason (not one per
    look), no exit, so systemd does not restart the agent every ``RestartSec``. Looks again
    every ``recheck_s`` or when ``wake`` is set (SIGHUP). True once set up, False on stop."""
    import logging

    log, said = logging.getLogger(__name__), ""
    while not stop.is_set():
        reason = not_set_up(args)
        if not reason:
            if said:
                log.info("sync agent: set up now, starting")
            return True
        if reason != said:
            log.info("sync agent idle: %s; looking again every %gs or on SIGHUP",
                     reason, recheck_s)
            said = reason
        wake.wait(recheck_s)
        wake.clear()
    return False


def run(args: argparse.Namespace) -> int:
    import logging

    from passgate import __version__
    from passgate.errors import UsageError
    from passgate.journal.journal import Journal
    from passgate.sync.agent import SyncAgent
    from passgate.sync.enrolment import attempt, load_enrolment
    from passgate.sync.hooks import InstalledBundles
    from passgate.update.state import DEFAULT_DIR as UPDATE_DIR
    from passgate.update.state import STATE_FILE as UPDATE_FILE
    from passgate.update.state import report_file

    if args.batch < 1 or args.interval <= 0:
        raise UsageError("--batch must be >= 1 and --interval > 0")
    stop, wake = threading.Event(), threading.Event()
    if not args.once:
        def stopping(*_: object) -> None:
            stop.set()
            wake.set()  # an idle agent waits on wake: without this it stops a minute late

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stopping)
        signal.signal(signal.SIGHUP, lambda *_: wake.set())
        if not idle_until_set_up(args, stop, wake):
            return 0
    paths = resolve(args)
    enrolment = load_enrolment(paths.enrolment)
    collector = getattr(args, "collector", None) or (enrolment.collector if enrolment else None)
    if not collector:
        raise UsageError("no collector: run 'passgate sync enrol --collector URL --token T' "
                         "first, or give --collector URL")
    check_collector_url(collector)
    device = enrolment.device if enrolment else paths.device_id
    if not device:
        raise UsageError("no device id: enrol first, or give --config FILE")
    client, clock = _client(paths, collector, device)

    def now() -> float:
        return clock.read().now

    enrol_hook = None
    if enrolment is not None and enrolment.outstanding:
        pending = {"record": enrolment}

        def enrol_hook() -> None:
            pending["record"] = attempt(client, paths.enrolment, pending["record"], now())

    # The agent never hashes a pass id, so it is not given the fleet hash key (the scanner's
    # secret): the journal insists on a key, and a random one makes any accidental
    # pass_hash() call from this process useless rather than right.
    journal = Journal(paths.journal, os.urandom(32), create=False)  # the scanner creates it
    agent = SyncAgent(
        journal, client, now=now, state_file=paths.sync_state,
        bundle=InstalledBundles(paths.bundle_dir, now), batch_size=args.batch,
        interval=args.interval, retention_s=paths.retention_s, enrol=enrol_hook,
        # The updater's state (its own unit, passgate.update) goes out with every heartbeat.
        health=lambda: {"clock_state": clock.read().state.value, "firmware": __version__,
                        **report_file(UPDATE_DIR / UPDATE_FILE)},
        prune_time=lambda: clock.status().floor,  # never ahead of authenticated time
    )
    try:
        if args.once:
            r = agent.run_round()
            print(f"{'ok' if r.ok else 'failed'}: uploaded {r.uploaded}, dead letters "
                  f"{r.dead_lettered}, pending {r.pending}" + (f" ({r.error})" if r.error else ""))
            return 0 if r.ok and r.pending == 0 else 1
        logging.getLogger(__name__).info("sync agent started: %s as %s", collector, device)
        agent.run(stop)
        return 0
    finally:
        journal.close()


def status(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from passgate.journal.syncstate import read_state
    from passgate.util.timefmt import iso

    paths = resolve(args)
    st = read_state(paths.sync_state)
    if args.json:
        print(json.dumps(asdict(st), sort_keys=True))
        return 0
    when = iso(st.last_success) if st.last_success else "never"
    print(
        f"connectivity {st.connectivity}; last success {when}; pending {st.pending}; "
        f"dead letters {st.dead_letters}; bundle {st.bundle_version}"
    )
    if st.last_error:
        print(f"last error: {st.last_error}")
    return 0
