"""An optional illuminator: an LED (or LED ring) on a GPIO pin that lights the pass.

Why: in dim light the camera's exposure grows to 20-33 ms and a moving hand smears the code;
a short exposure without more light only trades blur for gain noise (measured in
``docs/decoders.md``). With light, a short exposure reads.

Rules kept:

- Lit while a candidate is in view (``update(candidate=True, ...)``) and for ``hold_s`` after
  the last one, so it does not flicker between frames that locate the code and frames that
  do not.
- Lit while the scene is dim: the mean level of a frame taken *with the LED off* is below
  ``dim_level``. Once lit for dimness it stays lit for ``dim_check_s``, then goes off for
  one frame to look again (a lit scene always looks bright, so it cannot be judged lit).
- ``dim=False`` (``signals.illuminator_light = "candidate"``): lit for candidates only, the
  frame's level is not looked at.
- Off at start and after :meth:`close`; never driven without a pin (``pin=None``: not
  fitted, every call is a no-op). The pin factory is injected, as for :class:`Signals`,
  which builds it with the other outputs (``signals.illuminator_pin``) and hears from the
  frame loop's reader after every frame (``checkpoint/wiring.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from passgate.errors import HardwareError


class Illuminator:
    def __init__(self, pin: int | None, pin_factory: Any, *,
                 clock: Callable[[], float] = time.monotonic, hold_s: float = 1.0,
                 dim_level: float = 60.0, dim_check_s: float = 60.0, dim: bool = True,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.pin = pin
        self.dim = dim
        self._on_change = on_change
        self.hold_s, self.dim_level, self.dim_check_s = hold_s, dim_level, dim_check_s
        self._clock = clock
        self._last_candidate = -float("inf")
        self._dim_until = -float("inf")
        self._led: Any = None
        if pin is not None:
            from gpiozero import LED

            try:
                self._led = LED(pin, pin_factory=pin_factory, initial_value=False)
            except Exception as exc:
                raise HardwareError(f"illuminator on GPIO{pin}: {type(exc).__name__}: {exc}") \
                    from exc

    @property
    def lit(self) -> bool:
        return bool(self._led is not None and self._led.value)

    def update(self, candidate: bool, frame_mean: float | None = None) -> None:
        """After each frame: whether it shows a candidate, and its mean level (0-255)."""
        if self._led is None:
            return
        now = self._clock()
        if candidate:
            self._last_candidate = now
        if (self.dim and frame_mean is not None and not self.lit
                and frame_mean < self.dim_level):
            self._dim_until = now + self.dim_check_s  # judged with the LED off only
        want = now - self._last_candidate < self.hold_s or now < self._dim_until
        if want != self.lit:
            self._led.value = want
            if self._on_change is not None:
                self._on_change(want)

    def close(self) -> None:
        led, self._led = self._led, None
        if led is not None:
            was_lit = bool(led.value)
            led.off()
            led.close()
            if was_lit and self._on_change is not None:
                self._on_change(False)
