"""``passgate selftest``: the checks a technician runs on site, one line each.

Every check is a small function that returns a :class:`Result` (name, PASS/WARN/FAIL/SKIP,
a one-line detail with figures, and the figures as data for ``--json``). The functions take
what they look at (frames, an output factory, a pin factory, a clock reading, a state file)
as arguments and build no hardware themselves: ``passgate selftest`` builds the real camera,
pins and OLED in its entry point, and the tests hand in fakes.

This module holds the framework and the hardware checks (camera, decode, display, signals);
:mod:`passgate.selftest.state` holds the checks of the device's state (clock, trust data,
collector, disk, journal).

Thresholds are provisional: the camera figures were tuned on synthetic frames
(:mod:`passgate.hardware.camera.synth`), not on a real Camera Module 3; see ``docs/technician.md``.
"""

from __future__ import annotations

import enum
import logging
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from passgate.errors import HardwareError
from passgate.hardware.display.screens import Screen, reason_words, remaining_text
from passgate.hardware.signals.gpio import Pattern, Signals
from passgate.util.i18n import language

log = logging.getLogger(__name__)

CHECKS = ("camera", "decode", "display", "signals", "clock", "bundle", "collector", "disk",
          "journal")
_PASS_RE = re.compile(r"PG[0-9]+:")  # any passgate version: the verifier says if it is known
_STOP_SCANNER = "stop the scanner first: sudo systemctl stop passgate-scanner"


class Status(enum.Enum):
    PASS = "PASS"
    WARN = "WARN"  # works, but a technician should look (blurry, dark, collector unreachable)
    FAIL = "FAIL"  # broken: the exit code is 1
    SKIP = "SKIP"  # not run (--skip, nothing configured, nothing to look at)


@dataclass(frozen=True)
class Result:
    """The outcome of one check. ``figures``: plain numbers and strings (for ``--json``)."""

    name: str
    status: Status
    detail: str
    figures: Mapping[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """``PASS  camera     640x480, 15.0 fps, ...``: always exactly one line."""
        return f"{self.status.value:<4}  {self.name:<9}  {' '.join(self.detail.split())}"

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "figures": dict(self.figures)}


def run_checks(checks: Iterable[tuple[str, Callable[[], Result]]], skip: Iterable[str] = (),
               emit: Callable[[Result], None] | None = None) -> list[Result]:
    """Run each ``(name, check)`` in order; ``emit`` each result as soon as it is known.

    A check that raises is a FAIL naming the exception (and logged with its traceback), so
    one broken check never hides the others.
    """
    skipped = set(skip)
    results = []
    for name, check in checks:
        if name in skipped:
            result = Result(name, Status.SKIP, "skipped (--skip)")
        else:
            try:
                result = check()
            except Exception as exc:  # noqa: BLE001 - reported as FAIL, with the traceback logged
                log.exception("selftest %s: the check itself failed", name)
                result = Result(name, Status.FAIL, f"check failed: {type(exc).__name__}: {exc}")
        results.append(result)
        if emit is not None:
            emit(result)
    return results


def summary(results: Sequence[Result], version: str | None = None) -> str:
    """The closing line: ``selftest: 7 PASS, 1 WARN, 1 FAIL, 0 SKIP: FAIL``, with the release
    that ran the checks after ``selftest:`` when given (a report from the field names it)."""
    counts = Counter(r.status for r in results)
    parts = ", ".join(f"{counts[s]} {s.value}" for s in Status)
    which = "" if version is None else f"passgate {version}: "
    return f"selftest: {which}{parts}: {'FAIL' if counts[Status.FAIL] else 'ok'}"


def exit_code(results: Sequence[Result]) -> int:
    """1 if any check failed, else 0 (warnings do not fail the self-test)."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def _hint(message: str) -> str:
    """Add the usual cause of a busy device: the scanner still holds it."""
    low = message.lower()
    if "busy" in low or "in use" in low:
        return f"{message} ({_STOP_SCANNER})"
    return message


# ---- camera ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """Frames read from a source: each frame's arrival time (monotonic seconds), the time the
    source was asked to open, and the error that ended the capture early (``""``: none)."""

    frames: tuple[np.ndarray, ...]
    times: tuple[float, ...]
    started: float
    error: str = ""


def capture(source: Any, count: int, monotonic: Callable[[], float] = time.monotonic) -> Capture:
    """Open ``source``, read up to ``count`` frames, close it. Never raises a HardwareError."""
    frames: list[np.ndarray] = []
    times: list[float] = []
    started = monotonic()
    try:
        source.open()
        try:
            while len(frames) < count:
                frame = source.read()
                if frame is None:  # a finite source (files) has no more
                    break
                frames.append(frame)
                times.append(monotonic())
        finally:
            source.close()
    except HardwareError as exc:
        return Capture(tuple(frames), tuple(times), started, str(exc))
    return Capture(tuple(frames), tuple(times), started)


@dataclass(frozen=True)
class CameraLimits:
    """Where the camera figures turn to WARN. ``min_focus`` is the variance of the Laplacian
    of the 2x2-binned frame: a sharp test card at 4-5 px per module gives 1,500-5,000 in the
    synthetic frames, a blur of about half a module (where decoding fails) under 150; a plain
    wall gives ~100 however sharp, so the figure means something only with a card in view."""

    min_focus: float = 150.0
    min_brightness: float = 50.0  # mean grey level, 0-255
    max_brightness: float = 200.0
    max_dark_pct: float = 25.0  # pixels at 0-5: crushed shadows
    max_bright_pct: float = 10.0  # pixels at 250-255: glare, a blown-out phone screen
    min_fps_ratio: float = 0.6  # achieved / asked


def focus_measure(frame: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the 2x2-binned frame (higher = sharper).

    Binning first halves sensor noise, which otherwise adds ~20 sigma^2 to the figure
    whatever the focus."""
    h, w = frame.shape
    a = frame[: h // 2 * 2, : w // 2 * 2].astype(np.float32)
    b = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * 0.25
    lap = b[1:-1, :-2] + b[1:-1, 2:] + b[:-2, 1:-1] + b[2:, 1:-1] - 4.0 * b[1:-1, 1:-1]
    return float(lap.var())


def exposure_figures(frame: np.ndarray) -> tuple[float, float, float]:
    """(mean brightness, % of pixels at 0-5, % at 250-255)."""
    n = frame.size
    return (float(frame.mean()), 100.0 * np.count_nonzero(frame <= 5) / n,
            100.0 * np.count_nonzero(frame >= 250) / n)


def check_camera(cap: Capture, expected_fps: float | None = None,
                 limits: CameraLimits = CameraLimits(), setting: str = "") -> Result:
    """Frame size, frame rate, focus and exposure of a capture.

    FAIL when no frame arrived. Focus and exposure are the medians over the second half of
    the frames, after automatic exposure has settled. ``setting`` (e.g. the configured lens
    position) is appended to the line for the technician's reference.
    """
    frames = cap.frames
    if not frames:
        why = _hint(cap.error) if cap.error else "the source delivered no frame"
        return Result("camera", Status.FAIL, f"no frame: {why}", {"frames": 0})
    h, w = frames[0].shape[:2]
    settled = frames[len(frames) // 2:]
    focus = statistics.median(focus_measure(f) for f in settled)
    exposure = [exposure_figures(f) for f in settled]
    mean, dark, bright = (statistics.median(x[i] for x in exposure) for i in range(3))
    fps = None
    if len(frames) >= 2 and cap.times[-1] > cap.times[0]:
        fps = (len(frames) - 1) / (cap.times[-1] - cap.times[0])
    first = cap.times[0] - cap.started
    figures = {"width": w, "height": h, "frames": len(frames), "fps": _r(fps, 1),
               "first_frame_s": _r(first, 2), "focus": _r(focus, 0),
               "brightness": _r(mean, 0), "dark_pct": _r(dark, 1), "bright_pct": _r(bright, 1)}
    problems = []
    if cap.error:
        problems.append(f"failed after {len(frames)} frames: {_hint(cap.error)}")
    if fps is not None and expected_fps and fps < limits.min_fps_ratio * expected_fps:
        problems.append(f"slow: {fps:.1f} fps of {expected_fps:g} asked")
    if mean < limits.min_brightness or dark > limits.max_dark_pct:
        problems.append("too dark (light the spot, or raise camera.exposure_value)")
    if mean > limits.max_brightness or bright > limits.max_bright_pct:
        problems.append("too bright or glare (shade the lens, or lower camera.exposure_value)")
    if focus < limits.min_focus:
        problems.append("blurry, or no detail in view (hold the test card at the marked spot)")
    rate = f"{fps:.1f} fps" if fps is not None else "fps n/a"
    if expected_fps:
        rate += f" (asked {expected_fps:g})"
    detail = (f"{w}x{h}, {len(frames)} frames, {rate}, first after {first:.2f} s, "
              f"focus {focus:.0f}, brightness {mean:.0f}, clipped {dark:.1f}% dark "
              f"{bright:.1f}% bright")
    if setting:
        detail += f", {setting}"
    if problems:
        return Result("camera", Status.WARN, f"{detail}: {'; '.join(problems)}", figures)
    return Result("camera", Status.PASS, detail, figures)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


# ---- decode ---------------------------------------------------------------------------------


def check_decode(frames: Sequence[np.ndarray], decoder: Any,
                 judge: Callable[[str], Any] | None = None, min_read_ratio: float = 1 / 3
                 ) -> Result:
    """Decode the captured frames; verify a passgate pass with ``judge(text) -> Verdict``.

    "No code in view" is a PASS (the technician may not have a card at hand). A code read in
    fewer than ``min_read_ratio`` of the frames is a WARN: decoding works, but only just.
    The pass text itself is never printed (it may carry a holder hint); other QR texts are,
    shortened.
    """
    if not frames:
        return Result("decode", Status.SKIP, "no frames from the camera")
    seen: Counter[str] = Counter()
    for frame in frames:
        seen.update(set(decoder.decode(frame)))
    figures: dict[str, Any] = {"frames": len(frames), "read_frames": 0, "codes": len(seen),
                               "decoder": getattr(decoder, "name", "?")}
    if not seen:
        return Result("decode", Status.PASS, "no code in view (hold the test card at the "
                      "marked spot to test reading)", figures)
    text, n = seen.most_common(1)[0]
    figures["read_frames"] = n
    rate = f"read in {n} of {len(frames)} frames"
    if _PASS_RE.match(text):
        figures["kind"] = "pass"
        if judge is None:
            what = f"passgate pass {rate}; not verified (no trust data)"
        else:
            verdict = judge(text)
            figures.update(verdict=verdict.result.value, reason=verdict.reason.value)
            what = f"passgate pass {rate}: {verdict_words(verdict)}"
    else:
        figures["kind"] = "qr"
        shown = text if len(text) <= 40 else text[:37] + "..."
        what = f"QR code (not a pass) {rate}: {shown!r}"
    if len(seen) > 1:
        what += f" (+{len(seen) - 1} other code{'s' if len(seen) > 2 else ''})"
    if n < min_read_ratio * len(frames):
        return Result("decode", Status.WARN, f"{what}: read only sometimes; hold the card "
                      "still at the marked spot, check focus and light", figures)
    return Result("decode", Status.PASS, what, figures)


def verdict_words(verdict: Any) -> str:
    """``ACCEPT shopping, 2h 13m left, issuer Demo City`` or ``DENY expired 14 min ago``."""
    if verdict.accepted:
        left = remaining_text(verdict, verdict.checked_at)
        parts = [f"ACCEPT {verdict.purpose or '?'}"] + ([f"{left} left"] if left else [])
        return ", ".join(parts + [f"issuer {verdict.issuer}"])
    line, detail = reason_words(verdict, verdict.checked_at)
    return f"DENY {line}" + (f", {detail}" if detail else "")


# ---- display --------------------------------------------------------------------------------


def check_display(open_output: Callable[[], Any] | None, name: str = "display", *,
                  hold_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                  monotonic: Callable[[], float] = time.monotonic,
                  lang: str = "en") -> Result:
    """Draw the test pattern (phase 0, then its inverse) and a "selftest" message, the
    message in ``lang`` (the config's ``[display] language``).

    ``open_output()`` returns a luma-like device (``display(image)``, ``cleanup()``); it is
    opened here so that a panel that cannot be opened is this check's FAIL. ``None``: no
    display configured (SKIP). The push time per screen is a figure: ~25 ms is a 400 kHz I2C
    bus, ~100 ms a 100 kHz one.
    """
    from passgate.hardware.display import MessageScreen, TestPatternScreen, render

    if open_output is None:
        return Result("display", Status.SKIP, "no display configured (display.driver = none)")
    try:
        output = open_output()
    except Exception as exc:  # noqa: BLE001 - HardwareError, OSError, luma's own errors
        return Result("display", Status.FAIL, f"cannot open {name}: {_hint(str(exc))}")
    _ = language(lang).gettext
    screens: list[Screen] = [TestPatternScreen(0), TestPatternScreen(1),
                             MessageScreen(_("selftest"),
                                           _("display ok; results on the terminal"))]
    pushes: list[float] = []
    try:
        for i, screen in enumerate(screens):
            image = render(screen)
            t = monotonic()
            output.display(image)
            pushes.append(monotonic() - t)
            if i < len(screens) - 1:
                sleep(hold_s)
    except Exception as exc:  # noqa: BLE001 - a panel that drops off the bus mid-test
        return Result("display", Status.FAIL,
                      f"{name}: drawing failed after {len(pushes)} screens: {exc}")
    finally:
        try:
            output.cleanup()
        except Exception as exc:  # noqa: BLE001 - the screens were drawn; say it, go on
            log.warning("display cleanup failed: %s", exc)
    ms = 1000 * max(pushes)
    return Result("display", Status.PASS,
                  f"{name}: test pattern and its inverse, then 'selftest' ({ms:.0f} ms per "
                  "screen): every pixel should have lit once and gone dark once",
                  {"screens": len(pushes), "push_ms": round(ms, 1)})


# ---- signals --------------------------------------------------------------------------------

BEEP_HZ = 1318.5  # a tone for a passive piezo; an on/off buzzer just sounds


def cycle_pattern(step_s: float = 0.5, relay_s: float = 0.2) -> Any:
    """Buzzer, green, red, then a short relay pulse, one after the other."""
    beep = min(step_s, 0.2)
    return Pattern("selftest", {
        "buzzer": ((0.0, BEEP_HZ), (beep, 0.0)),
        "green": ((step_s, 1.0), (2 * step_s, 0.0)),
        "red": ((2 * step_s + 0.1, 1.0), (3 * step_s + 0.1, 0.0)),
        "relay": ((3 * step_s + 0.2, 1.0), (3 * step_s + 0.2 + relay_s, 0.0)),
    })


def check_signals(cfg: Any, pin_factory: Callable[[], Any], *,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep, step_s: float = 0.5,
                  relay_s: float = 0.2) -> Result:
    """Cycle buzzer, green LED, red LED and the door relay (a short pulse) through
    :class:`~passgate.hardware.signals.gpio.Signals`, so the wiring polarity settings apply as in
    service.

    ``cfg`` is a :class:`~passgate.hardware.signals.gpio.SignalsConfig`; ``pin_factory()`` returns
    the
    gpiozero pin factory (called here, so that a missing GPIO library is this check's FAIL).
    FAIL when a pin cannot be claimed or an output could not be switched. Whether the buzzer
    sounded and the lock clicked only a person can tell.
    """
    switched: list[tuple[str, float]] = []
    try:
        signals = Signals(cfg, pin_factory=pin_factory(), clock=clock, background=False,
                          on_change=lambda ch, v: switched.append((ch, v)),
                          patterns={"selftest": cycle_pattern(step_s, relay_s)})
    except HardwareError as exc:
        return Result("signals", Status.FAIL, _hint(str(exc)))
    with signals:
        signals.play("selftest")
        while (due := signals.poll()) is not None:
            sleep(max(0.0, due - clock()))
    fitted = [ch for ch in ("buzzer", "green", "red", "relay")
              if getattr(cfg, f"{ch}_pin") is not None]
    on = {ch for ch, v in switched if v > 0}
    off = {ch for ch, v in switched if v == 0}
    stuck = [ch for ch in fitted if ch not in on or ch not in off]
    figures = {"fitted": fitted, "relay_pulse_s": relay_s}
    if stuck:
        return Result("signals", Status.FAIL, f"could not switch {', '.join(stuck)} "
                      "(see the log above)", figures)
    said = {"buzzer": "buzzer beeped", "green": "green LED lit", "red": "red LED lit",
            "relay": f"relay pulsed {relay_s:g} s (the door lock clicks)"}
    missing = [ch for ch in ("buzzer", "green", "red", "relay") if ch not in fitted]
    detail = ", then ".join(said[ch] for ch in fitted) if fitted else "no outputs fitted"
    if missing:
        detail += f"; not fitted: {', '.join(missing)}"
    return Result("signals", Status.PASS, f"{detail}: check each by eye and ear", figures)
