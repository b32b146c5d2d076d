"""The agent's fast CBOR paths give exactly what the exact ones give.

``passgate.sync.client.loads_reply`` stands in for ``cose.loads_strict`` (decode, then
re-encode in Python and compare): it accepts an answer, with the same value, exactly when
the exact check does, and otherwise refuses it with the same words; a real batch reply
takes the shortcut (else it would save nothing). ``dumps_payload`` stands in for
``cose.dumps`` (cbor2's canonical mode, which sorts every map): the same bytes for any
value, and a real batch takes the shortcut.
"""

from __future__ import annotations

import random

import cbor2
import pytest

from collector_support import corrupted
from passgate.errors import PassFormatError
from passgate.passes import cose
from passgate.sync import client
from passgate_collector import protocol


def _reply(n: int, rng: random.Random) -> bytes:
    results = []
    for seq in range(1, n + 1):
        r = protocol.result(seq, rng.randbytes(16), rng.choice(
            [protocol.STORED, protocol.DUPLICATE, protocol.REJECTED]))
        if seq % 7 == 0:
            r = protocol.result(seq, rng.randbytes(16), protocol.REJECTED, reason="invalid_row")
        if seq % 11 == 0:
            r = protocol.result(seq, rng.randbytes(16), protocol.STORED, flag="gap")
        results.append(r)
    return protocol.batch_reply(results, rng.choice([None, 7, 1 << 40]))


def _outcome(fn, data: bytes) -> tuple[str, object]:
    try:
        return "ok", fn(data, "batch reply")
    except PassFormatError as exc:
        return "refused", exc.detail


def test_a_batch_reply_takes_the_shortcut(monkeypatch):
    data = _reply(200, random.Random(1))
    assert cose.plainly_canonical(cose.loads(data, "r")) and cbor2.dumps(cose.loads(data, "r")) \
        == data

    def no_exact_check(*_a, **_k):
        raise AssertionError("the exact check ran")

    want = cose.loads_strict(data, "batch reply")
    monkeypatch.setattr(cose, "loads_strict", no_exact_check)
    assert client.loads_reply(data, "batch reply") == want


@pytest.mark.parametrize("data", [
    cbor2.dumps({"v": 1, "results": [{"seq": 1, "status": "stored", "nonce": b"n"}]}),  # keys
    cbor2.dumps({"v": 1, "x": 1.5}),  # a float
    cbor2.dumps({"v": 1, "x": cbor2.CBORTag(99, 1)}),  # a tag
    cbor2.dumps({"v": 1, "x": cbor2.undefined}),  # a simple value
    cbor2.dumps({1: 1, "v": 1}),  # a key that is not text
    cbor2.dumps({"ü": 1, "v": 1}),  # a key that is not ASCII
    cbor2.dumps({"v": 1}) + b"\x00",  # trailing bytes
    b"\xa1\x61v\x1b\x00\x00\x00\x00\x00\x00\x00\x01",  # an integer not in its shortest form
    b"\xa1\x7f\x61v\xff\x01",  # an indefinite-length key
    b"\xa2\x61v\x01\x61v\x02",  # a duplicate key
    cbor2.dumps({"v": 1, "results": []}),  # valid
    cbor2.dumps({"a": [1, [b"x", None, True]], "bb": {"c": -5}}),  # valid, nested
])
def test_the_shortcut_agrees_with_the_exact_check_on_odd_answers(data):
    assert _outcome(client.loads_reply, data) == _outcome(cose.loads_strict, data)


def test_the_shortcut_agrees_with_the_exact_check_on_random_corruptions():
    valid = _reply(6, random.Random(2))
    accepted = 0
    for data in corrupted(valid, 2):
        fast = _outcome(client.loads_reply, data)
        assert fast == _outcome(cose.loads_strict, data), data.hex()
        accepted += fast[0] == "ok"
    assert accepted > 100  # many corruptions stay valid CBOR (bytes inside strings): compared


def _batch_fields(n: int, status: dict) -> dict:
    import hashlib

    from passgate.journal.schema import ZERO_CHAIN, chain_of, new_nonce

    rows, prev = [], ZERO_CHAIN
    for seq in range(1, n + 1):
        row = {"seq": seq, "nonce": new_nonce(1_767_261_600_000 + seq), "t_ms": 1_767_261_600_000
               + seq, "clock_state": "trusted", "verdict": "accept", "reason": "valid",
               "pass_hash": None if seq % 4 == 0 else hashlib.sha256(b"%d" % seq).digest()[:16],
               "kid": "a1b2c3d4e5f60718", "purpose": "work", "zone": "gate-1",
               "flags": ["stale", "no_relay"] if seq % 3 == 0 else []}
        row["chain"] = prev = chain_of(prev, row)
        rows.append(client.row_to_wire(row))
    return {"v": 1, "sent_at": 1_767_261_600, "t": "batch", "device": "gate-1",
            "prev_chain": ZERO_CHAIN, "rows": rows, "status": client.in_key_order(status)}


def test_a_batch_payload_is_encoded_without_sorting_and_as_before(monkeypatch):
    fields = client.in_key_order(_batch_fields(200, {"dead_letters": 0, "backlog": 5}))
    want = cose.dumps(fields)

    def no_sorting(*_a, **_k):
        raise AssertionError("the canonical encoder ran")

    monkeypatch.setattr(cose, "dumps", no_sorting)
    assert client.dumps_payload(fields) == want


@pytest.mark.parametrize("value", [
    {"b": 1, "a": 2},  # unsorted
    {"aa": 1, "b": 2},  # longer key first
    {1: "x", "a": 2},  # a key that is not text
    {"é": 1},  # a key that is not ASCII
    {"a": 1.5},  # a float
    {"a": (1, 2)},  # a tuple
    {"a": [{"z": 1, "y": 2}]},  # an unsorted map inside a list
    {"a": True, "b": None, "c": b"", "d": -(1 << 63), "e": (1 << 64) - 1},
    {"a": cbor2.CBORTag(99, 1)},
    [1, "x", b"y", None],
])
def test_the_payload_encoder_gives_the_canonical_bytes_for_any_value(value):
    assert client.dumps_payload(value) == cose.dumps(value)


def test_in_key_order_sorts_text_keys_and_leaves_others_alone():
    assert list(client.in_key_order({"status": 1, "t": 2, "rows": 3, "v": 4})) == [
        "t", "v", "rows", "status"]
    odd = {2: "a", "b": 1}
    assert client.in_key_order(odd) == odd and list(client.in_key_order(odd)) == [2, "b"]
    for status in ({"backlog": 1, "dead_letters": 2}, {"z": 1, 5: 2}):
        fields = _batch_fields(3, status)
        assert client.dumps_payload(client.in_key_order(fields)) == cose.dumps(fields)


def test_a_remembered_key_order_is_not_taken_by_equal_keys_of_another_type(monkeypatch):
    """1 and True are equal as dict keys but encode apart (0x01, 0xf5): the order of
    ``{1: 0, 2: 0}`` (canonical) must not be remembered for ``{True: 0, 2: 0}`` written in
    that order, which is not canonical (0x02 sorts before 0xf5)."""
    monkeypatch.setattr(cose, "_TEXT_KEY_ORDERS", {})  # empty: not filled by earlier tests
    assert cose.loads_canonical(bytes.fromhex("a201000200"), "m") == {1: 0, 2: 0}
    with pytest.raises(PassFormatError, match="not deterministic"):
        cose.loads_canonical(bytes.fromhex("a2f5000200"), "m")


class _Answer:
    """A transport that answers every request with one canned response."""

    def __init__(self, status: int, headers: dict) -> None:
        self.resp = client.Response(status, protocol.error_body("busy", "x"), headers)

    def send(self, request):
        return self.resp


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1\u00b2", "-5", "", "x"])
def test_an_odd_number_header_is_ignored_not_a_crash(value):
    """Retry-After and Passgate-Bundle-Version are read as ASCII digits only: "²" is a
    digit to str.isdigit() and int() refuses it, which escaped the agent's round."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from passgate.sync.devicekey import DeviceKey

    key = Ed25519PrivateKey.generate()
    dev = DeviceKey(key, key.public_key().public_bytes_raw())
    cl = client.CollectorClient("http://collector", "gate-1", dev, now=lambda: 1_800_000_000,
                                transport=_Answer(503, {"retry-after": value}))
    with pytest.raises(client.Transient) as caught:
        cl.upload(bytes(32), [], {})
    assert caught.value.retry_after is None
    cl = client.CollectorClient("http://collector", "gate-1", dev, now=lambda: 1_800_000_000,
                                transport=_Answer(304, {"passgate-bundle-version": value}))
    assert cl.fetch_bundle(3).version is None
