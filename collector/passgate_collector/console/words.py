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


def utc_text(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_iso(t: float) -> str:
    """RFC 3339 in UTC, for exports and JSON: ``2026-01-01T00:00:00.123Z``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def local_text(t: float, tz: str | None) -> str:
    return dt.datetime.fromtimestamp(t, zone(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def time_tag(t: float | None, tz: str | None) -> Markup:
    """``<time>`` with the site's local time as text and UTC on hover."""
    if t is None:
        return Markup("-")
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
    return dt.datetime.fromtimestamp(t, zone(tz)).strftime("%Y-%m-%dT%H:%M")


def short(h: bytes | None) -> str:
    return h.hex()[:12] if h else "-"


def reason_cell(code: str) -> Markup:
    return Markup('<span class="reason" data-reason="{}">{}</span>').format(
        code, escape(reason_words(code)))
