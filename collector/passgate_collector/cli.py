"""``passgate-collector``: serve the fleet API and staff page, make enrolment tokens, publish
bundles, manage devices and staff accounts (``user``, in ``cli_users``).

Exit codes follow ``passgate``'s: 0 success, 1 a check failed, 2 usage or configuration error
(one line on stderr). Every sub-command takes ``--db URL`` (default from the environment
variable ``PASSGATE_COLLECTOR_DB``, else ``sqlite:///collector.db`` in the current directory).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from passgate.cli.helptext import document
from passgate.errors import PassgateError, UsageError
from passgate.passes.keys import kid_of
from passgate.util import journald
from passgate.util.version import version

from . import protocol, release_cli, retention
from .cli_users import add_serve_options, add_user_commands, auth_options
from .console import sitecli
from .store import StoreError, open_store

log = logging.getLogger(__name__)
DEFAULT_DB = "sqlite:///collector.db"
DEFAULT_PORT = 8470
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _db(args) -> str:
    return args.db or os.environ.get("PASSGATE_COLLECTOR_DB") or DEFAULT_DB


def cmd_serve(args) -> int:
    from .auth import names_account
    from .console import ConsoleOptions
    from .console.passsearch import read_hash_key
    from .server import make_server
    from .timesign import load_time_signer
    from .web import LARGE_BODIES, Settings, create_app

    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        raise UsageError(f"--host {args.host!r} is not an IP address") from None
    if not loopback:
        raise UsageError(f"--host {args.host}: the collector listens on loopback only; "
                         "put a TLS reverse proxy in front (docs/collector.md)")
    if args.max_inflight < 1 or args.rate_limit <= 0 or args.rate_burst < 1:
        raise UsageError("--max-inflight and --rate-burst must be >= 1, --rate-limit > 0")
    if args.retention_days and args.retention_days < retention.MIN_DAYS:
        raise UsageError(f"--retention-days must be 0 (keep everything) or at least "
                         f"{retention.MIN_DAYS}")
    if args.threads < 1 or args.connection_limit < 1 or args.backlog < 1:
        raise UsageError("--threads, --connection-limit and --backlog must be at least 1")
    if args.sqlite_wal_pages is not None and not _db(args).startswith("sqlite://"):
        raise UsageError("--sqlite-wal-pages is for a sqlite:/// database only")
    # The interval itself is checked by the store (SqliteStore: valid_wal_pages) before it
    # opens anything, and its StoreError ends main with the one line and exit code 2.
    # One database connection per worker thread: a request holds one for its whole batch, and
    # more connections than threads would only sit idle on the server.
    store = open_store(_db(args), pool_size=args.pool_size or args.threads,
                       sqlite_wal_pages=args.sqlite_wal_pages)
    read_store = None
    if args.read_db:
        from .readstore import open_read_store

        read_store = open_read_store(args.read_db)
    signer = load_time_signer(Path(args.time_key)) if args.time_key else None
    settings = Settings(max_rows=args.max_rows, max_body=args.max_body,
                        sharing_window_s=args.sharing_window,
                        fresh_window_s=args.fresh_window, rate_per_s=args.rate_limit,
                        rate_burst=args.rate_burst,
                        trusted_proxy_header=args.trusted_proxy_header or None,
                        max_inflight=args.max_inflight, releases_dir=args.releases)
    hash_key = read_hash_key(Path(args.hash_key)) if args.hash_key else None
    app = create_app(store, time_token=signer, settings=settings, read_store=read_store,
                     console=ConsoleOptions(hash_key=hash_key,
                                            sharing_window_s=args.sharing_window),
                     auth=auth_options(args))
    server = make_server(app, host=args.host, port=args.port, threads=args.threads,
                         max_body=args.max_body, large_bodies=LARGE_BODIES,
                         admits=names_account(app),
                         connection_limit=args.connection_limit,
                         backlog=args.backlog, ident="passgate-collector")
    log.info("collector on http://%s:%d (%s database)", args.host, args.port, store.kind)

    def stop(_signum, _frame) -> None:
        raise KeyboardInterrupt  # waitress shuts down cleanly on it; systemd sends SIGTERM

    signal.signal(signal.SIGTERM, stop)
    stop_retention = None
    if args.retention_days or store.kind == "postgresql":  # 0 days: the weeks ahead only
        _thread, stop_retention = retention.start(store, args.retention_days)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # the normal way to stop
    finally:
        if stop_retention is not None:
            stop_retention.set()
        server.close()
        store.close()
        if read_store is not None:
            read_store.close()
        log.info("collector stopped")
    return EXIT_OK


def cmd_token_new(args) -> int:
    if not protocol.DEVICE_ID_RE.fullmatch(args.device):
        raise UsageError("--device must be 1-64 characters of [a-z0-9._-], starting with a "
                         "letter or digit")
    token = secrets.token_urlsafe(32)
    now = int(time.time())
    store = open_store(_db(args))
    try:
        store.add_token(hashlib.sha256(token.encode()).digest(), args.device, now,
                        now + int(args.ttl_hours * 3600))
    finally:
        store.close()
    print(token)
    print(f"one-time enrolment token for {args.device}, valid {args.ttl_hours:g} h",
          file=sys.stderr)
    return EXIT_OK


def cmd_bundle_publish(args) -> int:
    from .bundles import read_bundle_version

    data = Path(args.file).read_bytes()
    version = read_bundle_version(data)
    store = open_store(_db(args))
    try:
        store.publish_bundle(version, data, hashlib.sha256(data).hexdigest(), int(time.time()))
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    print(f"published bundle version {version} ({len(data)} bytes)")
    return EXIT_OK


def cmd_device(args) -> int:
    store = open_store(_db(args))
    try:
        if args.action == "list":
            for d in store.devices():
                state = "disabled" if d.disabled else "enabled"
                seen = "never" if d.last_seen is None else f"{int(time.time()) - d.last_seen} s ago"
                # The key fingerprint as provisioning and enrolment print it on the device.
                print(f"{d.device_id}\t{state}\tkey {kid_of(d.pubkey).hex()}\tseen {seen}")
            return EXIT_OK
        if not args.device:
            raise UsageError(f"device {args.action} needs a device id")
        if args.action == "remove":
            ok = store.remove_device(args.device)
        else:
            ok = store.set_disabled(args.device, args.action == "disable")
    finally:
        store.close()
    if not ok:
        print(f"passgate-collector: no device {args.device!r}", file=sys.stderr)
        return EXIT_FAIL
    print(f"{args.device}: {args.action}d")
    return EXIT_OK


def cmd_time_key_new(args) -> int:
    from passgate.passes.keys import new_keypair

    key_path, pub_path, kid = new_keypair(Path(args.out), "time")
    print(f"time key {kid.hex()}: private {key_path} (0600, for serve --time-key), "
          f"public {pub_path} (pin it on the devices)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="passgate-collector",
                                description="passgate fleet collector (docs/collector.md)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"passgate-collector {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_db(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--db", help=f"database URL: sqlite:///PATH or postgresql://... "
                                     f"(default $PASSGATE_COLLECTOR_DB or {DEFAULT_DB})")
        return sp

    s = with_db(sub.add_parser("serve", help="run the HTTP service (loopback only)"))
    s.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--time-key", help="Ed25519 private key (PEM) that signs time tokens")
    s.add_argument("--threads", type=int, default=8,
                   help="worker threads: requests handled at once (default 8)")
    s.add_argument("--connection-limit", type=int, default=1000,
                   help="open client connections waitress keeps before it stops accepting "
                        "(default 1000; waitress's own default of 100 is hit in a reconnect "
                        "storm)")
    s.add_argument("--backlog", type=int, default=2048,
                   help="listen backlog: connections the kernel queues beyond the limit")
    s.add_argument("--pool-size", type=int, default=0,
                   help="database connections kept open (default: one per thread)")
    s.add_argument("--sqlite-wal-pages", type=int, default=None,
                   help="SQLite only: WAL pages (4 KiB) between checkpoints, 1000-262144 "
                        "(default 10000, a WAL of about 40 MiB; docs/collector.md)")
    s.add_argument("--max-rows", type=int, default=protocol.MAX_ROWS)
    s.add_argument("--max-body", type=int, default=protocol.MAX_BODY)
    s.add_argument("--sharing-window", type=int, default=120,
                   help="seconds: one pass at two checkpoints closer than this is listed")
    s.add_argument("--read-db", help="postgresql://... of a read replica the staff page and "
                                     "the console read (default: the --db database)")
    s.add_argument("--fresh-window", type=int, default=600,
                   help="seconds: how old a liveness challenge or a batch's sent_at may be")
    s.add_argument("--rate-limit", type=float, default=2.0,
                   help="unsigned requests (time, enrol) per second per source address")
    s.add_argument("--rate-burst", type=int, default=30)
    s.add_argument("--trusted-proxy-header", default="",
                   help="header our own proxy sets with the client address, e.g. "
                        "X-Forwarded-For (its rightmost entry is used); unset: the peer")
    s.add_argument("--max-inflight", type=int, default=4,
                   help="concurrent ingests per process; more get 503 with Retry-After")
    s.add_argument("--hash-key", help="the fleet's pass-hash key (journal.key, 32 bytes): lets "
                   "the console search by pass text or photo")
    s.add_argument("--retention-days", type=int, default=retention.DEFAULT_DAYS,
                   help="scans older than this many days are removed, hourly (default "
                        f"{retention.DEFAULT_DAYS}; 0 keeps everything)")
    add_serve_options(s)
    s.add_argument("--releases", help="folder of signed releases to serve to devices "
                                      "(release publish); unset: no release endpoints")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("token", help="one-time enrolment tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    tn = with_db(t.add_parser("new", help="make a token for one device id; prints it once"))
    tn.add_argument("--device", required=True)
    tn.add_argument("--ttl-hours", type=float, default=168.0)
    tn.set_defaults(func=cmd_token_new)

    b = sub.add_parser("bundle", help="trust bundles").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    bp = with_db(b.add_parser("publish", help="publish a signed bundle file to the fleet"))
    bp.add_argument("file")
    bp.set_defaults(func=cmd_bundle_publish)

    k = sub.add_parser("time-key", help="the key that signs time tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    kn = k.add_parser("new", help="make time.key (0600) and time.pub in a directory")
    kn.add_argument("--out", required=True, help="directory for time.key and time.pub")
    kn.set_defaults(func=cmd_time_key_new)

    release_cli.register(sub, with_db, _db)

    d = with_db(sub.add_parser("device", help="list, disable, enable or remove devices"))
    d.add_argument("action", choices=("list", "disable", "enable", "remove"))
    d.add_argument("device", nargs="?")
    d.set_defaults(func=cmd_device)
    sitecli.add_parser(sub, with_db, _db)
    retention.add_parser(sub, with_db, _db)
    add_user_commands(sub, with_db, _db)
    document(p)  # descriptions, exit codes and an example in every --help (passgate.cli.helptext)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    journald.configure(args.verbose)  # <N> priorities when systemd runs it
    try:
        return int(args.func(args) or 0)
    except (UsageError, StoreError, PassgateError, OSError) as exc:
        print(f"passgate-collector: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
