"""Time as the checkpoint knows it: a value and how far it can be trusted.

Every journal row and the idle screen carry the :class:`ClockState`. Stages only ever call
``clock.read()`` and never ``time.time()`` themselves. :class:`SystemClock` is the real one:
a persisted floor of authenticated time (:mod:`passgate.clock.store`), signed time tokens
(:mod:`passgate.clock.tokens`), the kernel's NTP synchronisation status and an optional RTC.
``docs/trust.md`` explains the states and what may raise (or repair) the floor.
"""

from __future__ import annotations

import enum
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from passgate.clock.section import ClockSection
from passgate.clock.sources import KernelSync, RtcProbe, rtc_since_epoch
from passgate.clock.store import Anchor, ClockStore, TokenResult
from passgate.clock.tokens import TimeKey
from passgate.errors import TrustError

log = logging.getLogger(__name__)


class ClockState(enum.Enum):
    TRUSTED = "trusted"  # synchronised since boot, an RTC, or a recent signed time token
    FLOOR = "floor"  # not synchronised, but not earlier than the stored floor
    BACKWARDS = "backwards"  # system clock earlier than the floor: floor + monotonic elapsed


@dataclass(frozen=True, slots=True)
class TimeReading:
    now: float  # effective POSIX time
    state: ClockState

    @property
    def trusted(self) -> bool:
        return self.state is ClockState.TRUSTED


class Clock(Protocol):
    def read(self) -> TimeReading: ...


class FixedClock:
    """A clock for tests and tools: returns what it is set to; ``advance`` moves it."""

    def __init__(self, now: float, state: ClockState = ClockState.TRUSTED) -> None:
        self.now, self.state = float(now), state

    def read(self) -> TimeReading:
        return TimeReading(self.now, self.state)

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------------------------
# The real clock: system time, judged against a persisted floor of authenticated time.
# --------------------------------------------------------------------------------------------

# Created by systemd-timesyncd once it has synchronised; /run is a tmpfs, so it means "since boot".
# Only that: timesyncd touches it once per boot, so it says nothing about the clock *now* (a
# later ``date -s`` leaves it in place). The kernel's status (KernelSync) does.
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
RELEASE_EPOCH = 1735689600  # 2025-01-01: no real time is earlier; the floor starts here


@dataclass(frozen=True, slots=True)
class ClockConfig:
    """What the site trusts. ``trust_timesyncd``: a clock timesyncd has synchronised in this
    boot *and* the kernel reports synchronised now is trusted and raises the floor (NTP is not
    authenticated: sites that fear a forged NTP answer set this false and rely on signed
    tokens; a fresh signed token repairs a floor NTP set too high). ``trust_rtc``: a battery
    RTC that agrees with the system clock is trusted (hardware/rtc.md). ``token_trust_s``: how
    long a fresh token keeps the clock trusted, counted on the monotonic clock (drift is ppm).
    ``persist_every_s``: how far the floor may move past what is stored before it is written
    (and at a clean stop, :meth:`SystemClock.save`): a reboot puts the floor back by at most
    this much, and the SD card sees one small write per interval."""

    trust_timesyncd: bool = True
    trust_rtc: bool = False
    token_trust_s: float = 86400.0
    rtc_device: str = "rtc0"  # /sys/class/rtc/<this>; a DS3231 on a Pi 5 is rtc1
    persist_every_s: float = 300.0
    tolerance_s: float = 2.0
    rtc_tolerance_s: float = 5.0
    rtc_probe_every_s: float = 10.0
    epoch: float = RELEASE_EPOCH

    @classmethod
    def from_section(cls, section: ClockSection) -> ClockConfig:
        """The site's settings from the config's ``[clock]`` (:class:`~passgate.clock.section.
        ClockSection`, declared beside the clock). Every
        process that reads the clock (scanner, sync agent, commands) builds it this way."""
        return cls(
            trust_timesyncd=section.trust_timesyncd,
            trust_rtc=section.trust_rtc,
            token_trust_s=float(section.token_trust),
            rtc_device=section.rtc_device,
            persist_every_s=float(section.persist_every),
        )


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Everything ``passgate time status`` shows."""

    reading: TimeReading
    source: str  # timesyncd, rtc, token, system, floor
    system: float
    floor: float
    floor_source: str
    token_age_s: float | None
    synchronised: bool  # timesyncd synchronised in this boot and the kernel says so now
    rtc_offset_s: float | None


def read_boot_id(path: Path = BOOT_ID) -> str:
    """The kernel's id of this boot: monotonic readings compare only within one boot."""
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        log.warning("no boot id (%s): tokens and floors will not carry across processes", exc)
        return f"process-{uuid.uuid4()}"


class SystemClock:
    """The checkpoint's clock: ``read() -> TimeReading(now, state)``.

    - ``trusted``: a fresh signed token was received in this boot less than ``token_trust_s``
      ago (then now = token time + monotonic elapsed), or timesyncd synchronised the clock and
      the kernel says it is synchronised now (if the site trusts NTP), or an RTC agrees with
      the system clock (if trusted);
    - ``floor``: none of those, and the system clock is not before the floor;
    - ``backwards``: the system clock is before the floor; now = floor + monotonic elapsed.

    Only trusted time (and monotonic progress from an authenticated floor) raises the floor;
    the system clock jumping forward never does. ``now`` is never below the floor in any
    state, so a pass that had expired at the floor is ``expired`` whatever the clock policy.
    The floor is written every ``persist_every_s`` of progress and by :meth:`save` (a clean
    stop: ``with clock:`` saves on the way out), so a reboot loses at most that interval.
    Everything time-like is injected.
    """

    def __init__(
        self,
        store: ClockStore | None = None,
        config: ClockConfig = ClockConfig(),
        *,
        system_time: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        boot_id: str | None = None,
        timesync_flag: Path = TIMESYNC_FLAG,
        kernel_sync: Callable[[], bool] | None = None,
        rtc: Callable[[], float | None] | None = None,
        persist: bool = True,
    ) -> None:
        self.store, self.config = store, config
        self._time, self._mono = system_time, monotonic
        self.boot_id = boot_id if boot_id is not None else read_boot_id()
        self._flag = Path(timesync_flag)
        self._kernel_sync = kernel_sync if kernel_sync is not None else KernelSync()
        if rtc is None and config.trust_rtc:
            rtc = RtcProbe(rtc_since_epoch(config.rtc_device))
        self._rtc = rtc
        self._persist = persist and store is not None
        mono = self._mono()
        self._floor, self._floor_mono, self._floor_source = float(config.epoch), mono, "epoch"
        self._stored = float(config.epoch)  # the floor value last seen on disk
        self._repairs: int | None = None  # the store's repair count our floor is based on
        self._token_floor: float | None = None  # the stored token_floor last seen
        self._anchor: Anchor | None = None
        self._stamp: object = ()  # never a real stamp (None is "no file"): load first
        self._rtc_cache: tuple[float, float | None] | None = None  # (mono probed, rtc - system)
        self._last: tuple[ClockState, str] | None = None
        self._warned: set[str] = set()
        self._sync_store(mono)

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> TimeReading:
        return self.status().reading

    def status(self) -> ClockStatus:
        mono, system = self._mono(), self._time()
        self._sync_store(mono)
        lower = self._floor + (mono - self._floor_mono)
        synced = self._flag.exists() and self._kernel_sync()
        source, t = self._trusted(system, mono, lower, synced)
        if source:
            now, state = max(t, lower), ClockState.TRUSTED
            if now > lower:
                self._floor, self._floor_mono, self._floor_source = now, mono, source
        elif system >= lower:
            now, state, source = system, ClockState.FLOOR, "system"
        else:
            now, state, source = lower, ClockState.BACKWARDS, "floor"
        self._maybe_persist(mono)
        self._log_transition(state, source, system, lower)
        anchor_age = mono - self._anchor.mono if self._anchor is not None else None
        rtc_offset = self._rtc_cache[1] if self._rtc_cache else None
        return ClockStatus(
            TimeReading(now, state),
            source,
            system,
            self._floor + (mono - self._floor_mono),
            self._floor_source,
            anchor_age,
            synced,
            rtc_offset,
        )

    def _trusted(self, system: float, mono: float, lower: float, synced: bool) -> tuple[str, float]:
        tol = self.config.tolerance_s
        a = self._anchor
        # Signed, fresh time first: it is the only authenticated source, and it must not be
        # overridden by an NTP answer that may be forged (the floor it set can be repaired).
        if (
            a is not None
            and a.boot == self.boot_id
            and 0 <= mono - a.mono <= self.config.token_trust_s
        ):
            return "token", a.t + (mono - a.mono)
        if self.config.trust_timesyncd and synced:
            if system >= lower - tol:
                return "timesyncd", system
            self._warn_once(
                "sync-behind", "timesyncd reports sync but the clock is before the floor"
            )
        if self.config.trust_rtc and self._rtc is not None:
            offset = self._rtc_offset(system, mono)
            if (
                offset is not None
                and abs(offset) <= self.config.rtc_tolerance_s
                and system >= lower - tol
            ):
                return "rtc", system
        return "", 0.0

    def _rtc_offset(self, system: float, mono: float) -> float | None:
        cache, rtc = self._rtc_cache, self._rtc
        if rtc is None:  # the caller only asks when there is an RTC
            return None
        if cache is None or mono - cache[0] >= self.config.rtc_probe_every_s:
            rtc_t = rtc()
            cache = self._rtc_cache = (mono, None if rtc_t is None else rtc_t - system)
        return cache[1]

    # -- the stored state ------------------------------------------------------------------
    def _sync_store(self, mono: float) -> None:
        if self.store is None:
            return
        try:
            stamp = self.store.stamp()
            if stamp == self._stamp:
                return
            state = self.store.load()
        except OSError as exc:
            self._warn_once("store", f"{exc}; keeping the floor in memory")
            return
        except TrustError as exc:
            self._stamp = stamp  # not re-parsed every frame: only when someone writes it
            self._replace_damaged(mono, exc)
            return
        self._stamp = stamp
        stored = state.floor_at(self.boot_id, mono)
        if (
            self._repairs is not None
            and state.repairs > self._repairs
            and state.floor_source == "token"
            and stored is not None
        ):
            # Another process repaired the floor (a fresh token lowered a floor NTP or an RTC
            # had set too high): adopt the stored floor instead of keeping the higher one.
            # Only then: a deleted file (no count), an older copy (a lower count) or one whose
            # floor no token set is no repair, and only raises our floor like any other.
            low = max(float(self.config.epoch), stored)
            self._floor, self._floor_mono, self._floor_source = low, mono, state.floor_source
            self._stored = state.floor if state.floor is not None else float(self.config.epoch)
            log.warning("clock floor repaired by a signed time token: %.0f", low)
        elif stored is not None and state.floor is not None:  # floor_at is None only then
            self._stored = max(self._stored, state.floor)
            if stored > self._floor + (mono - self._floor_mono):
                self._floor, self._floor_mono, self._floor_source = stored, mono, state.floor_source
        self._repairs = state.repairs
        self._token_floor = state.token_floor
        a = state.anchor
        self._anchor = a if a is not None and a.boot == self.boot_id else None

    def save(self) -> None:
        """Write the floor as it stands now, however little it moved (a clean stop: SIGTERM
        before a planned reboot or power-off must not lose up to ``persist_every_s``)."""
        mono = self._mono()
        self._sync_store(mono)
        self._maybe_persist(mono, every_s=0.0)

    def __enter__(self) -> SystemClock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.save()

    def _maybe_persist(self, mono: float, every_s: float | None = None) -> None:
        """Persist the floor when it moved ``persist_every_s`` (or ``every_s``) past what is
        stored: bounded SD writes, and a restart or reboot loses at most that much progress."""
        store = self.store
        if not self._persist or store is None:  # _persist implies a store
            return
        lower = self._floor + (mono - self._floor_mono)
        every = self.config.persist_every_s if every_s is None else every_s
        if lower - self._stored < every or lower <= self._stored:
            return
        # Monotonic progress keeps the source the floor came from: a floor NTP set stays
        # repairable by a token however long it was carried forward.
        try:
            store.raise_floor(lower, self.boot_id, mono, self._floor_source, self._repairs)
        except OSError as exc:
            self._warn_once("persist", f"cannot persist the clock floor: {exc}")
            return
        except TrustError as exc:  # damaged since we last read it
            self._replace_damaged(mono, exc)
            return
        self._stored = lower
        self._stamp = ()  # read it back next time: a repair may have refused our write

    def _replace_damaged(self, mono: float, exc: TrustError) -> None:
        """The state file is unreadable (garbage, truncated, a wrong-typed field): every
        process would refuse it from now on, so it is rewritten from the floor in memory.
        ``read()`` never raises for the file: the scanner's frame loop calls it."""
        store = self.store
        if not self._persist or store is None:  # _persist implies a store
            self._warn_once("damaged", f"{exc}; keeping the floor in memory")
            return
        lower = self._floor + (mono - self._floor_mono)
        try:
            store.replace_damaged(
                lower,
                self.boot_id,
                mono,
                self._floor_source,
                repairs=self._repairs or 0,
                token_floor=self._token_floor,
                anchor=self._anchor,
            )
        except OSError as write_exc:
            self._warn_once("persist", f"{exc}; cannot rewrite it: {write_exc}")
            return
        self._warn_once("damaged", f"{exc}; rewritten with the floor in memory ({lower:.0f})")
        self._stored = lower
        self._stamp = ()  # read back what is there now (ours, or another process's rewrite)

    # -- tokens (for the sync agent and ``passgate time``) ---------------------------------
    def new_challenge(self) -> bytes:
        """A nonce to send to the collector with a time request (see
        :mod:`passgate.clock.tokens`)."""
        store = self._need_store()
        self._sync_store(self._mono())  # a damaged file is rewritten first
        return store.new_challenge(self.boot_id, self._mono())

    def accept_token(self, data: bytes, keys: Sequence[TimeKey], device_id: str) -> TokenResult:
        """Verify and record a signed time token; raises ``TimeTokenError`` if refused."""
        store = self._need_store()
        self._sync_store(self._mono())  # a damaged file is rewritten first
        result = store.accept_token(
            data, keys, device_id, self.boot_id, self._mono(), self.config.tolerance_s
        )
        self._stamp = ()  # re-read at the next read()
        return result

    def _need_store(self) -> ClockStore:
        if self.store is None:
            raise TrustError("this clock has no state file")
        return self.store

    # -- logging: transitions only ---------------------------------------------------------
    def _log_transition(self, state: ClockState, source: str, system: float, lower: float) -> None:
        if self._last == (state, source):
            return
        first, self._last = self._last is None, (state, source)
        if state is ClockState.BACKWARDS:
            log.warning("clock backwards: system time is %.0f s before the floor", lower - system)
        elif first:  # not a transition: the owner (daemon, command) reports the start state
            log.debug("clock %s (%s)", state.value, source)
        else:
            log.info("clock %s (%s)", state.value, source)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)
