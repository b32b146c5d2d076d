"""QR images: render a pass text to PNG and read QR text back from a picture file.

:func:`make` (segno) is the reference symbol: smallest version at ECC M, never boosted.
PNGs are drawn from zxing-cpp's C++ encoder (same rules: smallest version at the fixed ECC
level, alphanumeric mode, mask chosen by the ISO 18004 penalty), because segno's mask
selection is pure Python: 13 ms per pass against ~1.5 ms, which decides whether a batch of
10,000 passes takes 3 minutes or 20 seconds. Where the installed zxing-cpp has no encoder
(``create_barcode`` arrived in 2.3/3.0), segno draws the PNG instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import segno

ERROR = "m"  # ECC level M: ~15% damage tolerance, the level the pass size is budgeted for


def make(text: str) -> segno.QRCode:
    """Smallest QR for the text at ECC M; ``boost_error=False`` keeps the level fixed."""
    return segno.make_qr(text, error=ERROR, boost_error=False)


def version_of(text: str) -> int:
    version = make(text).version
    if not isinstance(version, int):  # segno names Micro QR versions ("M4"); make_qr never
        raise TypeError(f"not a QR Model 2 version: {version!r}")
    return version


def modules(text: str) -> np.ndarray:
    """The QR symbol for ``text`` at ECC M, no quiet zone: a square bool array, True = dark."""
    import zxingcpp

    if not hasattr(zxingcpp, "create_barcode"):
        return np.array(list(make(text).matrix), dtype=bool)
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ERROR.upper())
    return np.asarray(code.to_image(scale=1, add_quiet_zones=False)) < 128


def write_png(text: str, path: Path, scale: int = 6, border: int = 4) -> None:
    """Write the QR code of ``text`` as a 1-bit PNG: ``scale`` pixels per module and a quiet
    zone of ``border`` modules (4 is the standard's minimum)."""
    from PIL import Image

    light = ~np.pad(modules(text), border)
    pixels = np.repeat(np.repeat(light, scale, axis=0), scale, axis=1)
    Image.fromarray(pixels).save(path, format="PNG")


def decode_image_file(path: Path) -> list[str]:
    """Every QR text found in an image file (zxing-cpp), for ``passgate verify --image``."""
    from PIL import Image

    from passgate.hardware.decode import default_decoder

    with Image.open(path) as img:
        gray = img.convert("L")
        import numpy as np

        frame = np.asarray(gray)
    return default_decoder().decode(frame)
