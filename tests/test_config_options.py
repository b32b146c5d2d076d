"""Config options: every validator with good and bad values, each key declared once, beside
its adapter, and documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import MappingProxyType

import pytest

from passgate.config import schema
from passgate.config.load import dump_toml, from_dict
from passgate.errors import ConfigError
from passgate.hardware.camera.picam import CameraConfig
from passgate.hardware.display.device import DisplayConfig
from passgate.hardware.signals.gpio import SignalsConfig
from passgate.options.declare import check, option, options_of
from passgate.options.validators import (
    NAME_RE,
    BadValue,
    unique_gpio_pins,
    valid_bool,
    valid_choice,
    valid_duration,
    valid_durations_table,
    valid_float_range,
    valid_gpio_pin,
    valid_i2c_address,
    valid_int_choice,
    valid_int_range,
    valid_path,
    valid_size,
    valid_string,
)

DOCS = Path(__file__).resolve().parents[1] / "docs/configuration.md"

GOOD = [
    (valid_bool, True, True),
    (valid_bool, False, False),
    (valid_int_range(0, 7), 0, 0),
    (valid_int_range(0, 7), 7, 7),
    (valid_int_range(None, None), -5, -5),
    (valid_int_choice(0, 2), 2, 2),
    (valid_float_range(1, 120), 15, 15.0),
    (valid_float_range(-8, 8), -1.5, -1.5),
    (valid_choice("deny", "flag"), "flag", "flag"),
    (valid_string(NAME_RE), "gate-1", "gate-1"),
    (valid_string(NAME_RE), "", ""),  # empty is "not set" unless nonempty=True
    (valid_path, "/srv/pg", Path("/srv/pg")),
    (valid_path, Path("rel/dir"), Path("rel/dir")),  # relative stays: the loader resolves it
    (valid_duration(0, None), "1h30m", 5400),
    (valid_duration(0, None), 90, 90),
    (valid_duration(60, 120), "2m", 120),
    (valid_durations_table, {"work": "10m", "a.b": 5}, MappingProxyType({"work": 600, "a.b": 5})),
    (valid_size, [640, 480], (640, 480)),
    (valid_size, (16, 8192), (16, 8192)),
    (valid_gpio_pin, 4, 4),
    (valid_gpio_pin, 27, 27),
    (valid_i2c_address, 0x3C, 0x3C),
    (valid_i2c_address, 0x77, 0x77),
]


@pytest.mark.parametrize(("validator", "value", "stored"), GOOD)
def test_a_good_value_is_stored_converted_and_checks_again_unchanged(validator, value, stored):
    out = validator(value)
    assert out == stored and type(out) is type(stored)
    assert validator(out) == out  # a config class re-checks what the loader stored


BAD = [
    (valid_bool, 1, "must be true or false, not 1"),
    (valid_bool, "yes", "must be true or false, not 'yes'"),
    (valid_int_range(0, 7), True, "must be a whole number, not true"),
    (valid_int_range(0, 7), 1.0, "must be a whole number, not 1.0"),
    (valid_int_range(0, 7), "1", "must be a whole number, not '1'"),
    (valid_int_range(0, 7), 8, "8 is above the maximum 7"),
    (valid_int_range(0, 7), -1, "-1 is below the minimum 0"),
    (valid_int_choice(0, 2), 1, "must be 0 or 2, not 1"),
    (valid_int_choice(0, 2), "0", "must be a whole number, not '0'"),
    (valid_float_range(1, 120), float("nan"), "must be a number, not nan"),
    (valid_float_range(1, 120), float("inf"), "must be a number, not inf"),
    (valid_float_range(1, 120), True, "must be a number, not true"),
    (valid_float_range(1, 120), [15], "must be a number, not a list"),
    (valid_float_range(0.5, 60), 0, "0 is below the minimum 0.5"),
    (valid_float_range(0.5, 60), 60.5, "60.5 is above the maximum 60"),
    (valid_choice("deny", "flag"), "allow", "must be one of deny, flag, not 'allow'"),
    (valid_choice("deny", "flag"), 5, "must be a string, not 5"),
    (valid_string(NAME_RE, nonempty=True), "", "must not be empty"),
    (valid_string(NAME_RE), "a b", "'a b' is not valid (it must match"),
    (valid_string(), {"a": 1}, "must be a string, not a table"),
    (valid_path, "", "must be a non-empty path string, not ''"),
    (valid_path, 3, "must be a non-empty path string, not 3"),
    (valid_duration(0, None), "soon", "'soon' is not a duration like 3h"),
    (valid_duration(0, None), 1.5, 'must be a duration like "30m" or seconds, not 1.5'),
    (valid_duration(0, None), True, 'must be a duration like "30m" or seconds, not true'),
    (valid_duration(3600, None), "1m", "60 is below the minimum 3600"),
    (valid_duration(0, 86400), "2d", "172800 is above the maximum 86400"),
    (valid_durations_table, "1h", "must be a table of name = duration, not a string"),
    (valid_size, [640], "must be [width, height] in pixels, not a list"),
    (valid_size, [640, 480.0], "must be [width, height] in pixels, not a list"),
    (valid_size, [641, 480], "width and height must be even numbers 16-8192, not [641, 480]"),
    (valid_size, [8, 8], "width and height must be even numbers 16-8192"),
    (valid_gpio_pin, 3, "3 is below the minimum 4: BCM pin 4-27 expected (2 and 3 are the OLED"),
    (valid_gpio_pin, 28, "28 is above the maximum 27: BCM pin 4-27 expected"),
    (valid_gpio_pin, "17", "must be a whole number, not '17'"),
    (valid_gpio_pin, True, "must be a whole number, not true"),
    (valid_i2c_address, 0x80, "0x80 is above the maximum 0x77"),
    (valid_i2c_address, 0x02, "0x2 is below the minimum 0x3"),
    (valid_i2c_address, "0x3C", "must be a whole number, not '0x3C'"),
]


@pytest.mark.parametrize(("validator", "value", "problem"), BAD)
def test_a_bad_value_raises_config_error_saying_what_is_wrong(validator, value, problem):
    with pytest.raises(ConfigError) as info:
        validator(value)
    assert str(info.value).startswith(problem), str(info.value)


def test_a_bad_entry_in_a_durations_table_is_named():
    with pytest.raises(BadValue) as info:
        valid_durations_table({"work": "10m", "bad name!": "1h"})
    assert (info.value.name, info.value.problem) == ("bad name!", "not a valid purpose name")
    with pytest.raises(BadValue) as info:
        valid_durations_table({"work": "soon"})
    assert info.value.name == "work" and "is not a duration" in info.value.problem


def test_pin_uniqueness_names_the_later_key_and_skips_outputs_not_fitted():
    unique_gpio_pins({"buzzer_pin": None, "green_pin": 27, "red_pin": None, "relay_pin": 23})
    with pytest.raises(BadValue) as info:
        unique_gpio_pins({"buzzer_pin": 17, "green_pin": 23, "red_pin": 22, "relay_pin": 23})
    assert (info.value.name, info.value.problem) == (
        "relay_pin",
        "GPIO23 is already used by signals.green_pin",
    )


def test_check_converts_fields_in_place_and_prefixes_errors():
    @dataclasses.dataclass(frozen=True)
    class Part:
        size: tuple = option((16, 16), valid_size, "a size")
        auto: int | None = option(None, valid_int_range(1, 9), "None is never checked")
        not_an_option: str = "left alone"

        def __post_init__(self) -> None:
            check(self, "part.")

    assert Part(size=[32, 48]).size == (32, 48)
    assert Part().auto is None
    with pytest.raises(BadValue, match=r"^part\.auto: 0 is below the minimum 1$"):
        Part(auto=0)
    assert list(options_of(Part)) == ["size", "auto"]


# --- each key declared once, beside its adapter ------------------------------------------


def test_the_hardware_sections_are_the_adapters_config_classes():
    cfg = from_dict(
        {
            "checkpoint": {"zone": "z"},
            "signals": {"buzzer_pin": 18, "buzzer_tonal": True, "green_pin": 5, "red_pin": 6},
            "camera": {"fps": 20, "lores_size": [320, 240]},
            "display": {"driver": "dummy"},
        }
    )
    assert type(cfg.camera) is CameraConfig and cfg.camera.lores_size == (320, 240)
    assert type(cfg.display) is DisplayConfig and cfg.display.driver == "dummy"
    assert type(cfg.signals) is SignalsConfig
    assert (cfg.signals.buzzer_pin, cfg.signals.green_pin, cfg.signals.buzzer_tonal) == (
        18,
        5,
        True,
    )
    assert cfg.signals.deny_s == SignalsConfig().deny_s  # keys not written keep the default
    assert schema.CameraSection is CameraConfig
    assert schema.DisplaySection is DisplayConfig
    assert schema.SignalsSection is SignalsConfig


def all_sections():
    """Every config class with declared keys, nested ones (``[antipassback.zones.NAME]``)
    included, with the top-level section that documents it."""
    out = []
    for name, (_, opt) in options_of(schema.Config).items():
        out.append((name, opt.section))
        out += [(name, sub.section) for _, sub in options_of(opt.section).values() if sub.section]
    return out


@pytest.mark.parametrize(("name", "cls"), all_sections(), ids=lambda v: getattr(v, "__name__", ""))
def test_every_key_has_a_validator_a_one_line_doc_and_a_default_it_accepts(name, cls):
    for key, (_, opt) in options_of(cls).items():
        assert opt.doc and "\n" not in opt.doc, f"{name}.{key}: one-line description"
        if opt.section is None:
            assert callable(opt.validator), f"{name}.{key}: no validator"
    if name != "checkpoint":  # zone is required: it has no default
        cls()  # the defaults pass the validators (check runs in __post_init__ where declared)


def test_every_declared_key_is_documented_in_its_section_of_configuration_md():
    doc = DOCS.read_text()
    for name, cls in all_sections():
        header = f"### `[{name}]`"
        part = doc.split(header, 1)
        assert len(part) == 2, f"docs/configuration.md has no {header}"
        table = part[1].split("\n### ", 1)[0]
        rows = set(re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M))
        assert set(options_of(cls)) <= rows, (name, set(options_of(cls)) - rows)


def test_a_path_left_unset_is_derived_inside_state_dir_and_dumped():
    cfg = from_dict({"checkpoint": {"zone": "z", "device_id": "d"}})
    assert cfg.journal.path == cfg.checkpoint.state_dir / "journal.sqlite"
    assert 'path = "/var/lib/passgate/journal.sqlite"' in dump_toml(cfg)
