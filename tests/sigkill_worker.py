"""A checkpoint process for test_sigkill.py: the real loop over a stream of fast scans.

    python tests/sigkill_worker.py STATE SIDE_FILE N

Runs :func:`passgate.checkpoint.wiring.run_checkpoint` (real journal, debouncer, verifier,
anti-passback,
signals on MockFactory pins, display worker with no outputs) over a frame source that yields
pre-decoded texts: N distinct valid passes, each followed by an empty frame, so every pass is
a new presentation. ``READY=1`` goes to ``$NOTIFY_SOCKET`` once frames flow, as under systemd.
STATE must have been prepared with ``passgate.checkpoint.simulate.prepare`` (keys, trust, hash key).

SIDE_FILE gets two kinds of line, each with a single ``write`` (O_APPEND):

- ``signal <accept|deny> <pass hash hex>``, written by a wrapper around the checkpoint's
  Signals the moment the loop calls ``accept()`` or ``deny()`` (just before the pins move):
  the record of what this process *signalled*, however the loop is ordered inside;
- ``scan <nonce hex> <seq> <pass hash hex>``, from ``on_scan`` after the scan is complete,
  to check that the journal row is the one the loop reported.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from passgate.checkpoint import simulate
from passgate.checkpoint.wiring import run_checkpoint
from passgate.config.load import from_dict
from passgate.hardware.camera.base import SourceBase
from passgate.hardware.signals.gpio import make_pin_factory
from passgate.issuing.issuer import PASS_ID_LEN


class Texts(SourceBase):
    """Frames that are already the decoded texts: (pass,), (), (pass,), () ...

    ``current`` is the pass of the frame read last: the one the loop is working on."""

    name = "pre-decoded stream"

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self.frames = [f for t in texts for f in ((t,), ())]
        self.current: str | None = None

    def _open(self) -> None:
        pass

    def _read(self):
        if not self.frames:
            return None
        frame = self.frames.pop(0)
        if frame:
            self.current = frame[0]
        return frame

    def _close(self) -> None:
        pass


class PassThrough:
    def decode(self, frame):
        return list(frame)


class SignalLog:
    """The checkpoint's Signals, with a side-file line the moment a verdict is signalled."""

    def __init__(self, inner, fd: int, source: Texts, hashes: dict[str, str]) -> None:
        self.inner, self.fd, self.source, self.hashes = inner, fd, source, hashes

    def _line(self, what: str) -> None:
        os.write(self.fd, f"signal {what} {self.hashes[self.source.current]}\n".encode())

    def accept(self) -> None:
        self._line("accept")
        self.inner.accept()

    def deny(self) -> None:
        self._line("deny")
        self.inner.deny()

    def fault(self, on: bool) -> None:
        self.inner.fault(on)

    def release(self) -> None:
        self.inner.release()

    @property
    def relay_down(self) -> bool:  # the rest of the loop's Outputs interface: passed through
        return self.inner.relay_down

    def retry(self, now: float) -> str:
        return self.inner.retry(now)


def main(state: Path, side: Path, n: int) -> int:
    issuer, _ = simulate.load_issuer(state)
    now = int(time.time())
    ids = [os.urandom(PASS_ID_LEN) for _ in range(n)]
    texts = [issuer.issue("work", ["gate-1"], now - 60, 3600, pass_id=i) for i in ids]
    cfg = from_dict(
        {
            "checkpoint": {"zone": "gate-1", "device_id": "sigkill", "state_dir": str(state)},
            "trust": {"source": "dir", "dir": str(state / "trust")},
            "display": {"driver": "none"},
            "decoder": {"absent_frames": 1, "absent_s": 0},
        }
    )
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    source = Texts(texts)
    hashes: dict[str, str] = {}

    def ready(checkpoint) -> None:  # before the loop starts: the journal is open
        for text, pass_id in zip(texts, ids, strict=True):
            hashes[text] = checkpoint.journal.pass_hash(pass_id).hex()
        checkpoint.signals = SignalLog(checkpoint.signals, fd, source, hashes)

    def scanned(scan) -> None:
        os.write(fd, f"scan {scan.nonce.hex()} {scan.seq} {hashes[scan.text]}\n".encode())

    run_checkpoint(
        cfg,
        source=source,
        pin_factory=make_pin_factory("mock"),
        clock=simulate.SystemTimeClock(),
        decoder=PassThrough(),
        on_scan=scanned,
        ready=ready,
    )
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
