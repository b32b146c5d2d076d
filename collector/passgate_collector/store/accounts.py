"""Staff accounts, failed sign-ins and the session key (mixed into :class:`~.base.SqlStore`).

Rules kept here:
- No password and no TOTP secret leaves this module in a log line; passwords arrive already
  hashed (argon2id, ``passgate_collector.auth.passwords``), never in clear.
- Every change of password, second factor or role gives the account a new random ``epoch``;
  sessions carry the epoch they were issued under, so the change ends them everywhere.
- A TOTP time step is accepted once per account (``use_totp_step`` moves a high-water mark
  in one UPDATE), so a code seen over a shoulder cannot be replayed.
- Failed sign-ins are rows in the database, not counters in one process: every collector
  process sharing the database sees the same count. Keys are hashed: a name typed by mistake
  (often a password) or an address is never stored in clear.
- The session signing key is made once, at random, and kept in ``meta``: processes sharing
  the database sign and accept the same cookies, and a restart does not sign everyone out.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import StoreError

USER_COLS = "name, role, pw_hash, totp_secret, totp_last_step, epoch, created_at"


@dataclass(frozen=True)
class StaffUser:
    name: str
    role: str
    pw_hash: str
    totp_secret: str | None  # base32; None: no second factor
    totp_last_step: int | None
    epoch: str
    created_at: int


def failure_key(kind: str, value: str) -> bytes:
    """The stored form of a rate-limit key: ``kind`` is "account" or "address"."""
    return hashlib.sha256(f"{kind}:{value}".encode()).digest()


class Accounts:
    """Needs ``_tx``, ``_all`` and ``sql`` from the store."""

    def _all(self, sql: str, params: Sequence = ()) -> list:
        raise NotImplementedError

    def _tx(self, write: bool = True):
        raise NotImplementedError

    def sql(self, text: str) -> str:
        raise NotImplementedError

    def _update(self, sql: str, params: Sequence) -> bool:
        with self._tx() as cur:
            cur.execute(self.sql(sql), tuple(params))
            return cur.rowcount == 1

    # --- accounts ------------------------------------------------------------------------
    def add_user(self, name: str, role: str, pw_hash: str, now: int) -> None:
        with self._tx() as cur:
            cur.execute(self.sql("SELECT 1 FROM staff_users WHERE name = ?"), (name,))
            if cur.fetchone() is not None:
                raise StoreError(f"account {name!r} exists already")
            cur.execute(self.sql(f"INSERT INTO staff_users ({USER_COLS}) "
                                 "VALUES (?, ?, ?, NULL, NULL, ?, ?)"),
                        (name, role, pw_hash, secrets.token_hex(16), now))

    def user(self, name: str) -> StaffUser | None:
        rows = self._all(f"SELECT {USER_COLS} FROM staff_users WHERE name = ?", (name,))
        return StaffUser(*rows[0]) if rows else None

    def users(self) -> list[StaffUser]:
        return [StaffUser(*r) for r in self._all(f"SELECT {USER_COLS} FROM staff_users "
                                                 "ORDER BY name")]

    def remove_user(self, name: str) -> bool:
        with self._tx() as cur:
            cur.execute(self.sql("DELETE FROM staff_users WHERE name = ?"), (name,))
            return cur.rowcount == 1

    def set_password(self, name: str, pw_hash: str, *, new_epoch: bool = True) -> bool:
        """A new hash; ``new_epoch=False`` only when the same password is re-hashed with
        stronger parameters at sign-in (nobody else's session should end for that)."""
        if not new_epoch:
            return self._update("UPDATE staff_users SET pw_hash = ? WHERE name = ?",
                                (pw_hash, name))
        return self._update("UPDATE staff_users SET pw_hash = ?, epoch = ? WHERE name = ?",
                            (pw_hash, secrets.token_hex(16), name))

    def set_role(self, name: str, role: str) -> bool:
        return self._update("UPDATE staff_users SET role = ?, epoch = ? WHERE name = ?",
                            (role, secrets.token_hex(16), name))

    def set_totp(self, name: str, secret: str | None) -> bool:
        return self._update("UPDATE staff_users SET totp_secret = ?, totp_last_step = NULL, "
                            "epoch = ? WHERE name = ?", (secret, secrets.token_hex(16), name))

    def new_epoch(self, name: str) -> bool:
        """End every session of the account (sign-out ends them all)."""
        return self._update("UPDATE staff_users SET epoch = ? WHERE name = ?",
                            (secrets.token_hex(16), name))

    def use_totp_step(self, name: str, step: int) -> bool:
        """Accept TOTP time step ``step`` once: False if it, or a later one, was used."""
        return self._update("UPDATE staff_users SET totp_last_step = ? WHERE name = ? AND "
                            "(totp_last_step IS NULL OR totp_last_step < ?)",
                            (step, name, step))

    # --- failed sign-ins -----------------------------------------------------------------
    def login_failures(self, key: bytes, since: int) -> int:
        return int(self._all("SELECT COUNT(*) FROM login_failures WHERE key_hash = ? AND at >= ?",
                             (key, since))[0][0])

    def add_login_failure(self, keys: Sequence[bytes], now: int, forget_before: int) -> None:
        """Count one failure under each key; rows older than ``forget_before`` go (the table
        holds one window's failures, however long the attack)."""
        with self._tx() as cur:
            cur.execute(self.sql("DELETE FROM login_failures WHERE at < ?"), (forget_before,))
            for key in keys:
                cur.execute(self.sql("INSERT INTO login_failures (key_hash, at) VALUES (?, ?)"),
                            (key, now))

    def clear_login_failures(self, key: bytes) -> None:
        with self._tx() as cur:
            cur.execute(self.sql("DELETE FROM login_failures WHERE key_hash = ?"), (key,))

    # --- the session signing key ---------------------------------------------------------
    def session_secret(self) -> bytes:
        """The key that signs staff session cookies, made on first use (race-safe)."""
        with self._tx() as cur:
            cur.execute(self.sql("INSERT INTO meta (key, value) VALUES ('session_secret', ?) "
                                 "ON CONFLICT (key) DO NOTHING"), (secrets.token_hex(32),))
            cur.execute(self.sql("SELECT value FROM meta WHERE key = 'session_secret'"))
            return bytes.fromhex(cur.fetchone()[0])
