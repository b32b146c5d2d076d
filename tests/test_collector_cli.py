"""``passgate-collector`` sub-commands: tokens, bundle publishing, devices, time key, serve's
loopback-only rule; on SQLite and on PostgreSQL (the same ``--db`` URL switch)."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector_support import T0, FakeDevice, fresh_database, pg_cluster  # noqa: F401
from passgate.bundle.build import build_bundle
from passgate_collector.cli import main
from passgate_collector.store import open_store
from passgate_collector.web import create_app

CBOR = {"Content-Type": "application/cbor"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/c.db"
    return fresh_database(request.getfixturevalue("pg_cluster"))


def bundle_file(tmp_path, version: int) -> os.PathLike:
    parts = {"issuers": b"\xa0", "revoked": b"", "policy": b"\xa0", "fleet": b"\xa0"}
    data = build_bundle(parts, [Ed25519PrivateKey.generate()], version, T0, T0 + 86400)
    path = tmp_path / f"bundle-{version}.pgb"
    path.write_bytes(data)
    return path


def test_token_new_then_enrol(db, capsys):
    assert main(["token", "new", "--device", "gate-1", "--db", db]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) == 43
    store = open_store(db)
    try:
        app = create_app(store, time_token=None)
        dev = FakeDevice("gate-1")
        r = app.test_client().post("/v1/enrol", data=dev.enrol_body(token), headers=CBOR)
        assert r.status_code == 201
    finally:
        store.close()
    assert main(["token", "new", "--device", "Bad Id!", "--db", db]) == 2


def test_bundle_publish_reads_the_version_and_refuses_rollback(db, tmp_path, capsys):
    v3 = bundle_file(tmp_path, 3)
    assert main(["bundle", "publish", str(v3), "--db", db]) == 0
    assert "version 3" in capsys.readouterr().out
    assert main(["bundle", "publish", str(bundle_file(tmp_path, 2)), "--db", db]) == 2
    assert "not newer" in capsys.readouterr().err
    truncated = tmp_path / "cut.pgb"
    truncated.write_bytes(bundle_file(tmp_path, 4).read_bytes()[:-1])
    assert main(["bundle", "publish", str(truncated), "--db", db]) == 2
    junk = tmp_path / "junk.pgb"
    junk.write_bytes(b"not a bundle at all")
    assert main(["bundle", "publish", str(junk), "--db", db]) == 2
    store = open_store(db)
    try:
        assert store.latest_bundle()[0] == 3
        assert store.bundle_data(3) == v3.read_bytes()
    finally:
        store.close()


def test_device_commands(db, capsys):
    store = open_store(db)
    try:
        dev = FakeDevice("gate-2")
        store.add_token(b"x" * 32, "gate-2", T0, T0 + 60)
        store.enrol(b"x" * 32, "gate-2", dev.pubkey, b"k" * 8, T0)
    finally:
        store.close()
    assert main(["device", "list", "--db", db]) == 0
    assert "gate-2\tenabled" in capsys.readouterr().out
    assert main(["device", "disable", "gate-2", "--db", db]) == 0
    assert main(["device", "list", "--db", db]) == 0
    assert "gate-2\tdisabled" in capsys.readouterr().out
    assert main(["device", "remove", "gate-2", "--db", db]) == 0
    assert main(["device", "remove", "gate-2", "--db", db]) == 1


def test_time_key_new(tmp_path, capsys):
    assert main(["time-key", "new", "--out", str(tmp_path / "keys")]) == 0
    mode = stat.S_IMODE((tmp_path / "keys" / "time.key").stat().st_mode)
    assert mode == 0o600 and (tmp_path / "keys" / "time.pub").exists()
    assert main(["time-key", "new", "--out", str(tmp_path / "keys")]) == 2  # never overwrites


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example"])
def test_serve_listens_on_loopback_only(host, tmp_path, capsys):
    assert main(["serve", "--host", host, "--db", f"sqlite:///{tmp_path}/c.db"]) == 2
    assert "loopback" in capsys.readouterr().err or host == "example"


def test_unknown_db_scheme(capsys):
    assert main(["device", "list", "--db", "mysql://x"]) == 2
    assert "unsupported database URL" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["token", "new", "--device", "gate-1"], ["serve"],
                                  ["device", "list"]])
def test_unreachable_postgresql_is_one_line_and_exit_2(tmp_path, capsys, argv):
    pytest.importorskip("psycopg", reason="psycopg not installed (collector extra)")
    url = f"postgresql:///passgate?host={tmp_path}/no-server-here&connect_timeout=3"
    assert main([*argv, "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("passgate-collector: error: cannot open the PostgreSQL database")


def test_a_file_that_is_not_a_database_is_one_line(tmp_path, capsys):
    junk = tmp_path / "c.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert main(["device", "list", "--db", f"sqlite:///{junk}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot open the SQLite database" in err


def test_device_list_shows_the_fingerprint_enrolment_printed(db, capsys):
    from passgate.passes.keys import kid_of

    dev = FakeDevice("gate-3")
    store = open_store(db)
    try:
        store.add_token(b"y" * 32, "gate-3", T0, T0 + 60)
        store.enrol(b"y" * 32, "gate-3", dev.pubkey, kid_of(dev.pubkey), T0)
    finally:
        store.close()
    assert main(["device", "list", "--db", db]) == 0
    # The hex key id, as 'passgate keys new-device' and 'passgate sync enrol' print it.
    assert f"key {kid_of(dev.pubkey).hex()}\t" in capsys.readouterr().out


@pytest.mark.parametrize("pages", [1000, 10_000, 262_144])
def test_sqlite_wal_pages_accepts_the_documented_range(pages):
    from passgate_collector.store.sqlite import valid_wal_pages

    assert valid_wal_pages(pages) == pages


@pytest.mark.parametrize("pages", [0, -1, 999, 262_145, True, 10_000.0, "10000"])
def test_sqlite_wal_pages_refuses_what_would_not_bound_or_help(pages):
    from passgate_collector.store import StoreError
    from passgate_collector.store.sqlite import valid_wal_pages

    with pytest.raises(StoreError, match="WAL checkpoint interval"):
        valid_wal_pages(pages)


@pytest.mark.parametrize(("pages", "expected"), [(None, 10_000), (5_000, 5_000)])
def test_every_sqlite_connection_checkpoints_at_the_interval(tmp_path, pages, expected):
    from passgate_collector.store.sqlite import DEFAULT_WAL_PAGES

    assert DEFAULT_WAL_PAGES == 10_000
    store = open_store(f"sqlite:///{tmp_path}/c.db", pool_size=2, sqlite_wal_pages=pages)
    try:
        with store._pool.connection() as one, store._pool.connection() as two:
            assert one is not two  # a fresh connection gets it too, not only the first
            for conn in (one, two):
                assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == expected
    finally:
        store.close()


def test_serve_refuses_a_bad_wal_interval_before_opening_anything(tmp_path, capsys):
    assert main(["serve", "--db", f"sqlite:///{tmp_path}/c.db", "--sqlite-wal-pages", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "WAL checkpoint interval 0" in err
    assert not (tmp_path / "c.db").exists()


def test_serve_refuses_the_wal_interval_for_postgresql(tmp_path, capsys):
    url = f"postgresql:///passgate?host={tmp_path}/no-server-here&connect_timeout=3"
    assert main(["serve", "--db", url, "--sqlite-wal-pages", "10000"]) == 2
    assert "--sqlite-wal-pages is for a sqlite:/// database only" in capsys.readouterr().err
