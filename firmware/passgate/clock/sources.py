"""Where the clock's trust comes from, read from the kernel: NTP synchronisation and an RTC.

Both are probes the :class:`passgate.clock.clock.SystemClock` calls (and tests replace): nothing
here
decides anything about the floor. Read lazily, never at import.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from passgate.errors import HardwareError

log = logging.getLogger(__name__)

RTC_CLASS = Path("/sys/class/rtc")
RTC_SINCE_EPOCH = RTC_CLASS / "rtc0" / "since_epoch"


def rtc_since_epoch(device: str = "rtc0") -> Path:
    """The ``since_epoch`` file of kernel RTC ``device`` (``rtc1`` for a DS3231 on a Pi 5,
    whose own RTC is ``rtc0``). ``RTC_CLASS`` is looked up at call time (tests move it)."""
    return RTC_CLASS / device / "since_epoch"


STA_UNSYNC = 0x0040  # <linux/timex.h>: the kernel clock is not synchronised
# NTP_PHASE_LIMIT: the kernel's ceiling for maxerror (microseconds). Setting the clock puts
# maxerror there (and sets STA_UNSYNC); systemd's NTPSynchronized wants it below.
SYNC_MAXERROR_US = 16_000_000


class _Timex(ctypes.Structure):
    """The start of ``struct timex`` (<sys/timex.h>), laid out as C does on every Linux ABI;
    the kernel writes the whole structure, so room is left for the fields not named here."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def load_adjtimex() -> Callable[..., Any]:
    """libc's ``adjtimex``; OSError if there is none (not Linux)."""
    try:
        return ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError) as exc:
        raise HardwareError(f"adjtimex unavailable: {exc}") from None


def read_timex(adjtimex: Callable[..., Any] | None = None) -> tuple[int, int]:
    """``adjtimex`` in read-only mode (modes = 0): (status bits, maxerror in microseconds).

    Raises OSError if the call fails.
    """
    adjtimex = adjtimex or load_adjtimex()
    tx = _Timex()
    if adjtimex(ctypes.byref(tx)) == -1:
        err = ctypes.get_errno()
        raise HardwareError(err, f"adjtimex: {os.strerror(err)}")
    return tx.status, tx.maxerror


class KernelSync:
    """Is the kernel clock synchronised *now*? ``maxerror`` below 16 s (the test behind
    timedatectl's ``NTPSynchronized``) and, stricter, ``STA_UNSYNC`` clear (timesyncd clears
    it with every adjustment: ``status = STA_PLL``).

    Setting the clock by hand (``date -s``, ``settimeofday``, an RTC or a saved time at boot)
    sets ``STA_UNSYNC`` and ``maxerror`` to 16 s; only an NTP client's ``adjtimex`` clears
    them, and without further NTP updates the kernel adds 500 us to ``maxerror`` per second
    and marks the clock unsynchronised again after about 9 hours. ``reader`` returns (status,
    maxerror) and is injectable for tests; if it fails, the clock counts as not synchronised.
    """

    def __init__(self, reader: Callable[[], tuple[int, int]] | None = None) -> None:
        self._reader = reader or self._read
        self._adjtimex: Callable[..., Any] | None = None
        self._failed = False

    def _read(self) -> tuple[int, int]:
        if self._adjtimex is None:
            self._adjtimex = load_adjtimex()  # once: the scanner asks on every read
        return read_timex(self._adjtimex)

    def __call__(self) -> bool:
        try:
            status, maxerror = self._reader()
        except OSError as exc:
            if not self._failed:
                log.warning("kernel clock status unreadable (%s): NTP sync not trusted", exc)
            self._failed = True
            return False
        self._failed = False
        return not status & STA_UNSYNC and 0 <= maxerror < SYNC_MAXERROR_US


class RtcProbe:
    """Reads a kernel RTC's time (``since_epoch``, whole seconds); None if it cannot be read.

    The DS3231 driver refuses to read a time it knows is invalid (oscillator stopped, e.g. a
    flat battery), so a read error means "no trustworthy RTC", never "time 0".
    """

    def __init__(self, path: Path = RTC_SINCE_EPOCH) -> None:
        self.path = Path(path)
        self._failed = False

    def __call__(self) -> float | None:
        try:
            value = float(self.path.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            if not self._failed:
                log.warning("RTC unreadable (%s): not trusted", exc)
            self._failed = True
            return None
        if self._failed:
            log.info("RTC readable again")
        self._failed = False
        return value


__all__ = [
    "KernelSync",
    "RtcProbe",
    "read_timex",
    "rtc_since_epoch",
    "RTC_SINCE_EPOCH",
    "STA_UNSYNC",
]
