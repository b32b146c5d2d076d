"""Anti-passback: a pass accepted here is refused ``already_used`` for a while.

A photocopied or screenshotted pass handed back through the door is the threat. The state
is the journal itself (accepted rows of the same pass hash in the same zone), not memory,
so it survives restarts and power loss exactly as far as the journal does.

Windows, most specific first (the same order as ``[antipassback]`` in the config):
a purpose in a zone, the zone, the purpose anywhere, the default. A window of 0 disables
anti-passback for that case.

Time is the clock's effective time. An earlier accept recorded *after* ``now`` (the clock
was corrected backwards since) counts only while it is within one window of ``now``, so a
clock that once ran far ahead cannot lock a pass out for months.

The ``[antipassback]`` config keys are declared here, once (:class:`AntipassbackSection`,
:class:`ZoneWindows`, with :mod:`passgate.options`); :mod:`passgate.config.schema` assembles
them with the other sections and :meth:`AntiPassback.from_config` reads them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from passgate.errors import ConfigError
from passgate.options.declare import option, tables, toml_duration, toml_durations
from passgate.options.validators import valid_duration, valid_durations_table


@dataclass(frozen=True)
class ZoneWindows:
    window: int | None = option(
        None,
        valid_duration(),
        "anti-passback window in this zone (absent: the global one)",
        dump=toml_duration,
    )
    purposes: MappingProxyType[str, int] = option(
        {}, valid_durations_table, "per-purpose windows in this zone", dump=toml_durations
    )


@dataclass(frozen=True)
class AntipassbackSection:
    window: int = option(
        1800,
        valid_duration(0, 366 * 86400),
        "a pass accepted here is denied already_used for this long (0: off)",
        dump=toml_duration,
    )
    purposes: MappingProxyType[str, int] = option(
        {},
        valid_durations_table,
        'per-purpose windows, e.g. work = "10m"',
        dump=toml_durations,
    )
    zones: MappingProxyType[str, ZoneWindows] = tables(
        ZoneWindows, "per-zone windows: [antipassback.zones.NAME]"
    )

    def window_for(self, zone: str, purpose: str | None) -> int:
        """The window for a purpose in a zone: the most specific setting wins."""
        z = self.zones.get(zone)
        if z is not None and purpose is not None and purpose in z.purposes:
            return z.purposes[purpose]
        if z is not None and z.window is not None:
            return z.window
        if purpose is not None and purpose in self.purposes:
            return self.purposes[purpose]
        return self.window


class AcceptLog(Protocol):
    """What anti-passback reads: :meth:`passgate.journal.journal.Journal.last_accepted`."""

    def last_accepted(self, pass_hash: bytes, zone: str, after: float,
                      until: float) -> float | None: ...


def _window(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise ConfigError(f"anti-passback window for {what} must be >= 0 seconds, not {value!r}")
    return float(value)


class AntiPassback:
    """Decides whether a pass was already accepted here within its window.

    ``journal`` is the scan journal (anything with ``last_accepted``).
    ``default_window_s`` applies when nothing more specific does; ``zone_windows`` maps a
    zone to its window, ``purpose_windows`` a purpose to its window in every zone, and
    ``zone_purpose_windows`` a ``(zone, purpose)`` pair to its window. Raises ``ValueError``
    for a negative or non-numeric window.
    """

    def __init__(
        self,
        journal: AcceptLog,
        default_window_s: float = 0,
        zone_windows: Mapping[str, float] | None = None,
        purpose_windows: Mapping[str, float] | None = None,
        zone_purpose_windows: Mapping[tuple[str, str], float] | None = None,
    ) -> None:
        self.journal = journal
        self.default_window_s = _window(default_window_s, "the default")
        self.zone_windows = {z: _window(w, f"zone {z}") for z, w in (zone_windows or {}).items()}
        self.purpose_windows = {
            p: _window(w, f"purpose {p}") for p, w in (purpose_windows or {}).items()
        }
        self.zone_purpose_windows = {
            (z, p): _window(w, f"purpose {p} in zone {z}")
            for (z, p), w in (zone_purpose_windows or {}).items()
        }

    @classmethod
    def from_config(cls, journal: AcceptLog, section: AntipassbackSection) -> AntiPassback:
        """Build from the config's ``[antipassback]`` section (``window``, ``purposes``,
        ``zones.NAME.window`` and ``zones.NAME.purposes``)."""
        zones = dict(section.zones)
        return cls(
            journal,
            section.window,
            {z: s.window for z, s in zones.items() if s.window is not None},
            dict(section.purposes),
            {(z, p): w for z, s in zones.items() for p, w in dict(s.purposes).items()},
        )

    @property
    def max_window_s(self) -> float:
        """The longest window configured: journal retention must be at least this long."""
        return max([self.default_window_s, *self.zone_windows.values(),
                    *self.purpose_windows.values(), *self.zone_purpose_windows.values()])

    def window_for(self, zone: str, purpose: str | None) -> float:
        """The window for a pass of ``purpose`` presented in ``zone``."""
        if purpose is not None and (zone, purpose) in self.zone_purpose_windows:
            return self.zone_purpose_windows[(zone, purpose)]
        if zone in self.zone_windows:
            return self.zone_windows[zone]
        if purpose is not None and purpose in self.purpose_windows:
            return self.purpose_windows[purpose]
        return self.default_window_s

    def last_use(self, pass_hash: bytes, zone: str, purpose: str | None,
                 now: float) -> float | None:
        """Time of the accept that makes this presentation a repeat, or ``None``.

        Raises :class:`~passgate.errors.JournalError` if the journal cannot be read; the
        caller must then not signal an accept (the scan cannot be recorded either).
        """
        window = self.window_for(zone, purpose)
        if window <= 0:
            return None
        return self.journal.last_accepted(pass_hash, zone, now - window, now + window)

    def already_used(self, pass_hash: bytes, zone: str, purpose: str | None,
                     now: float) -> bool:
        """Whether ``pass_hash`` was accepted in ``zone`` less than its window before
        ``now``. Only accepted scans count: refused attempts do not extend the window."""
        return self.last_use(pass_hash, zone, purpose, now) is not None
