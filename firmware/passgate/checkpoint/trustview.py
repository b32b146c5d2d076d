"""What the checkpoint trusts right now: a verifier, the policy that goes with it, staleness.

Two providers give the frame loop a :class:`TrustView` whenever it asks:

- :class:`BundleTrust`, on a device: the installed signed bundle, reloaded when the sync agent
  installs a new one (:class:`passgate.bundle.watch.BundleWatcher`). What is built from it
  (verifier, policy, anti-passback) is kept until the bundle (version and manifest hash)
  changes: the refresh the sync agent records every round moves only the staleness. The
  bundle's fleet policy for this zone and site decides the clock and staleness policies and
  the anti-passback windows. A window longer than ``journal.retention`` is logged once per
  bundle, and the journal is told to keep rows for it
  (:meth:`passgate.journal.journal.Journal.keep_for`), since anti-passback reads them there.
  Without a usable bundle every pass is denied (``trust_stale``, "no trust data") and the OLED
  says "no trust data"; the local config's policy applies meanwhile.
- :class:`StaticTrust`: a plain trust folder (``trust.source = "dir"``, the simulation, tests),
  never stale, with the local config's policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from passgate.bundle.policy import CheckpointPolicy, TrustStatus, trust_status
from passgate.bundle.verify import BundleInfo
from passgate.bundle.watch import Loaded
from passgate.checkpoint.decide import FRESH
from passgate.checkpoint.parts import FixedTrust
from passgate.config.schema import Config
from passgate.errors import JournalError
from passgate.journal.antipassback import AntiPassback
from passgate.options.declare import format_duration
from passgate.passes.truststore import TrustStore
from passgate.passes.verify import DEFAULT_LIVE_WINDOW_S, Verifier

log = logging.getLogger(__name__)


class AcceptLog(Protocol):
    def last_accepted(
        self, pass_hash: bytes, zone: str, after: float, until: float
    ) -> float | None: ...


class KeepingLog(AcceptLog, Protocol):
    def keep_for(self, seconds: float) -> None: ...


class BundleSource(Protocol):
    """The installed bundle as :class:`BundleTrust` reads it
    (:class:`passgate.bundle.watch.BundleWatcher`)."""

    def current(self) -> Loaded:
        """The bundle installed now (its store and info), or why there is none."""
        ...


@dataclass(frozen=True)
class TrustView:
    """What the checkpoint trusts right now, and the policy that comes with it.

    ``status``: staleness of the trust data. ``policy``: the effective settings for this
    checkpoint (clock and stale policies, anti-passback windows). ``antipassback``: built for
    that policy. ``missing``: why there is no trust data at all (every pass is then denied,
    see :func:`passgate.checkpoint.decide.decide`, and the OLED says "no trust data").
    """

    verifier: Verifier
    policy: CheckpointPolicy
    antipassback: AntiPassback
    status: TrustStatus = FRESH
    missing: str = ""


def local_policy(cfg: Config) -> CheckpointPolicy:
    """The local config's settings, resolved for this checkpoint's zone.

    ``[antipassback]`` may name other zones (one file for several checkpoints); only this
    zone's windows matter here, so they fold into one default and per-purpose windows.
    """
    ap, zone = cfg.antipassback, cfg.checkpoint.zone
    named = set(ap.purposes)
    if zone in ap.zones:
        named |= set(ap.zones[zone].purposes)
    return CheckpointPolicy(
        clock=cfg.clock.untrusted_policy,
        stale=cfg.trust.stale_policy,
        max_offline_s=cfg.trust.max_offline_age,
        anti_passback_s=ap.window_for(zone, None),
        anti_passback_purposes=MappingProxyType({p: ap.window_for(zone, p) for p in sorted(named)}),
        holder_binding=cfg.trust.holder_binding,
    )


def antipassback_for(journal: AcceptLog, policy: CheckpointPolicy) -> AntiPassback:
    return AntiPassback(
        journal, policy.anti_passback_s, purpose_windows=dict(policy.anti_passback_purposes)
    )


class StaticTrust(FixedTrust):
    """A trust store that never changes and never goes stale (so no rows to keep for it)."""

    def __init__(self, store: TrustStore, policy: CheckpointPolicy, journal: AcceptLog,
                 live_window_s: int = DEFAULT_LIVE_WINDOW_S) -> None:
        verifier = Verifier(store, live_window_s=live_window_s)
        self._view = TrustView(verifier, policy, antipassback_for(journal, policy))

    def current(self, now: float) -> TrustView:
        return self._view


class BundleTrust:
    """The installed bundle as a :class:`TrustView`, following installs by the sync agent.

    ``watcher``: a :class:`~passgate.bundle.watch.BundleWatcher` (or anything with
    ``current() -> Loaded``). ``fallback``: the policy while no bundle is usable. ``site``: the
    checkpoint's site (``checkpoint.site``); the fleet's zone setting wins over the site's,
    which wins over the fleet default. ``retention_s``: ``journal.retention``, to warn about.
    ``live_window_s``: ``checkpoint.live_code_window``, the freshness window of live codes.
    """

    def __init__(
        self,
        watcher: BundleSource,
        journal: KeepingLog,
        zone: str,
        fallback: CheckpointPolicy,
        site: str = "",
        retention_s: float | None = None,
        live_window_s: int = DEFAULT_LIVE_WINDOW_S,
    ) -> None:
        self.watcher, self.journal, self.zone, self.site = watcher, journal, zone, site
        self.retention_s = retention_s
        self.live_window_s = live_window_s
        self._fallback = TrustView(
            Verifier(TrustStore([])), fallback, antipassback_for(journal, fallback)
        )
        self._bundle: object = None  # what the view was built from: see _identity()
        self._warned = ""  # manifest hash of the last bundle warned about
        self._keep_owed: float | None = None  # a window the journal has not been told yet
        self._keep_failed = False  # telling it failed (and was logged)
        self._view = self._fallback

    def current(self, now: float) -> TrustView:
        loaded = self.watcher.current()
        # The watcher hands out a new Loaded for every refresh the sync agent records: that
        # moves only the staleness, worked out below. Rebuild (and warn) per bundle.
        bundle = _identity(loaded)
        if bundle != self._bundle:
            self._bundle = bundle
            self._view = self._build(loaded)
        if loaded.info is None:
            return self._view
        status = trust_status(loaded.info, now, max_offline_s=self._view.policy.max_offline_s)
        if status == self._view.status:
            return self._view
        self._view = TrustView(
            self._view.verifier, self._view.policy, self._view.antipassback, status
        )
        return self._view

    def _build(self, loaded: Loaded) -> TrustView:
        if loaded.store is None or loaded.info is None:
            missing = loaded.missing or "no trust data"
            return TrustView(
                self._fallback.verifier,
                self._fallback.policy,
                self._fallback.antipassback,
                FRESH,
                missing,
            )
        policy = loaded.info.fleet.for_checkpoint(self.zone, self.site or None)
        self._keep_rows(policy, loaded.info)
        verifier = Verifier(loaded.store, live_window_s=self.live_window_s)
        return TrustView(verifier, policy, antipassback_for(self.journal, policy))

    def _keep_rows(self, policy: CheckpointPolicy, info: BundleInfo) -> None:
        """Make the journal keep accepted rows for the longest window this policy applies."""
        longest = max([policy.anti_passback_s, *policy.anti_passback_purposes.values()])
        retention = self.retention_s
        too_long = retention is not None and longest > retention
        # a reload of the same bundle says nothing new
        if retention is not None and too_long and info.manifest_sha256 != self._warned:
            self._warned = info.manifest_sha256
            log.warning(
                "bundle %d: anti-passback window %s in zone %s is longer than "
                "journal.retention (%s); uploaded rows are kept for the window",
                info.version,
                _duration(longest),
                self.zone,
                _duration(retention),
            )
        if self.journal is None:  # a provider without a journal (tools, tests): nothing to keep
            return
        self._keep_owed = longest
        self.retry_keep()

    def retry_keep(self) -> None:
        """Tell the journal the window to keep rows for, if that is still owed: it failed
        when the bundle loaded (the journal could not be opened or written). The frame loop
        calls this whenever the journal reads; until it works, pruning may be early."""
        if self._keep_owed is None:
            return
        try:
            self.journal.keep_for(self._keep_owed)
        except JournalError as exc:  # the journal fault shows on its own; said here once
            if not self._keep_failed:
                self._keep_failed = True
                log.warning(
                    "journal: cannot record the anti-passback window to keep rows "
                    "for (tried again when it reads): %s",
                    exc,
                )
            return
        if self._keep_failed:
            log.info(
                "journal: keeping rows for the anti-passback window (%s) now",
                _duration(self._keep_owed),
            )
        self._keep_owed, self._keep_failed = None, False


def _identity(loaded: Loaded) -> tuple[int, str] | str:
    """What a view is built from: the bundle's (version, manifest hash), or why there is none."""
    if loaded.store is None or loaded.info is None:
        return loaded.missing or "no trust data"
    return loaded.info.version, loaded.info.manifest_sha256


def _duration(seconds: float) -> str:
    return format_duration(int(seconds))
