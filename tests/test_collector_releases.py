"""The collector's releases: publish checks the signature against the newest bundle's
release keys, rollout chooses only among published releases (canary by device-id hash, per
site, then everyone), devices get their target and the files, and the update state each
device reports shows on the staff page with the rollout's progress."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector_support import (  # noqa: F401
    NOW,
    FakeDevice,
    cheap_argon2,
    fake_time_token,
    pg_cluster,
    staff_login,
    store,
)
from passgate.errors import UsageError
from passgate_collector.cli import main as collector_main
from passgate_collector.releases import ReleaseDir, bucket, release_auth
from passgate_collector.web import Settings, create_app
from release_support import ReleaseFleet
from test_collector_staff import enrol, send
from update_support import fake_deb


@pytest.fixture
def rig(store, tmp_path):  # noqa: F811
    rf = ReleaseFleet()
    data = rf.bundle()
    store.publish_bundle(1, data, hashlib.sha256(data).hexdigest(), NOW)
    folder = ReleaseDir(tmp_path / "releases")
    auth = release_auth(store)
    for v in ("0.1.0", "0.2.0"):
        folder.publish(rf.release(v, fake_deb(v)), fake_deb(v), auth, NOW)
    return rf, folder, auth


def test_publish_refuses_what_the_roots_did_not_authorise(rig):
    rf, folder, auth = rig
    deb = fake_deb("0.3.0")
    with pytest.raises(UsageError, match="not_authorised"):
        folder.publish(rf.release("0.3.0", deb, key=Ed25519PrivateKey.generate()), deb, auth, NOW)
    with pytest.raises(UsageError, match="hash_mismatch"):
        folder.publish(rf.release("0.3.0", deb), deb[:-1] + b"!", auth, NOW)
    rf.min_version = "0.5.0"
    with pytest.raises(UsageError, match="below_minimum"):
        folder.publish(rf.release("0.3.0", deb), deb, rf.auth(), NOW)
    assert [p.version for p in folder.published(auth, NOW)] == ["0.1.0", "0.2.0"]


def test_rollout_only_among_published_releases_and_never_below_the_minimum(rig):
    rf, folder, auth = rig
    with pytest.raises(UsageError, match="not published"):
        folder.rollout("0.9.0", auth, NOW)
    rf.min_version = "0.2.0"  # the roots raise the minimum: 0.1.0 may no longer be chosen
    with pytest.raises(UsageError, match="not published"):
        folder.rollout("0.1.0", rf.auth(), NOW)
    assert folder.rollout("0.2.0", rf.auth(), NOW)["stable"] == "0.2.0"


def test_canary_by_device_id_hash_then_everyone(rig):
    _rf, folder, auth = rig
    ids = [f"gate-{i}" for i in range(400)]
    assert all(folder.target(d, "", "amd64", auth, NOW) is None for d in ids[:5])  # no plan
    folder.rollout("0.1.0", auth, NOW)
    folder.rollout("0.2.0", auth, NOW, percent=10)
    ten = {d for d in ids if folder.target(d, "", "amd64", auth, NOW) == "0.2.0"}
    assert 20 <= len(ten) <= 60 and ten == {d for d in ids if bucket(d) < 10}
    folder.rollout("0.2.0", auth, NOW, percent=50)
    half = {d for d in ids if folder.target(d, "", "amd64", auth, NOW) == "0.2.0"}
    assert ten < half  # the canary devices stay in; raising the share only adds devices
    assert all(folder.target(d, "", "arm64", auth, NOW) is None for d in ids)  # no arm64 build
    folder.rollout("0.2.0", auth, NOW, percent=100)
    assert {folder.target(d, "", "amd64", auth, NOW) for d in ids} == {"0.2.0"}
    assert folder.plan()["canary"] is None


def test_a_site_rollout_wins_for_that_site(rig):
    _rf, folder, auth = rig
    folder.rollout("0.1.0", auth, NOW)
    folder.rollout("0.2.0", auth, NOW, site="north")
    assert folder.target("gate-1", "north", "amd64", auth, NOW) == "0.2.0"
    assert folder.target("gate-1", "south", "amd64", auth, NOW) == "0.1.0"


def test_devices_get_their_target_and_the_files(rig, store, tmp_path):  # noqa: F811
    _rf, folder, auth = rig
    app = create_app(store, time_token=fake_time_token, now=lambda: NOW,
                     settings=Settings(releases_dir=str(folder.folder)))
    c = app.test_client()
    q = "/v1/release/target?device=gate-1&arch=amd64&site=&have=0.1.0"
    assert c.get(q).status_code == 204
    folder.rollout("0.2.0", auth, NOW)
    assert json.loads(c.get(q).data) == {"version": "0.2.0"}
    assert c.get("/v1/release/files/passgate_0.2.0_amd64.deb").data == fake_deb("0.2.0")
    for bad in ("rollout.json", "..%2Frollout.json", "passgate_0.9.0_amd64.deb"):
        assert c.get(f"/v1/release/files/{bad}").status_code == 404
    assert c.get("/v1/release/target?arch=amd64").status_code == 400
    plain = create_app(store, time_token=fake_time_token, now=lambda: NOW).test_client()
    assert plain.get(q).status_code == 404  # no --releases: no release endpoints


def test_staff_page_shows_version_target_update_state_and_rollout(rig, store, staff_login):  # noqa: F811
    _rf, folder, auth = rig
    folder.rollout("0.1.0", auth, NOW)
    folder.rollout("0.2.0", auth, NOW, percent=25)
    app = create_app(store, time_token=fake_time_token, now=lambda: NOW,
                     settings=Settings(releases_dir=str(folder.folder)))
    c = app.test_client()
    good, bad = FakeDevice("gate-good"), FakeDevice("gate-bad")
    enrol(c, store, good)
    enrol(c, store, bad)
    send(c, good, [], {"firmware": "0.2.0", "update_state": "up_to_date",
                       "update_target": "0.2.0"})
    send(c, bad, [], {"firmware": "0.1.0", "update_state": "rolled_back",
                      "update_target": "0.2.0", "update_reason": "health check: not READY"})
    staff_login(c, store)  # the staff page needs a session
    page = c.get("/").get_data(as_text=True)
    row = re.search(r'data-device="gate-bad">(.*?)</tr>', page, re.S).group(1)
    assert '<td class="version">0.1.0</td><td class="target">0.2.0</td>' in row
    assert "rolled back" in row and "health check: not READY" in row
    rollout = re.search(r'<p id="rollout">(.*?)</p>', page, re.S).group(1)
    assert "stable 0.1.0; canary 0.2.0 on 25 %" in rollout
    assert "0.1.0 on 1" in rollout and "0.2.0 on 1" in rollout and "rolled back 1" in rollout
    from passgate_collector.protocol import health_fields

    assert health_fields({"update_state": "hacked<script>", "update_target": 3}) == {}


def test_release_commands(rig, store, tmp_path, capsys):  # noqa: F811
    rf, folder, _auth = rig
    db = store.url if store.kind == "postgresql" else f"sqlite:///{store.path}"
    rel = tmp_path / "passgate_0.3.0_amd64.release"
    deb = tmp_path / "passgate_0.3.0_amd64.deb"
    rel.write_bytes(rf.release("0.3.0", fake_deb("0.3.0"), expires=NOW + 10**8))
    deb.write_bytes(fake_deb("0.3.0"))
    base = ["--releases", str(folder.folder), "--db", db]
    assert collector_main(["release", "publish", str(rel), str(deb), *base]) == 0
    assert collector_main(["release", "rollout", "0.3.0", "--percent", "10", *base]) == 0
    assert collector_main(["release", "rollout", "0.9.0", *base]) == 2
    assert collector_main(["release", "status", "--json", *base]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    status = json.loads(out[-1])
    assert status["plan"]["canary"] == {"version": "0.3.0", "percent": 10.0}
    assert "0.3.0" in [p["version"] for p in status["published"]]
