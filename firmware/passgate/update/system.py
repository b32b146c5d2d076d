"""What the updater does to the system: dpkg, systemctl, the root's mount. One seam.

:class:`DebianSystem` builds every command and hands it to an injected ``run`` (default:
:func:`subprocess.run`), so the tests drive the updater against a fake dpkg database and a
fake service manager that answer the same commands, and can cut the power between any two.

Rules kept (tests/test_update_system.py):

- dpkg's lock held by someone else (apt, unattended-upgrades) is waited for, up to
  ``lock_wait`` seconds, not read as a failed install;
- an interrupted dpkg run is finished (``dpkg --configure -a``) before any install, so a
  power cut inside dpkg leaves nothing half-configured once the updater has run again;
- services restart with ``--no-block``: the health check, not systemctl, decides when the
  new version is up (a Type=notify unit that never says READY would block systemctl);
- READY is ``ActiveState=active`` with ``SubState=running``: a ``Type=notify`` unit gets
  there only after the daemon sent ``READY=1``;
- the root is remounted read-write only around an install and read-only again after it,
  even when the install fails; with Raspberry Pi OS's overlay root an install would land in
  RAM and vanish at the next boot, so the updater refuses with that reason instead.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from passgate.errors import UpdateError

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]
PACKAGE = "passgate"


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=600, check=False)


@dataclass(frozen=True, slots=True)
class UnitState:
    active: str  # ActiveState: active, activating, failed, ...
    sub: str  # SubState: running, auto-restart, ...
    restarts: int  # NRestarts: a watchdog or crash restart since the last start

    @property
    def ready(self) -> bool:
        return self.active == "active" and self.sub == "running"


class System(Protocol):
    def installed_version(self) -> str | None: ...
    def install(self, deb: Path) -> None: ...
    def restart(self, units: Sequence[str]) -> None: ...
    def unit_state(self, unit: str) -> UnitState: ...
    def selftest(self) -> tuple[bool, str]: ...
    def writable_root(self) -> contextlib.AbstractContextManager[None]: ...
    def install_blocker(self) -> str | None: ...


class DebianSystem:
    """dpkg, systemctl and mount through ``run``; ``selftest_cmd`` is the quick self-test."""

    def __init__(
        self,
        run: Runner = run_command,
        selftest_cmd: Sequence[str] = (),
        mounts: Path = Path("/proc/self/mounts"),
        cmdline: Path = Path("/proc/cmdline"),
        lock_wait: float = 300.0,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._run = run
        self._lock_wait, self._sleep = lock_wait, sleep
        self._selftest = tuple(selftest_cmd)
        self._mounts, self._cmdline = mounts, cmdline

    def _check(self, argv: Sequence[str], what: str) -> str:
        res = self._run(argv)
        waited = 0.0
        while res.returncode != 0 and argv[0] == "dpkg" and _dpkg_locked(res) \
                and waited < self._lock_wait:
            self._sleep(5.0)  # another dpkg (apt, unattended-upgrades) is working: wait
            waited += 5.0
            res = self._run(argv)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise UpdateError(f"{what} failed ({res.returncode}): {tail[0][:160]}")
        return res.stdout or ""

    def installed_version(self) -> str | None:
        res = self._run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", PACKAGE])
        status, _, version = (res.stdout or "").strip().partition(" ")
        return version if res.returncode == 0 and status == "installed" and version else None

    def install(self, deb: Path) -> None:
        self._check(["dpkg", "--configure", "-a"], "dpkg --configure -a")
        # --force-confold: keep the technician's /etc/passgate files on every upgrade.
        self._check(["dpkg", "-i", "--force-confold", str(deb)], f"dpkg -i {deb.name}")

    def restart(self, units: Sequence[str]) -> None:
        self._check(["systemctl", "daemon-reload"], "systemctl daemon-reload")
        self._check(["systemctl", "restart", "--no-block", *units], "systemctl restart")

    def unit_state(self, unit: str) -> UnitState:
        out = self._check(["systemctl", "show", "-p", "ActiveState,SubState,NRestarts", unit],
                          f"systemctl show {unit}")
        props = dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)
        restarts = props.get("NRestarts", "0")
        return UnitState(props.get("ActiveState", "unknown"), props.get("SubState", "unknown"),
                         int(restarts) if restarts.isdigit() else 0)

    def selftest(self) -> tuple[bool, str]:
        if not self._selftest:
            return True, "no self-test configured"
        res = self._run(self._selftest)
        lines = (res.stdout + res.stderr).strip().splitlines()
        return res.returncode == 0, (lines[-1] if lines else f"exit {res.returncode}")[:160]

    def install_blocker(self) -> str | None:
        """Why nothing can be installed on this root now (None: it can)."""
        if _overlay_root(self._cmdline):
            return ("read-only root is an overlay (RAM): an install would vanish at reboot; "
                    "switch the overlay off to update (docs/technician.md, 'Updating a fleet')")
        return None

    @contextlib.contextmanager
    def writable_root(self) -> Iterator[None]:
        blocker = self.install_blocker()
        if blocker is not None:
            raise UpdateError(blocker)
        read_only = _root_read_only(self._mounts)
        if read_only:
            self._check(["mount", "-o", "remount,rw", "/"], "remount / read-write")
        try:
            yield
        finally:
            if read_only:
                self._check(["sync"], "sync")
                self._check(["mount", "-o", "remount,ro", "/"], "remount / read-only")


def _dpkg_locked(res: subprocess.CompletedProcess[str]) -> bool:
    """dpkg refused because another process holds its lock (dpkg's lib/dpkg/lock.c: "dpkg
    frontend lock was locked by another process with pid N", "unable to lock dpkg status
    database"; the unit runs with LANG unset, so in English)."""
    text = (res.stderr or "") + (res.stdout or "")
    return "locked by another process" in text or "unable to lock dpkg" in text


def _root_read_only(mounts: Path) -> bool:
    try:
        lines = mounts.read_text().splitlines()
    except OSError as exc:
        raise UpdateError(f"cannot read {mounts}: {exc}") from None
    root = [line.split() for line in lines if len(line.split()) > 3 and line.split()[1] == "/"]
    return bool(root) and "ro" in root[-1][3].split(",")  # the last mount on / is in force


def _overlay_root(cmdline: Path) -> bool:
    try:
        words = cmdline.read_text().split()
    except OSError:
        return False  # no /proc/cmdline (a container): no boot-time overlay either
    return "boot=overlay" in words or any(
        w.startswith("overlayroot=") and w != "overlayroot=disabled" for w in words
    )
