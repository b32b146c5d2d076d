"""The agent's fast decode of a collector's answer decides exactly as the exact check.

``passgate.sync.client.loads_reply`` stands in for ``cose.loads_strict`` (decode, then
re-encode in Python and compare): it accepts an answer, with the same value, exactly when
the exact check does, and otherwise refuses it with the same words; and a real batch reply
takes the shortcut (else it would save nothing).
"""

from __future__ import annotations

import random

import cbor2
import pytest

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
    assert client._plain_sorted(cose.loads(data, "r")) and cbor2.dumps(cose.loads(data, "r")) \
        == data

    def no_exact_check(*_a, **_k):
        raise AssertionError("the exact check ran")

    monkeypatch.setattr(client, "loads_strict", no_exact_check)
    assert client.loads_reply(data, "batch reply") == cose.loads_strict(data, "batch reply")


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
    rng = random.Random(2)
    valid = _reply(6, rng)
    accepted = 0
    for _ in range(3000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
        fast = _outcome(client.loads_reply, data)
        assert fast == _outcome(cose.loads_strict, data), data.hex()
        accepted += fast[0] == "ok"
    assert accepted > 100  # many corruptions stay valid CBOR (bytes inside strings): compared
