"""The ``[clock]`` config section: what the site trusts about time, each key declared once,
here beside the clock (:mod:`passgate.options`), as the hardware adapters declare theirs.

:class:`ClockSection` is the TOML section as the loader reads it (durations in whole seconds,
``floor_file`` derived from the state folder, ``untrusted_policy`` for the verdict stage);
:meth:`passgate.clock.clock.ClockConfig.from_section` turns it into the settings the running
clock needs. :mod:`passgate.config.schema` assembles it with the other sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from passgate.options.declare import option, toml_duration
from passgate.options.validators import (
    RTC_RE,
    valid_bool,
    valid_choice,
    valid_duration,
    valid_path,
    valid_string,
)


@dataclass(frozen=True)
class ClockSection:
    untrusted_policy: str = option(
        "flag",
        valid_choice("deny", "flag"),
        "clock not trusted: deny passes (clock_untrusted) or accept flagged",
    )
    trust_timesyncd: bool = option(
        True, valid_bool, "a clock NTP (timesyncd and the kernel) reports synchronised is trusted"
    )
    trust_rtc: bool = option(
        False, valid_bool, "a battery RTC (DS3231) that agrees counts as trusted"
    )
    rtc_device: str = option(
        "rtc0",
        valid_string(RTC_RE),
        "the RTC trust_rtc compares with, rtcN of /sys/class/rtc (a DS3231 on a Pi 5: rtc1)",
    )
    token_trust: int = option(
        86400,
        valid_duration(60, 7 * 86400),
        "how long a fresh signed time token keeps the clock trusted (monotonic time)",
        dump=toml_duration,
    )
    persist_every: int = option(
        300,
        valid_duration(60, 3600),
        "the scanner writes the floor when it moved this far, and at a clean stop",
        dump=toml_duration,
    )
    floor_file: Path | None = option(
        None, valid_path, "where the time floor is persisted", derive="clock.floor"
    )
