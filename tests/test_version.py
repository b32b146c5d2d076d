"""One version, pyproject.toml's (passgate.util.version): on both command lines, in the self-test's
summary (tests/test_selftest.py), in every sync heartbeat and batch a real agent sends to a real
collector, and on the staff page's device list."""

from __future__ import annotations

import re
import sqlite3
import time
import tomllib
from pathlib import Path

import pytest

from collector_support import cheap_argon2, staff_login  # noqa: F401
from passgate import __version__
from passgate.cli import main
from passgate.util.version import UNKNOWN, from_pyproject, version

REPO = Path(__file__).resolve().parents[1]
DECLARED = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_the_version_is_the_one_pyproject_declares():
    assert version() == DECLARED == __version__
    assert from_pyproject(REPO / "pyproject.toml") == DECLARED


def test_another_projects_pyproject_or_none_is_not_taken_for_ours(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "9.9"\n')
    assert from_pyproject(tmp_path / "pyproject.toml") is None
    assert from_pyproject(tmp_path / "missing.toml") is None
    (tmp_path / "bad.toml").write_text("[project\n")
    assert from_pyproject(tmp_path / "bad.toml") is None
    assert UNKNOWN.startswith("0+")  # sorts below every real release


def test_passgate_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"passgate {DECLARED}"


def test_collector_version(capsys):
    pytest.importorskip("flask", reason="collector extra not installed")
    from passgate_collector.cli import main as collector_main

    with pytest.raises(SystemExit) as done:
        collector_main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"passgate-collector {DECLARED}"


def test_the_agent_reports_its_version_and_the_staff_page_shows_it(tmp_path, capsys,
                                                                    staff_login):  # noqa: F811
    pytest.importorskip("flask", reason="collector extra not installed")
    pytest.importorskip("waitress", reason="collector extra not installed")
    from passgate_collector.web import create_app
    from sync_support import LiveCollector, fill_journal

    state, sync = tmp_path / "state", tmp_path / "sync"
    fill_journal(state / "journal.sqlite", 3)
    assert main(["keys", "new-device", "--out", str(sync)]) == 0
    args = ["--state", str(state), "--sync-dir", str(sync)]
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        collector.add_token("gate-1", "enrol-" + "v" * 40)
        assert main(["sync", "enrol", "--token", "enrol-" + "v" * 40, "--collector",
                     collector.url, "--device", "gate-1", *args]) == 0
        assert main(["sync", "--once", *args]) == 0  # a batch with 3 rows
        assert collector.store.device("gate-1").firmware == DECLARED
        with sqlite3.connect(tmp_path / "c.db") as db:  # as an older release left it
            db.execute("UPDATE devices SET firmware = '0.0.1' WHERE device_id = 'gate-1'")
        assert collector.store.device("gate-1").firmware == "0.0.1"
        time.sleep(1.1)  # a later sent_at (whole seconds): fresh health, not a replay
        assert main(["sync", "--once", *args]) == 0  # nothing queued: the heartbeat
        assert collector.store.device("gate-1").firmware == DECLARED
        staff = create_app(collector.store, time_token=None).test_client()
        staff_login(staff, collector.store)  # the staff page needs a session
        html = staff.get("/").get_data(as_text=True)
    row = re.search(r'data-device="gate-1">(.*?)</tr>', html, re.S).group(1)
    assert f'<td class="version">{DECLARED}</td>' in row
    assert "<th>version</th>" in html
