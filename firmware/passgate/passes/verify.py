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

Live codes (``PG2:``, spec 1.2, ``holder.py``) branch off on their prefix before anything
else, so the ``PG1:`` path only pays one comparison. Their order: structure of both levels
(``malformed``/``unsupported``) -> every level-1 rule above, unchanged -> the pass must carry a
holder key (``cnf``; else ``malformed``) -> the level 2 must verify under it
(``holder_mismatch``) -> its time ``t`` within ``live_window_s`` of ``now``: older is
``live_code_stale``, ahead is ``live_code_future``. Every verdict of a readable pass says how it
was shown (``Verdict.binding``); whether a zone and purpose *require* a live code is the
checkpoint's policy (:mod:`passgate.checkpoint.decide`), not the verifier's.
"""

from __future__ import annotations

import math
from dataclasses import replace

from passgate.errors import PassFormatError
from passgate.passes.cose import decode_sign1
from passgate.passes.format import Claims, parse_claims, parse_text, read_text
from passgate.passes.holder import LIVE_PREFIX, parse_live_text
from passgate.passes.keys import verify_signed
from passgate.passes.purposes import Purpose
from passgate.passes.slotinit import slot_factory
from passgate.passes.truststore import IssuerKey, TrustStore
from passgate.passes.verdict import Binding, Reason, Result, Verdict
from passgate.util.timefmt import span

DEFAULT_SKEW_S = 60
# How old (or how far ahead) a live code's time may be, in seconds: the app refreshes every
# 5 s, so an honest code is 0-5 s old plus the phone clock's error (docs/pass-format.md 10.5).
DEFAULT_LIVE_WINDOW_S = 30
_LIVE_B = LIVE_PREFIX.encode()
# Verdict(...) for the hot path: the same object, built in a third of the time (slotinit.py).
_verdict = slot_factory(Verdict)


class Verifier:
    def __init__(self, trust: TrustStore, skew_s: int = DEFAULT_SKEW_S,
                 live_window_s: int = DEFAULT_LIVE_WINDOW_S) -> None:
        self.trust = trust
        self.skew_s = skew_s
        self.live_window_s = live_window_s

    def check(self, text: str | bytes, now: int | float, zone: str | None = None) -> Verdict:
        """Check one pass text at POSIX time ``now`` for checkpoint ``zone`` (None: any zone)."""
        if not isinstance(now, int):
            if not math.isfinite(now):  # a broken clock reading must deny, not raise
                return Verdict(Result.DENY, Reason.CLOCK_UNTRUSTED, 0, "no valid time")
            now = math.floor(now)
        if (type(text) is str and text[:4] == LIVE_PREFIX) or (
                type(text) in (bytes, bytearray) and text[:4] == _LIVE_B):
            return self._check_live(text, now, zone)
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
        return self._check_sign1(kid, signed, payload, now, zone)[0]

    def _check_live(self, text: str | bytes, now: int, zone: str | None) -> Verdict:
        """A ``PG2:`` live code: level 1 by every rule, then the holder's level 2."""
        try:
            live = parse_live_text(text)
            cose = decode_sign1(live.l1)
        except PassFormatError as exc:
            return Verdict(Result.DENY, Reason(exc.reason), now, exc.detail,
                           binding=Binding.LIVE)
        verdict, claims = self._check_sign1(cose.kid, cose.signature + cose.to_be_signed,
                                            cose.payload, now, zone)
        if not verdict.accepted or claims is None:
            return replace(verdict, binding=Binding.LIVE, live_t=live.t)
        live_id = None
        if claims.holder_key is None:
            reason, detail = Reason.MALFORMED, "live code of a pass without a holder key"
        elif not live.verifies(claims.holder_key):
            reason, detail = Reason.HOLDER_MISMATCH, "live code not made by this pass's holder key"
        else:
            live_id = live.code_id(claims.pass_id)
            reason, detail = self._freshness(live.t, now)
        if reason is Reason.VALID:  # one replace: a frozen dataclass costs microseconds to copy
            return replace(verdict, binding=Binding.LIVE, live_t=live.t, live_id=live_id)
        return replace(verdict, result=Result.DENY, reason=reason, detail=detail,
                       remaining_s=None, binding=Binding.LIVE, live_t=live.t, live_id=live_id)

    def _freshness(self, t: int, now: int) -> tuple[Reason, str]:
        age = now - t
        if age > self.live_window_s:
            return (Reason.LIVE_CODE_STALE,
                    f"code {span(age)} old: show the live code, not a picture")
        if -age > self.live_window_s:
            return (Reason.LIVE_CODE_FUTURE,
                    f"code time {span(-age)} ahead: check the phone's clock")
        return Reason.VALID, ""

    def _check_sign1(self, kid: bytes, signed: bytes, payload: bytes, now: int,
                     zone: str | None) -> tuple[Verdict, Claims | None]:
        """Every level-1 rule for a COSE_Sign1's parts (its kid, its signature followed by
        its ToBeSigned, its payload): the verdict, and the claims if the signature verified
        (None before that)."""
        kid_hex = kid.hex()
        candidates = self.trust.candidates(kid)
        if not candidates:
            return Verdict(Result.DENY, Reason.UNKNOWN_KEY, now, f"no trusted key {kid_hex}",
                           kid=kid_hex), None
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
                    return Verdict(Result.DENY, Reason(exc.reason), now, exc.detail,
                                   kid=kid_hex), None
            verdict = self._decide(claims, key, kid_hex, now, zone)
            if verdict.result is Result.ACCEPT:
                return verdict, claims
            first_denial = first_denial or verdict
        if first_denial is None:
            return Verdict(Result.DENY, Reason.BAD_SIGNATURE, now, "signature does not verify",
                           kid=kid_hex), None
        return first_denial, claims

    def _decide(self, c: Claims, key: IssuerKey, kid_hex: str, now: int,
                zone: str | None) -> Verdict:
        purpose = self.trust.purposes.by_code(c.purpose)
        reason, detail = self._problem(c, purpose, key, kid_hex, now, zone)
        remaining = None
        if reason is Reason.VALID:
            remaining = max(0, c.expires - now)
            detail = f"{span(remaining)} left"
        # One construction per check, through the slot factory (a frozen dataclass's own
        # __init__ costs ~4 us for these 16 fields; slotinit.py).
        return _verdict(
            Result.ACCEPT if remaining is not None else Result.DENY, reason, now, detail,
            remaining, purpose.id if purpose else f"#{c.purpose}", c.hint, kid_hex, c.issuer,
            c.zones, c.not_before, c.expires, c.pass_id,
            Binding.NONE if c.holder_key is None else Binding.BOUND,
        )

    def _problem(self, c: Claims, purpose: Purpose | None, key: IssuerKey, kid_hex: str, now: int,
                 zone: str | None) -> tuple[Reason, str]:
        """The first reason to deny (in the documented order), or ``(VALID, "")``."""
        if key.issuer is not None and c.issuer != key.issuer:
            return Reason.UNKNOWN_KEY, f"key {kid_hex} does not belong to issuer {c.issuer!r}"
        if (key.valid_from is not None or key.valid_until is not None) and (
                not key.valid_at(now) or not key.valid_at(c.issued_at)):  # no window: no calls
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

