"""Helpers for the collector tests: a scripted device that makes chained journal rows and
signed requests, the PostgreSQL fixture (a throwaway cluster, skipped only when the
server binaries are absent), and staff sign-in through the real form (``add_staff``,
``sign_in``, the ``staff_login`` fixture)."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import re
import uuid
from collections.abc import Iterator

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.journal.schema import ZERO_CHAIN, chain_of

pytest.importorskip("flask", reason="collector extra not installed: pip install -e '.[collector]'")

from passgate_collector import protocol  # noqa: E402
from passgate_collector.auth import passwords  # noqa: E402
from passgate_collector.auth.passwords import hash_password  # noqa: E402
from passgate_collector.store import open_store  # noqa: E402

T0 = 1_767_225_600  # 2026-01-01 00:00:00 UTC
# The collector's clock in the API tests, and the fake device's clock: they agree, so a
# batch's sent_at is fresh (the collector moves last_seen only on a fresh batch).
NOW = T0 + 3600


def pass_hash(n: int) -> bytes:
    return hashlib.sha256(b"pass-%d" % n).digest()[:16]


class FakeDevice:
    """A device as the collector sees it: a key, a journal of chained rows, signed requests."""

    def __init__(self, device_id: str, seed: int = 0) -> None:
        self.device_id = device_id
        self.key = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"{device_id}/{seed}".encode()).digest())
        self.pubkey = self.key.public_key().public_bytes_raw()
        self.rows: list[dict] = []
        self._nonce = itertools.count(1)

    def scan(self, t: float, verdict: str = "accept", reason: str = "valid",
             ph: bytes | None = None, zone: str = "lobby", flags: tuple[str, ...] = ()) -> dict:
        """Append one chained row to the journal and return it."""
        seq = len(self.rows) + 1
        row = {
            "seq": seq,
            "nonce": hashlib.sha256(f"{self.device_id}:{next(self._nonce)}".encode()).digest()[:16],
            "t_ms": int(t * 1000), "clock_state": "trusted", "verdict": verdict,
            "reason": reason, "pass_hash": ph, "kid": "0011223344556677",
            "purpose": "visitor", "zone": zone, "flags": sorted(set(flags)),
        }
        row["chain"] = chain_of(self.chain_before(seq), row)
        self.rows.append(row)
        return row

    def chain_before(self, seq: int) -> bytes:
        return ZERO_CHAIN if seq == 1 else self.rows[seq - 2]["chain"]

    def scans(self, n: int, t0: float = T0, step: float = 5.0, **kw) -> list[dict]:
        """``n`` scans ``step`` seconds apart, each of a different pass unless ``ph`` is given."""
        fixed = kw.pop("ph", None)
        return [self.scan(t0 + i * step, ph=fixed or pass_hash(len(self.rows) + 1), **kw)
                for i in range(n)]

    def enrol_body(self, token: str, key: Ed25519PrivateKey | None = None) -> bytes:
        key = key or self.key
        return protocol.sign_request({
            "v": 1, "t": "enrol", "device": self.device_id, "token": token,
            "pubkey": key.public_key().public_bytes_raw(), "sent_at": T0}, key)

    def batch_body(self, rows: list[dict], prev: bytes | None = None, status: dict | None = None,
                   key: Ed25519PrivateKey | None = None, sent_at: int = NOW,
                   challenge: bytes | None = None) -> bytes:
        if prev is None:
            prev = self.chain_before(rows[0]["seq"]) if rows else (
                self.rows[-1]["chain"] if self.rows else ZERO_CHAIN)
        payload = {"v": 1, "t": "batch", "device": self.device_id, "sent_at": sent_at,
                   "prev_chain": prev, "rows": rows, "status": status or {}}
        if challenge is not None:
            payload["challenge"] = challenge
        return protocol.sign_request(payload, key or self.key)


def corrupted(valid: bytes, seed: int, n: int = 3000) -> Iterator[bytes]:
    """``n`` copies of ``valid`` with one to three bytes replaced at random (reproducible):
    many stay valid CBOR (bytes inside strings), so a fast decoder and the exact one it stands
    in for can be compared on both outcomes."""
    rng = random.Random(seed)
    for _ in range(n):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield bytes(data)


def fake_time_token(now: float, device: str, nonce: bytes | None) -> bytes:
    """Stands in for the signed token in API tests that only check it is attached."""
    return cbor2.dumps({"fake_time": int(now), "dev": device, "nonce": nonce})


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL server for the session (skips only if binaries are absent)."""
    from passgate_collector.pgcluster import PgCluster, PgUnavailable

    pytest.importorskip("psycopg", reason="psycopg not installed (collector extra)")
    try:
        cluster = PgCluster()
    except PgUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI installs postgresql: a missing server there is a failure, not a skip
        pytest.skip(str(exc))
    with cluster:
        yield cluster


def fresh_database(cluster) -> str:
    """URL of a new, empty database on the throwaway cluster."""
    return cluster.create_database("t_" + uuid.uuid4().hex)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A fresh, empty store of each backend."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/collector.db")
    else:
        cluster = request.getfixturevalue("pg_cluster")
        s = open_store(fresh_database(cluster))
    yield s
    s.close()


STAFF_PASSWORD = "correct horse battery staple"


def csrf_of(html: str) -> str:
    """The CSRF token a console page's form carries."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def add_staff(store, name: str, role: str = "viewer", password: str = STAFF_PASSWORD) -> None:  # noqa: F811
    store.add_user(name, role, hash_password(password), T0)


def sign_in(client, name: str, password: str = STAFF_PASSWORD, code: str = "",
            next_path: str = "/"):
    """Sign in as a browser does: GET /login for the form's CSRF token, POST the form."""
    form = client.get("/login")
    assert form.status_code == 200
    return client.post("/login", data={
        "csrf_token": csrf_of(form.get_data(as_text=True)), "name": name,
        "password": password, "code": code, "next": next_path})


@pytest.fixture
def cheap_argon2(monkeypatch):
    """argon2id with argon2-cffi's cheapest parameters: the same code and hash format, at
    a fraction of a millisecond instead of ~0.5 s a hash on a busy test machine. Tests of
    the production parameters (test_collector_auth) do not use it."""
    from argon2 import PasswordHasher, profiles

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
    passwords._decoy.cache_clear()
    yield
    passwords._decoy.cache_clear()


@pytest.fixture
def staff_login(cheap_argon2):
    """``staff_login(client, store, role="viewer", name=None)``: make the account if it is
    missing, sign the Flask test client in through the form, and return the client."""

    def sign_in_as(client, store, role: str = "viewer", name: str | None = None):  # noqa: F811
        name = name or role
        if store.user(name) is None:
            add_staff(store, name, role)
        resp = sign_in(client, name)
        assert resp.status_code == 302, resp.get_data(as_text=True)
        return client

    return sign_in_as
