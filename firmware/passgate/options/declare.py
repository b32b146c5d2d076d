"""Declaring config keys: each key once, as a dataclass field with a default, a validator and
a one-line meaning, beside the code that uses it.

A config class is both the part's settings and the TOML section: the camera's keys are
declared in :mod:`passgate.hardware.camera.picam`, the signals' in
:mod:`passgate.hardware.signals.gpio`, the display's in :mod:`passgate.hardware.display.device`,
the clock's in :mod:`passgate.clock.section`, anti-passback's in
:mod:`passgate.journal.antipassback`; keys with no part of their own in
:mod:`passgate.config.schema`, which assembles the whole :class:`~passgate.config.schema.Config`.
This kit imports only :mod:`passgate.errors` and :mod:`passgate.util`, so every layer may use
it (``tests/test_layers.py``). Rules kept:

- A field declared with :func:`option` is a config key; anything else in the class is not.
- The loader checks a value with the field's validator before building the class (so the
  error names the file that set it), and the class checks every field again in
  ``__post_init__`` through :func:`check`, so a config built in Python is held to the same
  rules. ``None`` is never checked: it means not set (automatic, not fitted, derived later);
  TOML cannot write it, so a file can only get it from a default.
- ``dump`` renders a value back as TOML when the plain rendering would not read back the same
  way it was written (durations as ``"30m"``, I2C addresses as ``0x3C``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from passgate.errors import BadValue, ConfigError
from passgate.options.validators import Validator

MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Option:
    """How one key is checked and described. ``section``: the key is a nested table of that
    class; with ``tables``, a table of ``name -> section``. ``derive``: a path default, this
    name inside ``checkpoint.state_dir``."""

    validator: Validator | None
    doc: str
    derive: str | None = None
    dump: Callable[[Any], str] | None = None
    section: type | None = None
    tables: bool = False


def option(
    default: Any,
    validator: Validator,
    doc: str,
    *,
    derive: str | None = None,
    dump: Callable[[Any], str] | None = None,
) -> Any:
    """Declare a key: its default (``MISSING``: required), its validator and its meaning."""
    meta = {"option": Option(validator, doc, derive=derive, dump=dump)}
    if isinstance(default, Mapping):
        frozen = MappingProxyType(dict(default))
        return field(default_factory=lambda: frozen, metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, doc: str, *, required: bool = False) -> Any:
    """Declare a nested table whose keys ``cls`` declares."""
    meta = {"option": Option(None, doc, section=cls)}
    if required:
        return field(metadata=meta)
    return field(default_factory=cls, metadata=meta)


def tables(cls: type, doc: str) -> Any:
    """Declare a table of named tables (``[antipassback.zones.NAME]``), each a ``cls``."""
    meta = {"option": Option(None, doc, section=cls, tables=True)}
    return field(default_factory=lambda: MappingProxyType({}), metadata=meta)


def options_of(cls: Any) -> dict[str, tuple[dataclasses.Field, Option]]:
    """The declared keys of a config class (or instance), in declaration order."""
    return {
        f.name: (f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata
    }


def is_required(f: dataclasses.Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def check(obj: Any, prefix: str = "", rules: Callable[[], None] | None = None) -> None:
    """Validate and convert every declared field of a just-built (frozen) config in place,
    then run the class's cross-field ``rules``. Raises :class:`BadValue` naming the key, its
    message starting with ``prefix`` (how the class names its section in errors)."""
    try:
        for name, (_, opt) in options_of(obj).items():
            value = getattr(obj, name)
            if opt.validator is None or value is None:
                continue
            object.__setattr__(obj, name, run(opt.validator, name, value))
        if rules is not None:
            rules()
    except BadValue as exc:
        raise BadValue(exc.name, exc.problem, prefix) from None


def run(validator: Validator, name: str, value: Any) -> Any:
    """``validator(value)``, its error turned into a :class:`BadValue` for ``name``."""
    try:
        return validator(value)
    except BadValue as exc:  # an entry inside a table
        raise BadValue(f"{name}.{exc.name}", exc.problem) from None
    except ConfigError as exc:
        raise BadValue(name, str(exc)) from None


# --- rendering values back as TOML ---------------------------------------------------------


def format_duration(seconds: int) -> str:
    """Seconds -> the shortest duration string that reads back the same (``"1h30m"``)."""
    if seconds == 0:
        return "0"
    out, rest = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def toml_duration(v: int) -> str:
    return f'"{format_duration(v)}"'


def toml_durations(v: Mapping[str, int]) -> str:
    inner = ", ".join(f"{toml_key(k)} = {toml_duration(d)}" for k, d in v.items())
    return "{ " + inner + " }" if inner else "{}"


def toml_hex(v: int) -> str:
    return f"0x{v:02X}"


def toml_value(opt: Option, v: Any) -> str:
    """A stored value as TOML that its validator reads back to the same value."""
    if opt.dump is not None:
        return opt.dump(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(map(repr, v)) + "]"
    return toml_str(str(v))


def toml_key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else toml_str(name)


def toml_str(s: str) -> str:
    esc = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in esc) + '"'
