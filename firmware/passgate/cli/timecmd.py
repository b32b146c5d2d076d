"""``passgate time``: the checkpoint clock's state, and signed time tokens by hand.

- ``time status``: state (trusted / floor / backwards), effective and system time, floor;
- ``time challenge``: a nonce to get a *fresh* token for (then the clock becomes trusted);
- ``time set --token FILE``: accept a token (raw COSE bytes or base64 text);
- ``time token``: sign a token with a time key (the collector's job; for tests and ceremonies).

The clock file is ``clock.floor`` in the state folder ``--state DIR`` names (the option every
sub-command uses for it; ``--clock FILE``, the file itself, is a deprecated alias). The clock
settings (what the site trusts, the RTC, the state file) come from ``--config FILE``,
else from ``/etc/passgate/passgate.toml`` when it exists, else the defaults. Exit codes: 0 done,
1 the token was refused (or, for ``status``, the clock is not trusted), 2 usage error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import socket
import sys
import time
from pathlib import Path

DEFAULT_CLOCK = Path("/var/lib/passgate/clock.floor")
CLOCK_NAME = "clock.floor"  # its name inside a state folder, as [clock] floor_file derives it
DEFAULT_TIME_KEYS = Path("/var/lib/passgate/time-keys")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("time", help="clock state and signed time tokens")
    tsub = p.add_subparsers(dest="time_command", required=True, metavar="ACTION")

    s = tsub.add_parser("status", help="show the clock state and the floor")
    _clock_option(s)
    s.add_argument("--json", action="store_true", help="print a JSON object")
    s.set_defaults(func=status)

    c = tsub.add_parser(
        "challenge", help="make a nonce; a token answering it makes the clock trusted"
    )
    _clock_option(c)
    c.set_defaults(func=challenge)

    t = tsub.add_parser("set", help="accept a signed time token")
    t.add_argument(
        "--token", type=Path, required=True, help="token file (raw or base64); '-' reads stdin"
    )
    _clock_option(t)
    t.add_argument(
        "--time-keys",
        type=Path,
        help="pinned time public key(s): a .pub or a folder (default: time-keys in the "
        f"config's state_dir, else {DEFAULT_TIME_KEYS})",
    )
    t.add_argument(
        "--device-id", help="this checkpoint's id (default: the config's, else the host name)"
    )
    t.set_defaults(func=set_token)

    k = tsub.add_parser("token", help="sign a time token with a time key (collector side)")
    k.add_argument("--key", type=Path, required=True, help="time private key (time.key)")
    k.add_argument("--device", required=True, help="device id the token is for")
    k.add_argument("--nonce", help="the device's challenge, hex (makes the token fresh)")
    k.add_argument("--at", help="the time to sign, ISO-8601 (default: now)")
    k.add_argument("--out", type=Path, help="write raw bytes here (default: base64 on stdout)")
    k.set_defaults(func=make)


def _clock_option(p: argparse.ArgumentParser) -> None:
    # --state names the state folder, as in every other sub-command (log, sync, run
    # --simulate, selftest --simulate); --clock, the file itself, stays for old scripts.
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help=f"state folder holding {CLOCK_NAME} (and time-keys/) (default: the config's "
        f"clock.floor_file, else {DEFAULT_CLOCK})",
    )
    where.add_argument(
        "--clock", type=Path, default=None, metavar="FILE",
        help="deprecated: the clock state file itself (use --state DIR)",
    )
    config_option(p)


def clock_file(args: argparse.Namespace) -> Path | None:
    """The clock state file ``--state`` or ``--clock`` names (None: the config's or default)."""
    if args.state is not None:
        return args.state / CLOCK_NAME
    return args.clock


def config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        help="passgate.toml for the site's settings (default /etc/passgate/passgate.toml, "
        "if present)",
    )


def site_config(path: Path | None):
    """The checkpoint's config: ``path``, else the default file if there is one, else None
    (a laptop, an operator's desk). ConfigError (exit 2) if it is given but unusable."""
    from passgate.config.load import DEFAULT_PATH, load_config

    if path is None and not DEFAULT_PATH.is_file():
        return None
    return load_config(path)


def make_clock(clock_file: Path | None, persist: bool = False, cfg=None, need_store=False):
    """A :class:`SystemClock` with the config's clock settings (``cfg``: a Config or None) on
    ``clock_file``, else the config's floor file, else the default one; a default file whose
    folder does not exist means no floor, unless ``need_store`` (the command writes)."""
    from passgate.clock import clock
    from passgate.clock.store import ClockStore

    path = clock_file or (cfg.clock.floor_file if cfg is not None else DEFAULT_CLOCK)
    explicit = need_store or clock_file is not None or cfg is not None
    store = ClockStore(path) if explicit or path.parent.is_dir() else None
    config = clock.ClockConfig.from_section(cfg.clock) if cfg is not None else clock.ClockConfig()
    # The flag path is looked up at call time so tests can point it elsewhere.
    return clock.SystemClock(store, config, persist=persist, timesync_flag=clock.TIMESYNC_FLAG)


def effective_reading(clock_file: Path | None, cfg=None):
    """The checkpoint's effective time for commands (``bundle install``): never written back."""
    return make_clock(clock_file, cfg=cfg).read()


def status(args: argparse.Namespace) -> int:
    from passgate.util.timefmt import iso, span

    st = make_clock(clock_file(args), cfg=site_config(args.config)).status()
    r = st.reading
    if args.json:
        print(
            json.dumps(
                {
                    "state": r.state.value,
                    "now": r.now,
                    "source": st.source,
                    "system": st.system,
                    "floor": st.floor,
                    "floor_source": st.floor_source,
                    "token_age_s": st.token_age_s,
                    "synchronised": st.synchronised,
                    "rtc_offset_s": st.rtc_offset_s,
                },
                sort_keys=True,
            )
        )
    else:
        print(f"clock {r.state.value} ({st.source}): {iso(r.now)}")
        print(f"system clock {iso(st.system)}; floor {iso(st.floor)} ({st.floor_source})")
        print(
            f"NTP synchronised (timesyncd, kernel): {'yes' if st.synchronised else 'no'}"
            + (f"; fresh token {span(st.token_age_s)} ago" if st.token_age_s is not None else "")
        )
    return 0 if r.trusted else 1


def challenge(args: argparse.Namespace) -> int:
    clock = make_clock(clock_file(args), cfg=site_config(args.config), need_store=True)
    print(clock.new_challenge().hex())
    return 0


def set_token(args: argparse.Namespace) -> int:
    from passgate.cli import EXIT_DENIED
    from passgate.clock.tokens import load_time_keys
    from passgate.errors import TimeTokenError
    from passgate.util.timefmt import iso

    cfg = site_config(args.config)
    data = _read_token(args.token)
    state = args.state or (cfg.checkpoint.state_dir if cfg is not None else None)
    default_keys = state / "time-keys" if state is not None else DEFAULT_TIME_KEYS
    keys = load_time_keys(args.time_keys or default_keys)
    clock = make_clock(clock_file(args), cfg=cfg, need_store=True)
    device = args.device_id or (cfg.checkpoint.device_id if cfg is not None else None)
    try:
        result = clock.accept_token(data, keys, device or socket.gethostname())
    except TimeTokenError as exc:
        print(f"passgate: refused: {exc}", file=sys.stderr)
        return EXIT_DENIED
    reading = clock.read()
    print(
        f"token time {iso(result.token_time)}: {result.detail}"
        + (
            "; floor raised"
            if result.floor_raised
            else "; floor lowered (it was set by an unsigned source)"
            if result.floor_repaired
            else "; floor already later"
        )
    )
    print(f"clock {reading.state.value}: {iso(reading.now)}")
    return 0


def make(args: argparse.Namespace) -> int:
    from passgate.clock.tokens import make_token
    from passgate.errors import UsageError
    from passgate.passes.keys import load_private
    from passgate.util.atomicfile import write_atomic
    from passgate.util.timefmt import parse_instant

    try:
        t = parse_instant(args.at) if args.at else time.time()
        nonce = bytes.fromhex(args.nonce) if args.nonce else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    token = make_token(load_private(args.key), t, args.device, nonce)
    if args.out:
        write_atomic(args.out, token)
    else:
        print(base64.b64encode(token).decode())
    return 0


def _read_token(path: Path) -> bytes:
    from passgate.clock.tokens import MAX_TOKEN
    from passgate.errors import UsageError

    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(4 * MAX_TOKEN)
        else:
            with open(path, "rb") as f:
                data = f.read(4 * MAX_TOKEN)  # base64 of the largest token fits; more is not one
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if data[:1] == b"\xd2":  # CBOR tag 18: a raw COSE_Sign1
        return data
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{path}: neither a raw token nor base64") from None
