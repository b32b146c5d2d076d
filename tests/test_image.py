"""``./setup.sh image`` for real, on small disk images built here, then first boot in a chroot.

A base image is made like a Raspberry Pi OS one: a FAT boot partition (config.txt,
cmdline.txt, and the first-boot files of the release being imitated) and an ext4 root filled
from the cached debootstrap tarball (chroot_util). It is Debian on this machine's architecture,
not Raspberry Pi OS, so the install runs in a chroot (the Raspberry Pi apt packages are not
there to add). Checked: the device file and bundle on the boot partition (read with mtools),
the host name through custom.toml (Bookworm) or cloud-init (Trixie) without losing what those
files held, passgate installed and its units enabled in the root, and the state partition
(--state-partition: PGSTATE, ext4, the root's fstab, its folders' owners); then the first-boot
unit's own command inside the image's root, with the state mounted as that fstab says: files,
modes, owners, the result file, the device file gone, the state on the partition and nothing
under it on the root. The Trixie-style image uses --stage (install at first boot): checked is
the staged source and the one-time unit. Needs root, loop devices, mtools, and the Debian and PyPI
registries; skipped otherwise with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bundle_support import Fleet
from chroot_util import CHROOT_ENV, REPO, make_root, mode, owner, run


def builds_images(test):
    """Marks for the tests that build and mount disk images."""
    for mark in (
        pytest.mark.slow,
        pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, mount, chroot)"),
        pytest.mark.skipif(shutil.which("mcopy") is None, reason="mtools not installed"),
        pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap not installed"),
        pytest.mark.skipif(not Path("/dev/loop-control").exists(), reason="no loop devices"),
    ):
        test = mark(test)
    return test


SECTOR = 512
BOOT_START, BOOT_SECTORS = 8192, 64 * 2048  # 64 MiB FAT at 4 MiB, as Raspberry Pi OS lays it out
ROOT_MB = 700  # small on purpose: the image tool must grow it for the install
HASH_KEY = bytes(range(1, 33))
TOKEN = "tok_" + "B" * 40
DEVICE = "gate_east.2"  # not a valid host name as it is: the tool makes it gate-east-2
CMDLINE = ("console=serial0,115200 root=PARTUUID=1234-02 rootwait "
           "init=/usr/lib/raspberrypi-sys-mods/firstboot\n")  # a stock image before first boot


def mtools(cmd: str, img: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    return run(cmd, "-i", f"{img}@@{BOOT_START * SECTOR}", *args, env=env)


def fat_read(img: Path, name: str) -> str:
    res = mtools("mtype", img, f"::/{name}")
    assert res.returncode == 0, res.stderr
    return res.stdout


def fat_write(img: Path, src: Path, name: str) -> None:
    assert mtools("mcopy", img, "-o", str(src), f"::/{name}").returncode == 0


def build_base(tmp: Path, rootfs: Path, name: str, boot_files: dict[str, str]) -> Path:
    """A two-partition disk image: FAT boot with ``boot_files``, ext4 root from ``rootfs``."""
    img = tmp / f"{name}.img"
    root_start = BOOT_START + BOOT_SECTORS
    with open(img, "wb") as f:
        f.truncate(root_start * SECTOR + ROOT_MB * 2**20)
    table = f"label: dos\n{BOOT_START},{BOOT_SECTORS},c\n{root_start},,83\n"
    assert run("sfdisk", "-q", str(img), input=table).returncode == 0
    res = run("mkfs.vfat", "-F", "32", "-s", "1", "-n", "bootfs", f"--offset={BOOT_START}",
              str(img), str(BOOT_SECTORS // 2))
    assert res.returncode == 0, res.stderr
    res = run("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-E", f"offset={root_start * SECTOR}",
              "-d", str(rootfs), str(img), f"{ROOT_MB}M")
    assert res.returncode == 0, res.stderr
    for fname, text in boot_files.items():
        src = tmp / f"boot-{fname}"
        src.write_text(text)
        fat_write(img, src, fname)
    return img


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rootfs") / "root"
    make_root(root)
    return root


@pytest.fixture(scope="module")
def device_files(tmp_path_factory):
    """A device file and a bundle signed for it, valid now (the tool checks with the clock)."""
    d = tmp_path_factory.mktemp("device")
    fleet = Fleet()
    (d / "passgate-bundle.bin").write_bytes(fleet.bundle(2, issued=int(time.time()) - 60))
    keys = ", ".join(f'"{k.hex()}"' for k in fleet.roots.set.keys)
    (d / "device.toml").write_text(f"""[device]
id = "{DEVICE}"
zone = "east"
[sync]
collector_url = "https://collector.example"
enrol_token = "{TOKEN}"
[trust]
bundle = "passgate-bundle.bin"
[trust.roots]
threshold = {fleet.roots.threshold}
keys = [{keys}]
[journal]
pass_hash_key = "{HASH_KEY.hex()}"
[config.display]
driver = "none"
""")
    return d


def setup_image(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    res = run(str(REPO / "setup.sh"), "image", *args, timeout=timeout)
    print(res.stderr[-4000:])
    return res


class Mounted:
    """The root partition of an image, mounted read-write through a loop device."""

    def __init__(self, img: Path, where: Path) -> None:
        self.parts = json.loads(run("sfdisk", "-J", str(img), check=True).stdout)["partitiontable"]
        self.img = img
        self.dir = where
        self.loops: list[str] = []
        self.mounts: list[Path] = []
        where.mkdir()
        self.loop = self.attach(1)
        self.mount(self.loop, str(where))

    def attach(self, index: int) -> str:
        """A loop device for partition ``index`` (0-based) of the image."""
        part = self.parts["partitions"][index]
        loop = run("losetup", "--find", "--show", "--offset", str(part["start"] * SECTOR),
                   "--sizelimit", str(part["size"] * SECTOR), str(self.img),
                   check=True).stdout.strip()
        self.loops.append(loop)
        return loop

    def mount(self, *args: str) -> None:
        run("mount", *args, check=True)
        self.mounts.append(Path(args[-1]))

    def close(self) -> None:
        for m in reversed(self.mounts):
            run("umount", str(m))
        for loop in self.loops:
            run("losetup", "-d", loop)


@builds_images
def test_bookworm_image_installs_and_provisions_at_first_boot(tmp_path, rootfs, device_files):
    (rootfs / "usr/lib/raspberrypi-sys-mods").mkdir(parents=True, exist_ok=True)
    (rootfs / "usr/lib/raspberrypi-sys-mods/init_config").write_text("#!/usr/bin/python3\n")
    base = build_base(tmp_path, rootfs, "bookworm", {
        "config.txt": "[all]\ndtoverlay=vc4-kms-v3d\n",
        "cmdline.txt": CMDLINE,
        "custom.toml": 'config_version = 1\n\n[user]\nname = "tech"\npassword = "x"\n',
    })
    out = tmp_path / "out.img"
    t0 = time.monotonic()
    res = setup_image("--base", str(base), "--config", str(device_files / "device.toml"),
                      "--out", str(out), "--bundle", str(device_files / "passgate-bundle.bin"),
                      "--host-ca", "--state-partition", "64M")
    print(f"\n  setup.sh image (chroot install): {time.monotonic() - t0:.0f} s, "
          f"{out.stat().st_size // 2**20} MiB image" if out.exists() else "")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "first-boot mechanism: custom.toml" in res.stderr and "growing the root" in res.stderr
    assert not Path(f"{out}.part").exists()

    # Boot partition, read with mtools as a technician's laptop would.
    assert fat_read(out, "passgate-device.toml") == (device_files / "device.toml").read_text()
    assert mtools("mdir", out, "-b", "::/passgate-bundle.bin").returncode == 0
    custom = tomllib.loads(fat_read(out, "custom.toml"))
    assert custom["system"]["hostname"] == "gate-east-2"
    assert custom["user"] == {"name": "tech", "password": "x"} and custom["config_version"] == 1
    config_txt = fat_read(out, "config.txt")
    assert "dtoverlay=vc4-kms-v3d" in config_txt and "dtparam=i2c_arm=on" in config_txt
    assert "camera_auto_detect=1" in config_txt

    parts = json.loads(run("sfdisk", "-J", str(out)).stdout)["partitiontable"]["partitions"]
    assert [p["type"] for p in parts] == ["c", "83", "83"]
    assert 63 * 2**20 <= parts[2]["size"] * SECTOR <= 65 * 2**20
    assert parts[2]["start"] >= parts[1]["start"] + parts[1]["size"]

    m = Mounted(out, tmp_path / "root")
    try:
        r = m.dir
        # The state partition: label, file system, and the root's fstab pointing at it.
        state = m.attach(2)
        probe = dict(line.split("=", 1) for line in run(
            "blkid", "-p", "-o", "export", state).stdout.splitlines() if "=" in line)
        assert probe["LABEL"] == "PGSTATE" and probe["TYPE"] == "ext4"
        fstab = (r / "etc/fstab").read_text()
        data = re.search(r"^UUID=(\S+) /var/lib/passgate-data ext4 (\S+) 0 2$", fstab, re.M)
        assert data and data.group(1) == probe["UUID"], fstab
        assert "nofail" in data.group(2).split(",")
        binds = re.findall(r"^(/var/lib/passgate-data/\S+) (/var/lib/\S+) none bind,\S+ 0 0$",
                           fstab, re.M)
        assert binds == [("/var/lib/passgate-data/passgate", "/var/lib/passgate"),
                         ("/var/lib/passgate-data/passgate-sync", "/var/lib/passgate-sync"),
                         ("/var/lib/passgate-data/passgate-update", "/var/lib/passgate-update")]
        m.mount(state, str(r / "var/lib/passgate-data"))
        assert owner(r, "/var/lib/passgate-data/passgate") == "passgate:passgate"
        assert mode(r / "var/lib/passgate-data/passgate") == "0o2770"
        assert owner(r, "/var/lib/passgate-data/passgate-sync") == "passgate-sync:passgate-sync"
        assert mode(r / "var/lib/passgate-data/passgate-sync") == "0o700"
        for src, dst in binds:  # as the device's boot mounts them
            m.mount("--bind", str(r / src.lstrip("/")), str(r / dst.lstrip("/")))

        assert (r / "opt/passgate/venv/bin/passgate").exists()
        for unit in ("passgate-scanner.service", "passgate-sync.service",
                     "passgate-firstboot.service"):
            assert (r / "etc/systemd/system/multi-user.target.wants" / unit).is_symlink(), unit
        assert "i2c-dev" in (r / "etc/modules").read_text()
        assert not (r / "var/tmp/passgate-src").exists()
        assert not (r / "usr/sbin/policy-rc.d").exists()
        assert not (r / "usr/local/share/ca-certificates/passgate-image-host.crt").exists()

        # First boot: the files the unit looks for, then its own command line.
        (r / "boot/firmware").mkdir(parents=True, exist_ok=True)
        for name in ("passgate-device.toml", "passgate-bundle.bin"):
            res = mtools("mcopy", out, f"::/{name}", str(r / "boot/firmware" / name))
            assert res.returncode == 0, res.stderr
        m.mount("-t", "proc", "proc", str(r / "proc"))
        unit = (r / "lib/systemd/system/passgate-firstboot.service").read_text()  # the package's
        exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
        argv = shlex.split(exec_start.removeprefix("ExecStart="))
        umask = next(line for line in unit.splitlines() if line.startswith("UMask="))[6:]
        cmd = f"umask {umask} && exec {shlex.join(argv)}"
        first = run("chroot", str(r), "sh", "-c", cmd, env=CHROOT_ENV, timeout=120)
        print(first.stdout, first.stderr[-2000:])
        assert first.returncode == 0, first.stderr[-2000:]
        assert "provisioned gate_east.2" in first.stderr  # the log line (the journal)

        assert not (r / "boot/firmware/passgate-device.toml").exists()
        assert not (r / "boot/firmware/passgate-bundle.bin").exists()
        st = r / "var/lib/passgate"
        result = json.loads((st / "provision.json").read_text())
        assert result["status"] == "provisioned" and result["device_file"] == "removed"
        assert result["bundle_version"] == 2
        expect = {
            "/var/lib/passgate/journal.key": ("passgate:passgate", "0o600"),
            "/var/lib/passgate/bundle": ("passgate:passgate", "0o2770"),
            "/var/lib/passgate/bundle/current.pgb": ("passgate:passgate", None),
            "/var/lib/passgate/provision.json": ("passgate:passgate", "0o640"),
            "/var/lib/passgate-sync": ("passgate-sync:passgate-sync", "0o700"),
            "/var/lib/passgate-sync/device.key": ("passgate-sync:passgate-sync", "0o600"),
            "/var/lib/passgate-sync/enrolment.json": ("passgate-sync:passgate-sync", "0o600"),
            "/etc/passgate/passgate.d/10-device.toml": ("root:passgate", "0o640"),
        }
        for path, (who, perm) in expect.items():
            assert owner(r, path) == who, path
            assert perm is None or mode(r / path.lstrip("/")) == perm, (path, mode(r / path[1:]))
        assert (st / "journal.key").read_bytes() == HASH_KEY
        enrol = json.loads((r / "var/lib/passgate-sync/enrolment.json").read_text())
        assert enrol["token"] == TOKEN and enrol["collector"] == "https://collector.example"

        # The scanner's user can read its config and key; a second run changes nothing.
        script = ("from passgate.config.load import load_config; "
                  "from passgate.checkpoint.wiring import read_hash_key; c = load_config(); "
                  "print(c.checkpoint.device_id, read_hash_key(c.journal.hash_key_file).hex())")
        dump = run("chroot", "--userspec=passgate:passgate", str(r),
                   "/opt/passgate/venv/bin/python", "-c", script, env=CHROOT_ENV)
        assert dump.stdout.split() == [DEVICE, HASH_KEY.hex()], dump.stderr
        for src, name in (("device.toml", "passgate-device.toml"),
                          ("passgate-bundle.bin", "passgate-bundle.bin")):
            shutil.copy(device_files / src, r / "boot/firmware" / name)
        again = run("chroot", str(r), "sh", "-c", cmd, env=CHROOT_ENV, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "already provisioned" in again.stderr and "changed:" not in again.stdout

        # The state is on the partition; on the root under the bind mounts there is nothing.
        assert (r / "var/lib/passgate-data/passgate/journal.key").read_bytes() == HASH_KEY
        assert (r / "var/lib/passgate-data/passgate-sync/device.key").is_file()
        under = tmp_path / "under"
        under.mkdir()
        m.mount("--bind", str(r), str(under))
        assert not any((under / "var/lib/passgate").iterdir())
        assert not any((under / "var/lib/passgate-sync").iterdir())
    finally:
        m.close()


@builds_images
def test_trixie_image_staged_for_first_boot(tmp_path, rootfs, device_files):
    (rootfs / "etc/cloud").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/cloud/cloud.cfg").write_text("datasource_list: [NoCloud, None]\n")
    user_data = "#cloud-config\nusers:\n  - name: tech\n    groups: sudo\n"
    base = build_base(tmp_path, rootfs, "trixie", {
        "config.txt": "[all]\n", "cmdline.txt": "console=tty1 root=PARTUUID=1-02\n",
        "user-data": user_data, "meta-data": "instance-id: rpios-image\n",
        "network-config": "network:\n  version: 2\n",
    })
    out = tmp_path / "out.img"
    t0 = time.monotonic()
    res = setup_image("--base", str(base), "--config", str(device_files / "device.toml"),
                      "--out", str(out), "--stage")
    print(f"\n  setup.sh image --stage: {time.monotonic() - t0:.0f} s")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "first-boot mechanism: cloud-init" in res.stderr and "NEEDS NETWORK" in res.stderr
    ud = fat_read(out, "user-data")
    assert ud.startswith(user_data) and "\nhostname: gate-east-2\n" in ud
    assert "manage_etc_hosts: localhost" in ud
    md = fat_read(out, "meta-data")
    assert md.startswith("instance-id: rpios-image\n") and "local-hostname: gate-east-2" in md
    assert fat_read(out, "network-config") == "network:\n  version: 2\n"
    assert mtools("mdir", out, "-b", "::/passgate-bundle.bin").returncode == 0  # from the file
    m = Mounted(out, tmp_path / "root")
    try:
        r = m.dir
        assert (r / "opt/passgate/src/setup.sh").exists()
        assert (r / "opt/passgate/src/systemd/passgate-firstboot.service").exists()
        assert not (r / "opt/passgate/venv").exists()
        unit = r / "etc/systemd/system/passgate-install-firstboot.service"
        assert "ExecStart=/opt/passgate/src/setup.sh install" in unit.read_text()
        assert (r / "etc/systemd/system/multi-user.target.wants" / unit.name).is_symlink()
    finally:
        m.close()

    # A second stamp on the result keeps the host name, and says so.
    again = setup_image("--base", str(out), "--config", str(device_files / "device.toml"),
                        "--out", str(tmp_path / "again.img"), "--stage")
    assert again.returncode == 0 and "already in user-data" in again.stderr


def test_a_bad_state_partition_size_is_refused_first(tmp_path):
    res = setup_image("--base", str(tmp_path / "none.img"), "--config", str(tmp_path / "d.toml"),
                      "--out", str(tmp_path / "o.img"), "--state-partition", "lots")
    assert res.returncode == 2 and "--state-partition lots: not a size" in res.stderr
    res = setup_image("--base", str(tmp_path / "none.img"), "--config", str(tmp_path / "d.toml"),
                      "--out", str(tmp_path / "o.img"), "--state-partition", "1M")
    assert res.returncode == 2 and "at least 16M" in res.stderr


@builds_images
def test_a_bad_device_file_writes_no_image(tmp_path, device_files):
    bad = device_files / "bad.toml"  # beside the bundle it names
    bad.write_text((device_files / "device.toml").read_text().replace(HASH_KEY.hex(), "ab"))
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 4096)
    res = setup_image("--base", str(base), "--config", str(bad), "--out", str(tmp_path / "o.img"))
    assert res.returncode == 2 and "pass_hash_key" in res.stderr
    assert not (tmp_path / "o.img").exists() and not (tmp_path / "o.img.part").exists()


# --- the image tool's decisions, without images (fast) ----------------------------------------


def image_sh(snippet: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``snippet`` with deploy/image.sh's functions loaded (as setup.sh sources it)."""
    script = (f'say() {{ echo "$*" >&2; }}; . "{REPO}/deploy/image.sh"; '
              f'IMG_PY="{sys.executable}"; {snippet}')
    return run("bash", "-c", script, "image_sh", *args)


@pytest.mark.parametrize("kind, before, expect, after", [
    ("custom.toml", "", "added", {"config_version": 1, "system": {"hostname": "gate-1"}}),
    ("custom.toml", '[system]\ntimezone = "UTC"\n[user]\nname = "t"\n', "added",
     {"config_version": 1, "system": {"hostname": "gate-1", "timezone": "UTC"},
      "user": {"name": "t"}}),
    ("custom.toml", 'config_version = 1\n[system]\nhostname = "gate-1"\n', "same", None),
    ("custom.toml", 'config_version = 1\n[system]\nhostname = "kiosk"\n', "conflict: kiosk", None),
    ("user-data", "", "added", "#cloud-config\n# passgate: the device id\nhostname: gate-1\n"
     "manage_etc_hosts: localhost\n"),
    ("user-data", "#cloud-config\nhostname: other # set by imager\n", "conflict: other", None),
    ("user-data", "#!/bin/sh\necho hi\n", "conflict: not a #cloud-config file", None),
    ("user-data", "#cloud-config\npreserve_hostname: true\n", "conflict: preserve_hostname is true",
     None),
    ("meta-data", "instance-id: x\n", "added", "instance-id: x\n# passgate: the device id\n"
     "local-hostname: gate-1\n"),
    ("meta-data", "", "added", "# passgate: the device id\nlocal-hostname: gate-1\n"
     "instance-id: passgate-gate-1\n"),
])
def test_host_name_merge(tmp_path, kind, before, expect, after):
    f = tmp_path / kind
    f.write_text(before)
    res = image_sh('img_merge_hostname "$1" "$2" gate-1', kind, str(f))
    assert res.stdout.strip() == expect, res.stderr
    text = f.read_text()
    if after is None:
        assert text == before  # never rewritten unless added
    elif kind == "custom.toml":
        assert tomllib.loads(text) == after
    else:
        assert text == after


def test_architecture_of_a_root(tmp_path):
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text("Package: base-files\nArchitecture: arm64\n\n"
                      "Package: dpkg\nStatus: install ok installed\nArchitecture: arm64\n")
    assert image_sh('img_arch "$1"', str(tmp_path)).stdout.strip() == "arm64"
    assert image_sh("img_qemu_ready riscv64 || echo no").stdout.strip() == "no"
