"""Drawing screens onto a 128x64 1-bit image: a pure function of the screen.

Text uses Terminus Font 6x12 (``data/fonts/terminus-normal.otb``, SIL Open Font Licence 1.1,
from Debian's ``fonts-terminus-otb`` 4.48): a monospaced *bitmap* font covering Latin,
Cyrillic with the Tatar letters (ә ө ү җ ң һ) and the digits, so English, Russian and Tatar
screens share one grid of 21 x 5 cells. It is drawn from its bitmap strike without
anti-aliasing and enlarged by whole multiples with nearest-neighbour scaling for large words,
so the same screen gives the same pixels on every machine and the reference PNGs in
``tests/reference/`` compare exactly. Icons are polygons with integer corners for the same
reason.

Text never overflows: it is cleaned to what the font can draw (:func:`has_glyph`; a
character it lacks is folded to its ASCII base letter, else shown as ``?``), word-wrapped to
a fixed number of lines and cut with ``..`` when still too long (see :func:`wrap`).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

import passgate
from passgate.clock.clock import ClockState
from passgate.errors import HardwareError
from passgate.hardware.display.screens import (
    AcceptedScreen,
    Connectivity,
    DeniedScreen,
    FaultScreen,
    IdleScreen,
    MessageScreen,
    Screen,
    StoppedScreen,
    TestPatternScreen,
)

WIDTH, HEIGHT = 128, 64
CELL_W, CELL_H = 6, 12  # the bitmap font's cell
CAP_TOP = 2  # first row of a capital letter inside the cell (accents such as Ё sit above)
COLS = WIDTH // CELL_W  # 21 characters across at scale 1
FONT_FILE = Path(passgate.__file__).resolve().parent / "data" / "fonts" / "terminus-normal.otb"
FONT_SIZE = 12  # the pixel size of the font's 6x12 bitmap strike


@functools.cache
def font() -> ImageFont.FreeTypeFont:
    """The OLED's font (a cache, not state: the font is immutable once loaded)."""
    try:
        return ImageFont.truetype(str(FONT_FILE), FONT_SIZE)
    except OSError as exc:  # a broken install: say which file
        raise HardwareError(f"OLED font {FONT_FILE}: {exc}") from None


@functools.cache
def _missing_mask() -> bytes:
    # What the font draws for a character it does not have (its .notdef glyph).
    return bytes(font().getmask("\U0010fffd"))


@functools.cache
def has_glyph(ch: str) -> bool:
    """Whether the font has its own glyph for ``ch`` (not the missing-glyph box)."""
    if ch == " ":
        return True
    if ch.isspace() or unicodedata.category(ch).startswith("C"):
        return False
    mask = font().getmask(ch)
    return mask.size[0] > 0 and bytes(mask) != _missing_mask()


def clean(text: str) -> str:
    """``text`` reduced to what the font draws: composed (NFC), controls as spaces, a letter
    the font lacks folded to its ASCII base letter, else ``?``."""
    out = []
    for ch in unicodedata.normalize("NFC", text):
        if ch < " " or "\x7f" <= ch < "\xa0" or ch.isspace():
            out.append(" ")
        elif has_glyph(ch):
            out.append(ch)
        else:
            folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(folded or "?")
    return "".join(out)


def wrap(text: str, width: int, lines: int) -> list[str]:
    """Word-wrap ``text`` to at most ``lines`` lines of ``width`` characters.

    Words longer than a line are split; if the text still does not fit, the last line ends in
    ``..``. Deterministic, so reference images stay stable.
    """
    words = clean(text).split()
    out: list[str] = []
    current = ""
    for word in words:
        while len(word) > width:  # a word that cannot fit on any line is split
            if current:
                out.append(current)
                current = ""
            out.append(word[:width])
            word = word[width:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            out.append(current)
            current = word
    if current:
        out.append(current)
    if len(out) > lines:
        last = out[lines - 1]
        out = out[: lines - 1] + [(last[: width - 2] if len(last) > width - 2 else last) + ".."]
    return out


def fit(text: str, width: int) -> str:
    """One line of at most ``width`` characters, cut with ``..`` when too long."""
    text = " ".join(clean(text).split())
    return text if len(text) <= width else text[: width - 2] + ".."


class Canvas:
    """A 1-bit image with text and icon helpers; ``y`` arguments are the top of capitals."""

    def __init__(self) -> None:
        self.image = Image.new("1", (WIDTH, HEIGHT), 0)
        self.draw = ImageDraw.Draw(self.image)

    def text(self, x: int, y: int, text: str, scale: int = 1, fill: int = 1) -> int:
        """Draw one line at (x, cap top y); returns its width in pixels."""
        text = clean(text)
        if not text:
            return 0
        w = len(text) * CELL_W
        mask = Image.new("1", (w, CELL_H), 0)
        ImageDraw.Draw(mask).text((0, 0), text, font=font(), fill=1)
        if scale != 1:
            mask = mask.resize((w * scale, CELL_H * scale), Image.Resampling.NEAREST)
        self.image.paste(fill, (x, y - CAP_TOP * scale), mask)
        return w * scale

    def centred(self, y: int, text: str, scale: int = 1, left: int = 0, right: int = WIDTH) -> None:
        w = len(clean(text)) * CELL_W * scale
        self.text(left + (right - left - w) // 2, y, text, scale)

    @staticmethod
    def cols(width_px: int, scale: int = 1) -> int:
        return width_px // (CELL_W * scale)


# ---- icons: integer polygons, drawn at an offset -------------------------------------------


def _poly(c: Canvas, x: int, y: int, points, fill: int = 1) -> None:
    c.draw.polygon([(x + px, y + py) for px, py in points], fill=fill)


def tick(c: Canvas, x: int, y: int) -> None:
    """A bold tick in a 40x36 box."""
    _poly(c, x, y, [(0, 18), (7, 11), (14, 18), (32, 0), (39, 7), (14, 33)])


def cross(c: Canvas, x: int, y: int) -> None:
    """A bold X in a 36x36 box."""
    _poly(c, x, y, [(0, 5), (5, 0), (35, 30), (30, 35)])
    _poly(c, x, y, [(30, 0), (35, 5), (5, 35), (0, 30)])


def warning(c: Canvas, x: int, y: int) -> None:
    """A warning triangle with an exclamation mark in a 39x35 box."""
    _poly(c, x, y, [(19, 0), (38, 34), (0, 34)])
    _poly(c, x, y, [(19, 8), (31, 30), (7, 30)], fill=0)
    c.draw.rectangle((x + 18, y + 13, x + 20, y + 23), fill=1)
    c.draw.rectangle((x + 18, y + 26, x + 20, y + 28), fill=1)


def stop_sign(c: Canvas, x: int, y: int) -> None:
    """An octagon with a bar across, 28x28."""
    _poly(c, x, y, [(8, 0), (19, 0), (27, 8), (27, 19), (19, 27), (8, 27), (0, 19), (0, 8)])
    c.draw.rectangle((x + 5, y + 12, x + 22, y + 15), fill=0)


def signal_bars(c: Canvas, x: int, y: int, state: Connectivity) -> int:
    """Connectivity in an 11x9 box at (x, y): four bars when online, flat with a mark if not."""
    for i in range(4):
        bx = x + i * 3
        top = y + 6 - 2 * i if state is Connectivity.ONLINE else y + 8
        c.draw.rectangle((bx, top, bx + 1, y + 8), fill=1)
    if state is Connectivity.OFFLINE:  # a small x above the flat bars
        c.draw.line((x + 3, y, x + 8, y + 5), fill=1)
        c.draw.line((x + 3, y + 5, x + 8, y), fill=1)
    elif state is Connectivity.UNKNOWN:  # a small ? above the flat bars
        c.draw.line((x + 4, y, x + 7, y), fill=1)
        c.draw.line((x + 8, y + 1, x + 8, y + 2), fill=1)
        c.draw.line((x + 6, y + 3, x + 7, y + 3), fill=1)
        c.draw.point((x + 6, y + 4), fill=1)
        c.draw.point((x + 6, y + 6), fill=1)
    return 12


def up_arrow(c: Canvas, x: int, y: int) -> int:
    """A 7x9 upload arrow (pending rows)."""
    _poly(c, x, y, [(3, 0), (6, 3), (6, 4), (4, 4), (4, 8), (2, 8), (2, 4), (0, 4), (0, 3)])
    return 8


# ---- screens --------------------------------------------------------------------------------

# Verdict-like screens share one layout: an icon in the top-left 44x40, a large word or
# number to its right, and two full-width lines of 21 characters at the bottom.
_RIGHT = 46  # left edge of the area beside the icon
_LINE1, _LINE2 = 44, 54  # cap tops of the two bottom lines


def _headline(c: Canvas, word: str, y: int = 8) -> None:
    """A word beside the icon: twice the font size when it fits, else normal size."""
    area = WIDTH - _RIGHT
    scale = 2 if len(clean(word)) <= c.cols(area, 2) else 1
    c.centred(y if scale == 2 else y + 3, fit(word, c.cols(area, scale)), scale, _RIGHT, WIDTH)


def _bottom(c: Canvas, first: str, second: str = "") -> None:
    """Two bottom lines; a long first line wraps into the second when that one is empty."""
    lines = wrap(first, COLS, 1 if second else 2) if first else []
    if second:
        lines.append(fit(second, COLS))
    for y, line in zip((_LINE1, _LINE2), lines, strict=False):
        c.centred(y, line)


def _idle(c: Canvas, s: IdleScreen) -> None:
    x = 1
    if s.clock is ClockState.FLOOR:  # time kept from a stored floor: approximate
        x += c.text(x, 2, "~")
    elif s.clock is ClockState.BACKWARDS:  # clock went back: flag it inverted
        c.draw.rectangle((x - 1, 0, x + CELL_W - 1, 10), fill=1)
        x += c.text(x, 2, "!", fill=0) + 1
    c.text(x, 2, fit(s.time_text, 8))
    right = WIDTH - 1 - 11
    signal_bars(c, right, 1, s.connectivity)
    if s.pending > 0:
        count = str(s.pending) if s.pending < 10000 else "9999+"
        cx = right - 3 - len(count) * CELL_W
        c.text(cx, 2, count)
        up_arrow(c, cx - 8, 1)
    c.draw.line((0, 12, WIDTH - 1, 12), fill=1)
    prompt = [fit(p, c.cols(WIDTH, 2)) for p in s.prompt[:2]]
    ys = (28,) if len(prompt) == 1 else (20, 42)
    for y, line in zip(ys, prompt, strict=False):
        c.centred(y, line, 2)


def _accepted(c: Canvas, s: AcceptedScreen) -> None:
    tick(c, 2, 2)
    if s.remaining:
        _headline(c, s.remaining, 6)
        c.centred(26, fit(s.left_word, c.cols(WIDTH - _RIGHT)), 1, _RIGHT, WIDTH)
    else:
        _headline(c, s.valid_word, 12)
    _bottom(c, s.purpose, s.hint)


def _denied(c: Canvas, s: DeniedScreen) -> None:
    cross(c, 4, 2)
    _headline(c, s.headline, 12)
    _bottom(c, s.reason, s.detail)


def _fault(c: Canvas, s: FaultScreen) -> None:
    warning(c, 2, 2)
    _headline(c, s.headline, 12)
    _bottom(c, s.title, s.detail)


def _stopped(c: Canvas, s: StoppedScreen) -> None:
    stop_sign(c, (WIDTH - 28) // 2, 2)
    word = clean(s.word).strip()
    c.centred(36, fit(word, c.cols(WIDTH, 2)), 2)
    if s.detail:
        c.centred(_LINE2, fit(s.detail, COLS))


def _message(c: Canvas, s: MessageScreen) -> None:
    title = clean(s.title).strip()
    if len(title) <= c.cols(WIDTH, 2):  # large when it fits, else two normal lines
        c.centred(6, title, 2)
    else:
        for i, line in enumerate(wrap(title, COLS, 2)):
            c.centred(3 + 11 * i, line)
    for i, line in enumerate(wrap(s.body, COLS, 3)):
        c.centred(30 + 11 * i, line)


def _test_pattern(c: Canvas, s: TestPatternScreen) -> None:
    # Border (edge pixels), a checkerboard of 1-pixel squares (every pixel's neighbours
    # differ) on the left half and 4-pixel stripes on the right; phase 1 is the inverse.
    px = c.image.load()
    if px is None:  # load() gives pixel access for every in-memory image
        raise HardwareError("no pixel access to the canvas")
    for yy in range(HEIGHT):
        for xx in range(WIDTH):
            if xx in (0, WIDTH - 1) or yy in (0, HEIGHT - 1):
                on = 1
            elif xx < WIDTH // 2:
                on = (xx + yy) % 2
            else:
                on = (yy // 4) % 2
            px[xx, yy] = on ^ (s.phase % 2)


_DRAW: dict[type, Callable[[Canvas, Any], None]] = {
    IdleScreen: _idle,
    AcceptedScreen: _accepted,
    DeniedScreen: _denied,
    FaultScreen: _fault,
    StoppedScreen: _stopped,
    MessageScreen: _message,
    TestPatternScreen: _test_pattern,
}


def render(screen: Screen) -> Image.Image:
    """Draw ``screen`` on a new 128x64 mode-``"1"`` image (white = lit pixel)."""
    c = Canvas()
    try:
        draw = _DRAW[type(screen)]
    except KeyError:
        raise TypeError(f"not a screen: {type(screen).__name__}") from None
    draw(c, screen)
    return c.image
