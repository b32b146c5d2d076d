"""``passgate config``: check the configuration, or print the effective one as TOML.

The check refuses exactly what ``passgate run`` refuses at start-up, with the same one line
(file, key, path, problem): it loads the config the same way and then runs the run's own
start-up checks, :func:`passgate.checkpoint.wiring.preflight` (key files that must read,
folders that must exist, a trust folder that must load). ``--dump`` prints what was loaded
without those checks, so a config whose files are not there yet can still be looked at.
``--simulate`` checks or prints the config ``passgate run --simulate`` builds for its state
folder (``--state``, default ``./state``) instead of a file.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config", help="check the configuration (--dump: print the effective config as TOML)"
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="main config file (default /etc/passgate/passgate.toml); "
        "passgate.d/*.toml beside it are applied in name order",
    )
    p.add_argument("--dump", action="store_true", help="print the effective config as TOML")
    p.add_argument("--simulate", action="store_true",
                   help="the config passgate run --simulate uses (no file), on its state folder")
    p.add_argument("--state", type=Path, default=Path("state"), metavar="DIR",
                   help="--simulate: state folder (default ./state, as passgate run --simulate)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from passgate.checkpoint.wiring import preflight
    from passgate.config.load import dump_toml, load_config
    from passgate.errors import ConfigError, UsageError

    if args.simulate:
        if args.config is not None:
            raise UsageError("--simulate needs no config; drop --config")
        from passgate.checkpoint.simulate import sim_config

        cfg = sim_config(args.state)
    else:
        cfg = load_config(args.config)  # ConfigError: one line naming file and key, exit 2
    if args.dump:
        print(dump_toml(cfg), end="")
        return 0
    try:
        preflight(cfg)  # what `passgate run` refuses before it starts, in the same words
    except ConfigError as exc:
        if not args.simulate:
            raise
        raise ConfigError(f"{exc}; passgate run --simulate --state {args.state} makes it") from None
    where = f"the simulation on {args.state}" if args.simulate else ", ".join(cfg.sources)
    print(f"config ok: {where}")
    return 0
