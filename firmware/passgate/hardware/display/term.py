"""The OLED drawn in a terminal with Unicode half blocks, for the simulation.

Each character cell shows two pixel rows (``▀``, ``▄``, ``█`` or a space), so the 128x64
panel becomes 128 columns by 32 lines inside a frame. :class:`TerminalView` is an output like
the panel (``display``/``cleanup``), fed by the display worker only when the image changes.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

_HALF = {(0, 0): " ", (1, 0): "\u2580", (0, 1): "\u2584", (1, 1): "\u2588"}


def frame_text(image: Any) -> str:
    """``image`` (mode ``"1"``) as framed half-block text, one string ending in a newline."""
    img = image.convert("1")
    w, h = img.size
    px = img.load()
    rows = ["\u250c" + "\u2500" * w + "\u2510"]
    for y in range(0, h, 2):
        line = []
        for x in range(w):
            top = 1 if px[x, y] else 0
            bottom = 1 if y + 1 < h and px[x, y + 1] else 0
            line.append(_HALF[top, bottom])
        rows.append("\u2502" + "".join(line) + "\u2502")
    rows.append("\u2514" + "\u2500" * w + "\u2518")
    return "\n".join(rows) + "\n"


class TerminalView:
    """Writes each image it is given to ``stream`` as half-block text.

    ``in_place=True`` redraws over the previous frame (cursor up), for a terminal nothing else
    writes to; ``False`` (default) prints frames one after another, so verdict lines printed
    by the daemon in between stay readable. Each frame is one ``write`` call.
    """

    def __init__(self, stream: TextIO, in_place: bool = False) -> None:
        self.stream = stream
        self.in_place = in_place
        self._lines = 0
        self._lock = threading.Lock()

    def display(self, image: Any) -> None:
        text = frame_text(image)
        with self._lock:
            prefix = f"\x1b[{self._lines}A\r" if self.in_place and self._lines else ""
            self.stream.write(prefix + text)
            self.stream.flush()
            self._lines = text.count("\n")

    def cleanup(self) -> None:
        """The stream belongs to the caller; nothing to close."""


def terminal_if_tty(stream: TextIO | None = None, in_place: bool = False) -> TerminalView | None:
    """A :class:`TerminalView` on ``stream`` (default stdout) if it is a terminal, else None."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return TerminalView(stream, in_place) if isatty is not None and isatty() else None
