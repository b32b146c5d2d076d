"""Debounce over frame sequences: one verdict per presentation."""

from __future__ import annotations

import pytest

from passgate.checkpoint.debounce import Debouncer

FPS = 10


def run(deb: Debouncer, frames: list[list[str]], fps: float = FPS) -> list[tuple[int, str]]:
    """Feed frames at ``fps``; return (frame index, text) for every new presentation."""
    out = []
    for i, texts in enumerate(frames):
        out += [(i, text) for text in deb.feed(texts, i / fps)]
    return out


def test_held_code_triggers_once():
    assert run(Debouncer(), [["A"]] * 50) == [(0, "A")]


def test_flicker_does_not_retrigger():
    # Decoded in about every other frame, with runs of up to 4 misses (0.4 s).
    pattern = ["A", "", "A", "", "", "A", "", "", "", "", "A", "A", "", "A"]
    frames = [[t] if t else [] for t in pattern * 5]
    assert run(Debouncer(absent_frames=5, absent_s=1.0), frames) == [(0, "A")]


def test_shown_again_after_absence_is_a_new_presentation():
    frames = [["A"]] * 5 + [[]] * 12 + [["A"]] * 5  # away for 1.2 s and 12 frames
    assert run(Debouncer(absent_frames=5, absent_s=1.0), frames) == [(0, "A"), (17, "A")]
    # Away for 0.6 s only: still the same presentation.
    frames = [["A"]] * 5 + [[]] * 6 + [["A"]] * 5
    assert run(Debouncer(absent_frames=5, absent_s=1.0), frames) == [(0, "A")]


def test_both_thresholds_are_needed():
    # Many missed frames but only 0.3 s: a fast camera's blur, not a new presentation.
    fast = [["A"]] + [[]] * 9 + [["A"]]
    assert run(Debouncer(absent_frames=5, absent_s=1.0), fast, fps=30) == [(0, "A")]
    # Long enough in seconds but only 2 frames observed (a stalled camera): the same.
    slow = [["A"], [], [], ["A"]]
    assert run(Debouncer(absent_frames=5, absent_s=1.0), slow, fps=1) == [(0, "A")]
    # Enough of both.
    assert run(Debouncer(absent_frames=5, absent_s=1.0), [["A"]] + [[]] * 5 + [["A"]], fps=2) \
        == [(0, "A"), (6, "A")]


def test_two_codes_at_once_and_independently():
    frames = (
        [["A", "B"]] * 3  # both shown together: two presentations in one frame
        + [["B"]] * 12  # A taken away, B stays
        + [["B", "A"]] * 2  # A back after 1.2 s: new; B still the same presentation
        + [["C", "C"]]  # a duplicate within one frame counts once
    )
    assert run(Debouncer(absent_frames=5, absent_s=1.0), frames) == [
        (0, "A"), (0, "B"), (15, "A"), (17, "C"),
    ]


def test_gone_codes_are_forgotten_and_reset_clears():
    deb = Debouncer(absent_frames=2, absent_s=0.1)
    run(deb, [["A", "B"], [], [], [], ["C"]])
    assert deb.in_view == {"C"}
    deb.reset()
    assert deb.feed(["C"], 10.0) == ["C"]


@pytest.mark.parametrize("kwargs", [{"absent_frames": 0}, {"absent_frames": 2.5},
                                    {"absent_s": -1}, {"absent_s": float("nan")}])
def test_bad_thresholds_are_refused(kwargs):
    with pytest.raises(ValueError):
        Debouncer(**kwargs)
