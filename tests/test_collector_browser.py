"""End to end, as staff would see it: ``passgate-collector serve`` (waitress, real HTTP on
127.0.0.1), devices enrolling and uploading over the wire (one of them tampered with), then
Debian's headless Chromium, driven through chromedriver (``webdriver_support``), signs in
through the real form with an account made by ``passgate-collector user add`` and loads the
staff page: its DOM is checked and a screenshot is taken. Anonymous Chromium gets only the
sign-in form. Skipped only when no Chromium or chromedriver binary is installed."""

from __future__ import annotations

import http.client
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from collector_support import STAFF_PASSWORD, FakeDevice, pass_hash
from passgate.clock.tokens import load_time_keys, verify_token
from passgate_collector import protocol
from passgate_collector.cli import main as collector_cli
from webdriver_support import CHROMEDRIVER, CHROMIUM, Browser

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium not installed (Debian packages: chromium chromium-driver)")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,2200"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """A running collector process and a tiny HTTP client for it."""

    def __init__(self, tmp: Path) -> None:
        self.db = f"sqlite:///{tmp}/collector.db"
        self.port = free_port()
        assert collector_cli(["time-key", "new", "--out", str(tmp / "keys")]) == 0
        self.time_pub = tmp / "keys" / "time.pub"
        self.log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "passgate_collector.cli", "serve", "--db", self.db,
             "--port", str(self.port), "--time-key", str(tmp / "keys" / "time.key")],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.request("GET", "/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None, (tmp / "server.log").read_text()
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes = b"", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body or None,
                         headers={"Content-Type": "application/cbor", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def token(self, device: str, capsys) -> str:
        assert collector_cli(["token", "new", "--device", device, "--db", self.db]) == 0
        return capsys.readouterr().out.strip()

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; returns the exit code."""
        self.proc.terminate()
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.log.close()
        return code


@pytest.fixture
def live(tmp_path, monkeypatch):
    server = Live(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(STAFF_PASSWORD + "\n"))
    assert collector_cli(["user", "add", "guard", "--role", "viewer", "--password-stdin",
                          "--db", server.db]) == 0
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path, 1280, 2200)
    yield b
    b.close()


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path)


def test_staff_page_in_headless_chromium(live, browser, tmp_path, capsys):
    t0 = time.time() - 1800  # data time only; nothing below asserts the wall clock
    north, south, west = FakeDevice("gate-north"), FakeDevice("gate-south"), FakeDevice("gate-west")
    for dev in (north, south, west):
        assert live.request("POST", "/v1/enrol", dev.enrol_body(live.token(dev.device_id,
                                                                           capsys)))[0] == 201
    shared = pass_hash(77)
    north.scans(6, t0=t0)
    north.scan(t0 + 100, ph=shared)
    north.scan(t0 + 110, verdict="deny", reason="expired", ph=pass_hash(90))
    south.scan(t0 + 130, ph=shared)  # the same pass 30 s later at another checkpoint
    south.scans(3, t0=t0 + 200, verdict="deny", reason="revoked")
    edited = [dict(r) for r in south.rows]
    edited[2]["verdict"], edited[2]["reason"] = "accept", "valid"  # edited on the device

    north_batch = north.batch_body(north.rows, sent_at=int(time.time()),
                                   status={"backlog": 0, "clock_state": "trusted"})
    status, body, headers = live.request("POST", "/v1/batches", north_batch)
    assert status == 200
    # The signed time token in the answer verifies with the time key a device would pin.
    token = verify_token(protocol.unb64url(headers["passgate-time"]),
                         load_time_keys(live.time_pub), "gate-north")
    assert token.device_id == "gate-north"
    # South's clock is months behind: only an echoed liveness challenge makes its batch
    # fresh (issue 11), so its health and offset are shown.
    challenge = protocol.unb64url(headers["passgate-challenge"])
    assert live.request("POST", "/v1/batches", south.batch_body(
        edited, status={"backlog": 12, "clock_state": "floor"}, challenge=challenge))[0] == 200
    west.scans(2, t0=t0)
    forged = west.batch_body(west.rows, key=Ed25519PrivateKey.generate())
    assert live.request("POST", "/v1/batches", forged)[0] == 401  # unauthenticated

    url = f"http://127.0.0.1:{live.port}/"
    anonymous = chromium(tmp_path, "--dump-dom", url)
    assert anonymous.returncode == 0, anonymous.stderr[-2000:]
    assert 'action="/login"' in anonymous.stdout and "gate-north" not in anonymous.stdout

    browser.open(url)
    assert browser.url().startswith(f"{url}login")
    browser.type("#name", "guard")
    browser.type("#password", STAFF_PASSWORD)
    browser.click("button[type=submit]")
    browser.wait_for_url(url)
    html = browser.source()
    assert '<span class="user">guard</span> (viewer)' in html
    assert "<h1>passgate collector</h1>" in html
    # Tamper alerts: the forged batch and the edited row.
    assert 'data-kind="bad_signature" data-device="gate-west"' in html
    assert 'data-kind="chain_mismatch" data-device="gate-south"' in html
    assert 'data-problem="chain_mismatch"' in html
    # Device health for all three; the backlog the south gate reported.
    for dev in ("gate-north", "gate-south", "gate-west"):
        assert f'<tr class="device" data-device="{dev}">' in html
    assert '<td class="backlog">12</td>' in html
    assert '<td class="offset warn">' in html  # gate-south's clock is months behind
    # Possible sharing: the pass seen at north then south, 30 s apart.
    assert f'data-pass="{shared.hex()[:12]}"' in html and "30.0 s" in html
    # Denials by reason.
    assert 'data-reason="revoked"><td>revoked</td><td class="count">2<' in html
    assert 'data-reason="expired"><td>expired</td><td class="count">1<' in html
    # Recent scans per checkpoint.
    assert '<table class="scans" data-device="gate-north">' in html
    assert '<table class="scans" data-device="gate-south">' in html

    png = tmp_path / "staff.png"
    browser.screenshot(png)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (1280, 2200)
        # Not a blank page: the alert rows' red background is there.
        colours = {c for _n, c in img.convert("RGB").getcolors(1 << 20)}
        assert (0xFD, 0xE8, 0xE8) in colours
    keep = os.environ.get("PASSGATE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(png, Path(keep) / "collector-staff.png")

    assert live.stop() == 0  # SIGTERM is a clean stop
    assert "collector stopped" in (tmp_path / "server.log").read_text()
