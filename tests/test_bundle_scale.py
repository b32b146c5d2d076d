"""Fleet-sized bundles: the bench script runs (small), and 1,000,000 revocations work (slow).

No timing is asserted; ``bench/bundle.py`` prints the figures.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bundle_support import DAY, NOW, Roots
from conftest import REPO_ROOT
from passgate.bundle import BundleContent, build_bundle, install_bundle, load_installed, read_bundle
from passgate.passes.revocation import RevocationList
from passgate.passes.truststore import IssuerKey


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_bundle", REPO_ROOT / "bench" / "bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_script_runs_small(tmp_path):
    figures = dict(load_bench().run(revoked=3000, issuers=5, work=tmp_path))
    assert figures["build"]["bytes"] > 3000 * 16
    assert figures["verify"] == {**figures["verify"], "revoked": 3000, "issuers": 5}
    assert figures["install"]["version"] == 1
    assert figures["load"]["probe_revoked"] is True


@pytest.mark.slow
def test_million_revocations_and_hundred_issuers(tmp_path):
    roots = Roots.make()
    ids = os.urandom(12 * 1_000_000)
    revoked = RevocationList.from_pass_ids(ids[i : i + 12] for i in range(0, len(ids), 12))
    issuers = tuple(
        IssuerKey.from_public(Ed25519PrivateKey.generate().public_key(), issuer=f"issuer-{i}")
        for i in range(100)
    )
    data = build_bundle(BundleContent(issuers, revoked), roots.keys[:2], 1, NOW, NOW + 7 * DAY)
    del revoked
    assert len(data) > 16_000_000
    store, info = read_bundle(data, roots.set).trust()
    assert (info.revoked, info.issuers, info.verified) == (1_000_000, 100, True)
    install_bundle(data, tmp_path / "dev", NOW + 60, roots=roots.set)
    store, info = load_installed(tmp_path / "dev")
    assert ids[:12] in store.revoked and ids[-12:] in store.revoked
    assert b"not-revoked-id" not in store.revoked
