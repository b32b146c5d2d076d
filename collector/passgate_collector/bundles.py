"""Bundles as the collector sees them: opaque signed bytes with a version.

The collector does not verify root signatures (devices do, with their pinned roots); it
reads the version from the manifest with ``passgate.bundle.format`` and checks the file is
complete, so an operator cannot publish a truncated file or an unreadable version.
"""

from __future__ import annotations

from passgate.bundle import format as bformat
from passgate.errors import TrustError

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
