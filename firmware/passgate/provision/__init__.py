"""First-boot provisioning: one device file on the boot partition -> a configured checkpoint.

``passgate-device.toml`` (format: ``docs/provisioning.md``) carries what differs between the
checkpoints of a fleet: the device id and zone, the collector URL with a one-time enrolment
token, the pinned root keys (and optionally an initial bundle), the fleet's pass-hash key and
optional config overrides. Provisioning runs in two phases:

1. :func:`read_device_file` and :func:`check` validate everything, the device file against
   the real config loader included, and compare it with what the device already holds. Any
   problem is a :class:`ProvisionError` with one readable line, and nothing has been written.
2. :func:`apply` writes: the config drop-in, the pinned roots, the bundle, the journal's hash
   key, the sync agent's device key and enrolment record. Every step first looks at what is
   there, so a second run with the same file changes nothing and says so.

No clock is read here: ``now`` is handed in. The command line (``passgate provision``) adds
the OLED message, the log line, the result file and the removal of the device file.

Modules: :mod:`.devicefile` (the format and its checks), :mod:`.check` (against the config
loader and the device's state; the drop-in writer), :mod:`.apply` (the writes).
"""

from passgate.errors import ProvisionError
from passgate.provision.apply import Outcome, Owners, apply
from passgate.provision.check import Plan, check, dropin_toml
from passgate.provision.devicefile import (
    DEFAULT_BUNDLE,
    DEFAULT_ETC,
    DEFAULT_SYNC_DIR,
    DEVICE_FILE,
    DROPIN_NAME,
    HASH_KEY_LEN,
    RESULT_FILE,
    DeviceFile,
    read_device_file,
)

__all__ = [
    "DEFAULT_BUNDLE",
    "DEFAULT_ETC",
    "DEFAULT_SYNC_DIR",
    "DEVICE_FILE",
    "DROPIN_NAME",
    "HASH_KEY_LEN",
    "RESULT_FILE",
    "DeviceFile",
    "Outcome",
    "Owners",
    "Plan",
    "ProvisionError",
    "apply",
    "check",
    "dropin_toml",
    "read_device_file",
]
