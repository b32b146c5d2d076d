"""Buzzer, LEDs and relay: pin states and their timing under gpiozero's MockFactory.

The scheduler runs on a fake clock (``background=False``) and MockPin's own timestamps are
pointed at the same clock, so ``assert_states_and_times`` checks exact intervals, not
wall-clock luck.
"""

from __future__ import annotations

import importlib.util
import logging
import time

import gpiozero
import gpiozero.pins.mock
import pytest
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from fakes import FakeClock
from passgate.errors import ConfigError, HardwareError
from passgate.hardware.signals.gpio import (
    ACCEPT_TONES,
    DENY_TONES,
    FAULT_PATTERN,
    Pattern,
    Signals,
    SignalsConfig,
    make_pin_factory,
)

T0 = 1000.0
CFG = SignalsConfig()  # buzzer 17, green 27, red 22, relay 23 (active low), hold 3 s, deny 2 s


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock(T0)
    # MockPin stamps state changes with gpiozero.pins.mock.monotonic: make it our clock.
    monkeypatch.setattr(gpiozero.pins.mock, "monotonic", c)
    return c


@pytest.fixture
def mock_factory(request, clock):
    """A MockFactory with PWM-capable pins (TonalBuzzer needs PWM), always reset and closed.

    Parametrize indirectly with ``MockPin`` for plain pins. gpiozero's global default factory
    must stay untouched: Signals gets this one injected.
    """
    before = gpiozero.Device.pin_factory
    factory = MockFactory(pin_class=getattr(request, "param", MockPWMPin))
    try:
        yield factory
    finally:
        factory.reset()
        factory.close()
        leaked = gpiozero.Device.pin_factory
        gpiozero.Device.pin_factory = before
        assert leaked is before, "a device used gpiozero's global default pin factory"


@pytest.fixture
def make(mock_factory, clock):
    made = []

    def _make(cfg: SignalsConfig = CFG, **kw) -> Signals:
        sig = Signals(cfg, pin_factory=mock_factory, clock=clock, background=False, **kw)
        made.append(sig)
        for pin in mock_factory.pins.values():
            pin.clear_states()  # timelines start now, with each pin's idle level
        return sig

    yield _make
    for sig in made:
        sig.close()


def run_until(sig: Signals, clock: FakeClock, t: float) -> None:
    """Step the fake clock through every scheduled change up to ``t``."""
    while (nxt := sig.poll()) is not None and nxt <= t:
        clock.t = nxt
    clock.t = t
    sig.poll()


def timeline(factory, bcm: int, expected) -> None:
    """The pin's (interval since previous change, level) history is exactly ``expected``.

    gpiozero's assert_states_and_times allows 50 ms of slack (real-time tests on a Pi) and
    stops at the shorter list; on a fake clock the intervals are exact, so check that too.
    """
    pin = factory.pin(bcm)
    assert len(pin.states) == len(expected), pin.states
    pin.assert_states_and_times(expected)
    actual = [(round(s.timestamp, 6), float(s.state)) for s in pin.states]
    assert actual == [(round(t, 6), float(v)) for t, v in expected]


RELAY, GREEN, RED, BUZZER = 23, 27, 22, 17
HI, LO = True, False


def test_accept_relay_green_and_a_short_double_chirp(make, clock, mock_factory):
    sig = make()
    sig.accept()
    run_until(sig, clock, T0 + 10)
    # Active-low relay: idles high, pulled low (energised) for exactly the hold time.
    timeline(mock_factory, RELAY, [(0, HI), (0, LO), (3.0, HI)])
    timeline(mock_factory, GREEN, [(0, LO), (0, HI), (3.0, LO)])
    timeline(mock_factory, RED, [(0, LO)])
    timeline(mock_factory, BUZZER, [(0, LO), (0, HI), (0.08, LO), (0.04, HI), (0.16, LO)])


def test_deny_red_and_two_long_beeps_relay_untouched(make, clock, mock_factory):
    sig = make()
    sig.deny()
    run_until(sig, clock, T0 + 10)
    timeline(mock_factory, RED, [(0, LO), (0, HI), (2.0, LO)])
    timeline(mock_factory, BUZZER, [(0, LO), (0, HI), (0.35, LO), (0.15, HI), (0.35, LO)])
    timeline(mock_factory, RELAY, [(0, HI)])
    timeline(mock_factory, GREEN, [(0, LO)])


def test_accept_and_deny_are_distinguishable_by_sound_alone():
    def beeps(steps):
        return [round(b[0] - a[0], 3) for a, b in zip(steps, steps[1:], strict=False) if a[1] > 0]

    assert beeps(ACCEPT_TONES) == [0.08, 0.16]
    assert beeps(DENY_TONES) == [0.35, 0.35]
    assert min(v for _, v in ACCEPT_TONES if v) > 1000 > max(v for _, v in DENY_TONES)


def test_a_deny_during_the_hold_drops_the_relay_at_once(make, clock, mock_factory):
    sig = make()
    sig.accept()
    run_until(sig, clock, T0 + 1.0)
    sig.deny()
    run_until(sig, clock, T0 + 10)
    timeline(mock_factory, RELAY, [(0, HI), (0, LO), (1.0, HI)])
    timeline(mock_factory, GREEN, [(0, LO), (0, HI), (1.0, LO)])
    timeline(mock_factory, RED, [(0, LO), (1.0, HI), (2.0, LO)])


def test_a_second_accept_extends_the_hold_without_a_glitch(make, clock, mock_factory):
    sig = make()
    sig.accept()
    run_until(sig, clock, T0 + 2.0)
    sig.accept()
    run_until(sig, clock, T0 + 10)
    timeline(mock_factory, RELAY, [(0, HI), (0, LO), (5.0, HI)])


def test_fault_blinks_red_slowly_until_cleared(make, clock, mock_factory):
    sig = make()
    sig.fault(True)
    run_until(sig, clock, T0 + 6.2)
    sig.fault(True)  # already on: the phase is not restarted
    run_until(sig, clock, T0 + 6.3)
    sig.fault(False)
    run_until(sig, clock, T0 + 20)
    timeline(mock_factory, RED, [
        (0, LO), (0, HI), (0.5, LO), (1.5, HI), (0.5, LO), (1.5, HI), (0.5, LO), (1.5, HI),
        (0.3, LO),
    ])
    timeline(mock_factory, RELAY, [(0, HI)])
    timeline(mock_factory, BUZZER, [(0, LO)])


def test_a_deny_during_a_fault_then_the_blink_resumes_in_phase(make, clock, mock_factory):
    sig = make()
    sig.fault(True)
    run_until(sig, clock, T0 + 1.0)
    sig.deny()  # red solid 1.0 .. 3.0, then the blink (period 2 s from T0) takes over again
    run_until(sig, clock, T0 + 4.6)
    timeline(mock_factory, RED, [(0, LO), (0, HI), (0.5, LO), (0.5, HI), (2.0, LO), (1.0, HI),
                                 (0.5, LO)])


def test_accept_during_a_fault_keeps_red_dark_for_the_hold(make, clock, mock_factory):
    sig = make()
    sig.fault(True)
    sig.accept()
    run_until(sig, clock, T0 + 4.1)
    # red: dark during the 3 s hold, then the blink resumes at T0+4
    timeline(mock_factory, RED, [(0, LO), (0, HI), (0, LO), (4.0, HI)])
    timeline(mock_factory, GREEN, [(0, LO), (0, HI), (3.0, LO)])


def test_tonal_buzzer_plays_high_chirp_and_low_beeps(make, clock, mock_factory):
    sig = make(SignalsConfig(buzzer_tonal=True))
    pin = mock_factory.pin(BUZZER)
    freqs = []
    sig.accept()
    for t in (0.04, 0.10, 0.20, 0.50):
        run_until(sig, clock, T0 + t)
        freqs.append(pin.frequency)
    sig.deny()
    for t in (0.6, 0.9, 1.1, 1.5):
        run_until(sig, clock, T0 + t)
        freqs.append(pin.frequency)
    assert freqs == [
        pytest.approx(1318.5), None, pytest.approx(1760.0), None,
        pytest.approx(247.0), None, pytest.approx(247.0), None,
    ]
    # PWM duty 0.5 while sounding, 0 when silent; the timing is the pattern's.
    assert [s.state for s in pin.states] == [0, 0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0]
    pin.assert_states_and_times([
        (0, 0), (0, 0.5), (0.08, 0), (0.04, 0.5), (0.16, 0),
        (0.22, 0.5), (0.35, 0), (0.15, 0.5), (0.35, 0),
    ])


def test_release_drops_everything_at_once(make, clock, mock_factory):
    sig = make()
    sig.fault(True)
    sig.accept()
    run_until(sig, clock, T0 + 0.05)
    sig.release()
    run_until(sig, clock, T0 + 10)
    timeline(mock_factory, RELAY, [(0, HI), (0, LO), (0.05, HI)])
    timeline(mock_factory, GREEN, [(0, LO), (0, HI), (0.05, LO)])
    timeline(mock_factory, BUZZER, [(0, LO), (0, HI), (0.05, LO)])
    timeline(mock_factory, RED, [(0, LO), (0, HI), (0, LO)])


# MockPWMPin.close() drops the pin to 0 (it clears the PWM frequency), which real pins do
# not do; the tests of what close() leaves on the relay line use plain mock pins.
PLAIN_PINS = pytest.mark.parametrize("mock_factory", [MockPin], indirect=True)


@PLAIN_PINS
def test_close_is_idempotent_releases_the_relay_and_frees_the_pins(make, clock, mock_factory):
    sig = make()
    sig.accept()
    sig.close()
    sig.close()
    sig.accept()  # after close: ignored, no exception
    sig.fault(True)
    sig.release()
    assert mock_factory.pin(RELAY).state == HI  # active-low relay: de-energised
    again = Signals(CFG, pin_factory=mock_factory, clock=clock, background=False)
    again.close()  # every pin was free again


@PLAIN_PINS
def test_context_manager_closes(mock_factory, clock):
    with Signals(CFG, pin_factory=mock_factory, clock=clock, background=False) as sig:
        sig.accept()
        assert mock_factory.pin(RELAY).state == LO
    assert mock_factory.pin(RELAY).state == HI


def test_active_high_relay_and_missing_outputs(make, clock, mock_factory):
    cfg = SignalsConfig(relay_active_high=True, buzzer_pin=None, red_pin=None)
    sig = make(cfg)
    sig.deny()  # no red LED and no buzzer fitted: nothing to do, nothing fails
    sig.accept()
    run_until(sig, clock, T0 + 5)
    timeline(mock_factory, RELAY, [(0, LO), (0, HI), (3.0, LO)])
    assert {p.info.name for p in mock_factory.pins.values()} == {"GPIO23", "GPIO27"}


def test_active_low_buzzer_module(make, clock, mock_factory):
    sig = make(SignalsConfig(buzzer_active_high=False))
    sig.accept()
    run_until(sig, clock, T0 + 1)
    timeline(mock_factory, BUZZER, [(0, HI), (0, LO), (0.08, HI), (0.04, LO), (0.16, HI)])


def test_accept_returns_at_once_and_the_thread_ends_the_hold(mock_factory):
    relay = mock_factory.pin(RELAY)
    with Signals(SignalsConfig(relay_hold_s=60), pin_factory=mock_factory) as sig:
        sig.accept()  # a 1-minute hold (the longest allowed): returning proves it does not block
        assert relay.state == LO
        sig.release()
        assert relay.state == HI
    with Signals(SignalsConfig(relay_hold_s=0.2, deny_s=0.2), pin_factory=mock_factory) as sig:
        sig.accept()
        deadline = time.monotonic() + 5
        while relay.state == LO and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.state == HI  # the background thread ended the hold by itself


def test_on_change_reports_transitions_and_a_broken_hook_is_contained(make, clock, caplog):
    seen = []

    def hook(channel, value):
        seen.append((clock.t - T0, channel, value))
        if channel == "red":
            raise RuntimeError("hook bug")

    sig = make(on_change=hook)
    sig.accept()
    sig.deny()  # the hook raises for red: logged, outputs still driven, caller unaffected
    run_until(sig, clock, T0 + 3)
    assert (0.0, "relay", 1.0) in seen and (0.0, "relay", 0.0) in seen
    assert (0.0, "red", 1.0) in seen and (2.0, "red", 0.0) in seen
    assert "on_change hook failed" in caplog.text


class FlakyPin(MockPWMPin):
    broken = False

    def _set_state(self, value):
        if FlakyPin.broken:
            raise OSError(5, "GPIO write failed")
        super()._set_state(value)


def test_a_failing_output_is_logged_once_and_the_others_carry_on(make, clock, mock_factory, caplog):
    caplog.set_level(logging.INFO, logger="passgate.hardware.signals.gpio")
    mock_factory.pin(GREEN, pin_class=FlakyPin)
    sig = make()
    FlakyPin.broken = True
    try:
        for _ in range(3):
            sig.accept()
            run_until(sig, clock, clock.t + 5)
    finally:
        FlakyPin.broken = False
    sig.accept()
    run_until(sig, clock, clock.t + 5)
    assert caplog.text.count("signals.green: cannot set output") == 1
    assert caplog.text.count("signals.green: output works again") == 1
    # the relay did its job every time
    assert [s.state for s in mock_factory.pin(RELAY).states] == [HI] + [LO, HI] * 4


def test_device_set_up_failure_names_the_pin_and_frees_the_others(mock_factory):
    blocker = gpiozero.LED(RELAY, pin_factory=mock_factory)
    with pytest.raises(HardwareError, match=r"signals\.relay: cannot use GPIO23"):
        Signals(CFG, pin_factory=mock_factory, background=False)
    blocker.close()
    Signals(CFG, pin_factory=mock_factory, background=False).close()  # green/red were freed


def test_pin_factory_must_be_injected():
    with pytest.raises(ValueError, match="pin_factory"):
        Signals(CFG, pin_factory=None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"relay_pin": 27}, "signals.relay_pin: GPIO27 is already used by signals.green_pin"),
        ({"red_pin": 2}, "signals.red_pin: 2 is below the minimum 4: BCM pin 4-27"),
        ({"buzzer_pin": 28}, "signals.buzzer_pin: 28 is above the maximum 27: BCM pin 4-27"),
        ({"relay_hold_s": 0}, "signals.relay_hold_s"),
        ({"deny_s": -1}, "signals.deny_s"),
    ],
)
def test_config_is_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SignalsConfig(**kwargs)


def test_pattern_data():
    assert FAULT_PATTERN.value("red", 0.0) == 1.0
    assert FAULT_PATTERN.value("red", 0.7) == 0.0
    assert FAULT_PATTERN.value("red", 4.2) == 1.0
    assert FAULT_PATTERN.value("green", 0.0) is None
    assert FAULT_PATTERN.next_change(0.7) == pytest.approx(2.0)
    assert FAULT_PATTERN.next_change(4.2) == pytest.approx(4.5)
    shot = Pattern("x", {"green": ((0.5, 1.0), (1.0, 0.0))})
    assert shot.value("green", 0.2) is None  # not started
    assert shot.value("green", 0.5) == 1.0
    assert shot.value("green", 1.0) is None  # ended: handed back
    assert shot.next_change(0.0) == 0.5 and shot.next_change(1.0) is None


def test_make_pin_factory():
    factory = make_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory) and factory.pin_class is MockPWMPin
    finally:
        factory.close()
    with pytest.raises(ValueError):
        make_pin_factory("bogus")
    if importlib.util.find_spec("lgpio") is None:
        with pytest.raises(HardwareError, match="lgpio"):
            make_pin_factory("lgpio")
