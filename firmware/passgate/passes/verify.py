"""The offline verifier: ``check(text, now, zone) -> Verdict``. Never raises on any input.

Order of checks (the first failure is the reason): structure -> key id -> signature ->
claims -> issuer name -> key validity -> revocation -> time window -> zone -> purpose.
Revocation comes before time so a revoked pass says "revoked", not "expired".

Clock-skew grace: ``skew_s`` (default 60 s) widens the window on both sides, because a
checkpoint clock and an issuer clock that are both roughly right still differ by seconds;
a minute is far below any purpose's duration (the shortest is 30 min). The same 60 s are
allowed over a purpose's maximum duration. The key window has no grace:
``valid_from <= t < valid_until`` for both ``now`` and ``iat``.

``now`` is floored to a whole second before anything is compared, so ``remaining_s`` is
``max(0, exp - floor(now))``: 0 inside the grace after ``exp``. A NaN or infinite ``now``
denies ``clock_untrusted``. Zones compare exactly (case-sensitive). A checkpoint with no
zone (``zone=None``) skips the pass's zone list and the zone purpose rules, but a key
limited to zones admits nowhere there (``wrong_zone``): its limit cannot be checked.
"""

from __future__ import annotations

import math

from passgate.errors import PassFormatError
from passgate.passes.format import Claims, parse_claims, parse_text, read_text
from passgate.passes.keys import verify_signed
from passgate.passes.purposes import Purpose
from passgate.passes.truststore import IssuerKey, TrustStore
from passgate.passes.verdict import Reason, Result, Verdict
from passgate.util.timefmt import span

DEFAULT_SKEW_S = 60


class Verifier:
    def __init__(self, trust: TrustStore, skew_s: int = DEFAULT_SKEW_S) -> None:
        self.trust = trust
        self.skew_s = skew_s

    def check(self, text: str | bytes, now: int | float, zone: str | None = None) -> Verdict:
        """Check one pass text at POSIX time ``now`` for checkpoint ``zone`` (None: any zone)."""
        if not isinstance(now, int):
            if not math.isfinite(now):  # a broken clock reading must deny, not raise
                return Verdict(Result.DENY, Reason.CLOCK_UNTRUSTED, 0, "no valid time")
            now = math.floor(now)
        # The layout every issuer writes is read in one pass (format.read_text); anything else,
        # and every refusal, goes through parse_text, which names the fault.
        fast = read_text(text) if type(text) is str else None
        if fast is not None:
            kid, signed, payload = fast
        else:
            try:
                cose = parse_text(text)
            except PassFormatError as exc:
                return Verdict(Result.DENY, Reason(exc.reason), now, exc.detail)
            kid, signed, payload = cose.kid, cose.signature + cose.to_be_signed, cose.payload
        kid_hex = kid.hex()
        candidates = self.trust.candidates(kid)
        if not candidates:
            return Verdict(Result.DENY, Reason.UNKNOWN_KEY, now, f"no trusted key {kid_hex}",
                           kid=kid_hex)
        claims: Claims | None = None
        first_denial: Verdict | None = None
        # Key ids are 8 bytes and may collide, and one key may be listed with different
        # metadata (say, an old and a renewed validity window): every key with this kid that
        # verifies the signature gets its say, and the pass is accepted if one admits it.
        for key in candidates:
            if not verify_signed(key.raw, signed):
                continue
            if claims is None:
                try:
                    claims = parse_claims(payload)
                except PassFormatError as exc:
                    return Verdict(Result.DENY, Reason(exc.reason), now, exc.detail, kid=kid_hex)
            verdict = self._decide(claims, key, kid_hex, now, zone)
            if verdict.accepted:
                return verdict
            first_denial = first_denial or verdict
        if first_denial is None:
            return Verdict(Result.DENY, Reason.BAD_SIGNATURE, now, "signature does not verify",
                           kid=kid_hex)
        return first_denial

    def _decide(self, c: Claims, key: IssuerKey, kid_hex: str, now: int,
                zone: str | None) -> Verdict:
        purpose = self.trust.purposes.by_code(c.purpose)
        reason, detail = self._problem(c, purpose, key, kid_hex, now, zone)
        remaining = None
        if reason is Reason.VALID:
            remaining = max(0, c.expires - now)
            detail = f"{span(remaining)} left"
        # One construction per check: a frozen dataclass costs a few microseconds to build.
        return Verdict(
            Result.ACCEPT if remaining is not None else Result.DENY, reason, now, detail,
            remaining, purpose.id if purpose else f"#{c.purpose}", c.hint, kid_hex, c.issuer,
            c.zones, c.not_before, c.expires, c.pass_id,
        )

    def _problem(self, c: Claims, purpose: Purpose | None, key: IssuerKey, kid_hex: str, now: int,
                 zone: str | None) -> tuple[Reason, str]:
        """The first reason to deny (in the documented order), or ``(VALID, "")``."""
        if key.issuer is not None and c.issuer != key.issuer:
            return Reason.UNKNOWN_KEY, f"key {kid_hex} does not belong to issuer {c.issuer!r}"
        if not key.valid_at(now) or not key.valid_at(c.issued_at):
            return Reason.KEY_NOT_VALID, "issuer key outside its validity window"
        if c.pass_id in self.trust.revoked:
            return Reason.REVOKED, "pass revoked"
        if now < c.not_before - self.skew_s:
            return Reason.NOT_YET_VALID, f"valid in {span(c.not_before - now)}"
        if now >= c.expires + self.skew_s:
            return Reason.EXPIRED, f"expired {span(now - c.expires)} ago"
        if zone is not None:
            if zone not in c.zones:
                return Reason.WRONG_ZONE, f"pass not valid in zone {zone}"
            if key.zones is not None and zone not in key.zones:
                return Reason.WRONG_ZONE, f"issuer not allowed to admit to zone {zone}"
        elif key.zones is not None:
            return Reason.WRONG_ZONE, "issuer limited to zones, checkpoint has no zone"
        denied = self._purpose_problem(c, purpose, key, zone)
        if denied:
            return Reason.PURPOSE_NOT_ALLOWED, denied
        return Reason.VALID, ""

    def _purpose_problem(self, c: Claims, purpose: Purpose | None, key: IssuerKey,
                         zone: str | None) -> str:
        if purpose is None:
            return f"unknown purpose code {c.purpose}"
        if key.purposes is not None and purpose.id not in key.purposes:
            return f"issuer not allowed to issue {purpose.id!r} passes"
        allowed = self.trust.zone_purposes.get(zone) if zone is not None else None
        if allowed is not None and purpose.id not in allowed:
            return f"{purpose.label} not allowed in zone {zone}"
        if purpose.max_s is not None and c.expires - c.not_before > purpose.max_s + self.skew_s:
            return f"pass longer than {span(purpose.max_s)} allowed for {purpose.label}"
        return ""

