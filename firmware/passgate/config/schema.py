"""The declared configuration schema: frozen dataclasses, one per TOML section.

Every key is declared once (:func:`passgate.options.declare.option`), with its default, its
validator and a one-line meaning: beside its adapter for the hardware (``[camera]`` in
:mod:`passgate.hardware.camera.picam`, ``[display]`` in :mod:`passgate.hardware.display.device`,
``[signals]`` in :mod:`passgate.hardware.signals.gpio`: the adapter's config class *is* the
section; ``[clock]`` in :mod:`passgate.clock.section`, ``[antipassback]`` in
:mod:`passgate.journal.antipassback`), here for the keys with no part of their own. The loader
(:mod:`passgate.config.load`) validates against these declarations, ``passgate config --dump``
prints them, and ``docs/configuration.md`` describes the same keys. Durations are stored as
whole seconds (written ``"30m"``, ``"7d"`` or a plain number of seconds in TOML); hold times
that people tune in fractions of a second are floats with an ``_s`` suffix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from passgate.clock.section import ClockSection
from passgate.hardware.camera.picam import CameraConfig
from passgate.hardware.display.device import DisplayConfig
from passgate.hardware.signals.gpio import SignalsConfig
from passgate.journal.antipassback import AntipassbackSection, ZoneWindows
from passgate.options.declare import MISSING, option, options_of, section, toml_duration
from passgate.options.validators import (
    DEVICE_RE,
    NAME_RE,
    RTC_RE,
    valid_bool,
    valid_choice,
    valid_duration,
    valid_float_range,
    valid_int_range,
    valid_names,
    valid_path,
    valid_string,
)

# The adapters' config classes are the sections: one declaration per key, no copying.
CameraSection = CameraConfig
DisplaySection = DisplayConfig
SignalsSection = SignalsConfig

DEFAULT_STATE_DIR = Path("/var/lib/passgate")

__all__ = [
    "MISSING",
    "NAME_RE",
    "DEVICE_RE",
    "RTC_RE",
    "DEFAULT_STATE_DIR",
    "SECTIONS",
    "Config",
    "CheckpointSection",
    "CameraSection",
    "DecoderSection",
    "DisplaySection",
    "SignalsSection",
    "ZoneWindows",
    "AntipassbackSection",
    "TrustSection",
    "JournalSection",
    "ClockSection",
]


@dataclass(frozen=True)
class CheckpointSection:
    zone: str = option(
        MISSING,
        valid_string(NAME_RE, nonempty=True),
        "zone this checkpoint guards; a pass must name it",
    )
    site: str = option(
        "",
        valid_string(NAME_RE),
        "site this checkpoint belongs to: the bundle's [fleet.sites.NAME] applies (empty: none)",
    )
    device_id: str = option(
        "",
        valid_string(DEVICE_RE),
        "device id in journal rows and uploads, lower case (empty: the host name)",
    )
    state_dir: Path = option(
        DEFAULT_STATE_DIR, valid_path, "writable folder for the journal, keys and trust state"
    )
    live_code_window: int = option(
        30,
        valid_duration(5, 300),
        "a live code (PG2:) older or further ahead than this is denied (docs/pass-format.md)",
        dump=toml_duration,
    )


@dataclass(frozen=True)
class DecoderSection:
    backend: str = option("zxing", valid_choice("zxing", "zbar"), "QR decoder (docs/decoders.md)")
    try_invert: bool = option(
        True, valid_bool, "also read light-on-dark codes (dark-mode phone screens)"
    )
    absent_frames: int = option(
        5,
        valid_int_range(1, 1000),
        "a code missing from this many frames in a row may have left the view",
    )
    absent_s: float = option(
        1.0,
        valid_float_range(0.0, 60),
        "... and for this many seconds; shown again after that, it is a new presentation",
    )


@dataclass(frozen=True)
class TrustSection:
    source: str = option(
        "bundle",
        valid_choice("bundle", "dir"),
        "bundle: the installed signed bundle; dir: a plain folder (development)",
    )
    dir: Path = option(
        Path("/etc/passgate/trust"),
        valid_path,
        "dir source: issuer *.pub, revoked.txt, purposes.toml",
    )
    bundle_dir: Path | None = option(
        None, valid_path, "bundle source: where installed bundles live", derive="bundle"
    )
    max_offline_age: int = option(
        7 * 86400,
        valid_duration(60, 366 * 86400),
        "trust data older than this is stale (a bundle's own setting wins)",
        dump=toml_duration,
    )
    stale_policy: str = option(
        "deny",
        valid_choice("deny", "flag"),
        "stale trust data: deny everything (trust_stale) or accept flagged",
    )
    holder_binding: tuple[str, ...] = option(
        (),
        valid_names,
        'purposes that must be shown as a live code here, ["*"] for all (a bundle\'s own wins)',
    )


@dataclass(frozen=True)
class JournalSection:
    path: Path | None = option(None, valid_path, "SQLite journal file", derive="journal.sqlite")
    retention: int = option(
        30 * 86400,
        valid_duration(3600, 10 * 366 * 86400),
        "uploaded rows older than this are pruned (unsent rows never are)",
        dump=toml_duration,
    )
    hash_key_file: Path | None = option(
        None,
        valid_path,
        "fleet key (32 bytes, 0600) for hashing pass ids; written by provisioning",
        derive="journal.key",
    )


@dataclass(frozen=True)
class Config:
    """The whole effective configuration. ``sources`` lists the files it was read from;
    ``origins`` maps each dotted key set in a file to that file (what errors found after
    loading, such as a missing key file at start-up, name: :func:`origin`)."""

    checkpoint: CheckpointSection = section(CheckpointSection, "this checkpoint", required=True)
    camera: CameraConfig = section(CameraConfig, "the camera")
    decoder: DecoderSection = section(DecoderSection, "QR decoding")
    display: DisplayConfig = section(DisplayConfig, "the OLED")
    signals: SignalsConfig = section(SignalsConfig, "buzzer, LEDs, relay")
    antipassback: AntipassbackSection = section(AntipassbackSection, "anti-passback")
    trust: TrustSection = section(TrustSection, "trust data")
    journal: JournalSection = section(JournalSection, "the scan journal")
    clock: ClockSection = section(ClockSection, "time")
    sources: tuple[str, ...] = field(default=(), compare=False)
    origins: MappingProxyType[str, str] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )

    def origin(self, dotted: str, derived_from: str | None = None) -> str:
        """The file that set ``dotted``; for a value set nowhere, the file that set
        ``derived_from`` (a path derived inside ``checkpoint.state_dir``), else the one that
        set its section; else the main file."""
        for key in (dotted, derived_from, dotted.rsplit(".", 1)[0]):
            if key is not None and key in self.origins:
                return self.origins[key]
        return self.sources[0] if self.sources else "<config>"


SECTIONS = tuple(options_of(Config))
