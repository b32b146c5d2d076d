"""The journal's SQLite connection: opening, schema, and short transactions that recover.

:class:`JournalDB` is the base of :class:`passgate.journal.journal.Journal` (which adds what is
stored and read). It opens the file (created group-writable, 0660, for the scanner and the
sync agent), switches it to WAL with ``synchronous=FULL``, creates or checks the schema
(``journal_schema.DDL``, ``PRAGMA user_version``), and runs every call through :meth:`_run`:
one lock, ``BEGIN IMMEDIATE ... COMMIT`` for writes, and any database error rolled back and
turned into :class:`~passgate.errors.JournalError`. A connection that even a rollback cannot
use is dropped, so the next call opens a fresh one and the journal recovers when the fault
(a full disk, storage that went away) clears.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar
from urllib.parse import quote

from passgate.errors import JournalError
from passgate.journal.schema import DDL, SCHEMA_VERSION

log = logging.getLogger(__name__)

T = TypeVar("T")  # what a journal call returns


class JournalDB:
    """The connection to the journal at ``path``: not opened here, but by the first
    :meth:`_run` (and again after a connection was lost).

    ``device_id`` is written to (or, when empty, read from) the ``meta`` table on opening.
    ``readonly`` opens an existing file for reading only; ``create=False`` never creates it.
    ``busy_timeout_ms`` bounds how long a call waits for the other process's lock.
    Usable as a context manager; :meth:`close` is idempotent. Thread-safe (one lock).
    """

    def __init__(self, path: str | Path, device_id: str = "", *, readonly: bool = False,
                 create: bool = True, busy_timeout_ms: int = 2000) -> None:
        self.path = Path(path)
        self.device_id = device_id
        self.readonly = readonly
        self._create = create
        self._busy_ms = int(busy_timeout_ms)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _ensure_file(self) -> None:
        """Create the database file group-writable (0660), whatever the process umask.

        The scanner (user passgate) writes scans and the sync agent (user passgate-sync, group
        passgate) marks them uploaded, so both need write access; SQLite gives the -wal and
        -shm files the main file's mode. ``create=False`` (the sync agent) never creates it.
        """
        if self.path.exists():
            return
        if not self._create:
            raise JournalError(f"{self.path}: no journal yet (the scanner creates it)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
        except FileExistsError:
            return  # another process created it first
        try:
            os.fchmod(fd, 0o660)
        finally:
            os.close(fd)

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            target, uri = f"file:{quote(str(self.path.resolve()))}?mode=ro", True
        else:
            self._ensure_file()
            target, uri = str(self.path), False
        db = sqlite3.connect(target, uri=uri, timeout=self._busy_ms / 1000,
                             isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"{self.path}: journal schema {version} is newer than "
                                   f"this passgate ({SCHEMA_VERSION})")
            if self.readonly:
                self._load_device_id(db)
                return db
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise JournalError(f"{self.path}: cannot switch the journal to WAL mode")
            db.execute("PRAGMA synchronous = FULL")
            if version < SCHEMA_VERSION:
                db.executescript(f"BEGIN IMMEDIATE;\n{DDL}\n"
                                 f"PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
            stored = db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
            if self.device_id and (stored is None or stored[0] != self.device_id):
                db.execute("INSERT INTO meta (key, value) VALUES ('device_id', ?) ON CONFLICT"
                           " (key) DO UPDATE SET value = excluded.value", (self.device_id,))
            elif stored is not None:
                self.device_id = self.device_id or stored[0]
        except BaseException:
            db.close()
            raise
        return db

    def _load_device_id(self, db: sqlite3.Connection) -> None:
        if not self.device_id and db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            got = db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
            self.device_id = got[0] if got else ""

    def _run(self, what: str, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run ``fn(db)`` (inside ``BEGIN IMMEDIATE ... COMMIT`` when ``write``).

        Any sqlite3 error rolls back and becomes JournalError; ``fn``'s result is returned
        only after the COMMIT succeeded.
        """
        with self._lock:
            try:
                if self._db is None:
                    self._db = self._connect()
                db = self._db
                if not write:
                    return fn(db)
                db.execute("BEGIN IMMEDIATE")
                result = fn(db)
                db.execute("COMMIT")
                return result
            except JournalError:
                self._abort()
                raise
            except (sqlite3.Error, OSError) as exc:  # OSError: e.g. cannot create the folder
                self._abort()
                raise JournalError(f"journal {what} failed ({self.path}): {exc}") from exc
            except BaseException:
                self._abort()
                raise

    def _abort(self) -> None:
        """Roll back an open transaction; if even that fails, drop the connection so the
        next call starts from a fresh one."""
        db = self._db
        if db is None:
            return
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:  # includes a closed or broken connection
            log.warning("journal rollback failed, reopening on next use: %s", exc)
            self._db = None
            try:
                db.close()
            except sqlite3.Error as close_exc:
                log.warning("journal close after failed rollback: %s", close_exc)

    def close(self) -> None:
        """Close the connection (the next call would open a new one). Idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
