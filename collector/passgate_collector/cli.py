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

from passgate.errors import PassgateError, UsageError
from passgate.passes.keys import kid_of

from . import protocol
from .cli_users import add_serve_options, add_user_commands, auth_options
from .store import StoreError, open_store

log = logging.getLogger(__name__)
DEFAULT_DB = "sqlite:///collector.db"
DEFAULT_PORT = 8470
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _db(args) -> str:
    return args.db or os.environ.get("PASSGATE_COLLECTOR_DB") or DEFAULT_DB


def cmd_serve(args) -> int:
    from waitress import serve

    from .timesign import load_time_signer
    from .web import Settings, create_app

    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        raise UsageError(f"--host {args.host!r} is not an IP address") from None
    if not loopback:
        raise UsageError(f"--host {args.host}: the collector listens on loopback only; "
                         "put a TLS reverse proxy in front (docs/collector.md)")
    store = open_store(_db(args))
    signer = load_time_signer(Path(args.time_key)) if args.time_key else None
    settings = Settings(max_rows=args.max_rows, max_body=args.max_body,
                        sharing_window_s=args.sharing_window)
    app = create_app(store, time_token=signer, settings=settings, auth=auth_options(args))
    log.info("collector on http://%s:%d (%s database)", args.host, args.port, store.kind)

    def stop(_signum, _frame) -> None:
        raise KeyboardInterrupt  # waitress shuts down cleanly on it; systemd sends SIGTERM

    signal.signal(signal.SIGTERM, stop)
    try:
        serve(app, host=args.host, port=args.port, threads=args.threads,
              max_request_body_size=args.max_body + 1024, ident="passgate-collector")
    except KeyboardInterrupt:
        pass  # the normal way to stop
    finally:
        store.close()
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
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_db(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--db", help=f"database URL: sqlite:///PATH or postgresql://... "
                                     f"(default $PASSGATE_COLLECTOR_DB or {DEFAULT_DB})")
        return sp

    s = with_db(sub.add_parser("serve", help="run the HTTP service (loopback only)"))
    s.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--time-key", help="Ed25519 private key (PEM) that signs time tokens")
    s.add_argument("--threads", type=int, default=8)
    s.add_argument("--max-rows", type=int, default=protocol.MAX_ROWS)
    s.add_argument("--max-body", type=int, default=protocol.MAX_BODY)
    s.add_argument("--sharing-window", type=int, default=120,
                   help="seconds: one pass at two checkpoints closer than this is listed")
    add_serve_options(s)
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

    d = with_db(sub.add_parser("device", help="list, disable, enable or remove devices"))
    d.add_argument("action", choices=("list", "disable", "enable", "remove"))
    d.add_argument("device", nargs="?")
    d.set_defaults(func=cmd_device)
    add_user_commands(sub, with_db, _db)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (UsageError, StoreError, PassgateError, OSError) as exc:
        print(f"passgate-collector: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
