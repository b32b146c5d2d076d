"""The declared configuration schema: frozen dataclasses, one per TOML section.

Every key is declared once, here, with its type, default, limits and a one-line meaning. The
loader (:mod:`passgate.config.load`) validates against these declarations, ``passgate config
--dump``
prints them, and ``docs/configuration.md`` describes the same keys. Durations are stored as
whole seconds (written ``"30m"``, ``"7d"`` or a plain number of seconds in TOML); hold times
that people tune in fractions of a second are floats with an ``_s`` suffix.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")  # zones and purposes, as in passes
DEVICE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # the collector's rule: lower case
RTC_RE = re.compile(r"rtc[0-9]{1,2}")  # a kernel RTC's name under /sys/class/rtc
DEFAULT_STATE_DIR = Path("/var/lib/passgate")
MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Spec:
    """How one key is checked. ``kind`` is one of: str, int, float, bool, path, duration,
    size ([width, height]), choice, durations (a table of name -> duration), section,
    tables (name -> section)."""

    kind: str
    doc: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    pattern: re.Pattern | None = None
    section: type | None = None
    derive: str | None = None  # path default: this name inside checkpoint.state_dir
    hex: bool = False  # dump as hexadecimal (I2C addresses)
    values: tuple = ()  # the only numbers allowed, when a range does not say it
    nonempty: bool = False  # a string that may not be ""


def key(default: Any, kind: str, doc: str, **spec: Any) -> Any:
    """Declare a key: its default (``MISSING`` for required), its kind and its meaning."""
    meta = {"spec": Spec(kind, doc, **spec)}
    if isinstance(default, dict):
        return field(default_factory=lambda: MappingProxyType(dict(default)), metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata["spec"]


@dataclass(frozen=True)
class CheckpointSection:
    zone: str = key(
        MISSING,
        "str",
        "zone this checkpoint guards; a pass must name it",
        pattern=NAME_RE,
        nonempty=True,
    )
    site: str = key(
        "",
        "str",
        "site this checkpoint belongs to: the bundle's [fleet.sites.NAME] applies (empty: none)",
        pattern=NAME_RE,
    )
    device_id: str = key(
        "",
        "str",
        "device id in journal rows and uploads, lower case (empty: the host name)",
        pattern=DEVICE_RE,
    )
    state_dir: Path = key(
        DEFAULT_STATE_DIR, "path", "writable folder for the journal, keys and trust state"
    )


@dataclass(frozen=True)
class CameraSection:
    source: str = key(
        "picamera2", "choice", "frame source", choices=("picamera2", "files", "webcam")
    )
    camera: int = key(0, "int", "picamera2: camera number (a Pi 5 has two connectors)", lo=0, hi=7)
    lores_size: tuple = key(
        (640, 480), "size", "[width, height] of the decoded frames (picamera2 lores, webcam)"
    )
    main_size: tuple = key(
        (1280, 960), "size", "picamera2 main stream: picks the sensor mode (same aspect ratio)"
    )
    fps: float = key(15.0, "float", "frames per second asked of the camera", lo=1, hi=120)
    focus: str = key(
        "manual",
        "choice",
        "manual: fixed lens_position (Camera Module 3); continuous: autofocus; fixed: no lens",
        choices=("manual", "continuous", "fixed"),
    )
    lens_position: float = key(
        6.7, "float", "manual focus in dioptres (1/metres): 6.7 focuses at 15 cm", lo=0.0, hi=32.0
    )
    af_range: str = key(
        "normal", "choice", "continuous focus range", choices=("normal", "macro", "full")
    )
    metering: str = key(
        "centre", "choice", "exposure metering mode", choices=("centre", "spot", "matrix")
    )
    exposure_value: float = key(
        0.0, "float", "exposure compensation in stops (bright phone screens: -1)", lo=-8, hi=8
    )
    exposure_time_us: int | None = key(
        None, "int", "fixed shutter time in microseconds (absent: automatic)", lo=1, hi=10_000_000
    )
    analogue_gain: float | None = key(
        None, "float", "fixed analogue gain (absent: automatic)", lo=1, hi=64
    )
    timeout_s: float = key(
        2.0, "float", "a frame that takes longer than this is a camera fault", lo=0.1, hi=60
    )
    buffer_count: int = key(4, "int", "picamera2 frame buffers", lo=2, hi=16)
    path: Path | None = key(None, "path", "files source: a folder of images or a video file")
    loop: bool = key(False, "bool", "files source: start again after the last frame")
    webcam_index: int = key(
        0, "int", "webcam source: V4L2 device number N of /dev/videoN", lo=0, hi=63
    )


@dataclass(frozen=True)
class DecoderSection:
    backend: str = key(
        "zxing", "choice", "QR decoder (docs/decoders.md)", choices=("zxing", "zbar")
    )
    try_invert: bool = key(True, "bool", "also read light-on-dark codes (dark-mode phone screens)")
    absent_frames: int = key(
        5,
        "int",
        "a code missing from this many frames in a row may have left the view",
        lo=1,
        hi=1000,
    )
    absent_s: float = key(
        1.0,
        "float",
        "... and for this many seconds; shown again after that, it is a new presentation",
        lo=0.0,
        hi=60,
    )


@dataclass(frozen=True)
class DisplaySection:
    driver: str = key(
        "ssd1306",
        "choice",
        "OLED controller; dummy renders off-screen, none: no display",
        choices=("ssd1306", "sh1106", "dummy", "none"),
    )
    i2c_port: int = key(1, "int", "I2C bus number N of /dev/i2c-N", lo=0, hi=22)
    i2c_address: int = key(
        0x3C, "int", "I2C address of the OLED (0x3C or 0x3D)", lo=0x03, hi=0x77, hex=True
    )
    rotate: int = key(0, "int", "0, or 2 when the panel is mounted upside down", values=(0, 2))
    verdict_hold_s: float = key(
        3.0,
        "float",
        "how long a verdict stays before the idle screen (at least signals.relay_hold_s)",
        lo=0.5,
        hi=60,
    )
    retry_s: float = key(
        10.0, "float", "how often a missing or failed panel is tried again", lo=0.5, hi=3600
    )
    png_dir: Path | None = key(None, "path", "dummy driver: write each new screen as a PNG here")


@dataclass(frozen=True)
class SignalsSection:
    buzzer_pin: int = key(
        17, "int", "BCM pin of the buzzer (2 and 3 are the OLED's I2C)", lo=4, hi=27
    )
    buzzer_tonal: bool = key(
        False, "bool", "true: passive piezo driven with PWM tones; false: on/off active buzzer"
    )
    buzzer_active_high: bool = key(
        True, "bool", "false for buzzer modules that sound when their input is low"
    )
    green_pin: int = key(27, "int", "BCM pin of the green LED", lo=4, hi=27)
    red_pin: int = key(22, "int", "BCM pin of the red LED", lo=4, hi=27)
    relay_pin: int = key(23, "int", "BCM pin of the door relay board's IN", lo=4, hi=27)
    relay_active_high: bool = key(
        False, "bool", "false: the relay board switches when IN is pulled low (most boards)"
    )
    relay_hold_s: float = key(
        3.0, "float", "how long the door stays released after an accept", lo=0.2, hi=60
    )
    deny_s: float = key(2.0, "float", "how long the red LED stays lit after a deny", lo=0.2, hi=60)


@dataclass(frozen=True)
class ZoneWindows:
    window: int | None = key(
        None, "duration", "anti-passback window in this zone (absent: the global one)"
    )
    purposes: MappingProxyType = key({}, "durations", "per-purpose windows in this zone")


@dataclass(frozen=True)
class AntipassbackSection:
    window: int = key(
        1800,
        "duration",
        "a pass accepted here is denied already_used for this long (0: off)",
        lo=0,
        hi=366 * 86400,
    )
    purposes: MappingProxyType = key({}, "durations", 'per-purpose windows, e.g. work = "10m"')
    zones: MappingProxyType = key(
        {}, "tables", "per-zone windows: [antipassback.zones.NAME]", section=ZoneWindows
    )

    def window_for(self, zone: str, purpose: str | None) -> int:
        """The window for a purpose in a zone: the most specific setting wins."""
        z = self.zones.get(zone)
        if z is not None and purpose in z.purposes:
            return z.purposes[purpose]
        if z is not None and z.window is not None:
            return z.window
        if purpose in self.purposes:
            return self.purposes[purpose]
        return self.window


@dataclass(frozen=True)
class TrustSection:
    source: str = key(
        "bundle",
        "choice",
        "bundle: the installed signed bundle; dir: a plain folder (development)",
        choices=("bundle", "dir"),
    )
    dir: Path = key(
        Path("/etc/passgate/trust"), "path", "dir source: issuer *.pub, revoked.txt, purposes.toml"
    )
    bundle_dir: Path | None = key(
        None, "path", "bundle source: where installed bundles live", derive="bundle"
    )
    max_offline_age: int = key(
        7 * 86400,
        "duration",
        "trust data older than this is stale (a bundle's own setting wins)",
        lo=60,
        hi=366 * 86400,
    )
    stale_policy: str = key(
        "deny",
        "choice",
        "stale trust data: deny everything (trust_stale) or accept flagged",
        choices=("deny", "flag"),
    )


@dataclass(frozen=True)
class JournalSection:
    path: Path | None = key(None, "path", "SQLite journal file", derive="journal.sqlite")
    retention: int = key(
        30 * 86400,
        "duration",
        "uploaded rows older than this are pruned (unsent rows never are)",
        lo=3600,
        hi=10 * 366 * 86400,
    )
    hash_key_file: Path | None = key(
        None,
        "path",
        "fleet key (32 bytes, 0600) for hashing pass ids; written by provisioning",
        derive="journal.key",
    )


@dataclass(frozen=True)
class ClockSection:
    untrusted_policy: str = key(
        "flag",
        "choice",
        "clock not trusted: deny passes (clock_untrusted) or accept flagged",
        choices=("deny", "flag"),
    )
    trust_timesyncd: bool = key(
        True, "bool", "a clock NTP (timesyncd and the kernel) reports synchronised is trusted"
    )
    trust_rtc: bool = key(False, "bool", "a battery RTC (DS3231) that agrees counts as trusted")
    rtc_device: str = key(
        "rtc0",
        "str",
        "the RTC trust_rtc compares with, rtcN of /sys/class/rtc (a DS3231 on a Pi 5: rtc1)",
        pattern=RTC_RE,
    )
    token_trust: int = key(
        86400,
        "duration",
        "how long a fresh signed time token keeps the clock trusted (monotonic time)",
        lo=60,
        hi=7 * 86400,
    )
    floor_file: Path | None = key(
        None, "path", "where the time floor is persisted", derive="clock.floor"
    )


@dataclass(frozen=True)
class Config:
    """The whole effective configuration. ``sources`` lists the files it was read from."""

    checkpoint: CheckpointSection = key(
        MISSING, "section", "this checkpoint", section=CheckpointSection
    )
    camera: CameraSection = key(CameraSection(), "section", "the camera", section=CameraSection)
    decoder: DecoderSection = key(
        DecoderSection(), "section", "QR decoding", section=DecoderSection
    )
    display: DisplaySection = key(DisplaySection(), "section", "the OLED", section=DisplaySection)
    signals: SignalsSection = key(
        SignalsSection(), "section", "buzzer, LEDs, relay", section=SignalsSection
    )
    antipassback: AntipassbackSection = key(
        AntipassbackSection(), "section", "anti-passback", section=AntipassbackSection
    )
    trust: TrustSection = key(TrustSection(), "section", "trust data", section=TrustSection)
    journal: JournalSection = key(
        JournalSection(), "section", "the scan journal", section=JournalSection
    )
    clock: ClockSection = key(ClockSection(), "section", "time", section=ClockSection)
    sources: tuple[str, ...] = field(default=(), compare=False)


SECTIONS = tuple(f.name for f in dataclasses.fields(Config) if "spec" in f.metadata)
