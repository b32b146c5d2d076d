"""The device file: ``passgate-device.toml``, parsed and checked on its own (no device state).

Every problem is a :class:`ProvisionError` naming the file and the key, one line per problem
(all of them at once, once the file parses and has its sections); the secrets it carries (the
enrolment token, the pass-hash key) never appear in a message. Placeholders are refused, not
only malformed values: the example's ``REPLACE-...`` token and ``example.org`` collector, its
all-zero pass-hash key. A collector URL is https, or plain http to this machine only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passgate.bundle import RootSet
from passgate.config.schema import NAME_RE
from passgate.errors import KeyFileError, ProvisionError, TrustError
from passgate.passes.keys import check_public_point

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
# What the example file (deploy/passgate-device.example.toml) leaves to be replaced: its
# token is REPLACE-with-..., its collector is on example.org. Both are well-formed, so only
# these words keep them from reaching a site, where enrolment would fail.
PLACEHOLDER_RE = re.compile(r"REPLACE|CHANGE-?ME|PLACEHOLDER|<[^>]*>", re.IGNORECASE)
PLACEHOLDER_HOSTS = ("example.org", "example.com", "example.net")
_KNOWN = {
    "device": ({"id", "zone"}, set()),
    "sync": ({"collector_url", "enrol_token"}, set()),
    "trust": ({"roots"}, {"bundle", "time_keys"}),
    "journal": ({"pass_hash_key"}, set()),
}


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
    required = {}
    for name in ("device", "trust", "journal"):
        table = tables[name]
        if table is None:
            raise fail(name, "required section is missing")
        required[name] = table

    # From here on each key is checked on its own and every problem is reported, one line
    # each naming the file and the key: a technician fixes the file once, not once per run.
    problems: list[str] = []

    def checked(check: Callable[[], Any], default: Any = None) -> Any:
        try:
            return check()
        except ProvisionError as exc:
            problems.append(str(exc))
            return default

    device_id = checked(lambda: _device_id(required["device"], fail), "")
    zone = checked(lambda: _zone(required["device"], fail), "")
    url = token = None
    sync = tables["sync"]
    if sync is not None:
        url = checked(lambda: _collector_url(sync, fail))
        token = checked(lambda: _token(sync, fail))

    trust = required["trust"]
    roots = checked(lambda: _roots(trust["roots"], fail))
    if bundle is None and "bundle" in trust:
        bundle = checked(lambda: _bundle_beside(path, trust, fail))
    elif bundle is None and (path.parent / DEFAULT_BUNDLE).is_file():
        bundle = path.parent / DEFAULT_BUNDLE
    time_keys = checked(lambda: _keys(trust.get("time_keys", []), "trust.time_keys", fail), ())
    hash_key = checked(lambda: _hash_key(required["journal"], fail), b"")
    overrides = checked(lambda: _overrides(doc, fail), {})
    if problems:
        raise ProvisionError("\n".join(problems))
    return DeviceFile(path, hashlib.sha256(raw).hexdigest(), device_id, zone, url, token, roots,
                      bundle, time_keys, hash_key, overrides)


def _device_id(device: Mapping, fail) -> str:
    device_id = _text(device, "device.id", fail)
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise fail("device.id", f"{device_id!r}: 1-64 of a-z 0-9 . _ - (lower case), "
                   "starting with a letter or digit")
    return device_id


def _zone(device: Mapping, fail) -> str:
    zone = _text(device, "device.zone", fail)
    if not NAME_RE.fullmatch(zone):
        raise fail("device.zone", f"{zone!r}: 1-32 of letters, digits, . _ -")
    return zone


def _collector_url(sync: Mapping, fail) -> str:
    """https, or plain http to this machine only (a collector on the same box, or a test):
    the enrolment token and the uploads would otherwise cross the network readable."""
    url = _text(sync, "sync.collector_url", fail).rstrip("/")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise fail("sync.collector_url", f"{url!r} is not an https://host[:port][/path] URL") \
            from None
    if (parts.scheme not in ("https", "http") or not parts.hostname or parts.query
            or parts.fragment):
        raise fail("sync.collector_url", f"{url!r} is not an https://host[:port][/path] URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise fail("sync.collector_url", f"{url!r}: plain http is only for a collector on "
                   "this machine (localhost); use https://")
    if any(p in parts.hostname for p in PLACEHOLDER_HOSTS):
        raise fail("sync.collector_url", f"{url!r} is the example's placeholder: put your "
                   "collector's address")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token(sync: Mapping, fail) -> str:
    token = _text(sync, "sync.enrol_token", fail)
    if PLACEHOLDER_RE.search(token):
        raise fail("sync.enrol_token", "is the example's placeholder: make one with "
                   "'passgate-collector token new --device ID'")
    if not TOKEN_RE.fullmatch(token):
        raise fail("sync.enrol_token", "not a token from 'passgate-collector token new'")
    return token


def _bundle_beside(path: Path, trust: Mapping, fail) -> Path:
    bundle = path.parent / _text(trust, "trust.bundle", fail)
    if not bundle.is_file():
        raise fail("trust.bundle", f"{bundle}: no such file next to the device file")
    return bundle


def _hash_key(journal: Mapping, fail) -> bytes:
    key_hex = _text(journal, "journal.pass_hash_key", fail)
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
    return hash_key


def _overrides(doc: Mapping, fail) -> Mapping[str, Any]:
    overrides = doc.get("config", {})
    if not isinstance(overrides, Mapping):
        raise fail("config", "must be a table of config sections")
    checkpoint = overrides.get("checkpoint", {})
    for key in ("zone", "device_id"):
        if isinstance(checkpoint, Mapping) and key in checkpoint:
            raise fail(f"config.checkpoint.{key}", "set it in [device], not in [config]")
    return overrides


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
