"""Durations and instants as people write and read them ("3h", "1h30m", "2h 13m left")."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from passgate.errors import ConfigError

_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """``"3h"``, ``"30m"``, ``"1h30m"``, ``"7d"``, ``"90s"`` or plain seconds -> seconds."""
    text = text.strip().replace(" ", "").lower()
    if text.isdigit():
        return int(text)
    m = _DURATION_RE.fullmatch(text)
    if not text or not m or not any(m.groups()):
        raise ConfigError(f"{text!r} is not a duration like 3h, 30m, 1h30m or 7d")
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def parse_instant(text: str) -> int:
    """ISO-8601 (``2026-04-01T10:00``, ``...Z``, ``...+03:00``) -> POSIX seconds; naive is UTC."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO-8601 date and time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def iso(ts: int | float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: int | float) -> str:
    """A short human span: ``45s``, ``14 min``, ``2h 13m``, ``3d 4h``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
