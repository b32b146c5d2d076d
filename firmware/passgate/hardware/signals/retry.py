"""The checkpoint's outputs as the frame loop keeps them: set up when GPIO allows.

A pin factory that cannot be built (no ``/dev/gpiochip``, a missing lgpio) or a pin another
program holds used to end ``passgate run`` with exit code 2; under systemd that is a restart
loop with nothing on the OLED at an unattended door. :class:`RetryingSignals` instead starts
without outputs and says why (:attr:`~RetryingSignals.error`); the frame loop shows a "GPIO
fault" screen, keeps scanning, and calls :meth:`~RetryingSignals.retry` with its monotonic
time on every tick, which tries again with exponential backoff, as for the camera.

While there are no outputs, ``accept``/``deny``/``release`` do nothing and the fault blink is
only remembered: it starts the moment the outputs are set up. Once set up, everything goes
to a plain :class:`~passgate.hardware.signals.gpio.Signals`, which from then on never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from passgate.errors import HardwareError
from passgate.hardware.signals.gpio import Signals, SignalsConfig

log = logging.getLogger(__name__)


class RetryingSignals:
    """:class:`~passgate.hardware.signals.gpio.Signals` that may not exist yet.

    ``pin_factory``: a gpiozero pin factory (the caller's: never closed here), or a function
    without arguments that makes one (called until it works; the factory it made is closed
    by :meth:`close`). ``make_signals(cfg, pin_factory=..., on_change=...)`` builds the
    outputs (tests pass a :class:`Signals` with ``background=False``). ``initial_s``: the
    wait after the first failure, doubled after each further one up to ``max_s``. The first
    attempt is made here; nothing here raises :class:`~passgate.errors.HardwareError` or
    logs a failure: the loop's fault conditions log it once and show it.
    """

    def __init__(
        self,
        cfg: SignalsConfig,
        pin_factory: Any,
        *,
        on_change: Callable[[str, float], None] | None = None,
        make_signals: Callable[..., Signals] = Signals,
        initial_s: float = 0.5,
        max_s: float = 30.0,
    ) -> None:
        self.cfg = cfg
        self._make_factory = pin_factory if callable(pin_factory) else None
        self._factory = None if callable(pin_factory) else pin_factory
        self._on_change = on_change
        self._make_signals = make_signals
        self._signals: Signals | None = None
        self._fault = False
        self._closed = False
        self._backoff, self._max_s = initial_s, max_s
        self._retry_at: float | None = None
        self.error = ""
        self.connect()

    @property
    def signals(self) -> Signals | None:
        """The outputs, or ``None`` while GPIO cannot be set up."""
        return self._signals

    @property
    def relay_down(self) -> bool:
        """A door relay is fitted (``relay_pin``) but cannot be driven now: an accept opens
        nothing. (No relay fitted is a site's choice, not a fault.)"""
        return self._signals is None and self.cfg.relay_pin is not None

    def connect(self) -> str:
        """Set the outputs up if they are not; ``""`` when they are, else why not (also kept
        in :attr:`error`). A pin factory that was built is kept for the next attempt (a busy
        pin is freed by its holder, not by a new factory)."""
        if self._signals is not None or self._closed:
            return self.error
        try:
            if self._factory is None:  # only when a maker was given (see __init__)
                self._factory = self._make_factory()  # type: ignore[misc]
            signals = self._make_signals(
                self.cfg, pin_factory=self._factory, on_change=self._on_change
            )
        except HardwareError as exc:
            self.error = str(exc) or type(exc).__name__
            return self.error
        self._signals, self.error = signals, ""
        if self._fault:
            signals.fault(True)  # a blink asked for while there were no outputs
        return ""

    def retry(self, now: float) -> str:
        """The loop's call on every tick (``now``: its monotonic time): while the outputs
        are not set up, try again once the backoff since the last failure is over (the first
        wait counts from the first call). Returns :attr:`error`."""
        if not self.error:
            return ""
        # None: the failure seen is the attempt made when this was built; wait, then retry.
        first = self._retry_at is None
        if first or (now >= self._retry_at and self.connect()):  # type: ignore[operator]
            self._retry_at = now + self._delay()
        return self.error

    def _delay(self) -> float:
        delay = self._backoff
        self._backoff = min(delay * 2, self._max_s)
        return delay

    # -- what the daemon calls; each returns at once --------------------------------------

    def accept(self) -> None:
        """Green, relay and chirp, if the outputs are set up (else nothing can be done)."""
        if self._signals is not None:
            self._signals.accept()

    def deny(self) -> None:
        """Red and the deny beeps, if the outputs are set up."""
        if self._signals is not None:
            self._signals.deny()

    def light(self, candidate: bool, frame_mean: float | None = None) -> None:
        """The illuminator follows the reader (no outputs yet: nothing to light)."""
        if self._signals is not None:
            self._signals.light(candidate, frame_mean)

    def fault(self, on: bool) -> None:
        """The slow red blink; remembered while there are no outputs."""
        self._fault = on
        if self._signals is not None:
            self._signals.fault(on)

    def release(self) -> None:
        """Everything off, relay de-energised (nothing to do without outputs)."""
        if self._signals is not None:
            self._signals.release()

    def close(self) -> None:
        """Close the outputs, then a pin factory made here. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._signals is not None:
            self._signals.close()
        if self._make_factory is not None and self._factory is not None:
            try:
                self._factory.close()
            except Exception as exc:  # noqa: BLE001 - stopping anyway; worth a line
                log.warning("closing the GPIO pin factory: %s", exc)

    def __enter__(self) -> RetryingSignals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
