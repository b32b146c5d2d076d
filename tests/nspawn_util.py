"""Boot a Debian root under real systemd with systemd-nspawn, and run commands inside it.

``systemd-nspawn -D ROOT -b --register=no --keep-unit``: plain ``-b`` fails on these
machines with "Failed to open system bus" (no machined); ``--register=no`` also means no
``machinectl``, so commands run through ``nsenter`` into the container's namespaces, found
from the PID of its init. The container shares the host's network, so a collector on
127.0.0.1 is reachable from inside. The root with systemd installed is cached as a tarball
beside the minimal one (``chroot_util``), so only the first run on a machine pays for apt.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from chroot_util import CACHE_DIR, CHROOT_ENV, make_root, run, trust_host_ca

SYSTEMD_CACHE = CACHE_DIR / "bookworm-systemd.tar"
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates")


def make_systemd_root(root: Path) -> None:
    """A Debian root with systemd in ``root`` (created), from the cache when there is one."""
    if SYSTEMD_CACHE.exists():
        root.mkdir(parents=True)
        run("tar", "-xf", str(SYSTEMD_CACHE), "-C", str(root), check=True)
        return
    make_root(root)
    trust_host_ca(root)
    (root / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
    chroot(root, "apt-get", "update", "-qq", timeout=900)
    res = chroot(root, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 *BOOT_PACKAGES, timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]
    part = SYSTEMD_CACHE.with_suffix(".tar.part")
    run("tar", "-cf", str(part), "-C", str(root), ".", check=True)
    part.replace(SYSTEMD_CACHE)


def chroot(root: Path, *cmd: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(CHROOT_ENV, DEBIAN_FRONTEND="noninteractive")
    return run("chroot", str(root), *cmd, env=env, timeout=timeout)


class Container:
    """A booted root; :meth:`sh` runs a shell command inside it."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root, self.log = root, log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(root), "-b", "--register=no", "--keep-unit",
             "--quiet"], stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.leader = self._find_leader()

    def _find_leader(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kids = run("pgrep", "-P", str(self.proc.pid)).stdout.split()
            if kids:
                return int(kids[0])
            if self.proc.poll() is not None:
                raise AssertionError(f"nspawn exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise AssertionError("the container's init never started")

    def sh(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return run("nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-p", "--",
                   "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in CHROOT_ENV.items()),
                   "/bin/sh", "-c", script, timeout=timeout)

    def wait_for(self, script: str, timeout: float = 120, every: float = 0.5) -> str:
        """Run ``script`` until it exits 0; its output. Fails with the last output."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.sh(script)
            if res.returncode == 0:
                return res.stdout
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: {script}: {res.stdout}{res.stderr}")
            time.sleep(every)

    def prop(self, unit: str, name: str) -> str:
        return self.sh(f"systemctl show -p {name} --value {unit}").stdout.strip()

    def close(self) -> None:
        self.sh("systemctl poweroff --no-block", timeout=30)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._out.close()
