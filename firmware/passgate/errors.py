"""One small exception hierarchy.

As in gpiozero, every class also inherits the matching built-in type, so callers that
only know ``ValueError`` or ``OSError`` still catch them.
"""


class PassgateError(Exception):
    """Base of every error passgate raises on purpose."""


class ConfigError(PassgateError, ValueError):
    """A configuration file or option is wrong; the message names the file, key and problem."""


class KeyFileError(PassgateError, ValueError):
    """A key file is missing, unreadable or refused (for example a low-order Ed25519 point)."""


class TrustError(PassgateError, ValueError):
    """Trust material (keys, revocation list, purpose table, bundle) is invalid or refused."""


class PassFormatError(PassgateError, ValueError):
    """A pass cannot be decoded. ``reason`` is ``"malformed"`` or ``"unsupported"``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class HardwareError(PassgateError, OSError):
    """A hardware adapter failed (camera, display, GPIO)."""


class JournalError(PassgateError, OSError):
    """The scan journal cannot be written; no green may be signalled for that scan."""

