"""Self-test checks of the device's state: clock, trust data, collector, disk, journal.

Like the hardware checks in :mod:`passgate.selftest.checks`, each takes what it looks at as
arguments (a clock reading, the loaded bundle, the sync state, an injectable ``statvfs`` or
``connect``) and returns a :class:`~passgate.selftest.checks.Result`. Nothing here writes: the
journal is opened read-only, the clock floor is not persisted, the bundle is not refreshed.
Each writes its detail in ``lang`` (English by default); instants stay UTC in ISO form (as
the journal writes them), paths, URLs and commands as they are.
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

from passgate.bundle.policy import counted_issue, trust_status
from passgate.clock.clock import ClockState, TimeReading
from passgate.errors import ConfigError, PassgateError
from passgate.journal.syncstate import OFFLINE, ONLINE, UNKNOWN
from passgate.selftest.checks import Result, Status
from passgate.util.i18n import ENGLISH, Language, decimal, duration, span
from passgate.util.timefmt import iso

MB = 1024 * 1024
EXPIRY_WARN_S = 86400  # a bundle this close to its expiry needs the sync agent soon


# ---- clock ----------------------------------------------------------------------------------


def check_clock(reading: TimeReading, *, source: str = "", system: float | None = None,
                stored_floor: float | None = None, floor_error: str = "",
                policy: str = "flag", lang: Language = ENGLISH) -> Result:
    """The clock state (trusted / floor / backwards) and how old the saved floor is.

    ``stored_floor``: the floor as saved in ``clock.floor`` (authenticated time when it was
    last written), ``None`` if nothing is saved. ``policy``: what this checkpoint does with
    passes on an untrusted clock (``deny`` makes an untrusted clock a FAIL, ``flag`` a WARN).
    ``floor_error``: the saved floor could not be read (a WARN at least).
    """
    _ = lang.gettext
    state = reading.state
    figures: dict[str, Any] = {"state": state.value, "source": source or None,
                               "now": iso(reading.now), "floor_age_s": None}
    said = {ClockState.TRUSTED: lang.pgettext("clock state", "trusted"),
            ClockState.FLOOR: lang.pgettext("clock state", "floor"),
            ClockState.BACKWARDS: lang.pgettext("clock state", "backwards")}
    sources = {"system": lang.pgettext("clock source", "system clock"),
               "token": lang.pgettext("clock source", "time token"),
               "floor": lang.pgettext("clock source", "saved floor")}
    shown = sources.get(source, source) if lang.code != "en" else source  # English: the id
    parts = [said.get(state, state.value) + (f" ({shown})" if shown else ""),
             iso(reading.now)]
    if stored_floor is not None:
        age = reading.now - stored_floor
        figures["floor_age_s"] = int(age)
        parts.append(_("floor saved {span} ago").format(span=span(max(0, age), lang)))
    elif floor_error:
        parts.append(_("saved floor unreadable: {error}").format(error=floor_error))
    else:
        parts.append(_("no floor saved yet"))
    if state is ClockState.BACKWARDS and system is not None:
        parts.append(_("system clock {span} behind the floor").format(
            span=span(reading.now - system, lang)))
    detail = ", ".join(parts)
    if state is ClockState.TRUSTED:
        return Result("clock", Status.WARN if floor_error else Status.PASS, detail, figures)
    fix = _("connect the network (timesyncd), fit the RTC, or passgate time set")
    if policy == "deny":
        return Result("clock", Status.FAIL, _("{detail}: passes refused until the clock is "
                                              "trusted; {fix}").format(detail=detail, fix=fix),
                      figures)
    return Result("clock", Status.WARN, _("{detail}: passes accepted but flagged; {fix}").format(
        detail=detail, fix=fix), figures)


# ---- trust data -----------------------------------------------------------------------------


def check_bundle(loaded: Any, now: float, zone: str | None = None, site: str = "",
                 lang: Language = ENGLISH) -> Result:
    """The installed bundle: version, age, expiry, staleness under its own fleet policy.

    ``loaded`` is a :class:`~passgate.bundle.watch.Loaded` (store and info, or ``missing``).
    No bundle: FAIL (every pass is denied). Stale or expired: FAIL where the policy denies,
    WARN where it only flags. Expiring within a day: WARN.
    """
    _ = lang.gettext
    info = loaded.info
    if info is None:  # the watcher's "no trust data: <the error>": its head is translated
        head, sep, error = (loaded.missing or "no trust data").partition(": ")
        return Result("bundle", Status.FAIL, _("{why}: every pass is denied (install a bundle, "
                                               "or check provisioning)").format(
            why=_(head) + sep + error), {"version": None})
    policy = info.fleet.for_checkpoint(zone, site or None)
    status = trust_status(info, now, max_offline_s=policy.max_offline_s)
    issued = counted_issue(info)
    since = max(issued, info.last_refresh or 0)
    figures = {"version": info.version, "age_s": status.age_s, "stale": status.stale,
               "expires_in_s": int(info.expires - now), "issuers": info.issuers,
               "revoked": info.revoked, "max_offline_s": policy.max_offline_s}
    ago = span(max(0, now - since), lang)
    refreshed = (_("refreshed {span} ago").format(span=ago)
                 if info.last_refresh and info.last_refresh >= issued
                 else _("issued {span} ago").format(span=ago))
    detail = ", ".join([
        f"v{info.version}", refreshed,
        lang.ngettext("{n} issuer key", "{n} issuer keys", info.issuers).format(n=info.issuers),
        _("{n} revoked").format(n=info.revoked)])
    # The policy's own message is English (logs); in other words: the same figures.
    if status.expired:
        detail += ", " + (status.message if lang.code == "en" else _(
            "expired {span} ago").format(span=duration(now - info.expires, lang)))
    else:
        detail += ", " + _("expires in {span}").format(span=span(info.expires - now, lang))
    if status.stale:
        consequence = (_("passes refused") if policy.stale == "deny"
                       else _("passes accepted, flagged"))
        limit = span(policy.max_offline_s, lang)
        bad = Status.FAIL if policy.stale == "deny" else Status.WARN
        why = status.message if lang.code == "en" else (
            _("expired {span} ago").format(span=duration(now - info.expires, lang))
            if status.expired else _("{age} old").format(age=duration(status.age_s, lang)))
        return Result("bundle", bad, _("{detail}: stale ({why}, limit {limit}): {consequence}; "
                                       "check the sync agent and the collector").format(
            detail=detail, why=why, limit=limit, consequence=consequence), figures)
    if info.expires - now < EXPIRY_WARN_S:
        return Result("bundle", Status.WARN, _("{detail}: expires soon; the sync agent must "
                                               "fetch a newer one").format(detail=detail),
                      figures)
    return Result("bundle", Status.PASS, detail, figures)


def check_trust_folder(load: Callable[[], Any], path: Path,
                       lang: Language = ENGLISH) -> Result:
    """``trust.source = "dir"`` (development): a plain folder of keys, never stale."""
    _ = lang.gettext
    try:
        store = load()
    except (PassgateError, OSError) as exc:
        return Result("bundle", Status.FAIL, _("trust folder unusable: {error}").format(
            error=exc))
    n = len(store.keys)
    keys = lang.ngettext("{n} issuer key", "{n} issuer keys", n).format(n=n)
    revoked = _("{n} revoked").format(n=len(store.revoked))
    return Result("bundle", Status.PASS, _("trust folder {path}: {keys}, {revoked} (development "
                                           "setting: never stale)").format(
        path=path, keys=keys, revoked=revoked), {"issuers": n, "revoked": len(store.revoked)})


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
                    monotonic: Callable[[], float] = time.monotonic,
                    lang: Language = ENGLISH) -> Result:
    """The collector as the sync agent last saw it, plus a TCP connect when ``url`` is known.

    ``state`` is a :class:`~passgate.journal.syncstate.SyncState` (empty when the file is missing).
    Never a FAIL: the scanner works without the network; problems are WARNs. ``connect=None``
    skips the connection attempt (``--no-connect``).
    """
    _ = lang.gettext
    figures: dict[str, Any] = {"connectivity": state.connectivity_at(now), "url": url,
                               "pending": state.pending, "dead_letters": state.dead_letters,
                               "last_success_age_s": None, "tcp_ms": None}
    if url is None and state.updated_at is None:
        note = f" ({url_note})" if url_note else ""
        return Result("collector", Status.PASS, _("no collector configured{note}: standalone "
                                                  "checkpoint, nothing to reach").format(
            note=note), figures)
    parts, problems = [], []
    connectivity = figures["connectivity"]
    said = {ONLINE: lang.pgettext("connectivity", "online"),
            OFFLINE: lang.pgettext("connectivity", "offline"),
            UNKNOWN: lang.pgettext("connectivity", "unknown")}
    if state.updated_at is None:
        parts.append(_("the sync agent has not reported yet"))
    elif state.connectivity != connectivity:  # the file is old: nobody updates it
        parts.append(_("sync state {span} old").format(
            span=span(max(0, now - state.updated_at), lang)))
        problems.append(_("is passgate-sync running?"))
    else:
        parts.append(said.get(connectivity, connectivity))
    if state.last_success is not None:
        age = now - state.last_success
        figures["last_success_age_s"] = int(age)
        parts.append(_("last success {span} ago").format(span=span(max(0, age), lang)))
    elif state.updated_at is not None:
        parts.append(_("never synced"))
    if state.pending is not None:
        parts.append(_("{n} pending").format(n=state.pending))
    if state.dead_letters:
        problems.append(lang.ngettext(
            "{n} row refused by the collector (kept; see passgate sync status)",
            "{n} rows refused by the collector (kept; see passgate sync status)",
            state.dead_letters).format(n=state.dead_letters))
    if connectivity == OFFLINE or (state.last_error and connectivity != ONLINE):
        problems.append(_("last error: {error}").format(
            error=state.last_error or lang.pgettext("connectivity", "unknown")))
    if url is not None and connect is not None:
        try:
            host, port = collector_address(url)
            t = monotonic()
            connect(host, port, timeout)
            ms = 1000 * (monotonic() - t)
            figures["tcp_ms"] = round(ms, 1)
            parts.append(_("{host}:{port} reachable ({ms} ms)").format(
                host=host, port=port, ms=f"{ms:.0f}"))
        except (OSError, ValueError) as exc:
            problems.append(_("cannot connect to {url}: {error}").format(url=url, error=exc))
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
               warn_mb: float = 500, fail_mb: float = 50, lang: Language = ENGLISH) -> Result:
    """Free space on the filesystem of the state folder (what non-root users may use).

    With ``mounts`` (the mount table), a state folder on a RAM-backed file system (tmpfs, or
    the overlay of a read-only root) is a WARN: the journal and keys would vanish at reboot.
    """
    _ = lang.gettext
    try:
        st = statvfs(path)
    except OSError as exc:
        return Result("disk", Status.FAIL, _("cannot check {path}: {error}").format(
            path=path, error=exc))
    free = st.f_bavail * st.f_frsize / MB
    total = st.f_blocks * st.f_frsize / MB
    figures = {"free_mb": round(free, 1), "total_mb": round(total, 1), "path": str(path),
               "fstype": None}
    detail = _("{free} MB free of {total} MB on {path}").format(
        free=f"{free:.0f}", total=f"{total:.0f}", path=path)
    mount = None
    if mounts is not None:
        try:
            mount = mount_of(path, mounts())
        except OSError as exc:
            detail += " " + _("(mount table unreadable: {error})").format(error=exc)
    if mount is not None:
        figures["fstype"] = mount[1]
    if free < fail_mb:
        return Result("disk", Status.FAIL, _("{detail}: below {limit} MB, the journal will stop "
                                             "recording (no passes accepted)").format(
            detail=detail, limit=decimal(fail_mb, "g", lang)), figures)
    if mount is not None and mount[1] in VOLATILE_FS:
        return Result("disk", Status.WARN, _("{detail}: on {fstype} at {mount}, lost at every "
                                             "reboot (read-only root? the state needs a "
                                             "writable partition)").format(
            detail=detail, fstype=mount[1], mount=mount[0]), figures)
    if free < warn_mb:
        return Result("disk", Status.WARN, _("{detail}: below {limit} MB").format(
            detail=detail, limit=decimal(warn_mb, "g", lang)), figures)
    return Result("disk", Status.PASS, detail, figures)


# ---- journal --------------------------------------------------------------------------------


def check_journal(path: Path, lang: Language = ENGLISH) -> Result:
    """The journal opens, its pending and dead-letter counts, and ``PRAGMA quick_check``.

    A missing journal is a FAIL (the scanner creates it when it starts, so it means the
    scanner never ran here). Read-only, and without leaving files behind: see
    :func:`inspect_journal`.
    """
    _ = lang.gettext
    path = Path(path)
    if not path.is_file():
        return Result("journal", Status.FAIL, _("no journal at {path} (the scanner creates it "
                                                "when it starts: sudo systemctl status "
                                                "passgate-scanner)").format(path=path))
    try:
        pending, dead, check = inspect_journal(path)
    except (sqlite3.Error, OSError) as exc:
        return Result("journal", Status.FAIL, f"{path}: {exc}")
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()) / MB
    figures = {"pending": pending, "dead_letters": dead, "quick_check": check,
               "size_mb": round(size, 2)}
    detail = _("{path} opens, {size} MB, {pending} rows pending upload, {dead} dead letters, "
               "quick_check {check}").format(path=path, size=decimal(size, ".1f", lang),
                                             pending=pending, dead=dead, check=check)
    if check != "ok":
        return Result("journal", Status.FAIL, _("{detail}: the database is damaged").format(
            detail=detail), figures)
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
