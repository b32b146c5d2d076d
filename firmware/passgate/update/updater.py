"""The update state machine: download, verify, install, check health, or roll back.

::

    idle --(target newer than installed, not known bad)--> downloading
    downloading --(release verified, package cached, previous cached)--> installing
    downloading --(the same, the root is the overlay on this boot)--> overlay_off
    overlay_off --(overlay off in cmdline.txt, reboot asked)--> overlay_off (the next run)
    overlay_off --(this boot has no overlay)--> installing (remembers: overlay back on)
    overlay_off --(cannot switch it off, or still on after MAX_OVERLAY_TRIES)--> idle/failed
    downloading --(refused or unreachable)--> idle/failed (nothing was touched)
    installing --(dpkg -i new)--> checking
    installing --(dpkg failed)--> rolling_back
    checking --(scanner READY and self-test passed within the limit)--> idle/updated
    checking --(not healthy by the deadline)--> rolling_back
    rolling_back --(dpkg -i previous, healthy)--> idle/rolled_back (target marked bad)
    rolling_back --(reinstall failed)--> rolling_back/failed (retried on the next run)
    any idle/outcome above, overlay switched off for it --> overlay_on (outcome kept)
    overlay_on --(overlay on in cmdline.txt, reboot asked)--> overlay_on (the next run)
    overlay_on --(this boot has the overlay)--> idle/outcome

With the read-only root (``setup.sh install --readonly-root``) an update takes two reboots:
one into a boot without the overlay, where the package is installed, checked and if need be
rolled back exactly as on a writable root, and one back into the overlay once the install
(of either version) has finished. The overlay is never switched back on while a rollback is
still open (a failed reinstall stays in ``rolling_back`` and is retried), so a device never
freezes a half-installed root into its read-only state.

Each step is written to the state file before it starts, and each is safe to redo, so a
power cut at any point resumes at that step on the next run (the unit runs at every boot):
a cut in ``installing`` reinstalls (dpkg finishes its interrupted run first), in ``checking``
restarts the check with a new deadline, in ``rolling_back`` reinstalls the previous package.
The ``.deb`` of the running version stays in the cache until a newer one has proved
healthy, so there is always a package to fall back to. Until the updater has run again
after a cut inside dpkg, the package may be half-configured; the scanner unit does not
start from a half-installed package, and the updater's own unit runs at boot to finish.

Rules kept (tests/test_update.py): a failed update never reports ``updated``; a release not
signed by a key the installed bundle authorises, below the roots' minimum or below the
installed version is never installed; a version that failed its health check is not tried
again; an update never starts without the previous version's package in the cache; two
runs never act at once (:func:`passgate.update.state.update_lock`: the second waits and
then reads what the first left).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from passgate.bundle import load_installed
from passgate.errors import BundleError, ReleaseRefused, UpdateError
from passgate.release import (
    MAX_MANIFEST,
    check_package,
    deb_file_name,
    release_file_name,
    verify_release,
)
from passgate.release.version import version_key
from passgate.update.source import ReleaseSource
from passgate.update.state import (
    CHECKING,
    DOWNLOADING,
    FAILED,
    IDLE,
    INSTALLING,
    LOCK_FILE,
    OVERLAY_OFF,
    OVERLAY_ON,
    ROLLED_BACK,
    ROLLING_BACK,
    UP_TO_DATE,
    UPDATED,
    UpdateState,
    read_state,
    update_lock,
    write_state,
)
from passgate.update.system import System
from passgate.util.atomicfile import write_atomic

log = logging.getLogger(__name__)

# Reboots into (or out of) the overlay that did not take before the updater gives up: each
# one is a reboot; a power cut between the step's record and its reboot costs one too.
MAX_OVERLAY_TRIES = 4
SCANNER_UNIT = "passgate-scanner.service"
UNITS = (SCANNER_UNIT, "passgate-sync.service")


@dataclass(frozen=True)
class Paths:
    state_file: Path  # the state machine's file
    cache: Path  # .deb and .release files of the running and the previous version
    bundle_dir: Path  # the installed trust bundle (release keys, minimum version)


class Updater:
    """One run (:meth:`run_once`) moves the machine from wherever the state file says to idle."""

    def __init__(
        self,
        system: System,
        source: ReleaseSource,
        paths: Paths,
        *,
        arch: str,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        health_timeout: float = 120.0,
        poll: float = 2.0,
        units: Sequence[str] = UNITS,
    ) -> None:
        self.system, self.source, self.paths, self.arch = system, source, paths, arch
        self._now, self._mono, self._sleep = now, monotonic, sleep
        self.health_timeout, self.poll, self.units = health_timeout, poll, tuple(units)

    # --- the machine ----------------------------------------------------------------------

    def run_once(self) -> UpdateState:
        """One run, holding the updater lock: a second run at the same time (the timer's and
        one by hand) waits for this one and then starts from the state it left."""
        with update_lock(self.paths.state_file.with_name(LOCK_FILE),
                         monotonic=self._mono, sleep=self._sleep):
            return self._run_locked()

    def _run_locked(self) -> UpdateState:
        state = read_state(self.paths.state_file)
        resumed = state.step  # a step read from the file was entered by an earlier run
        if state.step == IDLE:
            state = self._plan(state)
        if state.step == DOWNLOADING:
            state = self._download(state)
        if state.step == OVERLAY_OFF:
            state = self._overlay_off(state, resumed == OVERLAY_OFF)
        if state.step == INSTALLING:
            state = self._install(state)
        if state.step == CHECKING:
            state = self._check(state)
        if state.step == ROLLING_BACK:
            state = self._roll_back(state)
        if state.step == OVERLAY_ON:
            state = self._overlay_on(state, resumed == OVERLAY_ON)
        return state

    def _enter(self, state: UpdateState, **changes: object) -> UpdateState:
        new = replace(state, **changes, at=self._now())  # type: ignore[arg-type]
        if new.step != state.step:
            new = replace(new, attempts=1)
        elif new.step != IDLE:
            new = replace(new, attempts=state.attempts + 1)
        write_state(self.paths.state_file, new)
        return new

    def _plan(self, state: UpdateState) -> UpdateState:
        installed = self.system.installed_version()
        try:
            target = self.source.target(installed)
        except UpdateError as exc:
            log.warning("no release plan from the collector: %s", exc)
            return state  # nothing attempted: the last outcome still stands
        if target is None or (installed and version_key(target) == version_key(installed)):
            if state.outcome in (ROLLED_BACK, FAILED) and target == state.target:
                return state  # still the version that failed: keep saying why
            return self._enter(state, outcome=UP_TO_DATE, reason=None, target=installed)
        if target in state.bad:
            return state  # failed its health check here before: wait for a newer one
        if installed and version_key(target) < version_key(installed):
            return self._finish(state, FAILED, f"target {target} is below the installed "
                                f"{installed}: downgrade refused", target=target)
        if installed is None:
            return self._finish(state, FAILED, "passgate is not installed as a package",
                                target=target)
        blocker = self.system.install_blocker(self.paths.state_file.parent)
        if blocker is not None:  # checked before touching anything: no way back is needed
            return self._finish(state, FAILED, blocker, target=target)
        log.info("update %s -> %s: downloading", installed, target)
        return self._enter(state, step=DOWNLOADING, target=target, previous=installed,
                           outcome=None, reason=None)

    def _download(self, state: UpdateState) -> UpdateState:
        assert state.target is not None and state.previous is not None
        try:
            self._fetch_verified(state.target, state.previous)
            self._fetch_verified(state.previous, None)  # the way back, checked the same way
        except (ReleaseRefused, UpdateError, BundleError) as exc:
            why = f"{exc.reason}: {exc.detail}" if isinstance(exc, ReleaseRefused) else str(exc)
            log.warning("update to %s refused or not downloaded: %s", state.target, why)
            return self._finish(state, FAILED, why)
        if self.system.overlay_active():
            log.info("update to %s: the root is the overlay; switching it off for the next "
                     "boot and rebooting to install", state.target)
            return self._enter(state, step=OVERLAY_OFF, overlay=True)
        return self._enter(state, step=INSTALLING)

    def _overlay_off(self, state: UpdateState, resumed: bool) -> UpdateState:
        """Switch the overlay off for the next boot and reboot; on a boot without it, go on
        to the install. Redone after a power cut (raspi-config is idempotent)."""
        if not self.system.overlay_active():
            return self._enter(state, step=INSTALLING)
        if resumed:
            state = self._enter(state)  # counts the reboots that did not take
        if state.attempts > MAX_OVERLAY_TRIES:
            why = (f"the overlay was still on after {MAX_OVERLAY_TRIES} reboots: "
                   "nothing installed")
            return self._overlay_off_failed(state, why)
        try:
            self.system.set_overlay(False)
        except UpdateError as exc:
            return self._overlay_off_failed(state, f"cannot switch the overlay off: {exc}")
        self._reboot(state)
        return state

    def _overlay_off_failed(self, state: UpdateState, why: str) -> UpdateState:
        """Nothing was installed: the overlay is put back on for the next boot (it may have
        been switched off in cmdline.txt by a run that then lost power) and the attempt fails.
        The target is not marked bad: nothing is known against it."""
        log.error("update to %s: %s", state.target, why)
        try:
            self.system.set_overlay(True)
        except UpdateError as exc:
            why = f"{why}; switching the overlay back on failed too: {exc}"
            log.critical("%s", why)
        return self._enter(state, step=IDLE, outcome=FAILED, reason=why, overlay=False)

    def _overlay_on(self, state: UpdateState, resumed: bool) -> UpdateState:
        """The install finished (the outcome is in the state): the overlay back on for the
        next boot, and reboot; on a boot with it, the attempt is over."""
        if self.system.overlay_active():
            log.info("the read-only root is back on: update to %s %s", state.target,
                     state.outcome)
            return self._enter(state, step=IDLE, overlay=False)
        if resumed:
            state = self._enter(state)
        if state.attempts > MAX_OVERLAY_TRIES:
            why = f"the overlay was still off after {MAX_OVERLAY_TRIES} reboots"
            return self._overlay_on_failed(state, why)
        try:
            self.system.set_overlay(True)
        except UpdateError as exc:
            if state.attempts >= MAX_OVERLAY_TRIES:
                return self._overlay_on_failed(state, f"cannot switch the overlay on: {exc}")
            log.error("cannot switch the overlay back on (%s): trying again on the next run",
                      exc)
            return state
        self._reboot(state)
        return state

    def _overlay_on_failed(self, state: UpdateState, why: str) -> UpdateState:
        """The device runs (the install finished) but with a writable root: said, as failed,
        with what was installed; a technician switches it on (setup.sh --readonly-root)."""
        done = f"{state.outcome or 'finished'}" + (f" ({state.reason})" if state.reason else "")
        log.critical("update to %s %s, but %s", state.target, done, why)
        return self._enter(state, step=IDLE, outcome=FAILED, overlay=False,
                           reason=f"update {done}, but {why}: the root stays writable")

    def _reboot(self, state: UpdateState) -> None:
        try:
            self.system.reboot()
        except UpdateError as exc:  # the step stays recorded: the next run (timer) redoes it
            log.error("step %s: reboot failed (%s): the next run tries again", state.step, exc)

    def _install(self, state: UpdateState) -> UpdateState:
        assert state.target is not None
        try:
            with self.system.writable_root():
                self.system.install(self._deb(state.target))
        except UpdateError as exc:
            log.error("installing %s failed: %s; rolling back", state.target, exc)
            return self._enter(state, step=ROLLING_BACK, reason=f"install failed: {exc}")
        return self._enter(state, step=CHECKING)

    def _check(self, state: UpdateState) -> UpdateState:
        assert state.target is not None
        healthy, why = self._healthy(state.target)
        if not healthy:
            log.error("version %s is not healthy (%s); rolling back", state.target, why)
            return self._enter(state, step=ROLLING_BACK, reason=f"health check: {why}")
        log.info("updated to %s (%s)", state.target, why)
        self._prune(keep=(state.target, state.previous))
        return self._finish(state, UPDATED, None)

    def _roll_back(self, state: UpdateState) -> UpdateState:
        assert state.target is not None and state.previous is not None
        bad = tuple(dict.fromkeys((*state.bad, state.target)))
        try:
            with self.system.writable_root():
                self.system.install(self._deb(state.previous))
        except UpdateError as exc:
            # Stay in rolling_back: the next run (timer, boot) tries again. Reported failed.
            log.critical("rollback to %s failed: %s", state.previous, exc)
            return self._enter(state, outcome=FAILED, bad=bad,
                               reason=f"{state.reason}; rollback failed: {exc}")
        healthy, why = self._healthy(state.previous)
        if not healthy:
            log.critical("rolled back to %s, which is not healthy either: %s", state.previous, why)
            return self._finish(state, FAILED, f"{state.reason}; after rollback: {why}", bad=bad)
        log.warning("rolled back to %s: %s", state.previous, state.reason)
        return self._finish(state, ROLLED_BACK, state.reason, bad=bad)

    def _finish(self, state: UpdateState, outcome: str, reason: str | None,
                **changes: object) -> UpdateState:
        """The attempt is over; when the overlay was switched off for it, the next step is
        switching it back on (the outcome is written now and reported from now on)."""
        step = OVERLAY_ON if state.overlay else IDLE
        return self._enter(state, step=step, outcome=outcome, reason=reason, **changes)

    # --- parts ----------------------------------------------------------------------------

    def _healthy(self, version: str) -> tuple[bool, str]:
        """Restart the services and wait until ``version`` runs and the scanner is READY."""
        self.system.restart(self.units)
        deadline = self._mono() + self.health_timeout
        last = "no answer"
        while True:
            installed = self.system.installed_version()
            if installed != version:
                return False, f"installed version is {installed}, not {version}"
            states = {u: self.system.unit_state(u) for u in self.units}
            waiting = [f"{u} {s.active}/{s.sub}" for u, s in states.items() if not s.ready]
            if not waiting:
                ok, detail = self.system.selftest()
                if ok:
                    return True, f"READY, self-test: {detail}"
                last = f"self-test failed: {detail}"
            else:
                last = ", ".join(waiting)
            if self._mono() >= deadline:
                return False, f"not healthy after {self.health_timeout:.0f} s: {last}"
            self._sleep(self.poll)

    def _fetch_verified(self, version: str, floor: str | None) -> None:
        """Download ``version``'s release and package into the cache unless already there,
        verified against the installed bundle's release keys. ``floor``: refuse anything not
        newer than it (the installed version)."""
        _store, info = load_installed(self.paths.bundle_dir)
        rel_name = release_file_name(version, self.arch)
        cached = self.paths.cache / rel_name
        data = cached.read_bytes() if cached.exists() else self.source.fetch(rel_name, MAX_MANIFEST)
        rel = verify_release(data, info.releases, now=self._now(), arch=self.arch,
                             fallback=floor is None)
        if rel.version != version:
            raise ReleaseRefused("malformed", f"asked for {version}, got {rel.version}")
        if floor is not None and version_key(rel.version) <= version_key(floor):
            raise ReleaseRefused("downgrade", f"release {rel.version} is not newer than {floor}")
        deb = self._deb(version)
        if not (deb.exists() and _matches(rel, deb)):
            body = check_package(rel, [self.source.fetch(rel.deb, rel.length)])
            self.paths.cache.mkdir(parents=True, exist_ok=True)
            write_atomic(deb, body)
        if not cached.exists():
            write_atomic(cached, data)

    def _deb(self, version: str) -> Path:
        return self.paths.cache / deb_file_name(version, self.arch)

    def _prune(self, keep: tuple[str | None, ...]) -> None:
        names = {n for v in keep if v for n in (deb_file_name(v, self.arch),
                                                release_file_name(v, self.arch))}
        for path in self.paths.cache.iterdir():
            if path.name not in names:
                path.unlink()


def _matches(rel, deb: Path) -> bool:
    try:
        with deb.open("rb") as f:
            check_package(rel, iter(lambda: f.read(1 << 20), b""))
        return True
    except ReleaseRefused:
        return False
