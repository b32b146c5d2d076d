"""Signed software releases: the manifest format and version order (issue 13).

A release is a ``.deb`` plus a small signed manifest naming its version, architecture,
SHA-256, length and expiry. The manifest is signed by a *release key*; only keys the trust
bundle's roots authorise count (``releases`` in the root manifest, docs/trust.md), together
with a minimum version below which no device installs. So a collector, which holds no root
and no release key, can choose among signed releases but cannot make one.
"""

from passgate.release.manifest import (
    MAX_MANIFEST,
    Release,
    ReleaseAuth,
    check_package,
    deb_file_name,
    release_file_name,
    sign_release,
    verify_release,
)
from passgate.release.version import parse_version, version_key

__all__ = [
    "MAX_MANIFEST",
    "Release",
    "ReleaseAuth",
    "check_package",
    "deb_file_name",
    "parse_version",
    "release_file_name",
    "sign_release",
    "verify_release",
    "version_key",
]
