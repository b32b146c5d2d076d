"""Storage: ``open_store(url)`` picks the backend from the URL scheme.

``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` select :class:`SqliteStore`;
``postgresql://...`` (or ``postgres://``) selects :class:`PostgresStore`. Both implement
:class:`SqlStore`'s methods, the one interface the web application and the CLI use.
"""

from __future__ import annotations

from .base import Device, SqlStore, StoreError, Tx

__all__ = ["Device", "SqlStore", "StoreError", "Tx", "open_store"]


def open_store(url: str, pool_size: int = 4, *, sqlite_wal_pages: int | None = None) -> SqlStore:
    """Open (and create or migrate) the database named by ``url``, keeping up to
    ``pool_size`` idle connections for reuse.

    ``sqlite_wal_pages``: SQLite's WAL checkpoint interval in pages (``store.sqlite``; None:
    its default); PostgreSQL has no such setting and ignores it.

    A database that cannot be opened (server unreachable, login refused, a file that is not a
    database) raises :class:`StoreError` with one line saying why, never the driver's error:
    the command line promises one line and exit code 2. The URL is not repeated (it may hold
    a password).
    """
    if url.startswith("sqlite://"):
        import sqlite3

        from .sqlite import DEFAULT_WAL_PAGES, SqliteStore

        path = url[len("sqlite://"):]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        if not path:
            raise StoreError("sqlite URL needs a path, e.g. sqlite:///collector.db")
        try:
            return SqliteStore(path, pool_size=pool_size, wal_pages=DEFAULT_WAL_PAGES
                               if sqlite_wal_pages is None else sqlite_wal_pages)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite database {path}: {_one_line(exc)}") from None
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL needs psycopg: pip install -e '.[collector]'") from None
        from .postgres import PostgresStore

        try:
            return PostgresStore(url, pool_size=pool_size)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the PostgreSQL database: {_one_line(exc)}") from None
    raise StoreError(f"unsupported database URL {url.split(':', 1)[0]!r}: "
                     "use sqlite:///path or postgresql://...")


def _one_line(exc: Exception, limit: int = 300) -> str:
    """A driver's message (libpq's spans several lines) as one short line."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__
