"""What the OLED shows, as plain data: one frozen dataclass per screen.

A screen holds finished texts and states, never a clock: everything time-relative ("expired
14 min ago", "2h 13m left", the idle time) is computed by the builders below from an explicit
``now``. So two equal screens always draw the same pixels, :class:`~.worker.Display` can skip
an unchanged screen cheaply, and :func:`~.render.render` is a pure function.

The words for every :class:`~passgate.passes.verdict.Reason` live in one table,
:data:`REASON_WORDS`,
so a new reason without words fails a test instead of showing nothing.

Every word a screen shows is in the screen, already in the device's language: the builders
take a :class:`~passgate.util.i18n.Language` (English by default) and the fixed words the
renderer draws ("DENIED", "left") are fields with English defaults. Screens built elsewhere in
English (a fault title from the frame loop) are translated by :func:`localised`, which the
display policy applies to every screen it hands out: the English text is the gettext msgid,
and a text with no translation stays English.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from passgate.clock.clock import ClockState
from passgate.passes.purposes import PurposeTable
from passgate.passes.verdict import NO_TRUST_DATA, Reason, Verdict
from passgate.util.i18n import ENGLISH, N_, Language, span


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
    prompt: tuple[str, ...] = ("show your", "pass")  # two lines of at most 10 letters


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
    left_word: str = "left"  # under the remaining time
    valid_word: str = "VALID"  # instead of it when there is none


@dataclass(frozen=True, slots=True)
class DeniedScreen:
    """A large cross, ``DENIED``, and the reason in plain words on up to two lines."""

    reason: str
    detail: str = ""
    headline: str = "DENIED"


@dataclass(frozen=True, slots=True)
class FaultScreen:
    """A warning sign, ``FAULT``, a short title (``"camera fault"``) and an optional detail."""

    title: str
    detail: str = ""
    headline: str = "FAULT"


@dataclass(frozen=True, slots=True)
class StoppedScreen:
    """Shown when the daemon stops (SIGTERM); stays on the panel after the process exits."""

    detail: str = ""
    word: str = "stopped"


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
# The texts are English msgids, translated when a screen is built (reason_words).
REASON_WORDS: dict[Reason, str] = {
    Reason.VALID: N_("valid"),
    Reason.MALFORMED: N_("unreadable"),
    Reason.UNSUPPORTED: N_("unsupported pass"),
    Reason.UNKNOWN_KEY: N_("unknown issuer"),
    Reason.BAD_SIGNATURE: N_("invalid signature"),
    Reason.KEY_NOT_VALID: N_("issuer key not valid"),
    Reason.NOT_YET_VALID: N_("not yet valid"),
    Reason.EXPIRED: N_("expired"),
    Reason.REVOKED: N_("revoked"),
    Reason.WRONG_ZONE: N_("not valid here"),
    Reason.PURPOSE_NOT_ALLOWED: N_("purpose not allowed"),
    Reason.ALREADY_USED: N_("already used"),
    Reason.CLOCK_UNTRUSTED: N_("clock not trusted"),
    Reason.TRUST_STALE: N_("trust data stale"),
    Reason.JOURNAL_FAULT: N_("not recorded"),
    Reason.HOLDER_MISMATCH: N_("wrong phone"),
    Reason.LIVE_CODE_STALE: N_("code too old"),
    Reason.LIVE_CODE_FUTURE: N_("code time ahead"),
    Reason.LIVE_CODE_REQUIRED: N_("show live code"),
    Reason.NOT_BOUND: N_("pass not bound"),
}
# The second line for the holder-bound reasons (spec 1.2): what the holder should do. Each
# fits the OLED's 21 characters in every language (tests/test_i18n.py draws them).
REASON_DETAILS: dict[Reason, str] = {
    Reason.HOLDER_MISMATCH: N_("not this pass's phone"),
    Reason.LIVE_CODE_STALE: N_("live code, no photo"),
    Reason.LIVE_CODE_FUTURE: N_("check phone clock"),
    Reason.LIVE_CODE_REQUIRED: N_("open the pass app"),
    Reason.NOT_BOUND: N_("phone pass needed"),
}


def reason_words(verdict: Verdict, now: float, lang: Language = ENGLISH) -> tuple[str, str]:
    """The reason of ``verdict`` as (line, detail) in plain words, relative to ``now``.

    ``now`` is the time the screen is shown (not the verdict's ``checked_at``), so a verdict
    held on screen keeps saying the truth: ``("expired 14 min ago", "")``,
    ``("not yet valid", "starts in 2h 05m")``; in ``lang``'s words.
    """
    _ = lang.gettext
    reason = verdict.reason
    if reason is Reason.EXPIRED and verdict.expires is not None and now >= verdict.expires:
        return _("expired {span} ago").format(span=span(now - verdict.expires, lang)), ""
    starts = verdict.not_before
    if reason is Reason.NOT_YET_VALID and starts is not None and now < starts:
        return _("not yet valid"), _("starts in {span}").format(span=span(starts - now, lang))
    if reason is Reason.JOURNAL_FAULT:
        return _("not recorded"), _("journal fault")
    if reason is Reason.TRUST_STALE and verdict.detail == NO_TRUST_DATA:
        return _(NO_TRUST_DATA), ""  # none at all: nothing to be stale
    detail = REASON_DETAILS.get(reason)
    return _(REASON_WORDS.get(reason, reason.value.replace("_", " "))), _(detail) if detail else ""


def remaining_text(verdict: Verdict, now: float, lang: Language = ENGLISH) -> str:
    """The validity left at ``now`` as a short span (``"2h 13m"``), or ``""`` if unknown."""
    if verdict.expires is not None:
        left = verdict.expires - now
    elif verdict.remaining_s is not None:
        left = verdict.remaining_s - (now - verdict.checked_at)
    else:
        return ""
    return span(max(0, left), lang)


def verdict_screen(
    verdict: Verdict,
    now: float,
    purposes: PurposeTable | None = None,
    show_hint: bool = True,
    lang: Language = ENGLISH,
) -> AcceptedScreen | DeniedScreen:
    """The screen for a verdict at display time ``now`` (purpose ids become their labels in
    ``lang``)."""
    _ = lang.gettext
    if verdict.accepted:
        if purposes is not None:
            label = purposes.label(verdict.purpose, lang.code)
        else:
            label = verdict.purpose or ""
        hint = (verdict.hint or "") if show_hint else ""
        return AcceptedScreen(
            label, remaining_text(verdict, now, lang), hint, _("left"), _("VALID")
        )
    line, detail = reason_words(verdict, now, lang)
    return DeniedScreen(line, detail, _("DENIED"))


def idle_screen(
    now: float,
    clock: ClockState = ClockState.TRUSTED,
    connectivity: Connectivity = Connectivity.UNKNOWN,
    pending: int = 0,
    tz: tzinfo | None = UTC,
    lang: Language = ENGLISH,
) -> IdleScreen:
    """The idle screen at ``now``; ``tz=None`` uses the system's local time zone."""
    moment = datetime.fromtimestamp(now, tz) if tz is not None else datetime.fromtimestamp(now)
    prompt = (
        lang.pgettext("idle prompt, line 1, at most 10 letters", "show your"),
        lang.pgettext("idle prompt, line 2, at most 10 letters", "pass"),
    )
    return IdleScreen(moment.strftime("%H:%M"), clock, connectivity, max(0, int(pending)), prompt)


def localised(screen: Screen, lang: Language) -> Screen:
    """``screen`` with its English texts in ``lang`` (the fault, message and stopped screens
    other modules build in English). Texts already translated, or with no translation, pass
    unchanged; verdict and idle screens are built in ``lang`` by their builders."""
    if lang.code == "en":
        return screen
    _ = lang.gettext
    if isinstance(screen, FaultScreen):
        return FaultScreen(_(screen.title), _(screen.detail), _(screen.headline))
    if isinstance(screen, MessageScreen):
        return MessageScreen(_(screen.title), _(screen.body))
    if isinstance(screen, StoppedScreen):
        return StoppedScreen(_(screen.detail), _(screen.word))
    return screen


# The fault screens the daemon uses; FaultScreen(title, detail) covers anything else. Their
# English texts are marked for the catalog (N_) and translated by localised(), so a caller
# that builds them without a language still gets the device's language on the panel.
# Texts the frame loop hands in itself (checkpoint/conditions.py), marked here for the catalog:
OTHER_FAULT_TEXTS = (
    N_("trust data expired"), N_("passes refused"), N_("scans flagged"), N_("no LEDs or buzzer"),
    N_("FAULT"), N_("stopped"), N_("DENIED"), N_("no trust data"),  # = NO_TRUST_DATA
)


def camera_fault(detail: str = N_("retrying")) -> FaultScreen:
    return FaultScreen(N_("camera fault"), detail)


def clock_not_set(detail: str = N_("passes refused")) -> FaultScreen:
    return FaultScreen(N_("clock not set"), detail)


def no_trust_data(detail: str = N_("install a bundle")) -> FaultScreen:
    return FaultScreen(NO_TRUST_DATA, detail)


def trust_data_old(age_s: float, detail: str = "", lang: Language = ENGLISH) -> FaultScreen:
    """``"trust data 3 days old"`` (``"2 hours"`` under a day, ``"1 day"`` for one), with
    ``lang``'s plural forms (``"данные доверия: 3 дня"``)."""
    days, hours = int(age_s // 86400), int(age_s // 3600)
    if days >= 1:
        age = lang.ngettext("{n} day", "{n} days", days).format(n=days)
    else:
        age = lang.ngettext("{n} hour", "{n} hours", hours).format(n=hours)
    return FaultScreen(lang.gettext("trust data {age} old").format(age=age), lang.gettext(detail))


def journal_fault(detail: str = N_("no passes accepted")) -> FaultScreen:
    return FaultScreen(N_("journal fault"), detail)


def gpio_fault(detail: str = N_("door will not open")) -> FaultScreen:
    """The buzzer, LEDs and door relay cannot be driven (GPIO missing or a pin busy)."""
    return FaultScreen(N_("GPIO fault"), detail)
