"""Storage: ``open_store(url)`` picks the backend from the URL scheme.

``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` select :class:`SqliteStore`;
``postgresql://...`` (or ``postgres://``) selects :class:`PostgresStore`. Both implement
:class:`SqlStore`'s methods, the one interface the web application and the CLI use.
"""

from __future__ import annotations

from .base import Device, SqlStore, StoreError, Tx

__all__ = ["Device", "SqlStore", "StoreError", "Tx", "open_store"]


def open_store(url: str) -> SqlStore:
    """Open (and create or migrate) the database named by ``url``."""
    if url.startswith("sqlite://"):
        from .sqlite import SqliteStore

        path = url[len("sqlite://"):]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        if not path:
            raise StoreError("sqlite URL needs a path, e.g. sqlite:///collector.db")
        return SqliteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"unsupported database URL {url.split(':', 1)[0]!r}: "
                     "use sqlite:///path or postgresql://...")
