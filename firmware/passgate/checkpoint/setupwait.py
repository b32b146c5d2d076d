"""Before the frame loop: a box that is not set up waits on the OLED instead of crash-looping.

``passgate run --wait-for-setup`` (what ``passgate-scanner.service`` runs) first asks
:func:`setup_problem` what stops the checkpoint from starting. Rules it keeps:

- **Not set up** means exactly one of: the main config file does not exist, or the journal's
  pass-hash key file (``journal.hash_key_file``) does not exist. Provisioning writes that key
  (from the device file's ``[journal] pass_hash_key``), so its absence means no device file
  was ever applied. Missing trust data is *not* "not set up": the loop runs and shows its own
  "no trust data" fault (a bundle may arrive later through the sync agent).
- **Journal key damaged** means the key file exists but is not exactly 32 bytes (a 0-byte file
  is what a kill between creating and writing it left behind, before keys were written
  atomically). Scans cannot be recorded without it, so nothing is scanned.
- While either lasts: the OLED says so and where to look, the log says it once (and again only
  when the problem changes), systemd hears ``READY=1`` with ``STATUS=`` naming it, then
  ``WATCHDOG=1`` within every watchdog period, so the unit is neither killed at
  ``TimeoutStartSec`` nor restarted every ``RestartSec``. The files are looked at again every
  ``poll_s``; once they are in place the caller starts the checkpoint in the same process.
- A config that exists but is invalid is not waited on: that stays one line and exit 2, as
  for any command (a technician's mistake to fix, not a state of the box).
- The OLED speaks the device's language: the config's ``[display] language`` once a config
  exists, else the ``language`` handed in (``passgate run --language``), else English. The
  log and systemd's ``STATUS=`` stay English (what a technician greps for).
- Time comes only from the injected ``monotonic`` and ``wait``; SIGTERM (``stop``) ends the wait.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passgate.checkpoint.sdnotify import Notifier
from passgate.checkpoint.wiring import HASH_KEY_LEN, loaded_path
from passgate.config.load import load_config
from passgate.config.schema import Config
from passgate.hardware.display.screens import FaultScreen, MessageScreen, Screen
from passgate.util.i18n import ENGLISH, N_, Language, language

log = logging.getLogger(__name__)

NOT_SET_UP = N_("not set up")
KEY_DAMAGED = N_("journal key damaged")
POLL_S = 5.0  # how often the files are looked at again: a few stat() calls, cheap


@dataclass(frozen=True)
class SetupProblem:
    """Why the checkpoint cannot start yet. ``status``: systemd's ``STATUS=`` text;
    ``detail``: the log line (names the file); ``screen``: the OLED."""

    status: str
    detail: str
    screen: Screen


def not_set_up_screen(where: str, lang: Language = ENGLISH) -> MessageScreen:
    """``not set up`` and where to look: the host name (the device id until provisioned)."""
    return MessageScreen(lang.gettext(NOT_SET_UP), lang.gettext(
        "{where}: apply a device file, see technician.md").format(where=where))


def key_damaged_screen(lang: Language = ENGLISH) -> FaultScreen:
    return FaultScreen(lang.gettext(KEY_DAMAGED), lang.gettext("re-apply device file"),
                       lang.gettext("FAULT"))


def setup_problem(config: Path, lang: str = "en") -> tuple[Config | None, SetupProblem | None]:
    """The loaded config (None when there is none) and what stops a start (None: nothing).
    ``lang``: the screens' language while there is no config (a config names its own).

    Raises ``ConfigError`` for a config that exists but is invalid, or a key file that exists
    but cannot be read (permissions): those are mistakes, not states.
    """
    config = Path(config)
    if not config.is_file():
        return None, SetupProblem(
            NOT_SET_UP, f"no config at {config} (provisioning or setup.sh install writes it)",
            not_set_up_screen(os.uname().nodename, language(lang)),
        )
    cfg = load_config(config)
    words = language(cfg.display.language)
    key = loaded_path(cfg.journal.hash_key_file, "journal.hash_key_file")
    try:
        size = key.stat().st_size
    except FileNotFoundError:
        return cfg, SetupProblem(
            NOT_SET_UP,
            f"journal.hash_key_file: {key}: not found: no device file applied yet "
            "(passgate provision --device-file FILE writes it)",
            not_set_up_screen(cfg.checkpoint.device_id, words),
        )
    if size != HASH_KEY_LEN:
        return cfg, SetupProblem(
            f"fault: {KEY_DAMAGED}",
            f"journal.hash_key_file: {key}: {size} bytes, expected {HASH_KEY_LEN}: damaged; "
            "repair: passgate provision --device-file FILE (the fleet's device file)",
            key_damaged_screen(words),
        )
    return cfg, None


def wait_for_setup(
    config: Path,
    *,
    display: Callable[[Config | None], Any],
    notifier: Notifier,
    stop: threading.Event,
    monotonic: Callable[[], float],
    wait: Callable[[float], Any],
    poll_s: float = POLL_S,
    lang: str = "en",
) -> Config | None:
    """Wait until :func:`setup_problem` finds nothing; return the config then, or None if
    ``stop`` was set first. ``display(cfg)`` makes the screen the problems are shown on (the
    config's ``[display]``, or the defaults with no config); it is closed before returning,
    so the checkpoint can open the same panel. ``lang``: as for :func:`setup_problem`."""
    cfg, problem = setup_problem(config, lang)
    if problem is None:
        return cfg
    screen = display(cfg)
    try:
        notifier.ready(problem.status)  # alive and waiting: not a start that hangs
        shown: SetupProblem | None = None
        last_ping = next_poll = float("-inf")
        while not stop.is_set():
            now = monotonic()
            if now >= next_poll:
                next_poll = now + poll_s
                cfg, problem = setup_problem(config, lang)
                if problem is None:
                    log.info("set up: %s found, starting the checkpoint", config)
                    notifier.status("starting")
                    return cfg
                if problem != shown:
                    # Once per problem, never per poll: the journal keeps the transitions only.
                    log.warning("%s: %s", problem.status, problem.detail)
                    if shown is not None and shown.status != problem.status:
                        notifier.status(problem.status)
                    screen.show(problem.screen)
                    shown = problem
            wake = next_poll
            if notifier.watchdog_s:  # pinged at a third of the period, as the frame loop does
                if now - last_ping >= notifier.watchdog_s / 3:
                    notifier.watchdog()
                    last_ping = now
                wake = min(wake, last_ping + notifier.watchdog_s / 3)
            wait(max(wake - now, 0.0))
        return None
    finally:
        screen.close()


__all__ = [
    "KEY_DAMAGED",
    "NOT_SET_UP",
    "SetupProblem",
    "key_damaged_screen",
    "not_set_up_screen",
    "setup_problem",
    "wait_for_setup",
]
