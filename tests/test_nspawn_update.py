"""The real package under real systemd: boot, watchdog, first boot, then updates from a
collector on 127.0.0.1 (issue 13 point 7). Slow; needs root, systemd-nspawn and the package.

A Debian bookworm root (debootstrap, cached) gets systemd and the package built by
``./setup.sh package``, and a device file on /boot/firmware; it boots with
``systemd-nspawn -b --register=no --keep-unit``. Checked, in order:

1. first boot applies the device file once (then deletes it; its unit does not run again);
2. the scanner and the sync agent run under their sandboxing (no capabilities, seccomp, the
   scanner without network); the scanner reaches READY (no camera here: it shows its fault
   and stays READY);
3. the watchdog restarts a SIGSTOPped scanner (new PID);
4. from releases served by ``passgate-collector serve --releases``: an update to v+1 runs the
   new version (new scanner PID, new ``--version``); a deliberately broken v+2 (its scanner
   exits at start) fails its health check and the device rolls back to v+1 by itself; a
   release signed by a key the roots did not authorise, planted in the collector's folder
   as a stolen collector could, is refused. The time an update and a rollback take is
   printed (docs/technician.md, "Updating a fleet").

Until ``./setup.sh package`` exists (issue 13's package half) there is nothing to boot: the
test skips with that reason, except under CI=true, where it fails.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import Fleet
from chroot_util import CACHE_DIR, REPO, copy_source, run, source_files
from nspawn_util import Container, chroot, make_systemd_root
from passgate.bundle import build_bundle
from passgate.passes.keys import raw_public
from passgate.release import ReleaseAuth, sign_release

pytestmark = [
    pytest.mark.slow,
    # Three package builds and a boot in the first test's setup: minutes, not the default 10.
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, nspawn)"),
    pytest.mark.skipif(shutil.which("systemd-nspawn") is None,
                       reason="systemd-nspawn not installed (apt: systemd-container)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap not installed"),
]

SCANNER, SYNC = "passgate-scanner.service", "passgate-sync.service"
DEVICE = "gate-nspawn-1"
# The package puts the command on PATH or at least in /opt/passgate (its units run it there).
PG = "$(command -v passgate || echo /opt/passgate/venv/bin/passgate)"


def _has_package_command() -> bool:
    return re.search(r"^\s*package\)", (REPO / "setup.sh").read_text(), re.M) is not None


def _version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]


def _bump(version: str, n: int) -> str:
    parts = [int(p) for p in version.split(".")]
    parts[-1] += n
    return ".".join(map(str, parts))


def _build(work: Path, version: str, out: Path, broken: bool = False) -> Path:
    """``./setup.sh package`` of this tree with ``version`` (and, broken, a scanner that
    exits at start: its health check can only fail)."""
    src = work / f"src-{version}"
    copy_source(src)
    for rel, pattern in (("pyproject.toml", r'^version = "[^"]+"'),
                         ("firmware/passgate/__init__.py", r'^__version__ = "[^"]+"')):
        path = src / rel
        text = path.read_text()
        key = pattern.split(" =")[0].lstrip("^")
        path.write_text(re.sub(pattern, f'{key} = "{version}"', text, flags=re.M))
    if broken:
        run_py = src / "firmware/passgate/cli/run.py"
        run_py.write_text(run_py.read_text() + '\n\ndef run(args):  # broken on purpose (test)\n'
                          '    raise SystemExit("broken release")\n')
    res = run("./setup.sh", "package", "--arch", "amd64", "--out", str(out), cwd=src,
              timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    deb = out / f"passgate_{version}_amd64.deb"
    assert deb.exists(), sorted(p.name for p in out.iterdir())
    return deb


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    if not _has_package_command():
        if os.environ.get("CI") == "true":
            pytest.fail("./setup.sh package does not exist: CI must boot the real package")
        pytest.skip("./setup.sh package does not exist yet (issue 13's package half): "
                    "nothing to install and boot")
    base = _version()
    # Cached by the content of what goes into the package: re-runs of the boot test on an
    # unchanged tree (to show a fix holds) boot the same three packages without rebuilding.
    cache = CACHE_DIR / f"nspawn-debs-{_package_inputs_digest()}"
    names = {"base": base, "v1": _bump(base, 1), "v2": _bump(base, 2)}
    if all((cache / f"passgate_{v}_amd64.deb").exists() for v in names.values()):
        return {k: cache / f"passgate_{v}_amd64.deb" for k, v in names.items()}
    work = tmp_path_factory.mktemp("debs")
    built = {"base": _build(work, base, work / "out"),
             "v1": _build(work, names["v1"], work / "out"),
             "v2": _build(work, names["v2"], work / "out", broken=True)}
    part = cache.with_suffix(".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    for deb in built.values():
        shutil.copy(deb, part / deb.name)
    shutil.rmtree(cache, ignore_errors=True)
    part.replace(cache)
    return {k: cache / deb.name for k, deb in built.items()}


def _package_inputs_digest() -> str:
    """SHA-256 over the files a package is built from (deploy/package.sh's inputs: not the
    docs, the tests or the install and image scripts)."""
    return _inputs_digest(REPO, source_files())


def _inputs_digest(root: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        if rel.startswith(("firmware/", "collector/", "systemd/", "requirements/",
                           "deploy/debian/")) \
                or rel in ("pyproject.toml", "babel.cfg", "deploy/package.sh",
                           "deploy/manpage.py"):
            h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Office:
    """The keys at the desk and a collector serving releases on 127.0.0.1."""

    def __init__(self, work: Path) -> None:
        self.work, self.fleet = work, Fleet()
        self.release_key = Ed25519PrivateKey.generate()
        self.port = _free_port()
        self.db = f"sqlite:///{work / 'collector.db'}"
        self.releases = work / "releases"
        now = int(time.time())
        roots = self.fleet.roots
        auth = ReleaseAuth((raw_public(self.release_key),), _version())
        self.bundle = build_bundle(self.fleet.content(), roots.keys[: roots.threshold], 1,
                                   now - 60, now + 7 * 86400, releases=auth)
        (work / "bundle.pgb").write_bytes(self.bundle)
        assert self.cli("bundle", "publish", str(work / "bundle.pgb")).returncode == 0
        tok = self.cli("token", "new", "--device", DEVICE)
        assert tok.returncode == 0, tok.stderr
        self.token = tok.stdout.strip().split()[-1]
        self.log = (work / "collector.log").open("wb")
        self.proc = subprocess.Popen(
            [*self._exe(), "serve", "--db", self.db, "--port", str(self.port), "--releases",
             str(self.releases)], stdout=self.log, stderr=subprocess.STDOUT)

    @staticmethod
    def _exe() -> list[str]:
        return [sys.executable, "-c", "import sys; from passgate_collector.cli import main; "
                "sys.exit(main())"]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        extra = ["--db", self.db] if args[0] in ("bundle", "token") else [
            "--db", self.db, "--releases", str(self.releases)]
        return run(*self._exe(), *args, *extra, timeout=120)

    def sign(self, deb: Path, version: str, key: Ed25519PrivateKey | None = None) -> Path:
        now = int(time.time())
        rel = deb.with_suffix(".release")
        rel.write_bytes(sign_release(key or self.release_key, version, "amd64",
                                     deb.read_bytes(), now - 60, now + 86400))
        return rel

    def publish(self, deb: Path, version: str) -> None:
        res = self.cli("release", "publish", str(self.sign(deb, version)), str(deb))
        assert res.returncode == 0, res.stderr

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def _device_file(office: Office) -> str:
    keys = ",\n".join(f'    "{raw_public(k).hex()}"' for k in office.fleet.roots.keys)
    return f"""format = 1
[device]
id = "{DEVICE}"
zone = "gate-1"
[sync]
collector_url = "http://127.0.0.1:{office.port}"
enrol_token = "{office.token}"
[trust]
bundle = "passgate-bundle.bin"
[trust.roots]
threshold = {office.fleet.roots.threshold}
keys = [
{keys},
]
[journal]
pass_hash_key = "{os.urandom(32).hex()}"
"""


@pytest.fixture(scope="module")
def device(debs, tmp_path_factory):
    work = tmp_path_factory.mktemp("nspawn")
    office = Office(work)
    root = work / "root"
    make_systemd_root(root)
    shutil.copy(debs["base"], root / "tmp" / debs["base"].name)
    (root / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
    chroot(root, "apt-get", "update", "-qq", timeout=900)
    res = chroot(root, "apt-get", "install", "-y", "-qq", f"/tmp/{debs['base'].name}",
                 timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    boot = root / "boot/firmware"
    boot.mkdir(parents=True, exist_ok=True)
    (boot / "passgate-device.toml").write_text(_device_file(office))
    (boot / "passgate-bundle.bin").write_bytes(office.bundle)
    office.publish(debs["base"], _version())  # the way back for the first update
    box = Container(root, work / "console.log")
    try:
        box.wait_for("systemctl is-system-running --wait | grep -Eq 'running|degraded'",
                     timeout=180)
        yield box, office
    finally:
        box.close()
        office.close()


def _ready(box: Container, timeout: float = 90) -> str:
    box.wait_for(f"systemctl show -p ActiveState,SubState {SCANNER} | tr '\\n' ' ' | "
                 "grep -q 'ActiveState=active SubState=running'", timeout=timeout)
    return box.prop(SCANNER, "MainPID")


def test_1_first_boot_applies_the_device_file_once(device):
    box, _office = device
    assert box.prop("passgate-firstboot.service", "Result") == "success"
    assert not (box.root / "boot/firmware/passgate-device.toml").exists()
    assert box.sh("systemctl start passgate-firstboot.service").returncode == 0
    assert box.prop("passgate-firstboot.service", "ConditionResult") == "no"  # not again


def test_2_units_start_under_their_sandboxing_and_the_scanner_is_ready(device):
    box, _office = device
    pid = _ready(box)
    status = box.sh(f"cat /proc/{pid}/status").stdout
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^Seccomp:\s+2$", status,
                                                                   re.M)
    assert box.prop(SCANNER, "PrivateNetwork") == "yes"
    assert box.prop(SCANNER, "ProtectSystem") == "strict"
    box.wait_for(f"systemctl is-active {SYNC}", timeout=60)
    sync_pid = box.prop(SYNC, "MainPID")
    assert re.search(r"^CapEff:\s+0+$", box.sh(f"cat /proc/{sync_pid}/status").stdout, re.M)


def test_3_the_watchdog_restarts_a_stopped_scanner(device):
    box, _office = device
    pid = _ready(box)
    restarts = int(box.prop(SCANNER, "NRestarts"))
    assert box.sh(f"kill -STOP {pid}").returncode == 0
    t0 = time.monotonic()
    box.wait_for(f"test \"$(systemctl show -p MainPID --value {SCANNER})\" != {pid}",
                 timeout=60)
    new = _ready(box)
    assert new != pid and int(box.prop(SCANNER, "NRestarts")) > restarts
    journal = box.sh(f"journalctl -u {SCANNER} -b --no-pager").stdout
    assert "Watchdog timeout" in journal
    print(f"\nwatchdog restart after SIGSTOP: {time.monotonic() - t0:.1f} s")


class _StolenCollector:
    """``GET /v1/release/target`` names ``version`` for every device; ``/v1/release/files/``
    serves the folder as it is (what a collector whose code an attacker replaced can do)."""

    def __init__(self, folder: Path, version: str) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.startswith("/v1/release/target"):
                    body = json.dumps({"version": version}).encode()
                elif self.path.startswith("/v1/release/files/"):
                    f = folder / self.path.rsplit("/", 1)[1]
                    body = f.read_bytes() if f.is_file() else b""
                else:
                    body = b""
                self.send_response(200 if body else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


_RUNS: list[subprocess.CompletedProcess] = []  # the runs by hand, for the printout


def _update(box: Container) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    res = box.sh(f"{PG} update --health-timeout 60", timeout=900)
    _RUNS.append(res)
    return res, time.monotonic() - t0


def test_4_update_rollback_and_an_unauthorised_release(device, debs, capsys):
    box, office = device
    v1, v2 = _bump(_version(), 1), _bump(_version(), 2)
    before = _ready(box)
    office.publish(debs["v1"], v1)
    assert office.cli("release", "rollout", v1).returncode == 0
    res, took_update = _update(box)
    assert res.returncode == 0, res.stdout + res.stderr
    assert v1 in box.sh(f"{PG} --version").stdout
    after = _ready(box)
    assert after != before  # restarted: the new code runs, not the old process

    office.publish(debs["v2"], v2)
    assert office.cli("release", "rollout", v2).returncode == 0
    # The timer's run starting while one by hand works (what made this test flaky: systemd
    # re-draws the timer's random delay at every daemon-reload and fires it when the draw
    # lands in the past, and each install reloads): started on purpose here, a second after
    # the run by hand. One waits for the other's lock; both end on the same state.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        by_hand = pool.submit(_update, box)
        time.sleep(1.0)
        assert box.sh("systemctl start --no-block passgate-update.service").returncode == 0
        res, took_rollback = by_hand.result()
    assert res.returncode == 1 and "rolled_back" in res.stdout, res.stdout + res.stderr
    # A oneshot that exits 1 (it reports the rollback) ends "failed", one that exits 0
    # "inactive": either way it is done.
    box.wait_for("systemctl show -p ActiveState --value passgate-update.service "
                 "| grep -Eqx 'inactive|failed'", timeout=600)
    unit_log = box.sh("journalctl -b --no-pager -o cat -u passgate-update.service").stdout
    assert "rolled_back" in unit_log, unit_log[-3000:]  # it reports what the other left
    assert "another update run holds" in unit_log + res.stderr, unit_log[-3000:]
    assert v1 in box.sh(f"{PG} --version").stdout
    assert f"installed {v1}" == box.sh("dpkg-query -W -f='${db:Status-Status} ${Version}' "
                                       "passgate").stdout.strip()
    _ready(box)

    # A release signed by a key the roots never authorised, planted beside the genuine
    # ones as a stolen collector could (publish refuses it), is refused by the device.
    v3 = _bump(_version(), 3)
    forged = office.releases / f"passgate_{v3}_amd64.deb"
    shutil.copy(debs["v1"], forged)
    rel = office.sign(forged, v3, key=Ed25519PrivateKey.generate())
    assert office.cli("release", "publish", str(rel), str(forged)).returncode == 2
    (office.releases / "rollout.json").write_text(f'{{"stable": "{v3}"}}')
    res, _ = _update(box)  # the honest collector names no release that does not verify
    assert res.returncode == 0 and "up_to_date" in res.stdout, res.stdout + res.stderr
    # A stolen collector runs whatever code it likes: a stand-in names the forged release and
    # serves its files; the device checks the signature against its bundle and refuses.
    with _StolenCollector(office.releases, v3) as url:
        t0 = time.monotonic()
        res = box.sh(f"{PG} update --health-timeout 60 --collector {url}", timeout=600)
        took_refusal = time.monotonic() - t0
    assert res.returncode == 1 and "not_authorised" in res.stdout, res.stdout + res.stderr
    assert v1 in box.sh(f"{PG} --version").stdout
    digest = hashlib.sha256(forged.read_bytes()).hexdigest()[:12]
    # Runs the timer started beside the ones by hand (they wait on the updater's lock).
    units = box.sh("journalctl -b --no-pager -o cat -u passgate-update.service "
                   "| grep -cE '^Starting|^Started|^Finished' || true").stdout.strip()
    waited = int(box.sh("journalctl -b --no-pager -o cat | grep -c 'another update run "
                        "holds' || true").stdout.strip() or 0)
    waited += sum("another update run holds" in r.stderr for r in _RUNS)
    with capsys.disabled():
        print(f"\npassgate-update.service lines (timer runs) this boot: {units}; "
              f"runs that waited for another's lock: {waited}")
        print(f"\nupdate to {v1}: {took_update:.1f} s; broken {v2} rolled back to {v1}: "
              f"{took_rollback:.1f} s; forged {v3} ({digest}) refused in {took_refusal:.1f} s")
