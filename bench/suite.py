"""Runs the cells: every scenario against every server, each on a fresh server, repeated; then
the CPU-bound scaling curve. Results go into a Results as they come, so an interrupted run still
has everything measured so far."""

from __future__ import annotations

import compileall
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import interpserve
from bench import apps
from bench.load_tools import LoadFailed
from bench.results import Results
from bench.scenarios import HTTP2_SCENARIOS, RUNNERS, Context, Outcome, cpu
from bench.servers import ROOT, RunningServer, ServerFailed, ServerSpec, running
from bench.settings import Settings, cores

# The families whose CPU-bound throughput is drawn against the worker count.
SCALING_SERVERS = ("interpserve-interpreter", "interpserve-process", "uvicorn-n")
NOTE_MAX = 400
CELL_ERRORS = (ServerFailed, LoadFailed, subprocess.TimeoutExpired, OSError, ValueError)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def server_env() -> dict[str, str]:
    """The environment of every server: the repository on the path (for bench.apps) and one
    /cpu loop count for all, calibrated once here."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["BENCH_CPU_LOOPS"] = str(apps.CPU_LOOPS)
    return env


def precompile() -> None:
    """Bytecode for bench.apps and for interpserve itself, as an installed package has it.

    With PYTHONDONTWRITEBYTECODE set (as here, and in many container images) a module with no
    .pyc is compiled from source by every process and every interpreter that imports it. The
    peers come from site-packages, compiled at install; interpserve's editable checkout would
    pay for compiling in each worker interpreter: about 1 MiB of RSS each and start-up time."""
    for package in (ROOT / "bench", Path(interpserve.__file__).parent):
        compileall.compile_dir(package, quiet=1)


def calibration(settings: Settings) -> dict[str, float]:
    handler_s = apps.handler_seconds(apps.CPU_LOOPS)
    return {
        "loops": apps.CPU_LOOPS,
        "handler_ms": handler_s * 1000,
        "cores": cores(),
        "limit_rps": min(settings.workers, cores()) / handler_s,
    }


def faster_calibration(first: dict[str, float], settings: Settings) -> dict[str, float]:
    """The handler timed again (at the end of a run), and the faster of the two timings kept.
    A shared machine's speed drifts by tens of percent: a slow moment at the start would lower
    the physical limit, and inflate every ratio to it. The limit is what the cores do at their
    fastest."""
    again = calibration(settings)
    return again if again["handler_ms"] < first["handler_ms"] else first


def rotated[T](items: Sequence[T], by: int) -> list[T]:
    """Each repetition starts with a different server, so none is always measured first (on a
    cold machine) or last (after the others heated it)."""
    by %= max(len(items), 1)
    return [*items[by:], *items[:by]]


@contextmanager
def upload_body(settings: Settings) -> Iterator[Path]:
    path = settings.log_dir / "upload.bin"
    with path.open("wb") as f:
        f.truncate(settings.stream_mib * apps.MIB)  # sparse: zeros cost no disk writes
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


class Suite:
    def __init__(self, settings: Settings, specs: list[ServerSpec], results: Results) -> None:
        self.settings = settings
        self.specs = specs
        self.results = results
        precompile()  # before any server starts, so every one of them loads bytecode
        self.env = server_env()

    def _note(self, note: str) -> None:
        """Print the note whole; the report keeps one line of it (the server's log, in the
        output's tmp/, has the rest)."""
        log(note)
        one_line = " | ".join(line.strip() for line in note.splitlines() if line.strip())
        cut = one_line[:NOTE_MAX] + ("..." if len(one_line) > NOTE_MAX else "")
        self.results.notes.append(cut)

    def _cell(
        self,
        spec: ServerSpec,
        what: str,
        measure: Callable[[RunningServer, Context], Outcome],
        ctx: Context,
    ) -> Outcome | None:
        """Start a fresh server, measure, stop it; a failure becomes a note, not an abort."""
        began = time.monotonic()
        try:
            with running(spec, self.env, self.settings.log_dir) as server:
                outcome = measure(server, ctx)
        except CELL_ERRORS as exc:
            self._note(f"{what}, {spec.label}: FAILED: {type(exc).__name__}: {exc}")
            return None
        if outcome.errors:
            self._note(f"{what}, {spec.label}: {outcome.errors} failed requests")
        for warning in outcome.warnings:
            self._note(f"{what}, {spec.label}: {warning}")
        shown = ", ".join(f"{k.split('.')[-1]} {v:,.2f}" for k, v in outcome.figures.items())
        log(f"{what:<22} {spec.label:<28} {shown} ({time.monotonic() - began:.1f} s)")
        return outcome

    def run_scenarios(self, scenarios: Sequence[str]) -> None:
        reps = self.settings.repetitions
        with upload_body(self.settings) as body:
            ctx = Context(self.settings, body)
            for rep in range(reps):
                for name in scenarios:
                    for spec in rotated(self.specs, rep):
                        if name in HTTP2_SCENARIOS and not spec.http2:
                            continue
                        what = f"[{rep + 1}/{reps}] {name}"
                        outcome = self._cell(spec, what, RUNNERS[name], ctx)
                        for metric, value in (outcome.figures if outcome else {}).items():
                            self.results.record(metric, spec.key, rep, value)

    def run_scaling(self) -> None:
        """CPU-bound rps for 1..scaling_max workers, for the servers that take a worker count."""
        specs = [s for s in self.specs if s.key in SCALING_SERVERS]
        ctx = Context(self.settings, Path(os.devnull))
        for rep in range(self.settings.repetitions):
            for spec in rotated(specs, rep):
                for workers in range(1, self.settings.scaling_max + 1):
                    sized = spec.with_workers(workers)
                    what = f"[{rep + 1}/{self.settings.repetitions}] scaling"
                    outcome = self._cell(sized, what, cpu, ctx)
                    if outcome:
                        self.results.record_scaling(
                            spec.key, workers, rep, outcome.figures["cpu.rps"]
                        )
