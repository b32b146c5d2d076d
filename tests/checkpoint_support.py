"""The frame loop on a bench: one builder, through the constructor, for every loop test.

Rules it keeps:

- Every part goes in through :class:`passgate.checkpoint.loop.Checkpoint`'s keywords; nothing
  is assigned to the loop after it was built (a test that needs another part passes it).
- Defaults are the bench the loop tests share: the real debouncer, the real SQLite journal
  (the ``journal`` fixture), a plain trust folder (:class:`StaticTrust`) with :data:`POLICY`,
  recording signals and display, a fake monotonic clock that carries a fixed wall clock,
  and a decoder that takes one ``FRAME_S`` per frame.
- :class:`Rig` gives the test the loop and the fakes it was built with, by name; it forwards
  only the loop's own verbs (``run``, ``scan``, ``handle_texts``, ``shutdown``, ``stop``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from fakes import FakeClock, Frames, RecordingDisplay, RecordingSignals, TextDecoder
from passgate.bundle.policy import CheckpointPolicy
from passgate.checkpoint.debounce import Debouncer
from passgate.checkpoint.loop import Checkpoint, Scan, Timing
from passgate.checkpoint.parts import TrustSource
from passgate.checkpoint.sdnotify import Notifier
from passgate.checkpoint.trustview import StaticTrust
from passgate.clock.clock import FixedClock
from passgate.hardware.camera import FlakyFrameSource
from passgate.journal.journal import Journal

NOW = 1_767_261_600
ZONE = "gate-1"
POLICY = CheckpointPolicy(clock="flag", stale="deny", anti_passback_s=600)


class Rig:
    """A built loop (``loop``) and the parts it was built with."""

    def __init__(
        self,
        loop: Checkpoint,
        mono: FakeClock,
        source: Any,
        signals: Any,
        display: Any,
        notifier: Notifier | None,
        seen: list[Scan],
    ) -> None:
        self.loop, self.mono, self.source = loop, mono, source
        self.signals, self.display, self.notifier = signals, display, notifier
        self.seen = seen

    def run(self, max_frames: int | None = None) -> int:
        return self.loop.run(max_frames)

    def scan(self, text: str) -> Scan:
        return self.loop.scan(text)

    def handle_texts(self, texts: list[str]) -> list[Scan]:
        return self.loop.handle_texts(texts)

    def shutdown(self) -> None:
        self.loop.shutdown()

    def stop(self) -> None:
        self.loop.stop()

    def later(self, seconds: float) -> None:
        """Let time pass: the wall clock and the monotonic clock together."""
        self.mono.advance(seconds)

    def reasons(self) -> list[str]:
        return [s.verdict.reason.value for s in self.seen]


def build_checkpoint(
    frames: Iterable[Any],
    store: Any,
    journal: Any,
    *,
    flaky: dict[str, Any] | None = None,
    display: Any = None,
    clock: FixedClock | None = None,
    mono: FakeClock | None = None,
    policy: CheckpointPolicy = POLICY,
    trust: TrustSource | None = None,
    timing: Timing | None = None,
    decoder: Any = None,
    signals: Any = None,
    notifier: Notifier | None = None,
    wait: Callable[[float], Any] | None = None,
    connectivity: Callable[[float], Any] | None = None,
    on_scan: Callable[[Scan], None] | None = None,
    source: Any = None,
) -> Rig:
    """The loop over ``frames`` (tuples of texts) with ``store`` as its trust folder.

    ``mono`` (if given) must carry ``clock`` as its wall clock; ``on_scan`` is called after
    the scan is kept in ``Rig.seen``.
    """
    clock = clock or (mono.wall if mono is not None and mono.wall is not None else FixedClock(NOW))
    mono = mono or FakeClock(wall=clock)
    if source is None:
        source = Frames(frames, clock=mono)
        if flaky is not None:
            source = FlakyFrameSource(source, **flaky)
    seen: list[Scan] = []

    def observe(scan: Scan) -> None:
        seen.append(scan)
        if on_scan is not None:
            on_scan(scan)

    signals = signals if signals is not None else RecordingSignals()
    display = display if display is not None else RecordingDisplay()
    loop = Checkpoint(
        source=source,
        decoder=decoder if decoder is not None else TextDecoder(mono),
        debouncer=Debouncer(absent_frames=3, absent_s=0.5),
        trust=trust or StaticTrust(store, policy, journal),
        journal=journal,
        signals=signals,
        display=display,
        clock=clock,
        zone=ZONE,
        timing=timing or Timing(verdict_hold_s=3.0),
        notifier=notifier,
        monotonic=mono,
        wait=wait or mono.wait,
        on_scan=observe,
        connectivity=connectivity,
    )
    return Rig(loop, mono, source, signals, display, notifier, seen)


@pytest.fixture
def journal(tmp_path):
    """The real journal, SQLite in ``tmp_path``."""
    with Journal(tmp_path / "journal.sqlite", b"k" * 32, "test-device") as j:
        yield j


@pytest.fixture
def checkpoint(trust) -> Callable[..., Rig]:
    """Build the frame loop: ``checkpoint(frames, journal, **parts)`` (see
    :func:`build_checkpoint`; the trust folder is the suite's ``trust`` store)."""

    def build(frames: Iterable[Any], journal: Any, **parts: Any) -> Rig:
        return build_checkpoint(frames, trust, journal, **parts)

    return build


def issue(issuer, zones=(ZONE,), start=NOW - 60, duration=3600, purpose="work") -> str:
    """A pass for ``zones`` (this checkpoint's by default), valid from a minute before NOW."""
    return issuer.issue(purpose, list(zones), start, duration)
