"""The updater's state machine against a fake dpkg and service manager (tests/update_support).

Every transition of ``passgate.update.updater``: up to date, updated, rolled back after a
failed health check or a failed install, refused releases (unauthorised key, downgrade,
below the minimum, tampered package), the read-only root remounted only around installs,
the overlay root updated through two reboots (and refused when its state is in RAM), and a
power cut before each command of an update and of a
rollback, then a reboot and a resumed run: the device always ends on a working version and
never reports a failed update as done.
"""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import NOW
from passgate.errors import UpdateError
from passgate.release import deb_file_name
from passgate.update.state import read_state, report, status_text
from passgate.update.system import DebianSystem
from passgate.update.updater import Paths, Updater
from release_support import ReleaseFleet
from update_support import FakeClock, FolderSource, Machine, PowerCut, fake_deb


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


class Rig:
    def __init__(self, tmp_path, root_ro: bool = True, overlay: bool = False,
                 state_on_disk: bool = True):
        self.rf = ReleaseFleet()
        self.tmp = tmp_path
        self.rf.provision(tmp_path / "bundle")
        self.releases = tmp_path / "served"
        self.rf.publish_to(self.releases, "0.1.0", fake_deb("0.1.0"))
        self.machine = Machine(installed="0.1.0")
        self.machine.boot()
        self.mounts = tmp_path / "mounts"
        if overlay:  # Raspberry Pi OS's overlay: / is rw (in RAM), the state on its partition
            root_ro = False
            self.mounts.write_text("overlay / overlay rw,relatime 0 0\n" + (
                f"/dev/mmcblk0p3 {tmp_path} ext4 rw,noatime 0 0\n" if state_on_disk else ""))
        else:
            self.mounts.write_text(f"/dev/root / ext4 {'ro' if root_ro else 'rw'},noatime 0 0\n")
        self.machine.root_rw = not root_ro
        self.machine.root_ro_at_boot = root_ro
        self.cmdline = tmp_path / "cmdline"
        self.boot_dir = tmp_path / "boot"
        self.boot_dir.mkdir()
        line = f"console=tty1 {'boot=overlay ' if overlay else ''}root=/dev/mmcblk0p2\n"
        (self.boot_dir / "cmdline.txt").write_text(line)
        self.cmdline.write_text(line)
        self.machine.boot_cmdline, self.machine.proc_cmdline = (
            self.boot_dir / "cmdline.txt", self.cmdline)
        self.source = FolderSource(self.releases, None)
        self.paths = Paths(tmp_path / "update.json", tmp_path / "cache", tmp_path / "bundle")

    def publish(self, version: str, kind: str = "healthy", key: Ed25519PrivateKey | None = None):
        self.rf.publish_to(self.releases, version, fake_deb(version, kind), key=key)

    def updater(self, timeout: float = 60.0) -> Updater:
        clock = FakeClock(1000.0)
        system = DebianSystem(self.machine.run, selftest_cmd=("selftest", "--quick"),
                              mounts=self.mounts, cmdline=self.cmdline,
                              boot_dirs=(self.boot_dir,))
        return Updater(system, self.source, self.paths, arch="amd64", now=lambda: NOW + 60,
                       monotonic=clock.monotonic, sleep=clock.sleep, health_timeout=timeout)

    def state(self):
        return read_state(self.paths.state_file)


def test_no_plan_or_same_version_is_up_to_date(rig):
    assert report(rig.updater().run_once()) == {"update_state": "up_to_date",
                                                "update_target": "0.1.0"}
    rig.source.target_version = "0.1.0"
    assert rig.updater().run_once().outcome == "up_to_date"
    assert not any(c.startswith("dpkg -i") for c in rig.machine.log)


def test_a_healthy_release_is_installed_and_the_services_restarted(rig):
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    state = rig.updater().run_once()
    assert (state.step, state.outcome, rig.machine.installed) == ("idle", "updated", "0.2.0")
    assert rig.machine.running == "0.2.0"
    assert report(state)["update_state"] == "up_to_date"
    log = rig.machine.log
    assert "systemctl restart --no-block passgate-scanner.service passgate-sync.service" in log
    # rw only around the install, read-only again afterwards
    i = log.index(next(c for c in log if c.startswith("dpkg -i")))
    assert log[i - 2] == "mount -o remount,rw /" and "mount -o remount,ro /" in log[i + 1:i + 3]
    assert rig.machine.root_rw is False
    cached = sorted(p.name for p in rig.paths.cache.iterdir())
    assert deb_file_name("0.1.0", "amd64") in cached and deb_file_name("0.2.0", "amd64") in cached


def test_a_release_that_never_gets_ready_is_rolled_back_by_itself(rig):
    rig.publish("0.2.0", "broken")
    rig.source.target_version = "0.2.0"
    state = rig.updater(timeout=30).run_once()
    assert (state.outcome, rig.machine.installed, rig.machine.running) == (
        "rolled_back", "0.1.0", "0.1.0")
    assert "not healthy after 30 s" in state.reason and "auto-restart" in state.reason
    assert report(state)["update_state"] == "rolled_back"
    assert state.bad == ("0.2.0",)
    # the bad version is not tried again, and keeps being reported
    n = len(rig.machine.log)
    again = rig.updater().run_once()
    assert again.outcome == "rolled_back" and not any(
        c.startswith("dpkg -i") for c in rig.machine.log[n:])
    # a newer fixed release goes ahead
    rig.publish("0.2.1")
    rig.source.target_version = "0.2.1"
    assert rig.updater().run_once().outcome == "updated"
    assert rig.machine.installed == "0.2.1"


def test_a_failed_install_rolls_back_and_never_reports_success(rig):
    rig.publish("0.2.0", "badinstall")
    rig.source.target_version = "0.2.0"
    state = rig.updater().run_once()
    assert state.outcome == "rolled_back" and "install failed" in state.reason
    assert rig.machine.installed == "0.1.0" and rig.machine.half is None


def test_a_failed_self_test_is_unhealthy(rig):
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    up = rig.updater(timeout=10)
    real = rig.machine._answer

    def selftest_fails(argv):
        if argv[0] == "selftest" and rig.machine.installed == "0.2.0":
            import subprocess
            return subprocess.CompletedProcess(argv, 1, "journal: FAIL database locked", "")
        return real(argv)

    rig.machine._answer = selftest_fails
    state = up.run_once()
    assert state.outcome == "rolled_back" and "database locked" in state.reason


@pytest.mark.parametrize("case", ["unauthorised", "downgrade", "below_minimum", "tampered"])
def test_refused_releases_are_never_installed(rig, case):
    if case == "unauthorised":
        rig.publish("0.2.0", key=Ed25519PrivateKey.generate())
        target, want = "0.2.0", "not_authorised"
    elif case == "downgrade":
        rig.publish("0.0.9")
        target, want = "0.0.9", "downgrade refused"
    elif case == "below_minimum":
        rig.rf.min_version = "0.3.0"
        rig.rf.provision(rig.tmp / "bundle", version=2)
        rig.publish("0.2.0")
        target, want = "0.2.0", "below_minimum"
    else:
        rig.publish("0.2.0")
        (rig.releases / deb_file_name("0.2.0", "amd64")).write_bytes(fake_deb("0.2.0", "x1"))
        target, want = "0.2.0", "hash_mismatch"
    rig.source.target_version = target
    state = rig.updater().run_once()
    assert state.outcome == "failed" and want in state.reason
    # The reason as the collector keeps it (at most 64 characters), its code first.
    assert report(state) == {"update_state": "failed", "update_target": target,
                             "update_reason": status_text(state.reason)}
    assert want in report(state)["update_reason"]
    assert rig.machine.installed == "0.1.0"
    assert not any(c.startswith(("dpkg -i", "mount")) for c in rig.machine.log)


def test_no_update_without_a_copy_of_the_running_version_to_fall_back_to(rig):
    (rig.releases / deb_file_name("0.1.0", "amd64")).unlink()
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    state = rig.updater().run_once()
    assert state.outcome == "failed" and "404" in state.reason
    assert rig.machine.installed == "0.1.0"


def test_an_unreachable_collector_changes_nothing(rig):
    rig.source.down = True
    state = rig.updater().run_once()
    assert state.step == "idle" and not rig.paths.state_file.exists()


def test_an_overlay_root_updates_through_two_reboots(tmp_path):
    rig = Rig(tmp_path, overlay=True)
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    # 1st run, overlay on: downloaded and verified, overlay off for the next boot, reboot
    state = rig.updater().run_once()
    assert (state.step, state.overlay, rig.machine.installed) == ("overlay_off", True, "0.1.0")
    assert report(state)["update_state"] == "updating"
    assert (rig.paths.cache / deb_file_name("0.2.0", "amd64")).is_file()
    assert not rig.machine.overlay_next_boot and rig.machine.reboots_asked == 1
    assert rig.machine.log[-1] == "systemctl reboot"
    assert not any(c.startswith(("dpkg -i", "dpkg --configure", "mount")) for c in rig.machine.log)
    # 2nd boot, no overlay: installed, checked, overlay on for the next boot, reboot
    rig.machine.boot()
    assert not rig.machine.overlay_now
    state = rig.updater().run_once()
    assert (state.step, state.outcome, rig.machine.installed) == ("overlay_on", "updated", "0.2.0")
    assert report(state)["update_state"] == "up_to_date"
    assert rig.machine.overlay_next_boot and rig.machine.reboots_asked == 1
    i = rig.machine.log.index("raspi-config nonint do_overlayfs 0")
    assert any(c.startswith("dpkg -i") for c in rig.machine.log[:i])
    # 3rd boot, overlay on again: the attempt is over
    rig.machine.boot()
    state = rig.updater().run_once()
    assert (state.step, state.outcome, state.overlay) == ("idle", "updated", False)
    assert rig.machine.overlay_now and rig.machine.reboots_asked == 0
    assert rig.machine.running == "0.2.0"
    # and a later run has nothing to do (no reboot)
    assert rig.updater().run_once().outcome == "up_to_date" and rig.machine.reboots_asked == 0


def test_an_unhealthy_release_on_an_overlay_root_is_rolled_back_and_the_overlay_restored(
        tmp_path):
    rig = Rig(tmp_path, overlay=True)
    rig.publish("0.2.0", "broken")
    rig.source.target_version = "0.2.0"
    assert rig.updater(timeout=6).run_once().step == "overlay_off"
    rig.machine.boot()
    state = rig.updater(timeout=6).run_once()
    assert (state.step, state.outcome, rig.machine.installed) == (
        "overlay_on", "rolled_back", "0.1.0")
    assert report(state)["update_state"] == "rolled_back"  # never "updated"
    assert rig.machine.overlay_next_boot and rig.machine.reboots_asked == 1
    rig.machine.boot()
    state = rig.updater(timeout=6).run_once()
    assert (state.step, state.outcome, state.bad) == ("idle", "rolled_back", ("0.2.0",))
    assert rig.machine.overlay_now and rig.machine.running == "0.1.0"


def test_a_failed_install_on_an_overlay_root_restores_the_overlay(tmp_path):
    rig = Rig(tmp_path, overlay=True)
    rig.publish("0.2.0", "badinstall")
    rig.source.target_version = "0.2.0"
    rig.updater().run_once()
    rig.machine.boot()
    state = rig.updater().run_once()
    assert state.outcome == "rolled_back" and "install failed" in state.reason
    assert rig.machine.overlay_next_boot and rig.machine.installed == "0.1.0"


def test_an_overlay_root_with_the_update_state_in_ram_is_refused(tmp_path):
    rig = Rig(tmp_path, overlay=True, state_on_disk=False)
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    state = rig.updater().run_once()
    assert state.outcome == "failed" and "not on the state partition" in state.reason
    assert rig.machine.overlay_next_boot and rig.machine.reboots_asked == 0
    assert not any(c.startswith(("dpkg -i", "mount", "raspi-config")) for c in rig.machine.log)


def test_an_overlay_that_cannot_be_switched_off_fails_and_installs_nothing(tmp_path):
    rig = Rig(tmp_path, overlay=True)
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    real = rig.machine._answer

    def raspi_config_does_nothing(argv):
        if argv[0] == "raspi-config":
            return subprocess.CompletedProcess(argv, 0, "", "")
        return real(argv)

    rig.machine._answer = raspi_config_does_nothing
    state = rig.updater().run_once()
    assert (state.step, state.outcome) == ("idle", "failed")
    assert "still on" in state.reason and state.bad == ()
    assert rig.machine.reboots_asked == 0 and rig.machine.installed == "0.1.0"


def test_an_overlay_that_stays_on_after_reboots_gives_up(tmp_path):
    """cmdline.txt says off, yet every boot comes back with the overlay (say, an initramfs
    that forces it): a bounded number of reboots, then failed, nothing installed."""
    from passgate.update.updater import MAX_OVERLAY_TRIES

    rig = Rig(tmp_path, overlay=True)
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    reboots = 0
    for _ in range(MAX_OVERLAY_TRIES + 2):
        state = rig.updater().run_once()
        reboots += rig.machine.reboots_asked
        if state.step == "idle":
            break
        rig.machine.boot()
        rig.cmdline.write_text("console=tty1 boot=overlay root=/dev/mmcblk0p2\n")
    assert (state.step, state.outcome) == ("idle", "failed") and "still on" in state.reason
    assert reboots == MAX_OVERLAY_TRIES
    assert rig.machine.overlay_next_boot and rig.machine.installed == "0.1.0"


def test_a_read_only_boot_partition_is_writable_only_around_the_overlay_switch(tmp_path):
    rig = Rig(tmp_path, overlay=True)
    boot = str(rig.boot_dir)
    rig.mounts.write_text(rig.mounts.read_text() + f"/dev/mmcblk0p1 {boot} vfat ro 0 0\n")
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    assert rig.updater().run_once().step == "overlay_off"
    log = rig.machine.log
    i = log.index("raspi-config nonint do_overlayfs 1")
    assert log[i - 1] == f"mount -o remount,rw {boot}"
    assert log[i + 1:i + 3] == ["sync", f"mount -o remount,ro {boot}"]
    assert log[-1] == "systemctl reboot" and not rig.machine.overlay_next_boot


def test_cmdline_edit_matches_deploy_state_sh():
    from passgate.update.system import cmdline_edit

    line = "console=tty1 overlayroot=tmpfs:recurse=1,debug root=/dev/mmcblk0p2 rootwait"
    assert cmdline_edit(line, "add") == ("console=tty1 overlayroot=tmpfs:debug,recurse=0 "
                                         "root=/dev/mmcblk0p2 rootwait")
    assert cmdline_edit(line, "strip") == ("console=tty1 overlayroot=tmpfs:debug "
                                           "root=/dev/mmcblk0p2 rootwait")
    assert cmdline_edit(line, "drop") == "console=tty1 root=/dev/mmcblk0p2 rootwait"
    assert cmdline_edit("a overlayroot=tmpfs b", "add") == "a overlayroot=tmpfs:recurse=0 b"


def _power_cut_runs(rig, kind: str) -> int:
    """Commands a whole update to 0.2.0 of ``kind`` takes, without a cut."""
    rig.publish("0.2.0", kind)
    rig.source.target_version = "0.2.0"
    rig.updater(timeout=6).run_once()
    return rig.machine.calls


@pytest.mark.parametrize("kind,final,outcome", [("healthy", "0.2.0", "updated"),
                                                ("broken", "0.1.0", "rolled_back")])
def test_a_power_cut_before_any_command_resumes_to_a_working_version(tmp_path, kind, final,
                                                                     outcome):
    total = _power_cut_runs(Rig(tmp_path / "count"), kind)
    assert total > 10
    for cut in range(1, total + 1):
        rig = Rig(tmp_path / f"cut{cut}")
        rig.publish("0.2.0", kind)
        rig.source.target_version = "0.2.0"
        rig.machine.cut_at = cut
        with pytest.raises(PowerCut):
            rig.updater(timeout=6).run_once()
        seen = read_state(rig.paths.state_file)
        assert report(seen)["update_state"] != "up_to_date" or seen.outcome != "updated"
        rig.machine.boot()  # the unit runs again at boot and resumes
        state = rig.updater(timeout=6).run_once()
        where = f"cut before command {cut} ({rig.machine.log[cut - 1]})"
        assert rig.machine.reboots_asked == 0, where
        assert (state.step, state.outcome, rig.machine.installed) == ("idle", outcome, final), where
        assert rig.machine.running == final and rig.machine.half is None, where
        assert rig.machine.root_rw is False, where


def test_the_heartbeat_fields_come_from_the_state_file(rig):
    from passgate.update.state import report_file

    assert report_file(rig.paths.state_file) == {}  # no updater ran: nothing to report
    rig.publish("0.2.0", "broken")
    rig.source.target_version = "0.2.0"
    rig.updater(timeout=4).run_once()
    got = report_file(rig.paths.state_file)
    assert got["update_state"] == "rolled_back" and got["update_target"] == "0.2.0"
    assert got["update_reason"].startswith("health check: not healthy after 4 s")
    rig.paths.state_file.write_text("{torn")  # unreadable: never reported as up to date
    assert report_file(rig.paths.state_file)["update_state"] == "failed"
    assert rig.updater().run_once().step == "idle"  # the updater itself starts over


def test_a_state_file_with_an_unknown_step_starts_over(rig):
    rig.paths.state_file.write_text('{"step": "flashing"}')
    assert report_file_of(rig)["update_state"] == "failed"
    assert rig.updater().run_once().outcome == "up_to_date"


def report_file_of(rig):
    from passgate.update.state import report_file

    return report_file(rig.paths.state_file)


def test_a_second_run_waits_for_the_first_and_then_reads_the_state_it_left(rig):
    """The timer's run and one by hand at once (the nspawn boot test's rollback flake: both
    rolled back, one read passgate as not installed while the other's dpkg was half-way)."""
    from passgate.update.state import LOCK_FILE, update_lock

    rig.publish("0.2.0", "broken")
    rig.source.target_version = "0.2.0"
    held = update_lock(rig.paths.state_file.with_name(LOCK_FILE))
    held.__enter__()  # the other run, in the middle of its rollback
    up = rig.updater(timeout=10)
    seen: list[int] = []
    real_sleep = up._sleep

    def sleep(s: float) -> None:
        if not seen:  # while the other run holds the lock this run did nothing at all
            seen.append(len(rig.machine.log))
            held.__exit__(None, None, None)
        real_sleep(s)

    up._sleep = sleep
    state = up.run_once()
    assert seen == [0]
    assert (state.outcome, rig.machine.installed) == ("rolled_back", "0.1.0")
    # Control: without the lock released the run gives up with the reason, untouched.
    again = update_lock(rig.paths.state_file.with_name(LOCK_FILE))
    again.__enter__()
    try:
        n = len(rig.machine.log)
        with pytest.raises(UpdateError, match="another update run held"):
            rig.updater().run_once()
        assert len(rig.machine.log) == n and rig.state() == state
    finally:
        again.__exit__(None, None, None)


def test_dpkgs_lock_held_by_apt_is_waited_for_not_read_as_a_failed_install(rig):
    rig.publish("0.2.0")
    rig.source.target_version = "0.2.0"
    real, busy = rig.machine.run, [3]

    def run(argv):
        if list(argv[:2]) == ["dpkg", "-i"] and busy[0] > 0:
            busy[0] -= 1
            return subprocess.CompletedProcess(argv, 2, "", "dpkg: error: dpkg frontend lock "
                                               "was locked by another process with pid 4242\n")
        return real(argv)

    up = rig.updater()
    up.system = DebianSystem(run, selftest_cmd=("selftest", "--quick"), mounts=rig.mounts,
                             cmdline=rig.cmdline, sleep=lambda s: None)
    state = up.run_once()
    assert (state.outcome, rig.machine.installed, busy[0]) == ("updated", "0.2.0", 0)
    # A lock that is never released is a failed install after lock_wait, and rolls back.
    rig.publish("0.2.1")
    rig.source.target_version = "0.2.1"
    busy[0] = 10**6
    up = rig.updater()
    up.system = DebianSystem(run, selftest_cmd=("selftest", "--quick"), mounts=rig.mounts,
                             cmdline=rig.cmdline, sleep=lambda s: None, lock_wait=20)
    state = up.run_once()
    assert state.outcome == "failed" and "locked by another process" in state.reason
    assert rig.machine.installed == "0.2.0"


def _drive_overlay_update(rig, kind: str, cut: int | None) -> tuple[object, int]:
    """A whole update through the overlay: runs of the unit, a boot after every reboot it asks
    for and after the power cut before the ``cut``-th command (counted over all runs).
    Returns the last state and the boots it took. Every boot into the overlay must find a
    configured package of a version that was healthy here."""
    rig.machine.cut_at = cut
    for boots in range(12):
        try:
            state = rig.updater(timeout=6).run_once()
        except PowerCut:
            cut = None  # one cut per update
            seen = read_state(rig.paths.state_file)
            assert not (seen.outcome == "updated" and rig.machine.installed != "0.2.0")
            state = None
        if state is not None and rig.machine.reboots_asked == 0:
            return state, boots
        if rig.machine.overlay_next_boot:  # about to freeze the root again: a working version
            assert rig.machine.half is None and rig.machine.installed in (
                "0.1.0", "0.2.0" if kind == "healthy" else "0.1.0"), (cut, rig.machine.log)
        rig.machine.boot()  # (a boot clears cut_at: set again while the cut is to come)
        rig.machine.cut_at = cut
    raise AssertionError(f"no end after 12 boots (cut {cut}): {rig.machine.log}")


@pytest.mark.parametrize("kind,final,outcome", [("healthy", "0.2.0", "updated"),
                                                ("broken", "0.1.0", "rolled_back")])
def test_a_power_cut_anywhere_in_an_overlay_update_resumes_and_restores_the_overlay(
        tmp_path, kind, final, outcome):
    count = Rig(tmp_path / "count", overlay=True)
    count.publish("0.2.0", kind)
    count.source.target_version = "0.2.0"
    state, boots = _drive_overlay_update(count, kind, None)
    assert (state.outcome, boots) == (outcome, 2)  # two reboots: out of and into the overlay
    total = count.machine.calls
    assert total > 12
    for cut in range(1, total + 1):
        rig = Rig(tmp_path / f"cut{cut}", overlay=True)
        rig.publish("0.2.0", kind)
        rig.source.target_version = "0.2.0"
        state, boots = _drive_overlay_update(rig, kind, cut)
        where = f"cut before command {cut} ({count.machine.log[cut - 1]})"
        assert rig.machine.calls >= cut, where  # the cut was reached
        assert (state.step, state.outcome, rig.machine.installed) == ("idle", outcome, final), where
        assert rig.machine.running == final and rig.machine.half is None, where
        assert rig.machine.overlay_now and rig.machine.overlay_next_boot, where
        assert state.overlay is False, where


def test_resume_only_does_nothing_when_idle_and_goes_on_with_a_step_in_progress(tmp_path, capsys):
    """The boot-time unit (passgate-update-resume.service): no plan, no download when idle."""
    from passgate.cli import main

    assert main(["update", "--resume-only", "--state-dir", str(tmp_path)]) == 0
    assert "nothing in progress" in capsys.readouterr().out
    (tmp_path / "update.json").write_text('{"step": "overlay_on", "target": "0.2.0"}')
    # a step is open: it goes on, so it needs the collector and the bundle (none here: 2)
    assert main(["update", "--resume-only", "--state-dir", str(tmp_path),
                 "--sync-dir", str(tmp_path)]) == 2
    assert "need a collector" in capsys.readouterr().err


def test_the_heartbeat_carries_a_long_or_unclean_reason_as_the_collector_keeps_it():
    """The collector keeps status texts of at most 64 characters without control characters
    (docs/sync-protocol.md) and ignores any other: a longer reason never reached the staff.
    The report cuts and cleans it so that it does."""
    from passgate.update.state import FAILED, IDLE, STATUS_TEXT_MAX, UpdateState, status_text
    from passgate_collector.protocol import health_fields

    long = "health check: not healthy after 4 s\n" + "Traceback line " * 20
    got = report(UpdateState(step=IDLE, outcome=FAILED, target="0.2.0", reason=long))
    assert got["update_state"] == FAILED
    assert len(got["update_reason"]) == STATUS_TEXT_MAX and got["update_reason"].endswith("\u2026")
    assert got["update_reason"].startswith("health check: not healthy after 4 s Traceback")
    assert health_fields(got) == got  # every field kept by the collector, none dropped
    assert status_text("short\tone") == "short one"
