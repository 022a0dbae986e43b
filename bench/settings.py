"""How long and how often to measure, and what: the full defaults, and --quick's smoke run."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cores() -> int:
    return os.process_cpu_count() or 1


def parse_rounds(
    description: str,
    argv: list[str] | None,
    *,
    requests: int,
    batch: int,
    rounds: int,
    per: str,
    profile: bool = False,
) -> argparse.Namespace:
    """The command line of a microbenchmark that times rounds of requests sent in batches
    (bench.worker_cpu, bench.h2_connection, bench.h2_frontend): --requests, --batch (requests
    `per` batch) and --rounds, and with `profile` --profile (a file for the cProfile of one more
    round)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--requests", type=int, default=requests, help=f"per round ({requests})")
    parser.add_argument("--batch", type=int, default=batch, help=f"requests {per} ({batch})")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"measured rounds ({rounds})")
    if profile:
        parser.add_argument("--profile", help="write a cProfile of one more round here")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.requests < args.batch or args.rounds < 1:
        parser.error("need --batch >= 1, --requests >= --batch and --rounds >= 1")
    return args


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
