"""The sync state file: what the scanner's idle screen knows about the network.

The scanner has no network at all; it learns connectivity, the last successful sync, the
pending count and the bundle version from this small JSON file, written only by the sync
agent. Writes are atomic (temporary file, fsync, rename, fsync of the folder), so a reader
sees either the previous state or the new one, never half a file, even across power loss.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from passgate.util.atomicfile import write_atomic

log = logging.getLogger(__name__)

STATE_FILE = "sync-state.json"

ONLINE, OFFLINE, UNKNOWN = "online", "offline", "unknown"
# The agent writes the file after every round: at least every 300 s (the backoff cap) plus
# the round itself; twice that and more means nobody is updating it.
STALE_AFTER = 900.0


@dataclass(frozen=True, slots=True)
class SyncState:
    """One snapshot of the sync agent's view. Times are POSIX seconds.

    ``connectivity``: ``online`` after a successful exchange, ``offline`` after a failed one,
    ``unknown`` before the first attempt (or when the file is missing or unreadable).
    ``pending``: journal rows not yet stored by the collector. ``dead_letters``: rows the
    collector refused permanently (kept on the device, reported, never deleted).
    ``last_error``: a short, data-free description of the last failure, for the screen and logs.
    """

    connectivity: str = UNKNOWN
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    pending: int | None = None
    dead_letters: int | None = None
    bundle_version: int | None = None
    updated_at: float | None = None

    def with_(self, **changes: Any) -> SyncState:
        return replace(self, **changes)

    def connectivity_at(self, now: float, max_age: float = STALE_AFTER) -> str:
        """What the idle screen should show at ``now``: ``unknown`` when the file is older
        than ``max_age`` seconds (the sync process stopped or hangs), else ``connectivity``.
        Without this a dead sync agent would leave "online" on the screen forever."""
        if self.updated_at is None or not 0 <= now - self.updated_at <= max_age:
            return UNKNOWN
        return self.connectivity


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def write_state(path: Path, state: SyncState) -> None:
    """Atomically replace ``path`` with ``state`` as JSON (mode 0644: the scanner reads it)."""
    data = json.dumps(asdict(state), sort_keys=True, indent=1).encode() + b"\n"
    write_atomic(Path(path), data, mode=0o644)


def read_state(path: Path) -> SyncState:
    """Read the state; a missing or unreadable file is ``unknown`` connectivity, never an error.

    The idle screen must keep working whatever the sync agent did, so problems are logged
    (once per call; the screen polls rarely) and an empty state is returned.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SyncState()
    except (OSError, ValueError) as exc:
        log.warning("sync state %s unreadable: %s", path, exc)
        return SyncState()
    if not isinstance(raw, dict):
        log.warning("sync state %s is not a JSON object", path)
        return SyncState()
    known = {f.name for f in fields(SyncState)}
    try:
        return SyncState(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        log.warning("sync state %s has bad fields: %s", path, exc)
        return SyncState()
