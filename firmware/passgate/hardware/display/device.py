"""Where rendered images go: the OLED through luma, luma's dummy device, or PNG files.

An *output* is anything with luma's two methods, ``display(image)`` and ``cleanup()``. luma is
imported inside the functions here, never at module import, so importing passgate touches no
bus. :class:`DisplayConfig` describes the panel in physical terms; it is the ``[display]`` table
of the config file, each key declared once, there.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, Protocol

from passgate.errors import ConfigError, HardwareError
from passgate.options.declare import check, option, toml_hex
from passgate.options.validators import (
    valid_choice,
    valid_float_range,
    valid_i2c_address,
    valid_int_choice,
    valid_int_range,
    valid_path,
)
from passgate.util.i18n import LANGUAGES

log = logging.getLogger(__name__)

DRIVERS = ("ssd1306", "sh1106", "dummy", "none")


def valid_timezone(value: Any) -> str:
    """An IANA time zone name (``"Europe/Moscow"``) that this system's tz database knows, or
    ``""`` for the system's own local zone."""
    if not isinstance(value, str):
        raise ConfigError(f"must be a time zone name like Europe/Moscow, not {value!r}")
    name = value.strip()
    if not name:
        return ""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        msg = f"{name!r} is not a time zone this system knows (like Europe/Moscow)"
        raise ConfigError(msg) from None
    return name


class Output(Protocol):
    """The part of a luma device the display worker uses."""

    def display(self, image: Any) -> None: ...

    def cleanup(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DisplayConfig:
    """The OLED and how screens behave: the ``[display]`` config section.

    ``driver``: the controller chip. ``"ssd1306"`` (most 0.96" 128x64 modules), ``"sh1106"``
    (most 1.3" modules: 132-column RAM, luma offsets it), ``"dummy"`` (luma's off-screen
    device: no hardware, keeps the last image) or ``"none"`` (no panel at all).
    ``i2c_port``: the bus number N of ``/dev/i2c-N``; 1 is the 40-pin header (SDA = BCM 2,
    SCL = BCM 3), enabled with ``raspi-config nonint do_i2c 0``.
    ``i2c_address``: 0x3C on most modules, 0x3D when the address jumper/resistor is moved.
    ``rotate``: 0, or 2 when the panel is mounted upside down (screens are landscape, so the
    quarter turns 1 and 3 are refused).
    ``verdict_hold_s``: how long a verdict stays before the idle screen returns.
    ``png_dir``: also write every new screen as a PNG file in this folder (simulation).
    ``retry_s``: how often a missing or failed panel is tried again.
    ``language``: the language of every word on the panel (``en``, ``ru``, ``tt``).
    ``timezone``: the zone of the idle screen's clock (``"Europe/Moscow"``); ``""`` is the
    system's local zone. Only the panel shows local time: the journal, uploads and exports
    stay UTC.
    """

    driver: str = option(
        "ssd1306",
        valid_choice(*DRIVERS),
        "OLED controller; dummy renders off-screen, none: no display",
    )
    i2c_port: int = option(1, valid_int_range(0, 22), "I2C bus number N of /dev/i2c-N")
    i2c_address: int = option(
        0x3C, valid_i2c_address, "I2C address of the OLED (0x3C or 0x3D)", dump=toml_hex
    )
    rotate: int = option(
        0, valid_int_choice(0, 2), "0, or 2 when the panel is mounted upside down"
    )
    verdict_hold_s: float = option(
        3.0,
        valid_float_range(0.5, 60),
        "how long a verdict stays before the idle screen (at least signals.relay_hold_s)",
    )
    retry_s: float = option(
        10.0,
        valid_float_range(0.5, 3600),
        "how often a missing or failed panel is tried again",
    )
    png_dir: Path | None = option(
        None, valid_path, "dummy driver: write each new screen as a PNG here"
    )
    language: str = option(
        "en", valid_choice(*LANGUAGES), "language of the screens: en, ru (Russian), tt (Tatar)"
    )
    timezone: str = option(
        "", valid_timezone, 'time zone of the idle clock ("Europe/Moscow"); "": the system\'s'
    )

    def zone(self) -> tzinfo | None:
        """The idle clock's zone; ``None`` means the system's local zone."""
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else None

    def __post_init__(self) -> None:
        check(self, "display.")


def open_luma(
    driver: str = "ssd1306",
    port: int = 1,
    address: int = 0x3C,
    rotate: int = 0,
    *,
    bus: Any = None,
    persist: bool = True,
) -> Output:
    """Open a 128x64 luma device: ``ssd1306`` or ``sh1106`` over I2C, or luma's ``dummy``.

    ``bus`` is an already open smbus-like object (tests pass a fake); ``None`` lets luma open
    ``/dev/i2c-<port>`` with smbus2. ``persist=True`` keeps the last image lit when the device
    is cleaned up, so "stopped" stays readable after the daemon exits. Raises
    :class:`~passgate.errors.HardwareError` naming the bus and address when the panel cannot
    be opened (no bus, no permission, nothing answering at the address).
    """
    if driver == "dummy":
        from luma.core.device import dummy

        dev = dummy(width=128, height=64, rotate=rotate, mode="1")
        dev.persist = persist
        return dev
    if driver not in ("ssd1306", "sh1106"):
        raise ConfigError(f"unknown OLED driver {driver!r}")
    where = f"OLED {driver} on /dev/i2c-{port} at 0x{address:02X}"
    try:
        import luma.core.error
        from luma.core.interface.serial import i2c
        from luma.oled import device as oled
    except ImportError as exc:  # pragma: no cover - luma.oled is a declared dependency
        raise HardwareError(f"{where}: luma.oled is not installed ({exc})") from exc
    try:
        serial = i2c(bus=bus, port=port, address=address)
        dev = getattr(oled, driver)(serial, width=128, height=64, rotate=rotate)
    except (luma.core.error.Error, OSError) as exc:
        raise HardwareError(f"{where}: {exc}") from exc
    dev.persist = persist
    return dev


class PngFolder:
    """An output that writes every image it is given as ``<prefix>-NNNNN.png`` in ``folder``.

    Images pass through luma's ``dummy`` device first, exactly as they would to the panel.
    Numbering continues after the highest existing file, so a second run never overwrites the
    first one's frames. The display worker only sends changed images, so each file is a
    distinct frame. ``written`` lists the paths in order.
    """

    def __init__(self, folder: Path | str, prefix: str = "frame") -> None:
        from luma.core.device import dummy

        self.folder = Path(folder)
        self.prefix = prefix
        self.folder.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(rf"{re.escape(prefix)}-(\d+)\.png")
        names = (pattern.fullmatch(p.name) for p in self.folder.iterdir())
        numbers = [int(m.group(1)) for m in names if m]
        self._next = max(numbers, default=0) + 1
        self._dummy = dummy(width=128, height=64, rotate=0, mode="1")
        self.written: list[Path] = []

    def display(self, image: Any) -> None:
        self._dummy.display(image)
        path = self.folder / f"{self.prefix}-{self._next:05d}.png"
        tmp = path.with_suffix(".png.tmp")
        self._dummy.image.save(tmp, format="PNG")
        tmp.replace(path)  # a viewer never sees half a file
        self._next += 1
        self.written.append(path)

    def cleanup(self) -> None:
        """Nothing is held open between frames."""
