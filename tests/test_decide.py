"""decide(): the checkpoint's policy on top of the verifier, and the sd_notify helper."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from passgate.checkpoint.decide import FRESH, CheckpointPolicy, Decision, TrustStatus, decide
from passgate.checkpoint.sdnotify import Notifier
from passgate.clock.clock import ClockState, TimeReading
from passgate.passes.verdict import Reason, Result, Verdict

NOW = 1_780_000_000
OK = Verdict(
    Result.ACCEPT,
    Reason.VALID,
    NOW,
    "2h 00m left",
    remaining_s=7200,
    purpose="work",
    pass_id=b"p" * 12,
    expires=NOW + 7200,
)
EXPIRED = OK.deny(Reason.EXPIRED, "expired 14 min ago")
TRUSTED = TimeReading(NOW, ClockState.TRUSTED)
FLOOR = TimeReading(NOW, ClockState.FLOOR)
BACKWARDS = TimeReading(NOW, ClockState.BACKWARDS)
STALE = TrustStatus(stale=True, age_s=3 * 86400, why="3 days old")
STRICT = CheckpointPolicy(clock="deny", stale="deny")
LENIENT = CheckpointPolicy(clock="flag", stale="flag")


def reason(d: Decision) -> str:
    return d.verdict.reason.value


def test_all_good_accepts_without_flags():
    d = decide(OK, TRUSTED, FRESH, already_used=False, policy=STRICT)
    assert d.accepted and d.verdict is OK and d.flags == frozenset()


def test_verifier_denial_stands_and_carries_the_conditions():
    d = decide(EXPIRED, FLOOR, STALE, already_used=True, policy=STRICT)
    assert reason(d) == "expired"
    assert d.flags == {"clock_untrusted", "trust_stale"}


@pytest.mark.parametrize(
    "reading, trust, used, policy, expect, flags",
    [
        (TRUSTED, STALE, False, STRICT, "trust_stale", {"trust_stale"}),
        (TRUSTED, STALE, False, LENIENT, "valid", {"trust_stale"}),
        (FLOOR, FRESH, False, STRICT, "clock_untrusted", {"clock_untrusted"}),
        (BACKWARDS, FRESH, False, STRICT, "clock_untrusted", {"clock_untrusted"}),
        (FLOOR, FRESH, False, LENIENT, "valid", {"clock_untrusted"}),
        (TRUSTED, FRESH, True, STRICT, "already_used", set()),
        (FLOOR, FRESH, True, LENIENT, "already_used", {"clock_untrusted"}),
        # stale trust is the broadest problem, so it is the reason given
        (FLOOR, STALE, True, STRICT, "trust_stale", {"clock_untrusted", "trust_stale"}),
        (
            FLOOR,
            FRESH,
            True,
            CheckpointPolicy(clock="deny", stale="flag"),
            "clock_untrusted",
            {"clock_untrusted"},
        ),
    ],
)
def test_policy_table(reading, trust, used, policy, expect, flags):
    d = decide(OK, reading, trust, already_used=used, policy=policy)
    assert reason(d) == expect
    assert d.flags == flags
    assert d.accepted == (expect == "valid")
    if not d.accepted:
        assert d.verdict.remaining_s is None  # a red screen never shows time left
        assert d.verdict.purpose == "work"  # the pass facts survive for the journal


def test_a_pass_shown_again_during_its_own_hold_is_quiet_whatever_its_verdict():
    d = decide(OK, TRUSTED, FRESH, already_used=True, policy=STRICT, held=True)
    assert reason(d) == "already_used" and d.flags == {"reshow"} and not d.signalled
    # held but no anti-passback window (0: off): accepted again, but not signalled either
    again = decide(OK, TRUSTED, FRESH, already_used=False, policy=STRICT, held=True)
    assert again.accepted and not again.signalled and again.flags == {"reshow"}
    # another reason is recorded as it is, and is quiet too: the door is that person's
    stale = decide(OK, TRUSTED, STALE, already_used=True, policy=STRICT, held=True)
    assert reason(stale) == "trust_stale" and stale.flags == {"trust_stale", "reshow"}
    assert not stale.signalled
    gone = decide(EXPIRED, TRUSTED, FRESH, already_used=False, policy=STRICT, held=True)
    assert reason(gone) == "expired" and not gone.signalled
    assert decide(OK, TRUSTED, FRESH, already_used=True, policy=STRICT).signalled


def test_no_trust_data_is_said_as_such_not_unknown_issuer():
    unknown = OK.deny(Reason.UNKNOWN_KEY, "no trusted key")
    d = decide(unknown, TRUSTED, FRESH, already_used=False, policy=LENIENT, no_trust=True)
    assert (reason(d), d.verdict.detail) == ("trust_stale", "no trust data")
    assert d.flags == {"trust_stale"}
    assert reason(decide(unknown, TRUSTED, FRESH, False, LENIENT)) == "unknown_key"
    assert reason(decide(EXPIRED, TRUSTED, FRESH, False, LENIENT, no_trust=True)) == "expired"


def test_stale_denial_says_how_stale():
    d = decide(OK, TRUSTED, STALE, already_used=False, policy=STRICT)
    assert d.verdict.detail == "trust data 3 days old"


# --- sd_notify ------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_notifier_sends_datagrams(notify_socket):
    path, sock = notify_socket
    with Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "8000000"}) as n:
        assert n.enabled and n.watchdog_s == 8.0
        assert n.ready("scanning")
        assert sock.recv(4096) == b"READY=1\nSTATUS=scanning"
        n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        n.status("camera fault\nsecond line dropped")
        assert sock.recv(4096) == b"STATUS=camera fault"


def test_notifier_is_a_noop_without_socket_and_survives_a_vanished_one(tmp_path: Path, caplog):
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.watchdog_s is None
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing")})
    assert not gone.watchdog() and not gone.watchdog()
    assert sum("cannot notify systemd" in r.message for r in caplog.records) == 1  # logged once


def test_watchdog_pid_for_another_process_is_ignored():
    assert (
        Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_s
        is None
    )
    assert (
        Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 1.0
    )
