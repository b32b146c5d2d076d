"""QR images: render a pass text to PNG (segno) and read QR text back from a picture file."""

from __future__ import annotations

from pathlib import Path

import segno

ERROR = "m"  # ECC level M: ~15% damage tolerance, the level the pass size is budgeted for


def make(text: str) -> segno.QRCode:
    """Smallest QR for the text at ECC M; ``boost_error=False`` keeps the level fixed."""
    return segno.make_qr(text, error=ERROR, boost_error=False)


def version_of(text: str) -> int:
    return make(text).version


def write_png(text: str, path: Path, scale: int = 6) -> None:
    make(text).save(str(path), kind="png", scale=scale, border=4)


def decode_image_file(path: Path) -> list[str]:
    """Every QR text found in an image file (zxing-cpp), for ``passgate verify --image``."""
    from PIL import Image

    from .decode import default_decoder

    with Image.open(path) as img:
        gray = img.convert("L")
        import numpy as np

        frame = np.asarray(gray)
    return default_decoder().decode(frame)
