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

    def boot(self) -> None:
        """A reboot: services start from whatever dpkg holds, if it is configured."""
        self.cut_at, self.root_rw = None, False
        self.running = self.installed if self.half is None else None

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
        if argv[:3] == ["mount", "-o", "remount,rw"]:
            self.root_rw = True
            return ok()
        if argv[:3] == ["mount", "-o", "remount,ro"]:
            self.root_rw = False
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
