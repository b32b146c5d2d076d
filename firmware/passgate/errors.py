"""Every error passgate raises on purpose: one tree, in this one module.

Rules kept here (pinned by ``tests/test_errors.py``):

- Every class derives from :class:`PassgateError`, so ``passgate`` (cli) turns any of them
  into exit code 2 and one line on stderr, never a traceback.
- As in gpiozero's ``exc.py``, every class also inherits the matching built-in type
  (``ValueError`` for refused input, ``OSError`` for a device or file that failed,
  ``ConnectionError`` for the network), so callers that only know the built-in still catch
  them; kvmd's ``AtxOperationError(OperationError, AtxError)`` is the model for the mix.
- No other passgate module defines an exception class or raises a bare built-in one
  (``ValueError``, ``RuntimeError``, ``OSError``...): it picks the fitting class below.
  Allowed built-ins: ``NotImplementedError`` (an abstract method), ``TypeError`` (a caller
  passed the wrong type: a bug, not an input), ``AssertionError`` (an impossible branch).
- Messages are one readable line; they are shown to technicians as they are.
- The tree stays small: a new class only where a caller needs to tell it apart.
"""

from __future__ import annotations

import enum


class PassgateError(Exception):
    """Base of every error passgate raises on purpose."""


# --- input refused: ValueError ---------------------------------------------------------


class UsageError(PassgateError, ValueError):
    """A command-line problem found after parsing (exit code 2)."""


class ConfigError(PassgateError, ValueError):
    """A configuration file, option or value is wrong; the message names the file or option,
    the key and the problem."""


class ProvisionError(ConfigError):
    """The device file, or the device's current state, refuses provisioning. Nothing was
    written; the message is one line naming the file and the key."""


class BadValue(ConfigError):
    """A problem with the value of ``name`` (a key, or ``key.entry`` inside a table).

    ``prefix`` is only for the message of an error raised outside the loader (``signals.``
    when a ``SignalsConfig`` is built in Python); the
    loader uses ``name`` and ``problem`` and adds the file and the section itself.
    """

    def __init__(self, name: str, problem: str, prefix: str = "") -> None:
        super().__init__(f"{prefix}{name}: {problem}")
        self.name, self.problem = name, problem


class KeyFileError(PassgateError, ValueError):
    """A key file is missing, unreadable or refused (for example a low-order Ed25519 point)."""


class TrustError(PassgateError, ValueError):
    """Trust material (keys, revocation list, purpose table, bundle) is invalid or refused."""


class BundleError(TrustError):
    """A bundle cannot be read or installed. Its message is one readable line."""


class Refusal(enum.Enum):
    """Why a bundle was refused (:attr:`BundleRefused.reason`). Values are stable: logs and the
    sync state carry them. Here beside the error that carries it, so this module imports
    nothing of passgate."""

    MALFORMED = "malformed"  # not a bundle, or broken structure
    TOO_LARGE = "too_large"  # larger than the device limit, or more bytes than declared
    BAD_SIGNATURE = "bad_signature"  # a signature by a pinned root does not verify
    UNDER_THRESHOLD = "under_threshold"  # fewer valid root signatures than the threshold
    PART_MISMATCH = "part_mismatch"  # a part's length or SHA-256 differs from the manifest
    ROLLBACK = "rollback"  # older than the installed version
    SAME_VERSION = "same_version"  # same version as installed, different content
    EXPIRED = "expired"  # already past its expiry
    NO_ROOTS = "no_roots"  # no root keys pinned on this device
    ROOTS_MISMATCH = "roots_mismatch"  # other roots given than the pinned ones
    NOT_AUTHORISED = "not_authorised"  # a revocation key without a valid root authorisation
    REVOKER_EXPIRED = "revoker_expired"  # the revocation key's authorisation has expired
    BEYOND_REVOKER = "beyond_revoker"  # a revocation key tried more than adding revocations
    UNKNOWN_BASE = "unknown_base"  # a delta for another base than the installed bundle


class BundleRefused(BundleError):
    """A bundle was refused; the installed one (if any) stays active. ``reason`` says why."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NoTrustData(BundleError):
    """No bundle is installed (or the folder has no pinned roots): the OLED says "no trust data"."""


class TimeTokenError(TrustError):
    """A time token is malformed, not signed by a pinned time key, or for another device."""


class PassFormatError(PassgateError, ValueError):
    """A pass cannot be decoded. ``reason`` is ``"malformed"`` or ``"unsupported"``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class BatchError(PassgateError, ValueError):
    """A batch CSV of passes to issue is unreadable or has a bad row (file and row named)."""


class ClockError(PassgateError, ValueError):
    """The stored clock state holds a value that cannot be a time (a damaged file)."""


class ArgumentError(PassgateError, ValueError):
    """A caller passed a value the code refuses before doing anything (a scan record with a
    bad field, a non-positive rate, a frame that is not grayscale): a bug, not a user input."""


# --- a device, file or row that failed: OSError / LookupError --------------------------


class HardwareError(PassgateError, OSError):
    """A hardware adapter failed (camera, display, GPIO, the kernel clock)."""


class JournalError(PassgateError, OSError):
    """The scan journal cannot be written; no green may be signalled for that scan."""


class RowPruned(PassgateError, LookupError):
    """A journal row (or the chain value it carried) was pruned and is no longer kept."""


# --- one exchange with the collector ---------------------------------------------------


class SyncError(PassgateError):
    """Base of the errors of one exchange with the collector."""

    def __init__(self, detail: str, status: int | None = None, code: str | None = None):
        super().__init__(detail)
        self.detail, self.status, self.code = detail, status, code


class Transient(SyncError, ConnectionError):
    """Retry later with backoff; ``retry_after`` (seconds) is the server's lower bound."""

    def __init__(
        self,
        detail: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(detail, status, code)
        self.retry_after = retry_after


class Refused(SyncError, ValueError):
    """A permanent refusal of the whole request (4xx); ``code`` is the protocol error code."""


class TooLarge(Refused):
    """413: the batch exceeds the collector's ``max_rows`` or ``max_body``."""


class BundleTooLarge(Refused):
    """The published bundle is larger than this device accepts: a bundle problem, not a
    link problem, so the agent treats it like a bundle that failed its checks."""


class LinkError(PassgateError, ConnectionError):
    """The transport's exchange failed (truncated or garbled reply); the client retries it
    as :class:`Transient`."""


class ReplyTooLarge(LinkError):
    """The answer was longer than the request's ``max_reply``; treated as a network failure."""


# --- software releases (issue 13) -------------------------------------------------------


class ReleaseRefused(TrustError):
    """A release manifest or package failed a check; ``reason`` is a short code (``unsigned``,
    ``not_authorised``, ``expired``, ``wrong_arch``, ``downgrade``, ``below_minimum``,
    ``hash_mismatch``, ``too_large``, ``malformed``) the updater reports to the collector."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class UpdateError(PassgateError, OSError):
    """A step of installing a release failed (dpkg, systemctl, mount, download)."""
