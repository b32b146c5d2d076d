"""bench/console.py runs tiny on SQLite and times every console view (issue 12 point 7).

Times are never asserted (bench/measure.py): only that the rows are generated, the views
answer 200 signed in (the bench stops on any other status) and a line is printed for each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_console_bench_runs_tiny(tmp_path) -> None:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "firmware"), str(ROOT / "collector")])}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "console.py"), "--rows", "3000",
                          "--devices", "20", "--requests", "2", "--backend", "sqlite",
                          "--dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "machine: " in out.stdout and "3,000 rows" in out.stdout
    for view in ("alerts+live", "scans page 2", "charts site", "pass search", "export.csv"):
        line = next(x for x in out.stdout.splitlines() if x.startswith(view))
        # p50, p95, app CPU, db CPU, then the anchor: bare p50, bare p95, ratio, statements
        p50, p95, app, db, bare50, bare95, ratio, stmts = line.split()[-8:]
        assert ratio.endswith("x") and float(ratio[:-1]) > 0, line
        assert int(stmts) > 0, line  # the view's statements were recorded and replayed
    assert list(tmp_path.iterdir()) == []  # the bench removes its database


def test_console_bench_runs_tiny_on_partitioned_postgresql() -> None:
    """The generation on PostgreSQL's weekly partitions (store/partitions.py): the weeks of a
    90-day window made first, each set UNLOGGED, the indexes dropped and built again."""
    import pytest

    from passgate_collector.errors import PgUnavailable
    from passgate_collector.pgcluster import find_bindir

    try:
        find_bindir()
    except PgUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "firmware"), str(ROOT / "collector")])}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "console.py"), "--rows", "3000",
                          "--devices", "20", "--requests", "2", "--backend", "postgresql"],
                         # the default temp folder: the server's user cannot enter tmp_path
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3,000 rows" in out.stdout and "scans page 2" in out.stdout
