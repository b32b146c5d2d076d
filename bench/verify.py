"""Benchmark the offline verifier and the revocation list. Prints figures, asserts nothing.

    .venv/bin/python bench/verify.py [--passes N] [--rounds N] [--revoked N] [--pin] [--profile]

- verifications per second of ``Verifier.check`` on one core (one thread; ``--pin`` also
  pins the process to one CPU), over distinct valid passes, best of ``--rounds``;
- the same loop's Ed25519 signature checks alone, so the non-crypto part is visible;
- revocation list at ``--revoked`` entries: build time, lookup time (hits and misses), the
  array's bytes and the process RSS growth;
- with ``--profile``, the top functions of ``check`` by own time (cProfile).

The machine is shared, so figures vary run to run by 10-20%; compare best-of-N rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import random
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.issuing.issuer import Issuer
from passgate.passes.format import parse_text
from passgate.passes.keys import raw_public
from passgate.passes.revocation import RevocationList
from passgate.passes.truststore import IssuerKey, TrustStore
from passgate.passes.verify import Verifier

NOW = 1_767_261_600  # 2026-01-01T10:00:00Z
ZONES = ["gate-1", "gate-2", "lobby", "garage"]
PURPOSES = [("shopping", 3 * 3600), ("dog_walk", 3600), ("trash", 1800), ("doctor", 3 * 3600)]


def pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def malloc_trim() -> bool:
    """Return freed heap to the OS (glibc), so RSS shows what is still held."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0) or True)
    except (OSError, AttributeError):
        return False


def make_passes(n: int) -> tuple[list[str], TrustStore]:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"passgate bench issuer").digest())
    issuer = Issuer(key, "Bench City")
    rng = random.Random(1)
    texts = []
    for i in range(n):
        purpose, duration = PURPOSES[i % len(PURPOSES)]
        zones = rng.sample(ZONES, rng.randint(1, 2))
        hint = f"AB{i % 10000:04d}" if i % 2 else None
        texts.append(issuer.issue(purpose, zones, NOW - 600, duration, hint=hint,
                                  pass_id=rng.randbytes(12)))
    trust = TrustStore([IssuerKey.from_raw(raw_public(key), issuer="Bench City")])
    return texts, trust


def best_rates(fns: list, rounds: int) -> list[float]:
    """Best seconds per call of each ``fn`` (which returns its call count) over ``rounds``.

    The functions take turns within each round, so a burst of load from other processes on
    this shared machine hits all of them alike, and the best round of each is reported.
    """
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            gc.collect()
            t0 = time.perf_counter()
            calls = fn()
            best[i] = min(best[i], (time.perf_counter() - t0) / calls)
    return best


def bench_verify(texts: list[str], trust: TrustStore, rounds: int, profile: bool,
                 label: str = "") -> None:
    verifier = Verifier(trust)
    zones = [parse_claims_zone(t) for t in texts]
    for text, zone in zip(texts, zones, strict=True):  # sanity: every pass must be accepted
        v = verifier.check(text, NOW, zone)
        if not v.accepted:
            raise SystemExit(f"bench pass not accepted: {v.reason.value} {v.detail}")

    def run_check() -> int:
        check = verifier.check
        for text, zone in zip(texts, zones, strict=True):
            check(text, NOW, zone)
        return len(texts)

    key = trust.keys[0]
    signed = [(s.to_be_signed, s.signature) for s in map(parse_text, texts)]

    def run_crypto() -> int:
        verifies = key.verifies
        for message, signature in signed:
            verifies(message, signature)
        return len(signed)

    per_check, per_sig = best_rates([run_check, run_crypto], rounds)
    print(f"verify{label}: {len(texts)} distinct passes, {rounds} rounds, best round")
    rate = 1 / per_check
    print(f"  Verifier.check          {per_check * 1e6:7.1f} us  -> {rate:8,.0f} verifications/s")
    print(f"  Ed25519 verify alone    {per_sig * 1e6:7.1f} us  -> {1 / per_sig:8,.0f} /s")
    print(f"  everything else         {(per_check - per_sig) * 1e6:7.1f} us per check")
    print(f"  (aim: >= 10,000/s, i.e. <= 100 us per check, of which the signature alone "
          f"takes {per_sig * 1e6:.0f})")
    if profile:
        prof = cProfile.Profile()
        prof.runcall(run_check)
        print("  cProfile of check (own time, top 15):")
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def parse_claims_zone(text: str) -> str:
    from passgate.passes.format import parse_claims

    return parse_claims(parse_text(text).payload).zones[0]


def bench_revocation(n: int, lookups: int = 200_000) -> RevocationList:
    rng = random.Random(2)
    ids = [rng.randbytes(12) for _ in range(n)]
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    revoked = RevocationList.from_pass_ids(ids)
    built = time.perf_counter() - t0
    gc.collect()
    grown = rss_bytes() - before
    trimmed = malloc_trim() and rss_bytes() - before
    hits = [ids[rng.randrange(n)] for _ in range(lookups // 2)]
    misses = [rng.randbytes(12) for _ in range(lookups // 2)]
    found = 0

    def run(sample: list[bytes]) -> int:
        nonlocal found
        for pass_id in sample:
            found += pass_id in revoked
        return len(sample)

    per_hit, per_miss = best_rates([lambda: run(hits), lambda: run(misses)], 3)
    print(f"revocation list: {len(revoked):,} entries")
    print(f"  build from pass ids     {built:7.2f} s")
    print(f"  lookup, revoked id      {per_hit * 1e6:7.2f} us")
    print(f"  lookup, other id        {per_miss * 1e6:7.2f} us")
    print(f"  array                   {revoked.nbytes / 1e6:7.1f} MB")
    print(f"  process RSS growth      {grown / 1e6:7.1f} MB (build temporaries freed)")
    if trimmed:
        print(f"    after malloc_trim     {trimmed / 1e6:7.1f} MB (freed heap returned to the OS)")
    if found != 3 * len(hits):
        print(f"  WARNING: {found} hits counted, expected {3 * len(hits)}")
    return revoked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--revoked", type=int, default=1_000_000)
    ap.add_argument("--pin", action="store_true", help="pin to one CPU (sched_setaffinity)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    print(f"passgate bench/verify.py: one thread, {pin_one_core() if args.pin else 'not pinned'}")
    texts, trust = make_passes(args.passes)
    bench_verify(texts, trust, args.rounds, args.profile)
    if args.revoked:
        trust.revoked = bench_revocation(args.revoked)
        bench_verify(texts, trust, args.rounds, False,
                     f" with {len(trust.revoked):,} revoked ids in the store")


if __name__ == "__main__":
    main()
