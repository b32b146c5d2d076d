"""The signed release manifest: which ``.deb`` is release ``version`` for ``arch``.

File layout (``passgate_<version>_<arch>.release``), deterministic CBOR::

    {"manifest": bstr, "kid": bstr(8), "sig": bstr(64)}

``manifest`` is itself deterministic CBOR::

    {"type": "passgate-release", "format": 1, "version": "0.2.0", "arch": "amd64",
     "deb": "passgate_0.2.0_amd64.deb", "sha256": bstr(32), "length": uint,
     "issued": uint, "expires": uint}

``sig`` is Ed25519 over ``DOMAIN + manifest``; the domain prefix keeps a release signature
from ever being valid as a pass, a bundle or a time token signature, and vice versa.

Why a manifest checked by our own code rather than a signed apt repository with
``signed-by``: the trust anchor is the bundle the device already verifies (k of n roots), not
a GnuPG keyring a package would have to ship and rotate; Ed25519 through ``cryptography`` is
the verifier the passes already use; the checks (authorised key, expiry, architecture,
length cap before download, SHA-256, no downgrade, roots' minimum) are each one line here and
each has a test that breaks it. apt would add a second trust system to keep in step.

Rules kept (tests/test_release.py):

- only a key in the bundle's release keyring counts; any other signer is ``not_authorised``,
  a bad signature ``unsigned``;
- an expired manifest is refused (a blocked update shows as a stale one, TUF's "freeze");
- the architecture must be the device's;
- the version is never below the roots' minimum (``below_minimum``);
- at most ``MAX_MANIFEST`` bytes are read; the ``.deb`` is capped at the declared length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.errors import KeyFileError, PassFormatError, ReleaseRefused
from passgate.passes.cose import dumps, loads_strict
from passgate.passes.keys import check_public_point, kid_of, raw_public, verify_signature
from passgate.release.version import parse_version, version_key

TYPE = "passgate-release"
FORMAT = 1
DOMAIN = b"passgate-release-v1\0"
MAX_MANIFEST = 4096  # a manifest is ~250 bytes; a file larger than this is not one
MAX_DEB = 512 * 1024 * 1024  # no release is this large; a manifest saying so is refused
MAX_RELEASE_KEYS = 8
ARCHES = ("amd64", "arm64", "armhf")
_FIELDS = {"type", "format", "version", "arch", "deb", "sha256", "length", "issued", "expires"}


@dataclass(frozen=True, slots=True)
class ReleaseAuth:
    """What the roots say about releases: the keys that may sign them, the lowest version."""

    keys: tuple[bytes, ...]  # raw 32-byte Ed25519 public keys
    min_version: str

    def to_cbor_obj(self) -> dict[str, object]:
        return {"keys": list(self.keys), "min_version": self.min_version}

    @classmethod
    def from_cbor_obj(cls, doc: object) -> ReleaseAuth:
        if not isinstance(doc, Mapping) or set(doc) != {"keys", "min_version"}:
            raise ReleaseRefused("malformed", "releases must be {keys, min_version}")
        keys = doc["keys"]
        if not isinstance(keys, list | tuple) or not 1 <= len(keys) <= MAX_RELEASE_KEYS:
            raise ReleaseRefused("malformed", f"releases: 1..{MAX_RELEASE_KEYS} keys expected")
        for k in keys:
            try:  # a low-order key would make a trivial signature valid for every release
                check_public_point(k if isinstance(k, bytes) else b"", "release key")
            except KeyFileError as exc:
                raise ReleaseRefused("malformed", str(exc)) from None
        if len(set(keys)) != len(keys):
            raise ReleaseRefused("malformed", "releases: a key is listed twice")
        parse_version(doc["min_version"])
        return cls(tuple(keys), doc["min_version"])


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    arch: str
    deb: str  # file name of the package beside the manifest
    sha256: bytes
    length: int
    issued: int
    expires: int
    signer: bytes  # raw public key that signed (verified)


def release_file_name(version: str, arch: str) -> str:
    return f"passgate_{version}_{arch}.release"


def deb_file_name(version: str, arch: str) -> str:
    return f"passgate_{version}_{arch}.deb"


def sign_release(
    key: Ed25519PrivateKey, version: str, arch: str, deb: bytes, issued: int, expires: int
) -> bytes:
    """The ``.release`` file for package bytes ``deb``."""
    parse_version(version)
    if arch not in ARCHES:
        raise ReleaseRefused("malformed", f"release: unknown architecture {arch!r}")
    if expires <= issued:
        raise ReleaseRefused("malformed", "release: expiry must be after the issue time")
    manifest = dumps({
        "type": TYPE, "format": FORMAT, "version": version, "arch": arch,
        "deb": deb_file_name(version, arch), "sha256": hashlib.sha256(deb).digest(),
        "length": len(deb), "issued": int(issued), "expires": int(expires),
    })
    raw = raw_public(key)
    return dumps({"manifest": manifest, "kid": kid_of(raw), "sig": key.sign(DOMAIN + manifest)})


def verify_release(
    data: bytes,
    auth: ReleaseAuth | None,
    *,
    now: float,
    arch: str | None = None,
    fallback: bool = False,
) -> Release:
    """Check a ``.release`` file against the bundle's release keyring; return what it says.

    ``auth`` None (the bundle authorises no release key) refuses every release.
    ``fallback``: the release of the version running now, kept to roll back to; its expiry
    and the minimum do not apply (going back to what ran anyway is no downgrade), its
    signer, architecture and hashes still do.
    """
    if auth is None:
        raise ReleaseRefused("not_authorised", "the trust bundle authorises no release key")
    if len(data) > MAX_MANIFEST:
        raise ReleaseRefused("too_large", f"release manifest over {MAX_MANIFEST} bytes")
    outer = _cbor(data, "release file")
    if not isinstance(outer, Mapping) or set(outer) != {"manifest", "kid", "sig"}:
        raise ReleaseRefused("malformed", "release file must be {manifest, kid, sig}")
    manifest, kid, sig = outer["manifest"], outer["kid"], outer["sig"]
    if not (isinstance(manifest, bytes) and isinstance(kid, bytes) and isinstance(sig, bytes)):
        raise ReleaseRefused("malformed", "release file fields must be byte strings")
    candidates = [k for k in auth.keys if kid_of(k) == kid]  # ids may collide: try each
    if not candidates:
        raise ReleaseRefused(
            "not_authorised", f"release signed by key {kid.hex()}, not one the roots authorise"
        )
    signer = next((k for k in candidates if verify_signature(k, DOMAIN + manifest, sig)), None)
    if signer is None:
        raise ReleaseRefused("unsigned", "release signature does not verify")
    rel = _parse(manifest, signer)
    if now >= rel.expires and not fallback:
        raise ReleaseRefused("expired", f"release {rel.version} expired")
    if arch is not None and rel.arch != arch:
        raise ReleaseRefused("wrong_arch", f"release {rel.version} is for {rel.arch}, not {arch}")
    if version_key(rel.version) < version_key(auth.min_version) and not fallback:
        raise ReleaseRefused(
            "below_minimum",
            f"release {rel.version} is below the roots' minimum {auth.min_version}",
        )
    return rel


def check_package(rel: Release, chunks: Iterable[bytes]) -> bytes:
    """Read the package, never past its declared length, and check its SHA-256."""
    h, out, n = hashlib.sha256(), [], 0
    for chunk in chunks:
        n += len(chunk)
        if n > rel.length:
            raise ReleaseRefused("too_large", f"{rel.deb}: more than the {rel.length} bytes signed")
        h.update(chunk)
        out.append(chunk)
    if n != rel.length or h.digest() != rel.sha256:
        raise ReleaseRefused("hash_mismatch", f"{rel.deb}: length or SHA-256 differs from the "
                             "signed manifest")
    return b"".join(out)


def _cbor(data: bytes, what: str) -> object:
    try:
        return loads_strict(data, what)
    except PassFormatError as exc:
        raise ReleaseRefused("malformed", f"release: {exc.detail}") from None


def _parse(manifest: bytes, signer: bytes) -> Release:
    doc = _cbor(manifest, "release manifest")
    if not isinstance(doc, Mapping) or set(doc) != _FIELDS:
        raise ReleaseRefused("malformed", "release manifest fields missing or unknown")
    if doc["type"] != TYPE or doc["format"] != FORMAT:
        raise ReleaseRefused("malformed", "not a passgate release manifest of format 1")
    version, arch = doc["version"], doc["arch"]
    parse_version(version)
    if arch not in ARCHES or doc["deb"] != deb_file_name(version, arch):
        raise ReleaseRefused("malformed", "release manifest: bad architecture or file name")
    sha, length = doc["sha256"], doc["length"]
    if not isinstance(sha, bytes) or len(sha) != 32:
        raise ReleaseRefused("malformed", "release manifest: sha256 must be 32 bytes")
    for key in ("length", "issued", "expires"):
        v = doc[key]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**40:
            raise ReleaseRefused("malformed", f"release manifest: bad {key}")
    if not 0 < length <= MAX_DEB:
        raise ReleaseRefused("too_large", f"release manifest: length {length} out of range")
    return Release(version, arch, doc["deb"], sha, length, doc["issued"], doc["expires"], signer)
