"""Encoding and decoding of the bundle's parts (everything but the header).

- ``issuers``: CBOR array, one map per key, sorted by key: ``key`` (32 raw bytes, required),
  ``name``, ``valid_from``, ``valid_until`` (POSIX seconds), ``zones``, ``purposes`` (arrays of
  text). An absent field means "not restricted", exactly as in the trust folder's TOML. The
  key id is not stored: it is always SHA-256(key)[:8], recomputed.
- ``revoked``: the revocation list's packed form (sorted unique 16-byte digests).
- ``policy``: CBOR map ``{"purposes": {id: {"code": uint, "label": text, "max_s": uint?,
  "names": {lang: text}?}},
  "zones": {zone: [purpose ids]}}``.
- ``fleet``: :class:`~passgate.bundle.policy.FleetPolicy` as a CBOR map.
- ``added`` (revocations bundles only): packed digests like ``revoked``; the verifier's list
  is the union of both, so a revocation key's part can only add.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from passgate.bundle.format import MAX_TIME, refuse, strict_cbor
from passgate.bundle.policy import FleetPolicy
from passgate.bundle.revokers import merge_digests
from passgate.errors import KeyFileError, Refusal, TrustError
from passgate.passes.cose import dumps
from passgate.passes.format import _ZONE_RE
from passgate.passes.purposes import _PURPOSE_ID_RE as _PURPOSE_RE
from passgate.passes.purposes import MAX_CODE, Purpose, PurposeTable, valid_names
from passgate.passes.revocation import RevocationList
from passgate.passes.truststore import IssuerKey, TrustStore

_ISSUER_FIELDS = {"key", "name", "valid_from", "valid_until", "zones", "purposes"}


def encode_issuers(keys: Iterable[IssuerKey]) -> bytes:
    out = []
    for k in sorted(keys, key=lambda k: k.raw):
        entry: dict[str, Any] = {"key": k.raw}
        if k.issuer is not None:
            entry["name"] = k.issuer
        if k.valid_from is not None:
            entry["valid_from"] = k.valid_from
        if k.valid_until is not None:
            entry["valid_until"] = k.valid_until
        if k.zones is not None:
            entry["zones"] = sorted(k.zones)
        if k.purposes is not None:
            entry["purposes"] = sorted(k.purposes)
        out.append(entry)
    return dumps(out)


def decode_issuers(data: bytes, source: str) -> list[IssuerKey]:
    doc = strict_cbor(data, "issuers part")
    if not isinstance(doc, list | tuple) or not doc:
        raise refuse(Refusal.MALFORMED, "bundle: issuers part must be a non-empty array")
    keys = []
    for n, e in enumerate(doc):
        where = f"bundle: issuer #{n}"
        if not isinstance(e, Mapping) or "key" not in e or not set(e) <= _ISSUER_FIELDS:
            raise refuse(Refusal.MALFORMED, f"{where}: bad entry")
        name = e.get("name")
        if name is not None and not isinstance(name, str):
            raise refuse(Refusal.MALFORMED, f"{where}: name must be text")
        times = {}
        for t in ("valid_from", "valid_until"):
            v = e.get(t)
            if v is not None and (
                not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_TIME
            ):
                raise refuse(Refusal.MALFORMED, f"{where}: {t} must be POSIX seconds")
            times[t] = v
        try:
            keys.append(
                IssuerKey.from_raw(
                    e["key"] if isinstance(e["key"], bytes) else b"",
                    issuer=name,
                    zones=_names(e.get("zones"), _ZONE_RE, f"{where}: zones"),
                    purposes=_names(e.get("purposes"), _PURPOSE_RE, f"{where}: purposes"),
                    source=f"{source} issuer #{n}",
                    **times,
                )
            )
        except KeyFileError as exc:  # a weak or wrong-length key: refuse the whole bundle
            raise refuse(Refusal.MALFORMED, f"bundle: {exc}") from None
    return keys


def _names(value: object, pattern: re.Pattern[str], where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and pattern.fullmatch(v) for v in value
    ):
        raise refuse(Refusal.MALFORMED, f"{where} must be an array of names")
    return frozenset(value)


def encode_policy(purposes: PurposeTable, zone_purposes: Mapping[str, frozenset[str]]) -> bytes:
    table = {}
    for p in purposes:
        entry: dict[str, Any] = {"code": p.code, "label": p.label}
        if p.max_s is not None:
            entry["max_s"] = p.max_s
        if p.names:  # only when named: a bundle without names keeps its bytes
            entry["names"] = dict(sorted(p.names.items()))
        table[p.id] = entry
    zones = {z: sorted(ps) for z, ps in zone_purposes.items()}
    return dumps({"purposes": table, "zones": zones})


def decode_policy(data: bytes) -> tuple[PurposeTable, dict[str, frozenset[str] | None]]:
    doc = strict_cbor(data, "policy part")
    if not isinstance(doc, Mapping) or set(doc) != {"purposes", "zones"}:
        raise refuse(Refusal.MALFORMED, "bundle: policy part must be {purposes, zones}")
    table, zones = doc["purposes"], doc["zones"]
    if not isinstance(table, Mapping) or not table or not isinstance(zones, Mapping):
        raise refuse(Refusal.MALFORMED, "bundle: policy purposes/zones must be maps")
    purposes = {}
    for pid, spec in table.items():
        ok = (
            isinstance(pid, str)
            and _PURPOSE_RE.fullmatch(pid)
            and isinstance(spec, Mapping)
            and set(spec) <= {"code", "label", "max_s", "names"}
            and valid_names(spec.get("names", {}))
            and isinstance(spec.get("label"), str)
            and type(spec.get("code")) is int
            and 0 <= spec["code"] <= MAX_CODE
            and (
                spec.get("max_s") is None
                or (isinstance(spec["max_s"], int) and 0 < spec["max_s"] < 2**40)
            )
        )
        if not ok:
            raise refuse(Refusal.MALFORMED, f"bundle: purpose {pid!r}: bad entry")
        names = MappingProxyType(dict(spec.get("names", {})))
        purposes[pid] = Purpose(pid, spec["code"], spec["label"], spec.get("max_s"), names)
    try:
        table = PurposeTable(purposes)
    except TrustError as exc:  # two purposes with one code
        raise refuse(Refusal.MALFORMED, f"bundle: {exc}") from None
    zone_purposes = {}
    for zone, allowed in zones.items():
        if not isinstance(zone, str) or not _ZONE_RE.fullmatch(zone):
            raise refuse(Refusal.MALFORMED, f"bundle: zone {zone!r}: bad name")
        zone_purposes[zone] = _names(allowed, _PURPOSE_RE, f"bundle: zone {zone}: purposes")
    return table, zone_purposes


def encode_fleet(fleet: FleetPolicy) -> bytes:
    return dumps(fleet.to_cbor_obj())


def decode_fleet(data: bytes) -> FleetPolicy:
    return FleetPolicy.from_cbor_obj(strict_cbor(data, "fleet part"))


def decode_revoked(data: bytes) -> RevocationList:
    try:
        return RevocationList.from_packed(data, "bundle revoked part")
    except TrustError as exc:
        raise refuse(Refusal.MALFORMED, str(exc)) from None


def trust_store(parts: Mapping[str, bytes], source: str) -> tuple[TrustStore, FleetPolicy]:
    """Build the verifier's :class:`TrustStore` (and the fleet settings) from verified parts."""
    purposes, zone_purposes = decode_policy(parts["policy"])
    revoked = decode_revoked(parts["revoked"])
    if "added" in parts:
        added = decode_revoked(parts["added"])  # checks order, so the merge may trust it
        revoked = RevocationList(merge_digests(revoked.packed(), added.packed()))
    store = TrustStore(
        decode_issuers(parts["issuers"], source),
        revoked,
        purposes,
        MappingProxyType(zone_purposes),
    )
    return store, decode_fleet(parts["fleet"])
