"""``passgate-collector user ...``: staff accounts; and the ``serve`` options of staff sign-in.

``user add NAME --role ROLE``, ``user passwd NAME``, ``user role NAME ROLE``, ``user remove
NAME``, ``user list``, ``user totp enable|disable NAME``.

Rules kept here:
- A password is read without echo from the terminal (asked twice), or as one line from
  standard input with ``--password-stdin`` (scripts); never from the command line, where
  ``ps`` and shell history would show it. ``--no-password`` makes an account that signs in
  only through a trusted proxy header.
- ``user totp enable`` prints the otpauth URI (secret included) once, on standard output;
  it is stored in the database and never printed or logged again.
- ``user list`` shows names, roles and whether TOTP is on: no hash, no secret.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import time

from passgate.errors import UsageError

from .auth import AuthOptions, passwords, roles, totp
from .store import open_store

EXIT_OK, EXIT_FAIL = 0, 1  # as cli.py's
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")


def _name(text: str) -> str:
    if not NAME_RE.fullmatch(text):
        raise UsageError("an account name is 1-64 characters of [a-z0-9._@-], starting with a "
                         "letter or digit")
    return text


def _read_password(args) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    return passwords.hash_password(password)  # UsageError if too short


def cmd_user(args, db: str) -> int:
    store = open_store(db)
    try:
        if args.action == "list":
            for u in store.users():
                factor = "totp" if u.totp_secret else "-"
                login = "proxy only" if u.pw_hash == passwords.NO_PASSWORD else "password"
                print(f"{u.name}\t{u.role}\t{login}\t{factor}")
            return EXIT_OK
        name = _name(args.name)
        if args.action == "add":
            pw_hash = passwords.NO_PASSWORD if args.no_password else _read_password(args)
            store.add_user(name, args.role, pw_hash, int(time.time()))
            ok, done = True, f"added ({args.role})"
        elif args.action == "passwd":
            ok, done = store.set_password(name, _read_password(args)), "password changed"
        elif args.action == "role":
            ok, done = store.set_role(name, args.role), f"role {args.role}"
        elif args.action == "remove":
            ok, done = store.remove_user(name), "removed"
        else:  # totp
            secret = totp.new_secret() if args.switch == "enable" else None
            ok, done = store.set_totp(name, secret), f"TOTP {args.switch}d"
            if ok and secret is not None:
                print(totp.otpauth_uri(secret, name))  # once: scan it into the app now
    finally:
        store.close()
    if not ok:
        print(f"passgate-collector: no account {name!r}", file=sys.stderr)
        return EXIT_FAIL
    ended = "" if args.action == "add" else " (its sessions, if any, have ended)"
    print(f"{name}: {done}{ended}", file=sys.stderr)
    return EXIT_OK


def add_user_commands(sub, with_db, db_of) -> None:
    """Add ``user`` to the sub-command parsers; ``db_of(args)`` is the database URL."""
    u = sub.add_parser("user", help="staff accounts of the console (docs/collector.md)")
    acts = u.add_subparsers(dest="action", required=True, metavar="ACTION")

    def run(args) -> int:
        return cmd_user(args, db_of(args))

    def with_password(p: argparse.ArgumentParser) -> None:
        p.add_argument("--password-stdin", action="store_true",
                       help="read the password as one line from standard input")

    a = with_db(acts.add_parser("add", help="add an account; asks for its password"))
    a.add_argument("name")
    a.add_argument("--role", choices=roles.ROLES, default=roles.VIEWER)
    with_password(a)
    a.add_argument("--no-password", action="store_true",
                   help="sign-in only through --trust-proxy-user-header")
    pw = with_db(acts.add_parser("passwd", help="set a new password (ends its sessions)"))
    pw.add_argument("name")
    with_password(pw)
    r = with_db(acts.add_parser("role", help="change an account's role"))
    r.add_argument("name")
    r.add_argument("role", choices=roles.ROLES)
    rm = with_db(acts.add_parser("remove", help="remove an account"))
    rm.add_argument("name")
    with_db(acts.add_parser("list", help="names, roles, second factor"))
    t = with_db(acts.add_parser("totp", help="second factor: enable prints the URI once"))
    t.add_argument("switch", choices=("enable", "disable"))
    t.add_argument("name")
    for p in (a, pw, r, rm, t):
        p.set_defaults(func=run)
    acts.choices["list"].set_defaults(func=run)


def add_serve_options(s: argparse.ArgumentParser) -> None:
    d = AuthOptions()
    s.add_argument("--session-idle", type=int, default=d.idle_s, metavar="SECONDS",
                   help=f"a staff session unused this long ends (default {d.idle_s})")
    s.add_argument("--session-max", type=int, default=d.absolute_s, metavar="SECONDS",
                   help=f"a staff session ends this long after sign-in (default {d.absolute_s})")
    s.add_argument("--trust-proxy-user-header", metavar="HEADER",
                   help="take the staff account name from this header (e.g. X-Remote-User) "
                        "when the request comes from a --trusted-proxy; off by default")
    s.add_argument("--trusted-proxy", action="append", metavar="ADDRESS",
                   help="address of the reverse proxy (repeatable; default 127.0.0.1 and ::1): "
                        "its X-Forwarded-For and identity header are believed")


def auth_options(args) -> AuthOptions:
    if args.session_idle <= 0 or args.session_max <= 0:
        raise UsageError("--session-idle and --session-max must be positive")
    return AuthOptions(idle_s=args.session_idle, absolute_s=args.session_max,
                       proxy_user_header=args.trust_proxy_user_header,
                       trusted_proxies=tuple(args.trusted_proxy or AuthOptions.trusted_proxies))
