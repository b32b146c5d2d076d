"""Test and bench support for the sync agent: journal filling and a fault-injecting transport.

``fill_journal`` writes rows exactly as :meth:`Journal.record` would (same columns, same
chain) but in one transaction, so a 60,000-row backlog takes a second instead of a minute of
fsyncs; callers check the result with ``Journal.verify()``.

``FaultTransport`` sits between the agent's client and a real transport to a real collector
on 127.0.0.1 and injects, per request, the failures a field network produces.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from passgate.journal.journal import Journal, ScanRecord
from passgate.journal.schema import COLUMNS, ZERO_CHAIN, chain_of, to_ms
from passgate.sync.transport import Request, Response, Transport

HASH_KEY = bytes(range(32))
T0 = 1_767_261_600.0  # 2026-01-01T10:00:00Z
REASONS = ("valid", "expired", "revoked", "wrong_zone", "already_used", "malformed")


def record(i: int, rng: random.Random, zone: str = "gate-1") -> ScanRecord:
    """A plausible scan record number ``i`` (half accepted, hashed pass ids only)."""
    ok = i % 2 == 0
    return ScanRecord(
        nonce=rng.randbytes(16),
        scanned_at=T0 + i * 7.25,
        clock_state="trusted" if i % 5 else "floor",
        verdict="accept" if ok else "deny",
        reason="valid" if ok else REASONS[1 + i % 5],
        pass_hash=None if i % 13 == 0 else rng.randbytes(16),
        kid=None if i % 13 == 0 else "a1b2c3d4e5f60718",
        purpose=None if i % 13 == 0 else ("work", "shopping", "doctor")[i % 3],
        zone=zone,
        flags=("stale",) if i % 17 == 0 else (),
    )


def fill_journal(path: Path, n: int, seed: int = 1, device_id: str = "gate-1") -> None:
    """Append ``n`` rows to the journal at ``path`` in one transaction (chain included)."""
    Journal(path, HASH_KEY, device_id).close()  # creates the schema the real way
    rng = random.Random(seed)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        last = db.execute("SELECT seq, chain FROM scans ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], bytes(last[1])) if last else (0, ZERO_CHAIN)
        rows = []
        for i in range(n):
            rec = record(seq + i, rng)
            f = {
                "seq": seq + i + 1,
                "nonce": rec.nonce,
                "t_ms": to_ms(rec.scanned_at),
                "clock_state": rec.clock_state,
                "verdict": rec.verdict,
                "reason": rec.reason,
                "pass_hash": rec.pass_hash,
                "kid": rec.kid,
                "purpose": rec.purpose,
                "zone": rec.zone,
                "flags": rec.flags,
            }
            prev = chain_of(prev, f)
            # Stored as the journal stores them: flags as one space-separated text.
            rows.append((*list(f.values())[:10], " ".join(rec.flags), prev))
            if len(rows) == 5000:
                db.executemany(
                    f"INSERT INTO scans ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                rows.clear()
        if rows:
            db.executemany(
                f"INSERT INTO scans ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        db.execute("COMMIT")
    finally:
        db.close()


# --- fault injection ------------------------------------------------------------------------

FAULTS = (
    "refused",
    "503",
    "500_after_commit",
    "timeout_before",
    "timeout_after",
    "reset_before",
    "reset_after",
    "lost_after_commit",
    "duplicate",
    "hold_for_reorder",
    "garbled",
)


@dataclass
class FaultTransport:
    """Wraps ``inner``; for each request draws a fault with probability ``rate``.

    - ``refused`` / ``reset_before`` / ``timeout_before``: the request never reaches the
      collector (``ConnectionRefusedError`` / ``ConnectionResetError`` / ``TimeoutError``);
    - ``503``: a proxy error page, collector not reached;
    - ``500_after_commit``: the collector processed it, the device sees a 500;
    - ``timeout_after`` / ``reset_after`` / ``lost_after_commit``: the collector committed,
      the answer is lost on the way back;
    - ``duplicate``: delivered twice, the device sees the second answer;
    - ``hold_for_reorder``: the request is kept and the device sees a timeout; held
      requests are delivered later, newest first, after other requests (reordering);
    - ``garbled``: the collector committed, the device gets a 200 with a cut-off body.
    Every ``send`` also delivers held requests with probability ``release``.
    """

    inner: Transport
    rng: random.Random
    rate: float = 0.3
    release: float = 0.3
    faults: tuple[str, ...] = FAULTS
    counts: Counter = field(default_factory=Counter)
    payloads: list[bytes] = field(default_factory=list)  # every body sent, for privacy checks
    keep_payloads: bool = False
    _held: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, request: Request) -> Response:
        if self.keep_payloads and request.body:
            self.payloads.append(request.body)
        self._maybe_release()
        fault = self.rng.choice(self.faults) if self.rng.random() < self.rate else "none"
        self.counts[fault] += 1
        match fault:
            case "refused":
                raise ConnectionRefusedError(111, "Connection refused")
            case "reset_before":
                raise ConnectionResetError(104, "Connection reset by peer")
            case "timeout_before":
                raise TimeoutError("timed out")
            case "503":
                return Response(503, b"<html>502 Bad Gateway</html>", {"content-type": "text/html"})
            case "hold_for_reorder":
                self._held.append(request)
                raise TimeoutError("timed out")
        resp = self.inner.send(request)
        match fault:
            case "500_after_commit":
                return Response(500, b"", {})
            case "timeout_after":
                raise TimeoutError("timed out")
            case "reset_after":
                raise ConnectionResetError(104, "Connection reset by peer")
            case "lost_after_commit":
                raise ConnectionAbortedError(103, "Software caused connection abort")
            case "duplicate":
                return self.inner.send(request)
            case "garbled":
                return Response(resp.status, resp.body[: len(resp.body) // 2], resp.headers)
        return resp

    def _maybe_release(self) -> None:
        # Newest held request first: the collector sees batches out of their original order.
        while self._held and self.rng.random() < self.release:
            self.inner.send(self._held.pop())

    def flush(self) -> None:
        """Deliver every held request (stale duplicates arriving after everything else)."""
        while self._held:
            self.inner.send(self._held.pop())


# --- a real collector on 127.0.0.1 -----------------------------------------------------------


class LiveCollector:
    """The real collector app (``passgate_collector.web``) served by waitress on 127.0.0.1 in a
    thread, with its real store. ``time_key`` signs a time token into every answer."""

    def __init__(self, db_url: str, time_key=None, port: int = 0, max_rows: int = 500) -> None:
        import waitress

        from passgate_collector.store import open_store
        from passgate_collector.timesign import TimeSigner
        from passgate_collector.web import Settings, create_app

        self.store = open_store(db_url)
        app = create_app(self.store, time_token=TimeSigner(time_key) if time_key else None,
                         settings=Settings(max_rows=max_rows))
        self.server = waitress.create_server(app, host="127.0.0.1", port=port, threads=4,
                                             ident="passgate-collector-test")
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()

    def add_token(self, device: str, token: str) -> None:
        import hashlib
        import time

        now = int(time.time())
        self.store.add_token(hashlib.sha256(token.encode()).digest(), device, now, now + 3600)

    def close(self) -> None:
        self.server.close()
        self._thread.join(5)
        self.store.close()

    def __enter__(self) -> LiveCollector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (now): connecting to it is refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collector_rows(db_path: Path, device: str) -> list[tuple]:
    """(seq, nonce, chain, problem) of every row the collector stored for ``device``."""
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT seq, nonce, chain, problem FROM scans WHERE device_id = ? "
                          "ORDER BY seq", (device,)).fetchall()
    finally:
        db.close()


def device_rows(journal_path: Path) -> list[tuple]:
    """(seq, nonce, chain, uploaded_at) of every row in the device journal."""
    db = sqlite3.connect(journal_path)
    try:
        return db.execute(
            "SELECT seq, nonce, chain, uploaded_at FROM scans ORDER BY seq").fetchall()
    finally:
        db.close()


class CollectorProcess:
    """``passgate-collector serve`` in its own process on 127.0.0.1:``port`` (the real CLI), so
    the measuring process holds only the sync agent. ``token(device)`` makes an enrolment
    token with the real ``token new`` command."""

    def __init__(self, db_url: str, port: int, time_key_file: Path | None = None) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        self.db_url, self.port = db_url, port
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "passgate_collector.cli", "serve", "--db", db_url,
               "--port", str(port), "--threads", "4"]
        if time_key_file is not None:
            cmd += ["--time-key", str(time_key_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace")[-2000:]
                    self.close()
                    raise RuntimeError(f"collector did not start: {err}") from None
                time.sleep(0.1)

    def token(self, device: str) -> str:
        import subprocess
        import sys

        out = subprocess.run([sys.executable, "-m", "passgate_collector.cli", "token", "new",
                              "--device", device, "--db", self.db_url],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def peak_rss_kib(self) -> int | None:
        """VmHWM of the collector process (peak resident set), or None once it has exited."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rss_kib() -> int:
    """Current resident set size of this process (KiB)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
