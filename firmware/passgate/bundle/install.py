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

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from passgate.bundle.format import Manifest, Revoker, refuse
from passgate.bundle.revokers import anchor_manifest, check_revocations, digests_added
from passgate.bundle.roots import ROOTS_FILE, RootSet
from passgate.bundle.verify import (
    DEFAULT_MAX_BYTES,
    BundleInfo,
    Header,
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
# How far a revocations bundle's ``issued`` may be ahead of the device's clock: the office's
# and the device's clocks differ a little; a bundle dated further ahead is refused (a
# revocation key chooses its issue time, and must not make trust data look fresh).
REVOCATIONS_ISSUED_SKEW_S = 300


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
    anchor_sha = _root_sha256(bundle.manifest, bundle.manifest_sha256)
    if record is not None and check_succession(
        bundle.manifest, bundle.manifest_sha256, bundle.anchor, anchor_sha, record
    ):
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
        check_revoker_now(bundle.manifest, bundle.revoker, now)
        _check_revocations(bundle, state_dir, trusted, record, max_bytes)
    _, info = bundle.trust()  # decode every part now: a bundle that cannot load is refused
    write_atomic(state_dir / BUNDLE_FILE, bundle.chunks())
    record = {
        "version": bundle.version,
        "manifest_sha256": bundle.manifest_sha256,
        "root_version": bundle.root_manifest.version,
        "root_sha256": anchor_sha,
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


def check_succession(
    manifest: Manifest,
    manifest_sha256: str,
    anchor: Manifest | None,
    root_sha256: str,
    record: dict[str, Any],
) -> bool:
    """Is a bundle (its manifest, and for a revocations bundle its anchor) a legal successor
    of the installed one (``record``: see :func:`_installed_record`)? True if it *is* the
    installed one; refuses otherwise.

    - Versions only go up, root bundles and revocations bundles alike: a root bundle numbered
      at or below an installed revocations bundle may predate the revocations it added (a
      genuine bundle the roots have since superseded), and installing it would un-revoke
      them. A revocation key cannot lock the roots out with a high number: its bundles are
      at most ``MAX_REVOCATION_STEPS`` above their anchor (revokers.py), so the roots'
      next bundle, numbered above that, always installs (docs/trust.md).
    - A revocations bundle on an older anchor than the root bundle in force, or on another
      manifest of that version, is NOT_AUTHORISED (a de-authorised key cannot come back on
      an old anchor); on a newer anchor (a root bundle with its k-of-n signatures the device
      has not seen) the chain starts afresh, if that anchor is itself above the installed
      version: one at or below it is a root bundle the device would refuse as a rollback,
      and a thief could anchor on it to drop what the installed bundle revoked (review 35).
    """
    if manifest_sha256 == record["manifest_sha256"]:
        return True
    v, installed, floor = manifest.version, record["version"], record["root_version"]
    if v < installed:
        raise refuse(Refusal.ROLLBACK, f"bundle v{v} is older than the installed v{installed}")
    if v == installed:
        raise refuse(
            Refusal.SAME_VERSION,
            f"bundle v{v} differs from the installed bundle of the same version",
        )
    if anchor is not None and (anchor.version < floor or (
        anchor.version == floor and root_sha256 != record.get("root_sha256")
    )):
        raise refuse(
            Refusal.NOT_AUTHORISED,
            f"bundle v{v}: built on root bundle v{anchor.version}, but v{floor} is in force here",
        )
    if anchor is not None and floor < anchor.version <= installed:
        # A root bundle numbered at or below the installed one is one the device refuses as
        # a rollback (it may predate what the installed bundle revoked): it anchors nothing.
        raise refuse(
            Refusal.ROLLBACK,
            f"bundle v{v}: built on root bundle v{anchor.version}, not above the installed "
            f"v{installed}",
        )
    return False


def check_revoker_now(manifest: Manifest, revoker: Revoker, now: float) -> None:
    """A revocations bundle at the device's time ``now``: its key's authorisation has not
    expired, and it is not dated more than REVOCATIONS_ISSUED_SKEW_S ahead."""
    v = manifest.version
    if now >= revoker.expires:
        raise refuse(
            Refusal.REVOKER_EXPIRED,
            f"bundle v{v}: the revocation key expired at {iso(revoker.expires)}",
        )
    if manifest.issued > now + REVOCATIONS_ISSUED_SKEW_S:
        raise refuse(
            Refusal.BEYOND_REVOKER,
            f"bundle v{v}: issued {iso(manifest.issued)}, in the future (a revocation key "
            "cannot date its bundles ahead)",
        )


def check_revocations_header(
    h: Header, roots: RootSet, now: float
) -> tuple[Manifest, str]:
    """Everything about a revocations header that needs no parts: the anchor and the key
    (:func:`check_revocations`) and :func:`check_revoker_now`. Returns the anchor manifest
    and its SHA-256 (hex)."""
    anchor, revoker = check_revocations(h.manifest, h.body_protected, h.payload, h.signatures,
                                        roots)
    assert revoker is not None  # with roots, check_revocations returns the signer
    check_revoker_now(h.manifest, revoker, now)
    return anchor, _root_sha256(h.manifest, h.manifest_sha256)


def _root_sha256(manifest: Manifest, manifest_sha256: str) -> str:
    """SHA-256 (hex) of the root manifest in force with this one: itself, or its anchor's."""
    if manifest.anchor is None:
        return manifest_sha256
    _, payload, _, _ = anchor_manifest(manifest.anchor)
    return hashlib.sha256(payload).hexdigest()


def _check_revocations(
    bundle: VerifiedBundle,
    state_dir: Path,
    roots: RootSet,
    record: dict[str, Any] | None,
    max_bytes: int,
) -> None:
    """On the anchor in force (its order checked by :func:`check_succession`), a revocations
    bundle keeps every digest the installed one added."""
    assert bundle.anchor is not None
    if record is None or bundle.anchor.version != record["root_version"]:
        return  # nothing installed, or a newer anchor: the chain starts afresh
    if not (state_dir / BUNDLE_FILE).exists():
        return
    try:
        installed = read_bundle(state_dir / BUNDLE_FILE, roots, max_bytes)
    except BundleError as exc:
        # A damaged installed file has no additions to keep, and the device no usable trust
        # data: refusing would leave it so until the roots' next bundle. The incoming one
        # stands on its own (anchor, key, only additions to its anchor: checked above).
        log.warning("installed bundle unreadable (%s): the revocations bundle v%d is checked "
                    "against its anchor only", exc, bundle.version)
        return
    if digests_added(installed.parts.get("added", b""), bundle.parts["added"]) is None:
        raise refuse(
            Refusal.BEYOND_REVOKER,
            f"bundle v{bundle.version}: drops revocations the installed one added",
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
    the pinned threshold and of the new set's own threshold, as at install time. A
    revocations bundle rotates nothing (its anchor may not): its anchor and key are checked
    against the pinned roots instead, so a real mismatch is still reported.
    """
    path = state_dir / BUNDLE_FILE
    if not path.exists():
        return pinned
    try:
        with open(path, "rb") as f:
            header = read_header(f)
        if not header.manifest.by_roots:
            check_revocations(
                header.manifest, header.body_protected, header.payload, header.signatures, pinned
            )
            return pinned
        _, new_roots = check_signatures(header, pinned)
    except BundleError as exc:
        log.warning("installed bundle does not verify against the pinned roots: %s", exc)
        return pinned
    if new_roots is None or new_roots == pinned:
        return pinned
    _finish_rotation(state_dir, pinned, new_roots)
    return new_roots


def _installed_record(state_dir: Path) -> dict[str, Any] | None:
    """The rollback record: the later of ``installed.json`` and the installed file's own
    header. The bundle is written before the record, so a power cut between the two leaves
    the record one install behind; trusting it alone would let a second, different bundle of
    the installed version in (a same-version swap). A lost or damaged record is replaced by
    the header. A header-only record has no ``installed_at``.

    Besides ``version`` and ``manifest_sha256`` the record has ``root_version`` and
    ``root_sha256``: the root manifest in force (the bundle itself, or a revocations bundle's
    anchor). Installs only ever move the version forward (see :func:`check_succession`),
    so "later" is the higher version."""
    try:
        record = _read_record(state_dir)
    except TrustError as exc:
        log.warning("%s; using the installed bundle's header", exc)
        record = None
    try:
        with open(state_dir / BUNDLE_FILE, "rb") as f:
            header = read_header(f)
        installed: dict[str, Any] = {
            "version": header.manifest.version,
            "manifest_sha256": header.manifest_sha256,
            "root_version": (
                header.manifest.version
                if header.manifest.anchor is None
                else anchor_manifest(header.manifest.anchor)[3].version
            ),
            "root_sha256": _root_sha256(header.manifest, header.manifest_sha256),
        }
    except FileNotFoundError:
        return None if record is None else _with_root(record, None)
    except BundleError as exc:
        log.warning("installed bundle unreadable (%s): rollback record only", exc)
        return None if record is None else _with_root(record, None)
    if record is None:
        return installed
    record = _with_root(record, installed)
    if _order(installed) > _order(record):
        log.warning(
            "install record says v%d but v%d is installed (interrupted install)",
            record["version"],
            installed["version"],
        )
        return installed
    return record


def _with_root(record: dict[str, Any], installed: dict[str, Any] | None) -> dict[str, Any]:
    """``record`` with its root fields; a record written before they existed takes them from
    the installed header if it describes the same bundle, else (conservatively) its own
    version as the root version, and no root hash."""
    if "root_version" in record:
        return record
    if installed is not None and installed["manifest_sha256"] == record.get("manifest_sha256"):
        return {**record, "root_version": installed["root_version"],
                "root_sha256": installed["root_sha256"]}
    return {**record, "root_version": record["version"], "root_sha256": None}


def _order(record: dict[str, Any]) -> int:
    return int(record["version"])


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
    root = record.get("root_version", 0)
    if not isinstance(root, int) or isinstance(root, bool) or not isinstance(
        record.get("root_sha256", ""), str | None
    ):
        raise TrustError(f"{path}: install record with a bad root version or hash")
    return record


def _write_record(state_dir: Path, record: dict[str, Any]) -> None:
    write_atomic(
        state_dir / RECORD_FILE, (json.dumps(record, sort_keys=True, indent=1) + "\n").encode()
    )
