"""Revocation keys: an online key the roots authorise to *add* revocations, and nothing else.

Rules this module keeps (each has a test in ``tests/test_bundle_revokers.py``):

- A revocations bundle counts only if its ``anchor`` (a root manifest with its signatures)
  meets the pinned roots' threshold, and exactly one signature, by a key the anchor lists in
  ``revokers``, verifies over the revocations manifest. Any other signature is a refusal.
- Its ``issuers``, ``revoked``, ``policy`` and ``fleet`` parts are the anchor's, byte for
  byte (same length and SHA-256): a stolen key cannot admit a pass, change a key, a policy or
  a fleet setting. The effective revocation list is ``revoked`` + ``added``, so it can only
  grow: the key cannot un-revoke anything the roots revoked.
- Its version is above the anchor's and at most ``MAX_REVOCATION_STEPS`` above it (the key
  cannot number itself out of the roots' reach), its expiry is not later than the anchor's
  (it cannot keep stale trust data looking fresh), it was issued before the key's
  authorisation expired, and the anchor declares no root rotation.

Install-time rules (the key expired *now*, an issue time ahead of the device's clock,
``added`` shrinking, an older anchor, a delta's base) need the installed state:
:mod:`passgate.bundle.install` and :mod:`passgate.bundle.delta`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from passgate.bundle.format import (
    BUNDLE_TYPE,
    MAX_REVOCATION_STEPS,
    Manifest,
    Revoker,
    Signature,
    decode_header,
    parse_manifest,
    refuse,
    sig_structure,
)
from passgate.bundle.roots import RootSet
from passgate.errors import Refusal
from passgate.passes.keys import kid_of, verify_signature
from passgate.passes.revocation import DIGEST_LEN


def anchor_manifest(anchor: bytes) -> tuple[bytes, bytes, tuple[Signature, ...], Manifest]:
    """Parse an anchor header -> (body_protected, payload, signatures, root manifest)."""
    prot, payload, sigs = decode_header(anchor)
    m = parse_manifest(payload)
    if not m.by_roots:
        raise refuse(Refusal.NOT_AUTHORISED, "bundle: the anchor is not a root manifest")
    return prot, payload, sigs, m


def check_revocations(
    manifest: Manifest, body_prot: bytes, payload: bytes, signatures: Sequence[Signature],
    roots: RootSet | None,
) -> tuple[Manifest, Revoker | None]:
    """Check a revocations manifest against ``roots`` (the rules above) and return the anchor
    manifest and the revoker that signed. With ``roots`` None only the structure is parsed."""
    assert manifest.anchor is not None  # parse_manifest guarantees it for this kind
    a_prot, a_payload, a_sigs, anchor = anchor_manifest(manifest.anchor)
    if roots is None:
        return anchor, None  # inspect without keys, or a collector making deltas: no trust
    v = manifest.version
    if anchor.new_roots is not None:
        raise refuse(Refusal.NOT_AUTHORISED, f"bundle v{v}: the anchor rotates roots")
    check_revocations_version(v, anchor.version)
    if manifest.expires > anchor.expires:
        raise refuse(
            Refusal.BEYOND_REVOKER, f"bundle v{v}: a revocation key cannot extend the expiry"
        )
    if manifest.parts[: len(anchor.parts)] != anchor.parts:
        changed = next(
            a.name for a, b in zip(anchor.parts, manifest.parts, strict=False) if a != b
        )
        raise refuse(
            Refusal.BEYOND_REVOKER, f"bundle v{v}: a revocation key cannot change part {changed}"
        )
    counted = roots.count(a_prot, a_payload, a_sigs)
    if not counted.met:
        raise refuse(
            Refusal.NOT_AUTHORISED,
            f"bundle v{v}: anchor v{anchor.version} has {len(counted.valid)} valid root "
            f"signature(s), threshold is {roots.threshold}",
        )
    if len(signatures) != 1:
        raise refuse(Refusal.BAD_SIGNATURE, f"bundle v{v}: one revocation-key signature expected")
    sig = signatures[0]
    revoker = next((r for r in anchor.revokers if kid_of(r.key) == sig.kid), None)
    if revoker is None:
        raise refuse(
            Refusal.NOT_AUTHORISED,
            f"bundle v{v}: key {sig.kid.hex()} is not a revocation key of anchor v{anchor.version}",
        )
    if not verify_signature(revoker.key, sig_structure(body_prot, sig.protected, payload),
                            sig.signature):
        raise refuse(Refusal.BAD_SIGNATURE, f"bundle v{v}: revocation-key signature invalid")
    if manifest.issued >= revoker.expires:
        raise refuse(
            Refusal.REVOKER_EXPIRED, f"bundle v{v}: issued after the revocation key expired"
        )
    return anchor, revoker


def check_revocations_version(version: int, anchor_version: int) -> None:
    """A revocations bundle's version: above its anchor's, and at most
    ``MAX_REVOCATION_STEPS`` above it (BEYOND_REVOKER otherwise)."""
    if version <= anchor_version:
        raise refuse(
            Refusal.BEYOND_REVOKER, f"bundle v{version}: not above its anchor v{anchor_version}"
        )
    if version > anchor_version + MAX_REVOCATION_STEPS:
        raise refuse(
            Refusal.BEYOND_REVOKER,
            f"bundle v{version}: a revocation key may number at most {MAX_REVOCATION_STEPS} "
            f"versions above its anchor v{anchor_version}",
        )


def check_revoker_keys(
    revokers: Sequence[Revoker], other_keys: Mapping[str, Sequence[bytes]], version: int
) -> None:
    """A revocation key must not also be a root, issuer or release key: it sits online, and
    the same key in another role would let its thief sign what that role signs (passes,
    bundles, releases). MALFORMED, as the roots should never sign such a bundle."""
    for role, keys in other_keys.items():
        same = {r.key for r in revokers} & set(keys)
        if same:
            raise refuse(
                Refusal.MALFORMED,
                f"bundle v{version}: revocation key {kid_of(min(same)).hex()} is also "
                f"{role} key",
            )


def merge_digests(big: bytes, small: bytes) -> bytes:
    """The sorted unique union of two packed digest lists, in time O(len(small) * log(big)):
    adding 10,000 digests to 1,000,000 binary-searches 10,000 times and copies once."""
    if not small:
        return big
    if not big:
        return small
    n, L = len(big) // DIGEST_LEN, DIGEST_LEN
    out, pos = [], 0
    for i in range(0, len(small), L):
        d = small[i : i + L]
        lo, hi = pos, n
        while lo < hi:
            mid = (lo + hi) // 2
            if big[mid * L : mid * L + L] < d:
                lo = mid + 1
            else:
                hi = mid
        out.append(big[pos * L : lo * L])
        pos = lo
        if not (lo < n and big[lo * L : lo * L + L] == d):
            out.append(d)  # new; an equal one is already in big and copied with the next slice
    out.append(big[pos * L :])
    return b"".join(out)


def digests_added(base: bytes, target: bytes) -> bytes | None:
    """The digests of ``target`` missing from ``base`` (packed, sorted), or None if ``base``
    has a digest that ``target`` lacks (the target removed one: not a pure addition)."""
    L = DIGEST_LEN
    if len(target) < len(base):
        return None
    old = {base[i : i + L] for i in range(0, len(base), L)}
    new = [d for d in (target[i : i + L] for i in range(0, len(target), L)) if d not in old]
    if len(target) - len(new) * L != len(base):
        return None
    return b"".join(new)


__all__ = [
    "BUNDLE_TYPE",
    "Revoker",
    "anchor_manifest",
    "check_revocations",
    "check_revocations_version",
    "check_revoker_keys",
    "digests_added",
    "merge_digests",
]
