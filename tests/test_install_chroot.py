"""`sudo ./setup.sh install` for real, in a Debian chroot built with debootstrap.

One install path: the install builds the Debian package from the checkout (or takes the one
given with ``--deb``) and installs it with apt-get; the package's maintainer scripts make the
users, groups and folders. The chroot is not a Raspberry Pi, so the hardware steps
(picamera2/lgpio packages, I2C, camera) are skipped and must be reported as skipped;
everything else (the package in dpkg's database at the checkout's version, users, groups,
folders and their modes, the venv on Debian's numpy, config, units enabled, watchdog) is
checked, and a second run, which builds again, must change nothing (the build is
reproducible). In a second root: an install by the old rsync+pip path is cleared away, a
package whose maintainer script fails is never reported as installed (not on a re-run
either) and a good package repairs it. Then ``--readonly-root`` with a loop device as the
state partition: fstab, the mounts, existing state moved onto it (and gone from the root
underneath), a second run changing nothing; the overlay itself is a Raspberry Pi step and
is reported as skipped. Needs root, debootstrap and access to the Debian and PyPI package
registries; skipped otherwise with the reason.
"""

from __future__ import annotations

import os
import re
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
    # A package build (wheels fetched, xz) in the first test's setup: more than the default.
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mount, useradd)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap not installed"),
]

VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
ARCH = _run("dpkg", "--print-architecture").stdout.strip()
DEB = f"/src/dist/passgate_{VERSION}_{ARCH}.deb"  # where the install builds it, in the root


def _root(tmp_path_factory, name: str):
    root = tmp_path_factory.mktemp(name) / "root"
    make_root(root)
    trust_host_ca(root)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    copy_source(root / "src")
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    return root


@pytest.fixture(scope="module")
def chroot(tmp_path_factory):
    root = _root(tmp_path_factory, "chroot")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def _install(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    return _run("chroot", str(root), "/src/setup.sh", "install", *args, env=env, timeout=1800)


def _dpkg(root: Path) -> str:
    return _run("chroot", str(root), "dpkg-query", "-W", "-f=${db:Status-Status} ${Version}",
                "passgate").stdout.strip()


def _succeeded(res: subprocess.CompletedProcess) -> bool:
    return "done:" in res.stderr or "nothing to change" in res.stderr


def test_install_builds_and_installs_the_package(chroot: Path):
    dry = _install(chroot, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert f"setup.sh package --arch {ARCH} --out /src/dist" in dry.stdout
    assert re.search(r"would run: .*apt-get install .*/src/dist/passgate_", dry.stdout), dry.stdout
    assert not (chroot / "opt/passgate").exists(), "--dry-run must change nothing"
    assert _dpkg(chroot) in ("", "not-installed")

    first = _install(chroot)
    print(first.stderr[-3000:])
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"changed: package passgate {VERSION} installed" in first.stderr
    for skipped in ("python3-picamera2", "do_i2c", "camera_auto_detect"):
        assert "skipped (not a Raspberry Pi)" in first.stderr and skipped in first.stderr
    assert _dpkg(chroot) == f"installed {VERSION}"
    assert (chroot / DEB.lstrip("/")).exists()

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
        installed = (chroot / "lib/systemd/system" / unit).read_text()
        assert installed == (REPO / "systemd" / unit).read_text()
        wants = chroot / "etc/systemd/system/multi-user.target.wants" / unit
        assert os.readlink(wants) == f"/lib/systemd/system/{unit}"
        assert not (chroot / "etc/systemd/system" / unit).exists()  # no copy beside the package
    assert (chroot / "lib/systemd/system.conf.d/passgate-watchdog.conf").exists()
    assert not (chroot / "opt/passgate/src").exists()
    assert not (chroot / "usr/local/bin/passgate").exists()

    cfg = _run("chroot", str(chroot), "/opt/passgate/venv/bin/python", "-c",
               "import sys; print(sys.flags.no_site, any('dist-packages' in p for p in sys.path))")
    assert cfg.stdout.split() == ["0", "True"], "venv must see system site packages (picamera2)"
    shown = _run("chroot", str(chroot), "/usr/bin/passgate", "--version")
    assert shown.stdout.strip() == f"passgate {VERSION}", shown.stderr[-2000:]

    again = _install(chroot)  # builds again: the same files, so nothing to do
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to change" in again.stderr
    assert "changed:" not in again.stderr
    given = _install(chroot, "--deb", DEB)
    assert given.returncode == 0 and "nothing to change" in given.stderr, given.stderr[-2000:]


def test_the_venv_uses_debians_numpy_that_debian_extensions_are_built_against(chroot: Path):
    """A numpy of pip's in the venv once shadowed Bookworm's numpy 1.24 and broke apt's
    picamera2 and simplejpeg ("numpy.dtype size changed"). The package has no numpy (not in
    the lock) and depends on python3-numpy: python3-pywt, a Cython extension Debian built
    against its numpy, stands in for the camera packages and imports in the venv."""
    if _dpkg(chroot) != f"installed {VERSION}":
        assert _install(chroot).returncode == 0  # run on its own: install first
    apt = _run("chroot", str(chroot), "sh", "-c",
               "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
               "python3-pywt", env=CHROOT_ENV, timeout=900)
    assert apt.returncode == 0, apt.stderr[-2000:]
    probe = ("import numpy, pywt, passgate.passes.revocation; "
             "pywt.dwt([1.0, 2.0, 3.0, 4.0], 'haar'); print(numpy.__file__, numpy.__version__)")
    res = _run("chroot", str(chroot), "/opt/passgate/venv/bin/python", "-c", probe,
               env=CHROOT_ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    where, version = res.stdout.split()
    assert where.startswith("/usr/lib/python3/dist-packages/numpy/") and version.startswith("1.")
    assert not list((chroot / "opt/passgate/venv").rglob("numpy/__init__.py"))


def _repack(root: Path, deb: Path, out: Path, version: str, postinst_fails: bool) -> Path:
    """The package as another version, its postinst failing if asked (a broken release)."""
    work = out.parent / f"repack-{version}"
    _run("dpkg-deb", "-R", str(deb), str(work), check=True)
    control = work / "DEBIAN/control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(),
                              flags=re.M))
    if postinst_fails:
        post = work / "DEBIAN/postinst"
        text = post.read_text().replace("set -e\n", "set -e\necho broken >&2; exit 1\n", 1)
        post.write_text(text)
    _run("dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(work), str(out), check=True)
    shutil.rmtree(work)
    return out


def test_old_install_cleared_and_a_failed_install_never_reports_success(chroot: Path,
                                                                         tmp_path_factory):
    deb = chroot / DEB.lstrip("/")
    if not deb.exists():
        assert _install(chroot).returncode == 0
    root = _root(tmp_path_factory, "chroot-fail")
    try:
        # What the old rsync+pip path left: its source, venv, link and copies of the units.
        for rel in ("opt/passgate/src/setup.sh", "opt/passgate/venv/bin/python"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("old\n")
        (root / "usr/local/bin").mkdir(parents=True, exist_ok=True)
        os.symlink("/opt/passgate/venv/bin/passgate", root / "usr/local/bin/passgate")
        old_unit = root / "etc/systemd/system/passgate-scanner.service"
        old_unit.write_text((REPO / "systemd/passgate-scanner.service").read_text())
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        os.symlink("/etc/systemd/system/passgate-scanner.service",
                   wants / "passgate-scanner.service")
        dist = root / "var/tmp"
        shutil.copy(deb, dist / deb.name)
        good = f"/var/tmp/{deb.name}"
        first = _install(root, "--deb", good)
        print(first.stderr[-3000:])
        assert first.returncode == 0, first.stderr[-3000:]
        assert "changed: the old install (rsync+pip) cleared away" in first.stderr
        assert not (root / "opt/passgate/src").exists() and not old_unit.exists()
        assert not (root / "usr/local/bin/passgate").is_symlink()
        assert os.readlink(wants / "passgate-scanner.service") == \
            "/lib/systemd/system/passgate-scanner.service"
        assert _dpkg(root) == f"installed {VERSION}"

        # Refused before anything: not a package at all.
        (dist / "cut.deb").write_bytes(deb.read_bytes()[:4096])
        cut = _install(root, "--deb", "/var/tmp/cut.deb")
        assert cut.returncode == 2 and not _succeeded(cut), cut.stderr[-1000:]
        assert "not a passgate package" in cut.stderr

        # A release whose postinst fails: apt-get fails, and the install says so, every time.
        newer = VERSION + ".1"
        _repack(root, deb, dist / "broken.deb", newer, postinst_fails=True)
        for _ in range(2):
            bad = _install(root, "--deb", "/var/tmp/broken.deb")
            print(bad.stderr[-1500:])
            assert bad.returncode != 0 and not _succeeded(bad), bad.stderr[-2000:]
            assert "install: apt-get could not install" in bad.stderr
            assert _dpkg(root) != f"installed {newer}"
        # The good package repairs it (the half-installed newer one may be replaced).
        fixed = _install(root, "--deb", good)
        assert fixed.returncode == 0, fixed.stderr[-2000:]
        assert _dpkg(root) == f"installed {VERSION}"
        # Once installed, an older package is refused, not a silent downgrade.
        _repack(root, deb, dist / "newer.deb", newer, postinst_fails=False)
        assert _install(root, "--deb", "/var/tmp/newer.deb").returncode == 0
        older = _install(root, "--deb", good)
        assert older.returncode == 2 and "not downgraded" in older.stderr
        assert _dpkg(root) == f"installed {newer}"
        # The checkout is older than what the fleet installed since: the package is kept
        # (nothing built or downgraded) and the Pi steps still run (--readonly-root later).
        kept = _install(root)
        assert kept.returncode == 0, kept.stderr[-2000:]
        assert f"passgate {newer} is installed, newer than this checkout's" in kept.stderr
        assert "nothing to change" in kept.stderr and _dpkg(root) == f"installed {newer}"
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def _mount(*args: str) -> Path:
    subprocess.run(["mount", *args], check=True)
    return Path(args[-1])


def test_readonly_root_moves_the_state_onto_its_partition(chroot: Path, tmp_path: Path):
    if _dpkg(chroot) != f"installed {VERSION}":
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
        # The package as built above (--deb): only the state steps have work to do.
        first = _install(chroot, "--deb", DEB, "--readonly-root", "--state-device", loop)
        print(first.stderr[-2000:])
        # Unmounted at the end even when the install fails half-way (a loop device left
        # mounted carries the PGSTATE label into every later test on this machine).
        mounts += [chroot / "var/lib/passgate-data", chroot / "var/lib/passgate",
                   chroot / "var/lib/passgate-sync", chroot / "var/lib/passgate-update"]
        assert first.returncode == 0, first.stderr[-3000:]
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
            again = _install(chroot, "--deb", DEB, *args)
            assert again.returncode == 0, again.stderr[-2000:]
            assert "nothing to change" in again.stderr and "changed:" not in again.stderr
        assert "read-only root (overlay) off" in again.stderr  # skipped: not a Pi
        assert (chroot / "etc/fstab").read_text() == fstab
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        _run("losetup", "-d", loop)
