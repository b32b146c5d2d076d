"""Loading the checkpoint configuration: TOML files -> one validated, frozen :class:`Config`.

The main file (``/etc/passgate/passgate.toml`` or ``--config FILE``) is read first, then every
``passgate.d/*.toml`` beside it in name order; a later file overrides single keys of an
earlier one (tables merge, values replace). The merged tree is checked in one place,
:func:`validate`, against the schema in :mod:`passgate.config.schema`. Any problem, an
unknown key included, raises :class:`ConfigError` naming the file, the key and what is wrong,
so ``passgate run`` can stop with one readable line (exit 2).
"""

from __future__ import annotations

import dataclasses
import math
import socket
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from passgate.config.schema import MISSING, NAME_RE, SECTIONS, Config, DisplaySection, Spec, spec_of
from passgate.errors import ConfigError
from passgate.util.timefmt import parse_duration

DEFAULT_PATH = Path("/etc/passgate/passgate.toml")
DROPIN_DIR = "passgate.d"

__all__ = [
    "Config",
    "ConfigError",
    "load_config",
    "config_files",
    "validate",
    "dump_toml",
    "DEFAULT_PATH",
]


def config_files(main: Path | None = None) -> list[Path]:
    """The files that make up the config: the main one, then ``passgate.d/*.toml`` by name."""
    main = Path(main) if main is not None else DEFAULT_PATH
    if not main.is_file():
        hint = (
            ""
            if main != DEFAULT_PATH
            else " (copy passgate.example.toml there, or pass --config FILE)"
        )
        raise ConfigError(f"{main}: config file not found{hint}")
    dropins = sorted((main.parent / DROPIN_DIR).glob("*.toml"))
    return [main, *dropins]


def load_config(main: Path | None = None, *, files: Iterable[Path] | None = None) -> Config:
    """Read, merge and validate the config. ``files`` overrides the discovery of drop-ins."""
    paths = list(files) if files is not None else config_files(main)
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in paths:
        try:
            data = tomllib.loads(Path(path).read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        _merge(merged, data, origins, str(path), "")
    return validate(merged, origins, sources=[str(p) for p in paths])


def from_dict(data: Mapping[str, Any], origin: str = "<config>") -> Config:
    """Validate a config given as a dict (tests, the simulation)."""
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    _merge(merged, data, origins, origin, "")
    return validate(merged, origins, sources=[origin])


def _merge(into: dict, data: Mapping, origins: dict[str, str], origin: str, prefix: str) -> None:
    for name, value in data.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping) and isinstance(into.get(name), dict):
            _merge(into[name], value, origins, origin, dotted + ".")
        else:
            into[name] = _plain(value)
            _mark(origins, dotted, value, origin)


def _plain(value: Any) -> Any:
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _mark(origins: dict[str, str], dotted: str, value: Any, origin: str) -> None:
    origins[dotted] = origin
    if isinstance(value, Mapping):
        for k, v in value.items():
            _mark(origins, f"{dotted}.{k}", v, origin)


# --- validation -------------------------------------------------------------------------------


def validate(
    data: Mapping[str, Any], origins: Mapping[str, str], sources: list[str] | None = None
) -> Config:
    """The one validation function: the merged TOML tree -> :class:`Config`, or ``ConfigError``."""
    first = (sources or ["<config>"])[0]

    def where(dotted: str) -> str:
        return origins.get(dotted) or origins.get(dotted.rsplit(".", 1)[0]) or first

    def fail(dotted: str, problem: str) -> ConfigError:
        return ConfigError(f"{where(dotted)}: {dotted}: {problem}")

    def section(cls: type, table: Any, prefix: str) -> Any:
        if not isinstance(table, Mapping):
            raise fail(prefix.rstrip("."), f"must be a table, not {_tname(table)}")
        fields = {f.name: f for f in dataclasses.fields(cls) if "spec" in f.metadata}
        for name in table:
            if name not in fields:
                known = ", ".join(sorted(fields))
                raise fail(f"{prefix}{name}", f"unknown key (known keys: {known})")
        values = {}
        for name, f in fields.items():
            dotted = f"{prefix}{name}"
            if name in table:
                values[name] = value(spec_of(f), table[name], dotted)
            elif f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"{first}: {dotted}: required key is missing")
        return cls(**values)

    def value(spec: Spec, v: Any, dotted: str) -> Any:
        kind = spec.kind
        sub_cls: type = object
        if kind in ("section", "tables"):
            if spec.section is None:
                raise TypeError(f"{dotted}: a {kind} key declared without its section class")
            sub_cls = spec.section
        if kind == "section":
            return section(sub_cls, v, dotted + ".")
        if kind == "tables":
            if not isinstance(v, Mapping):
                raise fail(dotted, f"must be a table, not {_tname(v)}")
            out = {}
            for name, sub in v.items():
                if not NAME_RE.fullmatch(name):
                    raise fail(f"{dotted}.{name}", "not a valid zone name")
                out[name] = section(sub_cls, sub, f"{dotted}.{name}.")
            return MappingProxyType(out)
        if kind == "durations":
            if not isinstance(v, Mapping):
                raise fail(dotted, f"must be a table of name = duration, not {_tname(v)}")
            out = {}
            for name, d in v.items():
                if not NAME_RE.fullmatch(name):
                    raise fail(f"{dotted}.{name}", "not a valid purpose name")
                out[name] = value(Spec("duration", "", lo=0), d, f"{dotted}.{name}")
            return MappingProxyType(out)
        if kind == "bool":
            if not isinstance(v, bool):
                raise fail(dotted, f"must be true or false, not {_show(v)}")
            return v
        if kind == "str" or kind == "choice":
            if not isinstance(v, str):
                raise fail(dotted, f"must be a string, not {_show(v)}")
            if spec.nonempty and not v:
                raise fail(dotted, "must not be empty")
            if spec.choices and v not in spec.choices:
                raise fail(dotted, f"must be one of {', '.join(spec.choices)}, not {v!r}")
            if spec.pattern and v and not spec.pattern.fullmatch(v):
                raise fail(dotted, f"{v!r} is not valid (it must match {spec.pattern.pattern})")
            return v
        if kind == "path":
            if not isinstance(v, str) or not v:
                raise fail(dotted, f"must be a non-empty path string, not {_show(v)}")
            p = Path(v).expanduser()
            if not p.is_absolute():
                # Relative to the file that set it: a drop-in saying "trust" means its own folder.
                origin = Path(where(dotted))
                p = (origin.parent if origin.exists() else Path.cwd()) / p
            return p
        if kind == "duration":
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise fail(dotted, f'must be a duration like "30m" or seconds, not {_show(v)}')
            try:
                n = v if isinstance(v, int) else parse_duration(v)
            except ValueError as exc:
                raise fail(dotted, str(exc)) from None
            return _bounded(spec, n, dotted, fail)
        if kind == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise fail(dotted, f"must be a whole number, not {_show(v)}")
            if spec.values and v not in spec.values:
                raise fail(dotted, f"must be {' or '.join(map(str, spec.values))}, not {v}")
            return _bounded(spec, v, dotted, fail)
        if kind == "size":
            if (
                not isinstance(v, list)
                or len(v) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in v)
            ):
                raise fail(dotted, f"must be [width, height] in pixels, not {_show(v)}")
            if not all(16 <= n <= 8192 and n % 2 == 0 for n in v):
                raise fail(dotted, f"width and height must be even numbers 16-8192, not {v}")
            return (v[0], v[1])
        if kind == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise fail(dotted, f"must be a number, not {_show(v)}")
            return _bounded(spec, float(v), dotted, fail)
        raise AssertionError(f"schema kind {kind!r}")

    for name in data:
        if name not in SECTIONS:
            raise fail(name, f"unknown section (known sections: {', '.join(SECTIONS)})")
    if "checkpoint" not in data:
        raise ConfigError(f"{first}: checkpoint.zone: required key is missing")
    cfg = section(Config, data, "")
    cfg = _derive(cfg)
    _cross_checks(cfg, fail)
    return dataclasses.replace(cfg, sources=tuple(sources or ()))


def _bounded(spec: Spec, n: float, dotted: str, fail) -> float:
    if spec.lo is not None and n < spec.lo:
        raise fail(dotted, f"{_num(n, spec)} is below the minimum {_num(spec.lo, spec)}")
    if spec.hi is not None and n > spec.hi:
        raise fail(dotted, f"{_num(n, spec)} is above the maximum {_num(spec.hi, spec)}")
    return n


def _num(n: float, spec: Spec) -> str:
    return hex(int(n)) if spec.hex else f"{n:g}"


def _derive(cfg: Config) -> Config:
    """Fill path defaults that live inside ``state_dir``, and the device id from the host name."""
    state = cfg.checkpoint.state_dir
    changes = {}
    for sec_name in SECTIONS:
        sec = getattr(cfg, sec_name)
        upd = {}
        for f in dataclasses.fields(sec):
            spec = f.metadata.get("spec")
            if spec and spec.derive and getattr(sec, f.name) is None:
                upd[f.name] = state / spec.derive
        if sec_name == "checkpoint" and not sec.device_id:
            upd["device_id"] = _hostname()
        if upd:
            changes[sec_name] = dataclasses.replace(sec, **upd)
    return dataclasses.replace(cfg, **changes)


def _hostname() -> str:
    name = socket.gethostname().split(".")[0].lower() or "passgate"
    name = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "-" for c in name)[:64]
    return name if name[0].isalnum() else "passgate"


def _cross_checks(cfg: Config, fail) -> None:
    s = cfg.signals
    pins: dict[int, str] = {}
    for name in ("buzzer_pin", "green_pin", "red_pin", "relay_pin"):
        pin = getattr(s, name)
        if pin in pins:
            raise fail(f"signals.{name}", f"GPIO{pin} is already used by signals.{pins[pin]}")
        pins[pin] = name
    if cfg.camera.source == "files" and cfg.camera.path is None:
        raise fail(
            "camera.source", "the files source needs camera.path (a folder of images or a video)"
        )
    verdict, relay = cfg.display.verdict_hold_s, s.relay_hold_s
    if verdict < relay:
        # The accept screen would give way to "show your pass" while the door is still
        # released: the next person steps up to a door that closes on them.
        why = "the screen would invite the next person while the door is still released"
        if verdict != DisplaySection.verdict_hold_s:
            raise fail(
                "display.verdict_hold_s",
                f"{verdict:g} s is shorter than signals.relay_hold_s ({relay:g} s): {why}; "
                "make it at least as long",
            )
        raise fail(
            "signals.relay_hold_s",
            f"{relay:g} s is longer than display.verdict_hold_s ({verdict:g} s): {why}; "
            f"set display.verdict_hold_s to at least {relay:g}",
        )
    if cfg.display.png_dir is not None and cfg.display.driver != "dummy":
        raise fail("display.png_dir", "only the dummy driver writes PNG files")
    ap = cfg.antipassback
    windows = [("antipassback.window", ap.window)]
    windows += [(f"antipassback.purposes.{p}", w) for p, w in ap.purposes.items()]
    for z, zw in ap.zones.items():
        windows += [(f"antipassback.zones.{z}.window", zw.window or 0)]
        windows += [(f"antipassback.zones.{z}.purposes.{p}", w) for p, w in zw.purposes.items()]
    where_, longest = max(windows, key=lambda kv: kv[1])
    if longest > cfg.journal.retention:
        raise fail(
            where_,
            f"{format_duration(longest)} is longer than journal.retention "
            f"({format_duration(cfg.journal.retention)}); anti-passback reads accepted "
            "rows from the journal, so keep them at least as long",
        )
    _component_checks(cfg, fail)


def _component_checks(cfg: Config, fail) -> None:
    """Run the checks the hardware adapters' own config classes make (cross-field rules such
    as lores_size <= main_size), so they fail here, naming the file, not at start-up."""
    from passgate.hardware.camera.picam import CameraConfig
    from passgate.hardware.display.device import DisplayConfig
    from passgate.hardware.signals.gpio import SignalsConfig

    for section, cls in (
        ("camera", CameraConfig),
        ("display", DisplayConfig),
        ("signals", SignalsConfig),
    ):
        sec = getattr(cfg, section)
        names = [f.name for f in dataclasses.fields(cls) if hasattr(sec, f.name)]
        try:
            cls(**{n: getattr(sec, n) for n in names})
        except ConfigError as exc:
            name, _, problem = str(exc).partition(": ")
            name = name.removeprefix(f"{section}.")
            raise fail(f"{section}.{name}", problem or str(exc)) from None


def _tname(v: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), type(v).__name__
    )


def _show(v: Any) -> str:
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, list):
        return "a list"
    return repr(v) if not isinstance(v, bool) else str(v).lower()


# --- dump -------------------------------------------------------------------------------------


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


def dump_toml(cfg: Config) -> str:
    """The effective config as TOML that :func:`load_config` reads back to an equal Config."""
    lines = ["# passgate effective configuration"]
    lines += [f"# read from: {s}" for s in cfg.sources] or ["# (defaults)"]
    for sec_name in SECTIONS:
        lines += _dump_section(sec_name, getattr(cfg, sec_name))
    return "\n".join(lines) + "\n"


def _dump_section(header: str, sec: Any) -> list[str]:
    lines = ["", f"[{header}]"]
    tables = []
    for f in dataclasses.fields(sec):
        spec: Spec = f.metadata["spec"]
        v = getattr(sec, f.name)
        if spec.kind == "tables":
            for name, sub in v.items():
                tables += _dump_section(f"{header}.{f.name}.{_key(name)}", sub)
            continue
        if v is None:
            lines.append(f"# {f.name} (not set): {spec.doc}")
            continue
        lines.append(f"{f.name} = {_toml_value(spec, v)}  # {spec.doc}")
    return lines + tables


def _toml_value(spec: Spec, v: Any) -> str:
    if spec.kind == "durations":
        inner = ", ".join(f'{_key(k)} = "{format_duration(d)}"' for k, d in v.items())
        return "{ " + inner + " }" if inner else "{}"
    if spec.kind == "duration":
        return f'"{format_duration(v)}"'
    if spec.kind == "size":
        return f"[{v[0]}, {v[1]}]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if spec.hex:
        return f"0x{v:02X}"
    if isinstance(v, (int, float)):
        return repr(v)
    return _toml_str(str(v))


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else _toml_str(name)


def _toml_str(s: str) -> str:
    esc = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in esc) + '"'
