"""What the console says: reasons in words, times in each site's zone, ages a guard reads.

Rules kept here:

* A reason code never reaches the screen alone: every code the firmware stores
  (``passgate.passes.verdict.Reason``) has words here, and a test fails when one is added
  without them. An unknown code (a newer device) is shown as itself, never hidden.
* Times on screen are the site's local time (IANA zone per site, default UTC) with the zone's
  abbreviation; the UTC instant is always there too, in ``title=`` (hover) and ``datetime=``.
  Exports and JSON carry UTC only.
* Words are English in the code (marked with ``N_``) and translated when shown, in the
  request's language (``passgate_collector.i18n``); codes in exports and JSON stay codes.
* The journal row holds when a pass was scanned, not when the pass expired, so "expired 14
  min ago" is said from the scan: "expired", scanned 14 min ago.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

from markupsafe import Markup, escape

from ..i18n import N_, _

REASON_WORDS = {
    "valid": N_("valid"),
    "malformed": N_("not a passgate pass"),
    "unsupported": N_("pass format not supported"),
    "unknown_key": N_("issuer not trusted here"),
    "bad_signature": N_("forged or damaged pass"),
    "key_not_valid": N_("issuer key out of its validity"),
    "not_yet_valid": N_("not valid yet"),
    "expired": N_("expired"),
    "revoked": N_("revoked"),
    "wrong_zone": N_("not valid here"),
    "purpose_not_allowed": N_("purpose not allowed here"),
    "already_used": N_("already used (passed moments ago)"),
    "clock_untrusted": N_("checkpoint clock not trusted"),
    "trust_stale": N_("checkpoint trust data out of date"),
    "journal_fault": N_("checkpoint could not record the scan"),
    "holder_mismatch": N_("live code from another phone"),
    "live_code_stale": N_("live code too old (a picture?)"),
    "live_code_future": N_("live code time ahead (phone clock)"),
    "live_code_required": N_("live code required, pass shown bare"),
    "not_bound": N_("pass not bound to a phone, required here"),
}
VERDICT_WORDS = {"accept": N_("let in"), "deny": N_("refused")}
CLOCK_WORDS = {"trusted": N_("trusted"), "floor": N_("floor only"),
               "backwards": N_("went backwards")}  # protocol.CLOCK_STATES


# A stored row's problem (ingest.CHAIN_MISMATCH, ingest.GAP): why it is flagged as tamper.
PROBLEM_WORDS = {"chain_mismatch": N_("edited: chain mismatch"),
                 "gap": N_("rows missing before it")}


# A tamper alert's kind (ingest's alerts, and web.py's refused batches), or why a row was
# refused: what happened.
TAMPER_WORDS = {"chain_mismatch": N_("row edited after it was recorded"),
                "chain_break": N_("rows missing or replaced"),
                "nonce_conflict": N_("one nonce, two different rows"),
                "bad_signature": N_("batch with a bad signature"),
                "live_code_reused": N_("one live code at two checkpoints"),
                "invalid_row": N_("row outside the protocol's limits")}  # a refused row
# The details the collector stores (ingest.py, web.py), in English, the database's language.
# Each msgid is the stored sentence with its numbers as {0}, {1}...: it is matched as it is
# and said again in the request's language.
_DETAILS = (
    N_("seq {0}: a stored row has this nonce with other content"),
    N_("row {0}: chain does not match its content (edited after it was journaled)"),
    N_("prev_chain of the batch starting at seq {0} differs from the collector's row {1}: "
       "rows were replaced"),
    N_("rows {0}-{1} missing before seq {2} (removed on the device?)"),
    N_("batch refused: signature does not verify with the enrolled key (header kid {0})"),
    N_("{0} also at {1}, {2} s apart ({3} there, {4} here)"),  # store/pairs.py's live code
)
_DETAIL_PATTERNS = tuple(
    (re.compile(re.sub(r"\\\{\d\\\}", "(.+?)", re.escape(msgid))), msgid)
    for msgid in _DETAILS)


def tamper_words(kind: str) -> str:
    """A tamper alert's kind (or a refused row's reason) in the request's language; an
    unknown code as itself."""
    return _(TAMPER_WORDS[kind]) if kind in TAMPER_WORDS else kind


def detail_words(detail: str) -> str:
    """A stored alert detail in the request's language: the collector's own sentences are
    said again with their numbers; anything else (an older collector's words) as it is."""
    for pattern, msgid in _DETAIL_PATTERNS:
        m = pattern.fullmatch(detail)
        if m:
            return _(msgid).format(*m.groups())
    return detail


def binding_words(flags) -> str:
    """How a holder-bound pass was shown (spec 1.2, journal flags ``live`` / ``bound``): "live
    code", "bound pass, bare" (a bound pass shown without its live code, where the policy let
    it in or said why not), or "" for a static pass."""
    if "live" in flags:
        return _("live code")
    if "bound" in flags:
        return _("bound pass, bare")
    return ""


def problem_words(code: str) -> str:
    """A row's problem in the request's language; an unknown code as itself."""
    return _(PROBLEM_WORDS[code]) if code in PROBLEM_WORDS else code


def reason_words(code: str) -> str:
    """The reason in the request's language; an unknown code as itself."""
    return _(REASON_WORDS[code]) if code in REASON_WORDS else code


def reasons_shown() -> dict[str, str]:
    """Every reason code with its words in the request's language (filters, charts)."""
    return {code: _(text) for code, text in REASON_WORDS.items()}


def verdict_words(code: str) -> str:
    return _(VERDICT_WORDS[code]) if code in VERDICT_WORDS else code


def clock_words(state: str | None) -> str:
    """A checkpoint's clock state in words; ``-`` when unknown, a new state as itself."""
    if not state:
        return "-"
    return _(CLOCK_WORDS[state]) if state in CLOCK_WORDS else state


def verdicts_shown() -> dict[str, str]:
    return {code: _(text) for code, text in VERDICT_WORDS.items()}


@functools.lru_cache(maxsize=64)
def zone(name: str | None) -> dt.tzinfo:
    """The IANA zone ``name``; UTC when unset. Names are checked when a site is configured."""
    return zoneinfo.ZoneInfo(name) if name else dt.UTC


def valid_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def moment(t: float, tz: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """POSIX seconds ``t`` as a datetime in ``tz``, or None when no datetime can hold it: a
    device's clock may say any time the protocol allows (up to 2**63 - 1 ms, the year 292
    million), and one such scan must not take a page down for every staff member."""
    try:
        return dt.datetime.fromtimestamp(t, tz)
    except (OverflowError, ValueError, OSError):
        return None


def beyond(t: float) -> str:
    """A time no datetime holds, as GNU ``date -d @SECONDS`` reads it."""
    return f"@{int(t)}"


def utc_text(t: float) -> str:
    when = moment(t)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when is not None else beyond(t)


def utc_iso(t: float) -> str:
    """RFC 3339 in UTC, for exports and JSON: ``2026-01-01T00:00:00.123Z`` (``@SECONDS``
    for a time beyond the year 9999, :func:`beyond`)."""
    when = moment(t)
    if when is None:
        return beyond(t)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_text(t: float, tz: str | None) -> str:
    when = moment(t, zone(tz))
    return when.strftime("%Y-%m-%d %H:%M:%S %Z") if when is not None else beyond(t)


def time_tag(t: float | None, tz: str | None) -> Markup:
    """``<time>`` with the site's local time as text and UTC on hover (a time beyond the
    year 9999 as ``@SECONDS``, without a ``datetime`` it could not hold)."""
    if t is None:
        return Markup("-")
    if moment(t) is None:
        return Markup("<time>{}</time>").format(beyond(t))
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc_iso(t), utc_text(t), local_text(t, tz))


def age(seconds: float | None) -> str:
    """A short, honest age: "42 s", "5 min", "3 h", "2 d"; "in 5 min" for the future."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 0:
        return _("in {age}").format(age=age(-s))
    # abbreviations take no plural in any of the three languages ("5 мин", "5 сәг")
    for unit, size in ((N_("{n} d"), 86400), (N_("{n} h"), 3600), (N_("{n} min"), 60)):
        if s >= size:
            return _(unit).format(n=s // size)
    return _("{n} s").format(n=s)


def ago(seconds: float | None) -> str:
    if seconds is None:
        return _("never")
    return age(seconds) if seconds < 0 else _("{age} ago").format(age=age(seconds))


def parse_local(text: str | None, tz: str | None) -> int | None:
    """``YYYY-MM-DDTHH:MM`` (a datetime-local input) in zone ``tz`` to POSIX seconds, or
    None if empty or not such a time."""
    if not text:
        return None
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if naive.tzinfo is None:
        naive = naive.replace(tzinfo=zone(tz))
    return int(naive.timestamp())


def local_input(t: int, tz: str | None) -> str:
    """The inverse of :func:`parse_local`, to fill the form back in."""
    when = moment(t, zone(tz))  # None: a range asked at the year 1 or 9999 edge
    return when.strftime("%Y-%m-%dT%H:%M") if when is not None else ""


def short(h: bytes | None) -> str:
    return h.hex()[:12] if h else "-"


def reason_cell(code: str) -> Markup:
    return Markup('<span class="reason" data-reason="{}">{}</span>').format(
        code, escape(reason_words(code)))
