"""passgate fleet collector: receives signed journals, publishes trust bundles, signs time.

The wire format is specified in ``docs/sync-protocol.md``; ``protocol`` decodes and checks
requests, ``ingest`` applies a batch to a ``store`` (SQLite or PostgreSQL, one interface),
``web`` is the Flask application (device API and the staff page) served by waitress, and
``cli`` is the ``passgate-collector`` command.
"""

from passgate.util.version import version as _version

# One version for the firmware and the collector: pyproject.toml's (passgate.util.version).
__version__ = _version()
