"""What the figures were measured on: cores, CPU, memory, load, and every version involved."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.load_tools import wrk_version
from bench.settings import cores

PACKAGES = ("interpserve", "uvicorn", "granian", "hypercorn", "uvloop", "httptools")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    """Other work on the machine shows here: near 0 before a run means a quiet machine."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, str]:
    info = {
        "cores": f"{cores()} available to this process ({os.cpu_count()} in the machine)",
        "cpu": _cpu_model(),
        "memory": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version(),
    }
    return info | {package: _version(package) for package in PACKAGES}
