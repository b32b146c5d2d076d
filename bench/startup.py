"""Start-up CPU of ``passgate run`` to the first processed frame, cold and warm. Prints only.

    .venv/bin/python bench/startup.py [--repeats 3]

The firmware is copied to a temporary folder without ``__pycache__``; ``passgate run`` with
a folder camera (one empty 640x480 frame), GPIO on MockFactory and a dummy OLED is started
from that copy, and its CPU (user + system, ``/proc/<pid>/stat``) is read when it sends
``READY=1`` (after the first frame). *Cold*: ``PYTHONDONTWRITEBYTECODE=1`` on the fresh copy,
every passgate module compiled from source (a package that ships no bytecode). *Warm*: the
copy compiled first with ``python -m compileall`` (what setup.sh does). Third-party packages
keep the bytecode their installer wrote. Aim: <= 1.5 s CPU cold. Medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import measure  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from passgate.cli import main; sys.exit(main())"]


def write_config(tmp: Path, state: Path, trust: str, size=(640, 480),
                 frame: np.ndarray | None = None) -> Path:
    """A ``passgate run`` config with a folder camera of one empty frame (``frame``, else
    noise); ``trust`` is the [trust] table's body."""
    frames = tmp / "frames"
    frames.mkdir(exist_ok=True)
    if frame is None:
        frame = np.random.default_rng(1).integers(90, 160, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(frame).save(frames / "empty.png")
    config = tmp / "passgate.toml"
    config.write_text(f"""
[checkpoint]
zone = "gate-1"
state_dir = "{state}"
[camera]
source = "files"
path = "{frames}"
loop = true
lores_size = [{size[0]}, {size[1]}]
main_size = [{size[0]}, {size[1]}]
[display]
driver = "dummy"
[trust]
{trust}
""")
    return config


def run_to_ready(config: Path, env: dict[str, str], after_ready_s: float = 0.0,
                 timeout: float = 60) -> tuple[float, float, float]:
    """Start ``passgate run``; return (CPU s at READY=1, wall s to READY=1, VmHWM MB at the
    end), ``after_ready_s`` seconds of frames after READY before the peak is read."""
    tmp = Path(tempfile.mkdtemp(prefix="pg-ready-"))
    notify = tmp / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(timeout)
    env = {**env, "GPIOZERO_PIN_FACTORY": "mock", "NOTIFY_SOCKET": str(notify)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*CLI, "run", "--config", str(config)], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        wall = time.perf_counter() - t0
        cpu = measure.proc_cpu_s(proc.pid)
        time.sleep(after_ready_s)
        hwm = measure.proc_hwm_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        sock.close()
        shutil.rmtree(tmp)
    return cpu, wall, hwm


def fresh_copy(dest: Path) -> Path:
    src = Path(__import__("passgate").__file__).resolve().parent.parent
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    from passgate.checkpoint import simulate

    print("passgate bench/startup.py: passgate run to the first frame, CPU of the child")
    print(measure.machine_line())
    with tempfile.TemporaryDirectory(prefix="pg-startup-") as tmp_s:
        tmp = Path(tmp_s)
        state = tmp / "state"
        simulate.prepare(state, time.time())
        config = write_config(tmp, state, f'source = "dir"\ndir = "{state / "trust"}"')
        results = {}
        for mode in ("cold", "warm"):
            cpus, walls = [], []
            for i in range(args.repeats):
                code = fresh_copy(tmp / f"fw-{mode}-{i}")
                env = {**os.environ, "PYTHONPATH": str(code)}
                if mode == "cold":
                    env["PYTHONDONTWRITEBYTECODE"] = "1"
                else:
                    compileall.compile_dir(code, quiet=1)
                cpu, wall, _ = run_to_ready(config, env)
                cpus.append(cpu)
                walls.append(wall)
            results[mode] = (statistics.median(cpus), min(cpus), max(cpus),
                             statistics.median(walls))
            c, lo, hi, w = results[mode]
            print(f"  {mode}: {c:.2f} s CPU ({lo:.2f}-{hi:.2f}, n={args.repeats}), "
                  f"wall {w:.2f} s")
        print(f"  bytecode saves {results['cold'][0] - results['warm'][0]:.2f} s CPU; "
              f"cold / warm = {results['cold'][0] / results['warm'][0]:.2f}x (aim: cold <= 1.5 s)")


if __name__ == "__main__":
    main()
