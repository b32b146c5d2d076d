"""Reconnect storm: N devices come back at once, each with a backlog, against a real PostgreSQL.

    .venv/bin/python bench/storm.py [--devices 2000] [--backlog 200] [--batch 200]
                                    [--procs 4] [--threads 8] [--connection-limit 1000]

Prints figures, asserts nothing. A throwaway PostgreSQL (the collector's ``pgcluster``, fsync
off: this measures the collector, not the disk), ``passgate-collector serve`` as its own
process, the devices enrolled through the store, then ``--procs`` processes each running one
thread per device. Every device thread is an agent-equivalent: the agent's real client
(signed CBOR over HTTP, 30 s timeout) and the agent's real ``Backoff``, which honours a 503's
``Retry-After`` with jitter; a failed batch is sent again as it is, the way the agent does.
All threads start at the same instant.

Printed: devices, rows, drain time (first request to last acknowledgement), requests, p50 /
p99 / max request latency, retries by cause (503/429, other 5xx, timeouts and resets), and the
comparison of the collector's rows with the rows sent: lost (sent, not stored) and duplicated
(stored more than once); both must be 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402


def device_id(i: int) -> str:
    return f"storm-{i:05d}"


def worker(url: str, ids: list[int], backlog: int, batch: int, start_at: float) -> None:
    """One process of device threads; prints JSON: latencies, retry causes, acked rows."""
    from passgate.sync.backoff import Backoff
    from passgate.sync.client import Transient

    threading.stack_size(256 * 1024)
    # Each checkpoint its own passes: with the same 200 at all 2,000, every row was "possible
    # sharing" with every other checkpoint's (store/pairs.py now bounds that; the storm
    # measures reconnects, not a pass at 2,000 doors).
    work = {i: fleet.make_rows(device_id(i), 1, backlog, fleet.ZERO_CHAIN, own_passes=True)
            for i in ids}
    lock = threading.Lock()
    latencies: list[float] = []
    causes: Counter = Counter()
    acked = Counter()
    ends: list[float] = []

    def run(i: int) -> None:
        rows, cl, backoff = work[i], fleet.client(url, device_id(i)), Backoff()
        prev, pos, mine = fleet.ZERO_CHAIN, 0, []
        time.sleep(max(0.0, start_at - time.time()))
        while pos < len(rows):
            chunk = rows[pos:pos + batch]
            t = time.perf_counter()
            try:
                reply = cl.upload(prev, chunk, {"backlog": len(rows) - pos})
            except Transient as exc:
                mine.append(time.perf_counter() - t)
                cause = ("busy" if exc.status in (429, 503) else
                         f"http_{exc.status}" if exc.status else "network")
                with lock:
                    causes[cause] += 1
                time.sleep(backoff.next_delay(exc.retry_after))
                continue
            mine.append(time.perf_counter() - t)
            backoff.reset()
            n = sum(r.status in ("stored", "duplicate") for r in reply.results)
            with lock:
                acked["rows"] += n
                causes["resent_rows_duplicate"] += sum(r.status == "duplicate"
                                                       for r in reply.results)
            prev, pos = chunk[-1]["chain"], pos + len(chunk)
        with lock:
            latencies.extend(mine)
            ends.append(time.time())

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({"latencies": latencies, "causes": dict(causes), "acked": acked["rows"],
                      "end": max(ends) if ends else start_at}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(a[0], [int(x) for x in a[1].split(",")], int(a[2]), int(a[3]), float(a[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--backlog", type=int, default=200, help="rows queued on each device")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--procs", type=int, default=4, help="client processes")
    ap.add_argument("--threads", type=int, default=8, help="collector worker threads")
    ap.add_argument("--connection-limit", type=int, default=1000)
    args = ap.parse_args()

    from passgate_collector.pgcluster import PgCluster
    from passgate_collector.store import open_store

    with PgCluster() as cluster, tempfile.TemporaryDirectory():
        url = cluster.create_database("storm")
        store = open_store(url)
        t = time.perf_counter()
        for i in range(args.devices):
            fleet.enrol_direct(store, device_id(i))
        store.close()
        print(f"enrolled {args.devices:,} devices in {time.perf_counter() - t:.1f} s")
        port = fleet.free_port()
        collector = fleet.start_collector(url, port, "--threads", str(args.threads),
                                          "--connection-limit", str(args.connection_limit))
        base = f"http://127.0.0.1:{port}"
        # Rows are made before the start instant: give the workers time to build them.
        start_at = time.time() + 5 + args.devices * args.backlog / 40_000
        procs = []
        for k in range(args.procs):
            ids = ",".join(str(i) for i in range(k, args.devices, args.procs))
            if ids:
                procs.append(subprocess.Popen(
                    [sys.executable, __file__, "--worker", base, ids, str(args.backlog),
                     str(args.batch), repr(start_at)], stdout=subprocess.PIPE, text=True))
        outs = []
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:
                raise RuntimeError("a client process failed")
            outs.append(json.loads(out))
        collector.send_signal(signal.SIGTERM)
        collector.wait(60)
        store = open_store(url)
        per_device = store._all("SELECT device_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), "
                                "MAX(seq) FROM scans GROUP BY device_id")
        store.close()

    lat = sorted(x for o in outs for x in o["latencies"])
    causes = sum((Counter(o["causes"]) for o in outs), Counter())
    drain = max(o["end"] for o in outs) - start_at
    sent = args.devices * args.backlog
    stored = sum(r[1] for r in per_device)
    duplicated = sum(r[1] - r[2] for r in per_device)
    complete = sum(1 for r in per_device
                   if r[2] == args.backlog and r[3] == 1 and r[4] == args.backlog)
    lost = sent - (stored - duplicated)
    print(f"devices {args.devices:,}, backlog {args.backlog} rows each ({sent:,} rows), "
          f"batches of {args.batch}; collector {args.threads} threads, connection limit "
          f"{args.connection_limit}")
    print(f"drain time {drain:.1f} s ({sent / drain:,.0f} rows/s), {len(lat):,} requests")
    print(f"request latency p50 {statistics.median(lat):.2f} s, "
          f"p99 {lat[int(0.99 * (len(lat) - 1))]:.2f} s, max {lat[-1]:.2f} s")
    print(f"retries: {causes.get('busy', 0)} busy (503/429 with Retry-After), "
          f"{sum(v for k, v in causes.items() if k.startswith('http_'))} other HTTP, "
          f"{causes.get('network', 0)} timeouts/resets; "
          f"{causes.get('resent_rows_duplicate', 0)} rows answered duplicate on a resend")
    print(f"rows: sent {sent:,}, stored {stored:,}, lost {lost}, duplicated {duplicated}; "
          f"devices complete {complete:,} of {args.devices:,}")


if __name__ == "__main__":
    main()
