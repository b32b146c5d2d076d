"""Benchmark the offline verifier and the revocation list. Prints figures, asserts nothing.

    .venv/bin/python bench/verify.py [--passes N] [--repeats N] [--revoked N] [--profile]

Measured by CPU time of this thread (wall time beside it), ``--repeats`` interleaved rounds
over ``--passes`` distinct valid passes, medians with their spread (``bench/measure.py``):

- ``Verifier.check`` per pass, beside its anchor measured in the same run: the bare libsodium
  Ed25519 verify of the same bytes (``crypto_sign_open`` called through PyNaCl's cffi module
  with no output buffer: the least Python a verify can cost, and what the verifier calls), and
  the ratio (aim: >= 10,000 checks/s and <= 1.5x the bare verify); PyNaCl's own wrapper
  (``nacl.bindings.crypto_sign_open``, the anchor before, ~5 us dearer) is printed beside it;
- revocation list at ``--revoked`` entries: build time, lookup time (hits and misses), the
  array's bytes and the process RSS growth, then ``check`` again with that list in the store;
- with ``--profile``, the top functions of ``check`` by own time (cProfile);
- ``--live N`` (spec 1.2): ``check`` of N distinct live codes (``PG2:``) beside its anchor, the
  bare libsodium Ed25519 verify of level 1 plus the bare ``cryptography`` ECDSA P-256 verify of
  level 2 (the two signatures a live code needs), and the ratio.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import random
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl._sodium import ffi as sodium_ffi
from nacl._sodium import lib as sodium
from nacl.bindings import crypto_sign_open

from passgate.issuing.issuer import Issuer
from passgate.passes.format import parse_text
from passgate.passes.keys import raw_public
from passgate.passes.revocation import RevocationList
from passgate.passes.truststore import IssuerKey, TrustStore
from passgate.passes.verify import Verifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402

NOW = 1_767_261_600  # 2026-01-01T10:00:00Z
ZONES = ["gate-1", "gate-2", "lobby", "garage"]
PURPOSES = [("shopping", 3 * 3600), ("dog_walk", 3600), ("trash", 1800), ("doctor", 3 * 3600)]


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

    raw = trust.keys[0].raw
    signed = [(s.to_be_signed, s.signature) for s in map(parse_text, texts)]

    def run_bare() -> int:
        # The anchor: libsodium's verify of the same bytes, nothing around it.
        sign_open, null = sodium.crypto_sign_open, sodium_ffi.NULL
        for message, signature in signed:
            sm = signature + message
            if sign_open(null, null, sm, len(sm), raw) != 0:
                raise SystemExit("bench signature does not verify")
        return len(signed)

    def run_pynacl() -> int:
        # PyNaCl's wrapper (two buffers and a copy of the message around the same call).
        for message, signature in signed:
            crypto_sign_open(signature + message, raw)
        return len(signed)

    got = measure.repeat({"Verifier.check": run_check, "bare libsodium verify": run_bare,
                          "PyNaCl crypto_sign_open": run_pynacl}, rounds)
    check, bare = got["Verifier.check"], got["bare libsodium verify"]
    pynacl = got["PyNaCl crypto_sign_open"]
    print(f"verify{label}: {len(texts)} distinct passes, {rounds} rounds, CPU of one thread")
    print(check.line(anchor=bare) + f"  -> {measure.rate(check)}")
    print(bare.line() + f"  -> {measure.rate(bare)}")
    print(pynacl.line(anchor=bare))
    print(f"  everything but the signature       {(check.median - bare.median) * 1e6:9.2f} us"
          f" per check (aim: >= 10,000/s and <= 1.50x the bare verify)")
    if profile:
        prof = cProfile.Profile()
        prof.runcall(run_check)
        print("  cProfile of check (own time, top 15):")
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def bench_live(n: int, rounds: int) -> None:
    """Live codes: the verifier against its two bare signature checks."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from passgate.passes import holder

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"passgate bench issuer").digest())
    issuer = Issuer(key, "Bench City")
    rng = random.Random(3)
    codes, parts = [], []
    for i in range(n):
        phone = ec.derive_private_key(rng.randrange(1, 2**255), ec.SECP256R1())
        bound = issuer.issue("shopping", ["gate-1"], NOW - 600, 3 * 3600,
                             pass_id=rng.randbytes(12), holder_key=holder.compressed_point(phone))
        code = holder.make_live_code(bound, phone, NOW - 3, i)
        live = holder.parse_live_text(code)
        l1 = parse_text(bound)
        r, s_ = (int.from_bytes(live.signature[k:k + 32], "big") for k in (0, 32))
        codes.append(code)
        parts.append((l1.to_be_signed, l1.signature, phone.public_key(),
                      live.to_be_signed, encode_dss_signature(r, s_)))
    trust = TrustStore([IssuerKey.from_raw(raw_public(key), issuer="Bench City")])
    verifier = Verifier(trust)
    if not all(verifier.check(c, NOW, "gate-1").accepted for c in codes):
        raise SystemExit("bench live code not accepted")
    raw = trust.keys[0].raw
    ecdsa = ec.ECDSA(hashes.SHA256())

    def run_check() -> int:
        for code in codes:
            verifier.check(code, NOW, "gate-1")
        return n

    def run_bare() -> int:
        for m1, s1, pub, m2, s2 in parts:
            crypto_sign_open(s1 + m1, raw)
            pub.verify(s2, m2, ecdsa)
        return n

    got = measure.repeat({"Verifier.check, live code": run_check,
                          "bare Ed25519 + ECDSA verify": run_bare}, rounds)
    check, bare = got["Verifier.check, live code"], got["bare Ed25519 + ECDSA verify"]
    print(f"verify live codes (PG2:): {n} distinct codes, {rounds} rounds, CPU of one thread")
    print(check.line(anchor=bare) + f"  -> {measure.rate(check)}")
    print(bare.line() + f"  -> {measure.rate(bare)}")


def parse_claims_zone(text: str) -> str:
    from passgate.passes.format import parse_claims

    return parse_claims(parse_text(text).payload).zones[0]


def revoked_id(i: int) -> bytes:
    """The ``i``-th revoked pass id, made again on demand: the bench never holds a million
    Python objects, which a device never does either (it loads a packed bundle), and whose
    freed memory slowed every later check by ~7 us (thread CPU, load 6-9) in this process."""
    return hashlib.sha256(i.to_bytes(4, "big")).digest()[:12]


def bench_revocation(n: int, lookups: int = 200_000) -> RevocationList:
    rng = random.Random(2)
    gc.collect()
    before = rss_bytes()
    t0 = time.process_time()
    revoked = RevocationList.from_pass_ids(map(revoked_id, range(n)))
    built = time.process_time() - t0
    gc.collect()
    grown = rss_bytes() - before
    trimmed = malloc_trim() and rss_bytes() - before
    hits = [revoked_id(rng.randrange(n)) for _ in range(lookups // 2)]
    misses = [rng.randbytes(12) for _ in range(lookups // 2)]  # 12 random bytes: not 0..n
    found = 0

    def run(sample: list[bytes]) -> int:
        nonlocal found
        for pass_id in sample:
            found += pass_id in revoked
        return len(sample)

    got = measure.repeat({"hit": lambda: run(hits), "miss": lambda: run(misses)}, 3)
    per_hit, per_miss = got["hit"].median, got["miss"].median
    print(f"revocation list: {len(revoked):,} entries")
    print(f"  build from pass ids     {built:7.2f} s CPU (making the ids included)")
    print(f"  lookup, revoked id      {per_hit * 1e6:7.2f} us CPU (median of 3)")
    print(f"  lookup, other id        {per_miss * 1e6:7.2f} us CPU")
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
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--revoked", type=int, default=1_000_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--live", type=int, default=200, help="live codes to check (0: none)")
    args = ap.parse_args()
    print("passgate bench/verify.py: one thread, CPU time")
    print(measure.machine_line())
    texts, trust = make_passes(args.passes)
    bench_verify(texts, trust, args.repeats, args.profile)
    if args.live:
        bench_live(args.live, args.repeats)
    if args.revoked:
        trust.revoked = bench_revocation(args.revoked)
        bench_verify(texts, trust, args.repeats, False,
                     f" with {len(trust.revoked):,} revoked ids in the store")


if __name__ == "__main__":
    main()
