"""A throwaway PostgreSQL server for tests and benchmarks (initdb + pg_ctl in a temp dir).

It listens on a Unix socket inside its own directory only (no TCP port, nothing reachable
from outside), trusts local connections, and is removed on :meth:`PgCluster.stop`. PostgreSQL
refuses to run as root, so under root the cluster runs as the ``postgres`` system user (the
Debian package creates it) through ``runuser``.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import PgCommandFailed, PgUnavailable

log = logging.getLogger(__name__)


def find_bindir() -> Path:
    """The directory with ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                        "install the Debian package postgresql")


class PgCluster:
    """``with PgCluster() as pg: url = pg.create_database("t1")``."""

    def __init__(self, durable: bool = False) -> None:
        self.bindir = find_bindir()
        self.durable = durable
        self._as: list[str] = []
        self._uid = self._gid = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root and there is no 'postgres' user to run "
                                    "the server as") from None
            if not shutil.which("runuser"):
                raise PgUnavailable("running as root and runuser is missing")
            self._as = ["runuser", "-u", "postgres", "--"]
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
        self.dir = Path(tempfile.mkdtemp(prefix="passgate-pg-"))
        self.data, self.log_file = self.dir / "data", self.dir / "server.log"
        self.started = False

    def _run(self, *cmd: str) -> None:
        proc = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log_text = self.log_file.read_text() if self.log_file.exists() else ""
            raise PgCommandFailed(f"{Path(cmd[0]).name} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()[-800:]} {log_text[-800:]}")

    def start(self) -> PgCluster:
        if self._uid is not None:
            os.chown(self.dir, self._uid, self._gid)
        os.chmod(self.dir, 0o700)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        self.resume()
        log.info("throwaway PostgreSQL started in %s", self.dir)
        return self

    def resume(self) -> None:
        """Start the server process (again, after :meth:`pause`)."""
        opts = f"-c listen_addresses='' -c unix_socket_directories='{self.dir}' -p 5432"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_file),
                  "-o", opts, "-w", "-t", "60", "start")
        self.started = True

    def pause(self) -> None:
        """Stop the server process but keep the data (an outage, for tests)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.started = False

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql:///{dbname}?host={self.dir}&user=postgres&port=5432"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")
            finally:
                self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
