"""Install a bundle on a device, and load the installed one. No command-line concerns here:
the sync agent calls :func:`install_bundle` with the bytes it downloaded, the scanner calls
:func:`load_installed`.

The bundle folder (``/var/lib/passgate/bundle`` by default) holds:

- ``roots.toml``: the pinned root set (written at provisioning, replaced only by a rotation);
- ``current.pgb``: the installed bundle, byte for byte as received;
- ``installed.json``: version and manifest hash of the installed bundle (the rollback record),
  when it was installed and the last successful refresh;
- ``.lock``: serialises installers (the sync agent and a technician may race).

Every refusal raises :class:`BundleRefused` before anything is written, so the installed
bundle stays active and a failed attempt leaves no trace but a log line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from passgate.bundle.format import refuse
from passgate.bundle.revokers import digests_added
from passgate.bundle.roots import ROOTS_FILE, RootSet
from passgate.bundle.verify import (
    DEFAULT_MAX_BYTES,
    BundleInfo,
    Source,
    VerifiedBundle,
    check_signatures,
    read_bundle,
    read_header,
)
from passgate.errors import BundleError, NoTrustData, Refusal, TrustError
from passgate.passes.truststore import TrustStore
from passgate.util.atomicfile import locked, write_atomic
from passgate.util.timefmt import iso

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/passgate/bundle")
BUNDLE_FILE = "current.pgb"
RECORD_FILE = "installed.json"
LOCK_FILE = ".lock"


def pinned_roots(state_dir: Path) -> RootSet | None:
    """The root set pinned in ``state_dir``, or None if the device was never provisioned."""
    path = Path(state_dir) / ROOTS_FILE
    if not path.exists():
        return None
    return RootSet.load(path)


def pin_roots(state_dir: Path, roots: RootSet) -> None:
    """Provision: pin ``roots``. Refused if a *different* set is already pinned (rotation only
    happens through a bundle signed by the current threshold)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with locked(state_dir / LOCK_FILE):
        current = pinned_roots(state_dir)
        if current is not None and current != roots:
            raise refuse(
                Refusal.ROOTS_MISMATCH,
                f"{state_dir}: other root keys are pinned ({current.describe()}); "
                "a new root set is accepted only inside a bundle signed by the current roots",
            )
        if current is None:
            write_atomic(state_dir / ROOTS_FILE, roots.to_toml().encode())
            log.info("pinned root keys %s", roots.describe())


def install_bundle(
    data_or_path: Source,
    state_dir: Path,
    now: float,
    *,
    roots: RootSet | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> BundleInfo:
    """Verify and atomically install a bundle; return what is now active.

    ``data_or_path``: bytes, a path or a binary stream (read at most ``max_bytes + 1`` bytes).
    ``now``: the checkpoint's effective time (``clock.read().now``), for the expiry check.
    ``roots``: only for provisioning a device with no pinned roots; on a provisioned device it
    must equal the pinned set. Re-installing the installed bundle is not an error and
    changes nothing (it does not count as a refresh). Raises :class:`BundleRefused`
    (``.reason``) with one line.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with locked(state_dir / LOCK_FILE):
        return install_locked(data_or_path, state_dir, now, roots=roots, max_bytes=max_bytes)


def install_locked(
    data_or_path: Source,
    state_dir: Path,
    now: float,
    *,
    roots: RootSet | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    expect: Callable[[VerifiedBundle], None] | None = None,
) -> BundleInfo:
    """:func:`install_bundle` for a caller that holds the lock already (a delta applies under
    the same lock it read the installed bundle with). ``expect`` may refuse the verified
    bundle before anything is written."""
    pinned = pinned_roots(state_dir)
    if pinned is not None and roots is not None and roots != pinned:
        raise refuse(
            Refusal.ROOTS_MISMATCH, f"{state_dir}: the given root keys are not the pinned ones"
        )
    if pinned is not None:
        pinned = _recover_rotation(state_dir, pinned)
    trusted = pinned or roots
    if trusted is None:
        raise refuse(
            Refusal.NO_ROOTS,
            f"{state_dir}: no root keys pinned; provision them first (--roots)",
        )
    bundle = read_bundle(data_or_path, trusted, max_bytes)
    if expect is not None:
        expect(bundle)
    record = _installed_record(state_dir)
    if record is not None:
        if bundle.version < record["version"]:
            raise refuse(
                Refusal.ROLLBACK,
                f"bundle v{bundle.version} is older than the installed v{record['version']}",
            )
        if bundle.version == record["version"]:
            if bundle.manifest_sha256 != record["manifest_sha256"]:
                raise refuse(
                    Refusal.SAME_VERSION,
                    f"bundle v{bundle.version} differs from the installed bundle "
                    "of the same version",
                )
            # Not a refresh: the same file proves nothing about what is newest now (the
            # sync agent calls record_refresh when the collector says so).
            log.info("bundle v%d already installed", bundle.version)
            if "installed_at" not in record:
                # The record was lost or is one install behind (power cut): finish it.
                record = {"last_refresh": None, **record, "installed_at": now}
                _write_record(state_dir, record)
            return _info(bundle, record)
    if now >= bundle.manifest.expires:
        raise refuse(
            Refusal.EXPIRED,
            f"bundle v{bundle.version} expired at {iso(bundle.manifest.expires)}",
        )
    if bundle.revoker is not None:
        _check_revocations(bundle, state_dir, trusted, now, max_bytes)
    _, info = bundle.trust()  # decode every part now: a bundle that cannot load is refused
    write_atomic(state_dir / BUNDLE_FILE, bundle.chunks())
    record = {
        "version": bundle.version,
        "manifest_sha256": bundle.manifest_sha256,
        "installed_at": now,
        "last_refresh": now,
    }
    _write_record(state_dir, record)
    if pinned is None:
        write_atomic(state_dir / ROOTS_FILE, trusted.to_toml().encode())
        log.info("pinned root keys %s", trusted.describe())
    _finish_rotation(state_dir, trusted, bundle.new_roots)
    log.info("installed bundle v%d (expires %s)", bundle.version, iso(bundle.manifest.expires))
    return replace(info, installed_at=now, last_refresh=now)


def _check_revocations(
    bundle: VerifiedBundle, state_dir: Path, roots: RootSet, now: float, max_bytes: int
) -> None:
    """The install-time rules for a revocations bundle: its key is still valid now, its anchor
    is not older than the root bundle in force here (a de-authorised key cannot come back on
    an old anchor), and on the same anchor it keeps every digest the installed one added."""
    assert bundle.revoker is not None and bundle.anchor is not None
    v = bundle.version
    if now >= bundle.revoker.expires:
        raise refuse(
            Refusal.REVOKER_EXPIRED,
            f"bundle v{v}: the revocation key expired at {iso(bundle.revoker.expires)}",
        )
    if not (state_dir / BUNDLE_FILE).exists():
        return
    installed = read_bundle(state_dir / BUNDLE_FILE, roots, max_bytes)
    mine, theirs = bundle.anchor.version, installed.root_manifest.version
    if mine < theirs or (mine == theirs and bundle.anchor_header != installed.anchor_header):
        raise refuse(
            Refusal.NOT_AUTHORISED,
            f"bundle v{v}: built on root bundle v{mine}, but v{theirs} is in force here",
        )
    if mine == theirs and digests_added(
        installed.parts.get("added", b""), bundle.parts["added"]
    ) is None:
        raise refuse(
            Refusal.BEYOND_REVOKER, f"bundle v{v}: drops revocations the installed one added"
        )


def load_installed(
    state_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[TrustStore, BundleInfo]:
    """The installed bundle's trust store and info, re-verified against the pinned roots.

    An expired bundle still loads: staleness is shown and the site's policy decides (see
    :func:`passgate.bundle.trust_status`). Raises :class:`NoTrustData` if nothing is installed
    and :class:`BundleRefused` if the installed file no longer verifies.
    """
    state_dir = Path(state_dir)
    pinned = pinned_roots(state_dir)
    if pinned is None:
        raise NoTrustData(f"{state_dir}: no root keys pinned (device not provisioned)")
    path = state_dir / BUNDLE_FILE
    if not path.exists():
        raise NoTrustData(f"{state_dir}: no bundle installed")
    bundle = read_bundle(path, pinned, max_bytes)
    if bundle.new_roots is not None and bundle.new_roots != pinned:
        # Power was cut between writing a rotating bundle and its roots. The scanner may have
        # no write access here; then the next install (by the sync agent) finishes it.
        try:
            with locked(state_dir / LOCK_FILE):
                _finish_rotation(state_dir, pinned, bundle.new_roots)
        except OSError as exc:
            log.warning("root rotation pending, cannot finish it here: %s", exc)
    store, info = bundle.trust()
    record = _installed_record(state_dir) or {}
    if record.get("manifest_sha256") != bundle.manifest_sha256:
        record = {}  # the record belongs to another bundle: do not borrow its refresh time
    return store, replace(
        info, installed_at=record.get("installed_at"), last_refresh=record.get("last_refresh")
    )


def record_refresh(state_dir: Path, now: float) -> None:
    """Record a successful refresh (the sync agent found nothing newer). Call on success only:
    a failed attempt must not make stale data look fresh."""
    state_dir = Path(state_dir)
    with locked(state_dir / LOCK_FILE):
        # The installed file's own version wins over a record an interrupted install left
        # behind: the refresh must count for the bundle that is really installed.
        record = _installed_record(state_dir)
        if record is None:
            raise NoTrustData(f"{state_dir}: no bundle installed")
        _write_record(state_dir, {**record, "last_refresh": now})


def installed_stamp(state_dir: Path) -> tuple[int, int, int] | None:
    """A cheap change marker (inode, size, mtime) of the installed bundle, for reload polling."""
    try:
        st = os.stat(Path(state_dir) / BUNDLE_FILE)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _finish_rotation(state_dir: Path, pinned: RootSet, new_roots: RootSet | None) -> None:
    if new_roots is None or new_roots == pinned:
        return
    write_atomic(state_dir / ROOTS_FILE, new_roots.to_toml().encode())
    log.warning("root keys rotated: %s -> %s", pinned.describe(), new_roots.describe())


def _recover_rotation(state_dir: Path, pinned: RootSet) -> RootSet:
    """If power was cut between writing a rotating bundle and its roots, finish the rotation.

    Only the installed bundle's header is read; its manifest must carry valid signatures of
    the pinned threshold and of the new set's own threshold, as at install time.
    """
    path = state_dir / BUNDLE_FILE
    if not path.exists():
        return pinned
    try:
        with open(path, "rb") as f:
            header = read_header(f)
        _, new_roots = check_signatures(header, pinned)
    except BundleError as exc:
        log.warning("installed bundle does not verify against the pinned roots: %s", exc)
        return pinned
    if new_roots is None or new_roots == pinned:
        return pinned
    _finish_rotation(state_dir, pinned, new_roots)
    return new_roots


def _installed_record(state_dir: Path) -> dict[str, Any] | None:
    """The rollback record: the higher version of ``installed.json`` and the installed file's
    own header. The bundle is written before the record, so a power cut between the two
    leaves the record one install behind; trusting it alone would let a second, different
    bundle of the installed version in (a same-version swap). A lost or damaged record is
    replaced by the header. A header-only record has no ``installed_at``."""
    try:
        record = _read_record(state_dir)
    except TrustError as exc:
        log.warning("%s; using the installed bundle's header", exc)
        record = None
    try:
        with open(state_dir / BUNDLE_FILE, "rb") as f:
            header = read_header(f)
    except FileNotFoundError:
        return record
    except BundleError as exc:
        log.warning("installed bundle unreadable (%s): rollback record only", exc)
        return record
    installed = {"version": header.manifest.version, "manifest_sha256": header.manifest_sha256}
    if record is None or installed["version"] > record["version"]:
        if record is not None:
            log.warning(
                "install record says v%d but v%d is installed (interrupted install)",
                record["version"],
                installed["version"],
            )
        return installed
    return record


def _info(bundle: VerifiedBundle, record: dict[str, Any]) -> BundleInfo:
    _, info = bundle.trust()
    return replace(
        info, installed_at=record.get("installed_at"), last_refresh=record.get("last_refresh")
    )


def _read_record(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TrustError(f"{path}: unreadable install record: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("version"), int):
        raise TrustError(f"{path}: install record without a version")
    return record


def _write_record(state_dir: Path, record: dict[str, Any]) -> None:
    write_atomic(
        state_dir / RECORD_FILE, (json.dumps(record, sort_keys=True, indent=1) + "\n").encode()
    )
