"""Root key sets: k of n offline Ed25519 keys that sign bundles.

A device pins one root set at provisioning (``roots.toml`` in its bundle folder). A bundle
counts only if at least ``threshold`` *distinct* pinned keys signed its manifest; a bundle may
carry a new root set, accepted only when the current threshold and the new one both signed it
(the new keys prove they exist and are held). Every root key goes through
:func:`passgate.passes.keys.check_public_point`: a low-order key would make a forged signature
valid.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passgate.bundle.format import Signature, sig_structure
from passgate.errors import KeyFileError, TrustError
from passgate.passes.keys import (
    check_public_point,
    kid_of,
    load_public,
    raw_public,
    verify_signature,
)

ROOTS_FILE = "roots.toml"


@dataclass(frozen=True, slots=True)
class SignatureCount:
    """How a manifest's signatures fare against one root set."""

    valid: tuple[bytes, ...]  # raw keys of this set whose signature verifies (distinct)
    invalid: int  # signatures by a key of this set that do not verify
    threshold: int

    @property
    def met(self) -> bool:
        return len(self.valid) >= self.threshold


@dataclass(frozen=True)
class RootSet:
    threshold: int
    keys: tuple[bytes, ...]  # raw 32-byte public keys, sorted

    def __post_init__(self) -> None:
        keys = tuple(sorted(self.keys))
        if len(set(keys)) != len(keys):
            raise TrustError("root set: a key is listed twice")
        if not keys:
            raise TrustError("root set: no keys")
        for raw in keys:
            check_public_point(raw, f"root key {kid_of(raw).hex() if len(raw) == 32 else '?'}")
        if not isinstance(self.threshold, int) or not 1 <= self.threshold <= len(keys):
            raise TrustError(f"root set: threshold must be 1..{len(keys)}, got {self.threshold!r}")
        object.__setattr__(self, "keys", keys)

    @property
    def kids(self) -> tuple[bytes, ...]:
        return tuple(kid_of(k) for k in self.keys)

    def describe(self) -> str:
        return f"{self.threshold} of {len(self.keys)} ({', '.join(k.hex() for k in self.kids)})"

    def count(
        self, body_protected: bytes, payload: bytes, signatures: Iterable[Signature]
    ) -> SignatureCount:
        """Count distinct keys of this set with a valid signature over ``payload``.

        Key ids are 8 bytes and may collide, so every key with the signature's kid is tried; a
        key signing twice counts once.
        """
        by_kid: dict[bytes, list[bytes]] = {}
        for raw in self.keys:
            by_kid.setdefault(kid_of(raw), []).append(raw)
        valid: set[bytes] = set()
        invalid = 0
        for sig in signatures:
            candidates = by_kid.get(sig.kid, [])
            if not candidates:
                continue  # a signature by a key we do not trust neither helps nor hurts
            message = sig_structure(body_protected, sig.protected, payload)
            hit = next(
                (raw for raw in candidates if verify_signature(raw, message, sig.signature)), None
            )
            if hit is None:
                invalid += 1
            else:
                valid.add(hit)
        return SignatureCount(tuple(sorted(valid)), invalid, self.threshold)

    # -- files -------------------------------------------------------------------------
    def to_toml(self) -> str:
        lines = [
            "# passgate pinned root keys: a bundle needs `threshold` valid signatures from these.",
            "# Replaced only by a bundle signed by this set's threshold (root rotation).",
            f"threshold = {self.threshold}",
            "keys = [",
        ]
        lines += [f'    "{raw.hex()}",  # kid {kid_of(raw).hex()}' for raw in self.keys]
        return "\n".join(lines + ["]", ""])

    @classmethod
    def from_toml(cls, text: str, where: str) -> RootSet:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TrustError(f"{where}: not valid TOML: {exc}") from None
        keys = doc.get("keys")
        threshold: Any = doc.get("threshold")  # whatever TOML held: RootSet checks it
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise TrustError(f"{where}: keys must be a list of hex public keys")
        try:
            raw = tuple(bytes.fromhex(k) for k in keys)
        except ValueError:
            raise TrustError(f"{where}: keys must be hex") from None
        try:
            return cls(threshold, raw)
        except (TrustError, KeyFileError) as exc:
            raise TrustError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: Path, threshold: int | None = None) -> RootSet:
        """Load a ``roots.toml`` file, or a folder of root ``*.pub`` files.

        A folder takes its threshold from a ``roots.toml`` inside it, else from ``threshold``.
        """
        path = Path(path)
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise TrustError(f"{path}: cannot read: {exc}") from None
            if text.lstrip().startswith("-----BEGIN"):
                return cls._from_pubs([path], threshold, str(path))
            return cls.from_toml(text, str(path))
        if not path.is_dir():
            raise TrustError(f"{path}: no such root key file or folder")
        if (path / ROOTS_FILE).is_file():
            return cls.load(path / ROOTS_FILE)
        pubs = sorted(path.glob("*.pub"))
        if not pubs:
            raise TrustError(f"{path}: no root public keys (*.pub or {ROOTS_FILE})")
        return cls._from_pubs(pubs, threshold, str(path))

    @classmethod
    def _from_pubs(cls, pubs: list[Path], threshold: int | None, where: str) -> RootSet:
        if threshold is None:
            if len(pubs) > 1:
                raise TrustError(
                    f"{where}: {len(pubs)} root keys: give the threshold (--threshold K)"
                )
            threshold = 1
        try:
            return cls(threshold, tuple(raw_public(load_public(p)) for p in pubs))
        except KeyFileError as exc:
            raise TrustError(str(exc)) from None

