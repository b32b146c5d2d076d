"""What ``setup.sh install`` takes from apt beside the package (deploy/packages.sh), fast.

The Raspberry Pi packages are looked up before apt-get install, and a system
without Raspberry Pi OS's repository gets exit 2 and a message that says what is missing,
how to add it and what works without it (not apt's bare "Unable to locate package" and exit
100); ``--no-pi-camera`` leaves the camera packages out on purpose. Here ``apt-cache`` is a
stand-in on PATH that answers as apt does on plain Debian. (The venv's numpy is the
package's business now: it has none and depends on python3-numpy; test_package.py and
test_install_chroot.py check that.)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from chroot_util import REPO, run

# `apt-cache policy` on a Debian without archive.raspberrypi.com whose lists do have lgpio:
# libcamera is known but has no candidate, picamera2 is unknown (apt prints nothing at all).
DEBIAN_ONLY = """#!/bin/sh
[ "$1" = policy ] || exit 100
case "$2" in
    python3-lgpio|python3-rpi-lgpio)
        printf '%s:\\n  Installed: (none)\\n  Candidate: 0.2.2-1\\n' "$2" ;;
    python3-libcamera)
        printf '%s:\\n  Installed: (none)\\n  Candidate: (none)\\n' "$2" ;;
esac
"""
# The same with Raspberry Pi OS's repository: every package has a candidate.
WITH_PI_REPO = """#!/bin/sh
printf '%s:\\n  Installed: (none)\\n  Candidate: 1.0-1+rpt1\\n' "$2"
"""


def tool(tmp_path: Path, name: str, text: str) -> str:
    """A folder holding one executable ``name``, to put first on PATH."""
    folder = tmp_path / f"bin-{name}-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)
    return str(folder)


def setup_install(*args: str, path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{path}:{os.environ['PATH']}", "PASSGATE_ASSUME_PI": "1"}
    return run(str(REPO / "setup.sh"), "install", *args, env=env)


def packages_sh(snippet: str, path: str | None = None) -> subprocess.CompletedProcess:
    """Run ``snippet`` with deploy/install.sh (and so packages.sh) loaded as setup.sh loads it."""
    script = (f'set -euo pipefail; HERE="{REPO}"; say() {{ printf "setup: %s\\n" "$*" >&2; }}; '
              f'missing_packages() {{ printf "%s\\n" "$@"; }}; . "{REPO}/deploy/install.sh"; '
              f'{snippet}')
    env = {**os.environ, "PATH": f"{path}:{os.environ['PATH']}" if path else os.environ["PATH"]}
    return run("bash", "-c", script, env=env)


# ---- the Raspberry Pi repository ------------------------------------------------------------


def test_install_without_the_raspberry_pi_repository_stops_with_exit_2_and_says_why(tmp_path):
    res = setup_install("--dry-run", path=tool(tmp_path, "apt-cache", DEBIAN_ONLY))
    assert res.returncode == 2, res.stderr
    msg = res.stderr
    assert "python3-picamera2 python3-libcamera: not available from apt" in msg
    assert "python3-lgpio" not in msg.split("not available")[0]  # Debian has lgpio
    assert "archive.raspberrypi.com" in msg and "raspberrypi-archive-keyring" in msg
    assert "deb [signed-by=/usr/share/keyrings/raspberrypi-archive-keyring.gpg]" in msg
    assert "use a Raspberry Pi OS image" in msg
    assert "install without the Pi camera: sudo ./setup.sh install --no-pi-camera" in msg
    assert 'camera.source = "files"\n  or "webcam"' in msg
    assert "passgate run --simulate" in msg
    assert "a dry run does not update them" in msg
    assert "would run: env DEBIAN_FRONTEND" not in res.stdout, "stopped before apt-get install"
    assert "would run: useradd" not in res.stdout, "stopped before any other step"


def test_no_pi_camera_is_not_offered_when_more_than_the_camera_packages_is_missing(tmp_path):
    # Debian bookworm's own lists: none of the four (GPIO's lgpio is needed with or without it).
    nothing = tool(tmp_path, "apt-cache", '#!/bin/sh\n[ "$1" = policy ] || exit 100\n')
    res = setup_install("--dry-run", path=nothing)
    assert res.returncode == 2, res.stderr
    assert ("python3-picamera2 python3-libcamera python3-lgpio python3-rpi-lgpio: "
            "not available from apt") in res.stderr
    assert "archive.raspberrypi.com" in res.stderr and "--no-pi-camera" not in res.stderr
    res = setup_install("--dry-run", "--no-pi-camera", path=nothing)
    assert res.returncode == 2
    assert "\ninstall: python3-lgpio python3-rpi-lgpio: not available" in res.stderr


def test_no_pi_camera_installs_the_other_pi_packages_and_says_what_it_left_out(tmp_path):
    res = packages_sh("PASSGATE_ASSUME_PI=1; DRY_RUN=1; NO_PI_CAMERA=1; step_packages",
                      path=tool(tmp_path, "apt-cache", DEBIAN_ONLY))
    assert res.returncode == 0, res.stderr
    install = [line for line in res.stdout.splitlines() if "apt-get install" in line]
    assert len(install) == 1 and "python3-lgpio python3-rpi-lgpio" in install[0]
    assert "picamera2" not in install[0] and "libcamera" not in install[0]
    left_out = "skipped (--no-pi-camera): apt packages python3-picamera2 python3-libcamera"
    assert left_out in res.stderr


def test_with_the_raspberry_pi_repository_every_pi_package_is_installed(tmp_path):
    res = packages_sh("PASSGATE_ASSUME_PI=1; DRY_RUN=1; step_packages",
                      path=tool(tmp_path, "apt-cache", WITH_PI_REPO))
    assert res.returncode == 0, res.stderr
    install = [line for line in res.stdout.splitlines() if "apt-get install" in line]
    assert len(install) == 1
    for p in ("python3-picamera2", "python3-libcamera", "python3-lgpio", "python3-rpi-lgpio"):
        assert p in install[0]
    assert "not available" not in res.stderr


def test_no_pi_camera_is_an_install_option(tmp_path):
    # Parsed by install_main (an unknown option is exit 2 before anything is done).
    res = setup_install("--no-pi-camera", "--dry-run", "--bogus",
                        path=tool(tmp_path, "apt-cache", WITH_PI_REPO))
    assert res.returncode == 2 and "unknown option --bogus" in res.stderr
