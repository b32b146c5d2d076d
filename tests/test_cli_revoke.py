"""``passgate keys new-revocation``, ``bundle build --revoker``, ``bundle revoke`` and
``bundle delta``: an operator's day, from the command line to an installed delta."""

from __future__ import annotations

import os

from passgate.bundle import install_bundle, load_installed
from passgate.bundle.delta import apply_delta
from passgate.cli import main
from passgate.passes.keys import new_keypair


def test_a_revocation_key_adds_revocations_that_a_device_installs_as_a_delta(tmp_path):
    for r in "ab":
        new_keypair(tmp_path / "roots" / r, "root")
        (tmp_path / "pubs").mkdir(exist_ok=True)
        (tmp_path / "pubs" / f"{r}.pub").write_bytes(
            (tmp_path / "roots" / r / "root.pub").read_bytes())
    assert main(["keys", "new-issuer", "--out", str(tmp_path / "issuers")]) == 0
    assert main(["keys", "new-revocation", "--out", str(tmp_path / "rk")]) == 0
    first, later = os.urandom(12).hex(), os.urandom(12).hex()
    (tmp_path / "revoked.txt").write_text(first + "\n")
    (tmp_path / "new.txt").write_text(later + "\n")
    roots = ["--roots", str(tmp_path / "pubs"), "--threshold", "2"]
    assert main(["bundle", "build", "--root", str(tmp_path / "roots/a/root.key"),
                 "--root", str(tmp_path / "roots/b/root.key"),
                 "--issuers", str(tmp_path / "issuers"), "--revoked", str(tmp_path / "revoked.txt"),
                 "--version", "1", "--revoker", str(tmp_path / "rk/revocation.pub"),
                 "--out", str(tmp_path / "v1.pgb")]) == 0
    assert main(["bundle", "revoke", "--base", str(tmp_path / "v1.pgb"), *roots,
                 "--key", str(tmp_path / "rk/revocation.key"),
                 "--revoked", str(tmp_path / "new.txt"), "--version", "2",
                 "--out", str(tmp_path / "v2.pgb")]) == 0
    assert main(["bundle", "delta", str(tmp_path / "v1.pgb"), str(tmp_path / "v2.pgb"),
                 "--out", str(tmp_path / "d.pgd")]) == 0
    import time

    from passgate.bundle import RootSet

    dev = tmp_path / "dev"
    install_bundle(tmp_path / "v1.pgb", dev, time.time(), roots=RootSet.load(tmp_path / "pubs", 2))
    apply_delta((tmp_path / "d.pgd").read_bytes(), dev, time.time())
    store, info = load_installed(dev)
    assert info.version == 2 and bytes.fromhex(later) in store.revoked
    assert bytes.fromhex(first) in store.revoked
    # a revoke built on a base that does not verify against the roots is refused
    assert main(["bundle", "revoke", "--base", str(tmp_path / "v1.pgb"),
                 "--roots", str(tmp_path / "rk/revocation.pub"),
                 "--key", str(tmp_path / "rk/revocation.key"),
                 "--revoked", str(tmp_path / "new.txt"), "--version", "2",
                 "--out", str(tmp_path / "bad.pgb")]) == 1
