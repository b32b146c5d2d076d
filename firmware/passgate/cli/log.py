"""``passgate log``: the scan journal for security staff, one line per scan.

The journal is opened read-only, so this is safe while the scanner and the sync agent run.
Where the journal is: ``--journal FILE``, else ``--state DIR``, else ``$PASSGATE_STATE_DIR``,
else ``/var/lib/passgate``; inside a state folder the file is ``journal.sqlite``, the name
``[journal] path`` defaults to in the config.

Language (issue 14): the lines, the header and the summary are in ``--language``'s, else the
device's (``[display] language`` of the config, when it is there and readable), else English.
``--json`` keeps the codes. The reasons are the words the OLED uses, in the same catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from passgate.util.i18n import ENGLISH, LANGUAGES, N_, Language

DEFAULT_STATE_DIR = Path("/var/lib/passgate")
JOURNAL_NAME = "journal.sqlite"  # the name config.py derives inside checkpoint.state_dir
DEFAULT_LIMIT = 50

# Reasons in the words the OLED uses; an unknown value (a newer firmware's) is shown as is.
# English here, translated when shown (N_ marks them for the catalog).
REASON_WORDS = {
    "valid": N_("valid"),
    "malformed": N_("unreadable"),
    "unsupported": N_("unsupported format"),
    "unknown_key": N_("unknown issuer"),
    "bad_signature": N_("invalid signature"),
    "key_not_valid": N_("issuer key not valid"),
    "not_yet_valid": N_("not yet valid"),
    "expired": N_("expired"),
    "revoked": N_("revoked"),
    "wrong_zone": N_("not valid here"),
    "purpose_not_allowed": N_("purpose not allowed"),
    "already_used": N_("already used"),
    "clock_untrusted": N_("clock not trusted"),
    "trust_stale": N_("trust data stale"),
    "journal_fault": N_("not recorded"),
    "holder_mismatch": N_("wrong phone"),
    "live_code_stale": N_("code too old"),
    "live_code_future": N_("code time ahead"),
    "live_code_required": N_("live code required"),
    "not_bound": N_("pass not bound"),
}
CLOCK_WORDS = {"trusted": N_("trusted"), "floor": N_("floor only"),
               "backwards": N_("went back")}
STATUS_WORDS = {"pending": N_("pending"), "uploaded": N_("uploaded"), "dead": N_("dead letter")}

# Column widths: the longest value each column normally holds (in English; another language
# widens a column to its longest word).
_HEADER = (N_("TIME"), N_("RESULT"), N_("REASON"), N_("PURPOSE"), N_("ZONE"), N_("CLOCK"),
           N_("UPLOAD"), N_("FLAGS"))
_WIDTHS = (19, 6, 20, 12, 10, 10, 11)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("log", help="show the scan journal (for security staff)")
    p.add_argument("--since", help="only scans since then: a span back from now (1h, 30m, 7d) "
                   "or an ISO-8601 time")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"show the newest N scans (default {DEFAULT_LIMIT}; 0: all)")
    p.add_argument("--json", action="store_true", help="one JSON object per scan, per line")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--state", type=Path, metavar="DIR",
                       help=f"state folder holding {JOURNAL_NAME} (default $PASSGATE_STATE_DIR "
                       f"or {DEFAULT_STATE_DIR})")
    where.add_argument("--journal", type=Path, metavar="FILE", help="the journal file itself")
    p.add_argument("--language", choices=LANGUAGES, metavar="LANG",
                   help="language of the lines: en, ru (Russian), tt (Tatar); default the "
                   "config's [display] language when it can be read, else en")
    p.set_defaults(func=run)


def log_language(given: str | None, config: Path | None = None) -> tuple[Language, str]:
    """(the language to print in, a note for stderr when the config could not say).

    ``given``: ``--language``. Else the config's ``[display] language`` (``config``: its
    path; the default one when None); a missing config is English, said nowhere (a laptop
    reading a copied journal has none), an unreadable or invalid one English with a note."""
    from passgate.config.load import DEFAULT_PATH, load_config
    from passgate.errors import ConfigError
    from passgate.util.i18n import language

    if given:
        return language(given), ""
    path = config or DEFAULT_PATH
    if not path.exists():
        return ENGLISH, ""
    try:
        return language(load_config(path).display.language), ""
    except ConfigError as exc:
        return ENGLISH, f"passgate log: {exc} (lines in English)"


def journal_path(args: argparse.Namespace, environ=os.environ) -> Path:
    """The journal file the options and environment point at."""
    if args.journal is not None:
        return args.journal
    state = args.state or Path(environ.get("PASSGATE_STATE_DIR") or DEFAULT_STATE_DIR)
    return state / JOURNAL_NAME


def since_time(text: str | None, now: float) -> float | None:
    """``--since``: a span back from ``now`` or an ISO-8601 instant (None: no bound)."""
    from passgate.errors import UsageError
    from passgate.util.timefmt import parse_duration, parse_instant

    if text is None:
        return None
    try:
        return now - parse_duration(text)
    except ValueError:
        pass  # not a span: try an instant before saying what is wrong
    try:
        return float(parse_instant(text))
    except ValueError:
        raise UsageError(f"--since: {text!r} is neither a span like 1h or 30m "
                         "nor an ISO-8601 time") from None


def local(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _word(table: dict[str, str], code: str, lang: Language) -> str:
    """A code's words in ``lang``; an unknown code (a newer firmware's) as itself."""
    return lang.gettext(table[code]) if code in table else code


def widths(lang: Language = ENGLISH) -> tuple[int, ...]:
    """The column widths in ``lang``: each at least its header's and its longest word's."""
    words = (("",), (lang.gettext("ACCEPT"), lang.gettext("DENY")),
             [lang.gettext(w) for w in REASON_WORDS.values()], ("",), ("",),
             [lang.gettext(w) for w in CLOCK_WORDS.values()],
             [lang.gettext(w) for w in STATUS_WORDS.values()])
    return tuple(max(w, len(lang.gettext(h)), *(len(x) for x in ws))
                 for w, h, ws in zip(_WIDTHS, _HEADER, words, strict=False))


def human_line(row, lang: Language = ENGLISH) -> str:
    """One scan, readable at a glance."""
    cells = (
        local(row.scanned_at),
        lang.gettext("ACCEPT") if row.accepted else lang.gettext("DENY"),
        _word(REASON_WORDS, row.reason, lang),
        row.purpose or "-",
        row.zone or "-",
        _word(CLOCK_WORDS, row.clock_state, lang),
        _word(STATUS_WORDS, row.status, lang),
    )
    text = "  ".join(c.ljust(w) for c, w in zip(cells, widths(lang), strict=True))
    return f"{text}  {','.join(row.flags) or '-'}"


def header(lang: Language = ENGLISH) -> str:
    names = [lang.gettext(h) for h in _HEADER]
    return "  ".join(h.ljust(w) for h, w in zip(names, (*widths(lang), 0), strict=True)).rstrip()


def summary(counts: dict, shown: int, pending: int, dead: int, since: float | None,
            device: str, lang: Language = ENGLISH) -> str:
    """``12 scans since ... (showing 12): 9 accepted, 3 denied (2 expired, ...); ...``."""
    _ = lang.gettext
    total = sum(counts.values())
    accepted = sum(n for (v, _r), n in counts.items() if v == "accept")
    denied: Counter[str] = Counter()
    for (v, reason), n in counts.items():
        if v != "accept":
            denied[_word(REASON_WORDS, reason, lang)] += n
    head = f"{device}: " if device else ""
    scans = lang.ngettext("{n} scan", "{n} scans", total).format(n=total)
    head += (_("{scans} since {time}").format(scans=scans, time=local(since))
             if since is not None else _("{scans} in the journal").format(scans=scans))
    if shown < total:
        head += " " + _("(showing the newest {n})").format(n=shown)
    parts = _("{accepted} accepted, {denied} denied").format(accepted=accepted,
                                                              denied=total - accepted)
    if denied:
        ranked = sorted(denied.items(), key=lambda wn: (-wn[1], wn[0]))  # most first
        parts += " (" + ", ".join(f"{n} {w}" for w, n in ranked) + ")"
    tail = _("{n} waiting for upload").format(n=pending)
    if dead:
        tail += ", " + _("{n} refused by the collector (dead letters)").format(n=dead)
    return f"{head}: {parts}; {tail}"


def run(args: argparse.Namespace) -> int:
    from passgate.cli import EXIT_OK
    from passgate.errors import UsageError
    from passgate.journal.journal import Journal
    from passgate.util.timefmt import iso

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    path = journal_path(args)
    if not path.is_file():
        raise UsageError(f"{path}: no journal there (use --journal FILE, --state DIR "
                         "or PASSGATE_STATE_DIR)")
    since = since_time(args.since, time.time())
    t = since if since is not None else float("-inf")
    with Journal.open_readonly(path) as journal:
        rows = journal.iter_since(t) if args.limit == 0 else journal.since(t, args.limit)
        if args.json:
            for row in rows:
                print(json.dumps({**row.to_json(), "time": iso(row.scanned_at)},
                                 sort_keys=True))
            return EXIT_OK
        lang, note = log_language(args.language)
        if note:
            print(note, file=sys.stderr)
        shown = 0
        print(header(lang))
        for row in rows:
            print(human_line(row, lang))
            shown += 1
        counts = journal.counts(t)
        print(summary(counts, shown, journal.pending_count(), journal.dead_letter_count(),
                      since, journal.device_id, lang))
    return EXIT_OK
