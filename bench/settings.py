"""How long and how often to measure, and what: the full defaults, and --quick's smoke run."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cores() -> int:
    return os.process_cpu_count() or 1


@dataclass(frozen=True)
class Settings:
    repetitions: int = 3
    duration: int = 10  # seconds of each measured wrk run (wrk takes whole seconds)
    warmup: int = 2  # seconds of load before each measured run, not counted
    workers: int = dataclasses.field(default_factory=cores)  # N
    servers: tuple[str, ...] = ()  # keys from bench.servers.catalogue; () means all
    scenarios: tuple[str, ...] = ()  # names from bench.metrics.SCENARIOS; () means all
    stream_mib: int = 100
    # Largest worker count of the CPU-bound scaling curve (1..2x cores); 0 skips the curve.
    scaling_max: int = dataclasses.field(default_factory=lambda: 2 * cores())
    out_dir: Path = RESULTS_DIR
    quick: bool = False

    @property
    def log_dir(self) -> Path:
        """Server logs and the upload body: scratch, ignored by git."""
        return self.out_dir / "tmp"


def quick(settings: Settings) -> Settings:
    """A smoke run: every server and scenario once, with short loads."""
    return dataclasses.replace(settings, repetitions=1, duration=2, warmup=1, quick=True)
