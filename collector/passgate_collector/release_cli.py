"""``passgate-collector release publish | rollout | status`` (docs/collector.md, "Releases").

    passgate-collector release publish passgate_0.2.0_arm64.release passgate_0.2.0_arm64.deb
    passgate-collector release rollout 0.2.0 --percent 10      # canary: 10 % of devices
    passgate-collector release rollout 0.2.0 --site north      # one site at once
    passgate-collector release rollout 0.2.0                   # everyone (= --percent 100)
    passgate-collector release status [--json]

Every command takes ``--releases DIR`` (the folder ``serve --releases`` serves) and ``--db``
(the newest bundle's release keys and minimum decide what may be published and rolled out).
Exit codes: 0 done, 2 refused or usage error (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .releases import ReleaseDir, plan_line, progress, release_auth
from .store import open_store

DEFAULT_RELEASES = "/var/lib/passgate-collector/releases"


def register(sub, with_db, db_url) -> None:
    """Add the group; ``db_url(args)`` is the collector's own --db resolution."""
    r = sub.add_parser("release", help="signed software releases and their rollout")
    rs = r.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--releases", default=DEFAULT_RELEASES,
                        help=f"folder of served releases (default {DEFAULT_RELEASES})")
        sp.set_defaults(db_url=db_url)
        return with_db(sp)

    p = common(rs.add_parser("publish", help="check a signed release and serve it"))
    p.add_argument("release", type=Path, help="passgate_<version>_<arch>.release")
    p.add_argument("deb", type=Path, help="the package it signs")
    p.set_defaults(func=cmd_publish)
    o = common(rs.add_parser("rollout", help="say which devices run a published version"))
    o.add_argument("version")
    who = o.add_mutually_exclusive_group()
    who.add_argument("--percent", type=float, help="canary: this share of devices (by id hash)")
    who.add_argument("--site", help="every device of this site")
    o.set_defaults(func=cmd_rollout)
    s = common(rs.add_parser("status", help="the plan, published releases, devices per state"))
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)


def _open(args):
    store = open_store(args.db_url(args))
    return store, ReleaseDir(Path(args.releases)), release_auth(store)


def cmd_publish(args) -> int:
    store, folder, auth = _open(args)
    try:
        pub = folder.publish(args.release.read_bytes(), args.deb.read_bytes(), auth, time.time())
    finally:
        store.close()
    print(f"published release {pub.version} for {pub.arch} ({pub.size} bytes)")
    return 0


def cmd_rollout(args) -> int:
    store, folder, auth = _open(args)
    try:
        plan = folder.rollout(args.version, auth, time.time(), percent=args.percent,
                              site=args.site)
    finally:
        store.close()
    print("rollout: " + plan_line(plan))
    return 0


def cmd_status(args) -> int:
    store, folder, auth = _open(args)
    try:
        prog = progress(store, folder)
        published = folder.published(auth, time.time())
    finally:
        store.close()
    if args.json:
        prog["published"] = [
            {"version": p.version, "arch": p.arch, "size": p.size, "expires": p.expires}
            for p in published]
        print(json.dumps(prog, sort_keys=True))
        return 0
    print("rollout: " + plan_line(prog["plan"]))
    print("published: " + (", ".join(f"{p.version} ({p.arch})" for p in published) or "none"))
    print("devices running: " + ", ".join(f"{v}: {n}" for v, n in sorted(prog["running"].items())))
    print("update states: " + ", ".join(f"{s}: {n}" for s, n in sorted(prog["states"].items())))
    return 0

