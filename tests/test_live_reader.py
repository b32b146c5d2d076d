"""The live code's fast readers (holder._two_bstrs, holder._time_counter) accept only what the
strict general decoder (cose.loads_strict) accepts, and read it alike: on a live code of each
size and on every one-byte change, truncation and extension of its bytes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import NOW
from passgate.errors import PassFormatError
from passgate.issuing.issuer import Issuer
from passgate.passes import base45, holder
from passgate.passes.cose import loads_strict
from test_wire import variants


def general(data: bytes) -> object:
    try:
        return loads_strict(data, "live code", tags=False)
    except PassFormatError:
        return None


def time_counter_general(payload: bytes) -> tuple[str, object]:
    """The [t, n] rules as they were before the fast reader: through loads_strict only."""
    try:
        value = loads_strict(payload, "live code payload", tags=False)
        if type(value) is not list or len(value) != 2:
            raise holder.malformed("live code payload must be the array [t, n]")
        t, n = value
        if type(t) is not int or not 0 <= t < holder.MAX_T:
            raise holder.malformed("live code time must be an unsigned integer below 2**40")
        if type(n) is not int or not 0 <= n < holder.MAX_N:
            raise holder.malformed("live code counter must be an unsigned integer below 2**32")
        return "ok", (t, n)
    except PassFormatError as exc:
        return "refused", (exc.reason, exc.detail)


@pytest.fixture(scope="module")
def live_raws(issuer: Issuer) -> list[bytes]:
    phone = ec.derive_private_key(11, ec.SECP256R1())
    out = []
    for zones, t, n in [(["gate-1"], NOW, 0), ([f"zone-{i}" for i in range(16)], 2**33, 2**32 - 1),
                        (["a"], 23, 24)]:
        bound = issuer.issue("work", zones, NOW - 600, 3600,
                             holder_key=holder.compressed_point(phone))
        code = holder.make_live_code(bound, phone, t, n)
        out.append(base45.decode(code[len(holder.LIVE_PREFIX):]))
    return out


def test_outer_array_reader_agrees_with_loads_strict(live_raws: list[bytes]) -> None:
    read = 0
    for raw in live_raws:
        assert holder._two_bstrs(raw) is not None
        for data in [raw, *variants(raw)]:
            fast = holder._two_bstrs(data)
            if fast is not None:
                read += 1
                assert fast == general(data), data.hex()
    assert read >= len(live_raws)


def test_time_counter_reader_agrees_with_loads_strict(live_raws: list[bytes]) -> None:
    payloads = []
    for raw in live_raws:
        l2 = holder._two_bstrs(raw)[1]  # type: ignore[index]
        payloads.append(holder._decode_l2(l2)[0])
    extra = [b"\x82\x00\x00", b"\x82\x17\x18\x18", b"\x82\x18\x17\x00",
             b"\x82\x1b" + b"\xff" * 8 + b"\x00", b"\x82\x1a\xff\xff\xff\xff\x1a\xff\xff\xff\xff",
             b"\x82\x20\x00", b"\x81\x00", b"\x83\x00\x00\x00", b""]
    checked = 0
    for payload in payloads + extra:
        for data in [payload, *variants(payload)]:
            try:
                got: tuple[str, object] = ("ok", holder._time_counter(data))
            except PassFormatError as exc:
                got = ("refused", (exc.reason, exc.detail))
            want = time_counter_general(data)
            assert got[0] == want[0], data.hex()
            if got[0] == "ok":
                checked += 1
                assert got == want, data.hex()
            else:
                assert got == want, data.hex()  # the same reason and detail
    assert checked > len(payloads)
