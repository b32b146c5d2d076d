"""Batch issuing (``passgate issue --batch``) and the QR images it writes.

The 10,000-pass timing lives in ``bench/batch.py`` (printed, not asserted); here ~50 rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from conftest import ISSUER_NAME
from passgate.cli import main
from passgate.issuing import qr
from passgate.issuing.batch import BatchError, issue_batch
from passgate.issuing.issuer import Issuer
from passgate.passes import keys
from passgate.passes.truststore import TrustStore
from passgate.passes.verify import Verifier
from passgate.util.timefmt import parse_instant

FROM = "2026-01-01T09:00:00Z"
ROWS = [
    ("shopping", "gate-1", "AB12", FROM, ""),
    ("dog_walk", "gate-1;lobby", "", FROM, "30m"),
    ("work", "garage lobby", "ZK-7781", FROM, "8h"),
    ("trash", "gate-2", "", "2026-01-01T09:10:00+03:00", ""),
    ("doctor", "clinic", "Ж-12", "", "1h"),
]
N = 50


def write_rows(path: Path, rows: list[tuple[str, ...]],
               header: str = "purpose,zones,hint,from,duration") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header.split(","))
        w.writerows(rows)
    return path


@pytest.fixture
def rows_csv(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "rows.csv", [ROWS[i % len(ROWS)] for i in range(N)])


def read_out(out: Path) -> list[dict]:
    with open(out / "passes.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_batch_writes_texts_and_pngs(issuer: Issuer, trust: TrustStore, rows_csv: Path,
                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert issue_batch(issuer, rows_csv, out) == N
    issued = read_out(out)
    assert [int(r["row"]) for r in issued] == list(range(1, N + 1))
    assert len({r["pass_id"] for r in issued}) == N  # fresh random ids
    verifier = Verifier(trust)
    for i, r in enumerate(issued):
        purpose, zones, hint, start, _ = ROWS[i % len(ROWS)]
        v = verifier.check(r["text"], int(r["not_before"]) + 60)
        assert v.accepted, (i, v.reason, v.detail)
        assert (v.purpose, v.hint or "", " ".join(v.zones)) == (
            purpose, hint, zones.replace(";", " "))
        assert (v.not_before, v.expires) == (int(r["not_before"]), int(r["expires"]))
        assert v.pass_id.hex() == r["pass_id"]
        if start:
            assert v.not_before == parse_instant(start)
    pngs = sorted((out / "png").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(1, N + 1)]
    for i in (0, 7, N - 1):  # decoding all 50 adds nothing but time
        assert qr.decode_image_file(pngs[i]) == [issued[i]["text"]]


def test_batch_without_pngs(issuer: Issuer, rows_csv: Path, tmp_path: Path) -> None:
    assert issue_batch(issuer, rows_csv, tmp_path / "out", png=False) == N
    assert len(read_out(tmp_path / "out")) == N and not (tmp_path / "out" / "png").exists()


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([ROWS[0], ("haircut", "gate-1", "", FROM, "1h")], None, ":3: unknown purpose 'haircut'"),
        ([ROWS[0], ROWS[1], ("shopping", "", "", FROM, "")], None, ":4: "),
        ([("shopping", "gate 1!", "", FROM, "")], None, ":2: zone"),
        ([("shopping", "gate-1", "x" * 13, FROM, "")], None, ":2: hint"),
        ([("shopping", "gate-1", "", "tomorrow", "")], None, ":2: "),
        ([("shopping", "gate-1")], "purpose,where", "lacks ['zones']"),
        # Valid fields, but together too long for a checkpoint to read: caught before writing.
        ([ROWS[0], ("work", " ".join(f"z{i:02d}" + "x" * 29 for i in range(16)), "Ж" * 12,
                    FROM, "1h")], None, ":3: the pass would be"),
    ],
)
def test_bad_rows_stop_the_batch_before_writing(issuer_key: Ed25519PrivateKey, tmp_path: Path,
                                                rows: list, header: str | None,
                                                message: str) -> None:
    issuer = Issuer(issuer_key, "Я" * 32)  # a long issuer name, for the too-long row
    path = write_rows(tmp_path / "bad.csv", rows, *([header] if header else []))
    with pytest.raises(BatchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        issue_batch(issuer, path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_csv(issuer: Issuer, tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="nope.csv"):
        issue_batch(issuer, tmp_path / "nope.csv", tmp_path / "out")


def test_cli_batch_progress_and_files(issuer_key: Ed25519PrivateKey, rows_csv: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    key_dir = tmp_path / "key"
    key_dir.mkdir()
    keys.write_private(key_dir / "issuer.key", issuer_key)
    (key_dir / "issuer.toml").write_text(f'name = "{ISSUER_NAME}"\n')
    code = main(["issue", "--key", str(key_dir / "issuer.key"), "--batch", str(rows_csv),
                 "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0 and out.startswith(f"batch: {N} issued, 0 refused; ")  # one summary line
    assert out.count("\n") == 1
    assert "signing" in err and "QR codes" in err and f"{N}/{N}" in err  # tqdm bars on stderr
    assert len(read_out(tmp_path / "out")) == N
    assert len(list((tmp_path / "out" / "png").glob("*.png"))) == N
    code = main(["issue", "--key", str(key_dir / "issuer.key"), "--batch",
                 str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("passgate: error: ") and err.count("\n") == 1


# --- QR images -----------------------------------------------------------------------------

def texts(issuer_key: Ed25519PrivateKey) -> list[str]:
    out = []
    for name, zones, hint in [("NNOV", ["gate-1"], None), ("NNOV", ["gate-1"], "AB12"),
                              (ISSUER_NAME, ["gate-1", "lobby"], "ЖК-7781"),
                              ("I" * 32, [f"z{i:02d}" + "x" * 20 for i in range(16)], None)]:
        out.append(Issuer(issuer_key, name).issue("shopping", zones, 1_767_258_000, 3600,
                                                  hint=hint))
    return out


def test_png_symbol_is_the_smallest_version_at_ecc_m(issuer_key: Ed25519PrivateKey) -> None:
    """zxing-cpp draws the PNGs; its symbol has segno's (reference) version at ECC M."""
    for text in texts(issuer_key):
        size = qr.modules(text).shape[0]
        assert size == 17 + 4 * qr.version_of(text), (len(text), size)


def test_png_layout_and_round_trip(issuer_key: Ed25519PrivateKey, tmp_path: Path) -> None:
    for n, text in enumerate(texts(issuer_key)):
        path = tmp_path / f"{n}.png"
        qr.write_png(text, path, scale=4)
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "1"
            pixels = np.asarray(img.convert("L"))
        modules = qr.modules(text).shape[0]
        assert pixels.shape == ((modules + 8) * 4,) * 2
        assert (pixels[:16] == 255).all() and (pixels[:, -16:] == 255).all()  # 4-module zone
        assert pixels[16, 16] == 0  # finder pattern corner
        assert qr.decode_image_file(path) == [text]
