"""Validator callables for config options, one small function per kind of value.

Modelled on kvmd's ``validators/`` (``Option(24, type=valid_gpio_pin)``). The rules they keep:

- A validator takes one value as TOML gives it (or as Python code passes it) and returns the
  value to store, converted where the stored type differs (a list to a tuple, a string to a
  :class:`~pathlib.Path`, ``"30m"`` to 1800, an int to a float), or raises
  :class:`~passgate.errors.ConfigError` saying what is wrong with the value. It never names
  the file or the key: the caller adds those (``file: section.key: problem``).
- A validator accepts its own output unchanged: a config class re-checks its fields when it is
  built, from values the loader already checked as much as from Python code.
- ``True`` is not a number here, though Python says ``True == 1``: ``fps = true`` is a mistake.
- A table validator that finds a bad entry raises :class:`BadValue` naming the entry, so the
  message points at ``antipassback.purposes.NAME``, not at the whole table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any

from passgate.errors import BadValue, ConfigError
from passgate.util.timefmt import parse_duration

Validator = Callable[[Any], Any]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")  # zones and purposes, as in passes
DEVICE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # the collector's rule: lower case
RTC_RE = re.compile(r"rtc[0-9]{1,2}")  # a kernel RTC's name under /sys/class/rtc

# BCM 2 and 3 are I2C SDA/SCL (the OLED, an RTC); 0 and 1 are the HAT EEPROM's ID bus.
GPIO_FIRST, GPIO_LAST = 4, 27


def show(v: Any) -> str:
    """A value as a message shows it: ``'1'`` for a string, ``true`` for a bool."""
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, list):
        return "a list"
    return str(v).lower() if isinstance(v, bool) else repr(v)


def type_name(v: Any) -> str:
    """What a value is, for a key that wants a table: ``a string``, ``int``."""
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), type(v).__name__
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bounded(n: float, lo: float | None, hi: float | None, fmt: Callable[[float], str]) -> None:
    if lo is not None and n < lo:
        raise ConfigError(f"{fmt(n)} is below the minimum {fmt(lo)}")
    if hi is not None and n > hi:
        raise ConfigError(f"{fmt(n)} is above the maximum {fmt(hi)}")


def _g(n: float) -> str:
    return f"{n:g}"


def valid_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"must be true or false, not {show(v)}")
    return v


def valid_int_range(lo: int | None, hi: int | None) -> Validator:
    """A whole number in ``lo..hi`` (either end ``None``: open)."""

    def valid_int(v: Any) -> int:
        if not _is_int(v):
            raise ConfigError(f"must be a whole number, not {show(v)}")
        _bounded(v, lo, hi, _g)
        return v

    return valid_int


def valid_int_choice(*values: int) -> Validator:
    """One of a few whole numbers, when a range does not say it (``rotate``: 0 or 2)."""

    def valid_int_of(v: Any) -> int:
        if not _is_int(v):
            raise ConfigError(f"must be a whole number, not {show(v)}")
        if v not in values:
            raise ConfigError(f"must be {' or '.join(map(str, values))}, not {v}")
        return v

    return valid_int_of


def valid_float_range(lo: float | None, hi: float | None) -> Validator:
    """A finite number in ``lo..hi``, stored as a float (TOML's ``15`` is ``15.0``)."""

    def valid_float(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"must be a number, not {show(v)}")
        _bounded(v, lo, hi, _g)
        return float(v)

    return valid_float


def valid_float_span(lo: float, hi: float) -> Validator:
    """``[low, high]``: two finite numbers in ``lo..hi``, low <= high, stored as floats."""
    one = valid_float_range(lo, hi)

    def valid_span(v: Any) -> tuple[float, float]:
        if not isinstance(v, list | tuple) or len(v) != 2:
            raise ConfigError(f"must be [low, high], not {show(v)}")
        low, high = one(v[0]), one(v[1])
        if low > high:
            raise ConfigError(f"low must not exceed high, not {list(v)}")
        return (low, high)

    return valid_span


def valid_string(pattern: re.Pattern[str] | None = None, *, nonempty: bool = False) -> Validator:
    """A string; if ``pattern`` is given, an empty one or one matching it in full."""

    def valid_str(v: Any) -> str:
        if not isinstance(v, str):
            raise ConfigError(f"must be a string, not {show(v)}")
        if nonempty and not v:
            raise ConfigError("must not be empty")
        if pattern is not None and v and not pattern.fullmatch(v):
            raise ConfigError(f"{v!r} is not valid (it must match {pattern.pattern})")
        return v

    return valid_str


def valid_choice(*choices: str) -> Validator:
    """One of a few words."""

    def valid_word(v: Any) -> str:
        if not isinstance(v, str):
            raise ConfigError(f"must be a string, not {show(v)}")
        if v not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}, not {v!r}")
        return v

    return valid_word


def valid_path(v: Any) -> Path:
    """A non-empty path, ``~`` expanded. A relative one stays relative: the loader resolves it
    beside the file that set it (a drop-in saying ``"trust"`` means its own folder)."""
    if isinstance(v, PurePath):
        v = str(v)
    if not isinstance(v, str) or not v:
        raise ConfigError(f"must be a non-empty path string, not {show(v)}")
    return Path(v).expanduser()


def valid_duration(lo: int | None = 0, hi: int | None = None) -> Validator:
    """``"30m"``, ``"7d"``, ``"1h30m"`` or whole seconds -> seconds, in ``lo..hi``."""

    def valid_seconds(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise ConfigError(f'must be a duration like "30m" or seconds, not {show(v)}')
        try:
            n = v if isinstance(v, int) else parse_duration(v)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        _bounded(n, lo, hi, _g)
        return n

    return valid_seconds


def valid_durations_table(v: Any) -> Mapping[str, int]:
    """A table of ``name = duration`` (per-purpose windows), names as in passes."""
    if not isinstance(v, Mapping):
        raise ConfigError(f"must be a table of name = duration, not {type_name(v)}")
    check = valid_duration(0)
    out = {}
    for name, d in v.items():
        if not NAME_RE.fullmatch(name):
            raise BadValue(name, "not a valid purpose name")
        try:
            out[name] = check(d)
        except ConfigError as exc:
            raise BadValue(name, str(exc)) from None
    return MappingProxyType(out)


def valid_names(v: Any) -> tuple[str, ...]:
    """A list of names as in passes (purposes), or ``["*"]`` for all; sorted, no duplicates."""
    if not isinstance(v, list | tuple) or not all(isinstance(n, str) for n in v):
        raise ConfigError(f"must be a list of names, not {type_name(v)}")
    for name in v:
        if name != "*" and not NAME_RE.fullmatch(name):
            raise ConfigError(f"{name!r} is not a valid name (it must match {NAME_RE.pattern})")
    if "*" in v and len(v) > 1:
        raise ConfigError('"*" (all) stands alone')
    return tuple(sorted(set(v)))


def valid_size(v: Any) -> tuple[int, int]:
    """``[width, height]`` in pixels, both even and 16-8192 (what the camera stacks accept)."""
    if not isinstance(v, list | tuple) or len(v) != 2 or not all(_is_int(n) for n in v):
        raise ConfigError(f"must be [width, height] in pixels, not {show(v)}")
    if not all(16 <= n <= 8192 and n % 2 == 0 for n in v):
        raise ConfigError(f"width and height must be even numbers 16-8192, not {list(v)}")
    return (v[0], v[1])


def valid_gpio_pin(v: Any) -> int:
    """A BCM GPIO number an output may use: 4-27 (2 and 3 carry the OLED's I2C)."""
    if not _is_int(v):
        raise ConfigError(f"must be a whole number, not {show(v)}")
    try:
        _bounded(v, GPIO_FIRST, GPIO_LAST, _g)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}: BCM pin {GPIO_FIRST}-{GPIO_LAST} expected (2 and 3 are the OLED's I2C)"
        ) from None
    return v


def unique_gpio_pins(pins: Mapping[str, int | None]) -> None:
    """The one rule that no two outputs share a pin: ``pins`` maps a key to its pin in the
    order they are checked (``None``: not fitted); the later key of a pair is the one named."""
    seen: dict[int, str] = {}
    for name, pin in pins.items():
        if pin is None:
            continue
        if pin in seen:
            raise BadValue(name, f"GPIO{pin} is already used by signals.{seen[pin]}")
        seen[pin] = name


def valid_i2c_address(v: Any) -> int:
    """A 7-bit I2C device address outside the reserved ones: 0x03-0x77, shown in hex."""
    if not _is_int(v):
        raise ConfigError(f"must be a whole number, not {show(v)}")
    _bounded(v, 0x03, 0x77, lambda n: hex(int(n)))
    return v
