"""The console in a real browser, at a phone's width (390 px) and a desktop's (1280 px):
``passgate-collector serve`` over real HTTP, headless Chromium driven through chromedriver's
W3C WebDriver protocol (plain HTTP+JSON, no client library). At each width: nothing runs off
the screen (``scrollWidth <= innerWidth``), a new scan appears in the live feed without a
reload, an alert is acknowledged, a filter is applied, the filtered view is exported, and the
charts draw, and the same in Russian after the page's language switch. Screenshots go to
$PASSGATE_SCREENSHOT_DIR when set (docs/screens/console-*.png, console-*-ru-*.png).
Skipped only when Chromium or chromedriver is not installed."""

from __future__ import annotations

import base64
import csv
import http.client
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from collector_support import STAFF_PASSWORD, FakeDevice, pass_hash
from passgate_collector.cli import main as collector_cli
from test_collector_browser import CHROMIUM, Live, free_port

DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="Chromium or chromedriver not installed")
WIDTHS = {390: 844, 1280: 900}


class Browser:
    """One chromedriver and one headless Chromium session: just the calls these tests use."""

    def __init__(self, tmp: Path, width: int, height: int) -> None:
        self.port = free_port()
        self.log = open(tmp / f"chromedriver-{width}.log", "w")  # noqa: SIM115 - quit()
        self.proc = subprocess.Popen([DRIVER, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["value"]["ready"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp}/profile-{width}",
                f"--window-size={width},{height}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
        self.session = self._call("POST", "/session", caps)["value"]["sessionId"]
        # Headless windows may keep a minimum width: pin the viewport exactly.
        self.cdp("Emulation.setDeviceMetricsOverride", width=width, height=height,
                 deviceScaleFactor=1, mobile=width < 700)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            data = json.loads(conn.getresponse().read() or b"{}")
        finally:
            conn.close()
        value = data.get("value")
        if isinstance(value, dict) and "error" in value:
            raise AssertionError(f"webdriver {path}: {value['error']}: {value.get('message')}")
        return data

    def s(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def cdp(self, cmd: str, **params) -> None:
        self.s("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def go(self, url: str) -> None:
        self.s("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args):
        return self.s("POST", "/execute/async", {"script": script, "args": list(args)})

    def click(self, css: str) -> None:
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        self.s("POST", f"/element/{next(iter(el.values()))}/click", {})

    def wait_for(self, script: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for: {script}"
            time.sleep(0.25)

    def fits(self) -> tuple[int, int]:
        return tuple(self.js("return [document.documentElement.scrollWidth, innerWidth];"))

    def screenshot(self, name: str, tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(base64.b64decode(self.s("GET", "/screenshot")))
        keep = os.environ.get("PASSGATE_SCREENSHOT_DIR")
        if keep:
            shutil.copy(path, Path(keep) / name)
        return path

    def quit(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(10)
            self.log.close()


@pytest.fixture
def live(tmp_path, monkeypatch):
    server = Live(tmp_path)
    # Every console page needs a session: a supervisor (acknowledge and export are theirs).
    monkeypatch.setattr("sys.stdin", io.StringIO(STAFF_PASSWORD + "\n"))
    assert collector_cli(["user", "add", "sup", "--role", "supervisor", "--password-stdin",
                          "--db", server.db]) == 0
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture
def fleet(live, capsys):
    """Three checkpoints, two at a Moscow site; denials, a shared pass, dead letters."""
    t0 = time.time() - 1800
    devs = {n: FakeDevice(n) for n in ("gate-north", "gate-south", "gate-west")}
    for name, dev in devs.items():
        assert live.request("POST", "/v1/enrol", dev.enrol_body(live.token(name, capsys)))[0] \
            == 201
    assert collector_cli(["site", "set", "moscow-centre", "--tz", "Europe/Moscow", "--device",
                          "gate-north", "--device", "gate-south", "--db", live.db]) == 0
    north, south, west = devs.values()
    north.scans(12, t0=t0, step=60)
    north.scan(t0 + 800, verdict="deny", reason="expired", ph=pass_hash(90))
    north.scan(t0 + 810, verdict="deny", reason="wrong_zone", ph=pass_hash(91), zone="vault")
    north.scan(t0 + 900, ph=pass_hash(77))
    south.scan(t0 + 930, ph=pass_hash(77))  # the same pass 30 s later: possible sharing
    south.scans(3, t0=t0 + 1000, verdict="deny", reason="revoked")
    for i in range(4):
        west.scan(t0 + 200 + 60 * i, ph=pass_hash(200 + i))
    now = int(time.time())
    for dev, status in ((north, {"backlog": 0, "clock_state": "trusted", "firmware": "0.3.0"}),
                        (south, {"backlog": 2, "clock_state": "trusted", "dead_letters": 1}),
                        (west, {"backlog": 0, "clock_state": "trusted"})):
        body = dev.batch_body(dev.rows, status=status, sent_at=now)
        assert live.request("POST", "/v1/batches", body)[0] == 200
    capsys.readouterr()
    return devs


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_console_in_headless_chromium(live, fleet, tmp_path, width):
    base = f"http://127.0.0.1:{live.port}/console/"
    b = Browser(tmp_path, width, WIDTHS[width])
    try:
        b.go(base)  # sent to the sign-in form first, then back to the console
        b.wait_for("return location.pathname === '/login';")
        b.js("document.querySelector('#name').value = 'sup';"
             "document.querySelector('#password').value = arguments[0];", STAFF_PASSWORD)
        b.click("button[type=submit]")
        b.wait_for("return location.pathname === '/console/';")
        assert b.js("return innerWidth;") == width
        sw, iw = b.fits()
        assert sw <= iw, f"the alerts page is {sw} px wide at {iw}"
        assert b.js("return document.querySelector('#alerts .alert').dataset.kind;") == "sharing"
        assert "of 3 checkpoints need" in b.js("return document.querySelector('.summary')"
                                              ".textContent;")
        b.screenshot(f"console-alerts-{width}.png", tmp_path)

        # Live: a denial uploaded now shows up in the feed without a reload.
        b.js("window.__same_page = true;")
        north = fleet["gate-north"]
        north.scan(time.time() - 5, verdict="deny", reason="wrong_zone", ph=pass_hash(92))
        assert live.request("POST", "/v1/batches", north.batch_body(north.rows[-1:]))[0] == 200
        b.wait_for("return [...document.querySelectorAll('#feed tr.new')].some("
                   "r => r.textContent.includes('not valid here'));")
        assert b.js("return window.__same_page === true;")  # no reload happened

        # Acknowledge the first alert: it leaves the open list for the collapsed one.
        key = b.js("return document.querySelector('#alerts .alert').dataset.key;")
        b.click("#alerts .alert .ack button")
        b.wait_for("return document.querySelector('details.acked') !== null;")
        assert b.js("return [...document.querySelectorAll('#alerts .alert')]"
                    ".every(a => a.dataset.key !== arguments[0]);", key)
        assert b.js("return document.querySelector('details.acked')"
                    ".querySelector('[data-key=\"' + arguments[0] + '\"]') !== null;", key)
        assert b.fits()[0] <= width

        # Filter: refused scans only, through the form.
        b.go(base + "scans")
        b.js("document.querySelector('select[name=verdict]').value = 'deny';")
        b.click("#filters button[type=submit]")
        b.wait_for("return location.search.includes('verdict=deny');")
        verdicts = b.js("return [...document.querySelectorAll('#results tr.scan')]"
                        ".map(r => r.classList.contains('deny'));")
        assert len(verdicts) == 6 and all(verdicts)
        sw, iw = b.fits()
        assert sw <= iw, f"the scans page is {sw} px wide at {iw}"
        b.screenshot(f"console-scans-{width}.png", tmp_path)

        # Export the filtered view: the link the page offers, fetched by the page.
        text = b.js_async("const done = arguments[0];"
                          "fetch(document.getElementById('export').href)"
                          ".then(r => r.text()).then(done);")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 6 and {r["verdict"] for r in rows} == {"deny"}
        assert all(r["time_utc"].endswith("Z") for r in rows)

        b.go(base + "charts")
        b.wait_for("return typeof Chart !== 'undefined' && Chart.getChart('per-site') "
                   "!== undefined && Chart.getChart('reasons') !== undefined;")
        assert b.fits()[0] <= width
        b.screenshot(f"console-charts-{width}.png", tmp_path)

        b.go(base + "checkpoint/gate-north")
        assert b.fits()[0] <= width
        b.screenshot(f"console-checkpoint-{width}.png", tmp_path)
        assert b.js("return [...document.querySelectorAll('[src],[href]')].every(e => "
                    "(e.src || e.href).startsWith(location.origin));")

        # Russian (issue 14): the switch on the page, remembered on the next pages; the
        # longer words still fit the narrow screen.
        b.go(base)
        b.click(".lang-switch a[hreflang=ru]")
        b.wait_for("return document.documentElement.lang === 'ru';")
        assert "КПП" in b.js("return document.querySelector('.summary').textContent;")
        assert b.fits()[0] <= width
        b.screenshot(f"console-alerts-ru-{width}.png", tmp_path)
        for page in ("scans?verdict=deny", "charts", "checkpoint/gate-north"):
            b.go(base + page)  # no ?lang=: the cookie remembers
            b.wait_for("return document.documentElement.lang === 'ru';")
            if page == "charts":
                b.wait_for("return typeof Chart !== 'undefined' && "
                           "Chart.getChart('reasons') !== undefined;")
            sw, iw = b.fits()
            assert sw <= iw, f"{page} in Russian is {sw} px wide at {iw}"
            b.screenshot(f"console-{page.split('?')[0].split('/')[0]}-ru-{width}.png",
                         tmp_path)
    finally:
        b.quit()
