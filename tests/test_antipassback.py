"""Anti-passback on a real journal: repeats, reboots, expiry, per-zone and per-purpose windows."""

from __future__ import annotations

import os
from types import MappingProxyType

import pytest

from passgate.config.schema import AntipassbackSection, ZoneWindows
from passgate.journal.antipassback import AntiPassback
from passgate.journal.journal import Journal, ScanRecord

KEY = b"fleet hash key for tests"
T0 = 1_767_261_600.0


def accept(j: Journal, pass_id: bytes, t: float, zone: str = "lobby", purpose: str = "work",
           verdict: str = "accept", reason: str = "valid") -> None:
    j.record(ScanRecord(os.urandom(16), t, "trusted", verdict, reason, j.pass_hash(pass_id),
                        "00112233", purpose, zone))


def used(apb: AntiPassback, j: Journal, pass_id: bytes, t: float, zone: str = "lobby",
         purpose: str = "work") -> bool:
    return apb.already_used(j.pass_hash(pass_id), zone, purpose, t)


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.db", KEY) as j:
        yield j


def test_same_pass_twice_then_window_expires(journal):
    apb = AntiPassback(journal, default_window_s=600)
    assert not used(apb, journal, b"A", T0)
    accept(journal, b"A", T0)
    assert used(apb, journal, b"A", T0 + 1)
    assert used(apb, journal, b"A", T0 + 599.9)
    assert not used(apb, journal, b"A", T0 + 600)  # exactly one window later: allowed again
    assert not used(apb, journal, b"B", T0 + 1)  # another pass
    assert not used(apb, journal, b"A", T0 + 1, zone="garage")  # accepted in another zone
    assert apb.last_use(journal.pass_hash(b"A"), "lobby", "work", T0 + 30) == T0


def test_survives_a_reboot(tmp_path):
    path = tmp_path / "journal.db"
    with Journal(path, KEY) as j:
        accept(j, b"A", T0)
    with Journal(path, KEY) as j:  # a new process after a restart: no memory carried over
        apb = AntiPassback(j, default_window_s=1800)
        assert used(apb, j, b"A", T0 + 900)
        assert not used(apb, j, b"A", T0 + 1800)


def test_denials_do_not_extend_the_window(journal):
    apb = AntiPassback(journal, default_window_s=600)
    accept(journal, b"A", T0)
    accept(journal, b"A", T0 + 300, verdict="deny", reason="already_used")
    assert used(apb, journal, b"A", T0 + 599)
    assert not used(apb, journal, b"A", T0 + 601)


def test_zero_disables(journal):
    accept(journal, b"A", T0)
    assert not used(AntiPassback(journal, default_window_s=0), journal, b"A", T0 + 1)


def test_per_zone_and_per_purpose_overrides(journal):
    apb = AntiPassback(
        journal, default_window_s=600,
        zone_windows={"garage": 60},
        purpose_windows={"visitor": 86400, "staff": 0},
        zone_purpose_windows={("garage", "visitor"): 3600},
    )
    assert apb.window_for("lobby", "work") == 600
    assert apb.window_for("lobby", "visitor") == 86400
    assert apb.window_for("lobby", None) == 600
    assert apb.window_for("garage", "work") == 60  # the zone beats a global purpose window
    assert apb.window_for("garage", "visitor") == 3600  # purpose in zone beats both
    assert apb.max_window_s == 86400
    accept(journal, b"V", T0, purpose="visitor")
    accept(journal, b"S", T0, purpose="staff")
    assert used(apb, journal, b"V", T0 + 7200, purpose="visitor")  # a day-long single entry
    assert not used(apb, journal, b"S", T0 + 1, purpose="staff")  # staff pass freely
    accept(journal, b"G", T0, zone="garage")
    assert used(apb, journal, b"G", T0 + 59, zone="garage")
    assert not used(apb, journal, b"G", T0 + 61, zone="garage")


def test_from_config_section(journal):
    section = AntipassbackSection(
        window=1800,
        purposes=MappingProxyType({"visitor": 86400}),
        zones=MappingProxyType({
            "garage": ZoneWindows(window=60, purposes=MappingProxyType({"visitor": 3600})),
            "lobby": ZoneWindows(window=None, purposes=MappingProxyType({"work": 0})),
        }),
    )
    apb = AntiPassback.from_config(journal, section)
    for zone, purpose in [("garage", "visitor"), ("garage", "work"), ("lobby", "work"),
                          ("lobby", "visitor"), ("hall", "work"), ("hall", None)]:
        assert apb.window_for(zone, purpose) == section.window_for(zone, purpose)


def test_a_clock_that_ran_ahead_does_not_lock_a_pass_out(journal):
    apb = AntiPassback(journal, default_window_s=600)
    accept(journal, b"A", T0 + 86400)  # recorded while the clock was a day ahead
    assert not used(apb, journal, b"A", T0)
    assert used(apb, journal, b"A", T0 + 86400 - 300)  # within one window of it: still counts


def test_dead_lettered_accepts_still_count(journal):
    apb = AntiPassback(journal, default_window_s=600)
    accept(journal, b"A", T0)
    assert journal.dead_letter([1], "refused by collector") == 1
    assert used(apb, journal, b"A", T0 + 10)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "10m", True])
def test_bad_windows_are_refused(journal, bad):
    with pytest.raises(ValueError):
        AntiPassback(journal, default_window_s=bad)
    with pytest.raises(ValueError):
        AntiPassback(journal, purpose_windows={"work": bad})
