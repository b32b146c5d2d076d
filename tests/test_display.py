"""The OLED: reference images, plain words, the screen policy and the background worker."""

from __future__ import annotations

import errno
import importlib.util
import io
import logging
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from passgate.clock.clock import ClockState
from passgate.errors import ConfigError, HardwareError
from passgate.hardware.display import (
    AcceptedScreen,
    Connectivity,
    DeniedScreen,
    Display,
    DisplayConfig,
    DisplayPolicy,
    FaultScreen,
    IdleScreen,
    MessageScreen,
    PngFolder,
    StoppedScreen,
    TerminalView,
    camera_fault,
    journal_fault,
    open_luma,
    reason_words,
    render,
    terminal_if_tty,
    trust_data_old,
    verdict_screen,
)
from passgate.hardware.display.render import fit, wrap
from passgate.hardware.display.screens import REASON_WORDS, remaining_text
from passgate.hardware.display.term import frame_text
from passgate.passes.purposes import PurposeTable
from passgate.passes.verdict import Reason, Result, Verdict

REF = Path(__file__).parent / "reference"
T = 1_775_052_300  # 2026-04-01 14:05:00 UTC


def _load_cases() -> dict:
    spec = importlib.util.spec_from_file_location("reference_regenerate", REF / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cases()


CASES = _load_cases()


# ---- reference images --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_screen_matches_reference_png(name):
    image = render(CASES[name])
    assert image.mode == "1" and image.size == (128, 64)
    ref_path = REF / f"{name}.png"
    actual_path = REF / f"{name}.actual.png"
    assert ref_path.exists(), f"no reference {ref_path.name}: run tests/reference/regenerate.py"
    ref = Image.open(ref_path).convert("1")
    diff = -1 if ref.size != image.size else sum(ImageChops.logical_xor(ref, image).histogram()[1:])
    if diff:
        image.save(actual_path)
        pytest.fail(f"{name}: {diff} pixels differ; see {actual_path} (regenerate.py if intended)")
    actual_path.unlink(missing_ok=True)


def test_reference_folder_has_no_orphans():
    pngs = {p.stem for p in REF.glob("*.png") if not p.stem.endswith(".actual")}
    assert pngs == set(CASES)


def test_screens_render_identically_twice():
    for screen in CASES.values():
        assert render(screen).tobytes() == render(screen).tobytes()


# ---- words ------------------------------------------------------------------------------


def _deny(reason, **kw):
    return Verdict(Result.DENY, reason, T, **kw)


def test_every_reason_has_plain_words():
    assert set(REASON_WORDS) == set(Reason)
    for reason in Reason:
        line, _ = reason_words(_deny(reason), T)
        assert line and "_" not in line, reason


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (Reason.MALFORMED, "unreadable"),
        (Reason.UNKNOWN_KEY, "unknown issuer"),
        (Reason.BAD_SIGNATURE, "invalid signature"),
        (Reason.REVOKED, "revoked"),
        (Reason.WRONG_ZONE, "not valid here"),
        (Reason.ALREADY_USED, "already used"),
        (Reason.PURPOSE_NOT_ALLOWED, "purpose not allowed"),
        (Reason.CLOCK_UNTRUSTED, "clock not trusted"),
        (Reason.TRUST_STALE, "trust data stale"),
        (Reason.JOURNAL_FAULT, "not recorded"),
        (Reason.NOT_YET_VALID, "not yet valid"),
    ],
)
def test_reason_words(reason, words):
    assert reason_words(_deny(reason), T)[0] == words


def test_no_trust_data_is_said_as_such_on_the_deny_screen():
    """A pass denied because there is no trust data at all (trust_stale, detail "no trust
    data") reads "no trust data", not "trust data stale" (there is no data to be stale)."""
    none = _deny(Reason.TRUST_STALE, detail="no trust data")
    assert verdict_screen(none, T) == DeniedScreen("no trust data")
    stale = _deny(Reason.TRUST_STALE, detail="trust data 3 days old")
    assert verdict_screen(stale, T) == DeniedScreen("trust data stale")


def test_time_relative_words_follow_the_display_time():
    expired = _deny(Reason.EXPIRED, expires=T - 14 * 60)
    assert reason_words(expired, T) == ("expired 14 min ago", "")
    assert reason_words(expired, T + 60) == ("expired 15 min ago", "")
    assert reason_words(expired, T + 3 * 3600) == ("expired 3h 14m ago", "")
    assert reason_words(_deny(Reason.EXPIRED), T) == ("expired", "")
    early = _deny(Reason.NOT_YET_VALID, not_before=T + 90)
    assert reason_words(early, T) == ("not yet valid", "starts in 1 min")
    assert reason_words(early, T + 60) == ("not yet valid", "starts in 30s")


def test_accepted_screen_counts_down_and_uses_labels():
    v = Verdict(Result.ACCEPT, Reason.VALID, T, remaining_s=8000, purpose="dog_walk",
                expires=T + 8000, hint="JS")
    purposes = PurposeTable.default()
    assert verdict_screen(v, T, purposes) == AcceptedScreen("Dog walk", "2h 13m", "JS")
    assert verdict_screen(v, T + 7990, purposes).remaining == "10s"
    assert verdict_screen(v, T + 9000, purposes).remaining == "0s"
    assert verdict_screen(v, T, None, show_hint=False) == AcceptedScreen("dog_walk", "2h 13m", "")
    no_expiry = Verdict(Result.ACCEPT, Reason.VALID, T, remaining_s=120)
    assert remaining_text(no_expiry, T + 60) == "1 min"
    assert remaining_text(Verdict(Result.ACCEPT, Reason.VALID, T), T) == ""


def test_fault_helpers():
    assert trust_data_old(3 * 86400 + 10).title == "trust data 3 days old"
    assert trust_data_old(86400).title == "trust data 1 day old"
    assert trust_data_old(7200).title == "trust data 2 hours old"
    assert camera_fault().title == "camera fault"
    assert journal_fault().title == "journal fault"


def test_wrap_and_fit_are_bounded():
    assert wrap("expired 14 min ago", 21, 2) == ["expired 14 min ago"]
    assert wrap("one two three four", 9, 2) == ["one two", "three.."]
    assert wrap("abcdefghijklmnop", 6, 3) == ["abcdef", "ghijkl", "mnop"]
    assert wrap("a" * 40, 6, 2) == ["aaaaaa", "aaaa.."]
    assert fit("Passport office hours", 13) == "Passport of.."
    # Latin and Cyrillic kept, a letter the font lacks folded or "?" (the font has no CJK)
    assert fit("Straße 漢 Zoë", 21) == "Straße ? Zoë"
    assert fit("Łódź", 21) == "Łódź"  # Terminus draws Central European letters too
    for lines in (wrap("x " * 200, 21, 3), wrap("y" * 500, 21, 3)):
        assert len(lines) <= 3 and all(len(line) <= 21 for line in lines)


def test_oversized_and_foreign_text_still_renders_within_the_panel():
    for screen in (
        MessageScreen("Ж" * 50, "日本語 " * 40),
        DeniedScreen("x" * 300, "\x00\n\t" * 10),
        AcceptedScreen("p" * 80, "99999d 23h", "h" * 80),
        IdleScreen("14:05:59:99", pending=10**9, prompt=("a" * 40,)),
    ):
        image = render(screen)
        assert image.size == (128, 64) and image.getbbox() is not None


# ---- policy -----------------------------------------------------------------------------


def test_policy_holds_a_verdict_then_returns_to_idle():
    policy = DisplayPolicy(hold_s=3.0)
    assert isinstance(policy.at(T), IdleScreen) and policy.at(T).time_text == "14:05"
    policy.verdict(_deny(Reason.REVOKED), at=T + 10)
    assert policy.at(T + 10) == DeniedScreen("revoked")
    assert policy.at(T + 12.99) == DeniedScreen("revoked")
    assert isinstance(policy.at(T + 13), IdleScreen)
    assert isinstance(policy.at(T + 11), IdleScreen)  # once over, a step back cannot revive it


def test_policy_latest_verdict_wins_and_restarts_the_hold():
    policy = DisplayPolicy(hold_s=3.0)
    policy.verdict(_deny(Reason.REVOKED), at=T)
    accept = Verdict(Result.ACCEPT, Reason.VALID, T + 2, purpose="work", expires=T + 3600)
    policy.verdict(accept, at=T + 2)
    assert policy.at(T + 4.5) == AcceptedScreen("work", "59 min")
    assert isinstance(policy.at(T + 5), IdleScreen)


def test_policy_clock_stepping_back_ends_the_verdict():
    policy = DisplayPolicy(hold_s=3.0)
    policy.verdict(_deny(Reason.REVOKED), at=T)
    assert isinstance(policy.at(T - 3600), IdleScreen)


def test_policy_faults_show_after_the_verdict_and_take_turns():
    policy = DisplayPolicy(hold_s=3.0, fault_cycle_s=2.0)
    policy.set_fault("journal", journal_fault())
    policy.verdict(_deny(Reason.JOURNAL_FAULT), at=T)
    assert policy.at(T + 1) == DeniedScreen("not recorded", "journal fault")
    assert policy.at(T + 3) == journal_fault()
    policy.set_fault("camera", camera_fault())
    seen = [policy.at(T + 4 + 2 * i).title for i in range(4)]
    assert sorted(seen) == ["camera fault", "camera fault", "journal fault", "journal fault"]
    assert seen[0] != seen[1]
    policy.set_fault("journal", None)
    policy.set_fault("camera", None)
    policy.set_fault("camera", None)  # clearing twice is harmless
    assert isinstance(policy.at(T + 20), IdleScreen)


def test_policy_status_indicators_and_stop():
    policy = DisplayPolicy()
    policy.status(clock=ClockState.FLOOR, connectivity=Connectivity.OFFLINE, pending=7)
    policy.status(pending=8)
    assert policy.at(T) == IdleScreen("14:05", ClockState.FLOOR, Connectivity.OFFLINE, 8)
    policy.message(MessageScreen("enrolled"), at=T, hold_s=10)
    assert policy.at(T + 9) == MessageScreen("enrolled")
    policy.stop()
    policy.verdict(_deny(Reason.REVOKED), at=T + 20)
    assert policy.at(T + 20) == StoppedScreen()


# ---- worker -----------------------------------------------------------------------------


class FakePanel:
    """An output that records what it is sent; can be told to fail."""

    def __init__(self, fail_times: int = 0) -> None:
        self.images: list[bytes] = []
        self.fail_times = fail_times
        self.threads: set[str] = set()
        self.cleanups = 0

    def display(self, image) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fail_times:
            self.fail_times -= 1
            raise OSError(errno.EIO, "I2C write failed")
        self.images.append(image.tobytes())

    def cleanup(self) -> None:
        self.cleanups += 1


def _until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_unchanged_image_is_not_resent():
    panel = FakePanel()
    with Display({"fake": panel}) as display:
        display.show(IdleScreen("14:05"))
        assert display.wait_idle(5)
        display.show(IdleScreen("14:05"))  # equal screen: ignored at once
        display.show(FaultScreen("x"))
        assert display.wait_idle(5)
        display.show(FaultScreen("x  "))  # a different screen drawing the same pixels
        assert display.wait_idle(5)
        assert display.renders == 3
        assert display.pushes == {"fake": 2}
    expected = [render(IdleScreen("14:05")).tobytes(), render(FaultScreen("x")).tobytes()]
    assert panel.images == expected
    assert panel.threads == {"passgate-display"}
    assert panel.cleanups == 1


def test_show_never_renders_on_the_caller_and_latest_screen_wins():
    gate = threading.Event()
    drawn: list[tuple[str, object]] = []

    def slow_render(screen):
        drawn.append((threading.current_thread().name, screen))
        if screen == MessageScreen("first"):
            assert gate.wait(5)
        return render(screen)

    panel = FakePanel()
    display = Display({"fake": panel}, renderer=slow_render)
    try:
        display.show(MessageScreen("first"))
        assert _until(lambda: drawn)
        for i in range(20):  # the worker is stuck in the first render: these pile up
            display.show(MessageScreen(f"m{i}"))
        assert [s for _, s in drawn] == [MessageScreen("first")]
        gate.set()
        assert display.wait_idle(5)
    finally:
        display.close()
    assert [s for _, s in drawn] == [MessageScreen("first"), MessageScreen("m19")]
    assert {name for name, _ in drawn} == {"passgate-display"}
    assert panel.images[-1] == render(MessageScreen("m19")).tobytes()


def test_failing_panel_is_logged_once_retried_and_recovers(caplog):
    caplog.set_level(logging.INFO, logger="passgate.hardware.display.worker")
    panel = FakePanel(fail_times=3)
    other = FakePanel()
    display = Display({"oled": lambda: panel, "png": other}, retry_s=0.01)
    try:
        for i in range(5):
            display.show(MessageScreen(f"m{i}"))  # never raises, whatever the panel does
        assert _until(lambda: display.healthy["oled"] is True)
        assert display.wait_idle(5)
    finally:
        display.close(final=StoppedScreen())
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    recoveries = [r for r in caplog.records if "is back" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING
    assert "OSError" in failures[0].getMessage()
    assert len(recoveries) == 1
    assert panel.images[-1] == render(StoppedScreen()).tobytes()
    assert other.images[-1] == render(StoppedScreen()).tobytes()  # the other output carried on
    assert panel.cleanups >= 3  # each failure dropped the device


def test_missing_panel_at_start_does_not_stop_anything(caplog):
    caplog.set_level(logging.INFO, logger="passgate.hardware.display.worker")
    attempts = []

    def factory():
        attempts.append(1)
        raise HardwareError("OLED ssd1306 on /dev/i2c-1 at 0x3C: I2C device not found")

    display = Display({"oled": factory}, retry_s=0.01)
    display.show(IdleScreen("14:05"))
    assert _until(lambda: len(attempts) >= 3)
    display.show(MessageScreen("still fine"))
    display.close()
    display.close()  # idempotent
    display.show(IdleScreen("14:06"))  # after close: ignored, no exception
    assert display.healthy == {"oled": False}
    assert sum("failed" in r.getMessage() for r in caplog.records) == 1


def test_render_bug_blanks_the_panel_and_is_logged(caplog):
    def broken(screen):
        if isinstance(screen, FaultScreen):
            raise RuntimeError("bug")
        return render(screen)

    panel = FakePanel()
    with Display({"fake": panel}, renderer=broken) as display:
        display.show(AcceptedScreen("Work", "1h 00m"))
        assert display.wait_idle(5)
        display.show(FaultScreen("x"))
        assert display.wait_idle(5)
    assert panel.images[-1] == Image.new("1", (128, 64)).tobytes()
    assert any("cannot draw FaultScreen" in r.getMessage() for r in caplog.records)


# ---- luma devices -----------------------------------------------------------------------


class FakeBus:
    """An smbus-like object: records block writes to the panel (0x00 command, 0x40 data)."""

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.writes: list[tuple[int, int, list[int]]] = []

    def write_i2c_block_data(self, addr, mode, data):
        if self.broken:
            raise OSError(errno.EIO, "Input/output error")
        self.writes.append((addr, mode, list(data)))

    def data_bytes(self) -> int:
        return sum(len(d) for _, mode, d in self.writes if mode == 0x40)


@pytest.mark.parametrize("driver", ["ssd1306", "sh1106"])
def test_real_driver_over_a_fake_i2c_bus_skips_unchanged_frames(driver):
    bus = FakeBus()
    cfg = DisplayConfig(driver=driver, i2c_address=0x3D)
    with Display.from_config(cfg, bus=bus) as display:
        display.show(IdleScreen("14:05"))
        assert display.wait_idle(5)
        after_first = bus.data_bytes()  # luma's start-up clear, then our frame
        display.show(FaultScreen("x"))
        assert display.wait_idle(5)
        assert bus.data_bytes() - after_first == 1024  # one 128x64 frame, 8 pages of 128
        display.show(FaultScreen("x "))  # same pixels: nothing on the bus
        assert display.wait_idle(5)
        assert bus.data_bytes() - after_first == 1024
        assert display.pushes == {f"{driver}@i2c-1:0x3D": 2}
    assert {addr for addr, _, _ in bus.writes} == {0x3D}


def test_open_luma_names_the_bus_and_address_when_nothing_answers():
    with pytest.raises(HardwareError, match=r"ssd1306 on /dev/i2c-1 at 0x3C"):
        open_luma("ssd1306", 1, 0x3C, bus=FakeBus(broken=True))
    with pytest.raises(OSError):  # HardwareError is also an OSError for generic callers
        open_luma("sh1106", 3, 0x3D, bus=FakeBus(broken=True))


def test_dummy_device_keeps_the_pushed_image():
    dev = open_luma("dummy")
    with Display({"dummy": dev}) as display:
        display.show(journal_fault())
        assert display.wait_idle(5)
    assert dev.image.tobytes() == render(journal_fault()).tobytes()


def test_display_config_is_checked():
    assert DisplayConfig().driver == "ssd1306"
    with pytest.raises(ConfigError, match="display.driver"):
        DisplayConfig(driver="st7735")
    with pytest.raises(ConfigError, match="display.rotate"):
        DisplayConfig(rotate=1)


def test_png_folder_writes_each_distinct_frame_and_continues_numbering(tmp_path):
    cfg = DisplayConfig(driver="none", png_dir=tmp_path / "frames")
    idle = IdleScreen("14:05")
    screens = [idle, IdleScreen("14:05"), DeniedScreen("revoked"), idle]
    with Display.from_config(cfg) as display:
        for s in screens:
            display.show(s)
            assert display.wait_idle(5)
    files = sorted((tmp_path / "frames").glob("*.png"))
    assert [f.name for f in files] == ["frame-00001.png", "frame-00002.png", "frame-00003.png"]
    for f, s in zip(files, [screens[0], screens[2], screens[3]], strict=True):
        assert Image.open(f).convert("1").tobytes() == render(s).tobytes()
    again = PngFolder(tmp_path / "frames")
    again.display(render(StoppedScreen()))
    assert again.written == [tmp_path / "frames" / "frame-00004.png"]


# ---- terminal ---------------------------------------------------------------------------


def test_frame_text_uses_half_blocks():
    image = Image.new("1", (128, 64), 0)
    image.putpixel((0, 0), 1)  # top half of cell (0, 0)
    image.putpixel((1, 1), 1)  # bottom half of cell (1, 0)
    image.putpixel((2, 0), 1)
    image.putpixel((2, 1), 1)  # both
    lines = frame_text(image).splitlines()
    assert len(lines) == 34 and {len(line) for line in lines} == {130}
    assert lines[1][1:5] == "\u2580\u2584\u2588 "
    assert lines[2].strip("\u2502") == " " * 128


def test_terminal_view_only_on_a_tty_and_redraws_in_place():
    assert terminal_if_tty(io.StringIO()) is None

    class Tty(io.StringIO):
        def isatty(self):
            return True

    view = terminal_if_tty(Tty(), in_place=True)
    assert isinstance(view, TerminalView)
    view.display(render(IdleScreen("14:05")))
    view.display(render(StoppedScreen()))
    out = view.stream.getvalue()
    assert out.count("\u250c") == 2 and out.count("\x1b[34A") == 1


def test_from_config_adds_a_terminal_view():
    stream = io.StringIO()
    with Display.from_config(DisplayConfig(driver="dummy"), terminal=stream) as display:
        display.show(camera_fault())
        assert display.wait_idle(5)
        assert set(display.pushes) == {"dummy", "terminal"}
    assert stream.getvalue().count("\u2514") == 1


def test_importing_the_display_package_touches_no_luma_or_bus():
    code = (
        "import sys, passgate.hardware.display, passgate.hardware.display.worker;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('luma', 'smbus2', 'smbus')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_display_from_config_accepts_any_object_with_the_section_names():
    class Section:
        driver, i2c_port, i2c_address, rotate, png_dir = "dummy", 1, 0x3C, 0, None

    with Display.from_config(Section()) as display:
        display.show(camera_fault())
        assert display.wait_idle(5)
        assert display.healthy == {"dummy": True}
    Section.rotate = 1  # portrait: refused at once, not failing later on the worker
    with pytest.raises(ConfigError, match="display.rotate"):
        Display.from_config(Section())


def test_luma_factory_is_called_on_the_worker_thread():
    threads = []

    def factory():
        threads.append(threading.current_thread().name)
        return FakePanel()

    with Display({"oled": factory}) as display:
        display.show(IdleScreen("14:05"))
        assert display.wait_idle(5)
    assert threads == ["passgate-display"]


def test_partial_factories_are_not_mistaken_for_devices():
    dev = open_luma("dummy")
    with Display({"dummy": partial(lambda d: d, dev)}) as display:
        display.show(IdleScreen("09:00"))
        assert display.wait_idle(5)
    assert dev.image is not None
