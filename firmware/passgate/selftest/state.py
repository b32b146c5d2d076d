"""Self-test checks of the device's state: clock, trust data, collector, disk, journal.

Like the hardware checks in :mod:`passgate.selftest.checks`, each takes what it looks at as
arguments (a clock reading, the loaded bundle, the sync state, an injectable ``statvfs`` or
``connect``) and returns a :class:`~passgate.selftest.checks.Result`. Nothing here writes: the
journal is opened read-only, the clock floor is not persisted, the bundle is not refreshed.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from passgate.bundle.policy import trust_status
from passgate.clock.clock import ClockState, TimeReading
from passgate.errors import ConfigError, PassgateError
from passgate.journal.syncstate import OFFLINE, ONLINE
from passgate.selftest.checks import Result, Status
from passgate.util.timefmt import iso, span

MB = 1024 * 1024
EXPIRY_WARN_S = 86400  # a bundle this close to its expiry needs the sync agent soon


# ---- clock ----------------------------------------------------------------------------------


def check_clock(reading: TimeReading, *, source: str = "", system: float | None = None,
                stored_floor: float | None = None, floor_error: str = "",
                policy: str = "flag") -> Result:
    """The clock state (trusted / floor / backwards) and how old the saved floor is.

    ``stored_floor``: the floor as saved in ``clock.floor`` (authenticated time when it was
    last written), ``None`` if nothing is saved. ``policy``: what this checkpoint does with
    passes on an untrusted clock (``deny`` makes an untrusted clock a FAIL, ``flag`` a WARN).
    ``floor_error``: the saved floor could not be read (a WARN at least).
    """
    state = reading.state
    figures: dict[str, Any] = {"state": state.value, "source": source or None,
                               "now": iso(reading.now), "floor_age_s": None}
    parts = [f"{state.value}" + (f" ({source})" if source else ""), iso(reading.now)]
    if stored_floor is not None:
        age = reading.now - stored_floor
        figures["floor_age_s"] = int(age)
        parts.append(f"floor saved {span(max(0, age))} ago")
    elif floor_error:
        parts.append(f"saved floor unreadable: {floor_error}")
    else:
        parts.append("no floor saved yet")
    if state is ClockState.BACKWARDS and system is not None:
        parts.append(f"system clock {span(reading.now - system)} behind the floor")
    detail = ", ".join(parts)
    if state is ClockState.TRUSTED:
        return Result("clock", Status.WARN if floor_error else Status.PASS, detail, figures)
    fix = "connect the network (timesyncd), fit the RTC, or passgate time set"
    if policy == "deny":
        return Result("clock", Status.FAIL, f"{detail}: passes refused until the clock is "
                      f"trusted; {fix}", figures)
    return Result("clock", Status.WARN, f"{detail}: passes accepted but flagged; {fix}", figures)


# ---- trust data -----------------------------------------------------------------------------


def check_bundle(loaded: Any, now: float, zone: str | None = None, site: str = "") -> Result:
    """The installed bundle: version, age, expiry, staleness under its own fleet policy.

    ``loaded`` is a :class:`~passgate.bundle.watch.Loaded` (store and info, or ``missing``).
    No bundle: FAIL (every pass is denied). Stale or expired: FAIL where the policy denies,
    WARN where it only flags. Expiring within a day: WARN.
    """
    info = loaded.info
    if info is None:
        return Result("bundle", Status.FAIL, f"{loaded.missing or 'no trust data'}: every pass "
                      "is denied (install a bundle, or check provisioning)", {"version": None})
    policy = info.fleet.for_checkpoint(zone, site or None)
    status = trust_status(info, now, max_offline_s=policy.max_offline_s)
    since = max(info.issued, info.last_refresh or 0)
    figures = {"version": info.version, "age_s": status.age_s, "stale": status.stale,
               "expires_in_s": int(info.expires - now), "issuers": info.issuers,
               "revoked": info.revoked, "max_offline_s": policy.max_offline_s}
    refreshed = "refreshed" if info.last_refresh and info.last_refresh >= info.issued else "issued"
    detail = (f"v{info.version}, {refreshed} {span(max(0, now - since))} ago, "
              f"{info.issuers} issuer key{'s' if info.issuers != 1 else ''}, "
              f"{info.revoked} revoked")
    if status.expired:
        detail += f", {status.message}"
    else:
        detail += f", expires in {span(info.expires - now)}"
    if status.stale:
        consequence = ("passes refused" if policy.stale == "deny" else "passes accepted, flagged")
        limit = span(policy.max_offline_s)
        bad = Status.FAIL if policy.stale == "deny" else Status.WARN
        return Result("bundle", bad, f"{detail}: stale ({status.message}, limit {limit}): "
                      f"{consequence}; check the sync agent and the collector", figures)
    if info.expires - now < EXPIRY_WARN_S:
        return Result("bundle", Status.WARN, f"{detail}: expires soon; the sync agent must "
                      "fetch a newer one", figures)
    return Result("bundle", Status.PASS, detail, figures)


def check_trust_folder(load: Callable[[], Any], path: Path) -> Result:
    """``trust.source = "dir"`` (development): a plain folder of keys, never stale."""
    try:
        store = load()
    except (PassgateError, OSError) as exc:
        return Result("bundle", Status.FAIL, f"trust folder unusable: {exc}")
    n = len(store.keys)
    return Result("bundle", Status.PASS, f"trust folder {path}: {n} issuer key"
                  f"{'s' if n != 1 else ''}, {len(store.revoked)} revoked (development "
                  "setting: never stale)", {"issuers": n, "revoked": len(store.revoked)})


# ---- collector ------------------------------------------------------------------------------


def collector_address(url: str) -> tuple[str, int]:
    """``https://host[:port]/...`` -> (host, port); ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def tcp_connect(host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection (raises OSError); no bytes are sent."""
    with socket.create_connection((host, port), timeout=timeout):
        pass


def check_collector(state: Any, now: float, *, url: str | None = None, url_note: str = "",
                    connect: Callable[[str, int, float], None] | None = tcp_connect,
                    timeout: float = 3.0,
                    monotonic: Callable[[], float] = time.monotonic) -> Result:
    """The collector as the sync agent last saw it, plus a TCP connect when ``url`` is known.

    ``state`` is a :class:`~passgate.journal.syncstate.SyncState` (empty when the file is missing).
    Never a FAIL: the scanner works without the network; problems are WARNs. ``connect=None``
    skips the connection attempt (``--no-connect``).
    """
    figures: dict[str, Any] = {"connectivity": state.connectivity_at(now), "url": url,
                               "pending": state.pending, "dead_letters": state.dead_letters,
                               "last_success_age_s": None, "tcp_ms": None}
    if url is None and state.updated_at is None:
        note = f" ({url_note})" if url_note else ""
        return Result("collector", Status.PASS, f"no collector configured{note}: standalone "
                      "checkpoint, nothing to reach", figures)
    parts, problems = [], []
    connectivity = figures["connectivity"]
    if state.updated_at is None:
        parts.append("the sync agent has not reported yet")
    elif state.connectivity != connectivity:  # the file is old: nobody updates it
        parts.append(f"sync state {span(max(0, now - state.updated_at))} old")
        problems.append("is passgate-sync running?")
    else:
        parts.append(connectivity)
    if state.last_success is not None:
        age = now - state.last_success
        figures["last_success_age_s"] = int(age)
        parts.append(f"last success {span(max(0, age))} ago")
    elif state.updated_at is not None:
        parts.append("never synced")
    if state.pending is not None:
        parts.append(f"{state.pending} pending")
    if state.dead_letters:
        problems.append(f"{state.dead_letters} rows refused by the collector (kept; see "
                        "passgate sync status)")
    if connectivity == OFFLINE or (state.last_error and connectivity != ONLINE):
        problems.append(f"last error: {state.last_error or 'unknown'}")
    if url is not None and connect is not None:
        try:
            host, port = collector_address(url)
            t = monotonic()
            connect(host, port, timeout)
            ms = 1000 * (monotonic() - t)
            figures["tcp_ms"] = round(ms, 1)
            parts.append(f"{host}:{port} reachable ({ms:.0f} ms)")
        except (OSError, ValueError) as exc:
            problems.append(f"cannot connect to {url}: {exc}")
    elif url is None and url_note:
        parts.append(url_note)
    detail = ", ".join(parts)
    if problems:
        return Result("collector", Status.WARN, f"{detail}; {'; '.join(problems)}", figures)
    return Result("collector", Status.PASS, detail, figures)


# ---- disk -----------------------------------------------------------------------------------


VOLATILE_FS = frozenset({"overlay", "tmpfs", "ramfs"})


def read_mounts() -> str:
    """The kernel's mount table (``/proc/self/mounts``)."""
    return Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")


def mount_of(path: Path, table: str) -> tuple[str, str] | None:
    """(mount point, file system type) holding ``path``: the longest matching mount point."""
    target = str(Path(path).resolve())
    best: tuple[str, str] | None = None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # Spaces and tabs in mount points are written as octal escapes (\040).
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[2])
    return best


def check_disk(path: Path, *, statvfs: Callable[[Any], Any] = os.statvfs,
               mounts: Callable[[], str] | None = read_mounts,
               warn_mb: float = 500, fail_mb: float = 50) -> Result:
    """Free space on the filesystem of the state folder (what non-root users may use).

    With ``mounts`` (the mount table), a state folder on a RAM-backed file system (tmpfs, or
    the overlay of a read-only root) is a WARN: the journal and keys would vanish at reboot.
    """
    try:
        st = statvfs(path)
    except OSError as exc:
        return Result("disk", Status.FAIL, f"cannot check {path}: {exc}")
    free = st.f_bavail * st.f_frsize / MB
    total = st.f_blocks * st.f_frsize / MB
    figures = {"free_mb": round(free, 1), "total_mb": round(total, 1), "path": str(path),
               "fstype": None}
    detail = f"{free:.0f} MB free of {total:.0f} MB on {path}"
    mount = None
    if mounts is not None:
        try:
            mount = mount_of(path, mounts())
        except OSError as exc:
            detail += f" (mount table unreadable: {exc})"
    if mount is not None:
        figures["fstype"] = mount[1]
    if free < fail_mb:
        return Result("disk", Status.FAIL, f"{detail}: below {fail_mb:g} MB, the journal "
                      "will stop recording (no passes accepted)", figures)
    if mount is not None and mount[1] in VOLATILE_FS:
        return Result("disk", Status.WARN, f"{detail}: on {mount[1]} at {mount[0]}, lost at "
                      "every reboot (read-only root? the state needs a writable partition)",
                      figures)
    if free < warn_mb:
        return Result("disk", Status.WARN, f"{detail}: below {warn_mb:g} MB", figures)
    return Result("disk", Status.PASS, detail, figures)


# ---- journal --------------------------------------------------------------------------------


def check_journal(path: Path) -> Result:
    """The journal opens, its pending and dead-letter counts, and ``PRAGMA quick_check``.

    A missing journal is a FAIL (the scanner creates it when it starts, so it means the
    scanner never ran here). Read-only, and without leaving files behind: see
    :func:`inspect_journal`.
    """
    path = Path(path)
    if not path.is_file():
        return Result("journal", Status.FAIL, f"no journal at {path} (the scanner creates it "
                      "when it starts: sudo systemctl status passgate-scanner)")
    try:
        pending, dead, check = inspect_journal(path)
    except (sqlite3.Error, OSError) as exc:
        return Result("journal", Status.FAIL, f"{path}: {exc}")
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()) / MB
    figures = {"pending": pending, "dead_letters": dead, "quick_check": check,
               "size_mb": round(size, 2)}
    detail = (f"{path} opens, {size:.1f} MB, {pending} rows pending upload, "
              f"{dead} dead letters, quick_check {check}")
    if check != "ok":
        return Result("journal", Status.FAIL, f"{detail}: the database is damaged", figures)
    return Result("journal", Status.PASS, detail, figures)


def inspect_journal(path: Path) -> tuple[int, int, str]:
    """(rows pending upload, dead letters, ``PRAGMA quick_check``) on a read-only connection.

    A read-only connection to a WAL database creates ``-shm`` and ``-wal`` files when they
    are missing, and leaves them behind (SQLite gives them the database's owner and mode, so
    they do no harm, but a self-test should leave no trace). So when there is no ``-wal``
    file (the scanner is stopped and closed cleanly) the file is opened ``immutable``:
    nothing is created. With a ``-wal`` file (the scanner is running, or crashed) its files
    are used.
    """
    path = Path(path)
    mode = "ro" if Path(f"{path}-wal").exists() else "ro&immutable=1"
    db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode={mode}", uri=True,
                         timeout=2.0)
    try:
        pending = db.execute("SELECT count(*) FROM scans WHERE uploaded_at IS NULL").fetchone()
        dead = db.execute("SELECT count(*) FROM dead_letter").fetchone()
        rows = [r[0] for r in db.execute("PRAGMA quick_check(5)")]
    finally:
        db.close()
    return pending[0], dead[0], "ok" if rows == ["ok"] else "; ".join(rows)
