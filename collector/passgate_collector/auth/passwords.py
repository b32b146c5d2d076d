"""Password hashing for staff accounts: argon2id through argon2-cffi.

Rules kept here:
- Passwords are stored only as argon2id hashes (memory-hard, RFC 9106), with argon2-cffi's
  default parameters (its RFC 9106 "low memory" profile: 64 MiB, 3 passes, 4 lanes).
- Checking an unknown account costs the same as checking a known one (a hash of a random
  password is verified instead), so the answer's timing does not tell whether a name exists.
- A hash made with weaker parameters than today's is replaced at the next good sign-in.
- A password is at least ``MIN_LENGTH`` characters; nothing here logs it.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from passgate.errors import UsageError

MIN_LENGTH = 10
NO_PASSWORD = "!"  # pw_hash of an account that signs in only through a trusted proxy

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise UsageError(f"a staff password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


@functools.cache
def _decoy() -> str:
    """A hash nobody knows the password of, made on first use (not at import)."""
    return _hasher.hash(secrets.token_urlsafe(24))


def verify_password(pw_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; ``pw_hash=None`` (no such account) takes as long and
    is False."""
    if pw_hash is None or pw_hash == NO_PASSWORD:
        target, real = _decoy(), False
    else:
        target, real = pw_hash, True
    try:
        ok = _hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and real


def needs_rehash(pw_hash: str) -> bool:
    return pw_hash != NO_PASSWORD and _hasher.check_needs_rehash(pw_hash)
