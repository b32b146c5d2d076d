"""Bundles as the collector sees them: opaque signed bytes with a version.

The collector does not verify root signatures (devices do, with their pinned roots); it
reads the version from the manifest with ``passgate.bundle.format`` and checks the file is
complete, so an operator cannot publish a truncated file or an unreadable version.

Deltas (``GET /v1/bundle?have=N``): the chain of deltas between consecutive published
versions from N to the newest, made from the stored files and kept in a small cache. None
(the device gets the full bundle) when N is not published, a version in between is missing
from the store, the chain would be longer than a device accepts, or it would not be smaller
than the full bundle. The collector signs nothing here: every delta carries the target's
signed header, and the device checks the rebuilt file as a full bundle.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from passgate.bundle import format as bformat
from passgate.bundle.delta import MAX_CHAIN, encode_chain, make_delta
from passgate.errors import BundleError, TrustError

from .protocol import MAX_BUNDLE


def read_bundle_version(data: bytes) -> int:
    """The manifest version of a complete bundle file, or :class:`TrustError` saying why."""
    if len(data) > MAX_BUNDLE:
        raise TrustError(f"bundle is {len(data)} bytes; devices accept at most {MAX_BUNDLE}")
    if len(data) < bformat.PREFIX.size:
        raise TrustError("not a passgate bundle (too short)")
    magic, hlen = bformat.PREFIX.unpack_from(data)
    if magic != bformat.MAGIC or hlen > bformat.MAX_HEADER:
        raise TrustError("not a passgate bundle (bad magic or header length)")
    header = data[bformat.PREFIX.size:bformat.PREFIX.size + hlen]
    _prot, payload, _sigs = bformat.decode_header(header)
    manifest = bformat.parse_manifest(payload)
    expected = bformat.PREFIX.size + hlen + manifest.parts_length
    if len(data) != expected:
        raise TrustError(f"bundle is {len(data)} bytes but its manifest declares {expected}")
    return manifest.version


class DeltaCache:
    """Delta chains from the published bundles; each delta is made once (LRU of ``size``)."""

    def __init__(self, size: int = 256) -> None:
        self._deltas: OrderedDict[tuple[int, int], bytes | None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # waitress serves from threads

    def chain(
        self, have: int, latest: int, published: list[int], data: Callable[[int], bytes | None]
    ) -> bytes | None:
        """The chain from ``have`` to ``latest`` over the ``published`` versions, or None."""
        steps = sorted(v for v in published if have < v <= latest)
        if have not in published or not steps or len(steps) > MAX_CHAIN:
            return None
        deltas, base = [], have
        for target in steps:
            d = self._delta(base, target, data)
            if d is None:
                return None
            deltas.append(d)
            base = target
        chain = encode_chain(deltas)
        full = data(latest)
        return chain if full is None or len(chain) < len(full) else None

    def _delta(self, base: int, target: int, data: Callable[[int], bytes | None]) -> bytes | None:
        key = (base, target)
        with self._lock:
            if key in self._deltas:
                self._deltas.move_to_end(key)
                return self._deltas[key]
        old, new = data(base), data(target)
        delta = None
        if old is not None and new is not None:
            try:
                delta = make_delta(old, new)
            except BundleError:  # a stored file that no longer parses: send full bundles
                delta = None
        with self._lock:
            self._deltas[key] = delta
            while len(self._deltas) > self._size:
                self._deltas.popitem(last=False)
        return delta
