"""The collector's fast ingest paths decide exactly as the exact checks they stand in for.

Issue 11 point 1 cut the collector's Python work per row with four shortcuts; each is pinned
here against the slow, obviously right version on valid input and on mutated input:

- ``protocol.loads_payload`` accepts a payload, with the same value, exactly when
  ``cose.loads_strict`` does, and otherwise refuses it with the same words;
- ``protocol.row_problem`` says a row is fine only when ``protocol.row_detail`` does, and the
  shortcut is taken for the ordinary rows (else it would save nothing);
- ``ingest.chain_of_valid`` equals the journal's ``chain_of`` for every valid row;
- ``protocol.batch_reply`` is byte for byte the deterministic CBOR of ``protocol.encode``;

and PostgreSQL's COPY, which has no ``ON CONFLICT``, still never stores a row twice.
"""

from __future__ import annotations

import logging
import random

import cbor2
import pytest

from collector_support import T0, FakeDevice, corrupted, pg_cluster, store  # noqa: F401
from passgate.errors import PassFormatError
from passgate.journal.schema import ZERO_CHAIN, chain_of
from passgate.passes import cose
from passgate_collector import protocol
from passgate_collector.errors import StoredNonce
from passgate_collector.ingest import CHAIN_MISMATCH, GAP, apply_batch, chain_of_valid


def _row(seq: int, rng: random.Random) -> dict:
    row = {
        "seq": seq, "nonce": rng.randbytes(16), "t_ms": 1_767_261_600_000 + seq,
        "clock_state": rng.choice(sorted(protocol.CLOCK_STATES)),
        "verdict": rng.choice(sorted(protocol.VERDICTS)), "reason": "valid",
        "pass_hash": None if seq % 5 == 0 else rng.randbytes(16),
        "kid": None if seq % 5 == 0 else "a1b2c3d4e5f60718",
        "purpose": None if seq % 5 == 0 else ("work", "", "doctor")[seq % 3],
        "zone": "gate-1", "flags": [["stale"], [], ["a", "stale"]][seq % 3],
    }
    row["chain"] = chain_of(ZERO_CHAIN, row)
    return row


def _payload(rows: list, status: object = None) -> dict:
    return {"v": 1, "t": "batch", "device": "gate-1", "sent_at": 1_767_261_600,
            "prev_chain": ZERO_CHAIN, "rows": rows, "status": status or {"backlog": 3}}


def _outcome(fn, data: bytes) -> tuple[str, object]:
    try:
        return "ok", fn(data)
    except PassFormatError as exc:
        return "refused", exc.detail


def _strict(data: bytes) -> object:
    return cose.loads_strict(data, "payload")


def test_fast_payload_decode_agrees_with_the_exact_check_on_valid_and_odd_payloads():
    rng = random.Random(1)
    rows = [_row(i, rng) for i in range(1, 31)]
    valid = cose.dumps(_payload(rows))
    shuffled = dict(reversed(list(rows[0].items())))  # keys out of canonical order
    cases = [
        valid,
        cose.dumps(_payload(rows, {"nested": {"b": [1, {"a": None}]}, "z": True})),
        cbor2.dumps(_payload([shuffled])),  # a row map not sorted
        cbor2.dumps(_payload(rows[:1], {"clock": 1.5})),  # a float
        cbor2.dumps(_payload(rows[:1], {"tag": cbor2.CBORTag(99, 1)})),  # a tag
        cbor2.dumps(_payload(rows[:1], {"u": cbor2.undefined})),  # a simple value
        valid + b"\x00",  # trailing bytes
        valid.replace(b"\x67sent_at\x1a", b"\x67sent_at\x1b\x00\x00\x00\x00", 1),  # long int
        cbor2.dumps({"t": "batch", "v": 1}),  # top-level map unsorted
    ]
    assert cases[-2] != valid
    for data in cases:
        assert _outcome(protocol.loads_payload, data) == _outcome(_strict, data)
    assert _outcome(protocol.loads_payload, valid)[0] == "ok"
    assert _outcome(protocol.loads_payload, cases[2])[0] == "refused"


def test_fast_payload_decode_agrees_with_the_exact_check_on_random_corruptions():
    rng = random.Random(2)
    valid = cose.dumps(_payload([_row(i, rng) for i in range(1, 6)]))
    accepted = 0
    for data in corrupted(valid, 2):
        fast = _outcome(protocol.loads_payload, data)
        assert fast == _outcome(_strict, data), data.hex()
        accepted += fast[0] == "ok"
    assert accepted > 100  # many corruptions stay valid CBOR (bytes inside strings): compared


def test_rows_of_one_shape_are_checked_a_column_at_a_time_and_decide_as_the_exact_check():
    rng = random.Random(6)
    rows = [_row(i, rng) for i in range(1, 21)]
    canon = [dict(sorted(r.items(), key=lambda kv: (len(kv[0]), kv[0]))) for r in rows]
    assert cose._maps_of_one_shape(canon) is True  # the batch's rows take the column path

    def one(i: int, key: str, value: object) -> list:
        out = [dict(r) for r in canon]
        out[i][key] = value
        return out

    unsorted = [dict(reversed(list(r.items()))) for r in canon]
    two_shapes = canon[:5] + unsorted[5:6] + canon[6:]
    cases = [
        canon, unsorted, two_shapes,
        one(7, "t_ms", 1.5),  # a float in one row's column
        one(3, "flags", ["a", 2.5]),  # a float inside one row's list
        one(9, "flags", ["a", cbor2.CBORTag(99, 1)]),  # a tag inside one row's list
        one(0, "kid", {"b": 1, "a": 2}),  # an unsorted map as one row's value
        one(0, "kid", {"a": 1, "b": [1, 2]}),  # a sorted nested map: plain
        one(11, "zone", cbor2.undefined),  # a simple value
        [{1: "a", 2: "b"}, {1: "c", 2: "d"}],  # maps with integer keys
        [{"b": 1, "a": 2}, {"b": 3, "a": 4}],  # one shape, keys out of order
    ]
    def wire(batch: list) -> bytes:  # the payload's own map in canonical order, rows as given
        return cbor2.dumps(dict(sorted(_payload(batch).items(),
                                       key=lambda kv: (len(kv[0]), kv[0]))))

    for batch in cases:
        data = wire(batch)
        assert _outcome(protocol.loads_payload, data) == _outcome(_strict, data)
    assert wire(canon) == cose.dumps(_payload(canon))
    for ok in (canon, cases[7]):
        assert _outcome(protocol.loads_payload, wire(ok))[0] == "ok"
    for refused in (unsorted, two_shapes, cases[3], cases[4], cases[6], cases[-1]):
        assert _outcome(protocol.loads_payload, wire(refused))[0] == "refused"
    assert cose._maps_of_one_shape([{"b": 1, "a": 2}, {"b": 3, "a": 4}]) is False
    assert cose._maps_of_one_shape([{1: "a"}, {1: "b"}]) is None  # not text keys: one by one
    assert cose._maps_of_one_shape(two_shapes) is None


_ODD_VALUES = [None, True, False, 0, -1, 1, 1 << 63, (1 << 63) - 1, 1.0, "", "x", "a b",
               "é" * 64, "x" * 65, "a\x00", "a\x1f", "a\x7f", b"", bytes(16), bytes(32),
               [], ["stale"], ["b", "a"], ["a", "a"], [""], ["a b"], [1], ["x" * 65],
               [f"f{i:02d}" for i in range(17)], ("stale",), "trusted", "floor", "deny",
               "accept", {"a": 1}]


def _mutate(row: dict, rng: random.Random) -> None:
    """One random damage: a field dropped, a key added, or a field given an odd value."""
    fields = list(protocol.ROW_FIELDS)
    choice = rng.random()
    if choice < 0.05:
        row.pop(rng.choice(fields), None)
    elif choice < 0.1:
        row[rng.choice(["extra", 1, b"seq"])] = 1
    else:
        row[rng.choice(fields)] = rng.choice(_ODD_VALUES)


def test_the_row_shortcut_never_passes_a_row_the_detailed_check_refuses():
    rng = random.Random(3)
    passed = 0
    for i in range(6000):
        row = _row(i % 50 + 1, rng)
        for _ in range(rng.randint(1, 2)):
            _mutate(row, rng)
        fast = protocol.row_problem(row)
        assert fast == protocol.row_detail(row), row
        passed += fast is None
    assert passed > 100


def test_ordinary_rows_take_the_shortcut_and_are_well_formed():
    rng = random.Random(4)
    for seq in range(1, 40):
        row = _row(seq, rng)
        assert protocol._row_ok(row), row
        assert protocol.row_detail(row) is None


def test_chain_of_valid_rows_is_the_journal_chain():
    rng = random.Random(5)
    prev = ZERO_CHAIN
    for seq in range(1, 200):
        row = _row(seq, rng)
        if seq % 7 == 0:
            row["t_ms"] = (1 << 63) - 1
            row["zone"] = "z" * 64
        assert protocol.row_problem(row) is None
        assert chain_of_valid(prev, row) == chain_of(prev, row)
        prev = row["chain"]


@pytest.mark.parametrize("version", [None, 0, 7, (1 << 63) - 1])
def test_batch_reply_is_the_deterministic_encoding(version):
    nonce = bytes(range(16))
    results = [
        protocol.result(1, nonce, protocol.STORED),
        protocol.result(2, nonce, protocol.STORED, flag=GAP),
        protocol.result(3, nonce, protocol.STORED, flag=CHAIN_MISMATCH),
        protocol.result(4, nonce, protocol.DUPLICATE),
        protocol.result(5, None, protocol.REJECTED, reason="invalid_row"),
        protocol.result(1 << 40, "odd", protocol.REJECTED, reason="nonce_conflict"),
    ]
    body = protocol.batch_reply(results, version)
    assert body == protocol.encode({"v": protocol.VERSION, "results": results,
                                    "bundle_version": version})
    assert cose.loads_strict(body, "reply")["results"][2] == {
        "seq": 3, "flag": CHAIN_MISMATCH, "nonce": nonce, "status": protocol.STORED}


def test_a_row_inserted_twice_past_the_lock_is_never_stored_twice(store):  # noqa: F811
    """A nonce that reaches ``insert_scans`` stored already (past the lookup, or with none:
    ``ingest.apply`` inserts new batches without one) fails the batch whole on both backends:
    StoredNonce, the transaction rolls back, nothing of it is kept."""
    dev = FakeDevice("gate-twice")
    store.add_token(b"t" * 32, dev.device_id, T0, T0 + 60)
    store.enrol(b"t" * 32, dev.device_id, dev.pubkey, b"k" * 8, T0)
    rows = dev.scans(3)
    with store.batch(dev.device_id) as tx:
        tx.insert_scans([(rows[0], None)], T0)
    with pytest.raises(StoredNonce), store.batch(dev.device_id) as tx:
        tx.insert_scans([(rows[1], None), (rows[0], None), (rows[2], None)], T0)
    seqs = [r[0] for r in store._all("SELECT seq FROM scans WHERE device_id = ? ORDER BY seq",
                                     (dev.device_id,))]
    assert seqs == [1]
    hours = store._all("SELECT SUM(n) FROM scan_hours")
    assert hours[0][0] == 1  # the counts rolled back with the rows


def _statuses(out: list[dict]) -> list[str]:
    return [r.get("reason") or r["status"] for r in out]


def test_a_new_batch_holding_a_stored_nonce_is_looked_up_and_answered_row_by_row(
        store, caplog):  # noqa: F811
    """A batch past every stored seq goes in without a lookup; a stored nonce in it (a row
    re-sent under a new seq) rolls it back and it is applied again with the lookup: the new
    rows stored once, the reused nonce a ``nonce_conflict``, nothing else changed."""
    caplog.set_level(logging.INFO, logger="passgate_collector.ingest")
    dev = FakeDevice("gate-reuse")
    store.add_token(b"r" * 32, dev.device_id, T0, T0 + 60)
    store.enrol(b"r" * 32, dev.device_id, dev.pubkey, b"k" * 8, T0)
    first = dev.scans(3)
    assert _statuses(apply_batch(store, _batch(dev, first), T0 + 60)) == ["stored"] * 3
    assert "looking them up" not in caplog.text  # new rows: no lookup, no fallback
    more = dev.scans(2)
    # Row 2 re-sent under a new seq: its nonce and t_ms (PostgreSQL's partitions are unique
    # on (device_id, nonce, t_ms); a nonce with another t_ms: test_collector_partitions.py).
    reused = dict(dev.scan(T0 + 900), nonce=first[1]["nonce"], t_ms=first[1]["t_ms"])
    out = apply_batch(store, _batch(dev, [*more, reused]), T0 + 60)
    assert _statuses(out) == ["stored", "stored", "nonce_conflict"]
    assert "looking them up" in caplog.text
    assert [r[0] for r in store._all("SELECT seq FROM scans WHERE device_id = ? ORDER BY seq",
                                     (dev.device_id,))] == [1, 2, 3, 4, 5]
    assert store._all("SELECT SUM(n) FROM scan_hours")[0][0] == 5  # counted once
    assert [a["kind"] for a in store.alerts(10)] == ["nonce_conflict"]
    # A resend of stored rows (seq at or below the stored ones) is looked up at once.
    assert _statuses(apply_batch(store, _batch(dev, first + more), T0 + 60)) == \
        ["duplicate"] * 5


def _batch(dev: FakeDevice, rows: list[dict]) -> protocol.Batch:
    return protocol.parse_batch(protocol.decode_signed(dev.batch_body(rows), "batch"))


def test_sharing_pairs_are_found_when_the_stored_rows_are_not_consecutive(store):  # noqa: F811
    """A batch whose stored rows skip a seq (a malformed row between them) sends its scans
    to the pairs statement instead of reading them back by seq range: same pairs."""
    north, south = FakeDevice("gate-north"), FakeDevice("gate-south")
    for dev in (north, south):
        store.add_token(dev.device_id.encode() * 2, dev.device_id, T0, T0 + 60)
        store.enrol(dev.device_id.encode() * 2, dev.device_id, dev.pubkey, b"k" * 8, T0)
    shared = b"s" * 16
    apply_batch(store, _batch(north, [north.scan(T0 + 10, ph=shared)]), T0 + 60)
    rows = [south.scan(T0 + 20, ph=b"x" * 16), dict(south.scan(T0 + 21), zone="\x00"),
            south.scan(T0 + 30, ph=shared)]
    assert _statuses(apply_batch(store, _batch(south, rows), T0 + 60)) == [
        "stored", "invalid_row", "stored"]
    assert [(p["first_device"], p["second_device"], p["second_ms"])
            for p in store.shared_passes(3_600_000, 0, 10)] == [
        ("gate-north", "gate-south", (T0 + 30) * 1000)]


def test_the_batch_row_check_passes_a_batch_only_when_every_row_passes_the_detailed_check():
    rng = random.Random(7)
    passed = refused = 0
    for i in range(3000):
        batch = [_row(seq, rng) for seq in range(1, rng.randint(1, 6) + 1)]
        for _ in range(rng.randint(0, 2)):  # none, one or two rows mutated
            _mutate(rng.choice(batch), rng)
        fast = protocol.rows_ok(batch)
        # Exactly the row-by-row shortcut's answer, which passes only rows the detailed
        # check passes (above); it refuses some rows that check passes (a tuple of flags).
        assert fast == all(protocol._row_ok(r) for r in batch), (i, batch)
        assert not fast or all(protocol.row_detail(r) is None for r in batch), (i, batch)
        passed += fast
        refused += not fast
    assert passed > 300 and refused > 300
    assert protocol.rows_ok([]) is False
    assert protocol.rows_ok([dict(_row(1, rng), flags=["b", "a"])]) is False  # unsorted
    assert protocol.rows_ok([dict(_row(1, rng), flags=["a", "a"])]) is False  # repeated
    assert protocol.rows_ok([dict(_row(1, rng), flags=["a b"])]) is False
    assert protocol.rows_ok([_row(1, rng), dict(_row(2, rng), seq=True)]) is False


def test_a_remembered_device_key_verifies_as_before_and_a_refused_key_stays_refused():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from passgate.passes.keys import kid_of, raw_public

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pub = raw_public(key)
    payload = _payload([])
    good = protocol.decode_signed(protocol.sign_request(payload, key), "batch")
    forged = protocol.decode_signed(protocol.sign_request(payload, other), "batch")
    for _ in range(3):  # the first call makes the key, the others take it remembered
        assert good.verifies_with(pub) is True
        assert forged.verifies_with(pub) is False
        assert forged.verifies_with(raw_public(other)) is True
    # The identity point verifies a trivial signature (s = 0, R = identity) for every
    # message (docs FIELD_NOTES 5): refused every time, and never remembered as a key.
    identity = bytes([1]) + bytes(31)
    trivial = protocol.decode_signed(cose.encode_sign1(
        cose.dumps(payload), lambda _tbs: identity + bytes(32),
        {cose.HDR_ALG: cose.ALG_EDDSA, cose.HDR_KID: kid_of(identity)}), "batch")
    held = protocol._public_key.cache_info().currsize
    for _ in range(2):
        assert trivial.verifies_with(identity) is False
    assert protocol._public_key.cache_info().currsize == held
