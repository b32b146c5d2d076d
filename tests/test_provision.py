"""``passgate provision`` against temporary folders: what a first boot writes, with which modes,
what it refuses before writing anything, what a second run says, and that the sync agent
enrols and uploads with what provisioning left (a real collector on 127.0.0.1).

Ownership (passgate / passgate-sync) needs those users: the image test checks it in a chroot.
Here every run passes ``--no-chown``.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from luma.core.device import dummy

from bundle_support import DAY, NOW, Fleet
from passgate.bundle import install_bundle
from passgate.checkpoint.wiring import read_hash_key  # how `passgate run` reads it
from passgate.cli import build_parser, main
from passgate.cli.provision import dispose, provision
from passgate.config.load import load_config
from passgate.hardware.display import MessageScreen, render
from passgate.provision import ProvisionError, dropin_toml, read_device_file
from passgate.sync.enrolment import load_enrolment

HASH_KEY = bytes(range(100, 132))
TOKEN = "tok_" + "A" * 40
TIME_KEY = "b05ab677e778b9acd1deeb5386e625ee434d6936f4e8d0ca03b63ff6119c88d9"
EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "passgate-device.example.toml"


def device_text(fleet: Fleet, *, device="gate-north-1", zone="north", url="https://c.example",
                token=TOKEN, key=HASH_KEY, extra="", bundle=True) -> str:
    keys = ", ".join(f'"{k.hex()}"' for k in fleet.roots.set.keys)
    return f"""format = 1
[device]
id = "{device}"
zone = "{zone}"
[sync]
collector_url = "{url}"
enrol_token = "{token}"
[trust]
{'bundle = "passgate-bundle.bin"' if bundle else ''}
time_keys = ["{TIME_KEY}"]
[trust.roots]
threshold = {fleet.roots.threshold}
keys = [{keys}]
[journal]
pass_hash_key = "{key.hex()}"
[config.antipassback]
window = "10m"
[config.display]
driver = "dummy"
{extra}
"""


@pytest.fixture
def site(tmp_path):
    """A boot partition with a device file and a bundle; /etc/passgate with the site's file."""
    fleet = Fleet()
    boot, etc = tmp_path / "boot", tmp_path / "etc"
    boot.mkdir()
    (etc / "passgate.d").mkdir(parents=True)
    (etc / "passgate.toml").write_text(
        f'[checkpoint]\nzone = "default"\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    (tmp_path / "state").mkdir()
    (boot / "passgate-bundle.bin").write_bytes(fleet.bundle(3))
    (boot / "passgate-device.toml").write_text(device_text(fleet), encoding="utf-8")
    return fleet, tmp_path


def run(tmp_path, *extra, now=NOW + 60, output=None, device_file=None):
    args = build_parser().parse_args([
        "provision", "--device-file", str(device_file or tmp_path / "boot/passgate-device.toml"),
        "--etc", str(tmp_path / "etc"), "--sync-dir", str(tmp_path / "sync"), "--no-chown", *extra])
    return provision(args, now=now, output=output or panel())


def panel():
    """luma's off-screen device, persisting as ``open_luma(persist=True)`` makes the OLED."""
    dev = dummy(width=128, height=64, mode="1")
    dev.persist = True
    return dev


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def result(tmp_path) -> dict:
    return json.loads((tmp_path / "state/provision.json").read_text())


def test_first_boot_writes_everything_and_removes_the_file(site, capsys):
    fleet, tmp = site
    oled = panel()
    assert run(tmp, "--remove", output=oled) == 0
    out = capsys.readouterr().out
    assert "changed: bundle v3 installed" in out

    cfg = load_config(tmp / "etc/passgate.toml")  # the scanner's view, drop-in included
    assert (cfg.checkpoint.device_id, cfg.checkpoint.zone) == ("gate-north-1", "north")
    assert cfg.antipassback.window == 600 and cfg.display.driver == "dummy"
    dropin = tmp / "etc/passgate.d/10-device.toml"
    assert mode(dropin) == 0o640

    state = tmp / "state"
    assert (state / "bundle/roots.toml").exists()
    assert json.loads((state / "bundle/installed.json").read_text())["version"] == 3
    key = state / "journal.key"
    assert read_hash_key(cfg.journal.hash_key_file) == HASH_KEY and mode(key) == 0o600
    assert mode(state / "bundle") & 0o777 == 0o770 and mode(state / "bundle/.lock") & 0o060
    assert (state / f"time-keys/time-{'21225ba29bfa98f0'}.pub").read_text().startswith("-----BEGIN")

    sync = tmp / "sync"
    assert mode(sync) == 0o700 and mode(sync / "device.key") == 0o600
    record = load_enrolment(sync / "enrolment.json")
    assert (record.collector, record.device, record.token) == ("https://c.example", "gate-north-1",
                                                                TOKEN)
    assert record.outstanding and mode(sync / "enrolment.json") == 0o600

    res = result(tmp)
    assert res["status"] == "provisioned" and res["ok"] and res["device_file"] == "removed"
    assert res["device_key"] == record.fingerprint and res["bundle_version"] == 3
    text = (state / "provision.json").read_text()
    assert TOKEN not in text and HASH_KEY.hex() not in text  # secrets stay out of records
    assert not (tmp / "boot/passgate-device.toml").exists()
    assert not (tmp / "boot/passgate-bundle.bin").exists()
    screen = MessageScreen("Provisioned", f"gate-north-1 zone north key {record.fingerprint[:8]}")
    assert oled.image.tobytes() == render(screen).tobytes()


def test_second_run_with_the_same_file_changes_nothing(site, capsys):
    _, tmp = site
    copy = tmp / "copy.toml"
    copy.write_bytes((tmp / "boot/passgate-device.toml").read_bytes())
    assert run(tmp) == 0
    before = {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()}
    capsys.readouterr()
    oled = panel()
    assert run(tmp, output=oled) == 0
    assert "changed:" not in capsys.readouterr().out
    assert result(tmp)["status"] == "unchanged" and result(tmp)["changes"] == []
    after = {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()}
    changed = {p.name for p in before if before[p] != after[p]}
    assert changed <= {"provision.json", ".lock"}, changed
    fingerprint = result(tmp)["device_key"]
    screen = MessageScreen("Already set up", f"gate-north-1 zone north key {fingerprint[:8]}")
    assert oled.image.tobytes() == render(screen).tobytes()


@pytest.mark.parametrize("change, expect", [
    (lambda t: t.replace('id = "gate-north-1"', 'id = "Gate North"'), "device.id"),
    (lambda t: t.replace("format = 1", "format = 2"), "format"),
    (lambda t: t.replace("[journal]", "[journal]\nsalt = 1"), "journal.salt: unknown key"),
    (lambda t: t.replace(TOKEN, "short"), "sync.enrol_token"),
    (lambda t: t.replace("https://c.example", "ftp://c.example"), "sync.collector_url"),
    (lambda t: t.replace(HASH_KEY.hex(), HASH_KEY.hex()[:40]), "must be 32 bytes"),
    (lambda t: t.replace(HASH_KEY.hex(), "00" * 32), "placeholder"),
    (lambda t: t.replace("threshold = 2", "threshold = 4"), "threshold must be 1..3"),
    (lambda t: t.replace(TIME_KEY, "00" * 32), "trust.time_keys"),
    (lambda t: t.replace('driver = "dummy"', 'drivr = "dummy"'), "display.drivr: unknown key"),
    (lambda t: t.replace('window = "10m"', 'window = "ten"'), "antipassback.window"),
    (lambda t: t + '[config.checkpoint]\nzone = "x"\n', "set it in [device]"),
    (lambda t: t.replace("[device]", "[devices]"), "devices: unknown section"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_refused_before_anything_is_written(site, change, expect):
    _, tmp = site
    f = tmp / "boot/passgate-device.toml"
    f.write_text(change(f.read_text()), encoding="utf-8")
    oled = panel()
    with pytest.raises(ProvisionError, match=expect.replace("[", r"\[").replace("]", r"\]")):
        run(tmp, "--remove", output=oled)
    assert not (tmp / "sync").exists() and list((tmp / "etc/passgate.d").iterdir()) == []
    assert sorted(p.name for p in (tmp / "state").iterdir()) == ["provision.json"]
    assert result(tmp)["status"] == "invalid" and expect.split(":")[0] in result(tmp)["error"]
    assert f.exists(), "a refused file stays for the next attempt"
    assert oled.image.getbbox() is not None  # the refusal is on the panel


def test_exit_code_2_and_one_line(site, capsys):
    _, tmp = site
    f = tmp / "boot/passgate-device.toml"
    f.write_text(f.read_text().replace("[device]", "[device]\nname = 1"), encoding="utf-8")
    argv = ["provision", "--device-file", str(f), "--etc", str(tmp / "etc"),
            "--sync-dir", str(tmp / "sync"), "--no-chown"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("passgate: error: ") and "device.name: unknown key" in err[-1]


def test_bundle_signed_by_other_roots_or_expired_is_refused(site):
    fleet, tmp = site
    (tmp / "boot/passgate-bundle.bin").write_bytes(Fleet().bundle(3))
    with pytest.raises(ProvisionError, match="passgate-bundle.bin"):
        run(tmp)
    (tmp / "boot/passgate-bundle.bin").write_bytes(fleet.bundle(3))
    with pytest.raises(ProvisionError, match="expired"):
        run(tmp, now=NOW + 8 * DAY)
    assert not (tmp / "state/bundle").exists()


def test_a_device_of_another_fleet_is_refused(site):
    _, tmp = site
    other = Fleet()
    install_bundle(other.bundle(1), tmp / "state/bundle", NOW, roots=other.roots.set)
    with pytest.raises(ProvisionError, match="other root keys are pinned"):
        run(tmp)


def test_a_different_pass_hash_key_is_never_replaced(site):
    _, tmp = site
    (tmp / "state/journal.key").write_bytes(bytes(32))
    with pytest.raises(ProvisionError, match="different pass-hash key"):
        run(tmp)
    assert (tmp / "state/journal.key").read_bytes() == bytes(32)


def test_a_newer_installed_bundle_is_kept(site, capsys):
    fleet, tmp = site
    install_bundle(fleet.bundle(5), tmp / "state/bundle", NOW, roots=fleet.roots.set)
    assert run(tmp) == 0
    assert "kept: bundle v3: v5 is newer" in capsys.readouterr().out
    assert json.loads((tmp / "state/bundle/installed.json").read_text())["version"] == 5


def test_without_a_bundle_and_sync_section(site):
    fleet, tmp = site
    (tmp / "boot/passgate-bundle.bin").unlink()
    text = device_text(fleet, bundle=False).split("[sync]")
    rest = text[1].split("[trust]", 1)[1]
    (tmp / "boot/passgate-device.toml").write_text(text[0] + "[trust]" + rest, encoding="utf-8")
    assert run(tmp) == 0
    assert (tmp / "state/bundle/roots.toml").exists()
    assert not (tmp / "state/bundle/current.pgb").exists()
    assert (tmp / "sync/device.key").exists() and not (tmp / "sync/enrolment.json").exists()


def test_failure_part_way_keeps_the_file_and_says_so(site, capsys):
    _, tmp = site
    (tmp / "sync").write_text("not a folder")
    assert run(tmp, "--remove") == 1
    assert "provisioning failed" in capsys.readouterr().out
    assert result(tmp)["status"] == "failed" and not result(tmp)["ok"]
    assert (tmp / "boot/passgate-device.toml").exists()
    (tmp / "sync").unlink()
    assert run(tmp, "--remove") == 0  # fixed: the next boot finishes the job
    assert result(tmp)["status"] == "provisioned"


def test_a_device_file_that_cannot_be_deleted_is_made_unreadable(tmp_path, monkeypatch):
    f = tmp_path / "passgate-device.toml"
    f.write_text("secret")

    def read_only(self, *a, **kw):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", read_only)
    assert dispose([f]) == "unreadable"
    assert mode(f) == 0 and f.read_bytes() == b"\0" * 6  # zeroed before the unlink attempt


def test_a_device_file_that_stays_readable_fails_the_unit(site, monkeypatch):
    _, tmp = site
    monkeypatch.setattr("passgate.cli.provision.dispose", lambda paths: "kept: Read-only")
    assert run(tmp, "--remove") == 1
    assert result(tmp)["device_file"] == "kept: Read-only" and result(tmp)["ok"]


def test_check_prints_the_host_name_for_the_image_tool(site, capsys):
    fleet, tmp = site
    (tmp / "boot/passgate-bundle.bin").write_bytes(fleet.bundle(3, issued=int(time.time()) - 60))
    f = tmp / "boot/passgate-device.toml"
    assert main(["provision", "--check", "--json", "--device-file", str(f)]) == 0  # real clock
    out = json.loads(capsys.readouterr().out)
    assert out["hostname"] == "gate-north-1" and out["bundle"]["version"] == 3
    assert TOKEN not in json.dumps(out)
    assert not (tmp / "sync").exists()


def test_the_example_is_valid_once_its_placeholders_are_replaced(tmp_path):
    # Issue 10 point 5: this test used to replace only the zero key, pinning that the
    # example's REPLACE-... token (and example.org collector) were accepted.
    with pytest.raises(ProvisionError, match="placeholder"):
        read_device_file(EXAMPLE)
    f = tmp_path / "d.toml"
    f.write_text(EXAMPLE.read_text().replace("00" * 32, HASH_KEY.hex())
                 .replace("REPLACE-with-the-token-from-passgate-collector", TOKEN)
                 .replace("collector.example.org", "collector.city.test"))
    dev = read_device_file(f)
    assert dev.device_id == "gate-north-1" and dev.roots.threshold == 2 and dev.bundle is None


@pytest.mark.parametrize("value", ['a "quoted" \\ string', "tab\there", "caf\u00e9 \u2603",
                                   "del\x7f", 1.5, -3, True, ["x", 2], "line\nbreak"])
def test_dropin_round_trips(value):
    import tomllib

    tree = {"display": {"k": value}, "antipassback": {"zones": {"gate.1": {"window": "1m"}}}}
    assert tomllib.loads(dropin_toml(tree)) == tree


def test_the_sync_agent_enrols_and_uploads_with_what_was_left(site, capsys):
    pytest.importorskip("waitress", reason="collector extra not installed")
    from sync_support import LiveCollector, collector_rows, fill_journal

    fleet, tmp = site
    now = time.time()
    (tmp / "boot/passgate-bundle.bin").write_bytes(fleet.bundle(1, issued=int(now) - 60))
    with LiveCollector(f"sqlite:///{tmp}/c.db") as collector:
        collector.add_token("gate-north-1", TOKEN)
        f = tmp / "boot/passgate-device.toml"
        f.write_text(device_text(fleet, url=collector.url), encoding="utf-8")
        assert run(tmp, "--remove", now=now) == 0  # offline-style: nothing sent yet
        fill_journal(tmp / "state/journal.sqlite", 20, device_id="gate-north-1")
        args = ["--state", str(tmp / "state"), "--sync-dir", str(tmp / "sync")]
        assert main(["sync", "--once", *args]) == 0, capsys.readouterr()
        assert len(collector_rows(tmp / "c.db", "gate-north-1")) == 20
    assert load_enrolment(tmp / "sync/enrolment.json").enrolled_at is not None


# -- issue 10 point 5: placeholders and malformed values, one line each ------------------------


def test_check_refuses_the_example_as_given_one_line_per_placeholder(capsys):
    assert main(["provision", "--check", "--device-file", str(EXAMPLE)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.removeprefix("passgate: error: ").split(": ")[:2] for line in lines] == [
        [str(EXAMPLE), "sync.collector_url"],
        [str(EXAMPLE), "sync.enrol_token"],
        [str(EXAMPLE), "journal.pass_hash_key"],
    ]
    assert all("placeholder" in line for line in lines)


def test_check_accepts_the_example_filled_in(tmp_path, capsys):
    f = tmp_path / "passgate-device.toml"
    f.write_text(EXAMPLE.read_text().replace("00" * 32, HASH_KEY.hex())
                 .replace("REPLACE-with-the-token-from-passgate-collector", TOKEN)
                 .replace("collector.example.org", "collector.city.test"))
    assert main(["provision", "--check", "--json", "--device-file", str(f)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["collector"] == "https://collector.city.test" and TOKEN not in json.dumps(out)


@pytest.mark.parametrize("change, key", [
    (lambda t: t.replace("https://c.example", "http://c.example"), "sync.collector_url"),
    (lambda t: t.replace("https://c.example", "http://10.0.0.5:8080"), "sync.collector_url"),
    (lambda t: t.replace("https://c.example", "https://c.example:port"), "sync.collector_url"),
    (lambda t: t.replace(TOKEN, "<token>"), "sync.enrol_token"),
    (lambda t: t.replace(TOKEN, "CHANGEME-" + "x" * 20), "sync.enrol_token"),
    (lambda t: t.replace(TIME_KEY, TIME_KEY[:62]), "trust.time_keys"),
    (lambda t: t.replace(TIME_KEY, TIME_KEY + "00"), "trust.time_keys"),
    (lambda t: t.replace("\nkeys = [\"", "\nkeys = [\"00"), "trust.roots"),
    (lambda t: t.replace(HASH_KEY.hex(), HASH_KEY.hex() + "00"), "journal.pass_hash_key"),
], ids=["http", "http-lan", "bad-port", "angle", "changeme", "time-key-31", "time-key-33",
        "root-key-33", "hash-key-33"])
def test_check_refuses_malformed_values_naming_file_and_key(site, capsys, change, key):
    _, tmp = site
    f = tmp / "boot/passgate-device.toml"
    f.write_text(change(f.read_text()), encoding="utf-8")
    assert main(["provision", "--check", "--device-file", str(f)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"passgate: error: {f}: {key}"), lines


def test_several_problems_are_all_reported(site):
    _, tmp = site
    f = tmp / "boot/passgate-device.toml"
    f.write_text(f.read_text().replace(TOKEN, "short").replace('zone = "north"', 'zone = "n o"'))
    with pytest.raises(ProvisionError) as err:
        read_device_file(f)
    assert [line.split(": ")[1] for line in str(err.value).splitlines()] == [
        "device.zone", "sync.enrol_token"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000/c",
                                 "http://[::1]:80"])
def test_plain_http_to_this_machine_is_accepted(site, url):
    fleet, tmp = site
    f = tmp / "boot/passgate-device.toml"
    f.write_text(device_text(fleet, url=url), encoding="utf-8")
    assert read_device_file(f).collector_url == url


# -- issue 10 point 4: damaged keys are repaired by applying the device file again ------------


@pytest.mark.parametrize("damage", [b"", b"\x01" * 5], ids=["empty", "short"])
def test_a_damaged_journal_key_is_replaced_by_the_device_files(site, capsys, damage):
    _, tmp = site
    assert run(tmp) == 0
    key = tmp / "state/journal.key"
    key.write_bytes(damage)  # what a kill between creating and writing it left
    assert run(tmp) == 0
    assert read_hash_key(key) == HASH_KEY and mode(key) == 0o600
    assert "damaged pass-hash key replaced" in capsys.readouterr().out
    assert run(tmp) == 0  # and then nothing more to do
    assert "changed:" not in capsys.readouterr().out


def test_a_damaged_device_key_is_replaced_and_enrolled_again(site, capsys):
    _, tmp = site
    assert run(tmp) == 0
    old = result(tmp)["device_key"]
    (tmp / "sync/device.key").write_bytes(b"")
    assert run(tmp) == 0
    out = capsys.readouterr().out
    assert "damaged device key" in out and "enrolment with https://c.example" in out
    new = result(tmp)["device_key"]
    assert new != old and load_enrolment(tmp / "sync/enrolment.json").fingerprint == new
    assert mode(tmp / "sync/device.key") == 0o600


def test_a_failed_key_write_leaves_no_key_and_a_second_run_completes(site, monkeypatch):
    _, tmp = site
    import passgate.util.atomicfile as atomicfile

    real = atomicfile.os.fsync

    def failing(fd):  # the card fails while the key is being written
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomicfile.os, "fsync", failing)
    assert run(tmp) == 1
    assert not (tmp / "state/journal.key").exists()  # none, never a short one
    assert not [p for p in (tmp / "state").iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(atomicfile.os, "fsync", real)
    assert run(tmp) == 0 and read_hash_key(tmp / "state/journal.key") == HASH_KEY
