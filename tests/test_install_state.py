"""The state partition and the read-only root of ``setup.sh install`` (deploy/state.sh), fast.

No chroot and no image: ``--dry-run`` on this machine (with a small ext4 loop device as the
state partition where root and loop devices are available), deploy/state.sh's functions on
temporary files, a stand-in ``raspi-config`` that edits cmdline.txt the way the real one does,
and systemd's own fstab generator and manager (``systemd --test``) to show that the units wait
for the mounts the installer writes. The chroot test (test_install_chroot.py) runs the real
thing; the overlay on a real Pi is not run here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from chroot_util import REPO, run

STATE_UNITS = {
    "passgate-scanner.service": ["var-lib-passgate.mount"],
    "passgate-sync.service": ["var-lib-passgate.mount", "var-lib-passgate\\x2dsync.mount"],
    "passgate-firstboot.service": ["var-lib-passgate.mount", "var-lib-passgate\\x2dsync.mount"],
}
needs_loop = pytest.mark.skipif(os.geteuid() != 0 or not Path("/dev/loop-control").exists(),
                                reason="needs root and loop devices")


def install_sh(snippet: str, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    """Run ``snippet`` with deploy/install.sh (and state.sh) loaded, as setup.sh loads them."""
    script = (f'set -euo pipefail; HERE="{REPO}"; say() {{ printf "setup: %s\\n" "$*" >&2; }}; '
              f'missing_packages() {{ :; }}; . "{REPO}/deploy/install.sh"; {snippet}')
    env = {**os.environ, "PATH": f"{path}:{os.environ['PATH']}" if path else os.environ["PATH"]}
    return run("bash", "-c", script, "install_sh", *args, env=env)


def setup_install(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{path}:{os.environ['PATH']}" if path else os.environ["PATH"]}
    return run(str(REPO / "setup.sh"), "install", *args, env=env)


def fstab_digest() -> str:
    return hashlib.sha256(Path("/etc/fstab").read_bytes()).hexdigest()


@pytest.fixture
def no_blkid_match(tmp_path):
    """A ``blkid`` that finds nothing, so no PGSTATE on this machine can interfere."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "blkid").write_text("#!/bin/sh\nexit 2\n")
    (bin_dir / "blkid").chmod(0o755)
    return str(bin_dir)


@pytest.fixture
def loop_device(tmp_path):
    """Attach a 16 MiB image as a loop device; the test makes its file system."""
    img = tmp_path / "state.img"
    img.write_bytes(b"")
    os.truncate(img, 16 * 2**20)
    dev = run("losetup", "--find", "--show", str(img), check=True).stdout.strip()
    try:
        yield dev
    finally:
        run("losetup", "-d", dev)


# ---- refusals: one line, before anything is done --------------------------------------------


def test_readonly_root_without_a_state_partition_is_refused(no_blkid_match):
    res = setup_install("--readonly-root", "--dry-run", path=no_blkid_match)
    assert res.returncode == 2
    assert res.stdout == "", "refused before any step (no 'would run' line)"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "partition labelled PGSTATE" in lines[0]
    assert "--state-partition" in lines[0] and "mkfs.ext4 -L PGSTATE" in lines[0]


def test_bad_option_combinations_are_refused():
    res = setup_install("--readonly-root", "--writable-root", "--dry-run")
    assert res.returncode == 2 and "not both" in res.stderr
    res = setup_install("--state-device", "/dev/null", "--dry-run")
    assert res.returncode == 2 and "not a block device" in res.stderr and res.stdout == ""


@needs_loop
@pytest.mark.parametrize("mkfs, found", [(None, "no"), (["mkfs.vfat"], "vfat")])
def test_a_state_device_without_ext4_is_refused(loop_device, mkfs, found):
    if mkfs:
        run(*mkfs, loop_device, check=True)
    res = setup_install("--readonly-root", "--state-device", loop_device, "--dry-run")
    assert res.returncode == 2 and res.stdout == ""
    assert f"holds {found} file system, not ext4" in res.stderr
    assert f"mkfs.ext4 -L PGSTATE {loop_device}" in res.stderr


# ---- --dry-run with a real state device -----------------------------------------------------


@needs_loop
def test_dry_run_with_a_state_device_shows_fstab_mounts_and_changes_nothing(loop_device):
    run("mkfs.ext4", "-q", "-L", "PGSTATE", loop_device, check=True)
    uuid = run("blkid", "-p", "-o", "value", "-s", "UUID", loop_device).stdout.strip()
    before = fstab_digest()
    res = setup_install("--readonly-root", "--state-device", loop_device, "--dry-run")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "would write to /etc/fstab:" in out
    data = re.search(rf"^\s+UUID={uuid} /var/lib/passgate-data ext4 (\S+) 0 2$", out, re.M)
    assert data, out
    opts = data.group(1).split(",")
    assert {"noatime", "commit=5", "nofail"} <= set(opts)
    for src, dst in (("passgate", "passgate"), ("passgate-sync", "passgate-sync"),
                     ("passgate-update", "passgate-update")):
        assert re.search(rf"^\s+/var/lib/passgate-data/{src} /var/lib/{dst} none bind,\S*"
                         r"x-systemd.requires-mounts-for=/var/lib/passgate-data\S* 0 0$", out, re.M)
    for line in ("would run: mount /var/lib/passgate-data",
                 "would run: install -d -o passgate -g passgate -m 2770 "
                 "/var/lib/passgate-data/passgate",
                 "would run: install -d -o passgate-sync -g passgate-sync -m 0700 "
                 "/var/lib/passgate-data/passgate-sync",
                 "would run: install -d -o root -g root -m 0755 "
                 "/var/lib/passgate-data/passgate-update",
                 "would run: mount /var/lib/passgate\n", "would run: mount /var/lib/passgate-sync",
                 "would run: mount /var/lib/passgate-update"):
        assert line in out, line
    assert "skipped (not a Raspberry Pi): read-only root (overlay) on" in res.stderr
    assert fstab_digest() == before
    assert not Path("/var/lib/passgate-data").exists()

    # Found by its label when no device is named: the same partition.
    auto = setup_install("--readonly-root", "--dry-run")
    assert auto.returncode == 0 and f"UUID={uuid} /var/lib/passgate-data" in auto.stdout


@needs_loop
def test_a_new_state_device_is_refused_while_the_state_is_on_another(loop_device, tmp_path):
    """The state partition in use is not swapped for an empty one (the state would stay behind:
    the bind mounts are there, so nothing would be moved)."""
    run("mkfs.ext4", "-q", "-L", "PGSTATE", loop_device, check=True)
    img = tmp_path / "new.img"
    img.write_bytes(b"")
    os.truncate(img, 16 * 2**20)
    new = run("losetup", "--find", "--show", str(img), check=True).stdout.strip()
    data = tmp_path / "data"
    data.mkdir()
    try:
        run("mkfs.ext4", "-q", new, check=True)
        run("mount", loop_device, str(data), check=True)
        try:
            # PG_DATA is a scratch folder here; the rest of the install is only looked at.
            base = f'PG_DATA="{data}"; install_main --dry-run --state-device '
            res = install_sh(base + new)
            assert res.returncode == 2, res.stderr
            assert res.stdout == "", "refused before any step (no 'would run' line)"
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1, res.stderr
            assert f"state lives on {loop_device}" in lines[0] and new in lines[0]
            assert "rsync" in lines[0]
            # Control: the partition that is mounted there is accepted, and not mounted again.
            same = install_sh(base + loop_device)
            assert same.returncode == 0, same.stderr
            assert f"would run: mount {data}\n" not in same.stdout
        finally:
            run("umount", str(data))
    finally:
        run("losetup", "-d", new)


# ---- the fstab block ------------------------------------------------------------------------


def test_fstab_block_is_added_replaced_and_found(tmp_path):
    fstab = tmp_path / "fstab"
    head = "proc /proc proc defaults 0 0\nPARTUUID=1-02 / ext4 defaults,noatime 0 1\n"
    tail = "tmpfs /tmp tmpfs defaults 0 0\n"
    fstab.write_text(head)
    res = install_sh('fstab_write_block "$1" aaaa; fstab_state_uuid "$1"', str(fstab))
    assert res.stdout.strip() == "aaaa", res.stderr
    fstab.write_text(fstab.read_text() + tail)  # something added after our block
    res = install_sh('fstab_write_block "$1" bbbb; fstab_state_uuid "$1"; '
                     '[ "$(fstab_block "$1")" = "$(state_fstab_block bbbb)" ] && echo same',
                     str(fstab))
    assert res.stdout.split() == ["bbbb", "same"], res.stderr
    text = fstab.read_text()
    assert text.startswith(head) and text.endswith(tail)
    assert "aaaa" not in text and text.count("# >>> passgate state partition") == 1
    assert oct(fstab.stat().st_mode & 0o777) == "0o644"
    # Real fstab syntax: six fields on every line that is not a comment.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert len(line.split()) == 6, line


# ---- cmdline.txt and the overlay ------------------------------------------------------------


@pytest.mark.parametrize("mode, before, after", [
    ("add", "overlayroot=tmpfs console=tty1 root=PARTUUID=1-02 rootwait",
     "overlayroot=tmpfs:recurse=0 console=tty1 root=PARTUUID=1-02 rootwait"),
    ("add", "overlayroot=tmpfs:recurse=0 console=tty1", "overlayroot=tmpfs:recurse=0 console=tty1"),
    ("add", "console=tty1 overlayroot=tmpfs:swap=1,recurse=1 quiet",
     "console=tty1 overlayroot=tmpfs:swap=1,recurse=0 quiet"),
    ("add", "boot=overlay console=tty1", "boot=overlay console=tty1"),  # Bookworm: fstab untouched
    ("add", "console=tty1  rootwait", "console=tty1 rootwait"),
    ("strip", "overlayroot=tmpfs:recurse=0 console=tty1", "overlayroot=tmpfs console=tty1"),
    ("strip", "overlayroot=tmpfs:swap=1,recurse=0 a", "overlayroot=tmpfs:swap=1 a"),
    ("drop", "overlayroot=tmpfs:recurse=0 console=tty1 rootwait", "console=tty1 rootwait"),
])
def test_cmdline_edit(tmp_path, mode, before, after):
    f = tmp_path / "cmdline.txt"
    f.write_text(before + "\n")
    assert install_sh('cmdline_edit "$1" "$2"', mode, str(f)).stdout == after + "\n"


@pytest.mark.parametrize("line, on", [
    ("console=tty1 root=PARTUUID=1-02 rootwait", False),
    ("overlayroot=tmpfs console=tty1", True),
    ("console=tty1 overlayroot=tmpfs:recurse=0", True),
    ("boot=overlay console=tty1", True),
    ("overlayroot=disabled console=tty1", False),
    ("console=tty1 myoverlayroot=tmpfs", False),
])
def test_overlay_in(tmp_path, line, on):
    f = tmp_path / "cmdline"
    f.write_text(line + "\n")
    res = install_sh('overlay_in "$1" && echo on || echo off', str(f))
    assert res.stdout.strip() == ("on" if on else "off")


# A stand-in for `raspi-config nonint`: the overlay as Raspberry Pi OS switches it (Trixie's
# overlayroot=tmpfs prepended, removed again only in that spelling; Bookworm's boot=overlay),
# and the boot partition read-only through fstab. Every call is logged.
FAKE_RASPI_CONFIG = r"""#!/bin/bash
echo "$*" >>"$FAKE_DIR/calls"
c=$FAKE_DIR/boot/cmdline.txt
case "$2" in
    do_overlayfs)
        if [ "$3" = 0 ]; then
            if [ "$FAKE_STYLE" = boot ]; then sed -i 's/^/boot=overlay /' "$c"
            else sed -i 's/^/overlayroot=tmpfs /' "$c"; fi
            sed -i 's|\(/boot/firmware vfat defaults\)|\1,ro|' "$FAKE_DIR/fstab"
        else
            echo "saw $(cut -d' ' -f1 "$c")" >>"$FAKE_DIR/calls"
            sed -i -e 's/\(.*\)overlayroot=tmpfs \(.*\)/\1\2/' \
                -e 's/\(.*\)boot=overlay \(.*\)/\1\2/' "$c"
        fi ;;
    disable_bootro) sed -i 's|\(/boot/firmware vfat defaults\),ro|\1|' "$FAKE_DIR/fstab" ;;
    *) exit 2 ;;
esac
"""
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 rootwait"


@pytest.fixture
def fake_pi(tmp_path):
    """A boot folder, an fstab, a /proc/cmdline and raspi-config, all stand-ins."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "boot").mkdir()
    (tmp_path / "bin/raspi-config").write_text(FAKE_RASPI_CONFIG)
    (tmp_path / "bin/raspi-config").chmod(0o755)
    (tmp_path / "boot/cmdline.txt").write_text(CMDLINE + "\n")
    (tmp_path / "fstab").write_text("PARTUUID=1234-01 /boot/firmware vfat defaults 0 2\n")
    (tmp_path / "proc-cmdline").write_text(CMDLINE + "\n")
    (tmp_path / "calls").write_text("")
    return tmp_path


def overlay_step(fake: Path, flag: str, style: str = "overlayroot") -> subprocess.CompletedProcess:
    os.environ.update(FAKE_DIR=str(fake), FAKE_STYLE=style)
    try:
        snippet = (f'PASSGATE_ASSUME_PI=1; PG_BOOT_DIRS=("{fake}/boot"); PG_FSTAB="{fake}/fstab"; '
                   f'PG_PROC_CMDLINE="{fake}/proc-cmdline"; {flag}=1; step_overlay; '
                   'echo "changes=${#CHANGES[@]}"')
        return install_sh(snippet, path=str(fake / "bin"))
    finally:
        del os.environ["FAKE_DIR"], os.environ["FAKE_STYLE"]


def test_overlay_on_keeps_the_state_partition_out_of_it_and_off_again(fake_pi):
    cmdline = fake_pi / "boot/cmdline.txt"
    on = overlay_step(fake_pi, "READONLY_ROOT")
    assert on.returncode == 0, on.stderr
    assert cmdline.read_text() == f"overlayroot=tmpfs:recurse=0 {CMDLINE}\n"
    assert "read-only root (overlay) on" in on.stderr and "recurse=0" in on.stderr
    assert (fake_pi / "calls").read_text() == "nonint do_overlayfs 0\n"

    again = overlay_step(fake_pi, "READONLY_ROOT")
    assert "changes=0" in again.stdout and "changed:" not in again.stderr
    assert (fake_pi / "calls").read_text() == "nonint do_overlayfs 0\n"

    # Off, while the overlay is on now: raspi-config only removes its own spelling, so the
    # token is put back first; the read-only boot partition waits for the next run.
    (fake_pi / "proc-cmdline").write_text(cmdline.read_text())
    off = overlay_step(fake_pi, "WRITABLE_ROOT")
    assert off.returncode == 0, off.stderr
    assert cmdline.read_text() == CMDLINE + "\n"
    assert "read-only root (overlay) off" in off.stderr
    assert "boot partition stays read-only" in off.stderr
    (fake_pi / "proc-cmdline").write_text(CMDLINE + "\n")  # rebooted
    after = overlay_step(fake_pi, "WRITABLE_ROOT")
    assert "boot partition writable" in after.stderr
    assert ",ro" not in (fake_pi / "fstab").read_text()
    assert (fake_pi / "calls").read_text().splitlines()[1:] == [
        "nonint do_overlayfs 1", "saw overlayroot=tmpfs", "nonint disable_bootro"]
    assert "changes=0" in overlay_step(fake_pi, "WRITABLE_ROOT").stdout


def test_bookworm_overlay_is_left_as_raspi_config_writes_it(fake_pi):
    on = overlay_step(fake_pi, "READONLY_ROOT", style="boot")
    assert on.returncode == 0, on.stderr
    assert (fake_pi / "boot/cmdline.txt").read_text() == f"boot=overlay {CMDLINE}\n"
    off = overlay_step(fake_pi, "WRITABLE_ROOT", style="boot")
    assert off.returncode == 0 and (fake_pi / "boot/cmdline.txt").read_text() == CMDLINE + "\n"


def test_install_on_an_overlay_only_looks(fake_pi):
    (fake_pi / "proc-cmdline").write_text(f"overlayroot=tmpfs:recurse=0 {CMDLINE}\n")
    # act only ever prints here: should the overlay go unnoticed, nothing is installed on
    # this machine, and "REAL" says so.
    base = (f'PG_PROC_CMDLINE="{fake_pi}/proc-cmdline"; '
            'id() { [ "$1" = -u ] && echo 0 || command id "$@"; }; '
            'act() { if [ "$DRY_RUN" = 1 ]; then echo "would run: $*"; '
            'else echo "REAL $*"; fi; }; ')
    look = install_sh(base + "install_main")
    assert "REAL" not in look.stdout
    assert look.returncode == 1
    assert "the root is read-only now (overlay)" in look.stderr and "--writable-root" in look.stderr
    # --writable-root on an overlay: only the switch (not a Pi here: reported as skipped).
    off = install_sh(base + "install_main --writable-root")
    assert off.returncode == 0, off.stderr
    assert "would run" not in off.stdout and "useradd" not in off.stderr
    assert "skipped (not a Raspberry Pi): read-only root (overlay) off" in off.stderr


# ---- systemd: the units wait for the mounts the installer writes ---------------------------


GENERATOR = Path("/usr/lib/systemd/system-generators/systemd-fstab-generator")
SYSTEMD = Path("/lib/systemd/systemd")


def unit_deps(dump: str, unit: str) -> str:
    m = re.search(rf"-> Unit {re.escape(unit)}:\n(.*?)(?=\n\t-> Unit |\Z)", dump, re.S)
    assert m, f"{unit} not in the dump"
    return m.group(1)


def transaction(stage: Path, unit: str) -> str:
    """systemd's own view (``systemd --test``) of UNIT with the staged units and mounts."""
    cmd = ["env", f"SYSTEMD_UNIT_PATH={stage}:/usr/lib/systemd/system", str(SYSTEMD), "--test",
           "--system", f"--unit={unit}", "--no-pager"]
    if os.geteuid() == 0:  # systemd refuses test mode as root
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    res = run(*cmd, timeout=60)
    assert "-> Unit" in res.stdout, res.stderr[-2000:]
    return res.stdout


@pytest.mark.skipif(not GENERATOR.exists() or not SYSTEMD.exists(), reason="systemd not installed")
def test_units_require_and_follow_the_state_mounts():
    stage = Path(tempfile.mkdtemp(prefix="passgate-units-"))
    try:
        stage.chmod(0o755)  # read by an unprivileged systemd --test
        fstab = stage / "fstab"
        uuid = "0a1b2c3d-0000-4000-8000-000000000001"
        fstab.write_text(install_sh(f"state_fstab_block {uuid}").stdout)
        gen = stage / "gen"
        for d in ("n", "e", "l"):
            (gen / d).mkdir(parents=True)
        env = {**os.environ, "SYSTEMD_FSTAB": str(fstab), "SYSTEMD_PROC_CMDLINE": "",
               "SYSTEMD_IN_INITRD": "0"}
        res = subprocess.run([str(GENERATOR), *(str(gen / d) for d in "nel")], env=env,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        units = stage / "units"
        shutil.copytree(gen / "n", units, symlinks=True)
        for unit in STATE_UNITS:
            shutil.copy(REPO / "systemd" / unit, units / unit)
        bind = (units / "var-lib-passgate.mount").read_text()
        # The bind mounts wait for the partition.
        assert "RequiresMountsFor=/var/lib/passgate-data" in bind
        data = (units / "var-lib-passgate\\x2ddata.mount").read_text()
        assert f"What=/dev/disk/by-uuid/{uuid}" in data
        for dirpath, _, files in os.walk(stage):
            for name in files:
                Path(dirpath, name).chmod(0o644)
            Path(dirpath).chmod(0o755)
        for unit, mounts in STATE_UNITS.items():
            deps = unit_deps(transaction(units, unit), unit)
            for mount in mounts:
                assert f"Requires: {mount}" in deps and f"After: {mount}" in deps, (unit, mount)
        # Control: without its RequiresMountsFor= line the sync agent would not wait for the
        # journal's folder (ReadWritePaths= implies nothing), so the check above can fail.
        text = (units / "passgate-sync.service").read_text()
        (units / "passgate-sync.service").write_text(
            re.sub(r"^RequiresMountsFor=.*\n", "", text, flags=re.M))
        deps = unit_deps(transaction(units, "passgate-sync.service"), "passgate-sync.service")
        assert "Requires: var-lib-passgate.mount" not in deps
    finally:
        shutil.rmtree(stage)


def test_the_shell_scripts_parse():
    """bash -n on the deploy scripts: a syntax slip in a Pi-only branch shows here too."""
    for f in ("deploy/install.sh", "deploy/state.sh", "deploy/image.sh", "deploy/image-disk.sh"):
        res = run("bash", "-n", str(REPO / f))
        assert res.returncode == 0, (f, res.stderr)
