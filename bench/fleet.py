"""Shared parts of the ingest benchmarks (``bench/sync.py``, ``bench/storm.py``).

Rules kept: every upload goes through the agent's real client (``CollectorClient``: real
CBOR, real Ed25519 signature, real HTTP to a real collector process); rows are chained exactly
as the journal chains them; history is written straight into the collector's ``scans`` table
with bulk SQL (``generate_series`` / ``executemany``), never through the API, so a million
stored rows take seconds, and the device's head (``devices.last_seq``) filled as schema 11's
migration fills it; CPU is read from ``/proc/<pid>/stat`` (user + system ticks), and a
PostgreSQL server counts its postmaster, every live child, and (through the postmaster's
``cutime``/``cstime``) every child that exited in between.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.journal.schema import NONCE_TIME_BYTES, ZERO_CHAIN, chain_of, new_nonce
from passgate.passes.keys import kid_of
from passgate.sync.client import CollectorClient
from passgate.sync.devicekey import DeviceKey
from passgate_collector.store.schema import FILL_HEADS

T0 = 1_767_261_600  # 2026-01-01T10:00:00Z
TICK = os.sysconf("SC_CLK_TCK")


def device_key(device_id: str) -> DeviceKey:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(device_id.encode()).digest())
    return DeviceKey(key, key.public_key().public_bytes_raw())


def enrol_direct(store, device_id: str) -> None:
    """Enrol through the store's own method (a token made and used at once)."""
    pub = device_key(device_id).public_raw
    token_hash = hashlib.sha256(b"bench-token:" + device_id.encode()).digest()
    store.add_token(token_hash, device_id, T0, T0 + 86_400)
    store.enrol(token_hash, device_id, pub, kid_of(pub), T0)


NONCES = ("time", "random")


def nonce(device_id: str, seq: int, t_ms: int, layout: str = "time") -> bytes:
    """Row ``seq``'s nonce, reproducible (the bench makes the same rows in two processes).

    ``time``: the layout agents make (``journal.schema.new_nonce``: 48-bit milliseconds,
    then 80 bits, here a hash of the device and seq instead of ``os.urandom``); ``random``:
    16 random-looking bytes, as agents made them before time-ordered nonces (still valid)."""
    tail = hashlib.sha256(f"{device_id}:{seq}".encode()).digest()
    if layout == "random":
        return tail[:16]
    return new_nonce(t_ms)[:NONCE_TIME_BYTES] + tail[:16 - NONCE_TIME_BYTES]


def make_rows(device_id: str, first_seq: int, n: int, prev: bytes,
              nonces: str = "time", own_passes: bool = False) -> list[dict]:
    """``n`` protocol rows from ``first_seq``, chained on ``prev`` (the journal's row shape),
    with nonces of the ``nonces`` layout (:func:`nonce`). Row ``seq`` scans pass ``seq``;
    ``own_passes``: this device's own pass ``seq``, else the same pass at every device (then
    devices that send the same seqs scanned the same passes at the same second: "possible
    sharing" for every row)."""
    rows = []
    for seq in range(first_seq, first_seq + n):
        ok = seq % 2 == 0
        t_ms = (T0 + seq) * 1000
        row = {
            "seq": seq,
            "nonce": nonce(device_id, seq, t_ms, nonces),
            "t_ms": t_ms, "clock_state": "trusted",
            "verdict": "accept" if ok else "deny", "reason": "valid" if ok else "expired",
            "pass_hash": hashlib.sha256(b"p%d" % seq + (device_id.encode() if own_passes
                                                         else b"")).digest()[:16],
            "kid": "a1b2c3d4e5f60718",
            "purpose": "work", "zone": "gate-1", "flags": [],
        }
        row["chain"] = prev = chain_of(prev, row)
        rows.append(row)
    return rows


def client(url: str, device_id: str, timeout: float = 30.0) -> CollectorClient:
    return CollectorClient(url, device_id, device_key(device_id), now=time.time,
                           timeout=timeout)


# --- history, written in bulk --------------------------------------------------------------

def history_postgres(db_url: str, device_id: str, n: int, nonces: str = "time") -> bytes:
    """``n`` stored rows (seq 1..n) for the device, their nonces of the ``nonces`` layout
    (:func:`nonce`: the time prefix from the row's t_ms); returns the last one's chain."""
    import psycopg

    if n == 0:
        return ZERO_CHAIN
    t_ms = "(%s::bigint + i) * 1000"
    nonce_sql = ("substring(sha256(('h' || i)::bytea) from 1 for 16)" if nonces == "random" else
                 f"substring(int8send({t_ms}) from 3 for 6) || "
                 "substring(sha256(('h' || i)::bytea) from 1 for 10)")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO scans (device_id, nonce, seq, t_ms, clock_state, verdict, reason, "
            "pass_hash, kid, purpose, zone, flags, chain, received_at) "
            f"SELECT %s, {nonce_sql}, i, "
            f"{t_ms}, 'trusted', 'accept', 'valid', "
            "substring(sha256(('p' || i)::bytea) from 1 for 16), 'a1b2c3d4e5f60718', 'work', "
            "'gate-1', '', sha256(('c' || i)::bytea), %s FROM generate_series(1, %s) AS i",
            (device_id, *([T0 - 10 * n] if nonces == "random" else [T0 - 10 * n] * 2), T0, n))
        for stmt in FILL_HEADS:  # the device's head, as ingest keeps it (schema 11)
            conn.execute(stmt)
        conn.execute("ANALYZE scans")
        return bytes(conn.execute("SELECT chain FROM scans WHERE device_id = %s AND seq = %s",
                                  (device_id, n)).fetchone()[0])


def history_sqlite(path: str, device_id: str, n: int, nonces: str = "time") -> bytes:
    """As :func:`history_postgres`, for SQLite."""
    import sqlite3

    if n == 0:
        return ZERO_CHAIN
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    chunk = 100_000
    last = ZERO_CHAIN
    for start in range(1, n + 1, chunk):
        vals = []
        for i in range(start, min(n, start + chunk - 1) + 1):
            last = hashlib.sha256(b"c%d" % i).digest()
            t_ms = (T0 - 10 * n + i) * 1000
            h = hashlib.sha256(b"h%d" % i).digest()
            vals.append((device_id, h[:16] if nonces == "random" else
                         t_ms.to_bytes(8, "big")[2:] + h[:10], i,
                         t_ms, hashlib.sha256(b"p%d" % i).digest()[:16], last, T0))
        db.executemany(
            "INSERT INTO scans (device_id, nonce, seq, t_ms, clock_state, verdict, reason, "
            "pass_hash, kid, purpose, zone, flags, chain, received_at) VALUES "
            "(?, ?, ?, ?, 'trusted', 'accept', 'valid', ?, 'a1b2c3d4e5f60718', 'work', "
            "'gate-1', '', ?, ?)", vals)
    for stmt in FILL_HEADS:  # the device's head, as ingest keeps it (schema 11)
        db.execute(stmt)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return last


# --- processes -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(db_url: str, port: int, *extra: str) -> subprocess.Popen:
    """``passgate-collector serve`` as its own process, its log in an unlinked temporary file.

    Not a pipe: nobody reads a pipe while the bench runs, and once its 64 KiB are full the
    collector's next log line blocks its main thread, the one that accepts connections (a
    2,000-device storm filled it with waitress's queue warnings and froze the collector).

    Retention is off (``--retention-days 0``, before ``extra``, which may set it again): the
    benches' rows are dated around :data:`T0` (January 2026), older than the default 90-day
    window, and the collector's first retention run, 60 s after its start, would remove them
    under a bench that runs longer (it did, in bench/sync.py: docs/collector.md)."""
    log = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "passgate_collector.cli", "serve", "--db", db_url,
         "--port", str(port), "--retention-days", "0", *extra],
        stdout=subprocess.DEVNULL, stderr=log)
    proc.log = log  # type: ignore[attr-defined]  # kept open as long as the process object
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    log.seek(0)
    raise RuntimeError("collector did not start: " + log.read().decode()[-1000:])


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from "state" on (index 0 = field 3)


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of ``pid``; with ``children``, plus its reaped children's."""
    f = _stat(pid)
    if f is None:
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / TICK


def server_cpu(postmaster: int) -> float:
    """A PostgreSQL server's CPU: the postmaster with reaped children, plus live children.

    Read as one consistent snapshot: a child reaped while ``/proc`` is scanned moves its CPU
    into the postmaster's reaped-children total after that was read and leaves ``/proc``
    before the scan reached it, so it was counted nowhere, and the next reading counted all
    of it: a backend's whole life billed to whatever was measured next. The bench's anchor
    closes its connection just before the next round is measured, so that was its COPY's
    server CPU, in some rounds (docs/collector.md, "Ingest cost, measured"). The scan is
    taken again until the reaped total is the same before and after it."""
    for _ in range(50):
        before = cpu_seconds(postmaster, children=True)
        live = 0.0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                f = _stat(int(entry))
                if f is not None and int(f[1]) == postmaster:
                    live += (int(f[11]) + int(f[12])) / TICK
        if cpu_seconds(postmaster, children=True) == before:
            return before + live
    raise RuntimeError("the PostgreSQL server's children kept exiting during 50 scans of /proc")


def postmaster_pid(cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])
