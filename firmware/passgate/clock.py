"""Time as the checkpoint knows it: a value and how far it can be trusted.

Every journal row and the idle screen carry the :class:`ClockState`. The full floor logic
(persisted floor, signed time tokens, timesyncd) is built on this interface; stages only
ever call ``clock.read()`` and never ``time.time()`` themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


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
