"""Apply one verified batch to the store: dedup, chain checks, tamper alerts, device health.

The rules are those of ``docs/sync-protocol.md`` section 4. A row signed by the enrolled key
is stored even when its chain link is wrong (flagged, with an alert): the scan happened, staff
must see it, and rejecting it would only hide the edit in the device's dead-letter table.
Only malformed rows and nonce conflicts are refused, per row; a refused row is kept (and a
conflict alerted) once: sent again, or replayed, it gets the same answer and adds nothing.

Device health and ``last_seen`` move only on a fresh batch: one not taken before (its digest
is kept while a replay could look fresh) that echoes a genuine recent challenge or carries a
``sent_at`` inside the window. A replayed batch changes the dedup answers and nothing else
(``Tx.update_health``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from passgate.journal.schema import ENCODING_VERSION, ZERO_CHAIN, encode_row

from . import liveness, protocol
from .errors import StoredNonce
from .protocol import DUPLICATE, REJECTED, STORED, Batch
from .store import SqlStore, Tx

log = logging.getLogger(__name__)

# Row problems (the ``problem`` column and the ``flag`` of a result).
CHAIN_MISMATCH = "chain_mismatch"  # the row's chain is not SHA-256(prev || row): edited
GAP = "gap"  # rows before it are missing, or prev_chain disagrees with what we hold


def _same(stored: Mapping, row: Mapping) -> bool:
    return encode_row(stored) == encode_row(row) and stored["chain"] == row["chain"]


def chain_of_valid(prev: bytes, row: Mapping) -> bytes:
    """``passgate.journal.schema.chain_of`` for a row :func:`protocol.row_problem` passed, at
    half its cost: such a row's types are exact and its flags sorted and unique, and an array
    of plain items has one encoding, so cbor2's plain encoder gives the canonical bytes
    (tests/test_collector_ingest_fast.py compares the two)."""
    return hashlib.sha256(prev + cbor2.dumps([
        ENCODING_VERSION, row["seq"], row["nonce"], row["t_ms"], row["clock_state"],
        row["verdict"], row["reason"], row["pass_hash"], row["kid"], row["purpose"],
        row["zone"], row["flags"]])).digest()


def _prev_for(i: int, batch: Batch, tx: Tx, alerts: list[tuple[str, str]]) -> bytes | None:
    """The chain value row ``i`` must build on, or None when it cannot be known (a gap)."""
    row = batch.rows[i]
    seq = row["seq"]
    if i > 0 and batch.rows[i - 1]["seq"] == seq - 1:
        claimed = batch.rows[i - 1].get("chain")
        return claimed if isinstance(claimed, bytes) and len(claimed) == 32 else None
    held = ZERO_CHAIN if seq == 1 else tx.chain_at(seq - 1)
    if i == 0 and held is not None and held != batch.prev_chain:
        alerts.append(("chain_break", f"prev_chain of the batch starting at seq {seq} differs "
                                      f"from the collector's row {seq - 1}: rows were replaced"))
        return batch.prev_chain  # the rows may still be consistent among themselves
    if held is None:
        first_missing = batch.rows[i - 1]["seq"] + 1 if i > 0 else tx.max_seq_below(seq) + 1
        alerts.append(("chain_break", f"rows {first_missing}-{seq - 1} missing before seq {seq} "
                                      "(removed on the device?)"))
    return held


def _t_ms(row: Mapping) -> int | None:
    """The row's t_ms if it is one the database can hold (a BIGINT), else None."""
    t = row.get("t_ms")
    return t if type(t) is int and -2 ** 63 <= t < 2 ** 63 else None


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` did: the per-row results, and the newest bundle version then."""

    results: list[dict]
    bundle_version: int | None


def apply_batch(store: SqlStore, batch: Batch, now: int, *, challenge_ms: int | None = None,
                window_s: int = 600) -> list[dict]:
    """Store a verified batch in one transaction; return the per-row results (see
    :func:`apply`)."""
    return apply(store, batch, now, challenge_ms=challenge_ms, window_s=window_s).results


def apply(store: SqlStore, batch: Batch, now: int, *, challenge_ms: int | None = None,
          window_s: int = 600) -> Applied:
    """Store a verified batch in one transaction.

    ``challenge_ms``: when the liveness challenge the batch echoes was issued, if it is one
    the collector made, whatever its age (``liveness.Challenges.genuine_ms``), else None;
    ``Tx.update_health`` judges it.

    A batch that starts past every seq stored for the device (the common case: new rows) is
    inserted without looking its nonces up first: the primary key checks each one as it is
    inserted, so the lookup would only repeat that work. Should a nonce be stored already
    (a row re-sent under a new seq, a device whose journal restarted), the insert raises
    :class:`StoredNonce`, the transaction rolls back whole, and the batch is applied again
    with the lookup, which answers ``duplicate`` or ``nonce_conflict`` row by row. A batch
    that starts at or below the stored seqs (a resend) takes the lookup at once.
    """
    try:
        return _apply(store, batch, now, challenge_ms, window_s, lookup=False)
    except StoredNonce:
        log.info("device %s: a nonce of the batch was stored already; looking them up",
                 batch.device)
        return _apply(store, batch, now, challenge_ms, window_s, lookup=True)


def _apply(store: SqlStore, batch: Batch, now: int, challenge_ms: int | None, window_s: int,
           lookup: bool) -> Applied:
    results: list[dict] = []
    health = protocol.health_fields(batch.status)
    if batch.sent_at is not None:
        health["clock_offset_s"] = batch.sent_at - now
    first_seq = batch.rows[0]["seq"] if batch.rows else None
    with store.batch(batch.device, first_seq) as tx:
        max_seq = tx.held.max_seq
        if lookup or (max_seq is not None and first_seq is not None and first_seq <= max_seq):
            # With each nonce its row's t_ms (PostgreSQL partitions by it: store/partitions.py).
            nonces = [(r["nonce"], _t_ms(r)) for r in batch.rows
                      if isinstance(r.get("nonce"), bytes)]
            known = tx.stored(nonces)  # one query for the whole batch, not one per row
        else:
            known = {}
        to_insert: list[tuple[dict, str | None]] = []
        all_alerts: list[tuple[str, str]] = []
        fine = protocol.rows_ok(batch.rows)  # all rows well-formed: no check row by row
        for i, row in enumerate(batch.rows):
            seq, nonce = row["seq"], row.get("nonce")  # echoed as sent: the device matches on it
            problem = None if fine else protocol.row_problem(row)
            if problem is not None:
                tx.insert_rejected(seq, nonce, row.get("chain"), "invalid_row", problem,
                                   protocol.encode(row), now)
                results.append(protocol.result(seq, nonce, REJECTED, reason="invalid_row"))
                continue
            stored = known.get(nonce)
            if stored is not None:
                if _same(stored, row):
                    results.append(protocol.result(seq, nonce, DUPLICATE))
                else:
                    detail = f"seq {seq}: a stored row has this nonce with other content"
                    if tx.insert_rejected(seq, nonce, row["chain"], "nonce_conflict", detail,
                                          protocol.encode(row), now):
                        all_alerts.append(("nonce_conflict", detail))  # once, not per replay
                    results.append(protocol.result(seq, nonce, REJECTED,
                                                   reason="nonce_conflict"))
                continue
            alerts: list[tuple[str, str]] = []
            prev = _prev_for(i, batch, tx, alerts)
            flag = GAP if alerts else None
            if prev is not None and chain_of_valid(prev, row) != row["chain"]:
                flag = CHAIN_MISMATCH
                alerts.append((CHAIN_MISMATCH, f"row {seq}: chain does not match its content "
                                               "(edited after it was journaled)"))
            to_insert.append((row, flag))
            known[nonce] = row  # a second copy later in this batch is a duplicate
            all_alerts += alerts
            results.append(protocol.result(seq, nonce, STORED, flag=flag))
        tx.insert_scans(to_insert, now)
        for kind, detail in all_alerts:
            tx.alert(kind, detail, now)
        if all_alerts:
            log.warning("device %s: %d tamper alert(s), first: %s", batch.device,
                        len(all_alerts), all_alerts[0][0])
        tx.update_health(health, now, batch.sent_at, challenge_ms=challenge_ms,
                         digest=batch.digest, window_s=window_s,
                         future_slack_ms=liveness.FUTURE_SLACK_MS)
    return Applied(results, tx.held.bundle_version)
