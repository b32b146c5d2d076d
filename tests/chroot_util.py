"""Shared helpers for the tests that run passgate inside a Debian root (chroot, disk image).

A minimal Debian root is built once with debootstrap and cached as a tarball, so later runs
(and the other tests that need a root) only unpack it. Needs root and debootstrap; callers
mark their tests accordingly.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "passgate"
CACHE = CACHE_DIR / f"{SUITE}-minbase.tar"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run a command, capturing text output (``check`` and ``timeout`` pass through)."""
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def make_root(root: Path) -> None:
    """A minimal Debian root in ``root`` (created): from the cached tarball, else debootstrap.

    Skips the calling test with the reason when debootstrap cannot reach a Debian mirror.
    """
    if CACHE.exists():
        root.mkdir(parents=True)
        run("tar", "-xf", str(CACHE), "-C", str(root), check=True)
        return
    res = run("debootstrap", "--variant=minbase", SUITE, str(root), "http://deb.debian.org/debian",
              timeout=900)
    if res.returncode != 0:
        pytest.skip(f"debootstrap failed (no Debian mirror?): {res.stderr[-500:]}")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    part = CACHE.with_suffix(".tar.part")
    run("tar", "-cf", str(part), "-C", str(root), ".", check=True)
    part.replace(CACHE)  # another test reading the cache never sees half a tarball


def trust_host_ca(root: Path) -> None:
    """Hand the host's CA bundle to the root.

    This machine reaches PyPI through a TLS-inspecting gateway whose CA only the host trusts;
    update-ca-certificates keeps the copy under /usr/local/share when it reruns in the root.
    """
    if HOST_CA.exists():
        for rel in ("usr/local/share/ca-certificates/host-bundle.crt",
                    "etc/ssl/certs/ca-certificates.crt"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(HOST_CA, root / rel)


def source_files() -> list[str]:
    """The committed tree plus untracked, not ignored files (what CI clones), or [] without git."""
    res = run("git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
              "--exclude-standard")
    if res.returncode != 0:
        return []
    return [f for f in res.stdout.split("\0") if f and (REPO / f).is_file()]


def copy_source(dest: Path) -> None:
    """Copy the source tree to ``dest`` so the test installs what CI clones."""
    files = source_files()
    if not files:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__"))
        return
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)


def mode(path: Path) -> str:
    """The permission bits of ``path`` as ``0o...`` (no symlink following)."""
    return oct(stat.S_IMODE(path.lstat().st_mode))


def owner(root: Path, path: str) -> str:
    """``user:group`` of ``path`` inside the root, by the root's own user database."""
    return run("chroot", str(root), "stat", "-c", "%U:%G", path).stdout.strip()
