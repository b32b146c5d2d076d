"""A filtered view from a URL's query string, and back: the same filters for the list, the
next page and the CSV export.

Rules kept here:

* Every view has a time range: default the last ``DEFAULT_HOURS``, never more than
  ``MAX_DAYS`` (a wider request is cut to that, and the page says so), so no view reads
  unbounded history.
* Times typed into the form are the selected site's local time (UTC with no site); the
  range is half-open, ``from`` <= t < ``to``.
* Unknown values are not errors: a verdict or reason that is not a known code, or a cursor
  that does not parse, is ignored (the form shows what was applied).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..store.console import Cursor, ScanFilter, parse_cursor
from .words import REASON_WORDS, local_input, parse_local

DEFAULT_HOURS = 24
MAX_DAYS = 31
FUTURE_S = 300  # a checkpoint clock a little ahead still shows in "now" views
VERDICTS = ("accept", "deny")


@dataclass(frozen=True)
class View:
    filter: ScanFilter
    before: Cursor | None
    tz: str | None  # the zone the form's times are in
    form: dict[str, str]  # the applied filters, as the form and links show them
    clipped: bool  # the asked range was longer than MAX_DAYS and was cut

    def query(self, **extra: str) -> dict[str, str]:
        """Query-string parameters that reproduce this view (plus ``extra``)."""
        return {k: v for k, v in {**self.form, **extra}.items() if v}


def parse(args: Mapping[str, str], now: int, sites: Mapping[str, str]) -> View:
    def arg(name: str) -> str:
        return (args.get(name) or "").strip()[:100]

    site = arg("site") or None
    tz = sites.get(site) if site else None
    until = parse_local(arg("to"), tz) or now + FUTURE_S
    since = parse_local(arg("from"), tz) or until - DEFAULT_HOURS * 3600
    clipped = until - since > MAX_DAYS * 86400
    if clipped:
        since = until - MAX_DAYS * 86400
    since = min(since, until)
    verdict = arg("verdict") if arg("verdict") in VERDICTS else None
    reason = arg("reason") if arg("reason") in REASON_WORDS else None
    f = ScanFilter(since_ms=since * 1000, until_ms=until * 1000, site=site,
                   zone=arg("zone") or None, device=arg("device") or None,
                   verdict=verdict, reason=reason)
    form = {"site": site or "", "zone": f.zone or "", "device": f.device or "",
            "verdict": verdict or "", "reason": reason or "",
            "from": local_input(since, tz), "to": local_input(until, tz)}
    return View(f, parse_cursor(arg("before")), tz, form, clipped)
