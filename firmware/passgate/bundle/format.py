"""The bundle's bytes: a fixed prefix, a signed header, then the parts back to back.

::

    offset      size  field
    0           8     magic  b"PGBUNDL1"
    8           4     H: header length, unsigned big-endian (at most MAX_HEADER)
    12          H     header: COSE_Sign (RFC 9052 section 4.1, CBOR tag 98) whose payload is
                      the manifest; one signature per root key
    12+H        L1    part "issuers"  (deterministic CBOR)
    ...         L2    part "revoked"  (sorted 16-byte digests, RevocationList.packed())
    ...         L3    part "policy"   (deterministic CBOR)
    ...         L4    part "fleet"    (deterministic CBOR)
    12+H+sum(L)       end of file: one more byte is a refusal

The manifest lists each part's name, length and SHA-256, so one signature covers every byte
of every part (no mixing parts of two bundles), and a reader knows how much to read before it
reads it (no endless data). Full description: ``docs/trust.md``.

Two kinds of manifest share this layout. A *root* manifest (type ``passgate-bundle``) is
signed by k of n roots and may authorise revocation keys (``revokers``: key and expiry). A
*revocations* manifest (type ``passgate-revocations``) is signed by one such key; it carries
the root manifest that authorised it (``anchor``, with its signatures), repeats that
manifest's four parts unchanged, and adds one part, ``added``: digests that can only be added
to the revocation list. Its checks live in :mod:`passgate.bundle.revokers`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from passgate.errors import (
    BundleRefused,
    KeyFileError,
    PassFormatError,
    Refusal,
    ReleaseRefused,
)
from passgate.passes.cose import ALG_EDDSA, HDR_ALG, HDR_KID, KID_LEN, SIG_LEN, dumps, loads_strict
from passgate.passes.keys import check_public_point
from passgate.release.manifest import ReleaseAuth

MAGIC = b"PGBUNDL1"
PREFIX = struct.Struct(">8sI")
MAX_HEADER = 256 * 1024  # manifest + signatures: a few hundred bytes per root; far below this
FORMAT = 1
BUNDLE_TYPE = "passgate-bundle"
REVOCATIONS_TYPE = "passgate-revocations"
CONTENT_TYPE = "application/x.passgate-bundle+cbor"
TAG_SIGN = 98
HDR_CONTENT_TYPE = 3
PART_NAMES = ("issuers", "revoked", "policy", "fleet")
REVOCATION_PARTS = (*PART_NAMES, "added")  # a revocations manifest: the anchor's four + added
DIGEST_PARTS = frozenset({"revoked", "added"})  # sorted unique 16-byte digests
MAX_REVOKERS = 8
MAX_TIME = 2**40
# Readers accept versions up to 2**53 (exact in every JSON and JavaScript number); a bundle of
# version 2**53 could never be followed by a newer one, so builders stop one below.
MAX_VERSION = 2**53
MAX_BUILD_VERSION = MAX_VERSION - 1
MAX_SIGNATURES = 32
# A revocations bundle's version is above its anchor's and at most this far above it: a
# revocation key cannot number its bundles out of the roots' reach (a root bundle numbered
# above anchor + MAX_REVOCATION_STEPS is above anything the key could sign on that anchor).
# One revocations bundle an hour for 416 days, one a minute for almost 7.
MAX_REVOCATION_STEPS = 10_000


def refuse(reason: Refusal, message: str) -> BundleRefused:
    return BundleRefused(reason, message)


@dataclass(frozen=True, slots=True)
class PartRef:
    """A manifest entry: which part, how many bytes, their SHA-256."""

    name: str
    length: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class Revoker:
    """A revocation key the roots authorise: it may add revocations until ``expires``."""

    key: bytes  # raw 32-byte Ed25519 public key
    expires: int  # POSIX seconds


@dataclass(frozen=True, slots=True)
class Manifest:
    version: int
    issued: int
    expires: int
    parts: tuple[PartRef, ...]
    new_roots: tuple[int, tuple[bytes, ...]] | None = None  # (threshold, raw keys)
    revokers: tuple[Revoker, ...] = ()  # root manifests only
    kind: str = BUNDLE_TYPE
    anchor: bytes | None = None  # revocations: the authorising root header (COSE_Sign bytes)
    base: tuple[int, bytes] | None = None  # revocations: (version, manifest SHA-256) it follows
    releases: ReleaseAuth | None = None  # root manifests: release keys and minimum version

    @property
    def by_roots(self) -> bool:
        return self.kind == BUNDLE_TYPE

    def to_cbor(self) -> bytes:
        doc: dict[str, Any] = {
            "type": self.kind,
            "format": FORMAT,
            "version": self.version,
            "issued": self.issued,
            "expires": self.expires,
            "parts": [{"name": p.name, "length": p.length, "sha256": p.sha256} for p in self.parts],
        }
        if self.new_roots is not None:
            doc["roots"] = {"threshold": self.new_roots[0], "keys": list(self.new_roots[1])}
        if self.revokers:
            doc["revokers"] = [{"key": r.key, "expires": r.expires} for r in self.revokers]
        if self.releases is not None:
            doc["releases"] = self.releases.to_cbor_obj()
        if self.anchor is not None and self.base is not None:
            doc["anchor"] = self.anchor
            doc["base"] = {"version": self.base[0], "manifest_sha256": self.base[1]}
        return dumps(doc)

    @property
    def parts_length(self) -> int:
        return sum(p.length for p in self.parts)


def strict_cbor(data: bytes, what: str) -> object:
    """Deterministic CBOR or a MALFORMED refusal (the pass decoder's strictness, reused)."""
    try:
        return loads_strict(data, what)
    except PassFormatError as exc:
        raise refuse(Refusal.MALFORMED, f"bundle: {exc.detail}") from None


def _int(doc: Mapping[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise refuse(Refusal.MALFORMED, f"bundle: {where}{key} must be an integer in {lo}..{hi}")
    return v


def parse_manifest(payload: bytes) -> Manifest:
    doc = strict_cbor(payload, "manifest")
    if not isinstance(doc, Mapping):
        raise refuse(Refusal.MALFORMED, "bundle: manifest must be a map")
    kind = doc.get("type")
    if kind not in (BUNDLE_TYPE, REVOCATIONS_TYPE):
        raise refuse(Refusal.MALFORMED, f"bundle: manifest type is not {BUNDLE_TYPE!r}")
    if doc.get("format") != FORMAT:
        raise refuse(
            Refusal.MALFORMED,
            f"bundle: format {doc.get('format')!r} is not supported (want {FORMAT})",
        )
    own = {"roots", "revokers", "releases"} if kind == BUNDLE_TYPE else {"anchor", "base"}
    unknown = set(doc) - {"type", "format", "version", "issued", "expires", "parts"} - own
    if unknown:
        raise refuse(
            Refusal.MALFORMED, f"bundle: unknown manifest field {sorted(map(str, unknown))[0]!r}"
        )
    version = _int(doc, "version", 1, MAX_VERSION, "")
    issued = _int(doc, "issued", 0, MAX_TIME, "")
    expires = _int(doc, "expires", issued + 1, MAX_TIME, "")
    names = PART_NAMES if kind == BUNDLE_TYPE else REVOCATION_PARTS
    parts_doc = doc.get("parts")
    if not isinstance(parts_doc, list | tuple) or len(parts_doc) != len(names):
        raise refuse(
            Refusal.MALFORMED, f"bundle: manifest must list the parts {', '.join(names)}"
        )
    parts = []
    for want, p in zip(names, parts_doc, strict=True):
        if (
            not isinstance(p, Mapping)
            or set(p) != {"name", "length", "sha256"}
            or p["name"] != want
        ):
            raise refuse(
                Refusal.MALFORMED, f"bundle: manifest part {want!r} missing or out of order"
            )
        sha = p["sha256"]
        if not isinstance(sha, bytes) or len(sha) != 32:
            raise refuse(Refusal.MALFORMED, f"bundle: part {want}: sha256 must be 32 bytes")
        parts.append(PartRef(want, _int(p, "length", 0, 2**40, f"part {want}: "), sha))
    new_roots = None
    if "roots" in doc:
        r = doc["roots"]
        if (
            not isinstance(r, Mapping)
            or set(r) != {"threshold", "keys"}
            or not isinstance(r["keys"], list | tuple)
        ):
            raise refuse(Refusal.MALFORMED, "bundle: roots must be {threshold, keys}")
        keys = tuple(r["keys"])
        if not all(isinstance(k, bytes) for k in keys):
            raise refuse(Refusal.MALFORMED, "bundle: root keys must be byte strings")
        new_roots = (_int(r, "threshold", 1, max(1, len(keys)), "roots."), keys)
    if kind == REVOCATIONS_TYPE:
        anchor, base = _revocations_fields(doc)
        return Manifest(
            version, issued, expires, tuple(parts), kind=kind, anchor=anchor, base=base
        )
    return Manifest(
        version, issued, expires, tuple(parts), new_roots, _revokers(doc),
        releases=_releases(doc),
    )


def _releases(doc: Mapping[str, Any]) -> ReleaseAuth | None:
    if "releases" not in doc:
        return None
    try:
        return ReleaseAuth.from_cbor_obj(doc["releases"])
    except ReleaseRefused as exc:
        raise refuse(Refusal.MALFORMED, f"bundle: {exc.detail}") from None


def _revokers(doc: Mapping[str, Any]) -> tuple[Revoker, ...]:
    if "revokers" not in doc:
        return ()
    items = doc["revokers"]
    if not isinstance(items, list | tuple) or not 1 <= len(items) <= MAX_REVOKERS:
        raise refuse(Refusal.MALFORMED, f"bundle: revokers must list 1..{MAX_REVOKERS} keys")
    out = []
    for r in items:
        if not isinstance(r, Mapping) or set(r) != {"key", "expires"}:
            raise refuse(Refusal.MALFORMED, "bundle: a revoker must be {key, expires}")
        key = r["key"]
        try:
            check_public_point(key if isinstance(key, bytes) else b"", "revocation key")
        except KeyFileError as exc:  # a low-order key would let anyone add revocations
            raise refuse(Refusal.MALFORMED, f"bundle: {exc}") from None
        out.append(Revoker(key, _int(r, "expires", 1, MAX_TIME, "revoker ")))
    if len({r.key for r in out}) != len(out):
        raise refuse(Refusal.MALFORMED, "bundle: a revocation key is listed twice")
    return tuple(out)


def _revocations_fields(doc: Mapping[str, Any]) -> tuple[bytes, tuple[int, bytes]]:
    anchor, base = doc.get("anchor"), doc.get("base")
    if not isinstance(anchor, bytes) or not 0 < len(anchor) <= MAX_HEADER // 2:
        raise refuse(Refusal.MALFORMED, "bundle: revocations need the anchor root header")
    if not isinstance(base, Mapping) or set(base) != {"version", "manifest_sha256"}:
        raise refuse(Refusal.MALFORMED, "bundle: base must be {version, manifest_sha256}")
    sha = base["manifest_sha256"]
    if not isinstance(sha, bytes) or len(sha) != 32:
        raise refuse(Refusal.MALFORMED, "bundle: base manifest_sha256 must be 32 bytes")
    return anchor, (_int(base, "version", 1, MAX_VERSION, "base "), sha)


@dataclass(frozen=True, slots=True)
class Signature:
    kid: bytes
    protected: bytes
    signature: bytes


def sig_structure(body_protected: bytes, sign_protected: bytes, payload: bytes) -> bytes:
    """ToBeSigned for one COSE_Sign signer (RFC 9052 section 4.4, context "Signature")."""
    return dumps(["Signature", body_protected, sign_protected, b"", payload])


def body_protected() -> bytes:
    return dumps({HDR_CONTENT_TYPE: CONTENT_TYPE})


def signer_protected(kid: bytes) -> bytes:
    return dumps({HDR_ALG: ALG_EDDSA, HDR_KID: kid})


def encode_header(payload: bytes, signatures: list[Signature]) -> bytes:
    sigs = [[s.protected, {}, s.signature] for s in signatures]
    return dumps(cbor2.CBORTag(TAG_SIGN, [body_protected(), {}, payload, sigs]))


def decode_header(data: bytes) -> tuple[bytes, bytes, tuple[Signature, ...]]:
    """Parse the COSE_Sign header -> (body_protected, payload, signatures). Strict."""
    obj = strict_cbor(data, "header")
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != TAG_SIGN:
        raise refuse(Refusal.MALFORMED, "bundle: header is not a COSE_Sign (CBOR tag 98)")
    items = obj.value
    if not isinstance(items, list | tuple) or len(items) != 4:
        raise refuse(Refusal.MALFORMED, "bundle: COSE_Sign must be an array of 4")
    prot, _unprot, payload, sigs = items
    if prot != body_protected():
        raise refuse(Refusal.MALFORMED, "bundle: unexpected protected header (content type)")
    if not isinstance(payload, bytes) or not isinstance(sigs, list | tuple):
        raise refuse(Refusal.MALFORMED, "bundle: COSE_Sign payload/signatures have the wrong type")
    if not 1 <= len(sigs) <= MAX_SIGNATURES:
        raise refuse(
            Refusal.MALFORMED, f"bundle: 1..{MAX_SIGNATURES} signatures expected, got {len(sigs)}"
        )
    out = []
    for s in sigs:
        if not isinstance(s, list | tuple) or len(s) != 3:
            raise refuse(Refusal.MALFORMED, "bundle: a COSE_Signature must be an array of 3")
        sprot, _sunprot, sig = s
        if not isinstance(sprot, bytes) or not isinstance(sig, bytes) or len(sig) != SIG_LEN:
            raise refuse(
                Refusal.MALFORMED, "bundle: a signature must be 64 bytes with a protected header"
            )
        hdr = strict_cbor(sprot, "signer header")
        # Only EdDSA with a key id; anything else in the protected header is refused, so the
        # algorithm cannot be confused and no header is silently ignored.
        if (
            not isinstance(hdr, Mapping)
            or set(hdr) != {HDR_ALG, HDR_KID}
            or hdr[HDR_ALG] != ALG_EDDSA
        ):
            raise refuse(
                Refusal.MALFORMED, "bundle: signer header must be exactly {alg: EdDSA, kid}"
            )
        kid = hdr[HDR_KID]
        if not isinstance(kid, bytes) or len(kid) != KID_LEN:
            raise refuse(Refusal.MALFORMED, "bundle: signer key id must be 8 bytes")
        out.append(Signature(kid, sprot, sig))
    return prot, payload, tuple(out)
