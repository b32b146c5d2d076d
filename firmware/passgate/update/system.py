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
  even when the install fails; with Raspberry Pi OS's overlay root on *this* boot an install
  would land in RAM and vanish at the next boot, so :meth:`DebianSystem.writable_root`
  refuses: the updater switches the overlay off for the next boot first
  (:meth:`DebianSystem.set_overlay`, then :meth:`DebianSystem.reboot`) and installs on the
  boot after;
- the overlay is switched the way ``setup.sh install --readonly-root/--writable-root`` does
  (deploy/state.sh ``step_overlay``): ``raspi-config nonint do_overlayfs 0|1``, with
  ``overlayroot=tmpfs`` limited to the root (``recurse=0``) when on, and any
  ``overlayroot=`` token dropped when raspi-config left one on; the boot partition is
  remounted read-write around the edit when it is mounted read-only; the result is read
  back from ``cmdline.txt`` and a switch that did not take is an :class:`UpdateError`;
- an update through the overlay needs its state folder on disk (the state partition), not
  in the overlay's RAM: otherwise the step "overlay off" would be forgotten at the reboot
  and the overlay never switched back on, so :meth:`DebianSystem.install_blocker` refuses.
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
from passgate.util.atomicfile import write_atomic

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]
PACKAGE = "passgate"
# Where Raspberry Pi OS keeps the next boot's kernel command line (deploy/state.sh PG_BOOT_DIRS).
BOOT_DIRS = (Path("/boot/firmware"), Path("/boot"))


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
    def install_blocker(self, state_dir: Path) -> str | None: ...
    def overlay_active(self) -> bool: ...
    def set_overlay(self, on: bool) -> None: ...
    def reboot(self) -> None: ...


class DebianSystem:
    """dpkg, systemctl and mount through ``run``; ``selftest_cmd`` is the quick self-test."""

    def __init__(
        self,
        run: Runner = run_command,
        selftest_cmd: Sequence[str] = (),
        mounts: Path = Path("/proc/self/mounts"),
        cmdline: Path = Path("/proc/cmdline"),
        boot_dirs: Sequence[Path] = BOOT_DIRS,
        lock_wait: float = 300.0,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._run = run
        self._lock_wait, self._sleep = lock_wait, sleep
        self._selftest = tuple(selftest_cmd)
        self._mounts, self._cmdline = mounts, cmdline
        self._boot_dirs = tuple(boot_dirs)

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

    def install_blocker(self, state_dir: Path) -> str | None:
        """Why nothing can be installed on this device (None: it can, maybe after a reboot
        with the overlay off)."""
        if not self.overlay_active():
            return None
        if self._boot_cmdline() is None:
            return ("read-only root is an overlay (RAM) and there is no cmdline.txt in "
                    + " or ".join(str(d) for d in self._boot_dirs)
                    + ": the overlay cannot be switched off for an update")
        fstype = _fs_type(self._mounts, state_dir)
        if fstype in ("overlay", "tmpfs", "ramfs", None):
            return (f"read-only root is an overlay (RAM) and the update state {state_dir} is "
                    f"on {fstype or 'an unknown file system'}, not on the state partition: it "
                    "would be forgotten at the reboot (docs/technician.md, 'Updating a fleet')")
        return None

    def overlay_active(self) -> bool:
        """The root is Raspberry Pi OS's overlay on this boot (/proc/cmdline)."""
        return _overlay_root(self._cmdline)

    def _boot_cmdline(self) -> Path | None:
        for d in self._boot_dirs:
            if (d / "cmdline.txt").is_file():
                return d / "cmdline.txt"
        return None

    def set_overlay(self, on: bool) -> None:
        """The overlay on or off from the next boot on; read back from cmdline.txt."""
        path = self._boot_cmdline()
        if path is None:
            raise UpdateError("no cmdline.txt in " + " or ".join(map(str, self._boot_dirs))
                              + ": cannot switch the overlay")
        word = "on" if on else "off"
        with self._boot_writable(path.parent):
            if not on:  # raspi-config only removes its own spelling (deploy/state.sh)
                self._rewrite_cmdline(path, "strip")
            self._check(["raspi-config", "nonint", "do_overlayfs", "0" if on else "1"],
                        f"raspi-config: overlay {word}")
            self._rewrite_cmdline(path, "add" if on else "drop")
        if _overlay_root(path) != on:
            raise UpdateError(f"the overlay is still {'off' if on else 'on'} in {path} "
                              f"after switching it {word}")

    def reboot(self) -> None:
        self._check(["sync"], "sync")
        self._check(["systemctl", "reboot"], "systemctl reboot")

    @contextlib.contextmanager
    def _boot_writable(self, folder: Path) -> Iterator[None]:
        read_only = _mount_read_only(self._mounts, str(folder))
        if read_only:
            self._check(["mount", "-o", "remount,rw", str(folder)], f"remount {folder} read-write")
        try:
            yield
        finally:
            if read_only:
                self._check(["sync"], "sync")
                self._check(["mount", "-o", "remount,ro", str(folder)],
                            f"remount {folder} read-only")

    def _rewrite_cmdline(self, path: Path, mode: str) -> None:
        try:
            old = path.read_text()
        except OSError as exc:
            raise UpdateError(f"cannot read {path}: {exc}") from None
        new = cmdline_edit(old, mode)
        if new.split() != old.split():
            try:
                write_atomic(path, (new + "\n").encode(), mode=0o644)
            except OSError as exc:
                raise UpdateError(f"cannot write {path}: {exc}") from None

    @contextlib.contextmanager
    def writable_root(self) -> Iterator[None]:
        if self.overlay_active():
            raise UpdateError("read-only root is an overlay (RAM) on this boot: an install "
                              "would vanish at reboot")
        read_only = _mount_read_only(self._mounts, "/")
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


def _mount_lines(mounts: Path) -> list[list[str]]:
    try:
        lines = mounts.read_text().splitlines()
    except OSError as exc:
        raise UpdateError(f"cannot read {mounts}: {exc}") from None
    return [f for f in (line.split() for line in lines) if len(f) > 3]


def _mount_read_only(mounts: Path, target: str) -> bool:
    here = [f for f in _mount_lines(mounts) if f[1] == target]
    return bool(here) and "ro" in here[-1][3].split(",")  # the last mount on it is in force


def _fs_type(mounts: Path, path: Path) -> str | None:
    """The file system type of the mount that holds ``path`` (None: no mount found)."""
    best: tuple[int, str] | None = None
    parts = Path(path).parts
    for f in _mount_lines(mounts):
        mp = Path(f[1]).parts
        if parts[:len(mp)] == mp and (best is None or len(mp) >= best[0]):
            best = (len(mp), f[2])  # the longest (and, among equals, the last) mount wins
    return best[1] if best else None


def cmdline_edit(line: str, mode: str) -> str:
    """deploy/state.sh ``cmdline_edit`` in Python: ``add`` puts ``recurse=0`` into every
    ``overlayroot=tmpfs`` token (overlayroot would otherwise overlay the state partition
    too), ``strip`` takes it out again, ``drop`` removes every ``overlayroot=`` token."""
    out = []
    for t in line.split():
        if t.startswith("overlayroot=") and mode == "drop":
            continue
        if (t == "overlayroot=tmpfs" or t.startswith("overlayroot=tmpfs:")) and mode != "drop":
            opts = [o for o in t[len("overlayroot=tmpfs:"):].split(",")
                    if o and not o.startswith("recurse=")]
            if mode == "add":
                opts.append("recurse=0")
            t = "overlayroot=tmpfs" + (":" + ",".join(opts) if opts else "")
        out.append(t)
    return " ".join(out)


def _overlay_root(cmdline: Path) -> bool:
    try:
        words = cmdline.read_text().split()
    except OSError:
        return False  # no /proc/cmdline (a container): no boot-time overlay either
    return "boot=overlay" in words or any(
        w.startswith("overlayroot=") and w != "overlayroot=disabled" for w in words
    )
