"""What every benchmark prints first: the CPU it ran on, the core count and the load.

Ratios between frameworks differ from one CPU model to the next (an AMD EPYC and an Intel Xeon
gave 1.07x and 0.85x for the same LSTM benchmark), so a figure without its CPU model means little.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` shows it (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not on every platform
        return float("nan")


def header(extra: str = "") -> str:
    """One line: CPU model, cores, load average now, and ``extra`` (versions, settings)."""
    line = f"# machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_average():.2f}"
    return line + (f"; {extra}" if extra else "")


def load_warning(*loads: float) -> str:
    """A warning line if the load average went above the core count during the run, else ''."""
    cores = os.cpu_count() or 1
    if max(loads, default=0.0) > cores + 0.5:  # the benchmark itself keeps about `cores` busy
        return (f"# WARNING: load average above {cores} cores: other processes competed for the CPU; "
                "ratios from this run are unreliable (torch's OpenMP threads suffer more than XLA's)")
    return ""
