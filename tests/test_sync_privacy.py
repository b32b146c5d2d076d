"""Privacy: known pass ids, holder hints and the issuer's name never reach the device
database, its WAL, the logs or the bytes uploaded to the collector.

Scans go through the scanner's real steps (``Verifier.check`` -> ``Journal.pass_hash`` ->
``ScanRecord.of`` -> ``Journal.record``, as ``passgate.checkpoint.loop`` does), accepted and denied
alike; then the sync agent uploads them to a real collector on 127.0.0.1 while every request
body is captured. Each secret is searched in several spellings (raw, hex, base64, base64url).
"""

from __future__ import annotations

import base64
import logging
import os
import random
import time

import pytest

pytest.importorskip("flask", reason="collector extra not installed: pip install -e '.[collector]'")
pytest.importorskip("waitress", reason="collector extra not installed")

from conftest import ISSUER_NAME  # noqa: E402
from passgate.clock.clock import ClockState, TimeReading  # noqa: E402
from passgate.journal.journal import Journal, ScanRecord  # noqa: E402
from passgate.sync.agent import SyncAgent  # noqa: E402
from passgate.sync.client import CollectorClient  # noqa: E402
from passgate.sync.devicekey import load_device_key, new_device_key  # noqa: E402
from passgate.sync.transport import HttpTransport  # noqa: E402
from sync_support import HASH_KEY, FaultTransport, LiveCollector, collector_rows  # noqa: E402

DEVICE, ZONE = "gate-1", "gate-1"
TOKEN = "enrol-" + "p" * 40


def spellings(secret: bytes) -> list[bytes]:
    """The forms a leaked byte string would most likely take in a file, a log or a payload."""
    forms = [secret, secret.hex().encode(), secret.hex().upper().encode(),
             base64.b64encode(secret).rstrip(b"="), base64.urlsafe_b64encode(secret).rstrip(b"=")]
    return [f for f in forms if len(f) >= 8]


def text_spellings(text: str) -> list[bytes]:
    raw = text.encode()
    return [raw, raw.lower(), raw.upper(), text.encode("utf-16-le"), raw.hex().encode()]


def test_no_pass_id_hint_or_issuer_name_leaves_the_scanner(tmp_path, issuer, verifier, now,
                                                            caplog):
    caplog.set_level(logging.DEBUG)  # everything any passgate module logs, debug included
    rng = random.Random(99)
    hints = [f"ZQ{rng.randrange(10**6):06d}" for _ in range(12)]
    passes = []  # (pass id, hint, text)
    for i in range(60):
        pid, hint = rng.randbytes(16), hints[i % len(hints)]
        zones = [ZONE] if i % 4 else ["gate-9"]  # some for another zone: denied wrong_zone
        start = now - 3600 if i % 5 else now - 3 * 86400  # some long expired
        text = issuer.issue("shopping", zones, start, 3 * 3600, hint=hint, pass_id=pid)
        passes.append((pid, hint, text))
    # A forged one: a valid structure signed by a key the checkpoint does not trust.
    from conftest import fixed_key
    from passgate.issuing.issuer import Issuer

    forger = Issuer(fixed_key("forger"), ISSUER_NAME)
    pid = rng.randbytes(16)
    passes.append((pid, "ZQ999999", forger.issue("work", [ZONE], now - 60, 3600,
                                                 hint="ZQ999999", pass_id=pid)))

    journal_path = tmp_path / "journal.sqlite"
    scanner = Journal(journal_path, HASH_KEY, DEVICE)
    verdicts = set()
    for _, _, text in passes:
        reading = TimeReading(float(now), ClockState.TRUSTED)
        v = verifier.check(text, reading.now, ZONE)
        verdicts.add(v.reason.value)
        ph = scanner.pass_hash(v.pass_id) if v.pass_id else None
        scanner.record(ScanRecord.of(v, reading, ZONE, os.urandom(16), ph))
    assert {"valid", "wrong_zone", "expired"} <= verdicts and len(verdicts) >= 4

    with LiveCollector(f"sqlite:///{tmp_path}/collector.db") as collector:
        key = load_device_key(new_device_key(tmp_path / "sync")[0])
        collector.add_token(DEVICE, TOKEN)
        capture = FaultTransport(HttpTransport(), rng, rate=0.0, keep_payloads=True)
        client = CollectorClient(collector.url, DEVICE, key, now=time.time, transport=capture)
        client.enrol(TOKEN)
        syncer = Journal(journal_path, os.urandom(32))
        assert SyncAgent(syncer, client, now=time.time, batch_size=16).run_round().ok
        assert len(collector_rows(tmp_path / "collector.db", DEVICE)) == len(passes)
        # Read the files while both connections are open, so the WAL has not been folded
        # back into the database and deleted.
        wal = journal_path.with_name(journal_path.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0
        haystacks = {
            "journal database": journal_path.read_bytes(),
            "journal WAL": wal.read_bytes(),
            "upload payloads": b"\n".join(capture.payloads),
            "logs": "\n".join(f"{r.name} {r.getMessage()} {r.args!r}"
                              for r in caplog.records).encode(),
        }
        syncer.close()
    scanner.close()

    assert len(capture.payloads) >= 5  # enrolment + batches of 16 + heartbeat
    needles = {f"pass id {i}": spellings(pid) for i, (pid, _, _) in enumerate(passes)}
    needles |= {f"hint {h}": text_spellings(h) for h in {h for _, h, _ in passes}}
    needles[f"issuer name {ISSUER_NAME!r}"] = text_spellings(ISSUER_NAME)
    needles |= {f"pass text {i}": [t.encode(), t[4:40].encode()]
                for i, (_, _, t) in enumerate(passes)}
    leaks = [f"{what} in {where}" for what, forms in needles.items()
             for where, hay in haystacks.items() if any(f in hay for f in forms)]
    assert leaks == []
    # The search can see: the logs were captured, and the keyed pass hashes (what the
    # journal stores instead of ids) are found where they belong.
    assert b"enrolled" in haystacks["logs"]
    ph = Journal(journal_path, HASH_KEY).pass_hash(passes[1][0])
    assert ph in haystacks["upload payloads"] and ph in haystacks["journal database"] + haystacks[
        "journal WAL"]
