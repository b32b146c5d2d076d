"""``passgate keys``: make key pairs (issuer keys here; root and device keys register too)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="make key pairs")
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="KIND")
    q = ksub.add_parser("new-issuer", help="make an issuer key pair (issuer.key 0600, issuer.pub)")
    q.add_argument("--out", type=Path, required=True, help="folder for issuer.key/.pub/.toml")
    q.add_argument("--name", default="passgate", help="issuer name carried in passes (iss)")
    q.set_defaults(func=new_issuer)
    d = ksub.add_parser("new-device", help="make this checkpoint's device key (device.key 0600)")
    d.add_argument("--out", type=Path, required=True, help="folder for device.key/.pub")
    d.set_defaults(func=new_device)
    r = ksub.add_parser("new-root", help="make an offline bundle root key (root.key, root.pub)")
    r.add_argument("--out", type=Path, required=True, help="folder for root.key/.pub (offline)")
    r.set_defaults(func=new_root)
    v = ksub.add_parser(
        "new-revocation", help="make an online revocation key (revocation.key 0600, .pub)"
    )
    v.add_argument("--out", type=Path, required=True, help="folder for revocation.key/.pub")
    v.set_defaults(func=new_revocation)
    t = ksub.add_parser("new-time", help="make a time-token key pair (time.key 0600, time.pub)")
    t.add_argument("--out", type=Path, required=True, help="folder for time.key/.pub")
    t.set_defaults(func=new_time)


def new_issuer(args: argparse.Namespace) -> int:
    from passgate.errors import UsageError
    from passgate.passes.format import ISSUER_MAX, visible_name
    from passgate.passes.keys import new_keypair

    if not visible_name(args.name, ISSUER_MAX):
        raise UsageError(f"--name must be 1-{ISSUER_MAX} printable characters: letters, digits, "
                         "single spaces and - . , ' / # № ( ) (the pass's iss, spec 1.1)")
    _, pub, kid = new_keypair(args.out, "issuer")
    # Metadata beside the public key: copy both into a checkpoint's trust folder.
    pub.with_suffix(".toml").write_text(
        f'# Issuer key metadata (kid {kid.hex()}). Edit zones/purposes/validity as needed.\n'
        f"name = {_toml_str(args.name)}\n"
        '# valid_from = 2026-01-01T00:00:00Z\n# valid_until = 2028-01-01T00:00:00Z\n'
        '# zones = ["gate-1"]\n# purposes = ["work", "shopping"]\n',
        encoding="utf-8",
    )
    print(kid.hex())
    return 0


def new_device(args: argparse.Namespace) -> int:
    """Make the device key that signs uploads; prints its fingerprint (shown at enrolment)."""
    from passgate.sync.devicekey import new_device_key

    _, _, fingerprint = new_device_key(args.out)
    print(fingerprint)
    return 0


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def new_root(args: argparse.Namespace) -> int:
    """A root key signs trust bundles; keep root.key offline (docs/trust.md, the ceremony)."""
    from passgate.passes.keys import new_keypair

    _, _, kid = new_keypair(args.out, "root")
    print(kid.hex())
    return 0


def new_time(args: argparse.Namespace) -> int:
    """A time key signs time tokens on the collector; devices pin time.pub."""
    from passgate.passes.keys import new_keypair

    _, _, kid = new_keypair(args.out, "time")
    print(kid.hex())
    return 0


def new_revocation(args: argparse.Namespace) -> int:
    """A revocation key may only add revocations, until the expiry the roots give it in
    ``bundle build --revoker``; it lives online, on the issuing office's or collector's host."""
    from passgate.passes.keys import new_keypair

    _, _, kid = new_keypair(args.out, "revocation")
    print(kid.hex())
    return 0
