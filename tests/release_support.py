"""Helpers for the release and updater tests: release keys, bundles that authorise them,
signed releases of small packages, a device's bundle folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import DAY, NOW, Fleet
from passgate.bundle import build_bundle, install_bundle, pin_roots
from passgate.passes.keys import raw_public
from passgate.release import ReleaseAuth, deb_file_name, release_file_name, sign_release


@dataclass
class ReleaseFleet:
    """Roots, an issuer, and release keys the roots authorise (with a minimum version)."""

    fleet: Fleet = field(default_factory=Fleet)
    release_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    min_version: str = "0.1.0"

    def auth(self, *extra: Ed25519PrivateKey) -> ReleaseAuth:
        keys = (self.release_key, *extra)
        return ReleaseAuth(tuple(raw_public(k) for k in keys), self.min_version)

    def bundle(self, version: int = 1, auth: ReleaseAuth | None = None,
               releases: bool = True) -> bytes:
        roots = self.fleet.roots
        return build_bundle(
            self.fleet.content(), roots.keys[: roots.threshold], version, NOW, NOW + 7 * DAY,
            releases=(auth or self.auth()) if releases else None,
        )

    def provision(self, state_dir: Path, **kw) -> Path:
        """A device bundle folder with pinned roots and an installed bundle."""
        pin_roots(state_dir, self.fleet.roots.set)
        install_bundle(self.bundle(**kw), state_dir, NOW)
        return state_dir

    def release(self, version: str, deb: bytes, arch: str = "amd64",
                key: Ed25519PrivateKey | None = None, expires: int = NOW + 30 * DAY) -> bytes:
        return sign_release(key or self.release_key, version, arch, deb, NOW, expires)

    def publish_to(self, folder: Path, version: str, deb: bytes, arch: str = "amd64",
                   key: Ed25519PrivateKey | None = None) -> tuple[Path, Path]:
        """Write the .release and .deb into ``folder``; returns both paths."""
        folder.mkdir(parents=True, exist_ok=True)
        rel = folder / release_file_name(version, arch)
        pkg = folder / deb_file_name(version, arch)
        rel.write_bytes(self.release(version, deb, arch, key))
        pkg.write_bytes(deb)
        return rel, pkg
