"""Buzzer, green and red LEDs and the door relay, through gpiozero.

What each verdict does to the outputs is data (:class:`Pattern`: per output, a list of
``(seconds from start, value)`` steps), played by a small scheduler with an injected clock:

- **accept**: green LED and relay on for ``relay_hold_s``, a short rising two-note chirp;
- **deny**: red LED for ``deny_s``, two long low beeps; the relay drops at once;
- **fault**: the red LED blinks slowly (0.5 s in every 2 s) until the fault is cleared.

A one-shot pattern (accept, deny) drives only the outputs it names, for as long as their steps
last, then hands them back to the fault blink (if any) or to off. A new one-shot replaces the
previous one, so a deny during an accept's hold de-energises the relay immediately.

:meth:`Signals.accept` and :meth:`~Signals.deny` set the first step and return at once; later
steps run on a background thread. With ``background=False`` nothing runs by itself: tests
move a fake clock and call :meth:`Signals.poll`, so pin states and their timing are exact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from passgate.errors import ArgumentError, ConfigError, HardwareError
from passgate.hardware.signals.illuminator import Illuminator
from passgate.options.declare import check, option
from passgate.options.validators import (
    unique_gpio_pins,
    valid_bool,
    valid_choice,
    valid_float_range,
    valid_gpio_pin,
)

log = logging.getLogger(__name__)

CHANNELS = ("green", "red", "relay", "buzzer")
# checked for clashes in order
PIN_KEYS = ("buzzer_pin", "green_pin", "red_pin", "relay_pin", "illuminator_pin")
_EPS = 1e-6  # float slack: a step due at t is applied when polled at t


@dataclass(frozen=True, slots=True)
class SignalsConfig:
    """Where the outputs are wired and how long they act: the ``[signals]`` config section,
    each key declared once, here.

    Pins are BCM GPIO numbers (``GPIO17`` is physical pin 11), no two the same. ``None`` means
    not fitted (Python only: a config file cannot say it). BCM 2 and 3 are refused: they are
    I2C SDA/SCL, used by the OLED.

    ``buzzer_pin``: the buzzer's signal input (BCM 17, physical pin 11).
    ``buzzer_tonal``: False for an *active* buzzer (it beeps at its own pitch when powered:
    gpiozero ``Buzzer``); True for a *passive* piezo driven with PWM tones (``TonalBuzzer``),
    which can play a distinctive high chirp for accept and a low tone for deny.
    ``buzzer_active_high``: False for buzzer modules that sound when their input is low
    (common on 3-pin "low level trigger" boards); ignored for a tonal buzzer.
    ``green_pin`` / ``red_pin``: LEDs (BCM 27 = pin 13, BCM 22 = pin 15), anode side through a
    resistor, lit when the pin is high.
    ``relay_pin``: the relay board's IN (BCM 23 = pin 16).
    ``relay_active_high``: False (default) because most relay boards switch when IN is pulled
    low; the pin then idles high and the relay is off at start-up and after :meth:`release`.
    ``illuminator_pin``: an optional LED that lights the pass (``illuminator.py``), not
    fitted by default; suggested BCM 24 = pin 18. ``illuminator_light``: ``candidate+dim``
    (lit while a candidate is in view and while the scene is dim) or ``candidate`` (only
    the former); ``illuminator_hold_s``: how long it stays lit after the last candidate;
    ``illuminator_dim_level``: the mean frame level (0-255, LED off) below which the scene
    is dim.
    ``relay_hold_s``: how long the door stays released (relay energised) after an accept.
    ``deny_s``: how long the red LED stays lit after a deny.
    """

    buzzer_pin: int | None = option(
        17, valid_gpio_pin, "BCM pin of the buzzer (2 and 3 are the OLED's I2C)"
    )
    buzzer_tonal: bool = option(
        False,
        valid_bool,
        "true: passive piezo driven with PWM tones; false: on/off active buzzer",
    )
    buzzer_active_high: bool = option(
        True, valid_bool, "false for buzzer modules that sound when their input is low"
    )
    green_pin: int | None = option(27, valid_gpio_pin, "BCM pin of the green LED")
    red_pin: int | None = option(22, valid_gpio_pin, "BCM pin of the red LED")
    relay_pin: int | None = option(23, valid_gpio_pin, "BCM pin of the door relay board's IN")
    relay_active_high: bool = option(
        False,
        valid_bool,
        "false: the relay board switches when IN is pulled low (most boards)",
    )
    illuminator_pin: int | None = option(
        None, valid_gpio_pin, "BCM pin of the optional illuminator LED (absent: not fitted)"
    )
    illuminator_light: str = option(
        "candidate+dim", valid_choice("candidate+dim", "candidate"),
        "when the illuminator is lit: while a candidate is in view, and in dim light (+dim)",
    )
    illuminator_hold_s: float = option(
        1.0, valid_float_range(0.1, 10), "how long the illuminator stays lit after a candidate"
    )
    illuminator_dim_level: float = option(
        60.0, valid_float_range(1, 254), "mean frame level (0-255) below which the scene is dim"
    )
    relay_hold_s: float = option(
        3.0, valid_float_range(0.2, 60), "how long the door stays released after an accept"
    )
    deny_s: float = option(
        2.0, valid_float_range(0.2, 60), "how long the red LED stays lit after a deny"
    )

    def __post_init__(self) -> None:
        check(self, "signals.", self._rules)

    def _rules(self) -> None:
        unique_gpio_pins({name: getattr(self, name) for name in PIN_KEYS})


Steps = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Pattern:
    """A timed effect as data.

    ``tracks`` maps an output (``green``, ``red``, ``relay``, ``buzzer``) to its steps:
    ``((t, value), ...)`` with ``t`` in seconds from the start, ascending. Values are 1/0 for
    LEDs and relay (on = energised, whatever the wiring polarity), and for the buzzer a tone
    in Hz (0 = silent; an on/off buzzer sounds for any tone). A one-shot pattern drives an
    output from its first step until its last step, which ends it. With ``period_s``, the
    tracks repeat every ``period_s`` until the pattern is stopped.
    """

    name: str
    tracks: Mapping[str, Steps] = field(default_factory=dict)
    period_s: float | None = None

    def value(self, channel: str, offset: float) -> float | None:
        """The value of ``channel`` at ``offset`` seconds, or None if this pattern lets go."""
        steps = self.tracks.get(channel)
        if not steps:
            return None
        if self.period_s is not None:
            offset %= self.period_s
        elif not steps[0][0] <= offset + _EPS < steps[-1][0]:
            return None
        current = steps[-1][1] if self.period_s is not None else None  # wraps to the last
        for t, v in steps:
            if t <= offset + _EPS:
                current = v
        return current

    def next_change(self, offset: float) -> float | None:
        """Seconds from the start of the next step after ``offset`` (any channel), or None."""
        times = sorted({t for steps in self.tracks.values() for t, _ in steps})
        if not times:
            return None
        if self.period_s is None:
            later = [t for t in times if t > offset + _EPS]
            return later[0] if later else None
        base = offset - offset % self.period_s
        within = offset % self.period_s
        later = [t for t in times if t > within + _EPS]
        return base + (later[0] if later else self.period_s + times[0])


# Tones for a passive piezo: a rising two-note chirp is recognised as "yes" from across a
# room; deny is low and long. An on/off buzzer keeps only the rhythm: short-short vs long-long.
ACCEPT_TONES: Steps = ((0.0, 1318.5), (0.08, 0.0), (0.12, 1760.0), (0.28, 0.0))
DENY_TONES: Steps = ((0.0, 247.0), (0.35, 0.0), (0.5, 247.0), (0.85, 0.0))


def accept_pattern(cfg: SignalsConfig) -> Pattern:
    hold = cfg.relay_hold_s
    on_for_hold = ((0.0, 1.0), (hold, 0.0))
    return Pattern(
        "accept",
        {"relay": on_for_hold, "green": on_for_hold, "red": ((0.0, 0.0), (hold, 0.0)),
         "buzzer": ACCEPT_TONES},
    )


def deny_pattern(cfg: SignalsConfig) -> Pattern:
    return Pattern("deny", {"red": ((0.0, 1.0), (cfg.deny_s, 0.0)), "buzzer": DENY_TONES})


FAULT_PATTERN = Pattern("fault", {"red": ((0.0, 1.0), (0.5, 0.0))}, period_s=2.0)


def make_pin_factory(kind: str = "auto") -> Any:
    """A gpiozero pin factory, chosen in the entry point and passed to :class:`Signals`.

    ``"mock"``: :class:`~gpiozero.pins.mock.MockFactory` with PWM-capable pins (simulation);
    ``"lgpio"`` (the only one on a Pi 5), ``"rpigpio"`` (Pi 4 and older), ``"auto"``: lgpio,
    then RPi.GPIO. Raises :class:`HardwareError` when none can be loaded.
    """
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    names = {"auto": ("lgpio", "rpigpio"), "lgpio": ("lgpio",), "rpigpio": ("rpigpio",)}
    if kind not in names:
        raise ConfigError(f"unknown pin factory {kind!r}")
    errors = []
    for name in names[kind]:
        try:
            if name == "lgpio":
                from gpiozero.pins.lgpio import LGPIOFactory as factory_cls
            else:
                from gpiozero.pins.rpigpio import RPiGPIOFactory as factory_cls
            return factory_cls()
        except Exception as exc:  # noqa: BLE001 - ImportError, no /dev/gpiochip, not a Pi
            errors.append(f"{name}: {exc}")
    raise HardwareError("no GPIO pin factory: " + "; ".join(errors))


class Signals:
    """The checkpoint's buzzer, LEDs and relay.

    ``cfg``: pins and timings. ``pin_factory``: the gpiozero factory every device is built
    with (never gpiozero's global default); see :func:`make_pin_factory`. ``clock``: a
    monotonic clock in seconds. ``background``: play later steps on a thread (``False``: the
    caller calls :meth:`poll`). ``on_change(channel, value)``: called when an output changes
    (the simulation prints it). ``patterns``: override the accept/deny/fault patterns.

    Raises :class:`~passgate.errors.HardwareError` naming the pin if a device cannot be set up.
    After that, nothing here raises: an output that fails is logged once and skipped.
    """

    def __init__(
        self,
        cfg: SignalsConfig,
        *,
        pin_factory: Any,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        on_change: Callable[[str, float], None] | None = None,
        patterns: Mapping[str, Pattern] | None = None,
    ) -> None:
        if pin_factory is None:
            raise ArgumentError("pin_factory is required: build one with make_pin_factory()")
        self.cfg = cfg
        self._clock = clock
        self._on_change = on_change
        self._patterns = {"accept": accept_pattern(cfg), "deny": deny_pattern(cfg),
                          "fault": FAULT_PATTERN, **(patterns or {})}
        self._lock = threading.Condition()
        self._shot: tuple[Pattern, float] | None = None
        self._fault_since: float | None = None
        self._broken: set[str] = set()
        self._closed = False
        self._devices = self._make_devices(cfg, pin_factory)
        self._applied = dict.fromkeys(self._devices, 0.0)  # devices start off
        self.illuminator = self._make_illuminator(cfg, pin_factory, clock)
        self._light_broken = False
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._run, name="passgate-signals", daemon=True)
            self._thread.start()

    @staticmethod
    def _make_devices(cfg: SignalsConfig, pf: Any) -> dict[str, Any]:
        from gpiozero import LED, Buzzer, OutputDevice, TonalBuzzer
        from gpiozero.tones import Tone

        builders = {
            "green": (cfg.green_pin, lambda p: LED(p, pin_factory=pf)),
            "red": (cfg.red_pin, lambda p: LED(p, pin_factory=pf)),
            # initial_value=False: the relay is off from the moment the pin is claimed.
            "relay": (cfg.relay_pin, lambda p: OutputDevice(
                p, active_high=cfg.relay_active_high, initial_value=False, pin_factory=pf)),
            # A4 two octaves either side: 220-3520 Hz covers both patterns.
            "buzzer": (cfg.buzzer_pin, lambda p: TonalBuzzer(
                p, mid_tone=Tone(880.0), octaves=2, pin_factory=pf) if cfg.buzzer_tonal
                else Buzzer(p, active_high=cfg.buzzer_active_high, pin_factory=pf)),
        }
        devices: dict[str, Any] = {}
        for channel, (pin, build) in builders.items():
            if pin is None:
                continue
            try:
                devices[channel] = build(pin)
            except Exception as exc:
                for dev in reversed(devices.values()):
                    dev.close()
                raise HardwareError(f"signals.{channel}: cannot use GPIO{pin}: {exc}") from exc
        return devices

    def _make_illuminator(self, cfg: SignalsConfig, pf: Any,
                          clock: Callable[[], float]) -> Illuminator | None:
        if cfg.illuminator_pin is None:
            return None
        try:
            return Illuminator(cfg.illuminator_pin, pf, clock=clock,
                               hold_s=cfg.illuminator_hold_s,
                               dim_level=cfg.illuminator_dim_level,
                               dim=cfg.illuminator_light == "candidate+dim",
                               on_change=self._light_changed)
        except HardwareError as exc:
            for dev in reversed(self._devices.values()):
                dev.close()
            raise HardwareError(f"signals.illuminator: {exc}") from exc

    def _light_changed(self, lit: bool) -> None:
        if self._on_change is not None:
            try:
                self._on_change("illuminator", 1.0 if lit else 0.0)
            except Exception:  # a display hook must never break the outputs
                log.exception("signals on_change hook failed")

    def light(self, candidate: bool, frame_mean: float | None = None) -> None:
        """After each frame: a candidate in view or not, and the frame's mean level (for the
        dim-light policy). Drives the illuminator if one is fitted; never raises."""
        if self.illuminator is None or self._closed:
            return
        try:
            self.illuminator.update(candidate, frame_mean)
        except Exception as exc:  # noqa: BLE001 - light helps reading; it must not stop it
            if not self._light_broken:
                log.warning("signals.illuminator: cannot set output: %s", exc)
                self._light_broken = True
            return
        if self._light_broken:
            log.info("signals.illuminator: output works again")
            self._light_broken = False

    # The frame loop's Outputs interface (passgate.checkpoint.parts): outputs built are set up
    # for good, so there is nothing to retry and the relay is never down.
    relay_down = False

    def retry(self, now: float) -> str:
        """Nothing to set up again: always ``""`` (GPIO that may not be there yet is
        :class:`~passgate.hardware.signals.retry.RetryingSignals`)."""
        return ""

    # -- what the daemon calls; each returns at once --------------------------------------

    def accept(self) -> None:
        """Green, door relay for ``relay_hold_s``, success chirp."""
        self.play("accept")

    def deny(self) -> None:
        """Red for ``deny_s``, two long low beeps; releases the relay if it was held."""
        self.play("deny")

    def play(self, name: str) -> None:
        """Start the one-shot pattern ``name``, replacing the one playing."""
        with self._lock:
            if self._closed:
                log.debug("signals closed; %s ignored", name)
                return
            self._shot = (self._patterns[name], self._clock())
            self._apply_locked()

    def fault(self, on: bool) -> None:
        """Start (``True``) or stop (``False``) the slow red blink. Repeated calls are no-ops."""
        with self._lock:
            if self._closed or on == (self._fault_since is not None):
                return
            self._fault_since = self._clock() if on else None
            self._apply_locked()

    def release(self) -> None:
        """Stop every pattern; relay de-energised, LEDs and buzzer off (SIGTERM path)."""
        with self._lock:
            if self._closed:
                return
            self._shot, self._fault_since = None, None
            self._applied.clear()  # write every output, even if we believe it is off
            self._apply_locked()

    def poll(self) -> float | None:
        """Apply the states due now; return the clock time of the next change (or None)."""
        with self._lock:
            return self._apply_locked()

    def close(self) -> None:
        """Release everything, stop the thread, free the pins. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._shot, self._fault_since = None, None
            self._applied.clear()
            self._apply_locked()
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(5.0)
        if self.illuminator is not None:
            try:
                self.illuminator.close()
            except Exception as exc:  # noqa: BLE001 - keep closing the others
                log.warning("signals.illuminator: close failed: %s", exc)
        for channel in reversed(list(self._devices)):
            try:
                self._devices[channel].close()
            except Exception as exc:  # noqa: BLE001 - keep closing the others
                log.warning("signals.%s: close failed: %s", channel, exc)

    def __enter__(self) -> Signals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scheduler ------------------------------------------------------------------------

    def _desired(self, channel: str, now: float) -> float:
        """What ``channel`` should be at ``now``: the one-shot, else the fault blink, else 0."""
        if self._shot is not None:
            pattern, start = self._shot
            v = pattern.value(channel, now - start)
            if v is not None:
                return v
        if self._fault_since is not None:
            v = self._patterns["fault"].value(channel, now - self._fault_since)
            if v is not None:
                return v
        return 0.0

    def _apply_locked(self) -> float | None:
        now = self._clock()
        if self._shot is not None:
            pattern, start = self._shot
            if pattern.next_change(now - start) is None and all(
                pattern.value(ch, now - start) is None for ch in CHANNELS
            ):
                self._shot = None  # finished
        for channel, device in self._devices.items():
            value = self._desired(channel, now)
            if self._applied.get(channel) == value:
                continue
            try:
                self._write(channel, device, value)
            except Exception as exc:  # noqa: BLE001 - one bad output must not stop the others
                if channel not in self._broken:
                    log.warning("signals.%s: cannot set output: %s", channel, exc)
                    self._broken.add(channel)
                continue
            if channel in self._broken:
                log.info("signals.%s: output works again", channel)
                self._broken.discard(channel)
            self._applied[channel] = value
            if self._on_change is not None:
                try:
                    self._on_change(channel, value)
                except Exception:  # a display hook must never break the outputs
                    log.exception("signals on_change hook failed")
        self._lock.notify_all()  # the thread recomputes its wait
        return self._next_change(now)

    def _write(self, channel: str, device: Any, value: float) -> None:
        if channel == "buzzer" and self.cfg.buzzer_tonal:
            if value > 0:
                device.play(float(value))  # a float is Hz to gpiozero (an int is MIDI)
            else:
                device.stop()
        elif value > 0:
            device.on()
        else:
            device.off()

    def _next_change(self, now: float) -> float | None:
        times = []
        if self._shot is not None:
            pattern, start = self._shot
            t = pattern.next_change(now - start)
            if t is not None:
                times.append(start + t)
        if self._fault_since is not None:
            t = self._patterns["fault"].next_change(now - self._fault_since)
            if t is not None:
                times.append(self._fault_since + t)
        return min(times) if times else None

    def _run(self) -> None:
        with self._lock:
            while not self._closed:
                nxt = self._apply_locked()
                timeout = None if nxt is None else max(0.0, nxt - self._clock())
                self._lock.wait(timeout)
