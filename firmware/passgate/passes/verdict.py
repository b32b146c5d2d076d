"""The result of checking a pass: an enum result and a reason code drive everything else.

Display texts, buzzer patterns, relay action and journal rows are all derived from a
:class:`Verdict`; nothing downstream re-examines the pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from passgate.passes.slotinit import fast_frozen_init


class Result(enum.Enum):
    ACCEPT = "accept"
    DENY = "deny"


class Reason(enum.Enum):
    """Why a pass was accepted or denied. The values are stable: they are stored and uploaded."""

    VALID = "valid"
    MALFORMED = "malformed"  # not a passgate pass, or broken structure
    UNSUPPORTED = "unsupported"  # a format version, algorithm or critical header we do not know
    UNKNOWN_KEY = "unknown_key"  # no trusted issuer key with this key id (and issuer name)
    BAD_SIGNATURE = "bad_signature"  # a trusted key id, but no key verifies the signature
    KEY_NOT_VALID = "key_not_valid"  # the issuer key is outside its validity window
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    WRONG_ZONE = "wrong_zone"
    PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
    # Holder-bound passes (spec 1.2), decided by the verifier after every level-1 rule:
    HOLDER_MISMATCH = "holder_mismatch"  # the level 2 is not signed by the pass's holder key
    LIVE_CODE_STALE = "live_code_stale"  # the level 2 is older than the freshness window
    LIVE_CODE_FUTURE = "live_code_future"  # the level 2's time is ahead of the window
    # Decided after the verifier, by the checkpoint:
    ALREADY_USED = "already_used"  # anti-passback window
    CLOCK_UNTRUSTED = "clock_untrusted"  # site policy: no time-bound pass on an untrusted clock
    TRUST_STALE = "trust_stale"  # trust data past its expiry / max offline age, policy denies
    JOURNAL_FAULT = "journal_fault"  # the scan could not be recorded, so no green
    LIVE_CODE_REQUIRED = "live_code_required"  # policy: binding required, a bound pass shown bare
    NOT_BOUND = "not_bound"  # policy: binding required, the pass has no holder key


class Binding(enum.Enum):
    """How a readable pass was shown (spec 1.2). Values are stable: journal flags carry them.

    ``NONE``: a pass without a holder key; ``BOUND``: a holder-bound pass shown as its level 1
    alone (a printout, a screenshot of the issued pass); ``LIVE``: a ``PG2:`` live code.
    """

    NONE = "none"
    BOUND = "bound"
    LIVE = "live"


# The detail of a TRUST_STALE denial when the checkpoint has no trust data at all (the OLED
# says this rather than "trust data stale").
NO_TRUST_DATA = "no trust data"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Verdict:
    """What the verifier concluded about one pass text at one instant.

    ``remaining_s`` is the whole seconds of validity left (accepts only). ``not_before`` and
    ``expires`` are the pass's own times (POSIX seconds) when the pass could be read, so a
    screen can say "expired 14 min ago". ``pass_id`` is kept for anti-passback and the
    journal's keyed hash; it is never printed, logged or uploaded as such.
    """

    result: Result
    reason: Reason
    checked_at: int
    detail: str = ""
    remaining_s: int | None = None
    purpose: str | None = None
    hint: str | None = None
    kid: str | None = None  # hex
    issuer: str | None = None
    zones: tuple[str, ...] = ()
    not_before: int | None = None
    expires: int | None = None
    pass_id: bytes | None = None
    # Spec 1.2: how the pass was shown, and for a live code the id of that code (keyed-hashed
    # by the journal like the pass id, never printed) and its time (phone clock, POSIX s).
    binding: Binding | None = None
    live_id: bytes | None = None
    live_t: int | None = None

    @property
    def accepted(self) -> bool:
        return self.result is Result.ACCEPT

    def deny(self, reason: Reason, detail: str = "") -> Verdict:
        """The same pass facts, turned into a denial for ``reason`` (used by later stages)."""
        return replace(self, result=Result.DENY, reason=reason, detail=detail, remaining_s=None)

    def to_json(self) -> dict[str, object]:
        """The stable JSON form ``passgate verify --json`` prints (no pass id; the command adds
        the hint of an accepted pass, as its text line shows it)."""
        return {
            "verdict": self.result.value,
            "reason": self.reason.value,
            "detail": self.detail,
            "remaining_s": self.remaining_s,
            "purpose": self.purpose,
            "kid": self.kid,
            "issuer": self.issuer,
            "zones": list(self.zones),
            "not_before": self.not_before,
            "expires": self.expires,
            "checked_at": self.checked_at,
            "binding": None if self.binding is None else self.binding.value,
        }
