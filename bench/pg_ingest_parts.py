"""PostgreSQL's share of ingest by part: ``ingest.apply`` with parts switched off, in process.

    .venv/bin/python bench/pg_ingest_parts.py [--rows 12000] [--rounds 3]
        [--history 0,1000000] [--variants full,unbounded,nolock,nofind,nopairs,norollup]

Prints figures, asserts nothing; shares, not a feature to switch off. A throwaway
PostgreSQL (durable), two databases made as ``bench/sync.py`` makes them (0 and 1,000,000
rows stored for the device, the weekly partitions of a 90-day window), and in each round
every (history, variant) in turn applies ``--rows`` new rows in 200-row batches; the CPU of
this process and of the server (postmaster and children, ``/proc``, 10 ms ticks) per row.

Variants: ``full``, the code as it is; ``unbounded``, the sharing probes without the batch's
time range (store/pairs.py before it: each probe pruned at run time over every partition);
``nolock``, without the sharing statement's advisory locks; ``nofind``, without the statement
that finds and stores the pairs; ``nopairs``, without either; ``norollup``, without the hourly
counts. The anchor is ``full`` in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402
import measure  # noqa: E402
import sync  # noqa: E402

VARIANTS = ("full", "unbounded", "nolock", "nofind", "nopairs", "norollup")


def switch(variant: str) -> None:
    """Set the module attributes ingest reads to the variant's (``full`` restores them)."""
    from passgate_collector.store import pairs, rollup

    orig = switch.__dict__.setdefault("orig", {
        "lock": pairs.PG_LOCK, "find": pairs.PG_PAIRS_RANGE, "note": pairs.note,
        "rollup": rollup.add})
    # A statement that takes the same parameters and does nothing.
    nothing = ("SELECT %(d)s::text, %(w)s::bigint, %(lo)s::bigint, %(hi)s::bigint, "
               "%(tlo)s::bigint, %(thi)s::bigint, %(plo)s::bigint, %(phi)s::bigint")
    bound = "AND t_ms >= %(plo)s AND t_ms <= %(phi)s "
    if bound not in orig["find"]:
        raise SystemExit("store/pairs.py changed: its probes' bound is not where expected")
    pairs.PG_LOCK = "SELECT %(keys)s::text" if variant == "nolock" else orig["lock"]
    pairs.PG_PAIRS_RANGE = (nothing if variant == "nofind" else
                            orig["find"].replace(bound, "") if variant == "unbounded" else
                            orig["find"])
    pairs.note = (lambda *a, **k: None) if variant == "nopairs" else orig["note"]
    rollup.add = (lambda *a, **k: None) if variant == "norollup" else orig["rollup"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=12_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--history", default="0,1000000",
                    help="comma-separated counts of rows already stored for the device")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    histories = [int(h) for h in args.history.split(",")]
    variants = args.variants.split(",")
    if not set(variants) <= set(VARIANTS) or "full" not in variants:
        ap.error(f"--variants: some of {', '.join(VARIANTS)}, full among them")
    from passgate_collector.ingest import apply
    from passgate_collector.pgcluster import PgCluster
    from passgate_collector.protocol import Batch
    from passgate_collector.store import open_store

    cpu: dict[tuple[int, str], list[tuple[float, float]]] = {}
    with PgCluster(durable=True) as cluster:
        pm = fleet.postmaster_pid(cluster)
        states = {}
        for h in histories:
            st = sync.prepare("postgresql", cluster.create_database(f"parts_{h}"), h, pm,
                              None, "time")
            st["collector"].kill()  # in process here: no HTTP
            st["collector"].wait()
            st["store"] = open_store(st["db_url"])
            states[h] = st
        try:
            for _ in range(args.rounds):
                for h in histories:
                    for v in variants:
                        st = states[h]
                        switch(v)
                        rows = fleet.make_rows(sync.DEVICE, st["first"], args.rows, st["prev"])
                        prev = st["prev"]
                        c0, s0 = time.process_time(), fleet.server_cpu(pm)
                        for i in range(0, args.rows, 200):
                            out = apply(st["store"], Batch(sync.DEVICE, None, prev,
                                                           tuple(rows[i:i + 200]), {}),
                                        fleet.T0 + 10 ** 6).results
                            if any(r["status"] != "stored" for r in out):
                                raise RuntimeError(f"not stored: {out[:2]}")
                            prev = rows[min(i + 200, args.rows) - 1]["chain"]
                        cpu.setdefault((h, v), []).append(
                            (time.process_time() - c0, fleet.server_cpu(pm) - s0))
                        st["prev"], st["first"] = prev, st["first"] + args.rows
        finally:
            switch("full")
            for st in states.values():
                st["store"].close()
    print(measure.machine_line())
    print(f"ingest.apply in process, {args.rows:,} rows in 200-row batches, {args.rounds} "
          "rounds; us per row, median (lowest-highest)")
    for h in histories:
        anchor = statistics.median(s for _c, s in cpu[(h, "full")])
        for v in variants:
            us = [(c / args.rows * 1e6, s / args.rows * 1e6) for c, s in cpu[(h, v)]]
            cl, sv = sorted(c for c, _s in us), sorted(s for _c, s in us)
            print(f"{h:>9,} rows  {v:<10} collector {statistics.median(cl):5.1f} "
                  f"({cl[0]:.1f}-{cl[-1]:.1f})  server {statistics.median(sv):5.1f} "
                  f"({sv[0]:.1f}-{sv[-1]:.1f})  "
                  f"{statistics.median(sv) / (anchor / args.rows * 1e6):.2f}x the anchor")
    print("anchor: the server's CPU per row with the code as it is (full), same rounds")


if __name__ == "__main__":
    main()
