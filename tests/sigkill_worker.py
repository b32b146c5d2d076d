"""A checkpoint process for test_sigkill.py: the real loop over a stream of fast scans.

    python tests/sigkill_worker.py STATE SIDE_FILE N

Runs :func:`passgate.wiring.run_checkpoint` (real journal, debouncer, verifier, anti-passback,
signals on MockFactory pins, display worker with no outputs) over a frame source that yields
pre-decoded texts: N distinct valid passes, each followed by an empty frame, so every pass is
a new presentation. After each scan is recorded and signalled, one line ``<nonce hex> <seq>``
is appended to SIDE_FILE with a single ``write`` (O_APPEND): the record of what this process
*signalled*. ``READY=1`` goes to ``$NOTIFY_SOCKET`` once frames flow, as under systemd.
STATE must have been prepared with ``passgate.simulate.prepare`` (keys, trust, hash key).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from passgate import simulate
from passgate.camera.base import SourceBase
from passgate.config import from_dict
from passgate.signals import make_pin_factory
from passgate.wiring import run_checkpoint


class Texts(SourceBase):
    """Frames that are already the decoded texts: (pass,), (), (pass,), () ..."""

    name = "pre-decoded stream"

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self.frames = [f for t in texts for f in ((t,), ())]

    def _open(self) -> None:
        pass

    def _read(self):
        return self.frames.pop(0) if self.frames else None

    def _close(self) -> None:
        pass


class PassThrough:
    def decode(self, frame):
        return list(frame)


def main(state: Path, side: Path, n: int) -> int:
    issuer, _ = simulate.load_issuer(state)
    now = int(time.time())
    texts = [issuer.issue("work", ["gate-1"], now - 60, 3600) for _ in range(n)]
    cfg = from_dict(
        {
            "checkpoint": {"zone": "gate-1", "device_id": "sigkill", "state_dir": str(state)},
            "trust": {"source": "dir", "dir": str(state / "trust")},
            "display": {"driver": "none"},
            "decoder": {"absent_frames": 1, "absent_s": 0},
        }
    )
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def signalled(scan) -> None:
        os.write(fd, f"{scan.nonce.hex()} {scan.seq}\n".encode())

    run_checkpoint(
        cfg,
        source=Texts(texts),
        pin_factory=make_pin_factory("mock"),
        clock=simulate.SystemTimeClock(),
        decoder=PassThrough(),
        on_scan=signalled,
    )
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
