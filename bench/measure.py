"""How every passgate benchmark measures: CPU time beside wall time, repeated, medians, anchors.

Rules kept (issue 15):

- The figure is CPU time (``time.thread_time`` for work on this thread, ``process_time`` when
  other threads take part, ``getrusage``/``/proc`` for child processes); wall time is printed
  beside it. On a shared machine wall time measures the neighbours, CPU time mostly the code.
- Every figure is repeated; the median is printed with its spread (min-max).
- Every figure that has one is printed beside its anchor, the bare library doing the same
  work, measured in the same run and interleaved with it (a burst of load hits both alike),
  and the ratio of the medians. The ratio is the figure to compare between machines.
- Each output starts with :func:`machine_line`: CPU model, cores and load while it ran.
- Nothing here asserts a time; ``tests/test_bench.py`` only runs each bench tiny.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Samples:
    """Per-unit CPU and wall seconds of the repeats of one measured thing."""

    name: str
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall)

    def line(self, unit: float = 1e-6, label: str = "us", anchor: Samples | None = None) -> str:
        """``name  median CPU (min-max), wall median`` and, with ``anchor``, the ratio."""
        text = (f"  {self.name:34s} CPU {self.median / unit:9.2f} {label} "
                f"({min(self.cpu) / unit:.2f}-{max(self.cpu) / unit:.2f}, n={len(self.cpu)})"
                f"  wall {self.wall_median / unit:9.2f} {label}")
        if anchor is not None:
            text += f"  = {self.median / anchor.median:.2f}x {anchor.name}"
        return text


def repeat(fns: dict[str, Callable[[], int]], repeats: int,
           clock: Callable[[], float] = time.thread_time) -> dict[str, Samples]:
    """Run each ``fn`` (returning how many units it did) ``repeats`` times, taking turns.

    Returns per-unit seconds by CPU (``clock``) and by wall. A collection runs before each
    timed call, so one function's garbage is not collected on another's clock.
    """
    out = {name: Samples(name) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            c0, w0 = clock(), time.perf_counter()
            units = fn()
            cpu, wall = clock() - c0, time.perf_counter() - w0
            out[name].cpu.append(cpu / units)
            out[name].wall.append(wall / units)
    return out


def rate(samples: Samples) -> str:
    return f"{1 / samples.median:,.0f}/s by CPU"


def ratio(value: Samples, anchor: Samples) -> float:
    return value.median / anchor.median


def machine_line() -> str:
    """CPU model, cores visible and the load average, for the head of every bench output."""
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for ln in out.splitlines():
            if ln.startswith("Model name:"):
                model = ln.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        model = _cpuinfo_model() or model
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"machine: {model}, {os.cpu_count()} cores, load average {load}"


def _cpuinfo_model() -> str | None:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a running process since its exec, in MB (2**20)."""
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmHWM:"):
            return int(ln.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")
