"""Exponential backoff with jitter for the sync agent's retries.

Why jitter: a fleet of checkpoints that lose the collector at the same moment (a reboot, a
network outage) would otherwise all retry at the same instants and hammer it when it comes
back. "Equal jitter" keeps at least half of each step, so a device never retries in a tight
loop, and spreads the other half at random. The random source is injected so tests are
deterministic; the delay is returned, never slept here.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays for consecutive failures: ``base * factor**n`` capped at ``cap``, jittered.

    ``rand`` returns a float in [0, 1) (``random.random`` by default). ``next_delay`` is called
    after each failure; ``reset`` after a success. A server's ``Retry-After`` hint raises the
    delay (never lowers it) but is itself capped, so a hostile or buggy answer cannot park a
    device for days.
    """

    def __init__(
        self,
        base: float = 2.0,
        cap: float = 300.0,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError("backoff needs 0 < base <= cap and factor >= 1")
        self.base, self.cap, self.factor = float(base), float(cap), float(factor)
        self._rand = rand
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        # Exponent clamped so a device offline for months does not overflow a float.
        step = min(self.cap, self.base * self.factor ** min(self.failures, 64))
        self.failures += 1
        delay = step / 2 + self._rand() * step / 2
        if retry_after is not None and retry_after > delay:
            delay = min(float(retry_after), self.cap)
        return delay

    def reset(self) -> None:
        """Forget past failures (call after a successful exchange)."""
        self.failures = 0
