"""The clock's persisted state: the floor, the last fresh token, pending challenges.

One small JSON file (``/var/lib/passgate/clock.floor`` by default), replaced atomically under
an ``flock`` because three kinds of process update it: the scanner (the floor follows
authenticated time as it runs), the sync agent (tokens from the collector) and a technician
(``passgate time set``)::

    {"floor": 1767225600.0, "floor_boot": "<boot id>", "floor_mono": 812.5, "floor_source": "token",
     "token_floor": 1767225600.0, "repairs": 0,
     "anchor": {"t": 1767225600.0, "boot": "<boot id>", "mono": 812.5, "kid": "<hex>"},
     "challenges": [{"nonce": "<hex>", "boot": "<boot id>", "mono": 800.1}]}

``floor_mono`` is the monotonic clock when the floor was written, valid only within the same
boot (``boot``): within a boot, floor + (monotonic now - floor_mono) is still a lower bound
of the real time. ``floor_source`` says which authority set the floor's value (``token``,
``timesyncd``, ``rtc``; monotonic progress keeps the source it started from).

Every write takes the maximum with what is on disk, with one exception, the *repair*: a fresh
signed token (it answers a challenge of this boot) may lower a floor that no token set, i.e.
one raised by a source the site trusts but that is not authenticated (NTP, an RTC), down to
the token's time but never below the latest token time seen (``token_floor``). ``repairs``
counts these, so a process holding an older floor in memory adopts the lower one instead of
writing its own back. ``docs/trust.md`` section 5 says why this is safe.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passgate.clock.tokens import TimeKey, new_nonce, verify_token
from passgate.errors import ClockError, TimeTokenError, TrustError
from passgate.util.atomicfile import locked, write_atomic

log = logging.getLogger(__name__)

DEFAULT_CLOCK_FILE = Path("/var/lib/passgate/clock.floor")
CHALLENGE_TTL_S = 600.0  # a token must answer a challenge within ten minutes
MAX_CHALLENGES = 8


@dataclass(frozen=True, slots=True)
class Anchor:
    """A fresh token: the time ``t`` was true at monotonic ``mono`` in boot ``boot``."""

    t: float
    boot: str
    mono: float
    kid: str = ""


@dataclass(frozen=True)
class ClockFile:
    floor: float | None = None
    floor_boot: str = ""
    floor_mono: float = 0.0
    floor_source: str = ""
    anchor: Anchor | None = None
    challenges: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    token_floor: float | None = None  # the latest time any authentic token carried
    repairs: int = 0  # how many times a fresh token lowered a floor that no token had set

    def floor_at(self, boot: str, mono: float) -> float | None:
        """The floor carried forward to monotonic ``mono`` (same boot), else as written."""
        if self.floor is None:
            return None
        if boot and boot == self.floor_boot and mono >= self.floor_mono:
            return self.floor + (mono - self.floor_mono)
        return self.floor


@dataclass(frozen=True, slots=True)
class TokenResult:
    """What a token did: ``trusted`` (fresh, answered a challenge) and/or raised the floor;
    ``floor_repaired``: it lowered a floor that an unauthenticated source had set too high."""

    token_time: float
    trusted: bool
    floor_raised: bool
    detail: str
    floor_repaired: bool = False


class ClockStore:
    def __init__(self, path: Path = DEFAULT_CLOCK_FILE) -> None:
        self.path = Path(path)
        self._lock = self.path.with_name(self.path.name + ".lock")

    def stamp(self) -> tuple[int, int, int] | None:
        """A cheap change marker, so the scanner re-reads only when someone wrote."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def load(self) -> ClockFile:
        """The stored state; a missing file is an empty state, a damaged one an error."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ClockFile()
        except (OSError, ValueError) as exc:
            raise TrustError(f"{self.path}: unreadable clock state: {exc}") from None
        try:
            anchor = doc.get("anchor")
            return ClockFile(
                floor=None if doc.get("floor") is None else _finite(doc["floor"]),
                floor_boot=str(doc.get("floor_boot", "")),
                floor_mono=_finite(doc.get("floor_mono", 0.0)),
                floor_source=str(doc.get("floor_source", "")),
                anchor=None
                if not anchor
                else Anchor(
                    _finite(anchor["t"]),
                    str(anchor["boot"]),
                    _finite(anchor["mono"]),
                    str(anchor.get("kid", "")),
                ),
                # Normalised here, so a wrong-typed entry is a damaged file, not a crash later.
                challenges=tuple(
                    {"nonce": str(c["nonce"]), "boot": str(c["boot"]), "mono": _finite(c["mono"])}
                    for c in doc.get("challenges", [])
                ),
                token_floor=None if doc.get("token_floor") is None else _finite(doc["token_floor"]),
                repairs=int(doc.get("repairs", 0)),
            )
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise TrustError(f"{self.path}: clock state has a bad field: {exc!r}") from None

    def replace_damaged(
        self,
        floor: float,
        boot: str,
        mono: float,
        source: str,
        *,
        repairs: int = 0,
        token_floor: float | None = None,
        anchor: Anchor | None = None,
    ) -> bool:
        """Overwrite an unreadable state file with what a process still holds in memory.

        A damaged file helps nobody (every reader and writer refuses it), and the floor it held
        is lost either way; the caller's floor (``floor`` at ``mono``, from ``source``), its
        repair count, the latest token time and anchor it saw are the best knowledge left.
        Under the lock, and only if the file is still unreadable: another process may have
        rewritten it first. Returns True if it wrote. Pending challenges are not kept (a token
        answering one only raises the floor). Raises OSError if the file cannot be written.
        """
        with locked(self._lock):
            try:
                self.load()
            except TrustError:
                damaged = True  # the caller has logged why
            else:
                damaged = False
            if not damaged:
                return False
            fresh = ClockFile(
                floor=floor,
                floor_boot=boot,
                floor_mono=mono,
                floor_source=source,
                anchor=anchor,
                token_floor=token_floor,
                repairs=repairs,
            )
            self._write(fresh)
            return True

    def raise_floor(
        self, t: float, boot: str, mono: float, source: str, repairs: int | None = None
    ) -> float:
        """Raise the stored floor to ``t`` (authenticated time at ``mono``); never lowers it.

        ``source`` is the authority ``t`` came from. ``repairs``: the repair count the caller's
        ``t`` is based on; if a repair happened since, ``t`` may be the very value the repair
        removed, so nothing is written. Returns the floor as stored afterwards (carried to
        ``mono``).
        """
        with locked(self._lock):
            state = self.load()
            current = state.floor_at(boot, mono)
            if repairs is not None and repairs != state.repairs:
                return t if current is None else current
            # Within a boot the stored floor already implies floor + monotonic elapsed; writing
            # that progress down still matters, because a reboot forgets monotonic time.
            best = t if current is None else max(t, current)
            if state.floor is not None and best <= state.floor:
                return best
            if current is not None and current > t:
                source = state.floor_source  # the stored value wins: so does its authority
            self._write(state, floor=best, floor_boot=boot, floor_mono=mono, floor_source=source)
            return best

    def new_challenge(self, boot: str, mono: float) -> bytes:
        """A fresh nonce to send with a time request; valid for ``CHALLENGE_TTL_S``, once."""
        nonce = new_nonce()
        with locked(self._lock):
            state = self.load()
            live = [c for c in state.challenges if _live(c, boot, mono)][-(MAX_CHALLENGES - 1) :]
            live.append({"nonce": nonce.hex(), "boot": boot, "mono": mono})
            self._write(state, challenges=tuple(live))
        return nonce

    def accept_token(
        self,
        data: bytes,
        keys: Sequence[TimeKey],
        device_id: str,
        boot: str,
        mono: float,
        tolerance_s: float = 2.0,
    ) -> TokenResult:
        """Verify a token and record what it proves. Raises :class:`TimeTokenError` if refused.

        A token answering a pending challenge (same boot, within the TTL, used once) makes
        the clock trusted from now on (an *anchor*); any authentic token raises the floor. A
        fresh token behind a floor that no token set lowers it (the repair, module docstring),
        if it is behind by more than the time since the challenge plus ``tolerance_s``.
        """
        token = verify_token(data, keys, device_id)
        with locked(self._lock):
            state = self.load()
            current = state.floor_at(boot, mono)
            changes: dict[str, Any] = {}
            answered = None
            if token.nonce is not None:
                answered = next(
                    (
                        c
                        for c in state.challenges
                        if c.get("nonce") == token.nonce.hex() and _live(c, boot, mono)
                    ),
                    None,
                )
            fresh = answered is not None
            repaired = False
            if answered is not None:
                changes["anchor"] = Anchor(token.t, boot, mono, token.kid.hex())
                changes["challenges"] = tuple(
                    c for c in state.challenges if c.get("nonce") != answered["nonce"]
                )
                # The collector signed somewhere between the challenge and now: a right floor
                # may be ahead of the token's time by that much (network delay, a slow
                # answer), and the clocks on both sides by a little more.
                slack = (mono - float(answered["mono"])) + tolerance_s
                if current is not None and current - token.t > slack:
                    repaired = self._repair(state, current, token.t, boot, mono, changes)
            raised = not repaired and (current is None or token.t > current)
            if raised:
                changes.update(
                    floor=token.t, floor_boot=boot, floor_mono=mono, floor_source="token"
                )
            # Every authentic token proves its time, even one that changes nothing else (below a
            # floor NTP set, say): a later repair must never go below it.
            if state.token_floor is None or token.t > state.token_floor:
                changes["token_floor"] = token.t
            if changes:
                self._write(state, **changes)
        if fresh:
            detail = "clock trusted (fresh signed time)"
        elif token.nonce is not None:
            detail = "token answers no pending challenge (old or reused): floor only"
        else:
            detail = "token has no challenge: floor only"
        done = ", floor raised" if raised else ", floor repaired" if repaired else ""
        # DEBUG: the sync agent takes tokens all day; it and ``passgate time token`` report
        # the outcome themselves, the agent only when it changes.
        log.debug("time token from %s: %s%s", token.kid.hex(), detail, done)
        return TokenResult(token.t, fresh, raised, detail, repaired)

    @staticmethod
    def _repair(
        state: ClockFile, current: float, t: float, boot: str, mono: float, changes: dict[str, Any]
    ) -> bool:
        """A fresh token behind the floor: lower the floor if no token set it (the repair)."""
        if state.floor_source == "token":
            # Two authenticated times disagree (the collector's clock went back): the floor
            # holds, as it does against everything else.
            log.warning("fresh time token is %.0f s behind the floor set by a token", current - t)
            return False
        # The floor came from a source the site trusts but nobody signed (NTP, an RTC) and a
        # signed, fresh time contradicts it: the signed time wins, but never below a time a
        # token already proved.
        lowered = max(t, state.token_floor or 0.0)
        if lowered >= current:
            return False
        log.warning(
            "clock floor lowered by %.0f s: a fresh signed time token contradicts the floor "
            "set by %s",
            current - lowered,
            state.floor_source or "an unknown source",
        )
        changes.update(
            floor=lowered,
            floor_boot=boot,
            floor_mono=mono,
            floor_source="token",
            repairs=state.repairs + 1,
        )
        return True

    def _write(self, state: ClockFile, **changes: Any) -> None:
        merged = {**state.__dict__, **changes}
        anchor = merged["anchor"]
        doc = {
            "floor": merged["floor"],
            "floor_boot": merged["floor_boot"],
            "floor_mono": merged["floor_mono"],
            "floor_source": merged["floor_source"],
            "anchor": None
            if anchor is None
            else {"t": anchor.t, "boot": anchor.boot, "mono": anchor.mono, "kid": anchor.kid},
            "challenges": list(merged["challenges"]),
            "token_floor": merged["token_floor"],
            "repairs": merged["repairs"],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, (json.dumps(doc, sort_keys=True) + "\n").encode())


def _finite(value: object) -> float:
    """A stored number; NaN or infinity (JSON allows both) is a damaged file."""
    number = float(value)  # type: ignore[arg-type]  # TypeError/ValueError: a bad field
    if not math.isfinite(number):
        raise ClockError(f"not a finite number: {value!r}")
    return number


def _live(challenge: dict[str, Any], boot: str, mono: float) -> bool:
    return (
        challenge.get("boot") == boot
        and 0 <= mono - float(challenge.get("mono", -1e18)) <= CHALLENGE_TTL_S
    )


__all__ = [
    "Anchor",
    "ClockFile",
    "ClockStore",
    "TimeTokenError",
    "TokenResult",
    "DEFAULT_CLOCK_FILE",
]
