"""The command-line contract for passes: keys new-issuer, issue, verify (names, options, exits).

Exit codes: 0 accepted / success, 1 denied, 2 usage or configuration error with a one-line
message. Most tests call ``passgate.cli.main`` in-process (fast); a few run the installed
``passgate`` console script to check the same contract end to end.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from passgate.cli import main
from passgate.issuing import qr
from passgate.passes import keys

AT = "2026-01-01T10:00:00Z"
FROM = "2026-01-01T09:00:00Z"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``passgate ARGV`` in-process: (exit code, stdout, stderr); argparse exits count too."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("passgate: error: "), err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def issuer_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    code, out, err = run(capsys, "keys", "new-issuer", "--out", str(tmp_path / "iss"),
                         "--name", "Test City")
    assert code == 0, err
    return tmp_path / "iss"


@pytest.fixture
def trust_dir(tmp_path: Path, issuer_dir: Path) -> Path:
    """A checkpoint's trust folder: the issuer's public key and metadata, copied."""
    trust = tmp_path / "trust"
    trust.mkdir()
    for name in ("issuer.pub", "issuer.toml"):
        shutil.copy(issuer_dir / name, trust / name)
    return trust


@pytest.fixture
def pass_text(issuer_dir: Path, capsys: pytest.CaptureFixture) -> str:
    code, out, err = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"),
                         "--purpose", "shopping", "--zone", "gate-1", "--zone", "lobby",
                         "--hint", "AB12", "--from", FROM, "--duration", "2h")
    assert code == 0, err
    return out.strip()


# --- keys new-issuer ---------------------------------------------------------------------

def test_new_issuer_writes_keys_and_prints_kid(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "keys", "new-issuer", "--out", str(tmp_path / "k"),
                         "--name", "Test City")
    assert code == 0 and err == ""
    key_file = tmp_path / "k" / "issuer.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = keys.load_private(key_file)
    assert out == keys.kid_of(keys.raw_public(private)).hex() + "\n"
    assert keys.raw_public(keys.load_public(tmp_path / "k" / "issuer.pub")) == keys.raw_public(
        private)
    assert 'name = "Test City"' in (tmp_path / "k" / "issuer.toml").read_text()


def test_new_issuer_refuses_to_overwrite(issuer_dir: Path, capsys: pytest.CaptureFixture) -> None:
    before = (issuer_dir / "issuer.key").read_bytes()
    code, out, err = run(capsys, "keys", "new-issuer", "--out", str(issuer_dir))
    assert code == 2 and out == ""
    one_line_error(err, "already exists")
    assert (issuer_dir / "issuer.key").read_bytes() == before


def test_new_issuer_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "keys", "new-issuer", "--out", str(tmp_path), "--name", "x" * 33)
    assert code == 2
    one_line_error(err, "--name")


# --- issue -------------------------------------------------------------------------------

def test_issue_prints_one_pass(pass_text: str, trust_dir: Path,
                               capsys: pytest.CaptureFixture) -> None:
    assert pass_text.startswith("PG1:") and "\n" not in pass_text
    code, out, _ = run(capsys, "verify", pass_text, "--trust", str(trust_dir), "--at", AT,
                       "--json")
    v = json.loads(out)
    assert code == 0 and v["remaining_s"] == 3600 and v["purpose"] == "shopping"
    assert v["not_before"] == 1_767_258_000 and v["expires"] == 1_767_258_000 + 7200
    assert v["zones"] == ["gate-1", "lobby"]


def test_issue_default_duration_is_the_purpose_maximum(issuer_dir: Path, trust_dir: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"), "--purpose",
                       "dog_walk", "--zone", "gate-1", "--from", FROM)
    assert code == 0
    code, out, _ = run(capsys, "verify", out.strip(), "--trust", str(trust_dir), "--at", FROM,
                       "--json")
    assert json.loads(out)["remaining_s"] == 3600


def test_issue_png_decodes_to_the_text(issuer_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    png = tmp_path / "pass.png"
    code, out, _ = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"), "--purpose",
                       "trash", "--zone", "gate-1", "--png", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert qr.decode_image_file(png) == [out.strip()]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--purpose", "shopping"], ["--zone"]),
        (["--zone", "gate-1"], ["--purpose"]),
        (["--purpose", "haircut", "--zone", "gate-1"], ["unknown purpose 'haircut'"]),
        (["--purpose", "work", "--zone", "gate-1"], ["--duration is required"]),
        (["--purpose", "shopping", "--zone", "gate 1"], ["zone"]),
        (["--purpose", "shopping", "--zone", "gate-1", "--hint", "x" * 13], ["hint"]),
        (["--purpose", "shopping", "--zone", "gate-1", "--from", "yesterday"], ["ISO-8601"]),
        (["--purpose", "shopping", "--zone", "gate-1", "--duration", "soon"], ["duration"]),
        (["--purpose", "shopping", "--zone", "gate-1", "--duration", "0"], ["positive"]),
        (["--purpose", "shopping", "--zone", "gate-1", "--batch", "x.csv"], ["--out"]),
    ],
)
def test_issue_usage_errors(issuer_dir: Path, capsys: pytest.CaptureFixture, args: list[str],
                            words: list[str]) -> None:
    code, out, err = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"), *args)
    assert code == 2 and out == ""
    one_line_error(err, *words)


def test_issue_bad_key_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "issuer.key").write_text("not a key")
    code, _, err = run(capsys, "issue", "--key", str(tmp_path / "issuer.key"), "--issuer", "X",
                       "--purpose", "shopping", "--zone", "gate-1")
    assert code == 2
    one_line_error(err, "cannot read private key")


@pytest.mark.parametrize(("content", "words"), [
    (b"name = \"\xff\xfe\"\n", ["cannot read issuer name"]),  # not UTF-8: was a traceback
    (b"name = [", ["cannot read issuer name"]),
    (b"zones = []\n", ["no 'name'"]),
])
def test_issue_bad_issuer_toml(issuer_dir: Path, capsys: pytest.CaptureFixture, content: bytes,
                               words: list[str]) -> None:
    (issuer_dir / "issuer.toml").write_bytes(content)
    code, out, err = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"), "--purpose",
                         "shopping", "--zone", "gate-1")
    assert code == 2 and out == ""
    one_line_error(err, *words)


# --- verify ------------------------------------------------------------------------------

def test_verify_accept_human_line(pass_text: str, trust_dir: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "verify", pass_text, "--trust", str(trust_dir), "--zone",
                         "gate-1", "--at", AT)
    assert code == 0 and err == ""
    assert out.startswith("ACCEPT shopping: 1h 00m left (issuer Test City, key ")
    assert out.count("\n") == 1


def test_verify_json_keys(pass_text: str, trust_dir: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "verify", pass_text, "--trust", str(trust_dir), "--json",
                       "--at", AT)
    v = json.loads(out)
    assert code == 0
    assert {"verdict", "reason", "remaining_s", "purpose", "kid"} <= set(v)
    assert (v["verdict"], v["reason"], v["remaining_s"], v["purpose"]) == (
        "accept", "valid", 3600, "shopping")
    pub = keys.load_public(trust_dir / "issuer.pub")
    assert v["kid"] == keys.kid_of(keys.raw_public(pub)).hex()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--zone", "garage", "--at", AT], "wrong_zone"),
        (["--at", "2026-01-01T12:00:00Z"], "expired"),
        (["--at", "2026-01-01T08:00:00Z"], "not_yet_valid"),
    ],
)
def test_verify_denied_exit_1(pass_text: str, trust_dir: Path, capsys: pytest.CaptureFixture,
                              extra: list[str], reason: str) -> None:
    code, out, _ = run(capsys, "verify", pass_text, "--trust", str(trust_dir), *extra)
    assert code == 1 and out.startswith(f"DENY {reason}: ")
    code, out, _ = run(capsys, "verify", pass_text, "--trust", str(trust_dir), "--json", *extra)
    v = json.loads(out)
    assert code == 1 and (v["verdict"], v["reason"], v["remaining_s"]) == ("deny", reason, None)


def test_verify_revoked_from_trust_folder(pass_text: str, trust_dir: Path, issuer_dir: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    from passgate.passes.format import parse_claims, parse_text

    pass_id = parse_claims(parse_text(pass_text).payload).pass_id
    (trust_dir / "revoked.txt").write_text(pass_id.hex() + "\n")
    code, out, _ = run(capsys, "verify", pass_text, "--trust", str(trust_dir), "--at", AT)
    assert code == 1 and out.startswith("DENY revoked")


def test_verify_garbage_is_a_denial_not_an_error(trust_dir: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "verify", "hello", "--trust", str(trust_dir))
    assert code == 1 and out.startswith("DENY malformed") and err == ""


def test_verify_stdin(pass_text: str, trust_dir: Path, capsys: pytest.CaptureFixture,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(pass_text + "\n"))
    code, out, _ = run(capsys, "verify", "-", "--trust", str(trust_dir), "--at", AT)
    assert code == 0 and out.startswith("ACCEPT")


def test_verify_image(pass_text: str, trust_dir: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture) -> None:
    png = tmp_path / "photo.png"
    qr.write_png(pass_text, png)
    code, out, _ = run(capsys, "verify", "--image", str(png), "--trust", str(trust_dir), "--at",
                       AT, "--zone", "lobby")
    assert code == 0 and out.startswith("ACCEPT shopping")


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("no trust", ["--trust DIR is required"]),
        ("missing trust dir", ["does not exist"]),
        ("empty trust dir", ["no issuer public keys"]),
        ("bad --at", ["--at", "ISO-8601"]),
        ("no text", ["give a pass text"]),
        ("text and image", ["not both"]),
        ("image not an image", ["cannot read image"]),
        ("image without a code", ["no QR code found"]),
        ("weak key in trust", ["refused"]),
    ],
)
def test_verify_usage_and_config_errors(case: str, words: list[str], pass_text: str,
                                        trust_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    trust = ["--trust", str(trust_dir)]
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "empty").mkdir()
    argv = {
        "no trust": [pass_text],
        "missing trust dir": [pass_text, "--trust", str(tmp_path / "nope")],
        "empty trust dir": [pass_text, "--trust", str(tmp_path / "empty")],
        "bad --at": [pass_text, *trust, "--at", "noon"],
        "no text": trust,
        "text and image": [pass_text, "--image", str(blank), *trust],
        "image not an image": ["--image", str(tmp_path / "notes.png"), *trust],
        "image without a code": ["--image", str(blank), *trust],
        "weak key in trust": [pass_text, *trust],
    }[case]
    if case == "weak key in trust":
        from test_keys import IDENTITY, pem_of_raw

        (trust_dir / "evil.pub").write_bytes(pem_of_raw(IDENTITY))
    code, out, err = run(capsys, "verify", *argv)
    assert code == 2 and out == ""
    one_line_error(err, *words)


def test_argparse_usage_error_exits_2(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "issue", "--purpose", "shopping")
    assert code == 2 and "--key" in err


# --- the installed console script ----------------------------------------------------------

def passgate_script() -> str:
    script = Path(sys.executable).with_name("passgate")
    if not script.exists():
        pytest.skip(f"console script {script} not installed (pip install -e .)")
    return str(script)


def test_console_script_contract(tmp_path: Path) -> None:
    exe = passgate_script()

    def sh(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *argv], capture_output=True, text=True, timeout=60)

    made = sh("keys", "new-issuer", "--out", str(tmp_path / "iss"), "--name", "Script City")
    assert made.returncode == 0 and len(made.stdout.strip()) == 16
    issued = sh("issue", "--key", str(tmp_path / "iss" / "issuer.key"), "--purpose", "doctor",
                "--zone", "gate-1", "--from", FROM)
    assert issued.returncode == 0
    text = issued.stdout.strip()
    ok = sh("verify", text, "--trust", str(tmp_path / "iss"), "--at", AT, "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["verdict"] == "accept"
    denied = sh("verify", text, "--trust", str(tmp_path / "iss"), "--at", AT, "--zone", "x")
    assert denied.returncode == 1 and denied.stdout.startswith("DENY wrong_zone")
    usage = sh("verify", text)
    assert usage.returncode == 2 and usage.stderr.strip().count("\n") == 0


# --- fail closed, one line: found by the issue 2 audit --------------------------------------

def test_issue_refuses_a_duration_the_purpose_does_not_allow(issuer_dir: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"),
                         "--purpose", "shopping", "--zone", "g", "--duration", "5h")
    assert code == 2 and out == ""
    one_line_error(err, "5h", "shopping", "deny")


def test_issue_uses_the_purpose_table_beside_the_key(issuer_dir: Path, trust_dir: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    table = '[purposes.visitor]\ncode = 40\nlabel = "Visitor"\nmax = "2h"\n'
    (issuer_dir / "purposes.toml").write_text(table)
    (trust_dir / "purposes.toml").write_text(table)
    code, out, err = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"),
                         "--purpose", "visitor", "--zone", "g", "--from", FROM)
    assert code == 0, err
    code, out, _ = run(capsys, "verify", out.strip(), "--trust", str(trust_dir), "--at", AT)
    assert code == 0 and "visitor" in out
    code, _, err = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"),
                       "--purposes", str(tmp := issuer_dir / "none.toml"), "--purpose", "visitor",
                       "--zone", "g")
    assert code == 2 and not tmp.exists()
    one_line_error(err, "none.toml")


def test_os_errors_are_one_line_exit_2(issuer_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "issue", "--key", str(issuer_dir / "issuer.key"), "--purpose",
                         "shopping", "--zone", "g", "--png", str(tmp_path / "no/such/dir/p.png"))
    assert code == 2
    one_line_error(err, "no/such/dir")


def test_batch_never_overwrites_a_record_of_issued_ids(issuer_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("purpose,zones\nshopping,g\n")
    out_dir = tmp_path / "out"
    argv = ("issue", "--key", str(issuer_dir / "issuer.key"), "--batch", str(rows),
            "--out", str(out_dir), "--no-png")
    assert run(capsys, *argv)[0] == 0
    record = (out_dir / "passes.csv").read_bytes()
    code, _, err = run(capsys, *argv)
    assert code == 2 and (out_dir / "passes.csv").read_bytes() == record
    one_line_error(err, "already holds a batch")


@pytest.mark.parametrize("name,content,word", [
    ("issuer.toml", 'name = "Test City"\nvalid_untill = 2020-01-01T00:00:00Z\n', "valid_untill"),
    ("zones.toml", '[zones]\ngate-1 = ["work"]\n', "zones.gate-1"),
    ("purposes.toml", '[purposes.a]\ncode = 1\n[purposes.b]\ncode = 1\n', "purposes.b.code"),
])
def test_trust_folder_typos_fail_closed(pass_text: str, trust_dir: Path, name: str, content: str,
                                        word: str, capsys: pytest.CaptureFixture) -> None:
    (trust_dir / name).write_text(content)
    code, out, err = run(capsys, "verify", pass_text, "--trust", str(trust_dir), "--at", AT)
    assert code == 2 and out == ""
    one_line_error(err, word)


def test_verify_image_too_large_is_a_one_line_error(trust_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # any real picture is now a "bomb"
    Image.new("L", (64, 64), 255).save(tmp_path / "big.png")
    code, _, err = run(capsys, "verify", "--image", str(tmp_path / "big.png"),
                       "--trust", str(trust_dir))
    assert code == 2
    one_line_error(err, "cannot read image")


def test_a_non_finite_time_denies(verifier, issuer) -> None:
    text = issuer.issue("shopping", ["g"], 1_767_261_600, 3600)
    for bad in (float("nan"), float("inf")):
        v = verifier.check(text, bad, "g")
        assert not v.accepted and v.reason.value == "clock_untrusted"
