"""Helpers for the bundle tests: root key sets, issuers and small bundles built in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.bundle import BundleContent, FleetPolicy, RootSet, build_bundle
from passgate.passes.keys import raw_public
from passgate.passes.revocation import RevocationList
from passgate.passes.truststore import IssuerKey

NOW = 1_790_000_000  # 2026-09-21
DAY = 86400


@dataclass
class Roots:
    """n root private keys and the set (threshold k) a device would pin."""

    keys: list[Ed25519PrivateKey]
    threshold: int

    @classmethod
    def make(cls, n: int = 3, k: int = 2) -> Roots:
        return cls([Ed25519PrivateKey.generate() for _ in range(n)], k)

    @property
    def set(self) -> RootSet:
        return RootSet(self.threshold, tuple(raw_public(k) for k in self.keys))


@dataclass
class Fleet:
    roots: Roots = field(default_factory=Roots.make)
    issuer: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def content(
        self, revoked: list[bytes] | None = None, fleet: FleetPolicy | None = None
    ) -> BundleContent:
        key = IssuerKey.from_public(
            self.issuer.public_key(), issuer="city", zones=frozenset({"gate-1"})
        )
        return BundleContent(
            (key,), RevocationList.from_pass_ids(revoked or []), fleet=fleet or FleetPolicy()
        )

    def bundle(
        self,
        version: int,
        revoked: list[bytes] | None = None,
        signers=None,
        issued: int = NOW,
        expires: int | None = None,
        new_roots: RootSet | None = None,
        **kw,
    ) -> bytes:
        signers = self.roots.keys[: self.roots.threshold] if signers is None else signers
        return build_bundle(
            self.content(revoked, **kw),
            signers,
            version,
            issued,
            expires if expires is not None else issued + 7 * DAY,
            new_roots,
        )
