"""SIGKILL the checkpoint at random points during a stream of scans, restart it, repeat.

Every scan the process signalled (a line in the side file, written after the journal commit
and the signal) must be in the journal; no scan may be in it twice; the database must pass
``PRAGMA integrity_check`` and its hash chain must verify. Rows committed but never signalled
(killed between the commit and the side-file line) are allowed, at most one per kill: the
client nonce is what makes their later upload idempotent.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from passgate import simulate
from passgate.journal import Journal

WORKER = Path(__file__).with_name("sigkill_worker.py")
MIN_SIGNALLED = 1000
MIN_KILLS = 10


def side_lines(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill is not a signalled scan
    return [(nonce, int(seq)) for nonce, seq in (ln.split() for ln in complete.splitlines())]


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path):
    state = tmp_path / "state"
    simulate.prepare(state, time.time())
    side = tmp_path / "signalled.txt"
    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "PYTHONDONTWRITEBYTECODE": "1"}
    rng = random.Random(20260101)
    kills, ready_s, killed_before_ready = 0, [], 0
    try:
        while kills < MIN_KILLS or len(side_lines(side)) < MIN_SIGNALLED:
            assert kills < 60, "the stream is not making progress"
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(state), str(side), "3000"],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            # Kill at a random moment: most after READY (mid-stream), some during start-up.
            early = rng.random() < 0.2
            deadline = start + (rng.uniform(0.05, 1.0) if early else 30)
            ready = False
            sock.settimeout(0.05)
            while time.monotonic() < deadline and not ready:
                try:
                    ready = b"READY=1" in sock.recv(4096)
                except TimeoutError:
                    assert proc.poll() is None, "the worker exited on its own"
            if ready:
                ready_s.append(time.monotonic() - start)
                time.sleep(rng.uniform(0.0, 0.5))
            else:
                killed_before_ready += 1
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    finally:
        sock.close()

    signalled = side_lines(side)
    nonces = [n for n, _ in signalled]
    db = sqlite3.connect(state / "journal.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute("SELECT nonce, seq FROM scans ORDER BY seq").fetchall()
    db.close()
    journal = {bytes(n).hex(): seq for n, seq in rows}
    missing = [n for n in nonces if n not in journal]
    wrong_seq = [(n, s) for n, s in signalled if journal.get(n) not in (None, s)]
    unsignalled = len(journal) - len(set(nonces))
    print(
        f"\n{kills} kills ({killed_before_ready} before READY), {len(signalled)} scans signalled, "
        f"{len(rows)} rows, {unsignalled} committed but not signalled; restart to READY: "
        f"median {statistics.median(ready_s):.2f} s, max {max(ready_s):.2f} s"
    )
    assert len(signalled) >= MIN_SIGNALLED
    assert missing == []
    assert len(journal) == len(rows)  # no nonce twice in the journal
    assert len(set(nonces)) == len(nonces)  # no scan signalled twice
    assert wrong_seq == []
    assert [seq for _, seq in rows] == list(range(1, len(rows) + 1))  # no gap, no reuse
    assert 0 <= unsignalled <= kills
    with Journal.open_readonly(state / "journal.sqlite") as j:
        assert j.verify() is None  # the hash chain holds across every crash
