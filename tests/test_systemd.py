"""CI gate for the systemd units: they verify cleanly and stay tightly locked down.

``systemd-analyze verify`` needs the ExecStart binary and the system's own units, so the
test stages a root: the host's unit files, our units, and a stand-in executable.
``--recursive-errors=yes`` matters: without it verify exits 0 even for a typo.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
MAX_EXPOSURE = {"passgate-scanner.service": 2.0, "passgate-sync.service": 3.0,
                # root (it chowns files to the service users), but no network, I2C only
                "passgate-firstboot.service": 1.6,
                # the collector (server side): network, but its own user and nothing else
                "passgate-collector.service": 1.5,
                # root running dpkg, systemctl and mount: it must be able to change the
                # system, so only the sandbox that does not stop that (its own comment)
                "passgate-update.service": 7.5,
                # the same updater at boot, resuming a step in progress only
                "passgate-update-resume.service": 7.5}

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt: systemd)"
)


def _stage(tmp_path: Path, units: dict[str, str] | None = None) -> Path:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for name in ("passgate", "passgate-collector"):
        exe = root / "opt/passgate/venv/bin" / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    for unit in MAX_EXPOSURE:
        text = (units or {}).get(unit) or (UNITS / unit).read_text()
        (root / "etc/systemd/system" / unit).write_text(text)
    return root


def _verify(root: Path, unit: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", "--recursive-errors=yes", f"--root={root}", unit],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_unit_verifies(tmp_path, unit):
    res = _verify(_stage(tmp_path), unit)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Unknown key" not in res.stderr


def test_verify_gate_catches_a_typo(tmp_path):
    """Negative control: the gate is only worth something if it fails on a broken unit."""
    unit = "passgate-scanner.service"
    broken = (UNITS / unit).read_text().replace("NotifyAccess=", "NotifyAcess=")
    res = _verify(_stage(tmp_path, {unit: broken}), unit)
    assert res.returncode != 0
    assert "NotifyAcess" in res.stderr


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_unit_exposure(unit, capsys):
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNITS / unit)],
        capture_output=True, text=True, timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    assert m, res.stdout + res.stderr
    score = float(m.group(1))
    with capsys.disabled():
        print(f"\n  systemd-analyze security {unit}: exposure {score} (max {MAX_EXPOSURE[unit]})")
    assert score <= MAX_EXPOSURE[unit]


def test_scanner_has_no_network_and_a_watchdog():
    text = (UNITS / "passgate-scanner.service").read_text()
    for line in ("Type=notify", "PrivateNetwork=yes", "IPAddressDeny=any", "DevicePolicy=closed",
                 "Restart=always", "RestrictAddressFamilies=AF_UNIX"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    watchdog = re.search(r"^WatchdogSec=(\d+)s$", text, re.M)
    assert watchdog and 0 < int(watchdog.group(1)) <= 30


def test_hardware_watchdog_within_the_pi_limit():
    text = (UNITS / "passgate-watchdog.conf").read_text()
    m = re.search(r"^RuntimeWatchdogSec=(\d+)s$", text, re.M)
    assert m and int(m.group(1)) <= 14  # the Pi's watchdog caps at ~15 s


@pytest.mark.parametrize("unit", ["passgate-scanner.service", "passgate-sync.service"])
def test_units_can_read_the_boot_id(unit):
    """The clock binds trusted time to /proc/sys/kernel/random/boot_id, read by both the
    scanner and the sync agent; ProcSubset=pid hides /proc/sys, so each would invent its own
    boot id and a signed time token fetched by the agent would never make the scanner trusted."""
    assert not re.search(r"^ProcSubset=pid$", (UNITS / unit).read_text(), re.M)


def test_scanner_gives_lgpio_a_writable_working_directory():
    """lgpio creates its notification pipes in the working directory; '/' is not writable."""
    text = (UNITS / "passgate-scanner.service").read_text()
    wd = re.search(r"^WorkingDirectory=(\S+)$", text, re.M)
    assert wd and wd.group(1) == "/run/passgate"
    assert re.search(r"^RuntimeDirectory=passgate$", text, re.M)
    assert re.search(r"^Environment=LG_WD=/run/passgate$", text, re.M)


@pytest.mark.parametrize("unit", ["passgate-scanner.service", "passgate-sync.service"])
def test_units_can_read_the_kernel_ntp_state(unit):
    """The clock trusts NTP only when adjtimex() says the kernel is synchronised. ProtectClock=
    and ~@privileged both forbid adjtimex (it is in @clock, even read-only), so the units turn
    the first off and allow the two calls back after the deny list; without CAP_SYS_TIME
    (empty bounding set) they still cannot set the clock."""
    text = (UNITS / unit).read_text()
    assert not re.search(r"^ProtectClock=yes$", text, re.M)
    filters = re.findall(r"^SystemCallFilter=(.*)$", text, re.M)
    deny = next(i for i, f in enumerate(filters) if f.startswith("~"))
    allowed_after = " ".join(filters[deny + 1:]).split()
    assert {"adjtimex", "clock_adjtime"} <= set(allowed_after)
    assert re.search(r"^CapabilityBoundingSet=$", text, re.M)
