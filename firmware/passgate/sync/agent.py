"""The sync agent's loop: upload the journal, fetch trust bundles, report state.

One *round* drains the journal in batches (oldest first, each batch consecutive rows), then
asks for a newer bundle, then writes the sync state file the idle screen reads. The loop
(:meth:`SyncAgent.run`) repeats rounds: after a good round it waits ``interval``, after a
failed one the backoff delay. Everything with side effects is injected (journal, client,
clock, bundle hooks, sleep), so the tests drive the real loop against a real collector with
faults in between and no real waiting.

What never happens here: a row deleted or evicted, a row marked uploaded without the
collector naming it ``stored`` or ``duplicate``, a row dead-lettered for anything but a
per-row ``rejected``. Logging is for transitions only ("collector unreachable",
"collector back, uploaded 412"); rows are never logged.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from passgate.errors import (
    ArgumentError,
    BundleTooLarge,
    PassgateError,
    Refused,
    SyncError,
    TooLarge,
    Transient,
)
from passgate.journal.schema import ZERO_CHAIN
from passgate.journal.syncstate import OFFLINE, ONLINE, SyncState, read_state, write_state
from passgate.sync.backoff import Backoff
from passgate.sync.client import BundleReply, CollectorClient

log = logging.getLogger(__name__)

ACKED = frozenset({"stored", "duplicate"})
DEFAULT_BATCH = 500  # the collector's max_rows: docs/sync-protocol.md "recommended batch"
STATE_EVERY = 5.0  # seconds between state-file writes while a backlog drains
BUNDLE_RETRY_S = 900.0  # seconds before a bundle this device could not write is fetched again


class JournalLike(Protocol):
    """What the agent needs from ``passgate.journal.journal.Journal``."""

    def pending(self, limit: int) -> list: ...
    def pending_count(self) -> int: ...
    def mark_uploaded(self, seqs: list[int], at: float) -> int: ...
    def dead_letter(self, seqs: list[int], reason: str, at: float | None = None) -> int: ...
    def dead_letter_count(self) -> int: ...
    def chain_before(self, seq: int) -> bytes: ...
    def prune(self, now: float, retention_s: float) -> int: ...


class BundleHooks(Protocol):
    """The installed trust bundle, as the agent sees it (wired to ``passgate.bundle``)."""

    def installed(self) -> tuple[int, int] | None:
        """(version, issued_at) of the installed bundle, or None when there is none."""
        ...

    def install(self, data: bytes) -> int:
        """Install through the same checks as ``passgate bundle install``; return the
        version now installed. Raises ``PassgateError`` (``TrustError``) on refusal, and
        ``OSError`` when the device cannot write it (disk full, state folder unwritable)."""
        ...

    def refreshed(self, now: float) -> None:
        """The collector has nothing newer than the installed bundle: it is fresh as of now.
        Called only after a successful check, so a failing link shows as staleness."""
        ...


@dataclass(frozen=True, slots=True)
class RoundResult:
    ok: bool
    uploaded: int  # rows the collector confirmed this round (stored or duplicate)
    dead_lettered: int
    pending: int
    delay: float  # how long the loop waits before the next round
    error: str | None = None
    bundle_installed: int | None = None


class SyncAgent:
    """Moves the journal to the collector and trust data back. Not thread-safe: one loop."""

    def __init__(
        self,
        journal: JournalLike,
        client: CollectorClient,
        *,
        now: Callable[[], float],
        state_file: Path | None = None,
        bundle: BundleHooks | None = None,
        backoff: Backoff | None = None,
        batch_size: int = DEFAULT_BATCH,
        interval: float = 60.0,
        health: Callable[[], dict] | None = None,
        retention_s: float | None = None,
        enrol: Callable[[], object] | None = None,
        prune_time: Callable[[], float | None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ArgumentError("batch_size must be at least 1")
        self.journal, self.client = journal, client
        self._now = now
        self._state_file = state_file
        self._bundle = bundle
        self.backoff = backoff or Backoff()
        self.batch_size = batch_size
        self.interval = interval
        self._health = health
        self.retention_s = retention_s
        # Pruning deletes: it takes a time that cannot be ahead of the real one (the clock
        # floor), not ``now``, which a forward-jumped, untrusted clock would push past rows
        # still inside the anti-passback window. None from it skips pruning this round.
        self._prune_time = prune_time or now
        self._enrol = enrol  # run before every round: a no-op once enrolled
        # From the file, so a restart whose first round fails still tells when the last
        # success was ("sync status" after a failed --once said "never").
        self._state = read_state(state_file) if state_file is not None else SyncState()
        self._online: bool | None = None  # None until the first exchange: first result logs
        self._last_error_code: str | None = None
        self._refused_bundle: int | None = None  # a version that failed checks: not re-fetched
        self._bundle_error: str | None = None  # shown in the state until a bundle installs
        self._unwritable: tuple[int | None, float] | None = None  # (version, when) not written
        self._refresh_problem: str | None = None
        self._stop: threading.Event | None = None
        self._last_state_write = float("-inf")

    # --- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event, sleep: Callable[[float], object] | None = None) -> None:
        """Run rounds until ``stop`` is set. ``sleep`` defaults to ``stop.wait`` (wakes on stop)."""
        sleep = sleep or stop.wait
        self._stop = stop  # also checked between batches: SIGTERM mid-backlog ends promptly
        while not stop.is_set():
            sleep(self.run_round().delay)

    def run_round(self) -> RoundResult:
        """One round: drain, fetch a bundle, write state. Never raises for sync problems."""
        uploaded = dead = 0
        installed = None
        try:
            if self._enrol is not None:
                self._enrol()
            pending = self.journal.pending_count()
            uploaded, dead, hint = self._drain(pending)
            installed = self._maybe_fetch_bundle(hint)
            if uploaded or dead or installed is not None:
                # The last batch reported the backlog before it and the bundle before any
                # install: one heartbeat so staff see the device as it is now.
                self.client.upload(ZERO_CHAIN, [], self._status(self.journal.pending_count()))
        except Transient as exc:
            return self._failed(exc, self.backoff.next_delay(exc.retry_after), uploaded, dead)
        except Refused as exc:
            # Retrying the same request cannot help; only an update or an administrator can.
            return self._failed(exc, self.backoff.at_cap(), uploaded, dead)
        self.backoff.reset()
        now = self._now()
        if self._online is not True:
            log.info("collector back, uploaded %d", uploaded)
        self._online, self._last_error_code = True, None
        if self.retention_s is not None and (prune_at := self._prune_time()) is not None:
            # Only uploaded rows older than the retention go; pending rows never do.
            self.journal.prune(prune_at, self.retention_s)
        pending = self.journal.pending_count()
        self._write_state(
            self._state.with_(
                connectivity=ONLINE,
                last_attempt=now,
                last_success=now,
                last_error=self._bundle_error,
                pending=pending,
                dead_letters=self.journal.dead_letter_count(),
                bundle_version=self._bundle_version(),
            ),
            force=True,
        )
        return RoundResult(True, uploaded, dead, pending, self.interval, None, installed)

    # --- upload ---------------------------------------------------------------------------

    def _drain(self, pending: int) -> tuple[int, int, int | None]:
        """Upload until nothing is pending; return (acknowledged, dead-lettered, bundle hint)."""
        uploaded = dead = 0
        hint = None
        sent_any = False
        while True:
            if sent_any and self._stop is not None and self._stop.is_set():
                return uploaded, dead, hint  # the rest stays queued for the next start
            rows = _consecutive(self.journal.pending(self.batch_size))
            if not rows and sent_any:
                return uploaded, dead, hint
            # An empty batch is the protocol's heartbeat: health and a time token, no rows.
            prev = self._prev_chain(rows[0].seq) if rows else ZERO_CHAIN
            try:
                reply = self.client.upload(prev, rows, self._status(pending))
            except TooLarge:
                if len(rows) <= 1:
                    raise
                self.batch_size = max(1, len(rows) // 2)
                log.warning("collector says batches are too large; now %d rows", self.batch_size)
                continue
            sent_any = True
            hint = reply.bundle_version
            if not rows:
                return uploaded, dead, hint
            acked, rejected = self._apply(reply.results)
            uploaded += acked
            dead += rejected
            pending = max(0, pending - acked - rejected)
            if acked + rejected == 0:
                # Answers we do not understand (a newer status value): keep the rows pending
                # and back off rather than resend the same batch in a tight loop.
                raise Transient(f"collector acknowledged none of {len(rows)} rows")
            # Throttled: the idle screen's pending count moves while a backlog drains.
            self._write_state(self._state.with_(connectivity=ONLINE, pending=pending))

    def _prev_chain(self, seq: int) -> bytes:
        try:
            return self.journal.chain_before(seq)
        except LookupError as exc:
            # The row before is gone from the journal (it should never be: pruning keeps the
            # last chain). Upload anyway: the collector flags the break for staff, while
            # holding the rows back would hide them forever.
            log.warning("journal chain: %s; uploading, the collector will flag the gap", exc)
            return ZERO_CHAIN

    def _apply(self, results) -> tuple[int, int]:
        acked = [r.seq for r in results if r.status in ACKED]
        by_reason: dict[str, list[int]] = defaultdict(list)
        for r in results:
            if r.status == "rejected":
                by_reason[r.reason or "rejected"].append(r.seq)
        if acked:
            self.journal.mark_uploaded(acked, self._now())
        for reason, seqs in by_reason.items():
            self.journal.dead_letter(seqs, reason, self._now())
            log.warning(
                "collector refused %d row(s) for good (%s); kept as dead letters", len(seqs), reason
            )
        return len(acked), sum(len(s) for s in by_reason.values())

    def _status(self, backlog: int) -> dict:
        status = {"backlog": backlog, "dead_letters": self.journal.dead_letter_count()}
        inst = self._installed()
        if inst is not None:
            status["bundle_version"], status["bundle_issued_at"] = inst
        if self._health is not None:
            status.update(self._health())
        return status

    # --- bundle ---------------------------------------------------------------------------

    def _maybe_fetch_bundle(self, hint: int | None) -> int | None:
        if self._bundle is None:
            return None
        have = self._bundle_version()
        # The batch reply names the newest published version: skip the request when it is
        # not newer, or when it is the very version whose checks failed last time. Only the
        # installed version itself confirms the installed bundle: a newest below it (the
        # device holds a bundle this collector does not publish) confirms nothing, and the
        # staleness clock keeps running (nothing is fetched: versions only go up).
        if hint is not None and have is not None and hint <= have:
            if hint == have:
                self._refreshed()
                self._bundle_error = None
            else:
                self._newest_below(hint, have)
            return None
        if hint is not None and hint == self._refused_bundle:
            return None
        if self._unwritable is not None:
            version, since = self._unwritable
            if (hint is None or hint == version) and 0 <= self._now() - since < BUNDLE_RETRY_S:
                return None  # not another download of it every round while the disk is full
        try:
            reply = self.client.fetch_bundle(have)
        except BundleTooLarge as exc:
            self._bundle_refused(hint, exc)
            return None
        if reply.data is None:
            # Only "nothing newer" (304) confirms the installed bundle; a collector with none
            # published (404) confirms nothing, so the staleness clock keeps running.
            if reply.published and have is not None and reply.version is not None and (
                reply.version < have
            ):
                self._newest_below(reply.version, have)
            elif reply.published and have is not None:
                self._refreshed()
            return None
        if reply.version is not None and reply.version == self._refused_bundle:
            return None
        return self._install(reply, have)

    def _install(self, reply: BundleReply, have: int | None) -> int | None:
        assert self._bundle is not None and reply.data is not None  # the bundle round's
        try:
            version = self._bundle.install(reply.data)
        except PassgateError as exc:
            if reply.delta:
                # Any doubt about a delta (another base, a gap, a hash that does not match):
                # fall back to the full bundle, which stands on its own.
                log.info("delta chain to %s not applied (%s): fetching the full bundle",
                         reply.version, exc)
                return self._fetch_full()
            self._bundle_refused(reply.version, exc)
            return None
        except OSError as exc:
            self._bundle_unwritable(reply.version, exc)
            return None
        self._refused_bundle = self._bundle_error = self._unwritable = None
        log.info("trust bundle %d installed (was %s)", version, have)
        return version

    def _fetch_full(self) -> int | None:
        have = self._bundle_version()  # a chain may have applied part of the way
        try:
            reply = self.client.fetch_bundle(have, full=True)
        except BundleTooLarge as exc:
            self._bundle_refused(None, exc)
            return None
        if reply.data is None:
            return have
        # A collector that answers "full" with a chain again gets no second fallback.
        return self._install(replace(reply, delta=False), have)

    def _newest_below(self, newest: int, have: int) -> None:
        """The collector's newest is *below* the installed version: it does not publish what
        this device holds (a bundle installed by hand, or a revocation key's number above
        what the roots published since). No refresh, and nothing to fetch: the device would
        refuse it as a rollback. The staleness clock shows it on the screen in time."""
        if self._bundle_error is None or not self._bundle_error.startswith("collector's newest"):
            log.warning("the collector's newest bundle v%d is below the installed v%d: not "
                        "counted as a refresh", newest, have)
        self._bundle_error = f"collector's newest bundle v{newest} is below the installed v{have}"

    def _bundle_refused(self, version: int | None, exc: Exception) -> None:
        # Remembered so the same version is not downloaded again every round; the round
        # itself succeeded (the link works), and the old bundle's age shows the problem.
        self._refused_bundle = version
        self._bundle_error = f"bundle {version} refused: {exc}"[:200]
        log.warning(
            "bundle %s from the collector refused, keeping the installed one: %s", version, exc
        )
        return None

    def _bundle_unwritable(self, version: int | None, exc: OSError) -> None:
        # The device is at fault, not the bundle (disk full, state folder unwritable): not
        # remembered as refused, so it installs once that is fixed, but fetched again only
        # after BUNDLE_RETRY_S; one log line per distinct problem, and the round goes on.
        message = f"bundle {version} not installed: {_os_detail(exc)}"[:200]
        if message != self._bundle_error:
            log.error("%s; keeping the installed one", message)
        self._bundle_error = message
        self._unwritable = (version, self._now())
        return None

    def _refreshed(self) -> None:
        if self._bundle is None:  # only called by the bundle round, which needs it
            return
        try:
            self._bundle.refreshed(self._now())
        except OSError as exc:
            problem = _os_detail(exc)
            if problem != self._refresh_problem:
                log.error("cannot record the bundle refresh: %s", problem)
            self._refresh_problem = problem
            return
        self._refresh_problem = None

    def _installed(self) -> tuple[int, int] | None:
        return self._bundle.installed() if self._bundle is not None else None

    def _bundle_version(self) -> int | None:
        inst = self._installed()
        return inst[0] if inst else None

    # --- state and logs -------------------------------------------------------------------

    def _failed(self, exc: SyncError, delay: float, uploaded: int, dead: int) -> RoundResult:
        if self._online is not False or exc.code != self._last_error_code:
            # A 4xx is an answer: the link works and the collector said no (bad_token...).
            what = "collector unreachable" if isinstance(exc, Transient) else (
                "collector refused" if exc.status else "cannot sync")
            log.warning("%s: %s (retrying in %.0f s)", what, exc.detail, delay)
        else:
            log.debug("still failing: %s", exc.detail)
        self._online, self._last_error_code = False, exc.code
        now = self._now()
        pending = self.journal.pending_count()
        self._write_state(
            self._state.with_(
                connectivity=OFFLINE,
                last_attempt=now,
                last_error=exc.detail[:200],
                pending=pending,
                dead_letters=self.journal.dead_letter_count(),
                bundle_version=self._bundle_version(),
            ),
            force=True,
        )
        return RoundResult(False, uploaded, dead, pending, delay, exc.detail)

    def _write_state(self, state: SyncState, force: bool = False) -> None:
        now = self._now()
        self._state = state.with_(updated_at=now)
        if self._state_file is None or not force and now - self._last_state_write < STATE_EVERY:
            return
        try:
            write_state(self._state_file, self._state)
        except OSError as exc:
            # The idle screen shows stale state; uploads matter more, so keep going, loudly.
            log.error("cannot write sync state %s: %s", self._state_file, exc)
            return
        self._last_state_write = now


def _os_detail(exc: OSError) -> str:
    """One line for an OSError: the file and the system's words, without the errno prefix."""
    if exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return exc.strerror or str(exc)


def _consecutive(rows: list) -> list:
    """The longest prefix of ``rows`` with consecutive seq, so ``prev_chain`` is exact."""
    for i in range(1, len(rows)):
        if rows[i].seq != rows[i - 1].seq + 1:
            return rows[:i]
    return rows
