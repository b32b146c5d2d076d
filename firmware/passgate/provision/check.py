"""Phase 1: the device file against the real config loader and what the device already holds.

:func:`check` writes nothing; it returns the :class:`Plan` that :func:`.apply.apply` carries
out. Also here: :func:`dropin_toml`, the writer of ``passgate.d/10-device.toml``.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from passgate.bundle import BundleError, pinned_roots, read_bundle
from passgate.bundle.install import RECORD_FILE
from passgate.checkpoint.wiring import loaded_path
from passgate.config.load import DROPIN_DIR, Config, load_config
from passgate.errors import ConfigError, TrustError
from passgate.provision.devicefile import (
    DEFAULT_ETC,
    DEFAULT_SYNC_DIR,
    DROPIN_NAME,
    HASH_KEY_LEN,
    DeviceFile,
    ProvisionError,
)

log = logging.getLogger(__name__)


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
    key_damaged: bool = False  # the pass-hash key file is there but not a key: replace it


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
        bundle_dir = loaded_path(cfg.trust.bundle_dir, "trust.bundle_dir")
        key_file = loaded_path(cfg.journal.hash_key_file, "journal.hash_key_file")
    try:
        pinned = pinned_roots(bundle_dir)
    except TrustError as exc:
        raise ProvisionError(f"pinned roots unreadable: {exc}") from None
    if pinned is not None and pinned != device.roots:
        raise ProvisionError(
            f"{bundle_dir}: other root keys are pinned ({pinned.describe()}); this device belongs "
            "to another fleet: re-image it, or rotate its roots with a bundle")
    existing = read_bytes_or_none(key_file)
    damaged = existing is not None and len(existing) != HASH_KEY_LEN
    if damaged:
        # Not a key at all (a 0-byte file from a kill mid-write): nothing to compare, nothing
        # to keep. The device file's key replaces it; if that is the fleet's key, as it should
        # be, the keyed hashes continue as before (docs/technician.md, "journal key damaged").
        log.warning("%s: %d bytes, not a %d-byte key: damaged, the device file's key replaces it",
                    key_file, len(existing or b""), HASH_KEY_LEN)
    elif existing is not None and existing != device.pass_hash_key:
        raise ProvisionError(
            f"{key_file}: a different pass-hash key is installed; replacing it would stop the "
            "collector matching passes across checkpoints (delete it by hand to change fleets)")
    plan = Plan(device, cfg, dropin, text, state, bundle_dir, key_file, Path(sync_dir),
                key_damaged=damaged)
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


def read_bytes_or_none(path: Path) -> bytes | None:
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
