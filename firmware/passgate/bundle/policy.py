"""Fleet settings carried in the bundle, and the pure decisions the checkpoint takes from them.

Settings (``[fleet]`` in the policy TOML, part ``fleet`` of the bundle):

- ``max_offline_age``: trust data not refreshed for longer than this is stale;
- ``clock_policy``: what a pass gets while the clock is not trusted: ``deny``
  (``clock_untrusted``) or ``flag`` (accepted, journal row flagged);
- ``stale_policy``: what a pass gets on stale trust data: ``deny`` (``trust_stale``) or ``flag``;
- ``anti_passback`` and ``anti_passback_purposes``: windows in which a pass accepted here is
  refused ``already_used``;
- ``holder_binding`` (spec 1.2): the purposes for which a checkpoint requires a holder-bound
  pass shown as its live code (``PG2:``), ``["*"]`` for all, empty (the default) for none.
  Optional in the bundle part, written only when not empty, so bundles without it read the
  same on older checkpoints.

``[fleet.sites.NAME]`` and ``[fleet.zones.NAME]`` override any of them; for a checkpoint the
zone's setting wins over its site's, which wins over the fleet default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from passgate.bundle.format import REVOCATIONS_TYPE, refuse
from passgate.clock.clock import TimeReading
from passgate.errors import Refusal, TrustError
from passgate.passes.verdict import Reason
from passgate.util.timefmt import parse_duration

if TYPE_CHECKING:
    from passgate.bundle.verify import BundleInfo

DENY, FLAG = "deny", "flag"
FLAG_CLOCK_UNTRUSTED = "clock_untrusted"  # same strings as decide.py's journal flags
FLAG_TRUST_STALE = "trust_stale"

# TOML name -> (CBOR name, kind)
_KEYS = {
    "clock_policy": ("clock", "choice"),
    "stale_policy": ("stale", "choice"),
    "max_offline_age": ("max_offline_s", "duration"),
    "anti_passback": ("anti_passback_s", "duration"),
    "anti_passback_purposes": ("anti_passback_purposes", "durations"),
    "holder_binding": ("holder_binding", "names"),
}
_CBOR_KEYS = {cbor: kind for cbor, kind in _KEYS.values()}
_OPTIONAL_CBOR = frozenset({"holder_binding"})  # absent means the default
ALL = "*"


@dataclass(frozen=True)
class CheckpointPolicy:
    """The effective settings for one checkpoint (a zone, maybe in a site)."""

    clock: str = FLAG
    stale: str = DENY
    max_offline_s: int = 7 * 86400
    anti_passback_s: int = 0
    anti_passback_purposes: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    holder_binding: tuple[str, ...] = ()

    def anti_passback_for(self, purpose: str | None) -> int:
        return self.anti_passback_purposes.get(purpose or "", self.anti_passback_s)

    def binding_required(self, purpose: str | None) -> bool:
        """Whether a pass of ``purpose`` must be shown as a live code here (spec 1.2)."""
        return ALL in self.holder_binding or (purpose or "") in self.holder_binding

    def to_cbor_obj(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "stale": self.stale,
            "max_offline_s": self.max_offline_s,
            "anti_passback_s": self.anti_passback_s,
            "anti_passback_purposes": dict(self.anti_passback_purposes),
            **({"holder_binding": list(self.holder_binding)} if self.holder_binding else {}),
        }


@dataclass(frozen=True)
class FleetPolicy:
    default: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    zones: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def max_offline_s(self) -> int:
        return self.default.max_offline_s

    def for_checkpoint(self, zone: str | None = None, site: str | None = None) -> CheckpointPolicy:
        """Merge fleet default <- site override <- zone override."""
        policy = self.default
        for override in (self.sites.get(site or ""), self.zones.get(zone or "")):
            if override:
                policy = replace(policy, **dict(override))
        return policy

    # -- the bundle part ------------------------------------------------------------------
    def to_cbor_obj(self) -> dict[str, Any]:
        return {
            "default": self.default.to_cbor_obj(),
            "sites": {k: _plain(v) for k, v in self.sites.items()},
            "zones": {k: _plain(v) for k, v in self.zones.items()},
        }

    @classmethod
    def from_cbor_obj(cls, doc: object) -> FleetPolicy:
        if not isinstance(doc, Mapping) or set(doc) != {"default", "sites", "zones"}:
            raise refuse(Refusal.MALFORMED, "bundle: fleet part must be {default, sites, zones}")
        default = _checked_level(doc["default"], "fleet default", complete=True)
        out = {}
        for group in ("sites", "zones"):
            table = doc[group]
            if not isinstance(table, Mapping) or not all(isinstance(k, str) for k in table):
                raise refuse(Refusal.MALFORMED, f"bundle: fleet {group} must be a map by name")
            out[group] = MappingProxyType(
                {
                    k: MappingProxyType(_checked_level(v, f"fleet {group}.{k}"))
                    for k, v in table.items()
                }
            )
        return cls(CheckpointPolicy(**default), out["sites"], out["zones"])

    # -- the operator's TOML --------------------------------------------------------------
    @classmethod
    def from_toml_table(cls, table: object, where: str) -> FleetPolicy:
        """Read ``[fleet]`` (with ``sites`` and ``zones`` sub-tables); ValueError says where."""
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise TrustError(f"{where}: [fleet] must be a table")
        sites, zones = table.get("sites", {}), table.get("zones", {})
        rest = {k: v for k, v in table.items() if k not in ("sites", "zones")}
        default = replace(CheckpointPolicy(), **_toml_level(rest, f"{where}: fleet"))
        groups = {}
        for name, group in (("sites", sites), ("zones", zones)):
            if not isinstance(group, Mapping):
                raise TrustError(f"{where}: fleet.{name} must be tables by name")
            groups[name] = MappingProxyType(
                {
                    k: MappingProxyType(_toml_level(v, f"{where}: fleet.{name}.{k}"))
                    for k, v in group.items()
                }
            )
        return cls(default, groups["sites"], groups["zones"])


def _plain(level: Mapping[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, tuple) else v
            for k, v in level.items()}


def _toml_level(table: object, where: str) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise TrustError(f"{where}: must be a table")
    out = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise TrustError(f"{where}: unknown setting {key!r} (known: {', '.join(_KEYS)})")
        name, kind = _KEYS[key]
        if kind == "choice":
            if value not in (DENY, FLAG):
                raise TrustError(f'{where}.{key}: must be "deny" or "flag", not {value!r}')
            out[name] = value
        elif kind == "duration":
            out[name] = _duration(value, f"{where}.{key}")
        elif kind == "names":
            out[name] = _names(value, f"{where}.{key}")
        else:
            if not isinstance(value, Mapping):
                raise TrustError(f"{where}.{key}: must be a table of purpose = duration")
            out[name] = MappingProxyType(
                {p: _duration(v, f"{where}.{key}.{p}") for p, v in value.items()}
            )
    return out


def _duration(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise TrustError(f"{where}: {exc}") from None
    raise TrustError(f'{where}: must be a duration like "15m" or "3d"')


def _checked_level(level: object, where: str, complete: bool = False) -> dict[str, Any]:
    if not isinstance(level, Mapping) or not set(level) <= set(_CBOR_KEYS):
        raise refuse(Refusal.MALFORMED, f"bundle: {where}: unknown or missing settings")
    if complete and set(level) | _OPTIONAL_CBOR != set(_CBOR_KEYS):
        raise refuse(Refusal.MALFORMED, f"bundle: {where}: every setting must be present")
    out: dict[str, Any] = {}
    for key, value in level.items():
        kind = _CBOR_KEYS[key]
        if kind == "names":
            try:
                out[key] = _names(value, f"bundle: {where}.{key}")
            except TrustError as exc:
                raise refuse(Refusal.MALFORMED, str(exc)) from None
            continue
        ok = (
            value in (DENY, FLAG)
            if kind == "choice"
            else _uint(value)
            if kind == "duration"
            else isinstance(value, Mapping)
            and all(isinstance(k, str) and _uint(v) for k, v in value.items())
        )
        if not ok:
            raise refuse(Refusal.MALFORMED, f"bundle: {where}.{key} has a bad value")
        out[key] = MappingProxyType(dict(value)) if kind == "durations" else value
    return out


def _names(value: object, where: str) -> tuple[str, ...]:
    """A list of purpose ids, or ``["*"]``: sorted and without duplicates."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TrustError(f'{where}: must be a list of purpose ids, or ["*"] for all')
    if ALL in value and len(value) > 1:
        raise TrustError(f'{where}: "*" (all purposes) stands alone')
    if len(set(value)) != len(value):
        raise TrustError(f"{where}: lists a purpose twice")
    return tuple(sorted(value))


def _uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**40


# -- decisions (pure; the daemon calls them per scan) ---------------------------------------
@dataclass(frozen=True, slots=True)
class Doubt:
    """A condition the journal row must carry (``flag``); ``deny`` set: the site refuses."""

    flag: str
    deny: Reason | None
    detail: str


def clock_policy_decision(
    reading: TimeReading,
    policy: FleetPolicy | CheckpointPolicy,
    zone: str | None = None,
    site: str | None = None,
) -> Doubt | None:
    """None on a trusted clock; else a flag, with ``Reason.CLOCK_UNTRUSTED`` if the site denies."""
    if reading.trusted:
        return None
    p = policy.for_checkpoint(zone, site) if isinstance(policy, FleetPolicy) else policy
    deny = Reason.CLOCK_UNTRUSTED if p.clock == DENY else None
    return Doubt(FLAG_CLOCK_UNTRUSTED, deny, f"clock {reading.state.value}")


def stale_policy_decision(
    status: TrustStatus,
    policy: FleetPolicy | CheckpointPolicy,
    zone: str | None = None,
    site: str | None = None,
) -> Doubt | None:
    """None on fresh trust data; else a flag, with ``Reason.TRUST_STALE`` if the site denies."""
    if not status.stale:
        return None
    p = policy.for_checkpoint(zone, site) if isinstance(policy, FleetPolicy) else policy
    return Doubt(FLAG_TRUST_STALE, Reason.TRUST_STALE if p.stale == DENY else None, status.message)


@dataclass(frozen=True, slots=True)
class TrustStatus:
    """How fresh the installed trust data is. Field names match ``decide.TrustState``."""

    stale: bool
    age_s: int
    why: str  # "3 days old", "expired 2 hours ago", "current"
    expired: bool = False

    @property
    def message(self) -> str:
        """What the OLED says: ``trust data 3 days old``."""
        return f"trust data {self.why}"


def trust_status(
    info: BundleInfo,
    now: float,
    last_refresh: float | None = None,
    max_offline_s: int | None = None,
) -> TrustStatus:
    """Staleness of an installed bundle at effective time ``now``.

    Age counts from the last *successful* refresh (an install, or the sync agent confirming
    there is nothing newer; failed attempts are never recorded), or from the bundle's issue
    time if that is later (for a revocations bundle, at most its install time:
    :func:`counted_issue`). ``info`` is a :class:`BundleInfo`; ``max_offline_s`` defaults to the
    bundle's fleet setting (pass the checkpoint's own from ``for_checkpoint`` to honour zones).
    """
    refresh = last_refresh if last_refresh is not None else info.last_refresh
    since = max(counted_issue(info), refresh or 0)
    age = max(0, int(now - since))
    limit = info.fleet.max_offline_s if max_offline_s is None else max_offline_s
    if now >= info.expires:
        return TrustStatus(True, age, f"expired {age_words(now - info.expires)} ago", expired=True)
    if age > limit:
        return TrustStatus(True, age, f"{age_words(age)} old")
    return TrustStatus(False, age, "current")


def counted_issue(info: BundleInfo) -> float:
    """The issue time that counts for freshness. A revocation key chooses its bundle's
    ``issued`` itself (only its authorisation's expiry limits it), so for a revocations bundle
    it never counts as later than the install: a thief cannot date a bundle in the future to
    keep a cut-off device looking fresh. Without an install time (a record lost to a power
    cut) it does not count at all. A root bundle's issue time counts as signed."""
    if info.kind != REVOCATIONS_TYPE:
        return info.issued
    return 0 if info.installed_at is None else min(info.issued, info.installed_at)


def age_words(seconds: float) -> str:
    """``3 days``, ``1 day``, ``5 hours``, ``12 minutes``: whole units, rounded down."""
    s = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"
