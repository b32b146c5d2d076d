"""What the OLED shows, as plain data: one frozen dataclass per screen.

A screen holds finished texts and states, never a clock: everything time-relative ("expired
14 min ago", "2h 13m left", the idle time) is computed by the builders below from an explicit
``now``. So two equal screens always draw the same pixels, :class:`~.worker.Display` can skip
an unchanged screen cheaply, and :func:`~.render.render` is a pure function.

The words for every :class:`~passgate.passes.verdict.Reason` live in one table,
:data:`REASON_WORDS`,
so a new reason without words fails a test instead of showing nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from passgate.clock.clock import ClockState
from passgate.passes.purposes import PurposeTable
from passgate.passes.verdict import NO_TRUST_DATA, Reason, Verdict
from passgate.util.timefmt import span


class Connectivity(enum.Enum):
    """Whether the journal can currently reach the fleet collector (idle-screen indicator)."""

    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # no sync attempt yet, or the sync process does not report


@dataclass(frozen=True, slots=True)
class IdleScreen:
    """Waiting for a pass: the prompt, the time and three small status indicators.

    ``time_text`` is the local wall time as ``"14:05"``; ``clock`` says how far it can be
    trusted (``FLOOR`` draws ``~`` before the time, ``BACKWARDS`` draws an inverted ``!``).
    ``pending`` is the number of journal rows not yet uploaded (hidden when 0).
    """

    time_text: str
    clock: ClockState = ClockState.TRUSTED
    connectivity: Connectivity = Connectivity.UNKNOWN
    pending: int = 0
    prompt: tuple[str, ...] = ("show your", "pass")


@dataclass(frozen=True, slots=True)
class AcceptedScreen:
    """A large tick, the remaining validity large beside it, the purpose label below.

    ``remaining`` is a short span such as ``"2h 13m"`` (drawn with ``"left"`` under it);
    ``""`` when the verdict carried no validity. ``hint`` is the pass's optional holder hint
    for staff, shown on the last line when present.
    """

    purpose: str
    remaining: str = ""
    hint: str = ""


@dataclass(frozen=True, slots=True)
class DeniedScreen:
    """A large cross, ``DENIED``, and the reason in plain words on up to two lines."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultScreen:
    """A warning sign, ``FAULT``, a short title (``"camera fault"``) and an optional detail."""

    title: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StoppedScreen:
    """Shown when the daemon stops (SIGTERM); stays on the panel after the process exits."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class MessageScreen:
    """A generic message: a title (large when it fits) and a body wrapped on up to 3 lines.

    Used for provisioning results and anything else that is not a scan.
    """

    title: str
    body: str = ""


@dataclass(frozen=True, slots=True)
class TestPatternScreen:
    """A pattern that lights every pixel across the phases: a border, a checkerboard, stripes.

    ``phase`` 0 and 1 are each other's inverse, so showing both proves every pixel can be lit
    and cleared (a self-test shows them in turn).
    """

    __test__ = False  # not a pytest test class, despite the name

    phase: int = 0


Screen = (
    IdleScreen
    | AcceptedScreen
    | DeniedScreen
    | FaultScreen
    | StoppedScreen
    | MessageScreen
    | TestPatternScreen
)


# Plain words for every reason a pass can be denied. EXPIRED and NOT_YET_VALID get their
# time-relative wording from reason_words() when the pass times are known.
REASON_WORDS: dict[Reason, str] = {
    Reason.VALID: "valid",
    Reason.MALFORMED: "unreadable",
    Reason.UNSUPPORTED: "unsupported pass",
    Reason.UNKNOWN_KEY: "unknown issuer",
    Reason.BAD_SIGNATURE: "invalid signature",
    Reason.KEY_NOT_VALID: "issuer key not valid",
    Reason.NOT_YET_VALID: "not yet valid",
    Reason.EXPIRED: "expired",
    Reason.REVOKED: "revoked",
    Reason.WRONG_ZONE: "not valid here",
    Reason.PURPOSE_NOT_ALLOWED: "purpose not allowed",
    Reason.ALREADY_USED: "already used",
    Reason.CLOCK_UNTRUSTED: "clock not trusted",
    Reason.TRUST_STALE: "trust data stale",
    Reason.JOURNAL_FAULT: "not recorded",
}


def reason_words(verdict: Verdict, now: float) -> tuple[str, str]:
    """The reason of ``verdict`` as (line, detail) in plain words, relative to ``now``.

    ``now`` is the time the screen is shown (not the verdict's ``checked_at``), so a verdict
    held on screen keeps saying the truth: ``("expired 14 min ago", "")``,
    ``("not yet valid", "starts in 2h 05m")``.
    """
    reason = verdict.reason
    if reason is Reason.EXPIRED and verdict.expires is not None and now >= verdict.expires:
        return f"expired {span(now - verdict.expires)} ago", ""
    starts = verdict.not_before
    if reason is Reason.NOT_YET_VALID and starts is not None and now < starts:
        return "not yet valid", f"starts in {span(starts - now)}"
    if reason is Reason.JOURNAL_FAULT:
        return "not recorded", "journal fault"
    if reason is Reason.TRUST_STALE and verdict.detail == NO_TRUST_DATA:
        return NO_TRUST_DATA, ""  # none at all: nothing to be stale
    return REASON_WORDS.get(reason, reason.value.replace("_", " ")), ""


def remaining_text(verdict: Verdict, now: float) -> str:
    """The validity left at ``now`` as a short span (``"2h 13m"``), or ``""`` if unknown."""
    if verdict.expires is not None:
        left = verdict.expires - now
    elif verdict.remaining_s is not None:
        left = verdict.remaining_s - (now - verdict.checked_at)
    else:
        return ""
    return span(max(0, left))


def verdict_screen(
    verdict: Verdict,
    now: float,
    purposes: PurposeTable | None = None,
    show_hint: bool = True,
) -> AcceptedScreen | DeniedScreen:
    """The screen for a verdict at display time ``now`` (purpose ids become their labels)."""
    if verdict.accepted:
        label = purposes.label(verdict.purpose) if purposes else (verdict.purpose or "")
        hint = (verdict.hint or "") if show_hint else ""
        return AcceptedScreen(label, remaining_text(verdict, now), hint)
    line, detail = reason_words(verdict, now)
    return DeniedScreen(line, detail)


def idle_screen(
    now: float,
    clock: ClockState = ClockState.TRUSTED,
    connectivity: Connectivity = Connectivity.UNKNOWN,
    pending: int = 0,
    tz: tzinfo | None = UTC,
) -> IdleScreen:
    """The idle screen at ``now``; ``tz=None`` uses the system's local time zone."""
    moment = datetime.fromtimestamp(now, tz) if tz is not None else datetime.fromtimestamp(now)
    return IdleScreen(moment.strftime("%H:%M"), clock, connectivity, max(0, int(pending)))


# The fault screens the daemon uses; FaultScreen(title, detail) covers anything else.


def camera_fault(detail: str = "retrying") -> FaultScreen:
    return FaultScreen("camera fault", detail)


def clock_not_set(detail: str = "passes refused") -> FaultScreen:
    return FaultScreen("clock not set", detail)


def no_trust_data(detail: str = "install a bundle") -> FaultScreen:
    return FaultScreen(NO_TRUST_DATA, detail)


def trust_data_old(age_s: float, detail: str = "") -> FaultScreen:
    """``"trust data 3 days old"`` (``"2 hours"`` under a day, ``"1 day"`` for one)."""
    days, hours = int(age_s // 86400), int(age_s // 3600)
    if days >= 1:
        age = f"{days} day{'s' if days != 1 else ''}"
    else:
        age = f"{hours} hour{'s' if hours != 1 else ''}"
    return FaultScreen(f"trust data {age} old", detail)


def journal_fault(detail: str = "no passes accepted") -> FaultScreen:
    return FaultScreen("journal fault", detail)


def gpio_fault(detail: str = "door will not open") -> FaultScreen:
    """The buzzer, LEDs and door relay cannot be driven (GPIO missing or a pin busy)."""
    return FaultScreen("GPIO fault", detail)
