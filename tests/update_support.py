"""Fakes for the updater tests: a dpkg database and a service manager that answer the
commands :class:`passgate.update.system.DebianSystem` runs, a power switch, a release folder.

A fake package is a small file ``FAKEDEB <version> <healthy|broken|badinstall>``: installing
it sets the dpkg database; once its services start, a ``broken`` one never reaches READY, a
``badinstall`` one makes ``dpkg -i`` fail half-way.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from passgate.errors import UpdateError


class PowerCut(BaseException):
    """The power went: nothing after this command runs (not an Exception: nobody catches it)."""


def fake_deb(version: str, kind: str = "healthy") -> bytes:
    return f"FAKEDEB {version} {kind}\n".encode() + b"\0" * 64


@dataclass
class Machine:
    """What survives a power cut: the dpkg database and the cache on disk (the tests' tmp)."""

    installed: str | None = "0.1.0"
    kind: str = "healthy"
    half: tuple[str, str] | None = None  # (version, kind) unpacked, not configured
    running: str | None = None  # version the services run (None: stopped / booting)
    root_rw: bool = False
    log: list[str] = field(default_factory=list)
    cut_at: int | None = None  # power cut before the n-th command (1-based)
    calls: int = 0
    root_ro_at_boot: bool = True  # / is mounted read-only at boot (False: rw, or the overlay)
    boot_cmdline: Path | None = None  # cmdline.txt on the boot partition: the next boot's
    proc_cmdline: Path | None = None  # /proc/cmdline: this boot's
    reboots_asked: int = 0  # systemctl reboot since the last boot

    def boot(self) -> None:
        """A reboot: services start from whatever dpkg holds, if it is configured; the kernel
        command line is what cmdline.txt says (the overlay on or off)."""
        self.cut_at, self.root_rw, self.reboots_asked = None, not self.root_ro_at_boot, 0
        self.running = self.installed if self.half is None else None
        if self.boot_cmdline is not None and self.proc_cmdline is not None:
            self.proc_cmdline.write_text(self.boot_cmdline.read_text())

    @property
    def overlay_next_boot(self) -> bool:
        assert self.boot_cmdline is not None
        return "boot=overlay" in self.boot_cmdline.read_text().split()

    @property
    def overlay_now(self) -> bool:
        assert self.proc_cmdline is not None
        return "boot=overlay" in self.proc_cmdline.read_text().split()

    def run(self, argv: Sequence[str]) -> subprocess.CompletedProcess:
        self.calls += 1
        cmd = " ".join(argv)
        self.log.append(cmd)
        if self.cut_at is not None and self.calls >= self.cut_at:
            if argv[:2] == ["dpkg", "-i"]:
                self.half = _read(Path(argv[-1]))  # cut inside dpkg: unpacked, not configured
                self.installed = None
            raise PowerCut(cmd)
        return self._answer(list(argv))

    def _answer(self, argv: list[str]) -> subprocess.CompletedProcess:
        def ok(out: str = "", rc: int = 0, err: str = "") -> subprocess.CompletedProcess:
            return subprocess.CompletedProcess(argv, rc, out, err)

        if argv[0] == "dpkg-query":
            if self.installed is None:
                return ok("half-configured " if self.half else "", 1 if not self.half else 0)
            return ok(f"installed {self.installed}")
        if argv[:2] == ["dpkg", "--configure"]:
            if self.half is not None:
                self.installed, self.kind = self.half
                self.half = None
            return ok()
        if argv[:2] == ["dpkg", "-i"]:
            if not self.root_rw:
                return ok(rc=2, err="dpkg: error: read-only file system")
            version, kind = _read(Path(argv[-1]))
            if kind == "badinstall":
                self.installed, self.half = None, (version, kind)
                return ok(rc=1, err="dpkg: error processing package passgate (--install)")
            self.installed, self.kind, self.half = version, kind, None
            return ok()
        if argv[:2] == ["systemctl", "daemon-reload"]:
            return ok()
        if argv[:2] == ["systemctl", "restart"]:
            self.running = self.installed
            return ok()
        if argv[:2] == ["systemctl", "show"]:
            if self.running is not None and self.kind == "healthy":
                return ok("ActiveState=active\nSubState=running\nNRestarts=0\n")
            return ok("ActiveState=activating\nSubState=auto-restart\nNRestarts=3\n")
        if argv[:3] == ["mount", "-o", "remount,rw"] and argv[3:] == ["/"]:
            self.root_rw = True
            return ok()
        if argv[:3] == ["mount", "-o", "remount,ro"] and argv[3:] == ["/"]:
            self.root_rw = False
            return ok()
        if argv[0] == "mount" and argv[1:3] in (["-o", "remount,rw"], ["-o", "remount,ro"]):
            return ok()  # the boot partition (raspi-config's read-only /boot)
        if argv[:3] == ["raspi-config", "nonint", "do_overlayfs"] and self.boot_cmdline:
            # Bookworm's raspi-config: 0 is on (boot=overlay), 1 is off.
            words = [w for w in self.boot_cmdline.read_text().split() if w != "boot=overlay"]
            if argv[3] == "0":
                words.insert(0, "boot=overlay")
            self.boot_cmdline.write_text(" ".join(words) + "\n")
            return ok()
        if argv[:2] == ["systemctl", "reboot"]:
            self.reboots_asked += 1
            return ok()
        if argv[0] in ("sync", "selftest"):
            return ok("all checks passed")
        raise AssertionError(f"unexpected command {argv}")


def _read(path: Path) -> tuple[str, str]:
    head = path.read_bytes().split(b"\n")[0].decode().split()
    return head[1], head[2]


class FolderSource:
    """The collector, as a folder of release files and a target version."""

    def __init__(self, folder: Path, target: str | None) -> None:
        self.folder, self.target_version = folder, target
        self.fetched: list[str] = []
        self.down = False

    def target(self, installed: str | None) -> str | None:
        if self.down:
            raise UpdateError("collector unreachable: connection refused")
        return self.target_version

    def fetch(self, name: str, cap: int) -> bytes:
        if self.down:
            raise UpdateError("collector unreachable: connection refused")
        self.fetched.append(name)
        path = self.folder / name
        if not path.exists():
            raise UpdateError(f"collector: /v1/release/files/{name}: HTTP 404")
        data = path.read_bytes()
        if len(data) > cap:
            raise UpdateError(f"collector: {name}: reply over {cap} bytes")
        return data


class FakeClock:
    def __init__(self, start: float) -> None:
        self.t = start

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
