"""Deltas: what changed between two bundles, so a device holding version N downloads kilobytes.

A delta is transport only, never a source of trust. It carries the target bundle's signed
header unchanged and, for each of the target's parts, one of: nothing (copy the base's part),
digests to merge into the base's part (revocations added), or the whole part. The device
rebuilds the target file from its installed base, and the result goes through the same
install as a full bundle (:func:`passgate.bundle.install.install_locked`): the signed
manifest's lengths and SHA-256s decide, so the rebuilt file is byte for byte the full bundle
of that version, and every refusal leaves the installed state untouched.

Rules kept here, on top of a full install's:

- the delta's base is the installed bundle (version and manifest SHA-256), else
  ``unknown_base``: the device fetches a full bundle instead;
- a revocations target must *sign* that base, and be exactly one version above it (a
  revocation key cannot skip or replay versions; the chain has no gaps);
- the target's header is checked (root threshold, or the revocation key's rules) and must
  follow the installed bundle *before* a single digest is merged: a collector cannot make
  the device do the work for an unsigned or unacceptable target.

Layout::

    b"PGDELTA1" + deterministic CBOR {"base": N, "base_sha256": 32 bytes, "header": bytes,
                                       "merge": {part: digests}, "parts": {part: bytes}}
    chain:  b"PGDCHAN1" + deterministic CBOR [delta, delta, ...]   (oldest first)
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from passgate.bundle.format import (
    DIGEST_PARTS,
    MAGIC,
    PREFIX,
    Manifest,
    refuse,
    strict_cbor,
)
from passgate.bundle.install import (
    BUNDLE_FILE,
    LOCK_FILE,
    _installed_record,
    _recover_rotation,
    check_revocations_header,
    check_succession,
    install_locked,
    pinned_roots,
)
from passgate.bundle.revokers import digests_added, merge_digests
from passgate.bundle.roots import RootSet
from passgate.bundle.verify import (
    DEFAULT_MAX_BYTES,
    BundleInfo,
    VerifiedBundle,
    count_signatures,
    read_bundle,
    read_header,
)
from passgate.errors import Refusal
from passgate.passes.cose import dumps
from passgate.util.atomicfile import locked

log = logging.getLogger(__name__)

DELTA_MAGIC = b"PGDELTA1"
CHAIN_MAGIC = b"PGDCHAN1"
CHAIN_CONTENT_TYPE = "application/x.passgate-delta-chain"
MAX_CHAIN = 64  # deltas in one answer; a device further behind gets a full bundle


def make_delta(base: bytes, target: bytes) -> bytes:
    """The delta from ``base`` to ``target`` (both complete bundle files; not verified here:
    the device verifies the result)."""
    b, t = read_bundle(base, None), read_bundle(target, None)
    merge, whole = {}, {}
    base_refs = {r.name: r for r in b.manifest.parts}
    for ref in t.manifest.parts:
        if base_refs.get(ref.name) == ref:
            continue
        old = b.parts.get(ref.name, b"" if ref.name == "added" else None)
        added = (
            digests_added(old, t.parts[ref.name])
            if ref.name in DIGEST_PARTS and old is not None
            else None
        )
        if added is not None:
            merge[ref.name] = added
        else:
            whole[ref.name] = t.parts[ref.name]
    doc = {
        "base": b.version,
        "base_sha256": bytes.fromhex(b.manifest_sha256),
        "header": t.header,
        "merge": merge,
        "parts": whole,
    }
    return DELTA_MAGIC + dumps(doc)


def encode_chain(deltas: list[bytes]) -> bytes:
    return CHAIN_MAGIC + dumps(list(deltas))


def decode_chain(data: bytes) -> list[bytes]:
    if not data.startswith(CHAIN_MAGIC):
        raise refuse(Refusal.MALFORMED, "not a passgate delta chain (bad magic)")
    items = strict_cbor(data[len(CHAIN_MAGIC):], "delta chain")
    if not isinstance(items, list | tuple) or not 1 <= len(items) <= MAX_CHAIN:
        raise refuse(Refusal.MALFORMED, f"delta chain must hold 1..{MAX_CHAIN} deltas")
    if not all(isinstance(d, bytes) for d in items):
        raise refuse(Refusal.MALFORMED, "delta chain items must be byte strings")
    return list(items)


def _parse(data: bytes) -> Mapping[str, Any]:
    if not data.startswith(DELTA_MAGIC):
        raise refuse(Refusal.MALFORMED, "not a passgate delta (bad magic)")
    doc = strict_cbor(data[len(DELTA_MAGIC):], "delta")
    ok = (
        isinstance(doc, Mapping)
        and set(doc) == {"base", "base_sha256", "header", "merge", "parts"}
        and type(doc["base"]) is int
        and isinstance(doc["base_sha256"], bytes)
        and isinstance(doc["header"], bytes)
        and all(
            isinstance(doc[k], Mapping)
            and all(isinstance(n, str) and isinstance(v, bytes) for n, v in doc[k].items())
            for k in ("merge", "parts")
        )
    )
    if not ok or not isinstance(doc, Mapping):
        raise refuse(Refusal.MALFORMED, "delta: bad structure")
    return doc


def apply_delta(
    data: bytes, state_dir: Path, now: float, max_bytes: int = DEFAULT_MAX_BYTES
) -> BundleInfo:
    """Rebuild the target bundle from the installed one and install it (atomically, through
    the full install's checks). Raises :class:`BundleRefused`; ``unknown_base`` means "fetch
    a full bundle"."""
    if len(data) > max_bytes:
        raise refuse(Refusal.TOO_LARGE, f"delta is {len(data)} bytes, over {max_bytes}")
    doc = _parse(data)
    state_dir = Path(state_dir)
    with locked(state_dir / LOCK_FILE):
        record = _installed_record(state_dir)
        roots = pinned_roots(state_dir)
        if record is None or roots is None:
            raise refuse(Refusal.UNKNOWN_BASE, "delta: no bundle installed to apply it to")
        base_sha = bytes.fromhex(record["manifest_sha256"])
        if (doc["base"], doc["base_sha256"]) != (record["version"], base_sha):
            raise refuse(
                Refusal.UNKNOWN_BASE,
                f"delta from v{doc['base']}, but v{record['version']} is installed",
            )
        roots = _recover_rotation(state_dir, roots)
        target = _check_target(doc, record, roots, now, max_bytes)
        base = read_bundle(state_dir / BUNDLE_FILE, roots, max_bytes)
        chunks = [PREFIX.pack(MAGIC, len(doc["header"])), doc["header"]]
        for ref in target.parts:
            chunks.append(_part(ref.name, base, doc))
        rebuilt = b"".join(chunks)

        def same_target(bundle: VerifiedBundle) -> None:
            assert bundle.version == target.version  # the header we built it from

        info = install_locked(rebuilt, state_dir, now, max_bytes=max_bytes, expect=same_target)
    log.info("applied delta v%d -> v%d (%d bytes)", doc["base"], target.version, len(data))
    return info


def _check_target(
    doc: Mapping[str, Any], record: dict[str, Any], roots: RootSet, now: float, max_bytes: int
) -> Manifest:
    """Check the target's signed header *before* any part is merged or rebuilt (merging is
    work a collector could otherwise demand for free): the root threshold, or the revocation
    key's rules (anchor, key, expiry, issue time, the parts it may not change, the delta's
    base and its one-version step); then that it follows the installed bundle, and that what
    it declares fits the device. The install that follows checks everything again."""
    header = doc["header"]
    h = read_header(io.BytesIO(PREFIX.pack(MAGIC, len(header)) + header), max_bytes)
    target = h.manifest
    anchor = None
    if target.by_roots:
        count_signatures(h, roots)
        root_sha = h.manifest_sha256
    else:
        anchor, root_sha = check_revocations_header(h, roots, now)
        # A revocation key's chain: it must sign the installed base and follow it directly.
        base_sha = bytes.fromhex(record["manifest_sha256"])
        if target.base != (record["version"], base_sha):
            raise refuse(
                Refusal.UNKNOWN_BASE, f"delta v{target.version}: signed for another base"
            )
        if target.version != record["version"] + 1:
            raise refuse(
                Refusal.BEYOND_REVOKER,
                f"delta v{target.version}: a revocation key must follow "
                f"v{record['version']} with v{record['version'] + 1}",
            )
    if check_succession(target, h.manifest_sha256, anchor, root_sha, record):
        raise refuse(
            Refusal.ROLLBACK,
            f"delta to v{target.version} is not newer than the installed v{record['version']}",
        )
    total = len(h.prefix) + len(h.raw) + target.parts_length
    if total > max_bytes:
        raise refuse(
            Refusal.TOO_LARGE, f"delta target declares {total} bytes, over {max_bytes}"
        )
    lengths = {ref.name: ref.length for ref in target.parts}
    for kind in ("merge", "parts"):
        for name, data in doc[kind].items():
            if name not in lengths or len(data) > lengths[name]:
                raise refuse(
                    Refusal.PART_MISMATCH,
                    f"delta: part {name} is not in the target or longer than it declares",
                )
    return target


def _part(name: str, base: VerifiedBundle, doc: Mapping[str, Any]) -> bytes:
    if name in doc["parts"]:
        return bytes(doc["parts"][name])
    old = base.parts.get(name, b"" if name == "added" else None)
    if old is None:
        raise refuse(Refusal.UNKNOWN_BASE, f"delta: the base has no part {name}")
    if name in doc["merge"]:
        if name not in DIGEST_PARTS or len(doc["merge"][name]) % 16:
            raise refuse(Refusal.MALFORMED, f"delta: part {name} cannot be merged")
        return merge_digests(old, doc["merge"][name])
    return old


def apply_chain(
    data: bytes, state_dir: Path, now: float, max_bytes: int = DEFAULT_MAX_BYTES
) -> BundleInfo:
    """Apply every delta of a chain in order; each one is its own atomic install, so a refusal
    half-way leaves the last good version installed (and raises)."""
    info = None
    for delta in decode_chain(data):
        info = apply_delta(delta, state_dir, now, max_bytes)
    assert info is not None  # decode_chain refuses an empty chain
    return info
