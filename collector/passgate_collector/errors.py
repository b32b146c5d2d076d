"""Every error the collector raises on purpose: one tree, in this one module.

Rules kept here (pinned by ``tests/test_errors.py``):

- Every class derives from :class:`CollectorError`, and also from the built-in type its
  callers expect (``PgUnavailable`` is a ``RuntimeError`` for the test harness that skips on it).
- No other collector module defines an exception class or raises a bare built-in one.
- Command-line problems are :class:`passgate.errors.UsageError`, the firmware's own: one
  class for one exit-code contract (2, one line on stderr), whichever program reports it.
- Messages are one line; the web layer sends ``code`` and ``detail`` as they are.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class ProtocolError(CollectorError):
    """A request the collector refuses as a whole: ``status`` and a stable ``code``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class StoreError(CollectorError):
    """A storage-level refusal the caller can explain (e.g. an older bundle version)."""


class StoredNonce(StoreError):
    """A bulk insert met a nonce the device already stored (``ingest.apply_batch`` inserts
    without looking first when the batch starts past every stored seq). The batch's whole
    transaction is rolled back, and the batch is applied again with the lookup."""


class PgUnavailable(CollectorError, RuntimeError):
    """No usable PostgreSQL server binaries here; the message says what is missing."""


class PgCommandFailed(CollectorError, RuntimeError):
    """A PostgreSQL server command (initdb, pg_ctl...) failed; the message carries its stderr."""


class SearchError(CollectorError, ValueError):
    """A console pass search that cannot run; the message is one line for the guard."""
