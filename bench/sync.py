"""Benchmark draining a journal backlog into the collector. Prints figures, asserts nothing.

    .venv/bin/python bench/sync.py [--rows 100000] [--batch 200] [--backend sqlite|postgresql|both]

For each backend: a device journal with ``--rows`` queued scans (chained exactly as the
journal writes them), ``passgate-collector serve`` started as its own process (SQLite file,
or a throwaway PostgreSQL server with fsync on, started with the collector's ``pgcluster``;
skipped with a note when the server binaries are absent), the device enrolled with a real
token, then ``passgate sync --once`` run as a real process until the backlog is empty.

Printed: rows per second over the whole ``sync --once`` process (interpreter start
included), and the peak RSS and CPU time of the sync process and of the collector process
(``wait4`` rusage, i.e. each process's own high-water mark), which shows which side
limits. PostgreSQL's server processes are not included in the collector figures.
Everything runs on 127.0.0.1 without TLS; the machine is shared, so expect 10-20% variation
between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # fill_journal: the journal's own row format

from passgate.passes.keys import public_pem, write_private  # noqa: E402
from sync_support import fill_journal  # noqa: E402

DEVICE = "bench-1"
# passgate.cli is a package without __main__: call its main() the way the console script does.
PASSGATE = [sys.executable, "-c",
            "import sys; from passgate.cli import main; sys.exit(main(sys.argv[1:]))"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_exit(proc: subprocess.Popen) -> tuple[int, int, float]:
    """(exit status, peak RSS in KiB, CPU seconds) of a child, from its own rusage."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def start_collector(db_url: str, port: int, time_key: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "passgate_collector.cli", "serve", "--db", db_url,
         "--port", str(port), "--time-key", str(time_key)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
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
    raise RuntimeError("collector did not start: " + proc.stderr.read().decode()[-1000:])


def collector_cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "passgate_collector.cli", *args],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def passgate(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*PASSGATE, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_backend(name: str, db_url: str, rows: int, batch: int, work: Path) -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    state, sync = work / "state", work / "sync"
    t = time.perf_counter()
    fill_journal(state / "journal.sqlite", rows, device_id=DEVICE)
    fill_s = time.perf_counter() - t
    time_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench time").digest())
    write_private(work / "time.key", time_key)
    (state / "time-keys").mkdir()
    (state / "time-keys" / "time.pub").write_bytes(public_pem(time_key))
    dirs = ["--state", str(state), "--sync-dir", str(sync)]
    subprocess.run([*PASSGATE, "keys", "new-device", "--out", str(sync)], check=True,
                   capture_output=True)

    port = free_port()
    collector = start_collector(db_url, port, work / "time.key")
    try:
        token = collector_cli("token", "new", "--device", DEVICE, "--db", db_url)
        enrol = passgate("sync", "enrol", "--token", token, "--collector",
                         f"http://127.0.0.1:{port}", "--device", DEVICE, *dirs)
        if wait_exit(enrol)[0] != 0:
            raise RuntimeError("enrolment failed: " + enrol.stderr.read())
        t = time.perf_counter()
        agent = passgate("sync", "--once", "--batch", str(batch), *dirs)
        status, agent_rss, agent_cpu = wait_exit(agent)
        drain_s = time.perf_counter() - t
        out = agent.stdout.read().strip()
        if status != 0:
            raise RuntimeError(f"sync --once failed ({status}): {out} {agent.stderr.read()[-800:]}")
    finally:
        collector.send_signal(signal.SIGTERM)
        _, collector_rss, collector_cpu = wait_exit(collector)
        collector.stderr.close()
    db = sqlite3.connect(state / "journal.sqlite")
    pending = db.execute("SELECT count(*) FROM scans WHERE uploaded_at IS NULL").fetchone()[0]
    db.close()
    return {"backend": name, "rows": rows, "fill_s": fill_s, "drain_s": drain_s,
            "rows_per_s": rows / drain_s, "agent_rss_mib": agent_rss / 1024,
            "collector_rss_mib": collector_rss / 1024, "pending_after": pending, "agent": out,
            "agent_cpu_s": agent_cpu, "collector_cpu_s": collector_cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = ap.parse_args()

    print(f"draining {args.rows:,} journal rows, batches of {args.batch}, on 127.0.0.1")
    results = []
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="passgate-bench-sync-") as tmp:
            work = Path(tmp)
            results.append(run_backend("sqlite", f"sqlite:///{work}/collector.db", args.rows,
                                       args.batch, work))
    if args.backend in ("postgresql", "both"):
        from passgate_collector.pgcluster import PgCluster, PgUnavailable

        try:
            cluster = PgCluster(durable=True)
        except PgUnavailable as exc:
            print(f"postgresql: skipped ({exc})")
        else:
            with cluster, tempfile.TemporaryDirectory(prefix="passgate-bench-sync-") as tmp:
                url = cluster.create_database("bench")
                results.append(run_backend("postgresql", url, args.rows, args.batch, Path(tmp)))

    print(f"{'backend':<11} {'rows/s':>8} {'drain s':>8} {'sync RSS MiB':>13} "
          f"{'collector RSS MiB':>18} {'left':>5}")
    for r in results:
        print(f"{r['backend']:<11} {r['rows_per_s']:>8,.0f} {r['drain_s']:>8.1f} "
              f"{r['agent_rss_mib']:>13.1f} {r['collector_rss_mib']:>18.1f} "
              f"{r['pending_after']:>5}")
    for r in results:
        print(f"  {r['backend']}: CPU seconds: sync {r['agent_cpu_s']:.1f}, collector "
              f"{r['collector_cpu_s']:.1f} (whole life); journal filled in {r['fill_s']:.1f} s; "
              f"agent said: {r['agent']}")


if __name__ == "__main__":
    main()
