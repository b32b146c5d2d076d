"""RetryingSignals: outputs that may not be set up yet (GPIO missing, a pin busy), retried.

Pins are gpiozero MockFactory pins; the retry times are the caller's monotonic seconds, so
the backoff is checked exactly. The frame loop's side (the "GPIO fault" screen, the
``no_relay`` flag) is in test_loop_faults.py, the whole ``run_checkpoint`` in test_simulate.py.
"""

from __future__ import annotations

import functools

import gpiozero
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from passgate.errors import HardwareError
from passgate.hardware.signals.gpio import Signals, SignalsConfig
from passgate.hardware.signals.retry import RetryingSignals

CFG = SignalsConfig()  # buzzer 17, green 27, red 22, relay 23 (active low)
quiet = functools.partial(Signals, background=False)  # no thread: states applied on call


@pytest.fixture
def factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()
    f.close()


class Maker:
    """A pin factory maker that fails ``failures`` times, then hands out ``factory``."""

    def __init__(self, factory, failures: int) -> None:
        self.factory, self.failures, self.calls = factory, failures, 0
        self.closed = 0
        factory_close = factory.close

        def close():
            self.closed += 1
            factory_close()

        factory.close = close

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise HardwareError("no GPIO pin factory: lgpio: can not open gpiochip")
        return self.factory


def test_a_busy_pin_is_a_fault_then_works_once_freed(factory):
    blocker = gpiozero.LED(CFG.relay_pin, pin_factory=factory)
    sig = RetryingSignals(CFG, factory, make_signals=quiet)
    assert "signals.relay: cannot use GPIO23" in sig.error
    assert sig.signals is None and sig.relay_down
    sig.accept()  # nothing to drive: no error either
    sig.deny()
    sig.fault(True)  # remembered for when the outputs come
    red = factory.pin(CFG.red_pin)
    assert sig.retry(100.0) == sig.error  # first call: the wait starts now
    assert sig.retry(100.4) == sig.error  # not yet due: not tried
    blocker.close()
    assert sig.retry(100.5) == ""  # due, and the pin is free
    assert sig.signals is not None and not sig.relay_down
    assert red.state  # the fault blink starts at once
    sig.accept()
    assert not factory.pin(CFG.relay_pin).state  # active low: energised
    sig.close()
    sig.close()  # idempotent
    factory.pin(CFG.relay_pin)  # the handed-in factory is still usable: not ours to close


def test_a_pin_factory_that_raises_is_made_again_with_backoff(factory):
    maker = Maker(factory, failures=4)
    sig = RetryingSignals(CFG, maker, make_signals=quiet, initial_s=0.5, max_s=2.0)
    assert sig.error.startswith("no GPIO pin factory") and maker.calls == 1
    tried_at = []
    t = 0.0
    while sig.retry(t):
        if maker.calls > len(tried_at) + 1:
            tried_at.append(t)
        t = round(t + 0.1, 1)
    tried_at.append(t)
    # first wait from the first look, then doubling, capped at max_s
    assert tried_at == [0.5, 1.5, 3.5, 5.5]
    assert maker.calls == 5 and sig.signals is not None
    sig.close()
    assert maker.closed == 1  # the factory it made is closed with the outputs


def test_once_set_up_nothing_is_retried_and_the_factory_is_kept(factory):
    maker = Maker(factory, failures=0)
    sig = RetryingSignals(CFG, maker, make_signals=quiet)
    assert sig.error == "" and sig.retry(0.0) == "" and sig.retry(1e6) == ""
    assert maker.calls == 1
    sig.close()
    assert maker.closed == 1
    assert sig.retry(2e6) == "" and sig.connect() == ""  # closed: no new attempt


def test_a_factory_is_kept_across_attempts_when_only_a_pin_is_busy(factory):
    maker = Maker(factory, failures=0)
    blocker = gpiozero.LED(CFG.green_pin, pin_factory=factory)
    sig = RetryingSignals(CFG, maker, make_signals=quiet)
    assert "signals.green" in sig.error
    assert sig.connect() == sig.error  # still busy
    blocker.close()
    assert sig.connect() == ""
    assert maker.calls == 1  # the factory was made once
    sig.close()


def test_without_a_relay_fitted_no_accept_is_a_door_that_did_not_open(factory):
    cfg = SignalsConfig(relay_pin=None)
    blocker = gpiozero.LED(cfg.red_pin, pin_factory=factory)
    sig = RetryingSignals(cfg, factory, make_signals=quiet)
    assert sig.error and not sig.relay_down
    blocker.close()
    sig.close()


def test_closing_before_the_outputs_ever_came_closes_a_made_factory(factory):
    maker = Maker(factory, failures=0)
    blocker = gpiozero.LED(CFG.buzzer_pin, pin_factory=factory)
    sig = RetryingSignals(CFG, maker, make_signals=quiet)
    assert sig.error
    blocker.close()
    sig.close()
    assert maker.closed == 1 and sig.retry(10.0) == sig.error  # not built after close
