"""``passgate log``: lines for people, JSON lines for tools, clear errors."""

from __future__ import annotations

import json
import os
import time

import pytest

from passgate.cli import main
from passgate.cli.log import since_time
from passgate.journal.journal import Journal, ScanRecord

KEY = b"fleet hash key for tests"
T0 = 1_767_261_600.0  # 2026-01-01T10:00:00Z


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Local time is UTC for these tests, so the printed times are fixed."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def state(tmp_path):
    """A state folder with a journal of five scans (two uploaded, one dead letter)."""
    rows = [  # offset s, verdict, reason, clock, purpose, flags
        (0, "accept", "valid", "trusted", "work", ()),
        (60, "deny", "expired", "trusted", "shopping", ()),
        (120, "deny", "already_used", "floor", "work", ("clock_untrusted",)),
        (180, "deny", "malformed", "trusted", None, ()),
        (240, "accept", "valid", "backwards", "work", ("clock_untrusted", "trust_stale")),
    ]
    with Journal(tmp_path / "journal.sqlite", KEY, "gate-7") as j:
        for dt, verdict, reason, clock, purpose, flags in rows:
            j.record(ScanRecord(os.urandom(16), T0 + dt, clock, verdict, reason,
                                j.pass_hash(b"id") if purpose else None,
                                "a1b2c3d4" if purpose else None, purpose, "lobby", flags))
        j.mark_uploaded([1, 2], at=T0 + 300)
        j.dead_letter([3], "refused", at=T0 + 300)
    return tmp_path


def log(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["log", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_human_lines_and_summary(state, capsys):
    code, out, err = log(capsys, "--state", str(state))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "RESULT", "REASON", "PURPOSE", "ZONE", "CLOCK", "UPLOAD",
                                "FLAGS"]
    assert lines[1].split() == ["2026-01-01", "10:00:00", "ACCEPT", "valid", "work", "lobby",
                                "trusted", "uploaded", "-"]
    assert "DENY    expired" in lines[2] and "uploaded" in lines[2]
    assert "DENY    already used" in lines[3] and "floor only" in lines[3]
    assert "dead letter" in lines[3] and lines[3].endswith("clock_untrusted")
    assert "DENY    unreadable" in lines[4] and "  -  " in lines[4]
    assert "went back" in lines[5] and lines[5].endswith("clock_untrusted,trust_stale")
    assert lines[6] == (
        "gate-7: 5 scans in the journal: 2 accepted, 3 denied (1 already used, 1 expired, "
        "1 unreadable); 2 waiting for upload, 1 refused by the collector (dead letters)"
    )
    assert len(lines) == 7
    # Column alignment: every row's RESULT column starts where the header's does.
    col = lines[0].index("RESULT")
    assert all(line[col:col + 6].strip() in ("ACCEPT", "DENY") for line in lines[1:6])


def test_limit_and_since(state, capsys):
    code, out, _ = log(capsys, "--journal", str(state / "journal.sqlite"), "--limit", "2",
                       "--since", "2026-01-01T10:01:00Z")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4  # header, the newest two, summary
    assert "unreadable" in lines[1] and "went back" in lines[2]
    assert lines[3].startswith("gate-7: 4 scans since 2026-01-01 10:01:00 (showing the newest 2)")
    code, out, _ = log(capsys, "--state", str(state), "--limit", "0")
    assert len(out.splitlines()) == 7


def test_since_spans_and_instants():
    assert since_time("1h", now=T0) == T0 - 3600
    assert since_time("90m", now=T0) == T0 - 5400
    assert since_time("2026-01-01T09:00:00Z", now=0) == T0 - 3600
    assert since_time(None, now=T0) is None


def test_json_lines(state, capsys):
    code, out, _ = log(capsys, "--state", str(state), "--json")
    objs = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [o["seq"] for o in objs] == [1, 2, 3, 4, 5]
    assert [o["status"] for o in objs] == ["uploaded", "uploaded", "dead", "pending", "pending"]
    first = objs[0]
    assert first["time"] == "2026-01-01T10:00:00Z" and first["scanned_at"] == T0
    assert (first["verdict"], first["reason"], first["zone"]) == ("accept", "valid", "lobby")
    assert len(bytes.fromhex(first["nonce"])) == 16 and len(bytes.fromhex(first["chain"])) == 32
    assert objs[2]["dead_reason"] == "refused" and objs[4]["flags"] == ["clock_untrusted",
                                                                         "trust_stale"]


def test_state_dir_from_environment(state, capsys, monkeypatch):
    monkeypatch.setenv("PASSGATE_STATE_DIR", str(state))
    code, out, _ = log(capsys, "--limit", "1")
    assert code == 0 and "went back" in out


def test_reads_while_the_writer_has_it_open(state, capsys):
    with Journal(state / "journal.sqlite", KEY) as writer:
        writer.record(ScanRecord(os.urandom(16), T0 + 400, "trusted", "deny", "revoked",
                                 None, None, None, "lobby"))
        assert (state / "journal.sqlite-wal").exists()
        code, out, _ = log(capsys, "--state", str(state), "--limit", "1")
    assert code == 0 and "revoked" in out and "6 scans" in out


def test_missing_journal_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PASSGATE_STATE_DIR", str(tmp_path / "nowhere"))
    code, out, err = log(capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "nowhere/journal.sqlite: no journal there" in err
    assert not (tmp_path / "nowhere").exists()  # the reader never creates anything


@pytest.mark.parametrize("argv", [["--limit", "-1"], ["--since", "last week"]])
def test_bad_options_exit_2(state, capsys, argv):
    code, _, err = log(capsys, "--state", str(state), *argv)
    assert code == 2 and err.startswith("passgate: error: ")


def test_state_and_journal_are_exclusive(state, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["log", "--state", str(state), "--journal", str(state / "journal.sqlite")])
    assert exc.value.code == 2
