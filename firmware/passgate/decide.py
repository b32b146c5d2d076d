"""The checkpoint's policy after the verifier: one pure function, :func:`decide`.

The verifier judges the pass alone. This stage adds what only the checkpoint knows: how far
its trust data and its clock can be believed, and whether the pass was already accepted here.
Order (the first that applies gives the reason):

1. A verifier denial stands: the pass is bad whatever the checkpoint's state.
2. Stale trust data with the ``deny`` policy -> ``trust_stale``. Keys and revocations may have
   changed since, so the site chose to admit nobody rather than admit the wrong person.
3. An untrusted clock with the ``deny`` policy -> ``clock_untrusted``: every pass has a
   validity window, and a clock that may lag lets expired passes through.
4. Already accepted here within the anti-passback window -> ``already_used``.

With the ``flag`` policies the pass is accepted and the journal row carries the flag, so the
collector can find scans admitted on stale data or an unsure clock. Flags are attached to
denials too: a row always says under which conditions it was judged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .clock import TimeReading
from .verdict import Reason, Verdict

FLAG_CLOCK_UNTRUSTED = "clock_untrusted"
FLAG_TRUST_STALE = "trust_stale"


class OnDoubt(enum.Enum):
    """What a site does when its clock or trust data cannot be fully believed."""

    DENY = "deny"
    FLAG = "flag"  # accept, and mark the journal row


@dataclass(frozen=True, slots=True)
class Policy:
    clock_untrusted: OnDoubt = OnDoubt.FLAG
    trust_stale: OnDoubt = OnDoubt.DENY


@dataclass(frozen=True, slots=True)
class TrustState:
    """How fresh the trust data is. ``age_s``: seconds since it was issued (None: unknown)."""

    stale: bool
    age_s: int | None = None
    why: str = ""  # "expired 2 days ago", "3 days old": shown on the OLED and in the verdict


FRESH = TrustState(stale=False)


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    flags: frozenset[str] = frozenset()

    @property
    def accepted(self) -> bool:
        return self.verdict.accepted


def decide(
    verdict: Verdict,
    reading: TimeReading,
    trust: TrustState,
    already_used: bool,
    policy: Policy,
) -> Decision:
    """The final verdict for one presentation, and the flags its journal row carries.

    ``already_used`` is whether this pass was accepted here within its anti-passback window;
    callers need only work it out for verdicts the verifier accepted.
    """
    flags = set()
    if not reading.trusted:
        flags.add(FLAG_CLOCK_UNTRUSTED)
    if trust.stale:
        flags.add(FLAG_TRUST_STALE)
    flags = frozenset(flags)
    if not verdict.accepted:
        return Decision(verdict, flags)
    if trust.stale and policy.trust_stale is OnDoubt.DENY:
        return Decision(
            verdict.deny(Reason.TRUST_STALE, f"trust data {trust.why or 'stale'}"), flags
        )
    if not reading.trusted and policy.clock_untrusted is OnDoubt.DENY:
        return Decision(verdict.deny(Reason.CLOCK_UNTRUSTED, f"clock {reading.state.value}"), flags)
    if already_used:
        return Decision(verdict.deny(Reason.ALREADY_USED, "already used here"), flags)
    return Decision(verdict, flags)
