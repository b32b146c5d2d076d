"""``passgate config`` refuses what ``passgate run`` refuses, in the same words (issue 10
point 3).

Rules: every check ``run`` makes at start-up lives in one function,
:func:`passgate.checkpoint.wiring.preflight`, which both commands call; each refusal is one
line, exit 2, naming the file that set the key (a drop-in when a drop-in set it; for a path
derived inside the state folder, the file that set ``checkpoint.state_dir``), the key and
the path. A good config is accepted by both. Both commands run through the real command
line, GPIO on gpiozero's MockFactory, the OLED on luma's dummy device.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from passgate.checkpoint import simulate
from passgate.cli import main

# name -> (what to break, in the folder (tmp, state, config); the expected error after
# "passgate: error: ", with {cfg}, {dropin}, {state}, {tmp} filled in)
BROKEN = {
    "trust folder missing": (
        lambda t, s, c: _set(c, "dir", f'"{t / "nowhere"}"'),
        "{cfg}: trust.dir: {tmp}/nowhere: trust folder does not exist",
    ),
    "trust folder without keys": (
        lambda t, s, c: [p.unlink() for p in (s / "trust").glob("*.pub")],
        "{cfg}: trust.dir: {state}/trust: no issuer public keys (*.pub) in the trust folder",
    ),
    "trust folder set by a drop-in": (
        lambda t, s, c: _dropin(c, f'[trust]\ndir = "{t / "gone"}"\n'),
        "{dropin}: trust.dir: {tmp}/gone: trust folder does not exist",
    ),
    "state folder missing": (
        lambda t, s, c: _set(c, "state_dir", f'"{t / "nostate"}"'),
        "{cfg}: checkpoint.state_dir: {tmp}/nostate: no such folder "
        "(journal.hash_key_file journal.key is read from it)",
    ),
    "state folder is a file": (
        lambda t, s, c: (
            (t / "afile").write_text("x"),
            _set(c, "state_dir", f'"{t / "afile"}"'),
        ),
        "{cfg}: checkpoint.state_dir: {tmp}/afile: a file, not a folder "
        "(journal.hash_key_file journal.key is read from it)",
    ),
    "hash key missing": (
        lambda t, s, c: (s / "journal.key").unlink(),
        "{cfg}: journal.hash_key_file: {state}/journal.key: not found "
        "(provisioning writes it: passgate provision)",
    ),
    "hash key elsewhere, missing, set by a drop-in": (
        lambda t, s, c: _dropin(c, f'[journal]\nhash_key_file = "{t / "keys" / "j.key"}"\n'),
        "{dropin}: journal.hash_key_file: {tmp}/keys/j.key: not found "
        "(provisioning writes it: passgate provision)",
    ),
    # issue 16 review: a holder_binding naming no purpose would silently require nothing
    "holder_binding names no purpose of the trust folder": (
        lambda t, s, c: _dropin(c, '[trust]\nholder_binding = ["Work"]\n'),
        "{dropin}: trust.holder_binding: unknown purpose 'Work' (not in {state}/trust's "
        "purposes): it would require no live code",
    ),
    "hash key is a folder": (
        lambda t, s, c: _dropin(c, f'[journal]\nhash_key_file = "{t}"\n'),
        "{dropin}: journal.hash_key_file: {tmp}: cannot read: Is a directory",
    ),
}


def _set(config: Path, key: str, value: str) -> None:
    lines = config.read_text().splitlines()
    hit = [i for i, ln in enumerate(lines) if ln.startswith(f"{key} = ")]
    assert len(hit) == 1, (key, lines)
    lines[hit[0]] = f"{key} = {value}"
    config.write_text("\n".join(lines) + "\n")


def _dropin(config: Path, text: str) -> None:
    d = config.parent / "passgate.d"
    d.mkdir(exist_ok=True)
    (d / "50-site.toml").write_text(text)


@pytest.fixture
def device(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A laptop 'device' whose config passes every check: the simulation's state folder
    (trust folder, hash key), one blank frame (the files source ends after it), a config."""
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    state = tmp_path / "state"
    simulate.prepare(state, 1_767_225_600)
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("L", (64, 48), 200).save(frames / "a.png")
    config = tmp_path / "etc" / "passgate.toml"
    config.parent.mkdir()
    config.write_text(
        f'[checkpoint]\nzone = "gate-1"\nstate_dir = "{state}"\n'
        f'[camera]\nsource = "files"\npath = "{frames}"\nfps = 50\n'
        f'[display]\ndriver = "dummy"\n'
        f'[trust]\nsource = "dir"\ndir = "{state / "trust"}"\n'
    )
    return config, state


def _both(config: Path, capsys) -> list[tuple[int, str]]:
    out = []
    for cmd in (["config"], ["run"]):
        code = main([*cmd, "--config", str(config)])
        out.append((code, capsys.readouterr().err))
    return out


@pytest.mark.parametrize("case", list(BROKEN))
def test_config_and_run_refuse_the_same_config_with_the_same_line(case, device, capsys):
    config, state = device
    tmp = config.parent.parent
    breaking, expected = BROKEN[case]
    breaking(tmp, state, config)
    line = "passgate: error: " + expected.format(
        cfg=config, dropin=config.parent / "passgate.d" / "50-site.toml", state=state, tmp=tmp
    )
    for code, err in _both(config, capsys):
        assert code == 2
        assert err.splitlines() == [line], err


def test_a_good_config_is_accepted_by_both(device, capsys):
    config, state = device
    assert main(["config", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"config ok: {config}\n"
    assert main(["run", "--config", str(config)]) == 0  # the one frame played, then stopped
    assert (state / "journal.sqlite").is_file()


def test_config_dump_shows_a_config_whose_files_are_not_there_yet(device, capsys):
    """--dump prints what was loaded; only the check and the run look at the files."""
    config, state = device
    (state / "journal.key").unlink()
    assert main(["config", "--dump", "--config", str(config)]) == 0
    assert f'hash_key_file = "{state / "journal.key"}"' in capsys.readouterr().out
    assert main(["config", "--config", str(config)]) == 2
