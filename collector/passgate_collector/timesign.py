"""Signed time tokens for every response, made with ``passgate.clock.tokens.make_token``.

The token format and its verification belong to the firmware (``passgate.clock.tokens``); the
collector only holds the time private key and says which device and challenge a token is
for (``docs/sync-protocol.md`` section 1).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.clock.tokens import make_token
from passgate.passes.keys import load_private


class TimeSigner:
    """``signer(now, device_id, nonce) -> token bytes`` with one Ed25519 time key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def __call__(self, now: float, device_id: str, nonce: bytes | None) -> bytes:
        return make_token(self._key, now, device_id, nonce)


def load_time_signer(path: Path) -> TimeSigner:
    """Load the time private key (PEM, as written by ``passgate-collector time-key new``)."""
    return TimeSigner(load_private(Path(path)))
