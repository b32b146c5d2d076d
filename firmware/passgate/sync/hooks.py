"""The sync agent's links to the rest of the checkpoint: the installed trust bundle and the
clock floor. Both are owned by other modules (``passgate.bundle``, ``passgate.clock.clock``); this
file only adapts them to the small interfaces the agent takes, so the agent never imports them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from passgate.bundle import (
    BundleError,
    NoTrustData,
    install_bundle,
    installed_stamp,
    record_refresh,
)
from passgate.bundle.delta import CHAIN_MAGIC, apply_chain
from passgate.bundle.install import BUNDLE_FILE
from passgate.bundle.verify import read_header
from passgate.errors import PassFormatError, TimeTokenError
from passgate.passes.cose import decode_sign1, loads_strict

log = logging.getLogger(__name__)


class InstalledBundles:
    """:class:`~passgate.sync.agent.BundleHooks` over a bundle folder (``trust.bundle_dir``).

    ``installed`` reads only the installed file's header (a few hundred bytes), so asking every
    round costs nothing even for a 16 MB bundle; the signature and every other check happen in
    ``install_bundle``, exactly as for ``passgate bundle install``.
    """

    def __init__(self, bundle_dir: Path, now: Callable[[], float]) -> None:
        self.dir = Path(bundle_dir)
        self._now = now
        self._cache: tuple[tuple[int, int, int], tuple[int, int]] | None = None
        self._problem: str | None = None  # logged once, not at every batch

    def installed(self) -> tuple[int, int] | None:
        try:
            stamp = installed_stamp(self.dir)
            if stamp is None:
                return None
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1]
            with open(self.dir / BUNDLE_FILE, "rb") as f:
                m = read_header(f).manifest
        except (OSError, BundleError) as exc:
            # Report "no bundle": the collector then offers its newest, which install checks
            # (and an unusable folder, e.g. under a regular file, then fails there, visibly).
            if str(exc) != self._problem:
                log.warning("installed bundle header unreadable: %s", exc)
            self._problem = str(exc)
            return None
        self._problem = None
        self._cache = (stamp, (m.version, m.issued))
        return self._cache[1]

    def install(self, data: bytes) -> int:
        """Install a full bundle, or apply a delta chain (told apart by its magic); both end
        in the same checked, atomic install."""
        if data.startswith(CHAIN_MAGIC):
            return apply_chain(data, self.dir, self._now()).version
        return install_bundle(data, self.dir, self._now()).version

    def refreshed(self, now: float) -> None:
        try:
            record_refresh(self.dir, now)
        except NoTrustData as exc:
            log.warning("cannot record the bundle refresh: %s", exc)


class TimeLink:
    """Connects collector answers to the clock floor (``passgate.clock.clock.SystemClock``).

    The client asks :meth:`challenge` before every request and hands every answer's token to
    :meth:`accept`, so both must be cheap when there is nothing to do: every challenge made
    and every token taken is a synced write of the clock file to the SD card, and a backlog
    drain brings hundreds of answers.

    - After a token made the clock ``trusted``, no new challenge is made for ``every_s``
      seconds: the clock stays trusted on its monotonic clock far longer than that
      (``token_trust_s``).
    - One challenge is outstanding at a time and rides on every request until a token answers
      it; it is renewed before the clock store would let it expire.
    - A token that answers the outstanding challenge is always taken (it is the one that makes
      the clock trusted); any other token only raises the floor and is taken at most every
      ``every_s`` seconds.

    Logging: the outcome (trusted, or floor only) at INFO when it changes, otherwise DEBUG. A
    token that fails verification is logged once per distinct problem and ignored; it never
    interrupts an upload.
    """

    RENEW_S = 480.0  # below clockstore.CHALLENGE_TTL_S (600 s)

    def __init__(self, clock, keys: Callable[[], tuple], device_id: str, *,
                 monotonic: Callable[[], float], every_s: float = 300.0) -> None:
        self.clock, self._keys, self.device_id = clock, keys, device_id
        self._mono, self.every_s = monotonic, every_s
        self._nonce: tuple[bytes, float] | None = None
        self._last_accept: float | None = None
        self._last_trusted: float | None = None
        self._last_outcome: str | None = None
        self._last_problem: str | None = None
        self.accepted = 0

    def challenge(self) -> bytes | None:
        """The nonce to send with a request (``Passgate-Time-Nonce``), or None."""
        now = self._mono()
        if self._nonce is None and self._recent(self._last_trusted, now):
            return None  # trusted a moment ago: a new challenge would only cost a write
        if self._nonce is None or now - self._nonce[1] > self.RENEW_S:
            try:
                self._nonce = (self.clock.new_challenge(), now)
            except (OSError, ValueError) as exc:  # TrustError is a ValueError: no clock file
                self._problem(f"cannot make a time challenge: {exc}")
                return None
        return self._nonce[0]

    def accept(self, raw: bytes) -> None:
        """Feed one token from a collector answer to the clock (time_sink of the client)."""
        now = self._mono()
        answers = self._nonce is not None and _token_nonce(raw) == self._nonce[0]
        if not answers and self._recent(self._last_accept, now):
            return
        try:
            keys = self._keys()
            result = self.clock.accept_token(raw, keys, self.device_id)
        except TimeTokenError as exc:
            self._problem(f"collector time refused: {exc}")
            return
        except OSError as exc:
            self._problem(f"cannot record collector time: {exc}")
            return
        self._last_accept, self._last_problem = now, None
        self.accepted += 1
        if result.trusted:
            self._nonce = None  # answered (and used up): no new one for every_s
            self._last_trusted = now
        outcome = "trusted" if result.trusted else "floor only"
        level = logging.INFO if outcome != self._last_outcome else logging.DEBUG
        log.log(level, "collector time: %s", result.detail)
        self._last_outcome = outcome

    def _recent(self, then: float | None, now: float) -> bool:
        return then is not None and 0 <= now - then < self.every_s

    def _problem(self, message: str) -> None:
        if message != self._last_problem:
            log.warning("%s", message)
        self._last_problem = message


def _token_nonce(raw: bytes) -> bytes | None:
    """The challenge a token claims to answer, read without verifying it (``accept_token``
    verifies). Only decides whether the token is worth a write now; None if unreadable."""
    try:
        payload = loads_strict(decode_sign1(raw).payload, "time token")
    except (PassFormatError, ValueError):
        return None
    nonce = payload.get("nonce") if isinstance(payload, dict) else None
    return nonce if isinstance(nonce, bytes) else None
