"""The commands a newcomer meets first work as the docs write them (issue 10 point 7).

Rules: after ``./setup.sh simulate`` (the simulation's state in ``./state``), every command of
the README's laptop block works as written, exiting as its comment says (0 unless it says
"exit N"); a simulated device enrols with a collector and uploads exactly as
``docs/collector.md`` writes it; the README's batch CSV example issues as documented and a
batch ends with one summary line; ``time`` names the state folder ``--state`` like every
other sub-command (``--clock FILE`` kept as an alias); ``verify --json`` carries the holder
hint its text line shows. The docs are read from the files, so a command edited there is the
command tested here.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import pytest

from passgate.checkpoint import simulate
from passgate.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
COLLECTOR_DOC = (ROOT / "docs" / "collector.md").read_text()


def block_after(text: str, marker: str, lang: str = "sh") -> list[str]:
    """The lines of the first ```lang block after ``marker``."""
    start = text.index(marker)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, start)
    assert m is not None, marker
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def commands(lines: list[str]) -> list[tuple[list[str], int]]:
    """(argv, expected exit code) of each command line; "exit N" in its comment sets N."""
    out = []
    for line in lines:
        code, _, comment = line.partition("#")
        if not code.strip():
            continue
        m = re.search(r"exit (\d)", comment)
        out.append((shlex.split(code), int(m.group(1)) if m else 0))
    return out


@pytest.fixture
def simulated(tmp_path: Path, monkeypatch) -> Path:
    """The repository folder after ``./setup.sh simulate``: one scripted scene played into
    ``./state`` (7 scans), no /etc config; commands run from there."""
    monkeypatch.chdir(tmp_path)
    assert simulate.main(Path("state"), out=io.StringIO(), fps=300) == 0
    return tmp_path


def test_the_readmes_laptop_commands_work_as_written(simulated, capsys):
    block = commands(block_after(README, "On a laptop, after `./setup.sh simulate`"))
    names = [" ".join(argv[:3]) for argv, _ in block]
    # The three that stopped with exit 2 on a laptop are shown in forms that work.
    assert {"passgate config --simulate", "passgate log --since", "passgate selftest --simulate"
            } <= set(names), names
    for argv, expected in block:
        assert argv[0] == "passgate"
        if argv[1:3] == ["run", "--simulate"]:
            continue  # the fixture played it (a webcam is not there to test)
        code = main(argv[1:])
        out, err = capsys.readouterr()
        assert code == expected, (argv, out, err)
        if argv[1] == "log":
            scans = [ln for ln in out.splitlines() if " ACCEPT " in ln or " DENY " in ln]
            assert len(scans) == 7  # the scene's 7 scans
        if argv[1:3] == ["config", "--simulate"]:
            assert 'zone = "gate-1"' in out and "sim-gate-1" in out


def test_config_simulate_checks_the_simulations_state(simulated, capsys):
    assert main(["config", "--simulate"]) == 0
    assert capsys.readouterr().out == "config ok: the simulation on state\n"
    assert main(["config", "--simulate", "--state", "elsewhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint.state_dir" in err
    assert err.rstrip().endswith("passgate run --simulate --state elsewhere makes it")
    assert main(["config", "--simulate", "--config", "x.toml"]) == 2
    assert "--simulate needs no config" in capsys.readouterr().err


def test_a_simulated_device_enrols_and_uploads_as_the_collector_doc_says(simulated, capsys):
    pytest.importorskip("flask", reason="collector extra not installed")
    pytest.importorskip("waitress", reason="collector extra not installed")
    from passgate_collector.cli import main as collector_main
    from sync_support import LiveCollector, collector_rows

    block = commands(block_after(COLLECTOR_DOC, "On a laptop, a simulated checkpoint"))
    serve, token_new, enrol, upload = (argv for argv, _ in block)
    assert serve[:2] == ["passgate-collector", "serve"]
    db = serve[serve.index("--db") + 1]
    assert db == "sqlite:///collector.db"
    assert not (simulated / "state" / "device.key").exists()  # nothing made it beforehand
    # `serve` on its documented port would clash with a collector on this machine: the same
    # app and store on a free loopback port, and its URL in place of the documented one.
    with LiveCollector(db) as collector:
        assert collector_main(token_new[1:]) == 0
        token = capsys.readouterr().out.strip()
        enrol = [token if a == "TOKEN" else a for a in enrol]
        enrol = [collector.url if a == "http://127.0.0.1:8470" else a for a in enrol]
        assert main(enrol[1:]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert "made device key state/device.key" in out and "enrolled with" in out
        assert main(upload[1:]) == 0
        assert "uploaded 7" in capsys.readouterr().out
        assert len(collector_rows(simulated / "collector.db", "sim-gate-1")) == 7


def test_enrolment_never_replaces_a_device_key_that_is_there(simulated, capsys):
    from passgate.sync.enrolment import load_enrolment

    key = simulated / "state" / "device.key"
    key.write_text("not a key\n")
    key.chmod(0o600)
    argv = ["sync", "enrol", "--token", "t", "--collector", "http://127.0.0.1:9",
            "--state", "state", "--device", "sim-gate-1"]
    assert main(argv) == 2
    assert key.read_text() == "not a key\n"
    assert load_enrolment(simulated / "state" / "enrolment.json") is None
    capsys.readouterr()


@pytest.fixture
def issuer(tmp_path: Path, capsys) -> Path:
    assert main(["keys", "new-issuer", "--out", str(tmp_path / "iss"), "--name", "NNOV"]) == 0
    capsys.readouterr()
    return tmp_path / "iss"


def test_the_readmes_batch_example_issues_and_ends_with_a_summary(issuer, tmp_path, capsys):
    rows = block_after(README, "The batch CSV", lang="csv")
    assert rows[0] == "purpose,zones,hint,from,duration"
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "passes"
    argv = ["issue", "--key", str(issuer / "issuer.key"), "--batch", str(tmp_path / "people.csv"),
            "--out", str(out)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    n = len(rows) - 1
    assert lines == [f"batch: {n} issued, 0 refused; texts and pass ids in {out / 'passes.csv'} "
                     f"and {n} PNGs in {out / 'png'}"]
    assert len(list((out / "png").glob("*.png"))) == n
    (tmp_path / "bad.csv").write_text(rows[0] + "\nshopping,gate-1,,,2h\nnope,gate-1,,,\n")
    argv[argv.index(str(tmp_path / "people.csv"))] = str(tmp_path / "bad.csv")
    argv[-1] = str(tmp_path / "bad-out")
    assert main(argv) == 2
    std = capsys.readouterr()
    assert std.out == "" and std.err.count("\n") == 1
    assert "bad.csv:3:" in std.err and "(batch refused: 0 issued, nothing written)" in std.err
    assert not (tmp_path / "bad-out").exists()


def test_verify_json_carries_the_hint_the_text_line_shows(issuer, capsys):
    argv = ["issue", "--key", str(issuer / "issuer.key"), "--purpose", "shopping",
            "--zone", "gate-1", "--hint", "AB-1234"]
    assert main(argv) == 0
    text = capsys.readouterr().out.strip()
    check = ["verify", text, "--trust", str(issuer), "--zone", "gate-1"]
    assert main(check) == 0
    assert "holder AB-1234" in capsys.readouterr().out
    assert main([*check, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "accept" and doc["hint"] == "AB-1234"
    assert main(["verify", text, "--trust", str(issuer), "--zone", "lobby", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)  # denied: no hint, as in the text line
    assert doc["reason"] == "wrong_zone" and doc["hint"] is None


def test_time_names_the_state_folder_state_like_every_command(tmp_path, capsys, monkeypatch):
    from passgate.clock import clock

    monkeypatch.setattr(clock, "TIMESYNC_FLAG", tmp_path / "no-timesync-flag")
    state = tmp_path / "state"
    state.mkdir()
    assert main(["time", "challenge", "--state", str(state)]) == 0
    nonce = capsys.readouterr().out.strip()
    floor = json.loads((state / "clock.floor").read_text())
    assert [c["nonce"] for c in floor["challenges"]] == [nonce]
    assert main(["time", "status", "--state", str(state), "--json"]) == 1
    by_state = json.loads(capsys.readouterr().out)
    # --clock FILE, the old spelling, still reads the same file.
    assert main(["time", "status", "--clock", str(state / "clock.floor"), "--json"]) == 1
    by_clock = json.loads(capsys.readouterr().out)
    assert (by_state["state"], by_state["floor_source"]) == (by_clock["state"],
                                                             by_clock["floor_source"])
    assert abs(by_state["floor"] - by_clock["floor"]) < 60  # the floor follows monotonic time
    with pytest.raises(SystemExit) as exc:
        main(["time", "status", "--state", str(state), "--clock", str(state / "clock.floor")])
    assert exc.value.code == 2
    capsys.readouterr()
