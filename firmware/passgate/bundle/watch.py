"""The scanner's view of the installed bundle: loaded once, reloaded when it changes.

The sync agent installs bundles and records refreshes in another process; the scanner polls
with one ``stat`` of each of two small things per call, re-verifies the bundle only when
``current.pgb`` was replaced, and re-reads only ``installed.json`` when just the refresh time
moved. Errors are kept and returned, never raised per frame, so the caller shows "no trust
data" (and logs once) instead of crashing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from passgate.bundle.install import (
    BUNDLE_FILE,
    RECORD_FILE,
    _installed_record,
    installed_stamp,
    load_installed,
)
from passgate.bundle.policy import TrustStatus, trust_status
from passgate.bundle.verify import BundleInfo
from passgate.errors import PassgateError
from passgate.passes.truststore import TrustStore

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded:
    """The current state: a store and its info, or why there is none (``missing``)."""

    store: TrustStore | None
    info: BundleInfo | None
    missing: str = ""

    def status(self, now: float, max_offline_s: int | None = None) -> TrustStatus | None:
        return (
            None if self.info is None else trust_status(self.info, now, max_offline_s=max_offline_s)
        )


class BundleWatcher:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self._bundle_stamp: object = ()
        self._record_stamp: object = ()
        self._loaded = Loaded(None, None, "no trust data")

    def current(self) -> Loaded:
        """The installed bundle as of now (reloaded if the sync agent changed it)."""
        stamp = installed_stamp(self.dir)
        if stamp != self._bundle_stamp:
            self._bundle_stamp, self._record_stamp = stamp, _stat(self.dir / RECORD_FILE)
            self._loaded = self._load()
        else:
            record_stamp = _stat(self.dir / RECORD_FILE)
            if record_stamp != self._record_stamp and self._loaded.info is not None:
                self._record_stamp = record_stamp
                self._loaded = self._with_record(self._loaded)
        return self._loaded

    def _load(self) -> Loaded:
        try:
            store, info = load_installed(self.dir)
        except PassgateError as exc:
            log.warning("no usable trust bundle: %s", exc)
            return Loaded(None, None, f"no trust data: {exc}")
        log.info(
            "trust bundle v%d loaded (%d issuer keys, %d revoked)",
            info.version,
            info.issuers,
            info.revoked,
        )
        return Loaded(store, info)

    def _with_record(self, loaded: Loaded) -> Loaded:
        try:
            record = _installed_record(self.dir) or {}
        except PassgateError as exc:
            log.warning("install record unreadable: %s", exc)
            return loaded
        if loaded.info is None:  # only called with a bundle loaded
            return loaded
        if record.get("manifest_sha256") != loaded.info.manifest_sha256:
            return loaded  # a new bundle is being installed; the next stat of it reloads
        info = dataclasses.replace(loaded.info, last_refresh=record.get("last_refresh"))
        return dataclasses.replace(loaded, info=info)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


__all__ = ["BUNDLE_FILE", "BundleWatcher", "Loaded"]
