"""The updater's state file: where an update stands, written atomically before each step.

Rules kept (tests/test_update.py):

- the file is replaced atomically (:func:`passgate.util.atomicfile.write_atomic`): after a
  power cut it holds the last step entered, never half of one;
- a step is written *before* it starts, so a resumed updater redoes at most that step, and
  every step is safe to redo (download again, ``dpkg -i`` again, check again);
- what the collector sees (:func:`report`) is derived from the file only: ``updating`` while
  any step of an install or a rollback is open, ``updated``/``up_to_date`` only after a
  health check passed; a rollback or a failure keeps its reason until the next attempt;
- ``overlay_on`` (the install finished, the read-only root being switched back on) already
  reports the attempt's outcome: the outcome field is written only when the install (or the
  rollback) finished, so it never says ``updated`` for an update that did not pass.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from passgate.errors import UpdateError
from passgate.util.atomicfile import write_atomic

log = logging.getLogger(__name__)

STATE_FILE = "update.json"
LOCK_FILE = "update.lock"
# The unit's StateDirectory (mode 0755: the sync agent reads the state for its heartbeat).
DEFAULT_DIR = Path("/var/lib/passgate-update")

IDLE = "idle"
DOWNLOADING = "downloading"
INSTALLING = "installing"
CHECKING = "checking"
ROLLING_BACK = "rolling_back"
# Read-only root (Raspberry Pi OS's overlay): the overlay is switched off for the next boot
# and the device rebooted before installing, and switched on again (and rebooted) after.
OVERLAY_OFF = "overlay_off"
OVERLAY_ON = "overlay_on"
STEPS = (IDLE, DOWNLOADING, OVERLAY_OFF, INSTALLING, CHECKING, ROLLING_BACK, OVERLAY_ON)

# outcomes of the last attempt (idle only)
UP_TO_DATE, UPDATED, ROLLED_BACK, FAILED = "up_to_date", "updated", "rolled_back", "failed"


@dataclass(frozen=True)
class UpdateState:
    step: str = IDLE
    target: str | None = None  # the version being installed (or last attempted)
    previous: str | None = None  # the version that ran before: the way back
    outcome: str | None = None  # of the last finished attempt
    reason: str | None = None  # why it rolled back or failed
    bad: tuple[str, ...] = ()  # versions that failed their health check: never retried
    at: float = 0.0  # when this state was written (wall clock, for the staff page)
    attempts: int = 0  # times the current step was entered (a step that keeps cutting power)
    overlay: bool = False  # the overlay was switched off for this update: switch it on after

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["bad"] = list(self.bad)
        return json.dumps(doc, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> UpdateState:
        doc = json.loads(data)
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in doc.items() if k in known})
        if state.step not in STEPS:
            raise UpdateError(f"update state: unknown step {state.step!r}")
        return replace(state, bad=tuple(state.bad))


def read_state(path: Path) -> UpdateState:
    """The state in ``path``; a missing file is a fresh idle state. An unreadable one is
    logged and read as idle: the next attempt starts over, which is always safe (every step
    checks what is installed), while refusing to run would leave the device stuck."""
    try:
        return UpdateState.from_json(Path(path).read_bytes())
    except FileNotFoundError:
        return UpdateState()
    except (OSError, ValueError, TypeError) as exc:
        log.warning("update state %s unreadable (%s): starting over", path, exc)
        return UpdateState()


def write_state(path: Path, state: UpdateState) -> None:
    """Write the state atomically; the folder is made when missing (systemd's
    ``StateDirectory=`` makes it for the unit, but ``passgate update`` may run by hand)."""
    Path(path).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(Path(path), state.to_json(), mode=0o644)


# A status text the collector keeps: at most 64 characters, no control character
# (docs/sync-protocol.md, "Limits"); a longer or unclean one was dropped there, unseen.
STATUS_TEXT_MAX = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def status_text(text: str) -> str:
    """``text`` as a heartbeat may carry it: control characters as spaces, cut to
    :data:`STATUS_TEXT_MAX` characters (the last one an ellipsis when cut)."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= STATUS_TEXT_MAX else text[:STATUS_TEXT_MAX - 1] + "\u2026"


def report(state: UpdateState) -> dict[str, str]:
    """The heartbeat fields: ``update_state`` (``up_to_date``, ``downloading``, ``updating``,
    ``rolled_back``, ``failed``), ``update_target`` and ``update_reason`` when there is one."""
    if state.step == DOWNLOADING:
        name = "downloading"
    elif state.step == OVERLAY_ON and state.outcome is not None:
        name = state.outcome if state.outcome in (ROLLED_BACK, FAILED) else UP_TO_DATE
    elif state.step != IDLE:
        name = "updating"
    elif state.outcome in (ROLLED_BACK, FAILED):
        name = state.outcome
    else:
        name = UP_TO_DATE
    out = {"update_state": name}
    if state.target:
        out["update_target"] = status_text(state.target)
    if state.reason and name in ("rolled_back", "failed", "updating"):
        out["update_reason"] = status_text(state.reason)
    return out


def report_file(path: Path) -> dict[str, str]:
    """:func:`report` of the file at ``path``; {} when there is none (no updater installed);
    ``failed`` when it cannot be read."""
    try:
        return report(UpdateState.from_json(Path(path).read_bytes()))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError) as exc:  # never reads as "up to date"
        return {"update_state": FAILED,
                "update_reason": status_text(f"update state unreadable: {exc}")}


@contextlib.contextmanager
def update_lock(
    path: Path,
    wait: float = 1800.0,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[None]:
    """Hold the one updater lock (``flock`` on ``path``) for a whole run.

    Two runs of the state machine at once (the timer's and one by hand; systemd fires a
    timer whose boot delay has passed at a ``daemon-reload``, and every install reloads)
    would both act on the same state file: both roll back, both run dpkg, and one reads
    passgate as not installed while the other's dpkg is half-way. The second run waits
    for the first, then reads the state the first left. The kernel drops the lock with the
    process, so a power cut or a kill never leaves it held. Waiting longer than ``wait``
    seconds is an :class:`UpdateError` (nothing was done).
    """
    path = Path(path)
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:  # a read-only root: flock works on a read-only descriptor too
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise UpdateError(f"update lock {path}: {exc}") from None
    try:
        deadline = monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    log.info("another update run holds %s: waiting for it to finish", path)
                    told = True
                if monotonic() >= deadline:
                    raise UpdateError(f"another update run held {path} for {wait:.0f} s: "
                                      "nothing done") from None
                sleep(1.0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
