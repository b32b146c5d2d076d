"""The device's own Ed25519 key: made once at provisioning, signs every upload.

The private key file is created with mode 0600 (``keys.write_private``) and must stay
readable only by the user the sync agent runs as: the scanner never needs it, and a copy
would let anyone upload forged journals as this checkpoint. As ssh does with its keys,
loading refuses a file that group or others can read, or that another user owns, rather
than silently using a key that may already have leaked.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.errors import KeyFileError
from passgate.passes.keys import kid_of, load_private, new_keypair, raw_public

KEY_FILE = "device.key"


@dataclass(frozen=True)
class DeviceKey:
    """A loaded device key. ``fingerprint`` is the hex key id (first 8 bytes of SHA-256)."""

    private: Ed25519PrivateKey
    public_raw: bytes

    @property
    def fingerprint(self) -> str:
        return kid_of(self.public_raw).hex()

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over ``data``."""
        return self.private.sign(data)


def new_device_key(out_dir: Path) -> tuple[Path, Path, str]:
    """Create ``device.key`` (0600) and ``device.pub`` in ``out_dir``; refuses to overwrite.

    Returns both paths and the key fingerprint (hex), which the technician can compare with
    the one the collector shows after enrolment.
    """
    key_path, pub_path, kid = new_keypair(Path(out_dir), "device")
    return key_path, pub_path, kid.hex()


def load_device_key(path: Path) -> DeviceKey:
    """Load the device private key, refusing one that others could have read."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read device key: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: device key is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{path}: device key has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0600 "
            "(readable only by the sync user). Fix with: chmod 600, then consider it leaked "
            "and re-enrol if others could log in"
        )
    euid = os.geteuid()
    if euid != 0 and st.st_uid != euid:
        raise KeyFileError(f"{path}: device key is owned by uid {st.st_uid}, not by this user")
    key = load_private(path)
    return DeviceKey(key, raw_public(key))
