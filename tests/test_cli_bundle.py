"""The command line for bundles and time: keys new-root, bundle build/inspect/install/status,
verify --bundle, time challenge/token/set/status. Exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import time

import pytest

from passgate.cli import main
from passgate.clock import clock

FROM = "2026-01-01T10:00:00Z"
AT = "2026-01-01T10:30:00Z"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# An install is checked against the checkpoint clock only (no --at): bundles to install are
# issued an hour ago and valid for a week from then.
RECENT = _iso(time.time() - 3600)


@pytest.fixture(autouse=True)
def no_timesyncd(monkeypatch, tmp_path):
    """The machine running the tests may have timesyncd: the CLI must not see its flag."""
    monkeypatch.setattr(clock, "TIMESYNC_FLAG", tmp_path / "no-timesync-flag")


@pytest.fixture
def ops(tmp_path, capsys):
    """An operator's desk: three roots (threshold 2), an issuer, a time key, a policy."""
    w = tmp_path
    for r in "abc":
        assert main(["keys", "new-root", "--out", str(w / "roots" / r)]) == 0
    (w / "rootpubs").mkdir()
    for r in "abc":
        (w / "rootpubs" / f"{r}.pub").write_bytes((w / "roots" / r / "root.pub").read_bytes())
    (w / "rootpubs" / "roots.toml").write_text(_roots_toml(w / "rootpubs", 2))
    assert main(["keys", "new-issuer", "--out", str(w / "issuers"), "--name", "city"]) == 0
    assert main(["keys", "new-time", "--out", str(w / "time")]) == 0
    (w / "policy.toml").write_text(
        '[zones.gate-1]\npurposes = ["work", "shopping"]\n\n'
        '[fleet]\nmax_offline_age = "3d"\nclock_policy = "deny"\n'
    )
    capsys.readouterr()
    return w


def _roots_toml(folder, threshold):
    from passgate.bundle import RootSet

    return RootSet.load(folder, threshold).to_toml()


def build(w, version, *extra, roots="ab", revoked=(), issued=FROM):
    (w / "revoked.txt").write_text("".join(f"{r}\n" for r in revoked))
    args = [
        "bundle",
        "build",
        "--issuers",
        str(w / "issuers"),
        "--revoked",
        str(w / "revoked.txt"),
        "--policy",
        str(w / "policy.toml"),
        "--version",
        str(version),
        "--issued",
        issued,
        "--expires",
        "7d",
        "--out",
        str(w / f"v{version}.pgb"),
        *extra,
    ]
    for r in roots:
        args += ["--root", str(w / "roots" / r / "root.key")]
    assert main(args) == 0
    return w / f"v{version}.pgb"


def issue(w, capsys, purpose="shopping"):
    capsys.readouterr()
    assert (
        main(
            [
                "issue",
                "--key",
                str(w / "issuers" / "issuer.key"),
                "--purpose",
                purpose,
                "--zone",
                "gate-1",
                "--from",
                FROM,
                "--duration",
                "1h",
            ]
        )
        == 0
    )
    return capsys.readouterr().out.strip()


def test_build_and_inspect(ops, capsys):
    path = build(ops, 1, revoked=["00112233445566778899aabb"])
    assert "bundle v1" in capsys.readouterr().out
    assert main(["bundle", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "NOT verified" in out
        and "revoked passes: 1" in out
        and "zone gate-1: shopping, work" in out
    )
    assert main(["bundle", "inspect", str(path), "--roots", str(ops / "rootpubs")]) == 0
    assert "VERIFIED against roots 2 of 3" in capsys.readouterr().out
    # The same folder without its roots.toml needs a threshold; 3 of 3 is not met.
    (ops / "rootpubs" / "roots.toml").unlink()
    assert main(["bundle", "inspect", str(path), "--roots", str(ops / "rootpubs")]) == 2
    assert "give the threshold" in capsys.readouterr().err
    assert (
        main(["bundle", "inspect", str(path), "--roots", str(ops / "rootpubs"), "--threshold", "3"])
        == 1
    )
    assert "refused (under_threshold)" in capsys.readouterr().err
    assert main(["bundle", "inspect", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1 and doc["verified"] is False and len(doc["signed_by"]) == 2
    assert doc["issuer_keys"][0]["name"] == "city" and doc["fleet"]["default"]["clock"] == "deny"


def test_install_refusals_and_status(ops, capsys, tmp_path):
    state = ["--state", str(tmp_path / "dev" / "bundle")]
    v1, v2 = build(ops, 1, issued=RECENT), build(ops, 2, issued=RECENT)
    assert main(["bundle", "install", str(v1), *state]) == 1
    assert "refused (no_roots)" in capsys.readouterr().err
    assert main(["bundle", "install", str(v2), *state, "--roots", str(ops / "rootpubs")]) == 0
    assert "installed bundle v2" in capsys.readouterr().out
    assert main(["bundle", "install", str(v1), *state]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "passgate: refused (rollback): bundle v1 is older than the installed v2"
    assert main(["bundle", "install", str(v2), *state, "--max-size", "100"]) == 1
    assert "refused (too_large)" in capsys.readouterr().err
    assert main(["bundle", "install", str(v2), *state, "--max-size", "lots"]) == 2
    assert main(["bundle", "status", *state]) == 0
    assert "trust data current" in capsys.readouterr().out
    late = ["--state", state[1], "--at", _iso(time.time() + 4 * 86400 + 600)]
    assert main(["bundle", "status", *late]) == 1  # stale: 4 days without a refresh
    assert "STALE: trust data 4 days old" in capsys.readouterr().out


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_install_takes_no_at_so_an_expired_bundle_cannot_be_installed(ops, capsys, tmp_path):
    """The attack of issue 10 point 2: ``install --at 2020-...`` installed an expired bundle
    (exit 0) and raised the installed version. Now --at is a usage error (exit 2, one line),
    the expiry is checked against the checkpoint clock, and the installed bundle stays
    byte for byte what it was."""
    state = tmp_path / "dev" / "bundle"
    dev = ["--state", str(state), "--roots", str(ops / "rootpubs")]
    assert main(["bundle", "install", str(build(ops, 1, issued=RECENT)), *dev]) == 0
    before = _files(state)
    expired = build(ops, 2)  # issued 2026-01-01 for 7 days: long expired
    capsys.readouterr()
    for at in ("2020-01-01T00:00:00Z", "2026-01-01T10:30:00Z", _iso(time.time())):
        assert main(["bundle", "install", str(expired), *dev, "--at", at]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        assert err.startswith("passgate: error: bundle install takes no --at")
        assert _files(state) == before
    assert main(["bundle", "install", str(expired), *dev]) == 1  # the clock's time: expired
    assert "refused (expired)" in capsys.readouterr().err
    assert _files(state) == before
    assert main(["bundle", "status", "--state", str(state), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1


def test_install_problems_of_the_machine_are_one_line_and_exit_2(
    ops, capsys, tmp_path, monkeypatch
):
    import errno

    from passgate.bundle import install as installer

    v1 = build(ops, 1, issued=RECENT)
    opts = ["--roots", str(ops / "rootpubs")]
    (tmp_path / "file").write_text("a regular file where the state folder should be")
    assert main(["bundle", "install", str(v1), "--state", str(tmp_path / "file" / "b"), *opts]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("passgate: error: cannot install into ")
    assert main(["bundle", "status", "--state", str(tmp_path / "file" / "b"), "--at", AT]) == 2
    assert capsys.readouterr().err.count("\n") == 1

    def disk_full(path, chunks, mode=0o644):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(installer, "write_atomic", disk_full)
    state = tmp_path / "dev"
    assert main(["bundle", "install", str(v1), "--state", str(state), *opts]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith("No space left on device")
    assert not (state / "current.pgb").exists()
    monkeypatch.undo()
    assert main(["bundle", "install", str(v1), "--state", str(state)]) == 1  # refusal
    assert "refused (no_roots)" in capsys.readouterr().err


def test_rotation_through_the_command_line(ops, capsys, tmp_path):
    dev = ["--state", str(tmp_path / "bundle")]
    v1 = build(ops, 1, issued=RECENT)
    assert main(["bundle", "install", str(v1), *dev, "--roots", str(ops / "rootpubs")]) == 0
    for r in "de":
        assert main(["keys", "new-root", "--out", str(ops / "roots" / r)]) == 0
    (ops / "newpubs").mkdir()
    for r in "de":
        (ops / "newpubs" / f"{r}.pub").write_bytes((ops / "roots" / r / "root.pub").read_bytes())
    rotate = build(
        ops,
        2,
        "--new-roots",
        str(ops / "newpubs"),
        "--new-threshold",
        "2",
        roots="abde",
        issued=RECENT,
    )
    # inspect shows who of the new set signed, not only the old roots.
    from passgate.bundle import RootSet

    new_kids = [k.hex() for k in RootSet.load(ops / "newpubs", 2).kids]
    capsys.readouterr()
    assert main(["bundle", "inspect", str(rotate), "--roots", str(ops / "rootpubs")]) == 0
    out = capsys.readouterr().out
    assert f"signatures of the new roots: VERIFIED: {', '.join(new_kids)}" in out
    assert main(["bundle", "inspect", str(rotate), "--roots", str(ops / "rootpubs"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["new_roots"]["signed_by"] == new_kids
    assert main(["bundle", "install", str(rotate), *dev]) == 0
    capsys.readouterr()
    assert main(["bundle", "install", str(build(ops, 3, roots="ab", issued=RECENT)), *dev]) == 1
    assert "under_threshold" in capsys.readouterr().err
    assert main(["bundle", "install", str(build(ops, 4, roots="de", issued=RECENT)), *dev]) == 0


def test_verify_with_a_bundle(ops, capsys):
    path = build(ops, 1)
    text = issue(ops, capsys)
    # Without root keys there is no verdict: the bundle's signatures would go unchecked.
    assert main(["verify", text, "--bundle", str(path), "--zone", "gate-1", "--at", AT]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--bundle needs --roots" in err
    dev = ["--bundle", str(path), "--unverified-bundle", "--zone", "gate-1", "--at", AT]
    assert main(["verify", text, *dev]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ACCEPT shopping") and "NOT verified (--unverified-bundle)" in err
    assert main(["verify", text, *dev, "--roots", str(ops / "rootpubs")]) == 2
    assert "not both" in capsys.readouterr().err
    assert (
        main(
            [
                "verify",
                text,
                "--bundle",
                str(path),
                "--roots",
                str(ops / "rootpubs"),
                "--zone",
                "gate-1",
                "--at",
                AT,
                "--json",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert json.loads(out)["verdict"] == "accept"
    assert "verified against the roots given with --roots (2 of 3" in err
    # A revoked pass, through a newer bundle.
    from passgate.passes.format import parse_claims, parse_text

    pass_id = parse_claims(parse_text(text).payload).pass_id
    revoked = build(ops, 2, revoked=[pass_id.hex()])
    capsys.readouterr()
    roots = ["--roots", str(ops / "rootpubs")]
    assert (
        main(["verify", text, "--bundle", str(revoked), *roots, "--zone", "gate-1", "--at", AT])
        == 1
    )
    assert capsys.readouterr().out.startswith("DENY revoked")
    both = ["--bundle", str(path), *roots, "--trust", str(ops / "issuers")]
    assert main(["verify", text, *both, "--at", AT]) == 2
    assert "not both" in capsys.readouterr().err
    # A bundle that fails its root check is an error, not a verdict.
    assert (
        main(
            [
                "verify",
                text,
                "--bundle",
                str(path),
                "--roots",
                str(ops / "roots" / "c" / "root.pub"),
                "--at",
                AT,
            ]
        )
        == 2
    )


def test_time_commands(ops, capsys, tmp_path):
    import socket

    clock_file = str(tmp_path / "clock.floor")
    keys = ["--time-keys", str(ops / "time" / "time.pub"), "--device-id", "gate-1-pi"]
    assert main(["time", "status", "--clock", clock_file]) == 1  # not trusted
    assert "clock floor (system)" in capsys.readouterr().out
    assert main(["time", "challenge", "--clock", clock_file]) == 0
    nonce = capsys.readouterr().out.strip()
    assert len(bytes.fromhex(nonce)) == 16
    token = tmp_path / "token.bin"
    assert (
        main(
            [
                "time",
                "token",
                "--key",
                str(ops / "time" / "time.key"),
                "--device",
                "gate-1-pi",
                "--nonce",
                nonce,
                "--out",
                str(token),
            ]
        )
        == 0
    )
    assert main(["time", "set", "--token", str(token), "--clock", clock_file, *keys]) == 0
    assert "clock trusted (fresh signed time)" in capsys.readouterr().out
    assert main(["time", "status", "--clock", clock_file, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "trusted" and doc["source"] == "token"
    assert abs(doc["floor"] - time.time()) < 60
    # Base64 tokens are accepted too; one for another device is refused (exit 1).
    assert (
        main(["time", "token", "--key", str(ops / "time" / "time.key"), "--device", "other"]) == 0
    )
    (tmp_path / "other.b64").write_text(capsys.readouterr().out)
    assert (
        main(["time", "set", "--token", str(tmp_path / "other.b64"), "--clock", clock_file, *keys])
        == 1
    )
    assert "for device 'other'" in capsys.readouterr().err
    assert socket.gethostname()  # the default device id exists on every machine


def test_time_and_bundle_commands_use_the_configs_clock(ops, capsys, tmp_path, monkeypatch):
    """The site's [clock] settings (here: a DS3231 as rtc1, trusted) and files reach every
    command that reads the clock, not only the scanner."""
    from passgate.clock import sources as clocksources

    rtc = tmp_path / "sys-class-rtc"
    (rtc / "rtc1").mkdir(parents=True)
    (rtc / "rtc1" / "since_epoch").write_text(f"{int(time.time())}\n")
    monkeypatch.setattr(clocksources, "RTC_CLASS", rtc)
    state = tmp_path / "state"
    (state / "time-keys").mkdir(parents=True)
    (state / "time-keys" / "time.pub").write_bytes((ops / "time" / "time.pub").read_bytes())
    cfg = tmp_path / "passgate.toml"
    cfg.write_text(
        f'[checkpoint]\nzone = "gate-1"\ndevice_id = "gate-1-pi"\nstate_dir = "{state}"\n\n'
        '[clock]\ntrust_rtc = true\nrtc_device = "rtc1"\n'
    )
    assert main(["time", "status", "--clock", str(tmp_path / "other.floor")]) == 1  # defaults
    capsys.readouterr()
    assert main(["time", "status", "--config", str(cfg), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["state"], doc["source"]) == ("trusted", "rtc")

    args = ["bundle", "build", "--issuers", str(ops / "issuers"), "--version", "1"]
    args += ["--root", str(ops / "roots" / "a" / "root.key"), "--out", str(tmp_path / "b.pgb")]
    assert main(args) == 0
    install = ["bundle", "install", str(tmp_path / "b.pgb"), "--state", str(tmp_path / "bundle")]
    install += ["--roots", str(ops / "roots" / "a" / "root.pub")]
    assert main([*install, "--config", str(cfg)]) == 0
    assert "time: clock trusted" in capsys.readouterr().out

    # challenge and set: the config's floor file, time keys and device id.
    assert main(["time", "challenge", "--config", str(cfg)]) == 0
    nonce = capsys.readouterr().out.strip()
    assert (state / "clock.floor").is_file()
    token = tmp_path / "token.bin"
    sign = ["time", "token", "--key", str(ops / "time" / "time.key"), "--device", "gate-1-pi"]
    assert main([*sign, "--nonce", nonce, "--out", str(token)]) == 0
    assert main(["time", "set", "--token", str(token), "--config", str(cfg)]) == 0
    assert "clock trusted (fresh signed time)" in capsys.readouterr().out


def test_install_and_status_follow_the_configs_bundle_dir(ops, capsys, tmp_path):
    state = tmp_path / "state"
    cfg = tmp_path / "passgate.toml"
    cfg.write_text(f'[checkpoint]\nzone = "gate-1"\nstate_dir = "{state}"\n')
    v1 = build(ops, 1, issued=RECENT)
    opts = ["--config", str(cfg)]
    assert main(["bundle", "install", str(v1), *opts, "--roots", str(ops / "rootpubs")]) == 0
    assert f"installed bundle v1 in {state / 'bundle'}" in capsys.readouterr().out
    assert (state / "bundle" / "current.pgb").is_file()
    assert main(["bundle", "status", *opts]) == 0
    assert "bundle v1" in capsys.readouterr().out


def test_build_usage_errors(ops, capsys):
    with pytest.raises(SystemExit):
        main(["bundle", "build", "--issuers", str(ops / "issuers")])  # argparse: missing options
    capsys.readouterr()
    args = [
        "bundle",
        "build",
        "--root",
        str(ops / "roots" / "a" / "root.key"),
        "--issuers",
        str(ops / "issuers"),
        "--version",
        "1",
        "--out",
        str(ops / "x.pgb"),
    ]
    assert main([*args, "--expires", "next tuesday"]) == 2
    assert main([*args, "--policy", str(ops / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "missing.toml" in err
    # A version no reader accepts, or one after which nothing could be newer: refused.
    args[args.index("--version") + 1] = "99999999999999999999"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--version: version must be 1..9007199254740991" in err
    args[args.index("--version") + 1] = str(2**53)
    assert main(args) == 2
    assert not (ops / "x.pgb").exists()
