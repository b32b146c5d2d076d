"""Replace a file so that a reader (or a power cut) sees the old content or the new, never half.

The recipe: write a temporary file in the same folder, fsync it, rename it over the target,
then fsync the folder so the rename itself is on the card. SD cards may still lie about
flushes (FIELD_NOTES section 4); this is the most the software side can do.

Keys are written this way too (:func:`create_atomic` when a key must never be overwritten):
a kill between creating a key file and writing it used to leave a 0-byte key behind, which
every later start refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def write_atomic(path: Path, chunks: bytes | Iterable[bytes], mode: int = 0o644) -> None:
    """Atomically replace ``path`` with ``chunks`` (bytes or an iterable of bytes)."""
    path = Path(path)
    parts: Iterable[bytes | bytearray | memoryview] = (
        (chunks,) if isinstance(chunks, bytes | bytearray | memoryview) else chunks
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in parts:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        # Leave no temporary file behind in the state folder; the real error propagates.
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``data``, whole or not at all; ``FileExistsError`` if it exists.

    The temporary file is made with ``mode`` from the start (``mkstemp`` makes it 0600, and a
    private key is never readable by others, not even briefly), flushed, then *linked* to the
    target name: ``link`` fails when the name exists, so a key is never replaced by accident,
    and a reader sees either no file or the complete one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (the rename above) to storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if needed) for the block.

    Several processes (the scanner, the sync agent, a technician's command) update the same
    state files; the lock makes each read-modify-write whole. It is advisory and released by
    the kernel if the holder dies.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
