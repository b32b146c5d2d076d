"""QR decoding behind one small interface: a grayscale frame in, the QR texts found out.

Two backends, both QR only, both imported lazily inside their adapter:

* ``zxing`` (zxing-cpp), the default: on the corpus in ``docs/decoders.md`` it reads the most
  frames and is by far the fastest, on empty frames too (the idle loop is the hot path), and
  with ``try_invert`` it also reads dark-mode phone screens.
* ``zbar`` (pyzbar, needs the system library libzbar0): the alternative. ``try_invert`` adds a
  second scan of the inverted frame when the first finds nothing (zbar has no such option of
  its own through pyzbar); that doubles its cost on empty frames.

Contract: ``decode(frame)`` takes a 2-D ``uint8`` array (H x W, any strides, including a
non-contiguous view) and returns a list of texts, empty when nothing is found. It does not
raise for any such frame, whatever its content or size: a backend error is logged (once per
decoder at WARNING, then at DEBUG) and counts as nothing found. A frame that is not a 2-D
``uint8`` array is a programming error and raises ``ValueError``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

import numpy as np

from passgate.errors import ArgumentError, ConfigError

log = logging.getLogger(__name__)

MIN_SIDE = 21  # a version-1 QR symbol is 21 modules: nothing smaller can hold a code
DEFAULT = "zxing"
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels


class Decoder(Protocol):
    name: str

    def decode(self, frame: np.ndarray) -> list[str]:
        """QR texts in an 8-bit grayscale frame (H x W), in no particular order."""
        ...


def _check(frame: np.ndarray) -> bool:
    """True if the frame is worth decoding; ValueError if it is not a grayscale frame at all."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 2:
        raise ArgumentError(
            f"decoders take a 2-D uint8 grayscale frame, got "
            f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
    return min(frame.shape) >= MIN_SIDE


class _ErrorLog:
    """Backend errors: the first one as a warning, the rest at debug (never per frame)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def __call__(self, exc: Exception) -> list[str]:
        self.count += 1
        level = logging.WARNING if self.count == 1 else logging.DEBUG
        log.log(level, "%s decoder failed on a frame (treated as no code; further errors at "
                "debug level): %s: %s", self.name, type(exc).__name__, exc)
        return []


class ZxingDecoder:
    """zxing-cpp, QR only. ``try_invert`` also reads light-on-dark codes (dark-mode screens)."""

    name = "zxing"

    def __init__(self, try_invert: bool = True) -> None:
        import zxingcpp

        self._zx = zxingcpp
        fmt = zxingcpp.BarcodeFormat
        # zxing-cpp 3 widened QRCode to the family (Micro QR, rMQR too): in the corpus a
        # patch of an inverted pass then read as a spurious Micro QR "376261". Ask for
        # Model 2 where the name exists (3.x), and keep only QR Model 2 results either way.
        # Any: a BarcodeFormat, whose name depends on the zxing-cpp version installed.
        self._formats: Any = getattr(fmt, "QRCodeModel2", fmt.QRCode)
        self._qr = fmt.QRCode
        self.try_invert = try_invert
        self._error = _ErrorLog(self.name)

    def decode(self, frame: np.ndarray) -> list[str]:
        if not _check(frame):
            return []
        try:
            found = self._zx.read_barcodes(frame, formats=self._formats, try_invert=self.try_invert)
        except Exception as exc:  # any backend failure counts as "no code", logged
            return self._error(exc)
        return [b.text for b in found if b.valid and b.text and b.format == self._qr]

    def scan(self, frame: np.ndarray) -> tuple[list[str], list[Box]]:
        """The texts, and the boxes of QR symbols located but not decoded (candidates).

        One zxing-cpp call with ``return_errors``: a symbol whose finder patterns were found
        but whose modules did not decode (too few pixels per module, blur) comes back with
        its position and an error instead of being dropped. A candidate costs nothing extra
        to find; :mod:`passgate.hardware.reader` decodes a full-resolution crop around it.
        Boxes are ``(x0, y0, x1, y1)`` in frame pixels, clipped to the frame.
        """
        texts, boxes, _ = self.locate(frame)
        return texts, boxes

    def locate(self, frame: np.ndarray) -> tuple[list[str], list[Box], list[float]]:
        """:meth:`scan`, and each candidate's side in pixels (the same call, the same cost).

        The side is the symbol's own (its finder patterns' outer corners, no quiet zone): the
        longer of the two mean opposite-side lengths of the located quadrilateral, so a
        rotated symbol is not taken for a larger one (its box is up to 1.4x wider) and a
        tilted one is measured along its less foreshortened direction.
        """
        if not _check(frame):
            return [], [], []
        try:
            found = self._zx.read_barcodes(frame, formats=self._formats,
                                           try_invert=self.try_invert, return_errors=True)
        except Exception as exc:  # any backend failure counts as "no code", logged
            return self._error(exc), [], []
        h, w = frame.shape
        texts: list[str] = []
        boxes: list[Box] = []
        sides: list[float] = []
        for b in found:
            if b.valid and b.text and b.format == self._qr:
                texts.append(b.text)
            elif not b.valid:
                # any QR-family symbol that failed: a pass that is not read *yet*
                p = b.position
                corners = [(p.top_left.x, p.top_left.y), (p.top_right.x, p.top_right.y),
                           (p.bottom_right.x, p.bottom_right.y),
                           (p.bottom_left.x, p.bottom_left.y)]
                xs, ys = [c[0] for c in corners], [c[1] for c in corners]
                boxes.append((max(min(xs), 0), max(min(ys), 0), min(max(xs), w), min(max(ys), h)))
                edge = [math.dist(corners[k], corners[(k + 1) % 4]) for k in range(4)]
                sides.append(max(edge[0] + edge[2], edge[1] + edge[3]) / 2)
        return (texts, [], []) if texts else (texts, boxes, sides)


class ZbarDecoder:
    """pyzbar / libzbar, QR only (all symbologies cost 2-3x more for nothing).

    ``try_invert`` re-scans the inverted frame when the first scan finds nothing.
    """

    name = "zbar"

    def __init__(self, try_invert: bool = True) -> None:
        from pyzbar import pyzbar

        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]
        self.try_invert = try_invert
        self._error = _ErrorLog(self.name)

    def decode(self, frame: np.ndarray) -> list[str]:
        if not _check(frame):
            return []
        try:
            out = self._scan(frame)
            if not out and self.try_invert:
                out = self._scan(255 - frame)
        except Exception as exc:  # any backend failure counts as "no code", logged
            return self._error(exc)
        return out

    def _scan(self, frame: np.ndarray) -> list[str]:
        h, w = frame.shape
        # pyzbar takes (bytes, width, height); tobytes() also makes strided views contiguous
        found = self._pyzbar.decode((frame.tobytes(), w, h), symbols=self._symbols)
        out = []
        for sym in found:
            try:
                out.append(sym.data.decode("ascii"))
            except UnicodeDecodeError:
                log.debug("zbar returned non-ASCII data; a passgate pass is ASCII")
        return out


DECODERS: dict[str, type[ZxingDecoder] | type[ZbarDecoder]] = {
    "zxing": ZxingDecoder, "zbar": ZbarDecoder
}


def make_decoder(name: str = DEFAULT, try_invert: bool = True) -> Decoder:
    """The decoder called ``name`` (``"zxing"`` or ``"zbar"``); ValueError for another name.

    ``try_invert`` (default on) reads inverted codes too; see the module docstring for what
    it costs each backend.
    """
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ConfigError(f"unknown decoder {name!r}; choose one of {sorted(DECODERS)}") from None
    return cls(try_invert=try_invert)


def default_decoder() -> Decoder:
    """The measured default (``docs/decoders.md``): zxing-cpp with inversion."""
    return make_decoder(DEFAULT)
