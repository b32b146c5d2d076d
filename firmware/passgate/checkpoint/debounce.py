"""One verdict per presentation: a code held in front of the camera is judged once.

Decoders miss frames (motion blur, glare, a thumb over a corner), so "not decoded in this
frame" does not mean "taken away". A code counts as gone only when it has been missing for
at least ``absent_frames`` consecutive frames *and* at least ``absent_s`` seconds: the frame
count protects against a stalled camera (no frames, so nothing was observed missing), the
seconds against a fast camera where a few missed frames are a few milliseconds. Shown again
after that, it is a new presentation (and anti-passback decides whether it is a repeat).

A holder's live codes (``PG2:``, spec 1.2) change every few seconds while the phone is held
up; the codes of one pass count as one presentation (keyed by their level 1,
:func:`passgate.passes.holder.presentation_key`), so a refresh in view is not judged again
(anti-passback would deny it, and the door close on the holder).
"""

from __future__ import annotations

from dataclasses import dataclass

from passgate.errors import ArgumentError
from passgate.passes.holder import presentation_key


@dataclass(slots=True)
class _Seen:
    last_t: float
    missed: int = 0


class Debouncer:
    """Turns the texts decoded in each frame into new presentations.

    ``absent_frames``: consecutive frames without the code before it may count as gone.
    ``absent_s``: seconds since it was last decoded before it may count as gone.
    Feed it every frame, including frames with no code (an empty list), with ``t`` from a
    monotonic clock. Not thread-safe: one frame loop feeds it.
    """

    def __init__(self, absent_frames: int = 5, absent_s: float = 1.0) -> None:
        if isinstance(absent_frames, bool) or not isinstance(absent_frames, int) \
                or absent_frames < 1:
            raise ArgumentError(f"absent_frames must be an integer >= 1, not {absent_frames!r}")
        if not isinstance(absent_s, int | float) or not absent_s >= 0:
            raise ArgumentError(f"absent_s must be >= 0 seconds, not {absent_s!r}")
        self.absent_frames = absent_frames
        self.absent_s = float(absent_s)
        self._seen: dict[str, _Seen] = {}

    def feed(self, texts: list[str], t: float) -> list[str]:
        """Texts decoded in the frame taken at ``t``; returns those newly presented, in the
        order given (duplicates within a frame count once)."""
        present: dict[str, str] = {}
        for text in texts:
            present.setdefault(presentation_key(text), text)
        for key, seen in list(self._seen.items()):
            if key in present:
                continue
            seen.missed += 1
            if seen.missed >= self.absent_frames and t - seen.last_t >= self.absent_s:
                del self._seen[key]  # gone: forgotten, so memory stays bounded
        new: list[str] = []
        for key, text in present.items():
            known = self._seen.get(key)
            if known is None:
                new.append(text)
                self._seen[key] = _Seen(t)
            else:
                known.last_t, known.missed = t, 0
        return new

    @property
    def in_view(self) -> frozenset[str]:
        """Texts currently treated as still presented (a live code by its presentation key)."""
        return frozenset(self._seen)

    def reset(self) -> None:
        """Forget everything (e.g. after a camera fault: whatever is shown next is new)."""
        self._seen.clear()
