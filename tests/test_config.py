"""Config: TOML layering, the one validation function, error messages, the dump round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from passgate.config.load import ConfigError, dump_toml, format_duration, from_dict, load_config
from passgate.errors import PassgateError

EXAMPLE = Path(__file__).resolve().parents[1] / "firmware/passgate/data/passgate.example.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def main(tmp_path: Path) -> Path:
    return write(
        tmp_path / "passgate.toml", '[checkpoint]\nzone = "gate-1"\nstate_dir = "/srv/pg"\n'
    )


def test_minimal_file_gets_defaults_and_derived_paths(main: Path):
    cfg = load_config(main)
    assert cfg.checkpoint.zone == "gate-1"
    assert cfg.checkpoint.device_id  # the host name
    assert cfg.journal.path == Path("/srv/pg/journal.sqlite")
    assert cfg.journal.hash_key_file == Path("/srv/pg/journal.key")
    assert cfg.trust.bundle_dir == Path("/srv/pg/bundle")
    assert cfg.display.i2c_address == 0x3C
    assert cfg.signals.relay_active_high is False
    assert cfg.antipassback.window == 1800
    assert cfg.sources == (str(main),)


def test_dropins_override_in_name_order_and_tables_merge(main: Path):
    d = main.parent / "passgate.d"
    write(d / "20-late.toml", '[display]\ndriver = "dummy"\n')
    write(d / "10-early.toml", '[display]\ndriver = "sh1106"\ni2c_address = 0x3D\n')
    write(d / "ignored.txt", '[display]\ndriver = "none"\n')
    cfg = load_config(main)
    assert cfg.display.driver == "dummy"  # 20 after 10
    assert cfg.display.i2c_address == 0x3D  # kept from 10: only single keys are replaced
    assert cfg.checkpoint.zone == "gate-1"
    assert [Path(s).name for s in cfg.sources] == ["passgate.toml", "10-early.toml", "20-late.toml"]


@pytest.mark.parametrize(
    "body, key, problem",
    [
        (
            '[display]\ndriver = "ssd1309"',
            "display.driver",
            "must be one of ssd1306, sh1106, dummy, none",
        ),
        ("[display]\ni2c_address = 0x80", "display.i2c_address", "0x80 is above the maximum 0x77"),
        ('[display]\ni2c_port = "1"', "display.i2c_port", "must be a whole number, not '1'"),
        ("[display]\nverdict_hold_s = 0", "display.verdict_hold_s", "below the minimum 0.5"),
        ('[checkpoint]\nzone = ""', "checkpoint.zone", "must not be empty"),
        (
            "[display]\nverdict_hold_s = 2.5",
            "display.verdict_hold_s",
            "2.5 s is shorter than signals.relay_hold_s (3 s)",
        ),
        (
            "[signals]\nrelay_hold_s = 5",
            "signals.relay_hold_s",
            "5 s is longer than display.verdict_hold_s (3 s)",
        ),
        ("[signals]\nrelay_active_high = 1", "signals.relay_active_high", "must be true or false"),
        ("[signals]\nrelay_pin = 40", "signals.relay_pin", "above the maximum 27"),
        (
            "[signals]\ngreen_pin = 23",
            "signals.relay_pin",
            "GPIO23 is already used by signals.green_pin",
        ),
        ('[antipassback]\nwindow = "soon"', "antipassback.window", "is not a duration"),
        (
            '[antipassback]\npurposes = { "bad name!" = "1h" }',
            "antipassback.purposes.bad name!",
            "not a valid",
        ),
        (
            '[antipassback.zones.lobby]\nwindw = "1h"',
            "antipassback.zones.lobby.windw",
            "unknown key",
        ),
        ('[camera]\nsource = "files"', "camera.source", "needs camera.path"),
        ("[camera]\nfps = nan", "camera.fps", "must be a number"),
        (
            "[camera]\nresolution = 720",
            "camera.resolution",
            "unknown key (known keys: ae_mode, af_on_candidate, af_range",
        ),
        ("[cameras]\nwidth = 640", "cameras", "unknown section"),
        ("[journal]\npath = 3", "journal.path", "must be a non-empty path string"),
        ('[journal]\nretention = "1m"', "journal.retention", "60 is below the minimum 3600"),
        (
            '[clock]\nuntrusted_policy = "allow"',
            "clock.untrusted_policy",
            "must be one of deny, flag",
        ),
        ('display = "ssd1306"', "display", "must be a table"),
        ("[display]\nrotate = 1", "display.rotate", "must be 0 or 2, not 1"),
        ('[antipassback]\nwindow = "60d"', "antipassback.window", "longer than journal.retention"),
        ("[signals]\nred_pin = 3", "signals.red_pin", "below the minimum 4"),
        ("[camera]\nlores_size = [640]", "camera.lores_size", "must be [width, height]"),
        ("[camera]\nlores_size = [641, 480]", "camera.lores_size", "must be even"),
        ("[camera]\nlores_size = [2000, 480]", "camera.lores_size", "must not exceed main_size"),
        ("[camera]\nexposure_time_us = 100000", "camera.exposure_time_us", "longer than a frame"),
    ],
)
def test_bad_values_name_file_key_and_problem(main: Path, body: str, key: str, problem: str):
    bad = write(main.parent / "passgate.d" / "50-site.toml", body + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(main)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: {key}: "), msg
    assert problem in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, PassgateError)


def test_error_names_the_file_that_set_the_value_not_the_last_file(main: Path):
    write(main.parent / "passgate.d" / "10.toml", "[signals]\nred_pin = 99\n")
    write(main.parent / "passgate.d" / "20.toml", '[display]\ndriver = "dummy"\n')
    with pytest.raises(ConfigError, match=r"10\.toml: signals\.red_pin: 99 is above"):
        load_config(main)


def test_missing_zone_missing_file_and_broken_toml(tmp_path: Path):
    f = write(tmp_path / "a.toml", '[display]\ndriver = "dummy"\n')
    with pytest.raises(ConfigError, match=r"a\.toml: checkpoint\.zone: required key is missing"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_config(tmp_path / "nope.toml")
    g = write(tmp_path / "b.toml", "[checkpoint\nzone = 1\n")
    with pytest.raises(ConfigError, match=r"b\.toml: not valid TOML"):
        load_config(g)
    h = write(tmp_path / "c.toml", '[checkpoint]\nzone = "not a zone"\n')
    with pytest.raises(
        ConfigError, match=r"c\.toml: checkpoint\.zone: 'not a zone' is not valid \(it must match"
    ):
        load_config(h)


def test_relative_paths_resolve_beside_the_file_that_set_them(tmp_path: Path):
    f = write(tmp_path / "etc/passgate.toml", '[checkpoint]\nzone = "z"\nstate_dir = "state"\n')
    write(tmp_path / "etc/passgate.d/trust.toml", '[trust]\nsource = "dir"\ndir = "keys"\n')
    cfg = load_config(f)
    assert cfg.checkpoint.state_dir == tmp_path / "etc/state"
    assert cfg.trust.dir == tmp_path / "etc/passgate.d/keys"


def test_antipassback_window_most_specific_wins():
    cfg = from_dict(
        {
            "checkpoint": {"zone": "gate-1"},
            "antipassback": {
                "window": "30m",
                "purposes": {"work": "0", "shopping": "2h"},
                "zones": {"lobby": {"window": "5m", "purposes": {"dog_walk": 90}}},
            },
        }
    )
    ap = cfg.antipassback
    assert ap.window_for("gate-1", "trash") == 1800
    assert ap.window_for("gate-1", "work") == 0
    assert ap.window_for("gate-1", "shopping") == 7200
    assert ap.window_for("lobby", "dog_walk") == 90
    assert ap.window_for("lobby", "shopping") == 300  # the zone's own window beats a global purpose


def test_dump_reads_back_to_the_same_config(main: Path, tmp_path: Path):
    write(
        main.parent / "passgate.d/10.toml",
        """
[display]
driver = "dummy"
png_dir = "/tmp/oled"
i2c_address = 0x3D
[antipassback]
window = "1h30m"
purposes = { work = "10m" }
[antipassback.zones."gate.b"]
window = 45
[trust]
max_offline_age = "3d"
""",
    )
    cfg = load_config(main)
    text = dump_toml(cfg)
    assert "i2c_address = 0x3D" in text and 'window = "1h30m"' in text
    again = load_config(files=[write(tmp_path / "dumped.toml", text)])
    assert again == cfg


def test_format_duration():
    assert [format_duration(s) for s in (0, 59, 60, 5400, 86400 * 7, 90061)] == [
        "0",
        "59s",
        "1m",
        "1h30m",
        "7d",
        "1d1h1m1s",
    ]


def test_example_file_is_valid_and_documents_every_key():
    cfg = load_config(files=[EXAMPLE])
    assert cfg.checkpoint.zone
    text = EXAMPLE.read_text()
    doc = (EXAMPLE.parents[3] / "docs/configuration.md").read_text()
    import dataclasses

    from passgate.config.schema import SECTIONS

    for sec in SECTIONS:
        for f in dataclasses.fields(getattr(cfg, sec)):
            assert f"{f.name}" in text, f"example lacks {sec}.{f.name}"
            assert f"`{f.name}`" in doc, f"docs/configuration.md lacks {sec}.{f.name}"


def test_clock_settings_reach_the_clock(main: Path):
    from passgate.clock.clock import ClockConfig
    from passgate.config.schema import ClockSection

    assert ClockConfig.from_section(ClockSection()) == ClockConfig()  # the defaults agree
    write(
        main.parent / "passgate.d" / "50-rtc.toml",
        '[clock]\ntrust_timesyncd = false\ntrust_rtc = true\nrtc_device = "rtc1"\n'
        'token_trust = "2h"\n',
    )
    clock = ClockConfig.from_section(load_config(main).clock)
    assert (clock.trust_timesyncd, clock.trust_rtc, clock.rtc_device, clock.token_trust_s) == (
        False,
        True,
        "rtc1",
        7200.0,
    )
    write(main.parent / "passgate.d" / "60-bad.toml", '[clock]\nrtc_device = "/dev/rtc1"\n')
    with pytest.raises(ConfigError, match="clock.rtc_device"):
        load_config(main)


def test_checkpoint_site_is_optional_and_checked(main: Path):
    assert load_config(main).checkpoint.site == ""
    write(main.parent / "passgate.d" / "50-site.toml", '[checkpoint]\nsite = "hq"\n')
    assert load_config(main).checkpoint.site == "hq"
    write(main.parent / "passgate.d" / "60-bad.toml", '[checkpoint]\nsite = "h q"\n')
    with pytest.raises(ConfigError, match="checkpoint.site"):
        load_config(main)


CLI = [sys.executable, "-c", "import sys; from passgate.cli import main; sys.exit(main())"]


def test_cli_config_dump_and_exit_2(main: Path, tmp_path: Path):
    ok = subprocess.run(
        [*CLI, "config", "--dump", "--config", str(main)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert 'zone = "gate-1"' in ok.stdout
    bad = write(tmp_path / "bad.toml", '[checkpoint]\nzone = "z"\n[display]\ndriver = 5\n')
    for cmd in (["config", "--dump"], ["run"]):
        r = subprocess.run(
            [*CLI, *cmd, "--config", str(bad)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 2
        assert r.stderr.strip().splitlines() == [
            f"passgate: error: {bad}: display.driver: must be a string, not 5"
        ]
