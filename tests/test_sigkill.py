"""SIGKILL the checkpoint at random points during a stream of scans, restart it, repeat.

Every scan the process signalled must be in the journal. "Signalled" is written to the side
file by a wrapper around the checkpoint's Signals at the moment the loop calls ``accept()``
or ``deny()`` (tests/sigkill_worker.py), not after the scan: a loop that signalled before its
commit would leave signalled passes missing from the journal, and this test would see them.
No pass may be signalled twice or be in the journal twice; the scans the loop reported must
be the journal's rows (nonce, seq, pass); the database must pass ``PRAGMA integrity_check``
and its hash chain must verify. Rows committed but never signalled (killed between the commit
and the signal) are allowed, at most one per kill: the client nonce is what makes their later
upload idempotent.
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

from passgate.checkpoint import simulate
from passgate.journal.journal import Journal

WORKER = Path(__file__).with_name("sigkill_worker.py")
MIN_SIGNALLED = 1000
MIN_KILLS = 20  # ~16 mid-stream: a loop that signals before its commit is caught (p > 0.99)


def side_lines(path: Path) -> tuple[list[str], list[tuple[str, int, str]]]:
    """(pass hashes signalled, in order; (nonce, seq, pass hash) of the scans reported)."""
    if not path.exists():
        return [], []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill is not a signalled scan
    signalled, scans = [], []
    for line in complete.splitlines():
        kind, *fields = line.split()
        if kind == "signal":
            signalled.append(fields[1])
        else:
            scans.append((fields[0], int(fields[1]), fields[2]))
    return signalled, scans


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
        while kills < MIN_KILLS or len(side_lines(side)[0]) < MIN_SIGNALLED:
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

    signalled, scans = side_lines(side)
    db = sqlite3.connect(state / "journal.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute("SELECT nonce, seq, pass_hash FROM scans ORDER BY seq").fetchall()
    db.close()
    by_nonce = {bytes(n).hex(): (seq, bytes(ph).hex()) for n, seq, ph in rows}
    by_pass = {bytes(ph).hex() for _, _, ph in rows}
    missing = [p for p in signalled if p not in by_pass]
    wrong = [(n, s, p) for n, s, p in scans if by_nonce.get(n) != (s, p)]
    unsignalled = len(by_pass - set(signalled))
    print(
        f"\n{kills} kills ({killed_before_ready} before READY), {len(signalled)} scans signalled, "
        f"{len(rows)} rows, {unsignalled} committed but not signalled; restart to READY: "
        f"median {statistics.median(ready_s):.2f} s, max {max(ready_s):.2f} s"
    )
    assert len(signalled) >= MIN_SIGNALLED
    assert missing == []  # nothing signalled that the journal does not hold
    assert len(set(signalled)) == len(signalled)  # no pass signalled twice
    assert len(by_pass) == len(rows)  # no pass twice in the journal
    assert len(by_nonce) == len(rows)  # no nonce twice in the journal
    assert len({n for n, _, _ in scans}) == len(scans)  # no scan reported twice
    assert wrong == []  # each reported scan is the journal row it says
    assert [seq for _, seq, _ in rows] == list(range(1, len(rows) + 1))  # no gap, no reuse
    assert 0 <= unsignalled <= kills
    with Journal.open_readonly(state / "journal.sqlite") as j:
        assert j.verify() is None  # the hash chain holds across every crash
