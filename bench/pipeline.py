"""Benchmark the checkpoint's frame pipeline. Prints figures, asserts nothing.

    .venv/bin/python bench/pipeline.py [--sizes 640x480,1280x720] [--seconds 5] [--scans 200]

All per-frame figures are CPU time of this thread (wall beside it), medians with their spread
over the frames (``bench/measure.py``). For each frame size:

- decode of a frame with a pass in view and of an empty frame by the configured decoder
  (zxing-cpp with inversion), beside its anchor in the same run: bare ``zxingcpp.read_barcodes``
  on the same frames (QR only, inversion on), and the ratio;
- frame-to-verdict with the decode excluded (debounce, verify, decide, journal commit with
  ``synchronous=FULL``, signals, display hand-off) and included (``process(frame)``), both on
  **fresh accepts**: every pass is new to the journal, so no figure is an ``already_used``
  denial;
- the per-frame cost of everything but the decode on an idle frame (amortised);
- CPU share of one core running the real loop at 15 and 30 fps with nothing in view;
- start-up to the first processed frame (``READY=1``: wall, and the child's CPU) and the peak
  RSS of a ``passgate run --config`` process (GPIO on MockFactory, frames from files, dummy
  OLED). ``bench/startup.py`` measures the start-up cold and warm.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from passgate.checkpoint import simulate
from passgate.checkpoint.debounce import Debouncer
from passgate.checkpoint.loop import Checkpoint, Timing
from passgate.checkpoint.parts import FixedTrust
from passgate.checkpoint.trustview import StaticTrust, local_policy
from passgate.checkpoint.wiring import read_hash_key
from passgate.hardware.camera import Paced, SceneSource, SceneStep
from passgate.hardware.decode import default_decoder
from passgate.hardware.display import Display
from passgate.hardware.signals.gpio import Signals, SignalsConfig, make_pin_factory
from passgate.journal.journal import Journal
from passgate.passes.truststore import TrustStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402
import startup as startup_bench  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from passgate.cli import main; sys.exit(main())"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def timed(fn, *args) -> float:
    """CPU seconds of this thread for one call (wall is taken by the callers that print it)."""
    t0 = time.thread_time()
    fn(*args)
    return time.thread_time() - t0


def per_frame(name: str, fn, items: list) -> measure.Samples:
    """CPU and wall of ``fn(item)`` for each item: the samples are the frames."""
    out = measure.Samples(name)
    for item in items:
        c0, w0 = time.thread_time(), time.perf_counter()
        fn(item)
        out.cpu.append(time.thread_time() - c0)
        out.wall.append(time.perf_counter() - w0)
    return out


def bare_zxing(frame) -> object:
    """The anchor: zxing-cpp alone, QR only, with inversion (the configured decoder's call)."""
    import zxingcpp

    return zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode, try_invert=True)


def make_checkpoint(state: Path, source=None):
    cfg = simulate.sim_config(state)
    journal = Journal(cfg.journal.path, read_hash_key(cfg.journal.hash_key_file), "bench")
    policy = local_policy(cfg)  # anti-passback on (10 min): every scan looks it up
    from dataclasses import replace

    signals = Signals(SignalsConfig(), pin_factory=make_pin_factory("mock"))
    display = Display.from_config(replace(cfg.display, png_dir=None))
    cp = Checkpoint(
        source=source,
        decoder=default_decoder(),
        debouncer=Debouncer(1, 0.0),
        trust=StaticTrust(TrustStore.from_dir(cfg.trust.dir), policy, journal),
        journal=journal,
        signals=signals,
        display=display,
        clock=simulate.SystemTimeClock(),
        zone=cfg.checkpoint.zone,
        timing=Timing(verdict_hold_s=cfg.display.verdict_hold_s),
    )
    return cp, (journal, signals, display)


class StaticView(FixedTrust):
    def __init__(self, view) -> None:
        self.view = view

    def current(self, now: float):
        return self.view


def frames_of(steps, size) -> list:
    src = SceneSource(steps, size=size, seed=3)
    src.open()
    out = []
    while (f := src.read()) is not None:
        out.append(f)
    return out


def bench_size(size: tuple[int, int], n_scans: int, seconds: float, state: Path) -> dict:
    issuer, _ = simulate.load_issuer(state)
    now = int(time.time())
    texts = [issuer.issue("work", ["gate-1"], now - 60, 3600) for _ in range(n_scans)]
    n_frames = min(60, n_scans)
    # Passes of their own for the decode-included phase: each is new to the journal there
    # too, so that phase times fresh accepts, not already_used denials.
    fresh = [issuer.issue("work", ["gate-1"], now - 60, 3600) for _ in range(n_frames)]
    code_frames = frames_of([SceneStep(t, 1) for t in fresh], size)
    empty_frames = frames_of([SceneStep(None, 30)], size)
    cp, parts = make_checkpoint(state)
    dec = cp.decoder
    read = [bool(dec.decode(f)) for f in code_frames]
    r = {"size": size, "read": f"{sum(read)}/{len(read)}"}
    # Decoder and bare zxing-cpp take turns frame by frame: load bursts hit both alike.
    s = {"code": measure.Samples("decode, code in view"),
         "code_bare": measure.Samples("bare zxing-cpp, code in view"),
         "empty": measure.Samples("decode, empty frame"),
         "empty_bare": measure.Samples("bare zxing-cpp, empty frame")}
    for frames, key in ((code_frames * 3, "code"), (empty_frames * 3, "empty")):
        for f in frames:
            for name, fn in ((key, dec.decode), (key + "_bare", bare_zxing)):
                c0, w0 = time.thread_time(), time.perf_counter()
                fn(f)
                s[name].cpu.append(time.thread_time() - c0)
                s[name].wall.append(time.perf_counter() - w0)
    r["samples"] = s
    r["decode_code"] = s["code"].median
    r["decode_empty"] = s["empty"].median

    # Decode excluded: a new presentation's text straight into the rest of the pipeline.
    # The signature check and the journal's durable commit are timed inside each scan, so
    # "the rest" is measured on the same scans, not estimated from separate runs.
    spent = {"verify": 0.0, "commit": 0.0}
    view = cp.trust.current(now)
    verifier, record, antipassback = view.verifier, cp.journal.record, view.antipassback

    class TimedVerifier:
        trust = verifier.trust

        def check(self, *a):
            t0 = time.thread_time()
            try:
                return verifier.check(*a)
            finally:
                spent["verify"] += time.thread_time() - t0

    class TimedLookup:
        def already_used(self, *a):
            t0 = time.thread_time()
            try:
                return antipassback.already_used(*a)
            finally:
                spent["commit"] += time.thread_time() - t0

    def timed_record(rec):
        t0 = time.thread_time()
        try:
            return record(rec)
        finally:
            spent["commit"] += time.thread_time() - t0

    real_trust = cp.trust
    cp.trust = StaticView(
        dataclasses.replace(view, verifier=TimedVerifier(), antipassback=TimedLookup())
    )
    cp.journal.record = timed_record
    excl, split = [], {"verify": [], "commit": [], "rest": []}
    for t in texts:
        spent.update(verify=0.0, commit=0.0)
        total = timed(cp.handle_texts, [t])
        excl.append(total)
        split["verify"].append(spent["verify"])
        split["commit"].append(spent["commit"])
        split["rest"].append(total - spent["verify"] - spent["commit"])
        cp.handle_texts([])  # the code leaves the view (absent_frames=1, absent_s=0)
    r["verdict_excl"] = statistics.median(excl)
    for k, v in split.items():
        r[k] = statistics.median(v)
    cp.trust, cp.journal.record = real_trust, record
    # Decode included: a frame with a code (each a new presentation after an empty one).
    reasons: list[str] = []

    def process_fresh(f) -> None:
        cp.debouncer.reset()
        reasons.extend(scan.verdict.reason.value for scan in cp.process(f))

    incl = per_frame("frame to verdict, with decode", process_fresh, code_frames)
    r["verdict_incl"] = incl.median
    r["incl_reasons"] = {k: reasons.count(k) for k in sorted(set(reasons))}
    # Idle frames: everything after the decode, amortised over many frames (ticks included).
    t0 = time.thread_time()
    n_idle = 20000
    for _ in range(n_idle):
        cp.handle_texts([])
    r["idle_rest"] = (time.thread_time() - t0) / n_idle
    for p in parts:
        p.close()

    for fps in (15, 30):
        r[f"cpu_{fps}"] = cpu_share(state, size, fps, seconds)
    r["startup"], r["startup_cpu"], r["rss_mb"] = startup_and_rss(state, size)
    return r


def cpu_share(state: Path, size, fps: float, seconds: float) -> float:
    source = Paced(SceneSource([SceneStep(None, 10)], size=size, seed=1, loop=True), fps)
    cp, parts = make_checkpoint(state, source)
    cp.process(frames_of([SceneStep(None, 1)], size)[0])  # warm up (first-frame work)
    timer = threading.Timer(seconds, cp.stop)
    c0, w0 = time.process_time(), time.perf_counter()
    timer.start()
    cp.run()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    for p in parts:
        p.close()
    return cpu / wall


def startup_and_rss(state: Path, size) -> tuple[float, float, float]:
    """Spawn ``passgate run --config`` and time it to READY=1 (after the first frame)."""
    tmp = Path(tempfile.mkdtemp(prefix="pg-bench-"))
    config = startup_bench.write_config(tmp, state, f'source = "dir"\ndir = "{state / "trust"}"',
                                        size, frame=frames_of([SceneStep(None, 1)], size)[0])
    notify = tmp / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(30)
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "NOTIFY_SOCKET": str(notify)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*CLI, "run", "--config", str(config)], env=env, stderr=subprocess.DEVNULL
    )
    while b"READY=1" not in sock.recv(4096):
        pass
    startup = time.perf_counter() - t0
    startup_cpu = measure.proc_cpu_s(proc.pid)
    time.sleep(2.0)  # steady state before reading the peak
    # VmHWM: the peak since exec. (wait4's ru_maxrss would also count the pre-exec copy of
    # this benchmark process.)
    hwm_mb = measure.proc_hwm_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    sock.close()
    return startup, startup_cpu, hwm_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--seconds", type=float, default=5.0, help="per CPU-share measurement")
    ap.add_argument("--scans", type=int, default=200)
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="pg-bench-state-"))
    simulate.prepare(state, time.time())
    print(
        f"passgate pipeline benchmark (python {sys.version.split()[0]}, "
        f"decoder {default_decoder().name}); CPU time of one thread, medians unless noted"
    )
    print(measure.machine_line())
    for spec in args.sizes.split(","):
        w, h = (int(v) for v in spec.split("x"))
        r = bench_size((w, h), args.scans, args.seconds, state)
        rest_scan = r["verdict_excl"]
        print(f"\n{w}x{h}  (synthetic frames decoded: {r['read']})")
        sm = r["samples"]
        print(sm["code"].line(1e-3, "ms", sm["code_bare"]))
        print(sm["code_bare"].line(1e-3, "ms"))
        print(sm["empty"].line(1e-3, "ms", sm["empty_bare"]))
        print(sm["empty_bare"].line(1e-3, "ms"))
        print(
            f"  frame to verdict, no decode   {ms(rest_scan)} CPU  "
            f"({100 * rest_scan / r['decode_code']:.0f}% of a code decode; journal commit "
            "with fsync included)"
        )
        print(
            f"    of which: signature check {ms(r['verify'])}, journal (anti-passback look-up and"
            f" commit) {ms(r['commit'])},"
            f" the rest {ms(r['rest'])} ({100 * r['rest'] / r['decode_code']:.1f}% of a code"
            " decode; aim < 10%)"
        )
        print(f"  frame to verdict, with decode {ms(r['verdict_incl'])} CPU (fresh accepts; "
              f"verdicts {r['incl_reasons']})")
        print(
            f"  idle frame, all but decode    {ms(r['idle_rest'])} mean  "
            f"({100 * r['idle_rest'] / r['decode_empty']:.1f}% of an empty decode; aim < 10%)"
        )
        print(
            f"  CPU share of one core, idle   15 fps: {100 * r['cpu_15']:.1f}%   "
            f"30 fps: {100 * r['cpu_30']:.1f}%"
        )
        print(f"  start-up to first frame       {r['startup_cpu']:.2f} s CPU, {r['startup']:.2f} s "
              "wall (aim <= 1.5 s CPU; bench/startup.py: cold and warm)")
        print(f"  peak RSS of passgate run      {r['rss_mb']:.1f} MB (aim < 80 MB)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nbench process peak RSS {peak:.0f} MB (frames, passes and timings held in memory)")


if __name__ == "__main__":
    main()
