"""``./setup.sh package``: the Debian package, built for real (deploy/package.sh).

Built twice from the same tree: byte-identical (SOURCE_DATE_EPOCH, hash-based bytecode, fixed
owners and mtimes). Its contents: the venv with the locked versions, units, the conffile,
the commands, man pages, completion, and nothing secret. lintian reports no error. The
installed commands run from the unpacked tree. Needs dpkg-deb, lintian and the package
index (the wheels are fetched at build time); skipped otherwise with the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest

from chroot_util import REPO, run
from passgate.util.version import version

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed"),
]
ARCH = run("dpkg", "--print-architecture").stdout.strip() if shutil.which("dpkg") else ""
# Key material that may never be in a package: private keys, device identity, secrets.
SECRET = re.compile(r"(\.key|\.pem|/\.env|device\.key|journal\.key|enrolment\.json|token)$")


def build(out: Path, arch: str = ARCH) -> Path:
    """``./setup.sh package --arch ARCH --out OUT``; skips when the wheels are not reachable."""
    res = run(str(REPO / "setup.sh"), "package", "--arch", arch, "--out", str(out),
              timeout=1800, env={**os.environ, "SOURCE_DATE_EPOCH": "1767225600"})
    if res.returncode != 0 and "No matching distribution" in res.stderr:
        pytest.skip(f"wheels for {arch} not reachable: {res.stderr[-300:]}")
    assert res.returncode == 0, res.stderr[-3000:]
    deb = out / f"passgate_{version()}_{arch}.deb"
    assert res.stdout.strip() == str(deb) and deb.exists()
    # Built as .part and renamed when whole: nothing else is left in the folder.
    assert sorted(p.name for p in out.iterdir()) == [deb.name]
    return deb


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("dist"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_builds_are_byte_identical(deb, tmp_path):
    again = build(tmp_path)
    assert sha(again) == sha(deb)


def listing(deb: Path) -> dict[str, str]:
    """path -> 'mode owner' from dpkg-deb -c."""
    out = {}
    for line in run("dpkg-deb", "-c", str(deb), check=True).stdout.splitlines():
        mode, owner, _size, _date, _time, path, *_ = line.split()
        out[path.removeprefix(".")] = f"{mode} {owner}"
    return out


def test_nothing_secret_is_in_the_package(deb):
    files = listing(deb)
    assert not [p for p in files if SECRET.search(p)], "key or secret in the package"
    assert not [p for p in files if "/keys/" in p or "demo" in p.lower()]
    assert {o.split()[1] for o in files.values()} == {"root/root"}


def test_the_package_holds_the_app_units_config_commands_and_docs(deb):
    files = listing(deb)
    for path in ("/opt/passgate/venv/bin/passgate", "/opt/passgate/venv/pyvenv.cfg",
                 "/lib/systemd/system/passgate-scanner.service",
                 "/lib/systemd/system/passgate-sync.service",
                 "/lib/systemd/system/passgate-firstboot.service",
                 "/lib/systemd/system/passgate-update-resume.service",
                 "/lib/systemd/system.conf.d/passgate-watchdog.conf",
                 "/etc/passgate/passgate.toml", "/usr/bin/passgate", "/usr/bin/passgate-collector",
                 "/usr/share/man/man1/passgate.1.gz", "/usr/share/man/man1/passgate-collector.1.gz",
                 "/usr/share/bash-completion/completions/passgate",
                 "/usr/share/doc/passgate/copyright"):
        assert path in files, path
    sp = "/opt/passgate/venv/lib/python3.11/site-packages/"
    assert any(p.startswith(sp + "passgate/cli/__pycache__/") for p in files)  # bytecode
    assert not any(p.startswith(sp + "numpy/") for p in files)  # Debian's python3-numpy
    # Exactly the locked versions.
    lock = (REPO / f"requirements/device-{ARCH}.lock").read_text()
    for name, ver in re.findall(r"^([a-z0-9_.-]+)==([^ ]+) ", lock, re.M):
        dist = f"{sp}{name.replace('-', '_')}-{ver}.dist-info/"
        assert any(p.lower() == dist.lower() for p in files), dist
    assert f"{sp}passgate-{version()}.dist-info/" in files


def field(deb: Path, name: str) -> str:
    return run("dpkg-deb", "-f", str(deb), name, check=True).stdout.strip()


def test_control_depends_and_conffiles(deb, tmp_path):
    assert field(deb, "Version") == version() and field(deb, "Architecture") == ARCH
    depends = field(deb, "Depends")
    for dep in ("python3 (>= 3.11)", "python3 (<< 3.12)", "python3-numpy", "libzbar0"):
        assert dep in depends
    assert "python3-argcomplete" in field(deb, "Recommends")
    run("dpkg-deb", "-e", str(deb), str(tmp_path / "ctl"), check=True)
    assert (tmp_path / "ctl/conffiles").read_text() == "/etc/passgate/passgate.toml\n"
    for script in ("postinst", "prerm", "postrm"):
        assert os.access(tmp_path / "ctl" / script, os.X_OK)
        assert run("sh", "-n", str(tmp_path / "ctl" / script)).returncode == 0


def test_the_man_pages_document_every_sub_command(deb, tmp_path):
    run("dpkg-deb", "-x", str(deb), str(tmp_path), check=True)
    page = gzip.decompress((tmp_path / "usr/share/man/man1/passgate.1.gz").read_bytes()).decode()
    assert page.startswith(".TH PASSGATE 1 \"2026-01-01\"")
    for section in (".SH EXIT STATUS", ".SH EXAMPLES", ".SS passgate bundle install"):
        assert section in page
    if shutil.which("man"):
        shown = run("man", "-l", str(tmp_path / "usr/share/man/man1/passgate.1.gz"),
                    env={**os.environ, "MANWIDTH": "100"})
        assert "passgate selftest" in shown.stdout
    completion = (tmp_path / "usr/share/bash-completion/completions/passgate").read_text()
    assert "_ARGCOMPLETE" in completion and "passgate" in completion


def test_the_unpacked_commands_run(deb, tmp_path):
    """The venv as the device has it (same python, Debian's numpy stands in for none here)."""
    run("dpkg-deb", "-x", str(deb), str(tmp_path), check=True)
    venv = tmp_path / "opt/passgate/venv"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(venv / "lib/python3.11/site-packages")}
    for cmd in ("passgate", "passgate-collector"):
        # The entry point as shipped, with the venv's python (a symlink to the system's
        # python3.11, which is this machine's) and the unpacked site-packages.
        script = (venv / "bin" / cmd).read_text()
        assert script.startswith("#!/bin/sh\nexec /opt/passgate/venv/bin/python3 ")
        local = script.replace("/opt/passgate/venv/bin/python3", "python3")
        res = run("sh", "-c", local.split("\n", 1)[1], cmd, "--version", env=env)
        assert res.stdout.strip() == f"{cmd} {version()}", res.stderr[-2000:]


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian not installed")
def test_lintian_reports_no_error(deb):
    res = run("lintian", "--no-tag-display-limit", str(deb), timeout=900)
    errors = [line for line in res.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "\n".join(errors[:20])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
