"""QR decoding behind one small interface: a grayscale frame in, the QR texts found out.

Two backends. zxing-cpp is the default: on the corpus in ``docs/decoders.md`` it reads more
frames and is an order of magnitude faster than zbar, and the empty frame (the idle loop) is
the hot path. pyzbar stays available (``decoder = "zbar"``) and needs the system libzbar0.
Both are imported lazily, inside their adapter.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class Decoder(Protocol):
    name: str

    def decode(self, frame: np.ndarray) -> list[str]:
        """QR texts in an 8-bit grayscale frame (H x W), in no particular order."""
        ...


class ZxingDecoder:
    name = "zxing"

    def __init__(self, try_invert: bool = True) -> None:
        import zxingcpp

        self._zx = zxingcpp
        self._formats = zxingcpp.BarcodeFormat.QRCode
        self._try_invert = try_invert  # dark-mode phone screens show inverted codes

    def decode(self, frame: np.ndarray) -> list[str]:
        found = self._zx.read_barcodes(frame, formats=self._formats, try_invert=self._try_invert)
        return [b.text for b in found if b.valid and b.text]


class ZbarDecoder:
    name = "zbar"

    def __init__(self) -> None:
        from pyzbar import pyzbar

        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]  # QR only: all symbologies cost 2-3x more

    def decode(self, frame: np.ndarray) -> list[str]:
        h, w = frame.shape[:2]
        frame = np.ascontiguousarray(frame)
        found = self._pyzbar.decode((frame.tobytes(), w, h), symbols=self._symbols)
        out = []
        for sym in found:
            try:
                out.append(sym.data.decode("ascii"))
            except UnicodeDecodeError:
                log.debug("zbar returned non-ASCII data; a passgate pass is ASCII")
        return out


DECODERS = {"zxing": ZxingDecoder, "zbar": ZbarDecoder}


def make_decoder(name: str) -> Decoder:
    try:
        return DECODERS[name]()
    except KeyError:
        raise ValueError(f"unknown decoder {name!r}; choose one of {sorted(DECODERS)}") from None


def default_decoder() -> Decoder:
    return ZxingDecoder()
