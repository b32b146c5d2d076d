"""Phase 2: write what :func:`.check.check` planned. Each step first looks at what is there, so
a second run with the same device file changes nothing (and says so by an empty change list).
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from passgate.bundle import install_bundle, pin_roots, pinned_roots
from passgate.errors import KeyFileError, ProvisionError
from passgate.passes.keys import kid_of, load_private, public_from_raw, public_pem
from passgate.provision.check import Plan, read_bytes_or_none
from passgate.sync.devicekey import KEY_FILE, load_device_key, new_device_key
from passgate.sync.enrolment import ENROLMENT_FILE, Enrolment, load_enrolment, save_enrolment
from passgate.util.atomicfile import write_atomic


@dataclass(frozen=True)
class Owners:
    """Numeric owners for what provisioning writes when it runs as root: the scanner's
    ``passgate`` user, the sync agent's ``passgate-sync`` user, and group ``passgate`` for
    the root-owned config drop-in."""

    scanner: tuple[int, int]
    sync: tuple[int, int]
    config_group: int

    @classmethod
    def lookup(cls) -> Owners:
        try:
            scanner, sync = pwd.getpwnam("passgate"), pwd.getpwnam("passgate-sync")
            group = grp.getgrnam("passgate").gr_gid
        except KeyError as exc:
            raise ProvisionError(
                f"no such user or group {exc}: run 'sudo ./setup.sh install' first") from None
        return cls((scanner.pw_uid, scanner.pw_gid), (sync.pw_uid, sync.pw_gid), group)


@dataclass(frozen=True)
class Outcome:
    """What :func:`apply` did. ``changes`` is empty when everything was already in place."""

    changes: tuple[str, ...]
    fingerprint: str  # the device key's, as the collector shows it after enrolment
    bundle_version: int | None


def apply(plan: Plan, now: float, owners: Owners | None = None) -> Outcome:
    """Write what :func:`check` planned; each step skips what is already in place."""
    dev, changes = plan.device, []
    own = _chown if owners is not None else (lambda *a: None)
    scanner = owners.scanner if owners else None
    _ensure_dir(plan.state_dir, 0o770, scanner, own)
    _ensure_dir(plan.dropin.parent, 0o750, (0, owners.config_group) if owners else None, own)
    if read_bytes_or_none(plan.dropin) != plan.dropin_text.encode():
        write_atomic(plan.dropin, plan.dropin_text.encode(), mode=0o640)
        own(plan.dropin, (0, owners.config_group) if owners else None)
        changes.append(f"config {plan.dropin} written")
    if pinned_roots(plan.bundle_dir) is None:
        pin_roots(plan.bundle_dir, dev.roots)
        changes.append(f"root keys pinned: {dev.roots.describe()}")
    version = None
    if plan.bundle is not None and dev.bundle is not None:  # the plan's bundle is dev.bundle
        version = install_bundle(dev.bundle, plan.bundle_dir, now, roots=dev.roots).version
        changes.append(f"bundle v{version} installed")
    for path in [plan.bundle_dir, *plan.bundle_dir.rglob("*")]:
        # Both services write here (group passgate, as their UMask=0007 would make it).
        mode = path.stat().st_mode
        _chmod(path, 0o770 if path.is_dir() else (mode & 0o777) | 0o660)
        own(path, scanner)
    if plan.key_damaged or read_bytes_or_none(plan.hash_key_file) is None:
        plan.hash_key_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(plan.hash_key_file, dev.pass_hash_key, mode=0o600)
        own(plan.hash_key_file, scanner)
        what = "damaged pass-hash key replaced" if plan.key_damaged else "pass-hash key written"
        changes.append(f"{what} in {plan.hash_key_file} (id {dev.hash_key_id})")

    if dev.time_keys:
        folder = plan.state_dir / "time-keys"  # where `passgate sync` looks for them
        _ensure_dir(folder, 0o770, scanner, own)
        for raw in dev.time_keys:
            pem, path = public_pem(public_from_raw(raw)), folder / f"time-{kid_of(raw).hex()}.pub"
            if read_bytes_or_none(path) != pem:
                write_atomic(path, pem, mode=0o644)
                own(path, scanner)
                changes.append(f"time key {kid_of(raw).hex()} pinned")

    sync_owner = owners.sync if owners else None
    _ensure_dir(plan.sync_dir, 0o700, sync_owner, own)
    key_path = plan.sync_dir / KEY_FILE
    if key_path.exists() and _damaged_device_key(key_path):
        # Unreadable as a key (a 0-byte file from older firmware killed mid-write): a new key
        # replaces it. The collector knows the old fingerprint, so the device enrols again
        # with the device file's token (which must be a fresh one).
        for path in (key_path, key_path.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        changes.append(f"damaged device key {key_path} removed: enrol again with a new token")
    if not key_path.exists():
        for path in new_device_key(plan.sync_dir)[:2]:
            own(path, sync_owner)
        changes.append(f"device key made in {plan.sync_dir}")
    fingerprint = load_device_key(key_path).fingerprint
    if dev.collector_url is not None:
        path = plan.sync_dir / ENROLMENT_FILE
        old = load_enrolment(path)
        same = old is not None and (old.collector, old.device, old.fingerprint) == (
            dev.collector_url, dev.device_id, fingerprint)
        if not (old is not None and same
                and (old.enrolled_at is not None or old.token == dev.enrol_token)):
            save_enrolment(path, Enrolment(dev.collector_url, dev.device_id, fingerprint,
                                           token=dev.enrol_token))
            own(path, sync_owner)
            changes.append(f"enrolment with {dev.collector_url} left for the sync agent")
    return Outcome(tuple(changes), fingerprint, version)


def _damaged_device_key(path: Path) -> bool:
    """True if ``path`` is not a private key at all (empty, cut short, not PEM); a key that
    loads but has the wrong mode or owner is not damaged (``load_device_key`` says why)."""
    try:
        path.read_bytes()
    except OSError:  # unreadable is not damaged: never delete a key we could not even look at
        return False
    try:
        load_private(path)
    except KeyFileError:
        return True
    return False


def _ensure_dir(path: Path, mode: int, owner: tuple[int, int] | None, own) -> None:
    if not path.is_dir():
        path.mkdir(parents=True)
        _chmod(path, mode)
        own(path, owner)


def _chmod(path: Path, mode: int) -> None:
    """Set the permission bits only if they differ, keeping a folder's inherited setgid bit
    (group passgate under /var/lib/passgate). The first-boot unit runs with UMask=0007 and
    RestrictSUIDSGID=yes, so on a device this normally finds nothing to change."""
    st = path.stat()
    if st.st_mode & 0o777 != mode:
        os.chmod(path, mode | (st.st_mode & 0o2000))


def _chown(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)
