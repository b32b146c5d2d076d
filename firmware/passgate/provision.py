"""First-boot provisioning: one device file on the boot partition -> a configured checkpoint.

``passgate-device.toml`` (format: ``docs/provisioning.md``) carries what differs between the
checkpoints of a fleet: the device id and zone, the collector URL with a one-time enrolment
token, the pinned root keys (and optionally an initial bundle), the fleet's pass-hash key and
optional config overrides. Provisioning runs in two phases:

1. :func:`read_device_file` and :func:`check` validate everything, the device file against
   the real config loader included, and compare it with what the device already holds. Any
   problem is a :class:`ProvisionError` with one readable line, and nothing has been written.
2. :func:`apply` writes: the config drop-in, the pinned roots, the bundle, the journal's hash
   key, the sync agent's device key and enrolment record. Every step first looks at what is
   there, so a second run with the same file changes nothing and says so.

No clock is read here: ``now`` is handed in. The command line (``passgate provision``) adds
the OLED message, the log line, the result file and the removal of the device file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .atomicfile import write_atomic
from .bundle import BundleError, RootSet, install_bundle, pin_roots, pinned_roots, read_bundle
from .bundle.install import RECORD_FILE
from .config import DROPIN_DIR, Config, load_config
from .config_schema import NAME_RE
from .errors import ConfigError, KeyFileError, TrustError
from .keys import check_public_point, kid_of, public_from_raw, public_pem

log = logging.getLogger(__name__)

DEVICE_FILE = "passgate-device.toml"
DEFAULT_BUNDLE = "passgate-bundle.bin"
DROPIN_NAME = "10-device.toml"
RESULT_FILE = "provision.json"
DEFAULT_ETC = Path("/etc/passgate")
DEFAULT_SYNC_DIR = Path("/var/lib/passgate-sync")  # StateDirectory= of passgate-sync.service
HASH_KEY_LEN = 32
FORMAT = 1

# The collector's rule for device ids (docs/sync-protocol.md section 3): lower case only.
DEVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # base64url, as `passgate-collector token new`
_KNOWN = {
    "device": ({"id", "zone"}, set()),
    "sync": ({"collector_url", "enrol_token"}, set()),
    "trust": ({"roots"}, {"bundle", "time_keys"}),
    "journal": ({"pass_hash_key"}, set()),
}


class ProvisionError(ConfigError):
    """The device file, or the device's current state, refuses provisioning. Nothing was
    written; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class DeviceFile:
    """A validated device file. ``sha256`` identifies it in the result record; the secrets
    (``enrol_token``, ``pass_hash_key``) never appear in logs or results."""

    path: Path
    sha256: str
    device_id: str
    zone: str
    collector_url: str | None
    enrol_token: str | None = field(repr=False)
    roots: RootSet
    bundle: Path | None
    time_keys: tuple[bytes, ...]  # raw Ed25519 keys that sign time tokens (the collector's)
    pass_hash_key: bytes = field(repr=False)
    overrides: Mapping[str, Any]

    @property
    def hostname(self) -> str:
        """The host name the image tool sets: the id with ``.`` and ``_`` made ``-``."""
        return re.sub(r"[._]", "-", self.device_id).strip("-")[:63] or "passgate"

    @property
    def hash_key_id(self) -> str:
        """A public check value of the pass-hash key (the same on every device of a fleet)."""
        return hashlib.sha256(b"passgate journal key id\0" + self.pass_hash_key).hexdigest()[:16]


def read_device_file(path: Path, bundle: Path | None = None) -> DeviceFile:
    """Parse and check ``path``. ``bundle`` overrides ``[trust] bundle`` (a file path)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProvisionError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"{path}: not valid TOML: {exc}") from None

    def fail(key: str, problem: str) -> ProvisionError:
        return ProvisionError(f"{path}: {key}: {problem}")

    for name in doc:
        if name not in (*_KNOWN, "config", "format"):
            known = ", ".join([*_KNOWN, "config", "format"])
            raise fail(name, f"unknown section (known: {known})")
    fmt = doc.get("format", FORMAT)
    if type(fmt) is not int or fmt != FORMAT:
        raise fail("format", f"this passgate reads device file format {FORMAT}")
    tables = {name: _table(doc, name, *spec, fail) for name, spec in _KNOWN.items()}
    for name in ("device", "trust", "journal"):
        if tables[name] is None:
            raise fail(name, "required section is missing")

    device_id = _text(tables["device"], "device.id", fail)
    zone = _text(tables["device"], "device.zone", fail)
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise fail("device.id", f"{device_id!r}: 1-64 of a-z 0-9 . _ - (lower case), "
                   "starting with a letter or digit")
    if not NAME_RE.fullmatch(zone):
        raise fail("device.zone", f"{zone!r}: 1-32 of letters, digits, . _ -")

    url = token = None
    if tables["sync"] is not None:
        url = _text(tables["sync"], "sync.collector_url", fail).rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme not in ("https", "http") or not parts.hostname or parts.query
                or parts.fragment):
            raise fail("sync.collector_url", f"{url!r} is not an http(s)://host[:port][/path] URL")
        if parts.scheme == "http":
            log.warning("collector URL is plain http: uploads are signed, but not private")
        token = _text(tables["sync"], "sync.enrol_token", fail)
        if not TOKEN_RE.fullmatch(token):
            raise fail("sync.enrol_token", "not a token from 'passgate-collector token new'")

    trust = tables["trust"]
    roots = _roots(trust["roots"], fail)
    if bundle is None and "bundle" in trust:
        bundle = path.parent / _text(trust, "trust.bundle", fail)
        if not bundle.is_file():
            raise fail("trust.bundle", f"{bundle}: no such file next to the device file")
    elif bundle is None and (path.parent / DEFAULT_BUNDLE).is_file():
        bundle = path.parent / DEFAULT_BUNDLE
    time_keys = _keys(trust.get("time_keys", []), "trust.time_keys", fail)

    key_hex = _text(tables["journal"], "journal.pass_hash_key", fail)
    try:
        hash_key = bytes.fromhex(key_hex)
    except ValueError:
        raise fail("journal.pass_hash_key", "must be hexadecimal") from None
    if len(hash_key) != HASH_KEY_LEN:
        raise fail("journal.pass_hash_key",
                   f"must be {HASH_KEY_LEN} bytes ({2 * HASH_KEY_LEN} hex digits)")
    if len(set(hash_key)) == 1:  # the example's zeros: every fleet must make its own
        raise fail("journal.pass_hash_key", "is a placeholder: make the fleet's key once "
                   "('openssl rand -hex 32') and put the same one in every device file")

    overrides = doc.get("config", {})
    if not isinstance(overrides, Mapping):
        raise fail("config", "must be a table of config sections")
    checkpoint = overrides.get("checkpoint", {})
    for key in ("zone", "device_id"):
        if isinstance(checkpoint, Mapping) and key in checkpoint:
            raise fail(f"config.checkpoint.{key}", "set it in [device], not in [config]")
    return DeviceFile(path, hashlib.sha256(raw).hexdigest(), device_id, zone, url, token, roots,
                      bundle, time_keys, hash_key, overrides)


def _table(doc: Mapping, name: str, required: set, optional: set, fail) -> Mapping | None:
    table = doc.get(name)
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise fail(name, "must be a table")
    for key in table:
        if key not in required | optional:
            known = ", ".join(sorted(required | optional))
            raise fail(f"{name}.{key}", f"unknown key (known: {known})")
    for key in sorted(required - set(table)):
        raise fail(f"{name}.{key}", "required key is missing")
    return table


def _text(table: Mapping, dotted: str, fail) -> str:
    value = table[dotted.rsplit(".", 1)[1]]
    if not isinstance(value, str) or not value.strip():
        raise fail(dotted, "must be a non-empty string")
    return value.strip()


def _keys(value: Any, dotted: str, fail) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise fail(dotted, "must be a list of hex Ed25519 public keys")
    try:
        keys = tuple(bytes.fromhex(k) for k in value)
        for raw in keys:
            check_public_point(raw, dotted)
    except KeyFileError as exc:
        raise fail(dotted, str(exc).removeprefix(f"{dotted}: ")) from None
    except ValueError:
        raise fail(dotted, "must be hex") from None
    return keys


def _roots(value: Any, fail) -> RootSet:
    if not isinstance(value, Mapping) or set(value) != {"threshold", "keys"}:
        raise fail("trust.roots", "must be a table with threshold and keys (hex public keys)")
    keys = value["keys"]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise fail("trust.roots.keys", "must be a list of hex Ed25519 public keys")
    try:
        return RootSet(value["threshold"], tuple(bytes.fromhex(k) for k in keys))
    except (TrustError, KeyFileError) as exc:
        raise fail("trust.roots", str(exc)) from None
    except ValueError:
        raise fail("trust.roots.keys", "must be hex") from None


# --- phase 1: check against the device -------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything :func:`apply` will do, decided by :func:`check` without writing."""

    device: DeviceFile
    config: Config
    dropin: Path
    dropin_text: str
    state_dir: Path
    bundle_dir: Path
    hash_key_file: Path
    sync_dir: Path
    bundle: Any = None  # a VerifiedBundle to install, or None
    bundle_note: str = ""  # why a given bundle is not installed


def check(device: DeviceFile, now: float, *, etc_dir: Path = DEFAULT_ETC,
          state_dir: Path | None = None, sync_dir: Path = DEFAULT_SYNC_DIR) -> Plan:
    """Validate ``device`` against the config loader and the device's current state."""
    etc_dir = Path(etc_dir)
    dropin = etc_dir / DROPIN_DIR / DROPIN_NAME
    tree = _merge({}, device.overrides)
    tree.setdefault("checkpoint", {}).update(zone=device.zone, device_id=device.device_id)
    text = dropin_toml(tree)
    cfg = _validate_config(etc_dir, dropin, text, device.path)
    if state_dir is not None:  # an explicit folder wins over the config's paths (as `sync --state`)
        state = Path(state_dir)
        bundle_dir, key_file = state / "bundle", state / "journal.key"
    else:
        state = cfg.checkpoint.state_dir
        bundle_dir, key_file = cfg.trust.bundle_dir, cfg.journal.hash_key_file
    try:
        pinned = pinned_roots(bundle_dir)
    except TrustError as exc:
        raise ProvisionError(f"pinned roots unreadable: {exc}") from None
    if pinned is not None and pinned != device.roots:
        raise ProvisionError(
            f"{bundle_dir}: other root keys are pinned ({pinned.describe()}); this device belongs "
            "to another fleet: re-image it, or rotate its roots with a bundle")
    existing = _read_bytes(key_file)
    if existing is not None and existing != device.pass_hash_key:
        raise ProvisionError(
            f"{key_file}: a different pass-hash key is installed; replacing it would stop the "
            "collector matching passes across checkpoints (delete it by hand to change fleets)")
    plan = Plan(device, cfg, dropin, text, state, bundle_dir, key_file, Path(sync_dir))
    if device.bundle is None:
        return plan
    try:
        bundle = read_bundle(device.bundle, device.roots)
        if now >= bundle.manifest.expires:
            raise ProvisionError(f"{device.bundle}: bundle v{bundle.version} has expired")
        bundle.trust()  # every part decodes, so the install cannot fail half-way
    except BundleError as exc:
        raise ProvisionError(f"{device.bundle}: {exc}") from None
    record = _installed(bundle_dir)
    if record is None or bundle.version > record["version"]:
        return replace(plan, bundle=bundle)
    if bundle.version == record["version"] and bundle.manifest_sha256 != record["manifest_sha256"]:
        raise ProvisionError(f"{device.bundle}: bundle v{bundle.version} differs from the "
                             "installed bundle of the same version")
    note = "installed" if bundle.version == record["version"] else f"v{record['version']} is newer"
    return replace(plan, bundle_note=f"bundle v{bundle.version}: {note}")


def _validate_config(etc_dir: Path, dropin: Path, text: str, origin: Path) -> Config:
    """The effective config with the new drop-in in place, through the real loader."""
    main = etc_dir / "passgate.toml"
    others = sorted(p for p in (etc_dir / DROPIN_DIR).glob("*.toml") if p.name != DROPIN_NAME)
    with tempfile.TemporaryDirectory(prefix="passgate-provision.") as tmp:
        candidate = Path(tmp) / DROPIN_NAME
        candidate.write_text(text, encoding="utf-8")
        files = [main] if main.is_file() else []
        files += [p for p in others if p.name < DROPIN_NAME] + [candidate]
        files += [p for p in others if p.name > DROPIN_NAME]
        try:
            return load_config(files=files)
        except ConfigError as exc:
            # Name the device file rather than a temporary path the technician never saw.
            raise ProvisionError(str(exc).replace(str(candidate), f"{origin} [config]")) from None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _installed(bundle_dir: Path) -> dict | None:
    try:
        record = json.loads((bundle_dir / RECORD_FILE).read_text(encoding="utf-8"))
        return record if isinstance(record.get("version"), int) else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("installed bundle record unreadable (%s); the given bundle is installed", exc)
        return None


# --- phase 2: apply ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Owners:
    """Numeric owners for what provisioning writes when it runs as root: the scanner's
    ``passgate`` user, the sync agent's ``passgate-sync`` user, and group ``passgate`` for
    the root-owned config drop-in."""

    scanner: tuple[int, int]
    sync: tuple[int, int]
    config_group: int

    @classmethod
    def lookup(cls) -> Owners:
        import grp
        import pwd

        try:
            scanner, sync = pwd.getpwnam("passgate"), pwd.getpwnam("passgate-sync")
            group = grp.getgrnam("passgate").gr_gid
        except KeyError as exc:
            raise ProvisionError(
                f"no such user or group {exc}: run 'sudo ./setup.sh install' first") from None
        return cls((scanner.pw_uid, scanner.pw_gid), (sync.pw_uid, sync.pw_gid), group)


@dataclass(frozen=True)
class Outcome:
    changes: tuple[str, ...]
    fingerprint: str  # the device key's, as the collector shows it after enrolment
    bundle_version: int | None


def apply(plan: Plan, now: float, owners: Owners | None = None) -> Outcome:
    """Write what :func:`check` planned; each step skips what is already in place."""
    from .sync.devicekey import load_device_key, new_device_key
    from .sync.enrolment import Enrolment, load_enrolment, save_enrolment

    dev, changes = plan.device, []
    own = _chown if owners is not None else (lambda *a: None)
    scanner = owners.scanner if owners else None
    _ensure_dir(plan.state_dir, 0o770, scanner, own)
    _ensure_dir(plan.dropin.parent, 0o750, (0, owners.config_group) if owners else None, own)
    if _read_bytes(plan.dropin) != plan.dropin_text.encode():
        write_atomic(plan.dropin, plan.dropin_text.encode(), mode=0o640)
        own(plan.dropin, (0, owners.config_group) if owners else None)
        changes.append(f"config {plan.dropin} written")
    if pinned_roots(plan.bundle_dir) is None:
        pin_roots(plan.bundle_dir, dev.roots)
        changes.append(f"root keys pinned: {dev.roots.describe()}")
    version = None
    if plan.bundle is not None:
        version = install_bundle(dev.bundle, plan.bundle_dir, now, roots=dev.roots).version
        changes.append(f"bundle v{version} installed")
    for path in [plan.bundle_dir, *plan.bundle_dir.rglob("*")]:
        # Both services write here (group passgate, as their UMask=0007 would make it).
        mode = path.stat().st_mode
        _chmod(path, 0o770 if path.is_dir() else (mode & 0o777) | 0o660)
        own(path, scanner)
    if _read_bytes(plan.hash_key_file) is None:
        plan.hash_key_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(plan.hash_key_file, dev.pass_hash_key, mode=0o600)
        own(plan.hash_key_file, scanner)
        changes.append(f"pass-hash key written to {plan.hash_key_file} (id {dev.hash_key_id})")

    if dev.time_keys:
        folder = plan.state_dir / "time-keys"  # where `passgate sync` looks for them
        _ensure_dir(folder, 0o770, scanner, own)
        for raw in dev.time_keys:
            pem, path = public_pem(public_from_raw(raw)), folder / f"time-{kid_of(raw).hex()}.pub"
            if _read_bytes(path) != pem:
                write_atomic(path, pem, mode=0o644)
                own(path, scanner)
                changes.append(f"time key {kid_of(raw).hex()} pinned")

    sync_owner = owners.sync if owners else None
    _ensure_dir(plan.sync_dir, 0o700, sync_owner, own)
    key_path = plan.sync_dir / "device.key"
    if not key_path.exists():
        for path in new_device_key(plan.sync_dir)[:2]:
            own(path, sync_owner)
        changes.append(f"device key made in {plan.sync_dir}")
    fingerprint = load_device_key(key_path).fingerprint
    if dev.collector_url is not None:
        from .sync.enrolment import ENROLMENT_FILE

        path = plan.sync_dir / ENROLMENT_FILE
        old = load_enrolment(path)
        same = old is not None and (old.collector, old.device, old.fingerprint) == (
            dev.collector_url, dev.device_id, fingerprint)
        if not (same and (old.enrolled_at is not None or old.token == dev.enrol_token)):
            save_enrolment(path, Enrolment(dev.collector_url, dev.device_id, fingerprint,
                                           token=dev.enrol_token))
            own(path, sync_owner)
            changes.append(f"enrolment with {dev.collector_url} left for the sync agent")
    return Outcome(tuple(changes), fingerprint, version)


def _ensure_dir(path: Path, mode: int, owner: tuple[int, int] | None, own) -> None:
    if not path.is_dir():
        path.mkdir(parents=True)
        _chmod(path, mode)
        own(path, owner)


def _chmod(path: Path, mode: int) -> None:
    """Set the permission bits only if they differ, keeping a folder's inherited setgid bit
    (group passgate under /var/lib/passgate). The first-boot unit runs with UMask=0007 and
    RestrictSUIDSGID=yes, so on a device this normally finds nothing to change."""
    st = path.stat()
    if st.st_mode & 0o777 != mode:
        os.chmod(path, mode | (st.st_mode & 0o2000))


def _chown(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)


# --- the config drop-in -----------------------------------------------------------------------


def _merge(into: dict, data: Mapping) -> dict:
    for k, v in data.items():
        if isinstance(v, Mapping):
            _merge(into.setdefault(k, {}), v)
        else:
            into[k] = v
    return into


def dropin_toml(tree: Mapping[str, Any]) -> str:
    """``tree`` (sections of scalars, lists and sub-tables) as TOML that reads back equal."""
    lines = ["# Written by `passgate provision` from the device file; replaced when the device",
             "# is provisioned again. Site-wide settings belong in passgate.toml."]

    def table(prefix: str, t: Mapping) -> None:
        scalars = [(k, v) for k, v in t.items() if not isinstance(v, Mapping)]
        if scalars or not t:
            lines.extend(["", f"[{prefix}]"])
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars)
        for k, v in t.items():
            if isinstance(v, Mapping):
                table(f"{prefix}.{_key(k)}", v)

    for name, value in tree.items():
        if not isinstance(value, Mapping):
            raise ProvisionError(f"config.{name}: must be a table (a config section)")
        table(_key(name), value)
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != tree:  # cannot happen for TOML input; a guard for the writer
        raise ProvisionError("config overrides cannot be written back as TOML")
    return text


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _value(name)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):  # JSON's escapes are TOML's, except that TOML also escapes DEL
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ProvisionError(f"config overrides: {type(v).__name__} values are not supported")
