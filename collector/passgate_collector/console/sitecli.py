"""``passgate-collector site set|list``: sites, their time zone, and which checkpoints are in
each (the console shows each scan in its site's local time and filters by site).

Rules kept here: a zone must be a real IANA name (``Europe/Moscow``), checked before anything
is written; a device id that is not enrolled is named on stderr and makes the exit code 1,
the others are still moved. Moving a checkpoint also moves its stored scans (one pass over
that checkpoint's rows: an administrator's action, not something a page does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..store import open_store
from .words import valid_zone


def cmd_site(args, db: Callable[[argparse.Namespace], str]) -> int:
    store = open_store(db(args))
    try:
        if args.action == "list":
            where = store.device_sites()
            for site, tz in store.sites().items():
                devices = sorted(d for d, s in where.items() if s == site)
                print(f"{site}\t{tz}\t{' '.join(devices) or '-'}")
            return 0
        if not args.site or not args.tz:
            print("passgate-collector: site set needs a site name and --tz", file=sys.stderr)
            return 2
        if not valid_zone(args.tz):
            print(f"passgate-collector: --tz {args.tz!r} is not an IANA time zone "
                  "(e.g. Europe/Moscow, UTC)", file=sys.stderr)
            return 2
        missing = store.set_site(args.site, args.tz, args.device or [])
    finally:
        store.close()
    for dev in missing:
        print(f"passgate-collector: no device {dev!r}", file=sys.stderr)
    print(f"{args.site}: {args.tz}")
    return 1 if missing else 0


def add_parser(sub, with_db, db: Callable[[argparse.Namespace], str]) -> None:
    s = with_db(sub.add_parser("site", help="sites: time zone and checkpoints (console)"))
    s.add_argument("action", choices=("set", "list"))
    s.add_argument("site", nargs="?", help="site name, e.g. north-campus")
    s.add_argument("--tz", help="IANA time zone of the site, e.g. Europe/Moscow (default UTC)")
    s.add_argument("--device", action="append", help="a checkpoint in this site (repeatable)")
    s.set_defaults(func=lambda args: cmd_site(args, db))
