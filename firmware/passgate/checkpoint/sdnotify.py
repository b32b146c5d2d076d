"""systemd's notify protocol (``sd_notify``) in a few lines, no dependency.

``Type=notify`` units get ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace)
and, with ``WatchdogSec=``, ``WATCHDOG_USEC``. Each message is one datagram of
``KEY=value`` lines. Without ``NOTIFY_SOCKET`` (a laptop, a test) every call is a no-op, so
the daemon calls these hooks unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends ``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1`` to systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr: str | bytes | None = None
        if addr.startswith("@"):
            self._addr = b"\0" + addr[1:].encode()  # abstract namespace socket
        elif addr.startswith("/"):
            self._addr = addr
        elif addr:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract; notifications off", addr)
        self._sock: socket.socket | None = None
        self._failing = False
        self.watchdog_s = _watchdog_seconds(env)

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram; False if notifications are off or it could not be sent."""
        if self._addr is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # MSG_DONTWAIT: a stalled receiver must never block the frame loop.
            self._sock.sendto(
                "\n".join(lines).encode("utf-8", "replace"), socket.MSG_DONTWAIT, self._addr
            )
        except OSError as exc:
            if not self._failing:
                log.warning("cannot notify systemd: %s", exc)
                self._failing = True
            return False
        if self._failing:
            log.info("systemd notifications work again")
            self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text.splitlines()[0] if text else ''}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """The watchdog timeout systemd expects pings within, or None when it is not enabled.

    ``WATCHDOG_PID``, when set, names the process meant; another process (a child) ignores it.
    """
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog pings off", usec)
        return None
    return value / 1e6 if value > 0 else None
