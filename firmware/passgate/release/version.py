"""Release version numbers: dotted integers, compared numerically.

Rules: a version is 1 to 4 dot-separated decimal integers without leading zeros
(``0.1.0``, ``1.2``, ``2.0.0.1``), each below 2**31; nothing else (no ``-rc1``, no ``+local``),
so the Python package version, the Debian version and the release manifest spell it the same
way and compare the same way everywhere. ``0.10.0`` is newer than ``0.9.9``; ``1.0`` equals
``1.0.0`` (trailing zeros do not count).
"""

from __future__ import annotations

import re

from passgate.errors import ReleaseRefused

_VERSION = re.compile(r"(0|[1-9][0-9]{0,9})(\.(0|[1-9][0-9]{0,9})){0,3}")


def parse_version(text: object) -> tuple[int, ...]:
    """``"0.10.1"`` -> ``(0, 10, 1)``; anything else is ``ReleaseRefused("malformed")``."""
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        raise ReleaseRefused("malformed", f"release: {text!r} is not a version like 1.2.3")
    parts = tuple(int(p) for p in text.split("."))
    if any(p >= 2**31 for p in parts):
        raise ReleaseRefused("malformed", f"release: version {text!r} has a part too large")
    return parts


def version_key(text: str) -> tuple[int, ...]:
    """A sort key: trailing zeros stripped, so ``1.0`` and ``1.0.0`` compare equal."""
    parts = list(parse_version(text))
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
