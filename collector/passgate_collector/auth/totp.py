"""TOTP second factor (RFC 6238 over RFC 4226's HOTP): 30-second steps, 6 digits, SHA-1.

Twenty lines of ``hmac`` rather than the ``pyotp`` package: the algorithm is short, fixed and
pinned by the RFC's own test vectors (tests/test_collector_auth.py), and one dependency fewer
is one supply-chain risk fewer on a security service. SHA-1, 6 digits and 30 s are what every
authenticator app accepts by default (Google Authenticator ignores other choices).

Rules kept here:
- A code is accepted for the current step and one step either side (clock drift of a phone),
  and :func:`matching_step` says which step matched so the caller can refuse its reuse.
- The secret is 160 random bits (RFC 4226 section 4 recommends this length), shown to the
  operator once as an ``otpauth://`` URI and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_S = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


def hotp(secret: str, counter: int, digits: int = DIGITS, digest=hashlib.sha1) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code ``code`` is (within the drift allowed), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    step = int(now // STEP_S)
    for s in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if hmac.compare_digest(hotp(secret, s), code):
            return s
    return None


def otpauth_uri(secret: str, account: str, issuer: str = "passgate collector") -> str:
    label = quote(f"{issuer}:{account}")
    return f"otpauth://totp/{label}?" + urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS,
         "period": STEP_S})
