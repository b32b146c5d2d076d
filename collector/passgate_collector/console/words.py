"""What the console says: reasons in words, times in each site's zone, ages a guard reads.

Rules kept here:

* A reason code never reaches the screen alone: every code the firmware stores
  (``passgate.passes.verdict.Reason``) has words here, and a test fails when one is added
  without them. An unknown code (a newer device) is shown as itself, never hidden.
* Times on screen are the site's local time (IANA zone per site, default UTC) with the zone's
  abbreviation; the UTC instant is always there too, in ``title=`` (hover) and ``datetime=``.
  Exports and JSON carry UTC only.
* The journal row holds when a pass was scanned, not when the pass expired, so "expired 14
  min ago" is said from the scan: "expired", scanned 14 min ago.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from markupsafe import Markup, escape

REASON_WORDS = {
    "valid": "valid",
    "malformed": "not a passgate pass",
    "unsupported": "pass format not supported",
    "unknown_key": "issuer not trusted here",
    "bad_signature": "forged or damaged pass",
    "key_not_valid": "issuer key out of its validity",
    "not_yet_valid": "not valid yet",
    "expired": "expired",
    "revoked": "revoked",
    "wrong_zone": "not valid here",
    "purpose_not_allowed": "purpose not allowed here",
    "already_used": "already used (passed moments ago)",
    "clock_untrusted": "checkpoint clock not trusted",
    "trust_stale": "checkpoint trust data out of date",
    "journal_fault": "checkpoint could not record the scan",
}
VERDICT_WORDS = {"accept": "let in", "deny": "refused"}


def reason_words(code: str) -> str:
    return REASON_WORDS.get(code, code)


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
        return f"in {age(-s)}"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return age(seconds) if seconds < 0 else f"{age(seconds)} ago"


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
