"""`sudo ./setup.sh install` for real, in a Debian chroot built with debootstrap.

The chroot is not a Raspberry Pi, so the hardware steps (picamera2/lgpio packages, I2C,
camera) are skipped and must be reported as skipped; everything else (packages, users,
groups, directories and their modes, the venv, config, units, watchdog) is checked, and a
second run must change nothing. Then ``--readonly-root`` with a loop device as the state
partition: fstab, the mounts, existing state moved onto it (and gone from the root
underneath), a second run changing nothing; the overlay itself is a Raspberry Pi step and
is reported as skipped. Needs root, debootstrap and access to the Debian and PyPI package
registries; skipped otherwise with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chroot_util import CHROOT_ENV, REPO, copy_source, make_root, trust_host_ca
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
        assert "skipped (not a Raspberry Pi)" in first.stderr and skipped in first.stderr

    groups = _run("chroot", str(chroot), "id", "-nG", "passgate").stdout.split()
    assert {"passgate", "video", "gpio", "i2c"} <= set(groups)
    sync_groups = _run("chroot", str(chroot), "id", "-nG", "passgate-sync").stdout.split()
    # No device groups for the network side.
    assert set(sync_groups) == {"passgate-sync", "passgate"}

    assert _owner(chroot, "/var/lib/passgate") == "passgate:passgate"
    assert _mode(chroot / "var/lib/passgate") == "0o2770"
    assert _owner(chroot, "/var/lib/passgate-sync") == "passgate-sync:passgate-sync"
    assert _mode(chroot / "var/lib/passgate-sync") == "0o700"
    config = chroot / "etc/passgate/passgate.toml"
    assert config.exists() and _mode(config) == "0o640"
    assert _owner(chroot, "/etc/passgate/passgate.toml") == "root:passgate"

    for unit in ("passgate-scanner.service", "passgate-sync.service"):
        installed = (chroot / "etc/systemd/system" / unit).read_text()
        assert installed == (REPO / "systemd" / unit).read_text()
        assert (chroot / "etc/systemd/system/multi-user.target.wants" / unit).is_symlink()
    assert (chroot / "etc/systemd/system.conf.d/passgate-watchdog.conf").exists()

    cfg = _run("chroot", str(chroot), "/opt/passgate/venv/bin/python", "-c",
               "import sys; print(sys.flags.no_site, any('dist-packages' in p for p in sys.path))")
    assert cfg.stdout.split() == ["0", "True"], "venv must see system site packages (picamera2)"
    helped = _run("chroot", str(chroot), "/opt/passgate/venv/bin/passgate", "--help")
    assert helped.returncode == 0 and "passgate" in helped.stdout
    link = chroot / "usr/local/bin/passgate"
    assert os.readlink(link) == "/opt/passgate/venv/bin/passgate"
    assert _run("chroot", str(chroot), "/usr/local/bin/passgate", "--help").returncode == 0

    again = _install(chroot)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to change" in again.stderr
    assert "changed:" not in again.stderr


def _mount(*args: str) -> Path:
    subprocess.run(["mount", *args], check=True)
    return Path(args[-1])


def test_readonly_root_moves_the_state_onto_its_partition(chroot: Path, tmp_path: Path):
    if not (chroot / "opt/passgate/venv/bin/passgate").exists():
        assert _install(chroot).returncode == 0  # run on its own: install first
    # State as a box that ran for a while has it: a journal and the device key.
    def run_as(user: str, *cmd: str) -> subprocess.CompletedProcess:
        return _run("chroot", f"--userspec={user}:{user}", str(chroot), *cmd)

    assert run_as("passgate", "sh", "-c", "umask 007; echo rows > /var/lib/passgate/journal.sqlite"
                  ).returncode == 0
    assert run_as("passgate-sync", "sh", "-c",
                  "umask 077; echo secret > /var/lib/passgate-sync/device.key").returncode == 0
    img = tmp_path / "state.img"
    img.write_bytes(b"")
    os.truncate(img, 32 * 2**20)
    assert _run("mkfs.ext4", "-q", "-L", "PGSTATE", str(img)).returncode == 0
    loop = _run("losetup", "--find", "--show", str(img), check=True).stdout.strip()
    # /dev and /sys as on a running system: mount finds the partition by its UUID through them.
    mounts = [_mount("--bind", "/dev", str(chroot / "dev")),
              _mount("-t", "sysfs", "sys", str(chroot / "sys"))]
    try:
        first = _install(chroot, "--readonly-root", "--state-device", loop)
        print(first.stderr[-2000:])
        assert first.returncode == 0, first.stderr[-3000:]
        mounts += [chroot / "var/lib/passgate-data", chroot / "var/lib/passgate",
                   chroot / "var/lib/passgate-sync"]
        assert "state moved from /var/lib/passgate (root)" in first.stderr
        assert "state moved from /var/lib/passgate-sync (root)" in first.stderr
        assert "skipped (not a Raspberry Pi): read-only root (overlay) on" in first.stderr

        uuid = _run("blkid", "-p", "-o", "value", "-s", "UUID", loop).stdout.strip()
        fstab = (chroot / "etc/fstab").read_text()
        assert f"UUID={uuid} /var/lib/passgate-data ext4 " in fstab
        data = chroot / "var/lib/passgate-data"
        for path, who, perm in (("passgate", "passgate:passgate", "0o2770"),
                                ("passgate-sync", "passgate-sync:passgate-sync", "0o700")):
            assert _owner(chroot, f"/var/lib/passgate-data/{path}") == who
            assert _mode(data / path) == perm
            source = _run("findmnt", "-n", "-o", "SOURCE", str(chroot / "var/lib" / path)).stdout
            assert source.strip() == f"{loop}[/{path}]", source  # bind mount of the partition
        assert (data / "passgate/journal.sqlite").read_text() == "rows\n"
        assert _owner(chroot, "/var/lib/passgate/journal.sqlite") == "passgate:passgate"
        key = data / "passgate-sync/device.key"
        assert key.read_text() == "secret\n" and _mode(key) == "0o600"

        # Underneath the bind mounts the root's own folders are empty: no second copy.
        under = tmp_path / "under"
        under.mkdir()
        mounts.append(_mount("--bind", str(chroot), str(under)))
        assert not any((under / "var/lib/passgate").iterdir())
        assert not any((under / "var/lib/passgate-sync").iterdir())

        # Again (the device found through fstab this time), then back to a writable root.
        for args in (("--readonly-root",), ("--writable-root",)):
            again = _install(chroot, *args)
            assert again.returncode == 0, again.stderr[-2000:]
            assert "nothing to change" in again.stderr and "changed:" not in again.stderr
        assert "read-only root (overlay) off" in again.stderr  # skipped: not a Pi
        assert (chroot / "etc/fstab").read_text() == fstab
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        _run("losetup", "-d", loop)


def test_the_venv_uses_the_system_numpy_that_debian_extensions_are_built_against(chroot: Path):
    """A numpy 2.x of pip's in the venv shadowed Bookworm's numpy 1.24 and broke apt's picamera2
    and simplejpeg ("numpy.dtype size changed"). python3-pywt stands in for them here: a Cython
    extension that Debian built against its python3-numpy (simplejpeg is not in Debian
    bookworm). It comes after passgate, as on a box whose camera packages came later, so the
    venv holds pip's numpy from the first install: the next install must remove it and pin
    numpy to the system's version for pip."""
    venv_python = "/opt/passgate/venv/bin/python"
    if not (chroot / "opt/passgate/venv/bin/passgate").exists():
        assert _install(chroot).returncode == 0  # run on its own: install first
    apt = _run("chroot", str(chroot), "sh", "-c",
               "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
               "--no-install-recommends python3-numpy python3-pywt",
               env=CHROOT_ENV, timeout=900)
    assert apt.returncode == 0, apt.stderr[-2000:]
    probe = "import numpy, pywt; pywt.dwt([1.0, 2.0, 3.0, 4.0], 'haar'); print(numpy.__file__)"
    system = _run("chroot", str(chroot), "python3", "-I", "-c",
                  "import importlib.metadata as m; print(m.version('numpy'))", env=CHROOT_ENV)
    version = system.stdout.strip()
    assert version.startswith("1."), system.stderr  # Bookworm's 1.24, as on Raspberry Pi OS

    # The fault as the field saw it: the venv's own numpy shadows the system's.
    before = _run("chroot", str(chroot), venv_python, "-c", probe, env=CHROOT_ENV)
    print(before.stdout, before.stderr[-1500:])
    shadowing = _run("chroot", str(chroot), venv_python, "-c",
                     "import numpy; print(numpy.__file__)", env=CHROOT_ENV).stdout
    assert shadowing.startswith("/opt/passgate/venv/"), shadowing
    assert before.returncode != 0, "pywt built for numpy 1.x should not import under pip's 2.x"

    fixed = _install(chroot)
    print(fixed.stderr[-3000:])
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert "numpy removed from the venv" in fixed.stderr
    constraint = chroot / "opt/passgate/venv/passgate-constraints.txt"
    assert f"numpy=={version}\n" in constraint.read_text()

    after = _run("chroot", str(chroot), venv_python, "-c", probe, env=CHROOT_ENV)
    assert after.returncode == 0, after.stderr[-2000:]
    assert "numpy.dtype size changed" not in after.stderr
    assert after.stdout.strip().startswith("/usr/lib/python3/dist-packages/numpy/")
    # passgate itself runs on the system numpy (revocation lists and frames are numpy arrays).
    uses = _run("chroot", str(chroot), venv_python, "-c",
                "import numpy, passgate.passes.revocation, passgate.passes.base45; "
                "print(numpy.__version__)", env=CHROOT_ENV)
    assert uses.returncode == 0 and uses.stdout.strip() == version, uses.stderr[-2000:]
    assert _run("chroot", str(chroot), "/usr/local/bin/passgate", "--help").returncode == 0

    again = _install(chroot)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to change" in again.stderr and "changed:" not in again.stderr
