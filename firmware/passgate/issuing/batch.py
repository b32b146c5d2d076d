"""Batch issuing: one pass per CSV row, texts in ``passes.csv`` and one PNG per pass.

Input CSV header: ``purpose,zones,hint,from,duration`` (``zones`` separated by spaces or
``;``; ``hint``, ``from`` and ``duration`` may be empty), and optionally ``holder_key``: a
holder key code (``PGK1:...``) binds that row's pass to the holder's phone (spec 1.2), empty
leaves it unbound. Output in ``OUT``:

- ``passes.csv``: row, pass id (hex, for revocation), purpose, zones, not_before, expires,
  text, and ``bound`` (``yes`` for a holder-bound pass, else ``no``)
- ``png/NNNNNN.png``: the QR code of each row (unless ``png=False``)

Rows are validated before anything is signed, so a bad row 9,000 does not leave a half batch.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

from tqdm import tqdm

from passgate.errors import BatchError, PassgateError
from passgate.issuing.issuer import PASS_ID_LEN, Issuer, pass_fields
from passgate.passes.holder import parse_holder_key


def read_rows(path: Path, purposes) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"purpose", "zones"} - set(reader.fieldnames or ())
            if missing:
                raise BatchError(f"{path}: CSV header lacks {sorted(missing)}")
            rows = []
            for n, row in enumerate(reader, 2):
                zones = (row.get("zones") or "").replace(";", " ").split()
                try:
                    fields = pass_fields(purposes, row["purpose"] or "", zones,
                                         row.get("hint") or None, row.get("from") or None,
                                         row.get("duration") or None)
                    code = (row.get("holder_key") or "").strip()
                    fields["holder_key"] = parse_holder_key(code) if code else None
                    rows.append(fields)
                except PassgateError as exc:
                    raise BatchError(f"{path}:{n}: {exc}") from None
    except OSError as exc:
        raise BatchError(f"{path}: {exc.strerror}") from None
    return rows


def issue_batch(issuer: Issuer, csv_path: Path, out: Path, png: bool = True) -> int:
    """Issue one pass per row of ``csv_path`` into ``out``; return the number of passes.

    Every row is validated and signed in memory before any file is written, so a row that
    cannot become a pass (say, too long for a checkpoint to read) stops the batch cleanly.
    Progress bars go to stderr. PNGs take most of the time (~1.5 ms each, see ``qr.py``).
    """
    if (out / "passes.csv").exists() or (out / "png").is_dir() and any((out / "png").iterdir()):
        # passes.csv is the record of issued pass ids (what revocation needs): never overwrite it.
        raise BatchError(f"{out} already holds a batch (passes.csv, png/); choose a new folder")
    rows = read_rows(csv_path, issuer.purposes)
    issued = []
    for n, fields in enumerate(tqdm(rows, desc="signing", unit="pass", file=sys.stderr), 2):
        pass_id = os.urandom(PASS_ID_LEN)
        try:
            issued.append((pass_id, fields, issuer.issue(pass_id=pass_id, **fields)))
        except PassgateError as exc:
            raise BatchError(f"{csv_path}:{n}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "passes.csv", "w", newline="", encoding="ascii") as f:
        w = csv.writer(f)
        w.writerow(["row", "pass_id", "purpose", "zones", "not_before", "expires", "text",
                    "bound"])
        for i, (pass_id, fields, text) in enumerate(issued, 1):
            nbf = fields["not_before"]
            w.writerow([i, pass_id.hex(), fields["purpose"], " ".join(fields["zones"]), nbf,
                        nbf + fields["duration_s"], text,
                        "no" if fields["holder_key"] is None else "yes"])
    if png:
        from passgate.issuing.qr import write_png

        (out / "png").mkdir(exist_ok=True)
        for i, (_, _, text) in enumerate(tqdm(issued, desc="QR codes", unit="png",
                                              file=sys.stderr), 1):
            write_png(text, out / "png" / f"{i:06d}.png", scale=4)
    return len(issued)
