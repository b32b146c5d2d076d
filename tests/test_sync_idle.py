"""The sync agent on a box that is not set up idles, then works (issue 10 point 6).

Rules pinned (``passgate.cli.sync``): without a config, a collector (no ``[sync]`` in the
device file applied, so no enrolment record) or a journal, ``passgate sync`` logs one line
per reason and stays up (no exit into systemd's ``Restart=``), looking again periodically and
on SIGHUP; once provisioning has left what it needs, it enrols and uploads in the same
process. ``--once`` (a command, not the service) still stops with exit 2.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from passgate.cli import build_parser, main
from passgate.cli.sync import idle_until_set_up
from passgate.sync.devicekey import new_device_key
from passgate.sync.enrolment import Enrolment, save_enrolment
from sync_support import LiveCollector, collector_rows, fill_journal

CLI = [sys.executable, "-c", "import sys; from passgate.cli import main; sys.exit(main())"]
TOKEN = "tok_" + "B" * 40
DEVICE = "gate-9"


def box(tmp: Path) -> tuple[Path, Path, Path]:
    """An installed but unprovisioned box: the site config, empty state and sync folders."""
    state, sync = tmp / "state", tmp / "sync"
    state.mkdir()
    sync.mkdir(mode=0o700)
    config = tmp / "passgate.toml"
    config.write_text(f'[checkpoint]\nzone = "north"\ndevice_id = "{DEVICE}"\n'
                      f'state_dir = "{state}"\n', encoding="utf-8")
    return config, state, sync


def provision_sync(state: Path, sync: Path, collector: str, rows: int = 0) -> None:
    """What provisioning with a [sync] section leaves (device key, enrolment record), and a
    journal as the scanner creates it."""
    _, _, fingerprint = new_device_key(sync)
    save_enrolment(sync / "enrolment.json", Enrolment(collector, DEVICE, fingerprint, TOKEN))
    fill_journal(state / "journal.sqlite", rows, device_id=DEVICE)


def test_idles_with_one_line_per_reason_and_looks_again(tmp_path, caplog):
    config, state, sync = box(tmp_path)
    args = build_parser().parse_args(["sync", "--config", str(config), "--sync-dir", str(sync)])
    stop, wake, done = threading.Event(), threading.Event(), []
    caplog.set_level(logging.INFO, "passgate.cli.sync")
    # Looks driven by SIGHUP-style wakes (the timer is an hour), so provisioning, which writes
    # two files, is never seen half done (that would be a second, genuine reason).
    t = threading.Thread(target=lambda: done.append(idle_until_set_up(args, stop, wake, 3600)))
    t.start()
    for _ in range(15):  # 15 looks, one line
        wake.set()
        time.sleep(0.02)
    assert t.is_alive()
    provision_sync(state, sync, "http://127.0.0.1:9")
    wake.set()
    t.join(10)
    assert done == [True]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "idle: no collector" in lines[0] and "starting" in lines[1], lines


def test_sigterm_ends_the_idling(tmp_path):
    args = build_parser().parse_args(["sync", "--config", str(tmp_path / "none.toml")])
    stop, wake = threading.Event(), threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert idle_until_set_up(args, stop, wake, 0.02) is False


def test_once_without_a_collector_is_still_a_usage_error(tmp_path, capsys):
    config, _, sync = box(tmp_path)
    assert main(["sync", "--once", "--config", str(config), "--sync-dir", str(sync)]) == 2
    assert "no collector" in capsys.readouterr().err


def test_the_agent_idles_without_sync_then_uploads_after_provisioning_and_sighup(tmp_path):
    pytest.importorskip("waitress", reason="collector extra not installed")
    config, state, sync = box(tmp_path)
    with LiveCollector(f"sqlite:///{tmp_path}/c.db") as collector:
        collector.add_token(DEVICE, TOKEN)
        proc = subprocess.Popen(
            [*CLI, "sync", "--config", str(config), "--sync-dir", str(sync), "--interval", "1"],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            time.sleep(2.0)
            assert proc.poll() is None  # idle, not exited (systemd would restart it)
            provision_sync(state, sync, collector.url, rows=7)
            proc.send_signal(signal.SIGHUP)  # look again now, not in a minute
            end = time.monotonic() + 30
            while len(collector_rows(tmp_path / "c.db", DEVICE)) < 7 and time.monotonic() < end:
                time.sleep(0.2)
            assert len(collector_rows(tmp_path / "c.db", DEVICE)) == 7
        finally:
            proc.send_signal(signal.SIGTERM)
            err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, err
    assert err.count("sync agent idle") == 1, err  # one line, however long it idled
    assert "sync agent started" in err


def test_sigterm_ends_an_idle_agent_at_once_not_at_its_next_look(tmp_path):
    """Review of issue 10: the idle agent waited for its next look (a minute) before it
    noticed SIGTERM, so ``systemctl stop`` and every shutdown of an unprovisioned box hung
    on it. The signal must end the wait itself."""
    proc = subprocess.Popen([*CLI, "sync", "--config", str(tmp_path / "none.toml")],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the one idle line: the handlers are in place
        assert "sync agent idle" in line, line
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(timeout=30)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 0
