"""``passgate selftest``: the checks a technician runs on site, one line each.

Every check is a small function that returns a :class:`Result` (name, PASS/WARN/FAIL/SKIP,
a one-line detail with figures, and the figures as data for ``--json``). The functions take
what they look at (frames, an output factory, a pin factory, a clock reading, a state file)
as arguments and build no hardware themselves: ``passgate selftest`` builds the real camera,
pins and OLED in its entry point, and the tests hand in fakes.

This module holds the framework and the hardware checks (camera, decode, display, signals);
:mod:`passgate.selftest.state` holds the checks of the device's state (clock, trust data,
collector, disk, journal).

Language (issue 14): every check takes ``lang`` (a :class:`~passgate.util.i18n.Language`,
English by default) and writes its detail in it; :meth:`Result.line` and :func:`summary`
print the status and the check's name in it too. What stays as it is, in every language: the
check's ``name`` and ``status`` as data (``--skip`` takes the English names, ``--json`` and
the exit code use them), figures, paths, URLs, config keys and commands, and the text of an
error raised by the system or a library, which is quoted as it came.

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
from passgate.passes.purposes import PurposeTable
from passgate.util.i18n import ENGLISH, Language, decimal

log = logging.getLogger(__name__)

CHECKS = ("camera", "decode", "display", "signals", "clock", "bundle", "collector", "disk",
          "journal")
_PASS_RE = re.compile(r"PG[0-9]+:")  # any passgate version: the verifier says if it is known

class Status(enum.Enum):
    PASS = "PASS"
    WARN = "WARN"  # works, but a technician should look (blurry, dark, collector unreachable)
    FAIL = "FAIL"  # broken: the exit code is 1
    SKIP = "SKIP"  # not run (--skip, nothing configured, nothing to look at)

    def word(self, lang: Language = ENGLISH) -> str:
        """The status as the terminal shows it in ``lang`` (``PASS``, Russian ``ОК``)."""
        # The context is written out in each call: Babel extracts literal strings only.
        if self is Status.PASS:
            return lang.pgettext("selftest status, a column of the terminal line", "PASS")
        if self is Status.WARN:
            return lang.pgettext("selftest status, a column of the terminal line", "WARN")
        if self is Status.FAIL:
            return lang.pgettext("selftest status, a column of the terminal line", "FAIL")
        return lang.pgettext("selftest status, a column of the terminal line", "SKIP")


def check_name(name: str, lang: Language = ENGLISH) -> str:
    """A check's name as the terminal shows it in ``lang`` (``camera``, Russian ``камера``);
    the name itself stays the English id (``--skip``, ``--json``). Unknown names as given."""
    shown = {
        "camera": lang.pgettext("selftest check, a column of the terminal line", "camera"),
        "decode": lang.pgettext("selftest check, a column of the terminal line", "decode"),
        "display": lang.pgettext("selftest check, a column of the terminal line", "display"),
        "signals": lang.pgettext("selftest check, a column of the terminal line", "signals"),
        "clock": lang.pgettext("selftest check, a column of the terminal line", "clock"),
        "bundle": lang.pgettext("selftest check, a column of the terminal line", "bundle"),
        "collector": lang.pgettext("selftest check, a column of the terminal line",
                                   "collector"),
        "disk": lang.pgettext("selftest check, a column of the terminal line", "disk"),
        "journal": lang.pgettext("selftest check, a column of the terminal line", "journal"),
    }
    return shown.get(name, name)


@dataclass(frozen=True)
class Result:
    """The outcome of one check. ``figures``: plain numbers and strings (for ``--json``).
    ``detail`` is in the language the check was given."""

    name: str
    status: Status
    detail: str
    figures: Mapping[str, Any] = field(default_factory=dict)

    def line(self, lang: Language = ENGLISH) -> str:
        """``PASS  camera     640x480, 15.0 fps, ...``: always exactly one line. The columns
        are as wide as ``lang``'s longest status word and check name."""
        status_w = max(len(s.word(lang)) for s in Status)
        name_w = max(len(check_name(n, lang)) for n in CHECKS)
        return (f"{self.status.word(lang):<{status_w}}  {check_name(self.name, lang):<{name_w}}  "
                f"{' '.join(self.detail.split())}")

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "figures": dict(self.figures)}


def run_checks(checks: Iterable[tuple[str, Callable[[], Result]]], skip: Iterable[str] = (),
               emit: Callable[[Result], None] | None = None,
               lang: Language = ENGLISH) -> list[Result]:
    """Run each ``(name, check)`` in order; ``emit`` each result as soon as it is known.

    A check that raises is a FAIL naming the exception (and logged with its traceback), so
    one broken check never hides the others.
    """
    _ = lang.gettext
    skipped = set(skip)
    results = []
    for name, check in checks:
        if name in skipped:
            result = Result(name, Status.SKIP, _("skipped (--skip)"))
        else:
            try:
                result = check()
            except Exception as exc:  # noqa: BLE001 - reported as FAIL, with the traceback logged
                log.exception("selftest %s: the check itself failed", name)
                result = Result(name, Status.FAIL, _("check failed: {error}").format(
                    error=f"{type(exc).__name__}: {exc}"))
        results.append(result)
        if emit is not None:
            emit(result)
    return results


def summary(results: Sequence[Result], version: str | None = None,
            lang: Language = ENGLISH) -> str:
    """The closing line: ``selftest: 7 PASS, 1 WARN, 1 FAIL, 0 SKIP: FAIL``, with the release
    that ran the checks after ``selftest:`` when given (a report from the field names it)."""
    counts = Counter(r.status for r in results)
    parts = ", ".join(f"{counts[s]} {s.word(lang)}" for s in Status)
    which = "" if version is None else f"passgate {version}: "
    outcome = (Status.FAIL.word(lang) if counts[Status.FAIL]
               else lang.pgettext("selftest outcome, no check failed", "ok"))
    title = lang.gettext("selftest")
    return f"{title}: {which}{parts}: {outcome}"


def exit_code(results: Sequence[Result]) -> int:
    """1 if any check failed, else 0 (warnings do not fail the self-test)."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def _hint(message: str, lang: Language = ENGLISH) -> str:
    """Add the usual cause of a busy device: the scanner still holds it."""
    low = message.lower()
    if "busy" in low or "in use" in low:
        return lang.gettext("{error} (stop the scanner first: sudo systemctl stop "
                            "passgate-scanner)").format(error=message)
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
                 limits: CameraLimits = CameraLimits(), setting: str = "",
                 lang: Language = ENGLISH) -> Result:
    """Frame size, frame rate, focus and exposure of a capture.

    FAIL when no frame arrived. Focus and exposure are the medians over the second half of
    the frames, after automatic exposure has settled. ``setting`` (e.g. the configured lens
    position) is appended to the line for the technician's reference.
    """
    _ = lang.gettext
    frames = cap.frames
    if not frames:
        why = _hint(cap.error, lang) if cap.error else _("the source delivered no frame")
        return Result("camera", Status.FAIL, _("no frame: {why}").format(why=why),
                      {"frames": 0})
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
        problems.append(lang.ngettext("failed after {n} frame: {error}",
                                      "failed after {n} frames: {error}", len(frames)).format(
            n=len(frames), error=_hint(cap.error, lang)))
    if fps is not None and expected_fps and fps < limits.min_fps_ratio * expected_fps:
        problems.append(_("slow: {fps} fps of {asked} asked").format(
            fps=decimal(fps, ".1f", lang), asked=decimal(expected_fps, "g", lang)))
    if mean < limits.min_brightness or dark > limits.max_dark_pct:
        problems.append(_("too dark (light the spot, or raise camera.exposure_value)"))
    if mean > limits.max_brightness or bright > limits.max_bright_pct:
        problems.append(_("too bright or glare (shade the lens, or lower "
                          "camera.exposure_value)"))
    if focus < limits.min_focus:
        problems.append(_("blurry, or no detail in view (hold the test card at the marked "
                          "spot)"))
    rate = (_("{fps} fps").format(fps=decimal(fps, ".1f", lang)) if fps is not None
            else _("fps n/a"))
    if expected_fps:
        rate += _(" (asked {fps})").format(fps=decimal(expected_fps, "g", lang))
    count = lang.ngettext("{n} frame", "{n} frames", len(frames)).format(n=len(frames))
    detail = _("{size}, {frames}, {rate}, first after {first} s, focus {focus}, brightness "
               "{brightness}, clipped {dark}% dark {bright}% bright").format(
        size=f"{w}x{h}", frames=count, rate=rate, first=decimal(first, ".2f", lang),
        focus=f"{focus:.0f}", brightness=f"{mean:.0f}", dark=decimal(dark, ".1f", lang),
        bright=decimal(bright, ".1f", lang))
    if setting:
        detail += f", {setting}"
    if problems:
        return Result("camera", Status.WARN, f"{detail}: {'; '.join(problems)}", figures)
    return Result("camera", Status.PASS, detail, figures)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


# ---- decode ---------------------------------------------------------------------------------


def check_decode(frames: Sequence[np.ndarray], decoder: Any,
                 judge: Callable[[str], Any] | None = None, min_read_ratio: float = 1 / 3,
                 lang: Language = ENGLISH, purposes: PurposeTable | None = None) -> Result:
    """Decode the captured frames; verify a passgate pass with ``judge(text) -> Verdict``.

    "No code in view" is a PASS (the technician may not have a card at hand). A code read in
    fewer than ``min_read_ratio`` of the frames is a WARN: decoding works, but only just.
    The pass text itself is never printed (it may carry a holder hint); other QR texts are,
    shortened. ``purposes`` names an accepted pass's purpose in ``lang`` (see
    :func:`verdict_words`).
    """
    _ = lang.gettext
    if not frames:
        return Result("decode", Status.SKIP, _("no frames from the camera"))
    seen: Counter[str] = Counter()
    for frame in frames:
        seen.update(set(decoder.decode(frame)))
    figures: dict[str, Any] = {"frames": len(frames), "read_frames": 0, "codes": len(seen),
                               "decoder": getattr(decoder, "name", "?")}
    if not seen:
        return Result("decode", Status.PASS, _("no code in view (hold the test card at the "
                                               "marked spot to test reading)"), figures)
    text, n = seen.most_common(1)[0]
    figures["read_frames"] = n
    rate = lang.ngettext("read in {n} of {total} frame", "read in {n} of {total} frames",
              len(frames)).format(n=n, total=len(frames))
    if _PASS_RE.match(text):
        figures["kind"] = "pass"
        if judge is None:
            what = _("passgate pass {rate}; not verified (no trust data)").format(rate=rate)
        else:
            verdict = judge(text)
            figures.update(verdict=verdict.result.value, reason=verdict.reason.value)
            what = _("passgate pass {rate}: {verdict}").format(
                rate=rate, verdict=verdict_words(verdict, lang, purposes))
    else:
        figures["kind"] = "qr"
        shown = text if len(text) <= 40 else text[:37] + "..."
        what = _("QR code (not a pass) {rate}: {text}").format(rate=rate, text=repr(shown))
    if len(seen) > 1:
        others = len(seen) - 1
        what += " " + lang.ngettext("(+{n} other code)", "(+{n} other codes)", others).format(
            n=others)
    if n < min_read_ratio * len(frames):
        return Result("decode", Status.WARN, _("{what}: read only sometimes; hold the card "
                                               "still at the marked spot, check focus and "
                                               "light").format(what=what), figures)
    return Result("decode", Status.PASS, what, figures)


def verdict_words(verdict: Any, lang: Language = ENGLISH,
                  purposes: PurposeTable | None = None) -> str:
    """``ACCEPT shopping, 2h 13m left, issuer Demo City`` or ``DENY expired 14 min ago``.

    In English the purpose is its id, as the journal and the guides write it; in another
    language it is the purpose's name in that language from ``purposes`` (the bundle's
    table; the built-in one when none is given), as the OLED shows it."""
    _ = lang.gettext
    if verdict.accepted:
        left = remaining_text(verdict, verdict.checked_at, lang)
        purpose = verdict.purpose or "?"
        if lang.code != "en" and verdict.purpose:
            purpose = (purposes or PurposeTable.default()).label(verdict.purpose, lang.code)
        parts = [_("ACCEPT") + " " + purpose]
        if left:
            parts.append(_("{time} left").format(time=left))
        parts.append(_("issuer {issuer}").format(issuer=verdict.issuer))
        return ", ".join(parts)
    line, detail = reason_words(verdict, verdict.checked_at, lang)
    return _("DENY") + f" {line}" + (f", {detail}" if detail else "")


# ---- display --------------------------------------------------------------------------------


def check_display(open_output: Callable[[], Any] | None, name: str = "display", *,
                  hold_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                  monotonic: Callable[[], float] = time.monotonic,
                  lang: Language = ENGLISH, screen_lang: Language | None = None) -> Result:
    """Draw the test pattern (phase 0, then its inverse) and a "selftest" message, the
    message in ``screen_lang`` (the config's ``[display] language``; default ``lang``, the
    line's language).

    ``open_output()`` returns a luma-like device (``display(image)``, ``cleanup()``); it is
    opened here so that a panel that cannot be opened is this check's FAIL. ``None``: no
    display configured (SKIP). The push time per screen is a figure: ~25 ms is a 400 kHz I2C
    bus, ~100 ms a 100 kHz one.
    """
    from passgate.hardware.display import MessageScreen, TestPatternScreen, render

    _ = lang.gettext
    if open_output is None:
        return Result("display", Status.SKIP,
                      _("no display configured (display.driver = none)"))
    try:
        output = open_output()
    except Exception as exc:  # noqa: BLE001 - HardwareError, OSError, luma's own errors
        return Result("display", Status.FAIL, _("cannot open {name}: {error}").format(
            name=name, error=_hint(str(exc), lang)))
    shown = screen_lang or lang
    title = shown.gettext("selftest")
    screens: list[Screen] = [TestPatternScreen(0), TestPatternScreen(1),
                             MessageScreen(title,
                                           shown.gettext("display ok; results on the terminal"))]
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
        return Result("display", Status.FAIL, lang.ngettext(
            "{name}: drawing failed after {n} screen: {error}",
            "{name}: drawing failed after {n} screens: {error}", len(pushes)).format(
            name=name, n=len(pushes), error=exc))
    finally:
        try:
            output.cleanup()
        except Exception as exc:  # noqa: BLE001 - the screens were drawn; say it, go on
            log.warning("display cleanup failed: %s", exc)
    ms = 1000 * max(pushes)
    return Result("display", Status.PASS,
                  _("{name}: test pattern and its inverse, then '{message}' ({ms} ms per "
                    "screen): every pixel should have lit once and gone dark once").format(
                      name=name, message=title, ms=f"{ms:.0f}"),
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
                  relay_s: float = 0.2, lang: Language = ENGLISH) -> Result:
    """Cycle buzzer, green LED, red LED and the door relay (a short pulse) through
    :class:`~passgate.hardware.signals.gpio.Signals`, so the wiring polarity settings apply as in
    service.

    ``cfg`` is a :class:`~passgate.hardware.signals.gpio.SignalsConfig`; ``pin_factory()`` returns
    the
    gpiozero pin factory (called here, so that a missing GPIO library is this check's FAIL).
    FAIL when a pin cannot be claimed or an output could not be switched. Whether the buzzer
    sounded and the lock clicked only a person can tell.
    """
    _ = lang.gettext
    switched: list[tuple[str, float]] = []
    try:
        signals = Signals(cfg, pin_factory=pin_factory(), clock=clock, background=False,
                          on_change=lambda ch, v: switched.append((ch, v)),
                          patterns={"selftest": cycle_pattern(step_s, relay_s)})
    except HardwareError as exc:
        return Result("signals", Status.FAIL, _hint(str(exc), lang))
    with signals:
        signals.play("selftest")
        while (due := signals.poll()) is not None:
            sleep(max(0.0, due - clock()))
    channels = ("buzzer", "green", "red", "relay")
    fitted = [ch for ch in channels if getattr(cfg, f"{ch}_pin") is not None]
    on = {ch for ch, v in switched if v > 0}
    off = {ch for ch, v in switched if v == 0}
    stuck = [ch for ch in fitted if ch not in on or ch not in off]
    figures = {"fitted": fitted, "relay_pulse_s": relay_s}
    called = {"buzzer": _("buzzer"), "green": _("green LED"), "red": _("red LED"),
              "relay": _("relay")}
    if stuck:
        return Result("signals", Status.FAIL, _("could not switch {outputs} (see the log "
                                                "above)").format(
            outputs=", ".join(called[ch] for ch in stuck)), figures)
    said = {"buzzer": _("buzzer beeped"), "green": _("green LED lit"), "red": _("red LED lit"),
            "relay": _("relay pulsed {s} s (the door lock clicks)").format(
                s=decimal(relay_s, "g", lang))}
    missing = [ch for ch in channels if ch not in fitted]
    detail = (_(", then ").join(said[ch] for ch in fitted) if fitted
              else _("no outputs fitted"))
    if missing:
        detail += "; " + _("not fitted: {outputs}").format(
            outputs=", ".join(called[ch] for ch in missing))
    return Result("signals", Status.PASS, _("{detail}: check each by eye and ear").format(
        detail=detail), figures)
