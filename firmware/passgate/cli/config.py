"""``passgate config``: check the configuration, or print the effective one as TOML.

The check refuses exactly what ``passgate run`` refuses at start-up, with the same one line
(file, key, path, problem): it loads the config the same way and then runs the run's own
start-up checks, :func:`passgate.checkpoint.wiring.preflight` (key files that must read,
folders that must exist, a trust folder that must load). ``--dump`` prints what was loaded
without those checks, so a config whose files are not there yet can still be looked at.
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from passgate.checkpoint.wiring import preflight
    from passgate.config.load import dump_toml, load_config

    cfg = load_config(args.config)  # ConfigError: one line naming file and key, exit 2
    if args.dump:
        print(dump_toml(cfg), end="")
    else:
        preflight(cfg)  # what `passgate run` refuses before it starts, in the same words
        print(f"config ok: {', '.join(cfg.sources)}")
    return 0
