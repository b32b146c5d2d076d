"""Releases on the collector: the signed files it serves, and which version each device runs.

A folder (``serve --releases DIR``) holds ``passgate_<v>_<arch>.release`` and ``.deb`` pairs
and ``rollout.json``. The collector cannot make a release: it holds no release key and no
root; it checks a release against the release keys of the newest bundle it serves before
taking it (the device checks again, against its own installed bundle, which is what
counts). So a stolen collector can at worst hold updates back or choose among genuine
signed releases, never above what the roots allow and never below their minimum.

The plan (``rollout.json``)::

    {"stable": "0.2.0", "canary": {"version": "0.3.0", "percent": 10},
     "sites": {"north": "0.3.0"}}

A device's target: its site's version if the site has one; else the canary version if its
bucket (the first 8 bytes of SHA-256 of its device id, modulo 10,000, over 100) is below the
percentage; else the stable version. The bucket depends only on the id, so the same devices
are the canary at 10 % and stay in it at 50 %, and raising the percentage only adds devices.
``rollout V --percent 100`` makes V stable and ends the canary.

Rules kept (tests/test_collector_releases.py): publish refuses a release not signed by a key
the newest bundle authorises, a package that does not match its manifest, and any version
below the roots' minimum; rollout refuses a version not published, or below the minimum; a
device is only ever told a version that is published for its architecture.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passgate.bundle import read_bundle
from passgate.errors import BundleRefused, ReleaseRefused, UsageError
from passgate.release import (
    ReleaseAuth,
    check_package,
    parse_version,
    release_file_name,
    verify_release,
)
from passgate.release.version import version_key
from passgate.util.atomicfile import write_atomic

from .store import SqlStore

PLAN_FILE = "rollout.json"
_FILE_NAME = re.compile(r"passgate_[0-9.]{1,40}_[a-z0-9]{1,10}\.(release|deb)")


def bucket(device_id: str) -> float:
    """The device's place in a percentage rollout, 0 <= b < 100, fixed by its id."""
    h = int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big")
    return (h % 10000) / 100


def release_auth(store: SqlStore) -> ReleaseAuth | None:
    """The release keys and minimum of the newest bundle this collector serves."""
    latest = store.latest_bundle()
    data = store.bundle_data(latest[0]) if latest else None
    if data is None:
        return None
    try:  # the collector holds no roots: the devices verify them; here only the content
        return read_bundle(data, None).root_manifest.releases
    except BundleRefused:
        return None


@dataclass(frozen=True)
class Published:
    version: str
    arch: str
    size: int
    expires: int


class ReleaseDir:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    # --- files ----------------------------------------------------------------------------

    def publish(self, release: bytes, deb: bytes, auth: ReleaseAuth | None,
                now: float) -> Published:
        try:
            rel = verify_release(release, auth, now=now)
            check_package(rel, [deb])
        except ReleaseRefused as exc:
            raise UsageError(f"release refused ({exc.reason}): {exc.detail}") from None
        self.folder.mkdir(parents=True, exist_ok=True)
        # the package first: a device never sees a manifest whose package is not there yet
        write_atomic(self.folder / rel.deb, deb)
        write_atomic(self.folder / release_file_name(rel.version, rel.arch), release)
        return Published(rel.version, rel.arch, rel.length, rel.expires)

    def published(self, auth: ReleaseAuth | None, now: float) -> list[Published]:
        """Releases in the folder that still verify (signer, expiry, minimum), oldest first."""
        out = []
        for path in sorted(self.folder.glob("passgate_*.release")):
            try:
                rel = verify_release(path.read_bytes(), auth, now=now)
            except (ReleaseRefused, OSError):
                continue  # expired, or signed by a key the roots no longer authorise
            if (self.folder / rel.deb).exists():
                out.append(Published(rel.version, rel.arch, rel.length, rel.expires))
        return sorted(out, key=lambda p: (version_key(p.version), p.arch))

    def file(self, name: str) -> Path | None:
        path = self.folder / name
        return path if _FILE_NAME.fullmatch(name) and path.is_file() else None

    # --- the plan -------------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.folder / PLAN_FILE).read_text())
        except FileNotFoundError:
            doc = {}
        return {"stable": doc.get("stable"), "canary": doc.get("canary"),
                "sites": dict(doc.get("sites") or {})}

    def rollout(self, version: str, auth: ReleaseAuth | None, now: float, *,
                percent: float | None = None, site: str | None = None) -> dict[str, Any]:
        parse_version(version)
        if not any(p.version == version for p in self.published(auth, now)):
            raise UsageError(f"release {version} is not published (or no longer verifies "
                             "against the newest bundle's release keys)")
        plan = self.plan()
        if site is not None:
            plan["sites"][site] = version
        elif percent is None or percent >= 100:
            plan["stable"], plan["canary"] = version, None
        elif 0 < percent < 100:
            plan["canary"] = {"version": version, "percent": percent}
        else:
            raise UsageError("--percent must be above 0 (100: everyone)")
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / PLAN_FILE, json.dumps(plan, sort_keys=True).encode())
        return plan

    def target(self, device_id: str, site: str, arch: str, auth: ReleaseAuth | None,
               now: float) -> str | None:
        plan = self.plan()
        canary = plan["canary"]
        if site and site in plan["sites"]:
            version = plan["sites"][site]
        elif canary and bucket(device_id) < float(canary["percent"]):
            version = canary["version"]
        else:
            version = plan["stable"]
        if version is None:
            return None
        ok = any(p.version == version and p.arch == arch for p in self.published(auth, now))
        return version if ok else None


def register_routes(app, releases: ReleaseDir, store: SqlStore, clock) -> None:
    """``GET /v1/release/target`` and ``GET /v1/release/files/NAME`` (docs/collector.md)."""
    from flask import Response, abort, request, send_file  # the web app's, loaded with it

    @app.get("/v1/release/target")
    def release_target() -> Response:
        device = request.args.get("device", "")
        arch = request.args.get("arch", "")
        site = request.args.get("site", "")
        if not (0 < len(device) <= 128 and 0 < len(arch) <= 16 and len(site) <= 64):
            abort(400)
        version = releases.target(device, site, arch, release_auth(store), clock())
        if version is None:
            return Response(status=204)
        return Response(json.dumps({"version": version}), content_type="application/json")

    @app.get("/v1/release/files/<name>")
    def release_file(name: str) -> Response:
        path = releases.file(name)
        if path is None:
            abort(404)
        return send_file(path, mimetype="application/octet-stream", max_age=0)


def progress(store: SqlStore, releases: ReleaseDir) -> dict[str, Any]:
    """Rollout progress for the staff page and ``release status``: the plan, and per
    version the devices running it; per update state the devices in it."""
    running: dict[str, int] = {}
    states: dict[str, int] = {}
    for d in store.devices():
        running[d.firmware or "unknown"] = running.get(d.firmware or "unknown", 0) + 1
        state = d.update_state or "not reported"
        states[state] = states.get(state, 0) + 1
    return {"plan": releases.plan(), "running": running, "states": states}



def plan_line(plan: dict[str, Any]) -> str:
    """``stable 0.2.0; canary 0.3.0 on 10 %; site north: 0.3.0``."""
    parts = [f"stable {plan['stable'] or 'none'}"]
    if plan["canary"]:
        parts.append(f"canary {plan['canary']['version']} on {plan['canary']['percent']:g} %")
    parts += [f"site {s}: {v}" for s, v in sorted(plan["sites"].items())]
    return "; ".join(parts)
