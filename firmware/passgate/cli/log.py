"""``passgate log``: the scan journal for security staff, one line per scan.

The journal is opened read-only, so this is safe while the scanner and the sync agent run.
Where the journal is: ``--journal FILE``, else ``--state DIR``, else ``$PASSGATE_STATE_DIR``,
else ``/var/lib/passgate``; inside a state folder the file is ``journal.sqlite``, the name
``[journal] path`` defaults to in the config.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/passgate")
JOURNAL_NAME = "journal.sqlite"  # the name config.py derives inside checkpoint.state_dir
DEFAULT_LIMIT = 50

# Reasons in the words the OLED uses; an unknown value (a newer firmware's) is shown as is.
REASON_WORDS = {
    "valid": "valid",
    "malformed": "unreadable",
    "unsupported": "unsupported format",
    "unknown_key": "unknown issuer",
    "bad_signature": "invalid signature",
    "key_not_valid": "issuer key not valid",
    "not_yet_valid": "not yet valid",
    "expired": "expired",
    "revoked": "revoked",
    "wrong_zone": "not valid here",
    "purpose_not_allowed": "purpose not allowed",
    "already_used": "already used",
    "clock_untrusted": "clock not trusted",
    "trust_stale": "trust data stale",
    "journal_fault": "not recorded",
    "holder_mismatch": "wrong phone",
    "live_code_stale": "code too old",
    "live_code_future": "code time ahead",
    "live_code_required": "live code required",
    "not_bound": "pass not bound",
}
CLOCK_WORDS = {"trusted": "trusted", "floor": "floor only", "backwards": "went back"}
STATUS_WORDS = {"pending": "pending", "uploaded": "uploaded", "dead": "dead letter"}

# Column widths: the longest value each column normally holds.
_HEADER = ("TIME", "RESULT", "REASON", "PURPOSE", "ZONE", "CLOCK", "UPLOAD", "FLAGS")
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
    p.set_defaults(func=run)


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


def human_line(row) -> str:
    """One scan, readable at a glance."""
    cells = (
        local(row.scanned_at),
        "ACCEPT" if row.accepted else "DENY",
        REASON_WORDS.get(row.reason, row.reason),
        row.purpose or "-",
        row.zone or "-",
        CLOCK_WORDS.get(row.clock_state, row.clock_state),
        STATUS_WORDS.get(row.status, row.status),
    )
    text = "  ".join(c.ljust(w) for c, w in zip(cells, _WIDTHS, strict=True))
    return f"{text}  {','.join(row.flags) or '-'}"


def header() -> str:
    return "  ".join(h.ljust(w) for h, w in zip(_HEADER, (*_WIDTHS, 0), strict=True)).rstrip()


def summary(counts: dict, shown: int, pending: int, dead: int, since: float | None,
            device: str) -> str:
    """``12 scans since ... (showing 12): 9 accepted, 3 denied (2 expired, ...); ...``."""
    total = sum(counts.values())
    accepted = sum(n for (v, _), n in counts.items() if v == "accept")
    denied: Counter[str] = Counter()
    for (v, reason), n in counts.items():
        if v != "accept":
            denied[REASON_WORDS.get(reason, reason)] += n
    head = f"{device}: " if device else ""
    head += f"{total} scan{'s' * (total != 1)} " + (
        f"since {local(since)}" if since is not None else "in the journal")
    if shown < total:
        head += f" (showing the newest {shown})"
    parts = f"{accepted} accepted, {total - accepted} denied"
    if denied:
        ranked = sorted(denied.items(), key=lambda wn: (-wn[1], wn[0]))  # most first
        parts += " (" + ", ".join(f"{n} {w}" for w, n in ranked) + ")"
    tail = f"{pending} waiting for upload"
    if dead:
        tail += f", {dead} refused by the collector (dead letters)"
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
        shown = 0
        print(header())
        for row in rows:
            print(human_line(row))
            shown += 1
        counts = journal.counts(t)
        print(summary(counts, shown, journal.pending_count(), journal.dead_letter_count(),
                      since, journal.device_id))
    return EXIT_OK
