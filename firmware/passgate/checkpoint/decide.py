"""The checkpoint's policy after the verifier: one pure function, :func:`decide`.

The verifier judges the pass alone. This stage adds what only the checkpoint knows: how far
its trust data and its clock can be believed, and whether the pass was already accepted here.
Order (the first that applies gives the reason):

1. A verifier denial stands: the pass is bad whatever the checkpoint's state. One exception:
   with no trust data at all (``no_trust``: no bundle installed, or none usable) every signed
   pass is ``unknown_key``, which the OLED would call "unknown issuer" and staff would read
   as a forgery. That is said as it is: ``trust_stale``, detail ``no trust data``, flagged
   ``trust_stale`` (no data is the stalest data; the reason set is stored and uploaded, so it
   gets no new member). An unreadable code stays ``malformed``.
   Then holder binding (spec 1.2): where the policy requires it for the pass's purpose
   (``holder_binding``), an accepted pass not shown as a live code is denied:
   ``live_code_required`` for a holder-bound pass shown as its level 1 alone (the holder has
   the app: "show the live code"), ``not_bound`` for a pass without a holder key (no live code
   can exist for it: the holder needs a new, bound pass). A pass fit for this checkpoint in
   every other way is refused for what it lacks before any doubt about the checkpoint's state.
2. Stale trust data with the ``deny`` policy -> ``trust_stale``. Keys and revocations may have
   changed since, so the site chose to admit nobody rather than admit the wrong person.
3. An untrusted clock with the ``deny`` policy -> ``clock_untrusted``: every pass has a
   validity window, and a clock that may lag lets expired passes through.
4. Already accepted here within the anti-passback window -> ``already_used``.

A pass whose own accept is still holding the door (``held``: shown again during its hold, as
people do when they are unsure it worked) is judged the same way, but its decision (whatever
it is: already used, expired a moment ago, a clock that stopped being trusted, or accepted
again with anti-passback off) carries the ``reshow`` flag and the checkpoint signals nothing:
that person is already going through, a deny would lock the door on them, and a new accept
would re-trigger the relay (a pass held up every few seconds would keep the door open).

With the ``flag`` policies the pass is accepted and the journal row carries the flag, so the
collector can find scans admitted on stale data or an unsure clock. Flags are attached to
denials too: a row always says under which conditions it was judged.

The policy decisions themselves (what "stale" and "untrusted" mean, deny or flag) are the
bundle's: :func:`passgate.bundle.policy.stale_policy_decision` and
:func:`~passgate.bundle.policy.clock_policy_decision`, fed the checkpoint's effective
:class:`~passgate.bundle.policy.CheckpointPolicy` (from the installed bundle for this zone, or
from the local config for a plain trust folder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from passgate.bundle.policy import (
    FLAG_CLOCK_UNTRUSTED,
    FLAG_TRUST_STALE,
    CheckpointPolicy,
    Doubt,
    TrustStatus,
    clock_policy_decision,
    stale_policy_decision,
)
from passgate.clock.clock import TimeReading
from passgate.passes.verdict import NO_TRUST_DATA, Binding, Reason, Verdict

__all__ = [
    "FLAG_CLOCK_UNTRUSTED",
    "FLAG_RESHOW",
    "FLAG_TRUST_STALE",
    "binding_flags",
    "FRESH",
    "CheckpointPolicy",
    "Decision",
    "TrustStatus",
    "decide",
]

FRESH = TrustStatus(stale=False, age_s=0, why="current")
FLAG_RESHOW = "reshow"  # shown again while its own accept holds the door: not signalled
# Spec 1.2, how a readable pass was shown (no flag: a pass without a holder key, or unread):
FLAG_BOUND = "bound"  # a holder-bound pass shown as its level 1 alone
FLAG_LIVE = "live"  # a live code (PG2:)
LIVE_ID_PREFIX = "live_"  # + 24 hex: keyed hash of the live code's id, as pass ids are hashed
LIVE_ID_BYTES = 12


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    flags: frozenset[str] = frozenset()

    @property
    def accepted(self) -> bool:
        return self.verdict.accepted

    @property
    def signalled(self) -> bool:
        """False for a reshow: recorded, but neither signals nor screen change."""
        return FLAG_RESHOW not in self.flags


def decide(
    verdict: Verdict,
    reading: TimeReading,
    trust: TrustStatus,
    already_used: bool,
    policy: CheckpointPolicy,
    held: bool = False,
    no_trust: bool = False,
) -> Decision:
    """The final verdict for one presentation, and the flags its journal row carries.

    ``trust`` is the staleness of the trust data at ``reading.now`` (:data:`FRESH` for a plain
    trust folder). ``already_used`` is whether this pass was accepted here within its
    anti-passback window; callers need only work it out for verdicts the verifier accepted.
    ``held``: the pass's own accept is still holding the door (see after rule 4).
    ``no_trust``: the checkpoint has no trust data at all (see rule 1).
    """
    doubts = [
        d
        for d in (stale_policy_decision(trust, policy), clock_policy_decision(reading, policy))
        if d is not None
    ]
    flags = frozenset(d.flag for d in doubts)
    decision = _judge(_binding(verdict, policy), doubts, flags, already_used, no_trust)
    if held:
        return Decision(decision.verdict, decision.flags | {FLAG_RESHOW})
    return decision


def binding_flags(verdict: Verdict, keyed_hash: Callable[[bytes], bytes]) -> frozenset[str]:
    """The journal flags that record how the pass was shown (spec 1.2).

    ``keyed_hash`` is the journal's keyed hash of pass ids (HMAC with the fleet hash key):
    the live code's id is stored only through it, so the collector can match the same live
    code at two checkpoints without learning anything about the pass. Flags, not new row
    fields, so the journal's chain encoding (version 1) is unchanged.
    """
    if verdict.binding is Binding.BOUND:
        return frozenset({FLAG_BOUND})
    if verdict.binding is not Binding.LIVE:
        return frozenset()
    if verdict.live_id is None:  # unreadable, or its level 2 did not verify: no id to trust
        return frozenset({FLAG_LIVE})
    code = keyed_hash(verdict.live_id)[:LIVE_ID_BYTES].hex()
    return frozenset({FLAG_LIVE, LIVE_ID_PREFIX + code})


def _binding(verdict: Verdict, policy: CheckpointPolicy) -> Verdict:
    """The binding rule (after rule 1): a denial where a live code is required and missing."""
    if not verdict.accepted or verdict.binding is Binding.LIVE:
        return verdict
    if not policy.holder_binding or not policy.binding_required(verdict.purpose):
        return verdict
    if verdict.binding is Binding.BOUND:
        return verdict.deny(Reason.LIVE_CODE_REQUIRED,
                            "show the live code from the holder app, not the pass")
    return verdict.deny(Reason.NOT_BOUND, f"{verdict.purpose} needs a pass bound to a phone here")


def _judge(
    verdict: Verdict,
    doubts: list[Doubt],
    flags: frozenset[str],
    already_used: bool,
    no_trust: bool,
) -> Decision:
    """Rules 1 to 4, in order."""
    if no_trust and verdict.reason is Reason.UNKNOWN_KEY:
        no_data = verdict.deny(Reason.TRUST_STALE, NO_TRUST_DATA)
        return Decision(no_data, flags | {FLAG_TRUST_STALE})
    if not verdict.accepted:
        return Decision(verdict, flags)
    for doubt in doubts:  # stale first: the broadest problem is the reason given
        if doubt.deny is not None:
            return Decision(verdict.deny(doubt.deny, doubt.detail), flags)
    if already_used:
        return Decision(verdict.deny(Reason.ALREADY_USED, "already used here"), flags)
    return Decision(verdict, flags)
