#!/usr/bin/env python3
"""Reference images of every OLED screen, and the script that rewrites them.

``tests/test_display.py`` renders each case in :data:`CASES` and compares it pixel by pixel
with ``tests/reference/<name>.png``; on a mismatch it writes ``<name>.actual.png`` beside it.
``tests/test_i18n.py`` does the same for every other language, with the same cases built in
that language, against ``tests/reference/<lang>/<name>.png``.
After a deliberate change to a screen, look at the ``.actual.png`` files, then run::

    .venv/bin/python tests/reference/regenerate.py          # rewrite all references
    .venv/bin/python tests/reference/regenerate.py --check  # only list what would change

and review the changed PNGs in the commit. Screens are built through the same builders the
daemon uses (``verdict_screen``, ``idle_screen``, the fault helpers), so the words are
covered too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from passgate.checkpoint.setupwait import key_damaged_screen, not_set_up_screen
from passgate.clock.clock import ClockState
from passgate.hardware.display import (
    AcceptedScreen,
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
T = 1_775_052_300  # 2026-04-01 14:05:00 UTC


def _deny(reason: Reason, **kw) -> Verdict:
    return Verdict(Result.DENY, reason, T, **kw)


def folder(lang: str) -> Path:
    """Where a language's references are: English here, the others in ``<lang>/``."""
    return HERE if lang == "en" else HERE / lang


def cases(lang: str = "en") -> dict[str, object]:
    """Name -> screen for every reference image, in language ``lang``."""
    tr = language(lang)
    purposes = PurposeTable.default()
    accept = Verdict(
        Result.ACCEPT, Reason.VALID, T, remaining_s=2 * 3600 + 13 * 60, purpose="shopping",
        not_before=T - 600, expires=T + 2 * 3600 + 13 * 60,
    )
    out: dict[str, object] = {
        "idle_trusted_online": idle_screen(
            T, ClockState.TRUSTED, Connectivity.ONLINE, 0, lang=tr
        ),
        "idle_floor_offline_pending": idle_screen(
            T, ClockState.FLOOR, Connectivity.OFFLINE, 412, lang=tr
        ),
        "idle_backwards_unknown": idle_screen(
            T + 59, ClockState.BACKWARDS, Connectivity.UNKNOWN, 3, lang=tr
        ),
        "accepted": verdict_screen(accept, T, purposes, lang=tr),
        "accepted_hint_seconds": verdict_screen(
            Verdict(Result.ACCEPT, Reason.VALID, T, remaining_s=45, purpose="passport",
                    hint="A.B. 1985", expires=T + 45),
            T, purposes, lang=tr,
        ),
        "accepted_no_validity": AcceptedScreen(
            purposes.label("work", lang), valid_word=tr.gettext("VALID")
        ),
        "denied_expired": verdict_screen(_deny(Reason.EXPIRED, expires=T - 14 * 60), T, lang=tr),
        "denied_not_yet_valid": verdict_screen(
            _deny(Reason.NOT_YET_VALID, not_before=T + 2 * 3600 + 5 * 60), T, lang=tr
        ),
        # a holder hint in Cyrillic (the pass spec's name class allows any script's letters)
        "accepted_hint_cyrillic": verdict_screen(
            Verdict(Result.ACCEPT, Reason.VALID, T, remaining_s=50 * 60, purpose="moving",
                    hint="АБ1234 Әлфия Җ.", expires=T + 50 * 60),
            T, purposes, lang=tr,
        ),
    }
    relative = {Reason.VALID, Reason.EXPIRED, Reason.NOT_YET_VALID}
    for reason in Reason:
        if reason not in relative:
            out[f"denied_{reason.value}"] = verdict_screen(_deny(reason), T, lang=tr)
    out["denied_no_trust_data"] = verdict_screen(
        _deny(Reason.TRUST_STALE, detail=NO_TRUST_DATA), T, lang=tr
    )
    fixed: dict[str, object] = {
        "fault_camera": camera_fault(),
        "fault_clock_not_set": clock_not_set(),
        "fault_no_trust_data": no_trust_data(),
        "fault_trust_data_old": trust_data_old(3 * 86400 + 7200, lang=tr),
        "fault_trust_data_old_hours": trust_data_old(2 * 3600 + 60, "passes refused", tr),
        "fault_journal": journal_fault(),
        "fault_gpio": gpio_fault(),
        "fault_long_text": FaultScreen(
            "an unusually long fault title that wraps", "and a detail that is cut short at the end"
        ),
        "stopped": StoppedScreen(),
        "message_provisioned": MessageScreen(
            "enrolled", "device gate-3 joined zone north-door; trust bundle 2026-04-01 installed"
        ),
        "message_long_title": MessageScreen("provisioning failed", "no network: will retry"),
        "test_pattern_0": TestPatternScreen(0),
        "test_pattern_1": TestPatternScreen(1),
    }
    # built in English like the frame loop builds them, translated like the policy does
    out.update({name: localised(screen, tr) for name, screen in fixed.items()})
    # before the frame loop and beside it: setup waits, the self-test, provisioning (issue 14)
    out.update({
        "setup_not_set_up": not_set_up_screen("gate-north-1", tr),
        "setup_journal_key_damaged": key_damaged_screen(tr),
        "selftest_message": MessageScreen(
            tr.gettext("selftest"), tr.gettext("display ok; results on the terminal")),
        "provision_done": MessageScreen(tr.gettext("Provisioned"), tr.gettext(
            "{device} zone {zone} key {key}").format(device="gate-north-1", zone="lobby",
                                                      key="3fa2c0de")),
        "provision_refused": localised(MessageScreen("Setup refused", "device file expired"),
                                       tr),
    })
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list references that differ")
    args = parser.parse_args(argv)
    changed = total = 0
    for lang in LANGUAGES:
        for name, screen in cases(lang).items():
            total += 1
            path = folder(lang) / f"{name}.png"
            image = render(screen)
            old = Image.open(path).convert("1") if path.exists() else None
            if old is not None and old.size == image.size and old.tobytes() == image.tobytes():
                continue
            changed += 1
            print(("differs: " if args.check else "wrote: ") + str(path.relative_to(HERE)))
            if not args.check:
                path.parent.mkdir(exist_ok=True)
                image.save(path, format="PNG")
    print(f"{changed} of {total} reference images {'differ' if args.check else 'rewritten'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
