"""Exponential backoff with jitter for the sync agent's retries.

Why jitter: a fleet of checkpoints that lose the collector at the same moment (a reboot, a
network outage) would otherwise all retry at the same instants and hammer it when it comes
back. "Full jitter" (docs/sync-protocol.md section 4: ``random(0, min(cap, base * 2**n))``)
spreads a fleet's retries over the whole step. The random source is injected so tests are
deterministic; the delay is returned, never slept here.

A ``Retry-After`` (a saturated collector's 503, a proxy's 429) is jittered too, upwards only:
the wait is ``retry_after * (1 + retry_jitter * rand())``. A whole district that came back at
once and was told "30 s" would otherwise return at the same second and saturate it again.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from passgate.errors import ArgumentError


class Backoff:
    """Delays for consecutive failures: ``base * factor**n`` capped at ``cap``, jittered.

    ``rand`` returns a float in [0, 1) (``random.random`` by default). ``next_delay`` is called
    after each failure; ``reset`` after a success. A server's ``Retry-After`` is a lower bound
    on the delay (jittered upwards by up to ``retry_jitter`` of itself), capped at
    ``max_retry_after`` so a buggy answer cannot park a device for days. ``at_cap`` gives the
    "retry at maximum backoff" delay used for faults that only an update or an administrator
    can fix.
    """

    def __init__(
        self,
        base: float = 2.0,
        cap: float = 300.0,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
        max_retry_after: float = 3600.0,
        retry_jitter: float = 0.5,
    ) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ArgumentError("backoff needs 0 < base <= cap and factor >= 1")
        self.base, self.cap, self.factor = float(base), float(cap), float(factor)
        self.max_retry_after = float(max_retry_after)
        self.retry_jitter = float(retry_jitter)
        self._rand = rand
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        # Exponent clamped so a device offline for months does not overflow a float.
        step = min(self.cap, self.base * self.factor ** min(self.failures, 64))
        self.failures += 1
        delay = self._rand() * step
        if retry_after is not None and retry_after > delay:
            # Never earlier than asked; spread over the next ``retry_jitter`` of the hint.
            spread = float(retry_after) * (1 + self.retry_jitter * self._rand())
            delay = min(spread, self.max_retry_after)
        return delay

    def at_cap(self) -> float:
        """Count a failure and return the capped delay, jittered over its upper half."""
        self.failures += 1
        return self.cap / 2 + self._rand() * self.cap / 2

    def reset(self) -> None:
        """Forget past failures (call after a successful exchange)."""
        self.failures = 0
