"""Where releases come from: the collector's release endpoints (docs/collector.md).

``GET /v1/release/target?device=ID&site=S&arch=A&have=V`` answers ``{"version": "0.2.0"}``
(JSON) or 204 when the collector has no plan for this device; ``GET /v1/release/files/NAME``
serves a ``.release`` or ``.deb`` file. Nothing here is trusted: the answer only picks which
signed release to try, and every byte is checked against the signed manifest afterwards.

Rules kept: a reply is read to at most ``cap`` bytes plus one, so a collector (or anyone in
between) cannot feed endless data; any failure is an :class:`UpdateError` with the reason.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from passgate.errors import UpdateError

MAX_TARGET_REPLY = 4096


class ReleaseSource(Protocol):
    def target(self, installed: str | None) -> str | None: ...
    def fetch(self, name: str, cap: int) -> bytes: ...


class HttpSource:
    def __init__(self, base_url: str, device: str, arch: str, site: str = "",
                 timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.device, self.arch, self.site, self.timeout = device, arch, site, timeout

    def target(self, installed: str | None) -> str | None:
        query = urllib.parse.urlencode(
            {"device": self.device, "arch": self.arch, "site": self.site, "have": installed or ""}
        )
        status, body = self._get(f"/v1/release/target?{query}", MAX_TARGET_REPLY)
        if status == 204:
            return None
        try:
            version = json.loads(body)["version"]
        except (ValueError, KeyError, TypeError):
            raise UpdateError("collector: release target is not {\"version\": ...}") from None
        if not isinstance(version, str):
            raise UpdateError("collector: release target version is not a string")
        return version

    def fetch(self, name: str, cap: int) -> bytes:
        return self._get(f"/v1/release/files/{urllib.parse.quote(name)}", cap)[1]

    def _get(self, path: str, cap: int) -> tuple[int, bytes]:
        url = self.base + path
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310
                body = resp.read(cap + 1)
                status = resp.status
        except urllib.error.HTTPError as exc:
            raise UpdateError(f"collector: {path.split('?')[0]}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise UpdateError(f"collector unreachable: {exc}") from None
        if len(body) > cap:
            raise UpdateError(f"collector: {path.split('?')[0]}: reply over {cap} bytes")
        return status, body
