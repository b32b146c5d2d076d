"""Which passes' accepts still hold the door: the frame loop's memory for reshows.

People who are not sure the door opened show their pass again. While that pass's own accept
holds (``hold_s`` after it was signalled), the frame loop records the new scan with whatever
verdict the checks give, flagged ``reshow``, and signals nothing: the door and the screen stay
as the accept left them, and the relay is not cut, re-triggered or extended. Every accept is
remembered on its own (a second person admitted a moment later must not make the first one's
reshow a deny that cuts the relay), and a deny that is signalled (another pass) drops the
relay, which ends every hold.

The loop's ``hold_s`` is ``signals.relay_hold_s``, not the verdict screen's hold when that is
longer: once the relay dropped the door is shut, and whoever shows the pass then (perhaps a
second person with a copy) must see red, not a green screen left up. Keys are the journal's
keyed pass hashes; time is the loop's monotonic clock.
"""

from __future__ import annotations


class Holds:
    """The accepts still holding, by pass hash. ``hold_s``: how long an accept holds."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._since: dict[bytes, float] = {}

    def start(self, pass_hash: bytes | None, mono: float) -> None:
        """``pass_hash`` was accepted (and signalled) at ``mono`` (``None``: nothing to hold)."""
        if pass_hash is None:
            return
        # Forget the finished ones: at most the accepts of the last hold_s are kept.
        self._since = {h: t for h, t in self._since.items() if mono - t < self.hold_s}
        self._since[pass_hash] = mono

    def held(self, pass_hash: bytes | None, mono: float) -> bool:
        """Whether the accept of ``pass_hash`` still holds at ``mono``."""
        since = None if pass_hash is None else self._since.get(pass_hash)
        return since is not None and mono - since < self.hold_s

    def end_all(self) -> None:
        """The relay dropped (a deny was signalled): no accept holds any more."""
        self._since.clear()
