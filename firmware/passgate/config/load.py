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
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from passgate.config.schema import NAME_RE, SECTIONS, Config, DisplayConfig
from passgate.errors import BadValue, ConfigError
from passgate.options.declare import (
    Option,
    format_duration,
    is_required,
    options_of,
    run,
    toml_key,
    toml_value,
)
from passgate.options.validators import type_name

DEFAULT_PATH = Path("/etc/passgate/passgate.toml")
DROPIN_DIR = "passgate.d"

Fail = Callable[[str, str], ConfigError]  # (dotted key, problem) -> the error to raise

__all__ = [
    "Config",
    "ConfigError",
    "load_config",
    "config_files",
    "validate",
    "dump_toml",
    "format_duration",
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
    """The one validation function: the merged TOML tree -> :class:`Config`, or ``ConfigError``.

    One walk over the declared options (:func:`_section`), then the rules that relate keys of
    different sections (:func:`_cross_checks`)."""
    first = (sources or ["<config>"])[0]

    def where(dotted: str) -> str:
        return origins.get(dotted) or origins.get(dotted.rsplit(".", 1)[0]) or first

    def fail(dotted: str, problem: str) -> ConfigError:
        return ConfigError(f"{where(dotted)}: {dotted}: {problem}")

    for name in data:
        if name not in SECTIONS:
            raise fail(name, f"unknown section (known sections: {', '.join(SECTIONS)})")
    if "checkpoint" not in data:
        raise ConfigError(f"{first}: checkpoint.zone: required key is missing")
    cfg = _Walk(where, fail, first).section(Config, data, "")
    cfg = _derive(cfg)
    _cross_checks(cfg, fail)
    return dataclasses.replace(
        cfg, sources=tuple(sources or ()), origins=MappingProxyType(dict(origins))
    )


class _Walk:
    """Checks a TOML tree against the declared options of a config class, key by key."""

    def __init__(self, where: Callable[[str], str], fail: Fail, first: str) -> None:
        self.where, self.fail, self.first = where, fail, first

    def section(self, cls: type, table: Any, prefix: str) -> Any:
        if not isinstance(table, Mapping):
            raise self.fail(prefix, f"must be a table, not {type_name(table)}")
        declared = options_of(cls)
        dot = f"{prefix}." if prefix else ""
        for name in table:
            if name not in declared:
                known = ", ".join(sorted(declared))
                raise self.fail(f"{dot}{name}", f"unknown key (known keys: {known})")
        values = {}
        for name, (f, opt) in declared.items():
            if name in table:
                values[name] = self.value(opt, table[name], f"{dot}{name}")
            elif is_required(f):
                raise ConfigError(f"{self.first}: {dot}{name}: required key is missing")
        try:
            return cls(**values)  # the class's own cross-field rules (lores_size <= main_size)
        except BadValue as exc:
            raise self.fail(f"{dot}{exc.name}", exc.problem) from None

    def value(self, opt: Option, v: Any, dotted: str) -> Any:
        if opt.section is not None and not opt.tables:
            return self.section(opt.section, v, dotted)
        if opt.section is not None:
            if not isinstance(v, Mapping):
                raise self.fail(dotted, f"must be a table, not {type_name(v)}")
            for name in v:
                if not NAME_RE.fullmatch(name):
                    raise self.fail(f"{dotted}.{name}", "not a valid zone name")
            zones = {
                name: self.section(opt.section, sub, f"{dotted}.{name}") for name, sub in v.items()
            }
            return MappingProxyType(zones)
        assert opt.validator is not None
        parent, _, name = dotted.rpartition(".")
        try:
            out = run(opt.validator, name, v)
        except BadValue as exc:
            raise self.fail(f"{parent}.{exc.name}" if parent else exc.name, exc.problem) from None
        if isinstance(out, Path) and not out.is_absolute():
            # Relative to the file that set it: a drop-in saying "trust" means its own folder.
            origin = Path(self.where(dotted))
            out = (origin.parent if origin.exists() else Path.cwd()) / out
        return out


def _derive(cfg: Config) -> Config:
    """Fill path defaults that live inside ``state_dir``, and the device id from the host name."""
    state = cfg.checkpoint.state_dir
    changes = {}
    for sec_name in SECTIONS:
        sec = getattr(cfg, sec_name)
        upd: dict[str, Any] = {
            name: state / opt.derive
            for name, (_, opt) in options_of(sec).items()
            if opt.derive and getattr(sec, name) is None
        }
        if sec_name == "checkpoint" and not sec.device_id:
            upd["device_id"] = _hostname()
        if upd:
            changes[sec_name] = dataclasses.replace(sec, **upd)
    return dataclasses.replace(cfg, **changes)


def _hostname() -> str:
    name = socket.gethostname().split(".")[0].lower() or "passgate"
    name = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "-" for c in name)[:64]
    return name if name[0].isalnum() else "passgate"


def _cross_checks(cfg: Config, fail: Fail) -> None:
    """The rules between sections; rules inside one section live in its class."""
    verdict, relay = cfg.display.verdict_hold_s, cfg.signals.relay_hold_s
    if verdict < relay:
        # The accept screen would give way to "show your pass" while the door is still
        # released: the next person steps up to a door that closes on them.
        why = "the screen would invite the next person while the door is still released"
        if verdict != _default(DisplayConfig, "verdict_hold_s"):
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


def _default(cls: type, name: str) -> Any:
    return options_of(cls)[name][0].default


# --- dump -------------------------------------------------------------------------------------


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
    for name, (_, opt) in options_of(sec).items():
        v = getattr(sec, name)
        if opt.tables:
            for sub_name, sub in v.items():
                tables += _dump_section(f"{header}.{name}.{toml_key(sub_name)}", sub)
            continue
        if v is None:
            lines.append(f"# {name} (not set): {opt.doc}")
            continue
        lines.append(f"{name} = {toml_value(opt, v)}  # {opt.doc}")
    return lines + tables
