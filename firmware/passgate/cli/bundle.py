"""``passgate bundle``: build, inspect, install signed trust bundles (``verify --bundle``:
in trustopts).

``install`` checks a bundle against the checkpoint clock only (its floor can only rise): it
takes no ``--at``, so no command line can install a bundle that has expired, nor raise the
installed version with one. ``status`` and ``verify --bundle`` change nothing on disk and
take ``--at``.

Exit codes: 0 done (or verified), 1 a check failed (the bundle was refused, or does not verify
against the given roots; the installed bundle stays active), 2 usage, unreadable input, or a
problem of this machine rather than of the bundle (disk full, a state folder that cannot be
created or written): one line on stderr either way.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from passgate.cli.timecmd import config_option
from passgate.cli.trustopts import now as _now
from passgate.cli.trustopts import roots as _roots
from passgate.cli.trustopts import roots_options as _roots_options

DEFAULT_STATE = Path("/var/lib/passgate/bundle")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="build, inspect and install signed trust bundles")
    bsub = p.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")

    b = bsub.add_parser("build", help="build and sign a bundle with offline root keys")
    b.add_argument(
        "--root",
        type=Path,
        action="append",
        required=True,
        help="root private key (repeat: k of n)",
    )
    b.add_argument(
        "--issuers", type=Path, required=True, help="folder of issuer *.pub + *.toml metadata"
    )
    b.add_argument(
        "--revoked", type=Path, help="revoked pass ids: hex per line, or *.bin packed digests"
    )
    b.add_argument(
        "--policy", type=Path, help="policy TOML: purposes, zones, fleet (docs/policy.example.toml)"
    )
    b.add_argument(
        "--version", type=int, required=True, help="bundle version; must grow with every bundle"
    )
    b.add_argument("--expires", default="7d", help="validity: a duration (7d) or an ISO-8601 time")
    b.add_argument("--issued", help="issue time, ISO-8601 (default: now)")
    b.add_argument(
        "--new-roots", type=Path, help="rotate: the new root set (roots.toml or *.pub folder)"
    )
    b.add_argument(
        "--new-threshold", type=int, help="with --new-roots as a *.pub folder: its threshold"
    )
    b.add_argument(
        "--revoker", type=Path, action="append", default=[],
        help="authorise this revocation public key to add revocations (repeat)",
    )
    b.add_argument(
        "--revoker-expires", default="2d", help="how long --revoker keys may act (default 2d)"
    )
    b.add_argument(
        "--release-key", type=Path, action="append", default=[],
        help="authorise this public key to sign software releases (repeat; docs/trust.md)",
    )
    b.add_argument(
        "--min-release", metavar="VERSION",
        help="with --release-key: devices never install a release below this version",
    )
    b.add_argument("--out", type=Path, required=True, help="bundle file to write")
    b.set_defaults(func=build)

    i = bsub.add_parser("inspect", help="show what a bundle holds and who signed it")
    i.add_argument("file", type=Path)
    _roots_options(i)
    i.add_argument("--json", action="store_true", help="print a JSON object")
    i.set_defaults(func=inspect)

    n = bsub.add_parser("install", help="install a bundle on this device (the sync agent's checks)")
    n.add_argument("file", type=Path)
    n.add_argument(
        "--state",
        type=Path,
        help=f"bundle folder (default: the config's trust.bundle_dir, else {DEFAULT_STATE})",
    )
    _roots_options(n, " (provisioning only: pins them)")
    n.add_argument(
        "--max-size", default="64M", help="refuse bundles larger than this (default 64M)"
    )
    # Refused, not absent: one line saying why beats argparse's usage block. An install is
    # checked against the checkpoint clock only; a time typed here would skip the expiry
    # (freeze) check and raise the installed version past bundles that are still good.
    n.add_argument(
        "--at", help="refused: an install is checked against the checkpoint clock, never a "
        "time given here (status and verify --bundle take --at)"
    )
    n.add_argument("--clock", type=Path, help="clock state file (default: the config's)")
    config_option(n)
    n.set_defaults(func=install)

    s = bsub.add_parser("status", help="the installed bundle and how fresh it is")
    s.add_argument(
        "--state",
        type=Path,
        help=f"bundle folder (default: the config's trust.bundle_dir, else {DEFAULT_STATE})",
    )
    s.add_argument("--at", help="as of this ISO-8601 time (default: the checkpoint clock)")
    s.add_argument("--clock", type=Path, help="clock state file for the default time")
    config_option(s)
    s.add_argument("--json", action="store_true", help="print a JSON object")
    s.set_defaults(func=status)
    from passgate.cli import bundledelta

    bundledelta.register(bsub)


def build(args: argparse.Namespace) -> int:
    from passgate.bundle import RootSet, build_bundle, content_from_files
    from passgate.bundle.build import check_version
    from passgate.errors import TrustError, UsageError
    from passgate.passes.keys import load_private
    from passgate.util.atomicfile import write_atomic
    from passgate.util.timefmt import iso, parse_duration, parse_instant

    try:
        check_version(args.version)  # before reading a million revocations
    except TrustError as exc:
        raise UsageError(f"--version: {str(exc).removeprefix('bundle: ')}") from None
    try:
        issued = parse_instant(args.issued) if args.issued else int(time.time())
        try:
            expires = issued + parse_duration(args.expires)
        except ValueError:
            expires = parse_instant(args.expires)
    except ValueError as exc:
        raise UsageError(f"--issued/--expires: {exc}") from None
    if expires <= issued:
        raise UsageError("--expires must be after the issue time")
    content = content_from_files(args.issuers, args.revoked, args.policy)
    keys = [load_private(p) for p in args.root]
    new_roots = RootSet.load(args.new_roots, args.new_threshold) if args.new_roots else None
    data = build_bundle(content, keys, args.version, issued, expires, new_roots,
                        _revokers(args.revoker, args.revoker_expires, issued),
                        _releases(args.release_key, args.min_release))
    write_atomic(args.out, data)
    print(
        f"bundle v{args.version}: {len(data)} bytes, {len(content.issuers)} issuer key(s), "
        f"{len(content.revoked)} revoked, {len(keys)} root signature(s), expires {iso(expires)}"
        + (f", rotates roots to {new_roots.describe()}" if new_roots else "")
    )
    return 0


def _revokers(paths: list[Path], expires: str, issued: int) -> tuple:
    from passgate.bundle.format import Revoker
    from passgate.errors import UsageError
    from passgate.passes.keys import load_public, raw_public
    from passgate.util.timefmt import parse_duration, parse_instant

    try:
        try:
            until = issued + parse_duration(expires)
        except ValueError:
            until = parse_instant(expires)
    except ValueError as exc:
        raise UsageError(f"--revoker-expires: {exc}") from None
    return tuple(Revoker(raw_public(load_public(p)), until) for p in paths)


def _releases(paths: list[Path], min_version: str | None):
    from passgate.errors import ReleaseRefused, UsageError
    from passgate.passes.keys import load_public, raw_public
    from passgate.release import ReleaseAuth

    if not paths:
        if min_version is not None:
            raise UsageError("--min-release needs at least one --release-key")
        return None
    try:
        return ReleaseAuth.from_cbor_obj({
            "keys": [raw_public(load_public(p)) for p in paths],
            "min_version": min_version or "0",
        })
    except ReleaseRefused as exc:
        raise UsageError(f"--release-key/--min-release: {exc.detail}") from None


def inspect(args: argparse.Namespace) -> int:
    from passgate.bundle import BundleRefused, read_bundle

    roots = _roots(args)
    try:
        bundle = read_bundle(args.file, roots)
        store, info = bundle.trust()
    except BundleRefused as exc:
        return _refused(exc)
    if args.json:
        print(json.dumps(_info_json(info, store), sort_keys=True))
    else:
        print(_describe(info, roots, store=store))
    return 0


def install(args: argparse.Namespace) -> int:
    from passgate.bundle import BundleRefused, install_bundle
    from passgate.cli.timecmd import site_config
    from passgate.errors import UsageError
    from passgate.util.timefmt import iso

    if args.at is not None:
        raise UsageError(
            "bundle install takes no --at: a bundle is installed only as of the checkpoint "
            "clock, so its expiry is always checked (look at other times with bundle status "
            "--at or verify --bundle --at)"
        )
    cfg = site_config(args.config)
    state = _state(args, cfg)
    now, how = _now(None, args.clock, cfg)
    try:
        info = install_bundle(
            args.file, state, now, roots=_roots(args), max_bytes=_size(args.max_size)
        )
    except BundleRefused as exc:
        return _refused(exc)
    except OSError as exc:
        return _environment(exc, f"cannot install into {state}")
    print(f"installed bundle v{info.version} in {state} (expires {iso(info.expires)}; time: {how})")
    return 0


def status(args: argparse.Namespace) -> int:
    from passgate.bundle import load_installed, trust_status
    from passgate.cli.timecmd import site_config

    cfg = site_config(args.config)
    state = _state(args, cfg)
    try:
        _, info = load_installed(state)
    except OSError as exc:
        return _environment(exc, f"cannot read {state}")
    now, _how = _now(args.at, args.clock, cfg)
    st = trust_status(info, now)
    if args.json:
        print(
            json.dumps(
                {**_info_json(info), "stale": st.stale, "age_s": st.age_s, "why": st.why},
                sort_keys=True,
            )
        )
    else:
        print(_describe(info, None, installed=True))
        print(f"status: {'STALE: ' if st.stale else ''}{st.message}")
    return 1 if st.stale else 0


# -- helpers ------------------------------------------------------------------------------------
def _state(args: argparse.Namespace, cfg) -> Path:
    """The bundle folder: ``--state``, else the config's ``trust.bundle_dir``, else the default."""
    if args.state is not None:
        return args.state
    return cfg.trust.bundle_dir if cfg is not None else DEFAULT_STATE


def _size(text: str) -> int:
    from passgate.errors import UsageError

    m = re.fullmatch(r"(\d+)\s*([kmg]?)(i?b)?", text.strip().lower())
    if not m:
        raise UsageError(f"--max-size: {text!r} is not a size like 64M")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]


def _refused(exc) -> int:
    print(f"passgate: refused ({exc.reason.value}): {exc}", file=sys.stderr)
    return 1


def _environment(exc: OSError, what: str) -> int:
    """This machine's problem, not the bundle's (disk full, no such folder): exit 2."""
    from passgate.cli import EXIT_USAGE

    detail = exc.strerror or str(exc)
    if exc.strerror and exc.filename:
        detail = f"{exc.filename}: {exc.strerror}"
    print(f"passgate: error: {what}: {detail}", file=sys.stderr)
    return EXIT_USAGE


def _info_json(info, store=None) -> dict:
    out = {
        "version": info.version,
        "issued": info.issued,
        "expires": info.expires,
        "manifest_sha256": info.manifest_sha256,
        "size": info.size,
        "verified": info.verified,
        "signed_by": list(info.signed_by),
        "issuers": info.issuers,
        "revoked": info.revoked,
        "parts": [{"name": n, "length": length, "sha256": h} for n, length, h in info.parts],
        "new_roots": None
        if info.new_roots is None
        else {
            "threshold": info.new_roots.threshold,
            "kids": [k.hex() for k in info.new_roots.kids],
            "signed_by": list(info.new_signed_by),
        },
        "fleet": info.fleet.to_cbor_obj(),
        "installed_at": info.installed_at,
        "last_refresh": info.last_refresh,
    }
    if store is not None:
        out["issuer_keys"] = [_issuer_json(k) for k in store.keys]
        out["purposes"] = {
            p.id: {"code": p.code, "label": p.label, "max_s": p.max_s} for p in store.purposes
        }
        out["zones"] = {z: sorted(ps) for z, ps in store.zone_purposes.items()}
    return out


def _issuer_json(k) -> dict:
    return {
        "kid": k.kid.hex(),
        "name": k.issuer,
        "valid_from": k.valid_from,
        "valid_until": k.valid_until,
        "zones": None if k.zones is None else sorted(k.zones),
        "purposes": None if k.purposes is None else sorted(k.purposes),
    }


def _describe(info, roots, installed: bool = False, store=None) -> str:
    from passgate.util.timefmt import iso, span

    d = info.fleet.default
    lines = [
        f"bundle v{info.version}: issued {iso(info.issued)}, expires {iso(info.expires)}, "
        f"{info.size} bytes",
        f"manifest sha256 {info.manifest_sha256}",
    ]
    if info.verified:
        who = "the pinned roots" if roots is None else f"roots {roots.describe()}"
        lines.append(f"signatures: VERIFIED against {who}: {', '.join(info.signed_by)}")
    else:
        lines.append(
            f"signatures: NOT verified (give --roots); claimed by {', '.join(info.signed_by)}"
        )
    if info.new_roots is not None:
        lines.append(f"rotates roots to: {info.new_roots.describe()}")
        if info.verified:
            lines.append(f"signatures of the new roots: VERIFIED: {', '.join(info.new_signed_by)}")
    lines += [f"part {n}: {length} bytes, sha256 {h}" for n, length, h in info.parts]
    lines.append(f"issuer keys: {info.issuers}; revoked passes: {info.revoked}")
    if info.releases is not None:
        from passgate.passes.keys import kid_of

        kids = ", ".join(kid_of(k).hex() for k in info.releases.keys)
        lines.append(f"release keys: {kids}; minimum release {info.releases.min_version}")
    for k in store.keys if store is not None else ():
        j = _issuer_json(k)
        start = iso(k.valid_from) if k.valid_from else "-"
        window = f"{start} .. {iso(k.valid_until) if k.valid_until else '-'}"
        lines.append(
            f"  key {j['kid']} {j['name'] or '(any issuer name)'}: valid {window}, "
            f"zones {', '.join(j['zones']) if j['zones'] else 'any'}, "
            f"purposes {', '.join(j['purposes']) if j['purposes'] else 'any'}"
        )
    if store is not None:
        by_code = sorted(store.purposes, key=lambda p: p.code)
        lines.append(f"purposes: {', '.join(p.id for p in by_code)}")
        lines += [f"  zone {z}: {', '.join(sorted(ps))}" for z, ps in store.zone_purposes.items()]
    fleet = info.fleet.to_cbor_obj()
    lines.append(
        f"fleet: max offline {span(d.max_offline_s)}, clock untrusted -> {d.clock}, "
        f"stale -> {d.stale}, "
        f"anti-passback {span(d.anti_passback_s)}"
        + "".join(f"; site {k}: {v}" for k, v in fleet["sites"].items())
        + "".join(f"; zone {k}: {v}" for k, v in fleet["zones"].items())
    )
    if installed and info.installed_at is not None:
        lines.append(f"installed {iso(info.installed_at)}, last refresh {iso(info.last_refresh)}")
    return "\n".join(lines)
