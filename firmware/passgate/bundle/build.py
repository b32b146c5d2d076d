"""Build and sign a bundle (at the operator's desk, with the offline root keys at hand).

Inputs, as ``passgate bundle build`` takes them:

- an issuers folder like the development ``--trust`` folder: ``*.pub`` + ``<stem>.toml``
  metadata (name, valid_from, valid_until, zones, purposes);
- a revocation file: one hex pass id per line (``revoked.txt``), or ``*.bin`` with packed
  16-byte digests (what a collector keeps when it never stores pass ids);
- a policy TOML: ``[purposes.ID]`` (omit to embed the default table), ``[zones.NAME]
  purposes = [...]`` and ``[fleet]`` settings (see ``docs/policy.example.toml``).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.bundle.format import (
    MAGIC,
    MAX_BUILD_VERSION,
    PART_NAMES,
    PREFIX,
    REVOCATION_PARTS,
    REVOCATIONS_TYPE,
    Manifest,
    PartRef,
    Revoker,
    Signature,
    body_protected,
    encode_header,
    sig_structure,
    signer_protected,
)
from passgate.bundle.parts import decode_issuers, encode_fleet, encode_issuers, encode_policy
from passgate.bundle.policy import ALL, FleetPolicy
from passgate.bundle.revokers import (
    anchor_manifest,
    check_revocations_version,
    check_revoker_keys,
    merge_digests,
)
from passgate.bundle.roots import RootSet
from passgate.bundle.verify import VerifiedBundle
from passgate.errors import TrustError
from passgate.passes.keys import kid_of, raw_public
from passgate.passes.purposes import PurposeTable
from passgate.passes.revocation import DIGEST_LEN, RevocationList
from passgate.passes.truststore import IssuerKey, TrustStore, _load_zones
from passgate.release.manifest import ReleaseAuth

_POLICY_TABLES = {"purposes", "zones", "fleet"}


@dataclass(frozen=True)
class BundleContent:
    """Everything a checkpoint trusts, before it is encoded and signed."""

    issuers: tuple[IssuerKey, ...]
    revoked: RevocationList = field(default_factory=RevocationList.empty)
    purposes: PurposeTable = field(default_factory=PurposeTable.default)
    zone_purposes: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    fleet: FleetPolicy = field(default_factory=FleetPolicy)

    def check(self) -> None:
        """Refuse content a checkpoint would choke on: better at the desk than at the door."""
        if not self.issuers:
            raise TrustError("bundle: at least one issuer key is needed")
        known = {p.id for p in self.purposes}
        for zone, allowed in self.zone_purposes.items():
            if allowed - known:
                raise TrustError(
                    f"bundle: zone {zone}: unknown purpose {sorted(allowed - known)[0]!r}"
                )
        # holder_binding and anti_passback_purposes name purposes: one that is not in the
        # table (a typo, a label for an id) would silently require no live code at all, or
        # silently give that purpose the general anti-passback window, so it is refused here
        # ("*" is all, for holder_binding only).
        default = self.fleet.default
        levels = [("fleet", default.holder_binding, default.anti_passback_purposes)] + [
            (f"fleet.{group}.{name}", tuple(override.get("holder_binding", ())),
             override.get("anti_passback_purposes", {}))
            for group, table in (("sites", self.fleet.sites), ("zones", self.fleet.zones))
            for name, override in table.items()
        ]
        for where, names, windows in levels:
            unknown = sorted(set(names) - known - {ALL})
            if unknown:
                raise TrustError(f"bundle: {where}.holder_binding: unknown purpose {unknown[0]!r}")
            unknown = sorted(set(windows) - known)
            if unknown:
                raise TrustError(
                    f"bundle: {where}.anti_passback_purposes: unknown purpose {unknown[0]!r}"
                )
        for key in self.issuers:
            if key.purposes is not None and key.purposes - known:
                raise TrustError(
                    f"{key.source or 'issuer'}: unknown purpose {sorted(key.purposes - known)[0]!r}"
                )

    def encode(self) -> dict[str, bytes]:
        """The four parts' bytes, by name."""
        self.check()
        return {
            "issuers": encode_issuers(self.issuers),
            "revoked": self.revoked.packed(),
            "policy": encode_policy(self.purposes, self.zone_purposes),
            "fleet": encode_fleet(self.fleet),
        }


def build_bundle(
    content: BundleContent | Mapping[str, bytes],
    signing_keys: Sequence[Ed25519PrivateKey],
    version: int,
    issued: int,
    expires: int,
    new_roots: RootSet | None = None,
    revokers: Sequence[Revoker] = (),
    releases: ReleaseAuth | None = None,
) -> bytes:
    """Encode, hash, and sign with every key in ``signing_keys``; return the file's bytes.

    ``content`` may also be already-encoded parts (tests use that to build hostile bundles).
    ``new_roots`` declares a root rotation: sign with enough current *and* new roots.
    ``revokers`` authorises revocation keys (each with its expiry) until the next bundle.
    ``releases`` authorises release keys and sets the lowest version devices may install.
    """
    if not signing_keys:
        raise TrustError("bundle: at least one root key must sign")
    check_version(version)
    if expires <= issued:
        raise TrustError("bundle: expiry must be after the issue time")
    parts = content.encode() if isinstance(content, BundleContent) else dict(content)
    refs = tuple(PartRef(n, len(parts[n]), hashlib.sha256(parts[n]).digest()) for n in PART_NAMES)
    roots_field = None if new_roots is None else (new_roots.threshold, new_roots.keys)
    payload = Manifest(
        version, int(issued), int(expires), refs, roots_field, tuple(revokers),
        releases=releases,
    ).to_cbor()
    raws = [raw_public(k) for k in signing_keys]
    if len(set(raws)) != len(raws):
        raise TrustError("bundle: the same root key is given twice")
    if revokers:  # what a device refuses (bundle.verify): a revocation key in another role
        check_revoker_keys(revokers, {
            "an issuer": tuple(k.raw for k in decode_issuers(parts["issuers"], "bundle")),
            "a root": (*raws, *(() if new_roots is None else new_roots.keys)),
            "a release": () if releases is None else releases.keys,
        }, version)
    body = body_protected()
    sigs = []
    for key, raw in sorted(zip(signing_keys, raws, strict=True), key=lambda kr: kr[1]):
        prot = signer_protected(kid_of(raw))
        sigs.append(Signature(kid_of(raw), prot, key.sign(sig_structure(body, prot, payload))))
    header = encode_header(payload, sigs)
    return b"".join([PREFIX.pack(MAGIC, len(header)), header, *(parts[n] for n in PART_NAMES)])


def build_revocations(
    base: VerifiedBundle, key: Ed25519PrivateKey, new_digests: bytes, version: int,
    issued: int, expires: int | None = None,
) -> bytes:
    """Sign, with a revocation key, a revocations bundle that follows ``base`` (a verified
    bundle, root-signed or itself revocations) and adds ``new_digests`` (packed, any order).

    The anchor is ``base``'s root manifest; the expiry defaults to the anchor's. Only what the
    device would accept is built: the key must be listed in the anchor and still valid."""
    check_version(version)
    anchor_header = base.header if base.manifest.by_roots else base.manifest.anchor
    assert anchor_header is not None
    _, _, _, anchor = anchor_manifest(anchor_header)
    raw = raw_public(key)
    revoker = next((r for r in anchor.revokers if r.key == raw), None)
    if revoker is None:
        raise TrustError(f"revocations: key {kid_of(raw).hex()} is not authorised by the anchor")
    if issued >= revoker.expires:
        raise TrustError("revocations: the revocation key's authorisation has expired")
    if version != base.version + 1:
        # A device takes a delta only one version above what it holds, and a full bundle at
        # most MAX_REVOCATION_STEPS above its anchor: build the next version, nothing else.
        raise TrustError(
            f"revocations: version must be the base's + 1 ({base.version + 1}), not {version}"
        )
    check_revocations_version(version, anchor.version)
    if len(new_digests) % DIGEST_LEN:
        raise TrustError(f"revocations: digests must be {DIGEST_LEN} bytes each")
    fresh = {new_digests[i : i + DIGEST_LEN] for i in range(0, len(new_digests), DIGEST_LEN)}
    parts = {n: base.parts[n] for n in PART_NAMES}
    parts["added"] = merge_digests(base.parts.get("added", b""), b"".join(sorted(fresh)))
    refs = tuple(
        PartRef(n, len(parts[n]), hashlib.sha256(parts[n]).digest()) for n in REVOCATION_PARTS
    )
    manifest = Manifest(
        version, int(issued), anchor.expires if expires is None else int(expires), refs,
        kind=REVOCATIONS_TYPE, anchor=anchor_header,
        base=(base.version, bytes.fromhex(base.manifest_sha256)),
    )
    payload = manifest.to_cbor()
    prot = signer_protected(kid_of(raw))
    sig = Signature(kid_of(raw), prot, key.sign(sig_structure(body_protected(), prot, payload)))
    header = encode_header(payload, [sig])
    return b"".join(
        [PREFIX.pack(MAGIC, len(header)), header, *(parts[n] for n in REVOCATION_PARTS)]
    )


def check_version(version: object) -> None:
    """A version every reader accepts and that can still grow: 1 .. 2**53 - 1."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise TrustError("bundle: version must be an integer")
    if not 1 <= version <= MAX_BUILD_VERSION:
        raise TrustError(f"bundle: version must be 1..{MAX_BUILD_VERSION}, not {version}")


def content_from_files(
    issuers_dir: Path, revoked: Path | None, policy: Path | None
) -> BundleContent:
    """Read the operator's files into a :class:`BundleContent` (TrustError names the file)."""
    keys = tuple(TrustStore.from_dir(issuers_dir).keys)
    zones: dict[str, frozenset[str]]
    purposes, zones, fleet = PurposeTable.default(), {}, FleetPolicy()
    if policy is not None:
        purposes, zones, fleet = read_policy(Path(policy))
    content = BundleContent(
        keys,
        read_revoked(revoked) if revoked else RevocationList.empty(),
        purposes,
        MappingProxyType(zones),
        fleet,
    )
    content.check()
    return content


def read_policy(path: Path) -> tuple[PurposeTable, dict[str, frozenset[str]], FleetPolicy]:
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrustError(f"{path}: cannot read policy: {exc}") from None
    unknown = set(doc) - _POLICY_TABLES
    if unknown:
        raise TrustError(
            f"{path}: unknown table {sorted(unknown)[0]!r} (known: purposes, zones, fleet)"
        )
    purposes = (
        PurposeTable.from_toml(text, str(path)) if "purposes" in doc else PurposeTable.default()
    )
    zones = _load_zones(path) if "zones" in doc else {}
    try:
        fleet = FleetPolicy.from_toml_table(doc.get("fleet"), str(path))
    except ValueError as exc:
        raise TrustError(str(exc)) from None
    return purposes, zones, fleet


def read_revoked(path: Path) -> RevocationList:
    """Hex pass ids (text, as the trust folder's ``revoked.txt``), or packed 16-byte digests
    in any order (``*.bin``: what a collector keeps if it never stores pass ids)."""
    path = Path(path)
    if path.suffix != ".bin":
        return RevocationList.from_text_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"{path}: cannot read revocation list: {exc}") from None
    if len(data) % DIGEST_LEN:
        raise TrustError(f"{path}: length is not a multiple of {DIGEST_LEN}")
    return RevocationList.from_digests(data)
