"""Log lines that carry their journald priority, so ``journalctl -p warning -u
passgate-scanner`` shows the faults and nothing else.

Rules kept here:
- Under systemd (the process's stderr *is* the journal stream systemd announced in
  ``JOURNAL_STREAM``, device:inode), every line is prefixed ``<N>``, sd-daemon(3)'s syslog
  priority: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7. journald strips the prefix
  and files the line at that priority (the units keep systemd's default
  ``SyslogLevelPrefix=yes``). Each line of a multi-line record (a traceback) gets it,
  because journald splits the stream at newlines.
- On a terminal, in a pipe, in tests: no prefix, the plain ``LEVEL name: message`` line.
  The stream is compared with the announced one, not the variable's presence, because a
  child started from a unit inherits ``JOURNAL_STREAM`` while writing elsewhere.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

FORMAT = "%(levelname)s %(name)s: %(message)s"
PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
              logging.DEBUG: 7}


def priority(levelno: int) -> int:
    """The syslog priority of a logging level; levels in between take the next lower one."""
    for level in sorted(PRIORITIES, reverse=True):
        if levelno >= level:
            return PRIORITIES[level]
    return 7


class JournaldFormatter(logging.Formatter):
    """``FORMAT`` with ``<N>`` before every line of the record."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stream_is_journal(stream: TextIO, env: Mapping[str, str] = os.environ) -> bool:
    """True when ``stream`` is the journal connection systemd set up (``JOURNAL_STREAM``)."""
    announced = env.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in announced.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def configure(verbose: bool, stream: TextIO | None = None,
              env: Mapping[str, str] = os.environ) -> logging.Handler:
    """Set up the root logger for a command: INFO (DEBUG with ``verbose``) to ``stream``
    (stderr), with priorities when that is the journal. Returns the handler."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    journal = stream_is_journal(stream, env)
    handler.setFormatter(JournaldFormatter(FORMAT) if journal else logging.Formatter(FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    return handler
