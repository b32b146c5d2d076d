"""The signed trust bundle: one file with everything a checkpoint trusts.

Issuer keys with their metadata, the revocation list, the purpose and zone policy and the
fleet settings, under one manifest signed by k of n offline root keys. Byte layout and the
reasons behind each refusal: ``docs/trust.md``.

For the sync agent::

    info = install_bundle(downloaded_bytes, state_dir, clock.read().now)   # BundleRefused: .reason
    record_refresh(state_dir, now)          # a successful check found nothing newer

For the scanner::

    store, info = load_installed(state_dir)                 # NoTrustData if none
    loaded = BundleWatcher(state_dir).current()             # or: reloads when it changes
    status = trust_status(info, reading.now)                # .stale, .message for the OLED
    doubt = stale_policy_decision(status, info.fleet, zone) # None, flag, or deny trust_stale
    doubt = clock_policy_decision(reading, info.fleet, zone)
"""

from passgate.bundle.build import BundleContent, build_bundle, content_from_files
from passgate.bundle.install import (
    DEFAULT_STATE_DIR,
    install_bundle,
    installed_stamp,
    load_installed,
    pin_roots,
    pinned_roots,
    record_refresh,
)
from passgate.bundle.policy import (
    CheckpointPolicy,
    Doubt,
    FleetPolicy,
    TrustStatus,
    clock_policy_decision,
    stale_policy_decision,
    trust_status,
)
from passgate.bundle.roots import RootSet
from passgate.bundle.verify import DEFAULT_MAX_BYTES, BundleInfo, read_bundle
from passgate.bundle.watch import BundleWatcher, Loaded
from passgate.errors import BundleError, BundleRefused, NoTrustData, Refusal

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_STATE_DIR",
    "BundleContent",
    "BundleError",
    "BundleInfo",
    "BundleRefused",
    "BundleWatcher",
    "CheckpointPolicy",
    "Doubt",
    "FleetPolicy",
    "Loaded",
    "NoTrustData",
    "Refusal",
    "RootSet",
    "TrustStatus",
    "build_bundle",
    "clock_policy_decision",
    "content_from_files",
    "install_bundle",
    "installed_stamp",
    "load_installed",
    "pin_roots",
    "pinned_roots",
    "read_bundle",
    "record_refresh",
    "stale_policy_decision",
    "trust_status",
]
