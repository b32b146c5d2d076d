#!/usr/bin/env python3
"""The OLED pictures in docs/technician.md, drawn by the firmware's own renderer.

Every picture is ``passgate.hardware.display.render`` of a screen built the way the firmware builds
it
(``verdict_screen``, ``idle_screen``, the fault helpers, the provisioning and self-test
messages), enlarged 4x with nearest-neighbour scaling inside a grey bezel so it reads like
the 128x64 panel. ``tests/test_technician_docs.py`` regenerates them and compares pixels, so
the pictures cannot drift from the firmware. After a deliberate change to a screen::

    .venv/bin/python docs/screens/make_screens.py          # rewrite the PNGs
    .venv/bin/python docs/screens/make_screens.py --check  # only list what differs (exit 1)

English pictures are here (docs/technician.md shows them); the same screens in Russian and
Tatar, as ``[display] language`` draws them, are in ``ru/`` (docs/ru/technician.md) and ``tt/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from passgate.checkpoint.setupwait import key_damaged_screen, not_set_up_screen
from passgate.clock.clock import ClockState
from passgate.hardware.display import (
    Connectivity,
    FaultScreen,
    MessageScreen,
    StoppedScreen,
    TestPatternScreen,
    camera_fault,
    clock_not_set,
    gpio_fault,
    idle_screen,
    journal_fault,
    no_trust_data,
    render,
    trust_data_old,
    verdict_screen,
)
from passgate.hardware.display.screens import localised
from passgate.passes.purposes import PurposeTable
from passgate.passes.verdict import NO_TRUST_DATA, Reason, Result, Verdict
from passgate.util.i18n import LANGUAGES, language

HERE = Path(__file__).resolve().parent
SCALE = 4
BEZEL = 6  # pixels of grey around the enlarged panel
BEZEL_GREY = 96
T = 1_775_052_300  # 2026-04-01 14:05:00 UTC: every clock on the pictures reads 14:05

# What `passgate provision` puts on the OLED (firmware/passgate/cli/provision.py): the
# titles are checked against that file by the test.
PROVISION_TITLES = ("Provisioned", "Already set up", "Setup refused", "Setup failed")


def _deny(reason: Reason, **kw) -> Verdict:
    return Verdict(Result.DENY, reason, T, **kw)


def folder(lang: str) -> Path:
    return HERE if lang == "en" else HERE / lang


def screens(lang: str = "en") -> dict[str, object]:
    """File name (without .png) -> screen, in the order the document shows them, in ``lang``
    (screens the firmware builds in English are translated as the display policy does)."""
    tr = language(lang)
    purposes = PurposeTable.default()
    accept = Verdict(Result.ACCEPT, Reason.VALID, T, remaining_s=2 * 3600 + 13 * 60,
                     purpose="shopping", not_before=T - 600, expires=T + 2 * 3600 + 13 * 60)
    hinted = Verdict(Result.ACCEPT, Reason.VALID, T, remaining_s=6 * 3600, purpose="work",
                     hint="A.B. 1985", expires=T + 6 * 3600)
    shown = {
        # first boot
        "provisioned": MessageScreen("Provisioned", "gate-north-1 zone north key 1a2b3c4d"),
        "already-set-up": MessageScreen("Already set up", "gate-north-1 zone north key "
                                        "1a2b3c4d"),
        "setup-refused": MessageScreen("Setup refused", "journal.pass_hash_key: is a "
                                       "placeholder: make the fleet's key once"),
        "setup-failed": MessageScreen("Setup failed", "/var/lib/passgate/bundle: No space "
                                      "left on device"),
        "not-set-up": not_set_up_screen("gate-north-1", tr),
        # waiting
        "idle": idle_screen(T, ClockState.TRUSTED, Connectivity.ONLINE, 0, lang=tr),
        "idle-offline": idle_screen(T, ClockState.FLOOR, Connectivity.OFFLINE, 412, lang=tr),
        "idle-clock-backwards": idle_screen(
            T, ClockState.BACKWARDS, Connectivity.UNKNOWN, 3, lang=tr),
        # verdicts
        "accepted": verdict_screen(accept, T, purposes, lang=tr),
        "accepted-hint": verdict_screen(hinted, T, purposes, lang=tr),
        "denied-expired": verdict_screen(_deny(Reason.EXPIRED, expires=T - 14 * 60), T, lang=tr),
        "denied-not-yet-valid": verdict_screen(
            _deny(Reason.NOT_YET_VALID, not_before=T + 2 * 3600 + 5 * 60), T, lang=tr),
        "denied-wrong-zone": verdict_screen(_deny(Reason.WRONG_ZONE), T, lang=tr),
        "denied-already-used": verdict_screen(_deny(Reason.ALREADY_USED), T, lang=tr),
        "denied-unknown-issuer": verdict_screen(_deny(Reason.UNKNOWN_KEY), T, lang=tr),
        "denied-invalid-signature": verdict_screen(_deny(Reason.BAD_SIGNATURE), T, lang=tr),
        "denied-revoked": verdict_screen(_deny(Reason.REVOKED), T, lang=tr),
        "denied-unreadable": verdict_screen(_deny(Reason.MALFORMED), T, lang=tr),
        "denied-clock-untrusted": verdict_screen(_deny(Reason.CLOCK_UNTRUSTED), T, lang=tr),
        "denied-trust-stale": verdict_screen(_deny(Reason.TRUST_STALE), T, lang=tr),
        "denied-no-trust-data": verdict_screen(
            _deny(Reason.TRUST_STALE, detail=NO_TRUST_DATA), T, lang=tr),
        "denied-not-recorded": verdict_screen(_deny(Reason.JOURNAL_FAULT), T, lang=tr),
        # faults (as the daemon raises them)
        "fault-camera": camera_fault(),
        "fault-clock-not-set": clock_not_set(),
        "fault-no-trust-data": no_trust_data(),
        "fault-trust-data-old": trust_data_old(3 * 86400 + 7200, "passes refused", tr),
        "fault-trust-data-expired": FaultScreen("trust data expired", "passes refused"),
        "fault-journal": journal_fault(),
        "fault-gpio": gpio_fault(),
        "fault-journal-key-damaged": key_damaged_screen(tr),
        # stopping
        "stopped": StoppedScreen(),
        # passgate selftest
        "selftest-pattern-0": TestPatternScreen(0),
        "selftest-pattern-1": TestPatternScreen(1),
        "selftest-message": MessageScreen("selftest", "display ok; results on the terminal"),
    }
    return {name: localised(screen, tr) for name, screen in shown.items()}


def picture(screen: object) -> Image.Image:
    """The panel image enlarged ``SCALE`` times in a grey bezel (mode ``"L"``)."""
    panel = render(screen).convert("L").resize((128 * SCALE, 64 * SCALE),
                                               Image.Resampling.NEAREST)
    out = Image.new("L", (panel.width + 2 * BEZEL, panel.height + 2 * BEZEL), BEZEL_GREY)
    out.paste(panel, (BEZEL, BEZEL))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list pictures that differ")
    args = parser.parse_args(argv)
    changed = total = 0
    extra: list[str] = []
    for lang in LANGUAGES:
        wanted = screens(lang)
        where = folder(lang)
        where.mkdir(exist_ok=True)
        for name, screen in wanted.items():
            total += 1
            path = where / f"{name}.png"
            image = picture(screen)
            old = Image.open(path).convert("L") if path.exists() else None
            if old is not None and old.size == image.size and old.tobytes() == image.tobytes():
                continue
            changed += 1
            print(("differs: " if args.check else "wrote: ") + str(path.relative_to(HERE)))
            if not args.check:
                image.save(path, format="PNG", optimize=True)
        # console-*.png are the collector console's, taken by
        # tests/test_collector_console_browser.py; holder-*.png the holder app's, taken by
        # tests/test_holder_app_browser.py.
        extra += sorted(str(p.relative_to(HERE)) for p in where.glob("*.png")
                        if p.stem not in wanted and not p.name.startswith(("console-", "holder-")))
    for name in extra:
        print(f"not made by this script: {name}")
    print(f"{changed} of {total} pictures {'differ' if args.check else 'rewritten'}")
    return 1 if args.check and (changed or extra) else 0


if __name__ == "__main__":
    sys.exit(main())
