"""Per-source token buckets for the requests anyone may send without a device key.

Rules kept here (docs/collector.md "Rate limits"; tests/test_collector_enumeration.py):

- One bucket per source address: ``rate`` tokens a second, up to ``burst``. A request that
  finds its bucket empty is refused (429 with ``Retry-After``) or gets no time token.
- The source is the peer address, or, behind a proxy, the rightmost address of a configured
  trusted header (the one the proxy appends; leftmost entries are whatever the client wrote).
- An IPv6 source counts by its /64 (one subscriber's network: whoever holds one has 2^64
  addresses to rotate through); an IPv4 address, or IPv4 mapped into IPv6, counts alone.
- Memory is bounded: at most ``max_sources`` buckets, the least recently used one dropped.
- Buckets are per process: N collector processes allow N times the rate. That is fine for
  what this guards (enumeration and signing work), and needs no shared state.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate: float, burst: int, now: Callable[[], float],
                 max_sources: int = 10_000) -> None:
        self.rate, self.burst, self._now, self._max = rate, burst, now, max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, source: str) -> float:
        """Take one token for ``source``: 0.0 when allowed, else seconds until one is back."""
        now = self._now()
        with self._lock:
            tokens, last = self._buckets.pop(source, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate if self.rate > 0 else math.inf
            self._buckets[source] = (tokens, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            return wait


def source_of(remote_addr: str | None, headers, trusted_header: str | None) -> str:
    """The address a request counts against (see the module rules)."""
    if trusted_header:
        value = headers.get(trusted_header)
        if value:
            last = value.split(",")[-1].strip()
            if last:
                return bucket_of(last)
    return bucket_of(remote_addr or "-")


def bucket_of(address: str) -> str:
    """An IPv6 address's /64, else the address as given (IPv4, or not an address at all)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
