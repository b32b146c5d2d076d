"""A small W3C WebDriver client for Debian's chromedriver, so browser tests can fill in forms
(sign-in) and keep a session: ``chromium --dump-dom`` cannot. Standard library only (the
protocol is JSON over HTTP on 127.0.0.1); no Selenium.

``Browser(tmp_path, width, height)`` starts chromedriver and a headless Chromium whose
viewport is exactly width x height (a phone below 600 px); ``open``,
``type``, ``click``, ``source``, ``url`` and ``screenshot`` are the WebDriver commands of the
same names, ``js``/``js_async`` run a script in the page (``execute/sync``/``async``),
``cdp`` sends a Chrome DevTools command, ``wait_for_url`` waits for a form's next page,
``wait_for`` for a script to return something true; ``close()`` ends both (also on
failure, through the fixture that made it).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C element reference key
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(AssertionError):
    pass


class Browser:
    def __init__(self, tmp: Path, width: int = 1280, height: int = 900) -> None:
        self.port = _free_port()
        self.log = open(tmp / f"chromedriver-{self.port}.log", "w")  # noqa: SIM115 - close()
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.session = None
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        profile = tmp / f"profile-{self.port}"
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"]}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]
        # The window includes a little browser frame even headless: pin the viewport itself,
        # so pages are laid out (and screenshots taken) at exactly width x height.
        self._s("POST", "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride",
                                              "params": {"width": width, "height": height,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": width < 600}})

    def _call(self, method: str, path: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            answer = json.loads(conn.getresponse().read() or b"{}")
        finally:
            conn.close()
        value = answer.get("value")
        if isinstance(value, dict) and "error" in value:
            raise WebDriverError(f"{value['error']}: {value.get('message', '')[:300]}")
        return value

    def _s(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def _find(self, css: str) -> str:
        found = self._s("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict) and ELEMENT in found, found
        return found[ELEMENT]

    def type(self, css: str, text: str) -> None:
        self._s("POST", f"/element/{self._find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self._s("POST", f"/element/{self._find(css)}/click", {})

    def source(self) -> str:
        return self._s("GET", "/source")

    def url(self) -> str:
        return self._s("GET", "/url")

    def wait_for_url(self, url: str, timeout: float = 30.0) -> None:
        """Wait until the page at ``url`` has loaded: a click that submits a form returns
        before the next page arrives (and sign-in hashes a password first)."""
        deadline = time.monotonic() + timeout
        while self.url() != url or self._s("POST", "/execute/sync", {
                "script": "return document.readyState", "args": []}) != "complete":
            assert time.monotonic() < deadline, f"still at {self.url()}, waiting for {url}"
            time.sleep(0.1)

    def js(self, script: str, *args):
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args):
        """Run ``script``; it ends by calling ``arguments[arguments.length - 1](value)``."""
        return self._s("POST", "/execute/async", {"script": script, "args": list(args)})

    def cdp(self, cmd: str, **params):
        return self._s("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def wait_for(self, script: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for: {script}"
            time.sleep(0.1)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._s("GET", "/screenshot")))

    def close(self) -> None:
        try:
            if self.session is not None:
                self._s("DELETE", "")
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.log.close()
