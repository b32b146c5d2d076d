"""Draw hardware/wiring.png from the pin defaults in passgate's config schema.

The picture and the firmware cannot disagree: the BCM numbers come from
``passgate.config.schema.SignalsSection`` and the I2C addresses from ``DisplaySection``.
Run ``.venv/bin/python hardware/draw_wiring.py`` after changing a default pin.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from passgate.config.schema import DisplaySection, SignalsSection

OUT = Path(__file__).with_name("wiring.png")

# Physical header pin -> BCM GPIO number (40-pin header, all current Pis).
HEADER_BCM = {3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24,
              19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
              36: 16, 37: 26, 38: 20, 40: 21}
BCM_HEADER = {bcm: pin for pin, bcm in HEADER_BCM.items()}
POWER = {1: "3V3", 2: "5V", 4: "5V", 6: "GND", 9: "GND", 14: "GND", 17: "3V3", 20: "GND",
         25: "GND", 27: "ID_SD", 28: "ID_SC", 30: "GND", 34: "GND", 39: "GND"}


def defaults(section) -> dict:
    return {f.name: f.default for f in dataclasses.fields(section)}


def connections() -> list[tuple[str, int, str, str]]:
    """(device, header pin, signal, colour) for every wire, from the firmware defaults."""
    s = defaults(SignalsSection)
    return [
        ("OLED SDA", 3, "GPIO2 SDA1", "#1f77b4"),
        ("OLED SCL", 5, "GPIO3 SCL1", "#17becf"),
        ("OLED VCC", 1, "3V3", "#d62728"),
        ("OLED GND", 9, "GND", "#000000"),
        ("RTC DS3231 SDA/SCL", 3, "shared I2C bus (0x68)", "#1f77b4"),
        ("Buzzer +", BCM_HEADER[s["buzzer_pin"]], f"GPIO{s['buzzer_pin']}", "#9467bd"),
        ("Green LED (+330R)", BCM_HEADER[s["green_pin"]], f"GPIO{s['green_pin']}", "#2ca02c"),
        ("Red LED (+330R)", BCM_HEADER[s["red_pin"]], f"GPIO{s['red_pin']}", "#d62728"),
        ("Relay IN", BCM_HEADER[s["relay_pin"]], f"GPIO{s['relay_pin']}", "#ff7f0e"),
        ("Relay VCC", 2, "5V", "#8c564b"),
        ("Relay/LED/buzzer GND", 6, "GND", "#000000"),
    ]


def draw(path: Path = OUT) -> Path:
    img = Image.new("RGB", (980, 620), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default_imagefont()
    d.text((20, 12), "passgate wiring (BCM numbering; defaults from firmware config)",
           fill="black", font=font)
    # The 40-pin header, two columns: odd pins left, even pins right.
    x0, y0, pitch = 430, 50, 26
    d.rectangle((x0 - 14, y0 - 14, x0 + 64, y0 + 20 * pitch), outline="black", width=2)
    d.text((x0 - 10, y0 + 20 * pitch + 6), "Pi 40-pin header", fill="black", font=font)
    pos = {}
    for pin in range(1, 41):
        col, row = (pin + 1) % 2, (pin - 1) // 2
        cx, cy = x0 + col * 50, y0 + row * pitch
        pos[pin] = (cx, cy)
        label = POWER.get(pin) or (f"GPIO{HEADER_BCM[pin]}" if pin in HEADER_BCM else "")
        d.ellipse((cx - 6, cy - 6, cx + 6, cy + 6), outline="black", fill="#dddddd")
        tx = cx - 110 if col == 0 else cx + 14
        d.text((tx, cy - 5), f"{pin:>2} {label}", fill="#555555", font=font)
    left = [c for c in connections() if pos[c[1]][0] == x0]
    right = [c for c in connections() if pos[c[1]][0] != x0]
    for side, items in (("left", left), ("right", right)):
        for i, (device, pin, signal, colour) in enumerate(items):
            y = 70 + i * 48
            bx = 30 if side == "left" else 760
            d.rectangle((bx, y - 14, bx + 190, y + 18), outline=colour, width=2)
            d.text((bx + 6, y - 10), device, fill="black", font=font)
            d.text((bx + 6, y + 3), signal, fill="#333333", font=font)
            px, py = pos[pin]
            start = (bx + 190, y) if side == "left" else (bx, y)
            d.line((start, (px, py)), fill=colour, width=3)
    disp = defaults(DisplaySection)
    d.text((20, 585), f"OLED I2C address 0x{disp['i2c_address']:02X} on bus {disp['i2c_port']}; "
           "DS3231 RTC 0x68 on the same bus; camera on the CSI ribbon.", fill="black", font=font)
    d.text((20, 600), "Relay board: active-low input by default (relay_active_high = false).",
           fill="black", font=font)
    img.save(path)
    return path


if __name__ == "__main__":
    print(draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
