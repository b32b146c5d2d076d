"""The OLED: screens as data, drawn by a pure renderer, pushed by a background worker.

- :mod:`.screens`: the screen dataclasses and the words for every verdict reason.
- :mod:`.render`: ``render(screen) -> 128x64 1-bit image`` (bitmap font, deterministic).
- :mod:`.policy`: :class:`DisplayPolicy`, which screen to show at a given time.
- :mod:`.worker`: :class:`Display`, renders and pushes off the caller's thread.
- :mod:`.device`: :class:`DisplayConfig`, the luma device factory, PNG output.
- :mod:`.term`: live half-block rendering in a terminal.

Importing this package loads Pillow but no luma bus code and touches no hardware.
"""

from passgate.hardware.display.device import DisplayConfig, PngFolder, open_luma
from passgate.hardware.display.policy import DisplayPolicy
from passgate.hardware.display.render import render
from passgate.hardware.display.screens import (
    AcceptedScreen,
    Connectivity,
    DeniedScreen,
    FaultScreen,
    IdleScreen,
    MessageScreen,
    Screen,
    StoppedScreen,
    TestPatternScreen,
    camera_fault,
    clock_not_set,
    gpio_fault,
    idle_screen,
    journal_fault,
    no_trust_data,
    reason_words,
    trust_data_old,
    verdict_screen,
)
from passgate.hardware.display.term import TerminalView, terminal_if_tty
from passgate.hardware.display.worker import Display

__all__ = [
    "AcceptedScreen",
    "Connectivity",
    "DeniedScreen",
    "Display",
    "DisplayConfig",
    "DisplayPolicy",
    "FaultScreen",
    "IdleScreen",
    "MessageScreen",
    "PngFolder",
    "Screen",
    "StoppedScreen",
    "TerminalView",
    "TestPatternScreen",
    "camera_fault",
    "clock_not_set",
    "gpio_fault",
    "idle_screen",
    "journal_fault",
    "no_trust_data",
    "open_luma",
    "reason_words",
    "render",
    "terminal_if_tty",
    "trust_data_old",
    "verdict_screen",
]
