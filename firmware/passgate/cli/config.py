"""``passgate config``: check the configuration, or print the effective one as TOML."""

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
    from passgate.config.load import dump_toml, load_config

    cfg = load_config(args.config)  # ConfigError: one line naming file and key, exit 2
    if args.dump:
        print(dump_toml(cfg), end="")
    else:
        print(f"config ok: {', '.join(cfg.sources)}")
    return 0
