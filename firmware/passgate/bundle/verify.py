"""Read and verify a bundle, in the order The Update Framework teaches.

1. Read the 12-byte prefix and the header, capped (a header is small).
2. Verify the root signatures over the manifest *before* believing anything it says.
3. Check the manifest's total against the device limit, then read each part exactly as long as
   declared, hashing as it goes; one byte more after the last part is a refusal. At most
   ``limit + 1`` bytes are ever read, whatever the sender does.

A revocations bundle (signed by a revocation key, not by the roots) is checked by
:func:`passgate.bundle.revokers.check_revocations` in step 2 instead.

Rollback, same-version and expiry checks need the installed state and a time; they live in
:mod:`passgate.bundle.install`. This module only answers "is this a genuine bundle, and what
is in it".
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from passgate.bundle.format import (
    MAGIC,
    MAX_HEADER,
    PREFIX,
    Manifest,
    Revoker,
    Signature,
    decode_header,
    parse_manifest,
    refuse,
)
from passgate.bundle.parts import decode_issuers, trust_store
from passgate.bundle.policy import FleetPolicy
from passgate.bundle.revokers import check_revocations, check_revoker_keys
from passgate.bundle.roots import RootSet
from passgate.errors import KeyFileError, Refusal, TrustError
from passgate.passes.keys import kid_of
from passgate.passes.truststore import TrustStore
from passgate.release.manifest import ReleaseAuth

log = logging.getLogger(__name__)

# Where a bundle is read from: its bytes, a path, or a binary stream.
Source = bytes | bytearray | memoryview | str | Path | BinaryIO

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # 1,000,000 revocations are 16 MB; room for four times that


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """What a bundle says about itself, and what was checked. Times are POSIX seconds.

    ``verified``: the signatures met a root set's threshold (False only for ``inspect``
    without root keys). ``signed_by``: hex kids of the roots whose signature verified (or,
    unverified, every kid that claims to have signed). ``new_signed_by``: for a rotation,
    hex kids of the declared new roots whose signature verified (verified only).
    ``installed_at`` / ``last_refresh`` are set for an installed bundle only.
    """

    version: int
    issued: int
    expires: int
    manifest_sha256: str
    size: int
    signed_by: tuple[str, ...]
    verified: bool
    new_roots: RootSet | None
    parts: tuple[tuple[str, int, str], ...]  # (name, length, sha256 hex)
    issuers: int
    revoked: int
    fleet: FleetPolicy
    installed_at: float | None = None
    last_refresh: float | None = None
    new_signed_by: tuple[str, ...] = ()
    kind: str = "passgate-bundle"  # or "passgate-revocations" (signed by a revocation key)
    anchor_version: int | None = None  # revocations: the root-signed version it builds on
    revokers: tuple[tuple[str, int], ...] = ()  # (hex kid, expires) the roots authorise
    releases: ReleaseAuth | None = None  # release keys and minimum version the roots set


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose structure, part hashes and (if roots were given) signatures checked out."""

    prefix: bytes
    header: bytes
    manifest: Manifest
    manifest_sha256: str
    signatures: tuple[Signature, ...]
    signed_by: tuple[bytes, ...]  # raw root keys with a valid signature (verified), else ()
    verified: bool
    parts: dict[str, bytes]
    new_roots: RootSet | None
    new_signed_by: tuple[bytes, ...] = ()  # raw keys of the new root set that signed (verified)
    anchor: Manifest | None = None  # revocations: the root manifest it builds on
    revoker: Revoker | None = None  # revocations: the key that signed (verified only)

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def root_manifest(self) -> Manifest:
        """The root-signed manifest in force: this one, or a revocations bundle's anchor."""
        return self.manifest if self.anchor is None else self.anchor

    @property
    def anchor_header(self) -> bytes:
        """The root-signed header in force (this bundle's own, or its anchor)."""
        return self.header if self.manifest.anchor is None else self.manifest.anchor

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.header) + self.manifest.parts_length

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, in order, without joining them (16 MB stays 16 MB)."""
        yield self.prefix
        yield self.header
        for ref in self.manifest.parts:
            yield self.parts[ref.name]

    def trust(self) -> tuple[TrustStore, BundleInfo]:
        """Decode the parts into the verifier's trust store; MALFORMED if a part is invalid."""
        store, fleet = trust_store(self.parts, f"bundle v{self.version}")
        return store, self.info(fleet, len(store.keys), len(store.revoked))

    def info(
        self, fleet: FleetPolicy, issuers: int, revoked: int, **installed: float | None
    ) -> BundleInfo:
        kids = (
            [kid_of(k) for k in self.signed_by]
            if self.verified
            else [s.kid for s in self.signatures]
        )
        m = self.manifest
        return BundleInfo(
            version=m.version,
            issued=m.issued,
            expires=m.expires,
            manifest_sha256=self.manifest_sha256,
            size=self.size,
            signed_by=tuple(k.hex() for k in kids),
            verified=self.verified,
            new_roots=self.new_roots,
            parts=tuple((p.name, p.length, p.sha256.hex()) for p in m.parts),
            issuers=issuers,
            revoked=revoked,
            fleet=fleet,
            new_signed_by=tuple(kid_of(k).hex() for k in self.new_signed_by),
            kind=m.kind,
            anchor_version=None if self.anchor is None else self.anchor.version,
            revokers=tuple((kid_of(r.key).hex(), r.expires) for r in self.root_manifest.revokers),
            releases=self.root_manifest.releases,
            **installed,
        )


def open_source(
    source: Source, max_bytes: int
) -> BinaryIO:
    """A readable stream for ``source``; bytes larger than ``max_bytes`` are refused at once."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) > max_bytes:
            raise refuse(
                Refusal.TOO_LARGE,
                f"bundle is {len(source)} bytes, more than the limit of {max_bytes}",
            )
        return io.BytesIO(source)
    if isinstance(source, str | Path):
        try:
            return open(source, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise TrustError(f"{source}: cannot read bundle: {exc.strerror}") from None
    return source


def read_bundle(
    source: Source, roots: RootSet | None, max_bytes: int = DEFAULT_MAX_BYTES
) -> VerifiedBundle:
    """Read and verify one bundle from bytes, a path or a binary stream.

    With ``roots`` None the signatures are not checked (``inspect`` without keys); every other
    check is made. Raises :class:`BundleRefused` with a one-line reason.
    """
    stream = open_source(source, max_bytes)
    try:
        return _read(stream, roots, max_bytes)
    finally:
        if stream is not source:
            stream.close()


@dataclass(frozen=True, slots=True)
class Header:
    """The prefix and signed header of a bundle, parsed but not yet checked against roots."""

    prefix: bytes
    raw: bytes
    body_protected: bytes
    payload: bytes
    signatures: tuple[Signature, ...]
    manifest: Manifest

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def read_header(stream: BinaryIO, max_bytes: int = DEFAULT_MAX_BYTES) -> Header:
    """Read and parse the prefix and header only (cheap: a few hundred bytes)."""
    prefix = _read_exact(stream, PREFIX.size, "prefix")
    magic, header_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise refuse(Refusal.MALFORMED, "not a passgate bundle (bad magic)")
    if header_len > MAX_HEADER or PREFIX.size + header_len > max_bytes:
        raise refuse(
            Refusal.TOO_LARGE, f"bundle header declares {header_len} bytes, over the limit"
        )
    raw = _read_exact(stream, header_len, "header")
    body_prot, payload, signatures = decode_header(raw)
    return Header(prefix, raw, body_prot, payload, signatures, parse_manifest(payload))


def _read(stream: BinaryIO, roots: RootSet | None, max_bytes: int) -> VerifiedBundle:
    h = read_header(stream, max_bytes)
    manifest = h.manifest
    anchor, revoker = None, None
    if manifest.by_roots:
        signed_by, new_roots, new_signed_by = count_signatures(h, roots)
    else:
        anchor, revoker = check_revocations(
            manifest, h.body_protected, h.payload, h.signatures, roots
        )
        signed_by, new_roots, new_signed_by = (() if revoker is None else (revoker.key,)), None, ()
    total = len(h.prefix) + len(h.raw) + manifest.parts_length
    if total > max_bytes:
        raise refuse(
            Refusal.TOO_LARGE, f"bundle declares {total} bytes, more than the limit of {max_bytes}"
        )
    parts = {}
    for ref in manifest.parts:
        data = _read_exact(stream, ref.length, f"part {ref.name}", Refusal.PART_MISMATCH)
        if hashlib.sha256(data).digest() != ref.sha256:
            raise refuse(
                Refusal.PART_MISMATCH,
                f"bundle part {ref.name}: SHA-256 differs from the signed manifest",
            )
        parts[ref.name] = data
    if stream.read(1):
        # Endless data: never read on past the signed length.
        raise refuse(Refusal.TOO_LARGE, f"bundle has data beyond its declared {total} bytes")
    if manifest.revokers:
        _check_revoker_roles(manifest, parts["issuers"], roots, new_roots)
    return VerifiedBundle(
        h.prefix,
        h.raw,
        manifest,
        h.manifest_sha256,
        h.signatures,
        signed_by,
        roots is not None,
        parts,
        new_roots,
        new_signed_by,
        anchor,
        revoker,
    )


def _check_revoker_roles(
    manifest: Manifest, issuers: bytes, roots: RootSet | None, new_roots: RootSet | None
) -> None:
    """No revocation key may also be a root, issuer or release key (see
    :func:`passgate.bundle.revokers.check_revoker_keys`)."""
    others: dict[str, tuple[bytes, ...]] = {
        "an issuer": tuple(k.raw for k in decode_issuers(issuers, f"bundle v{manifest.version}")),
        "a root": (() if roots is None else roots.keys)
        + (() if new_roots is None else new_roots.keys),
        "a release": () if manifest.releases is None else manifest.releases.keys,
    }
    check_revoker_keys(manifest.revokers, others, manifest.version)


def check_signatures(h: Header, roots: RootSet | None) -> tuple[tuple[bytes, ...], RootSet | None]:
    """Check ``h`` against ``roots`` (and a declared new root set against itself).

    Returns the raw root keys with a valid signature and the declared new root set (or None).
    With ``roots`` None nothing is verified and no keys are returned.
    """
    signed_by, new_roots, _ = count_signatures(h, roots)
    return signed_by, new_roots


def count_signatures(
    h: Header, roots: RootSet | None
) -> tuple[tuple[bytes, ...], RootSet | None, tuple[bytes, ...]]:
    """:func:`check_signatures`, and also the raw keys of the declared new root set whose
    signature verified (empty without a rotation or without ``roots``)."""
    body_prot, payload, signatures, manifest = h.body_protected, h.payload, h.signatures, h.manifest
    new_roots = None
    if manifest.new_roots is not None:
        try:
            new_roots = RootSet(*manifest.new_roots)
        except (TrustError, KeyFileError) as exc:
            raise refuse(Refusal.MALFORMED, f"bundle: new root set refused: {exc}") from None
    if roots is None:
        return (), new_roots, ()
    counted = roots.count(body_prot, payload, signatures)
    if not counted.met:
        reason = Refusal.BAD_SIGNATURE if counted.invalid else Refusal.UNDER_THRESHOLD
        what = (
            f"{counted.invalid} signature(s) by pinned roots do not verify; "
            if counted.invalid
            else ""
        )
        raise refuse(
            reason,
            f"bundle v{manifest.version}: {what}{len(counted.valid)} valid root signature(s), "
            f"threshold is {roots.threshold}",
        )
    if new_roots is None:
        return counted.valid, None, ()
    if new_roots == roots:  # the current set declared again (after a rotation): same count
        return counted.valid, new_roots, counted.valid
    # A rotation: the new keys must also reach their own threshold, proving they are held.
    fresh = new_roots.count(body_prot, payload, signatures)
    if not fresh.met:
        raise refuse(
            Refusal.UNDER_THRESHOLD,
            f"bundle v{manifest.version}: new root set has {len(fresh.valid)} "
            f"valid signature(s), its threshold is {new_roots.threshold}",
        )
    return counted.valid, new_roots, fresh.valid


def _read_exact(stream: BinaryIO, n: int, what: str, short: Refusal = Refusal.MALFORMED) -> bytes:
    # Streams (a socket, a pipe) may return fewer bytes than asked before the end: loop.
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    data = b"".join(chunks)  # one chunk: returned as is, no copy
    if len(data) != n:
        raise refuse(short, f"bundle truncated: {what} has {len(data)} of {n} bytes")
    return data
