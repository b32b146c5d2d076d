"""Signed time tokens: the only way a checkpoint without a trusted clock learns the time.

A token is a COSE_Sign1 (the pass decoder's strict code, reused) signed with Ed25519 by a
*time key* pinned on the device. Its payload is deterministic CBOR::

    {"typ": "passgate-time/1", "t_ms": uint, "dev": text, "nonce": bstr(16)}   ; nonce optional

- ``t_ms``: the collector's time in milliseconds (its clock is NTP-synchronised);
- ``dev``: the device id it was made for (a token for one checkpoint is useless on another);
- ``nonce``: the random challenge the device sent with its request. With it, the token is
  proof of the time *now* (it cannot predate the challenge), so the clock becomes
  ``trusted``. Without it the token is still authentic but may be old: it only raises the
  floor (an authentic old time is still a lower bound of the real time).

137 bytes without a nonce, 160 with one (12-character device id). Full description:
``docs/trust.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.errors import KeyFileError, PassFormatError, TimeTokenError
from passgate.passes.cose import (
    ALG_EDDSA,
    HDR_ALG,
    HDR_KID,
    decode_sign1,
    dumps,
    encode_sign1,
    loads_strict,
)
from passgate.passes.keys import (
    check_public_point,
    kid_of,
    load_public,
    raw_public,
    verify_signature,
)

TOKEN_TYPE = "passgate-time/1"
NONCE_LEN = 16
MAX_TOKEN = 1024
MIN_T_MS = 1_577_836_800_000  # 2020-01-01: a token before that is a bug, not a time
MAX_T_MS = 2**44  # year 2527


@dataclass(frozen=True, slots=True)
class TimeKey:
    """A pinned time public key (checked like every other key: prime-order point)."""

    raw: bytes
    source: str = ""

    def __post_init__(self) -> None:
        check_public_point(self.raw, self.source or "time key")

    @property
    def kid(self) -> bytes:
        return kid_of(self.raw)


@dataclass(frozen=True, slots=True)
class TimeToken:
    t: float  # POSIX seconds
    device_id: str
    nonce: bytes | None
    kid: bytes


def make_token(
    key: Ed25519PrivateKey, t: float, device_id: str, nonce: bytes | None = None
) -> bytes:
    """Sign a token (the collector's side, and ``passgate time token``)."""
    if nonce is not None and len(nonce) != NONCE_LEN:
        raise TimeTokenError(f"nonce must be {NONCE_LEN} bytes")
    claims: dict[str, Any] = {"typ": TOKEN_TYPE, "t_ms": int(round(t * 1000)), "dev": device_id}
    if nonce is not None:
        claims["nonce"] = nonce
    protected = {HDR_ALG: ALG_EDDSA, HDR_KID: kid_of(raw_public(key))}
    return encode_sign1(dumps(claims), key.sign, protected)


def verify_token(data: bytes, keys: Sequence[TimeKey], device_id: str) -> TimeToken:
    """Check a token's structure, signature and device binding; return its content.

    Freshness (the nonce) is the clock store's business: it knows the pending challenges.
    """
    if len(data) > MAX_TOKEN:
        raise TimeTokenError(f"time token is {len(data)} bytes, more than {MAX_TOKEN}")
    try:
        sign1 = decode_sign1(bytes(data))
    except PassFormatError as exc:
        raise TimeTokenError(f"time token: {exc.detail}") from None
    candidates = [k for k in keys if k.kid == sign1.kid]
    if not candidates:
        raise TimeTokenError(f"time token signed by {sign1.kid.hex()}, not a pinned time key")
    if not any(verify_signature(k.raw, sign1.to_be_signed, sign1.signature) for k in candidates):
        raise TimeTokenError("time token signature does not verify")
    try:
        claims = loads_strict(sign1.payload, "time token payload")
    except PassFormatError as exc:
        raise TimeTokenError(f"time token: {exc.detail}") from None
    if not isinstance(claims, Mapping) or claims.get("typ") != TOKEN_TYPE:
        raise TimeTokenError(f"time token: payload is not a {TOKEN_TYPE} claims map")
    if not set(claims) <= {"typ", "t_ms", "dev", "nonce"}:
        raise TimeTokenError("time token: unknown claim")
    t_ms, dev, nonce = claims.get("t_ms"), claims.get("dev"), claims.get("nonce")
    if type(t_ms) is not int or not MIN_T_MS <= t_ms <= MAX_T_MS:
        raise TimeTokenError("time token: t_ms missing or out of range")
    if not isinstance(dev, str) or not dev:
        raise TimeTokenError("time token: dev missing")
    if nonce is not None and (type(nonce) is not bytes or len(nonce) != NONCE_LEN):
        raise TimeTokenError(f"time token: nonce must be {NONCE_LEN} bytes")
    if dev != device_id:
        raise TimeTokenError(f"time token is for device {dev!r}, this is {device_id!r}")
    return TimeToken(t_ms / 1000, dev, nonce, sign1.kid)


def new_nonce() -> bytes:
    return os.urandom(NONCE_LEN)


def load_time_keys(paths: Path | Iterable[Path]) -> tuple[TimeKey, ...]:
    """Pinned time keys from a ``.pub`` file, a folder of them, or several paths."""
    if isinstance(paths, str | Path):
        paths = [Path(paths)]
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.pub")) if p.is_dir() else [p]
    if not files:
        raise TimeTokenError("no time keys (*.pub) found")
    try:
        return tuple(TimeKey(raw_public(load_public(f)), str(f)) for f in files)
    except KeyFileError as exc:
        raise TimeTokenError(str(exc)) from None

