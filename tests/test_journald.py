"""Log lines carry journald priorities under systemd (passgate.util.journald), so
``journalctl -p warning`` shows faults and nothing else; elsewhere the plain line."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

from passgate.util.journald import JournaldFormatter, configure, priority, stream_is_journal


def record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("passgate.loop", level, __file__, 1, msg, None, None)


def test_each_level_gets_its_syslog_priority():
    f = JournaldFormatter("%(levelname)s %(name)s: %(message)s")
    assert f.format(record(logging.ERROR, "camera lost")) == "<3>ERROR passgate.loop: camera lost"
    assert f.format(record(logging.WARNING, "slow")).startswith("<4>WARNING ")
    assert f.format(record(logging.INFO, "ready")).startswith("<6>INFO ")
    assert f.format(record(logging.DEBUG, "frame")).startswith("<7>DEBUG ")
    assert f.format(record(logging.CRITICAL, "relay")).startswith("<2>CRITICAL ")
    assert priority(logging.WARNING + 5) == 4 and priority(1) == 7


def test_every_line_of_a_multi_line_record_is_prefixed():
    f = JournaldFormatter("%(message)s")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record(logging.ERROR, "failed")
        rec.exc_info = sys.exc_info()
    lines = f.format(rec).split("\n")
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)


def test_only_the_stream_systemd_announced_counts_as_the_journal(tmp_path):
    with open(tmp_path / "log", "w") as journal, open(tmp_path / "other", "w") as other:
        st = os.fstat(journal.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stream_is_journal(journal, env)
        assert not stream_is_journal(other, env)  # inherited variable, another stream
        assert not stream_is_journal(journal, {})
        assert not stream_is_journal(journal, {"JOURNAL_STREAM": "garbage"})
        assert not stream_is_journal(io.StringIO(), env)


def test_a_command_run_by_systemd_writes_priorities_and_on_a_terminal_plain_lines(tmp_path):
    # The real thing: stderr is a file whose device:inode is announced, as systemd does.
    code = ("from passgate.util.journald import configure; import logging; configure(False); "
            "logging.getLogger('passgate.x').warning('fault'); "
            "logging.getLogger('passgate.x').info('fine'); "
            "logging.getLogger('passgate.x').debug('hidden')")
    err = tmp_path / "stderr"
    with open(err, "w") as f:
        st = os.fstat(f.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run([sys.executable, "-c", code], stderr=f, env=env, check=True)
    assert err.read_text().splitlines() == ["<4>WARNING passgate.x: fault",
                                            "<6>INFO passgate.x: fine"]
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert plain.stderr.splitlines() == ["WARNING passgate.x: fault", "INFO passgate.x: fine"]


def test_configure_without_systemd_is_the_plain_format():
    out = io.StringIO()
    handler = configure(True, stream=out, env={})
    logging.getLogger().removeHandler(handler)  # if basicConfig took it (no other handler)
    handler.handle(record(logging.DEBUG, "seen"))
    assert out.getvalue() == "DEBUG passgate.loop: seen\n"
