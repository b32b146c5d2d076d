"""Liveness challenges: ``last_seen`` moves only on a request a replay cannot reproduce.

Rules kept here (docs/sync-protocol.md section 4, "Liveness"; tests/test_collector_liveness.py):

- Every ``/v1/`` answer carries ``Passgate-Challenge``: the collector's time in milliseconds
  and an HMAC of it. The agent echoes the latest one in its next signed batch; the collector
  needs no state to check it (HMAC, then age at most the fresh window).
- The HMAC key lives in the database (``meta``), made by whichever collector process needs
  it first, so every process behind one database issues and accepts the same challenges.
- A challenge is accepted only when it is newer than the last one taken for the device
  (``store.base.Tx.update_health`` decides under the device's batch lock), so a captured
  request replayed later changes nothing; the agent's next challenge is always newer. A
  genuine challenge is taken even when it is too old or too new to make its batch fresh:
  the same bytes replayed later, once its time has come, are judged against it (and a
  batch that is not fresh by its challenge may still be by its ``sent_at``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from .store import SqlStore

KEY_NAME = "liveness_key"
MAC_LEN = 16
CHALLENGE_LEN = 8 + MAC_LEN
FUTURE_SLACK_MS = 60_000  # another collector process's clock may be a little ahead of ours


def load_key(store: SqlStore) -> bytes:
    """The fleet's challenge key, created on first use (race-safe: the first insert wins)."""
    with store._tx() as cur:
        cur.execute(store.sql("INSERT INTO meta (key, value) VALUES (?, ?) "
                              "ON CONFLICT (key) DO NOTHING"), (KEY_NAME, secrets.token_hex(32)))
        cur.execute(store.sql("SELECT value FROM meta WHERE key = ?"), (KEY_NAME,))
        return bytes.fromhex(cur.fetchone()[0])


class Challenges:
    """Issue challenges and tell genuine ones, with one key (how old one may be is
    ``store.base.Tx.update_health``'s to judge)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, stamp: bytes) -> bytes:
        mac = hmac.new(self._key, b"passgate-liveness/1" + stamp, hashlib.sha256)
        return mac.digest()[:MAC_LEN]

    def issue(self, now: float) -> bytes:
        stamp = int(now * 1000).to_bytes(8, "big")
        return stamp + self._mac(stamp)

    def genuine_ms(self, challenge: bytes | None) -> int | None:
        """When a challenge this fleet issued was issued (ms), whatever its age; None for
        no challenge or one that is not ours (``update_health`` judges its age)."""
        if challenge is None or len(challenge) != CHALLENGE_LEN:
            return None
        stamp, mac = challenge[:8], challenge[8:]
        if not hmac.compare_digest(mac, self._mac(stamp)):
            return None
        return int.from_bytes(stamp, "big")

