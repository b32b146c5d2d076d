"""`sudo ./setup.sh install` for real, in a Debian chroot built with debootstrap.

The chroot is not a Raspberry Pi, so the hardware steps (picamera2/lgpio packages, I2C,
camera) are skipped and must be reported as skipped; everything else (packages, users,
groups, directories and their modes, the venv, config, units, watchdog) is checked, and a
second run must change nothing. Needs root, debootstrap and access to the Debian and PyPI
package registries; skipped otherwise with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chroot_util import REPO, copy_source, make_root, trust_host_ca
from chroot_util import mode as _mode
from chroot_util import owner as _owner
from chroot_util import run as _run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mount, useradd)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap not installed"),
]


@pytest.fixture(scope="module")
def chroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("chroot") / "root"
    make_root(root)
    trust_host_ca(root)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    copy_source(root / "src")
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def _install(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    return _run("chroot", str(root), "/src/setup.sh", "install", *args, env=env, timeout=1200)


def test_install_in_a_debian_chroot(chroot: Path):
    dry = _install(chroot, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "would run: useradd" in dry.stdout
    assert not (chroot / "opt/passgate/venv").exists(), "--dry-run must change nothing"

    first = _install(chroot)
    print(first.stderr[-3000:])
    assert first.returncode == 0, first.stderr[-3000:]
    for skipped in ("python3-picamera2", "do_i2c", "camera_auto_detect"):
        assert f"skipped (not a Raspberry Pi)" in first.stderr and skipped in first.stderr

    groups = _run("chroot", str(chroot), "id", "-nG", "passgate").stdout.split()
    assert {"passgate", "video", "gpio", "i2c"} <= set(groups)
    sync_groups = _run("chroot", str(chroot), "id", "-nG", "passgate-sync").stdout.split()
    assert set(sync_groups) == {"passgate-sync", "passgate"}  # no device groups for the network side

    assert _owner(chroot, "/var/lib/passgate") == "passgate:passgate"
    assert _mode(chroot / "var/lib/passgate") == "0o2770"
    assert _owner(chroot, "/var/lib/passgate-sync") == "passgate-sync:passgate-sync"
    assert _mode(chroot / "var/lib/passgate-sync") == "0o700"
    config = chroot / "etc/passgate/passgate.toml"
    assert config.exists() and _mode(config) == "0o640"
    assert _owner(chroot, "/etc/passgate/passgate.toml") == "root:passgate"

    for unit in ("passgate-scanner.service", "passgate-sync.service"):
        assert (chroot / "etc/systemd/system" / unit).read_text() == (REPO / "systemd" / unit).read_text()
        assert (chroot / "etc/systemd/system/multi-user.target.wants" / unit).is_symlink()
    assert (chroot / "etc/systemd/system.conf.d/passgate-watchdog.conf").exists()

    cfg = _run("chroot", str(chroot), "/opt/passgate/venv/bin/python", "-c",
               "import sys; print(sys.flags.no_site, any('dist-packages' in p for p in sys.path))")
    assert cfg.stdout.split() == ["0", "True"], "venv must see system site packages (picamera2)"
    helped = _run("chroot", str(chroot), "/opt/passgate/venv/bin/passgate", "--help")
    assert helped.returncode == 0 and "passgate" in helped.stdout

    again = _install(chroot)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to change" in again.stderr
    assert "changed:" not in again.stderr
