"""Driving a server from generator processes (interpserve.bench.generator), spawned so the
tool never competes with its own report for a GIL and each process's CPU use is measured
apart: start them, give them one start time, merge their histograms and counts as they come.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING

from interpserve.bench import histogram
from interpserve.bench.generator import Finished, Phase, Ready, Share, Tick, describe_os_error
from interpserve.bench.http1 import build_request, parse_url
from interpserve.bench.load import Load, WeightedPath, path_cycle
from interpserve.bench.stats import RunResult, Second
from interpserve.errors import LoadError

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

# Time for the spawned processes to import and say they are ready.
READY_TIMEOUT = 60.0
# Between the last Ready and the common start: every process has its start message by then.
START_MARGIN = 0.05
SERIES_STEP = 1.0


@dataclass(frozen=True)
class Progress:
    phase: Phase
    # Seconds since the measurement started (negative during the warm-up).
    elapsed: float
    successes: int
    errors: int


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Raises LoadError if nothing accepts connections at the URL's host and port."""
    try:
        target = parse_url(url)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    try:
        socket.create_connection((target.host, target.port), timeout=timeout).close()
    except OSError as exc:
        raise LoadError(f"cannot connect to {url}: {describe_os_error(exc)}") from None


def paths_of(url: str, load: Load) -> tuple[WeightedPath, ...]:
    return load.paths or (WeightedPath(parse_url(url).path),)


def run_load(url: str, load: Load, on_progress: Callable[[Progress], None]) -> RunResult:
    """Drive `url` (its host and port; the paths of `load`, else its own) from
    `load.generators` spawned processes; `on_progress` is called a few times a second."""
    try:
        target = parse_url(url)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    paths = paths_of(url, load)
    requests = tuple(
        build_request(load.method, target, load.headers, load.body, path=p.path) for p in paths
    )
    cycle = path_cycle(paths)
    context = multiprocessing.get_context("spawn")
    processes: list[SpawnProcess] = []
    pipes: list[Connection] = []
    from interpserve.bench.generator import generate

    try:
        for index in range(load.generators):
            parent_end, child_end = context.Pipe()
            share = Share(
                index, target.host, target.port, requests, cycle, load.method == "HEAD", load
            )
            process = context.Process(target=generate, args=(share, child_end), daemon=True)
            process.start()
            child_end.close()
            processes.append(process)
            pipes.append(parent_end)
        return _Collector(paths, load, pipes, processes, on_progress).collect()
    finally:
        for pipe in pipes:
            pipe.close()
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()  # Ctrl-C, or the run failed: its numbers are not wanted
                process.join()


class _Collector:
    def __init__(
        self,
        paths: tuple[WeightedPath, ...],
        load: Load,
        pipes: list[Connection],
        processes: list[SpawnProcess],
        on_progress: Callable[[Progress], None],
    ) -> None:
        self.paths = paths
        self.load = load
        self.pipes = pipes
        self.processes = processes
        self.on_progress = on_progress
        self.histograms = [histogram.new() for _ in paths]
        self.errors: dict[str, int] = {}
        self.path_errors = [0] * len(paths)
        # Per second of the measurement: a histogram of every path, and the errors.
        self.seconds: dict[int, tuple[HdrHistogram, list[int]]] = {}
        self.finished: dict[int, Finished] = {}
        self.latest: dict[int, Tick] = {}
        self.successes = 0
        self.error_count = 0

    def collect(self) -> RunResult:
        self._wait_ready()
        start = time.monotonic() + START_MARGIN
        for pipe in self.pipes:
            pipe.send(start)
        live = dict(enumerate(self.pipes))
        while live:
            for index in self._readable(list(live), None):
                pipe = self.pipes[index]
                try:
                    message = pipe.recv()
                except EOFError:
                    code = self.processes[index].exitcode
                    raise LoadError(
                        f"load generator {index + 1} exited unexpectedly (exit code {code})"
                    ) from None
                if isinstance(message, Tick):
                    self._tick(message)
                elif isinstance(message, Finished):
                    self.finished[index] = message
                    del live[index]
                else:
                    raise LoadError(f"load generator {index + 1} failed: {message!s}")
        return self._result()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = set(range(len(self.pipes)))
        while waiting:
            left = max(deadline - time.monotonic(), 0.0)
            ready = self._readable(list(waiting), left)
            if not ready:
                raise LoadError(f"the load generators did not start within {READY_TIMEOUT:g} s")
            for index in ready:
                try:
                    message = self.pipes[index].recv()
                except EOFError:
                    raise LoadError(
                        f"load generator {index + 1} exited on start "
                        f"(exit code {self.processes[index].exitcode})"
                    ) from None
                if not isinstance(message, Ready):
                    raise LoadError(f"load generator {index + 1} failed: {message!s}")
                waiting.discard(index)

    def _readable(self, indexes: list[int], timeout: float | None) -> list[int]:
        """Which of the processes' pipes have a message (or were closed)."""
        by_pipe = {id(self.pipes[i]): i for i in indexes}
        ready = wait([self.pipes[i] for i in indexes], timeout=timeout)
        return [by_pipe[id(pipe)] for pipe in ready]

    def _tick(self, tick: Tick) -> None:
        second = int(tick.elapsed // SERIES_STEP) if tick.elapsed > 0 else 0
        bucket = self.seconds.get(second)
        if bucket is None and tick.phase is not Phase.WARMUP:
            bucket = self.seconds[second] = (histogram.new(), [0])
        for path, encoded in enumerate(tick.histograms):
            if encoded is None:
                continue
            decoded = histogram.decode(encoded)
            self.histograms[path].add(decoded)
            if bucket is not None:
                bucket[0].add(decoded)
            self.successes += decoded.get_total_count()
        errors = sum(tick.errors.values())
        for kind, count in tick.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        for path, count in enumerate(tick.path_errors):
            self.path_errors[path] += count
        if bucket is not None:
            bucket[1][0] += errors
        self.error_count += errors
        self.latest[tick.index] = tick
        phase = min((t.phase for t in self.latest.values()), key=list(Phase).index)
        elapsed = min(t.elapsed for t in self.latest.values())
        self.on_progress(Progress(phase, elapsed, self.successes, self.error_count))

    def _result(self) -> RunResult:
        series = tuple(
            Second.of(second * SERIES_STEP, hist, errors[0])
            for second, (hist, errors) in sorted(self.seconds.items())
        )
        return RunResult(
            paths=self.paths,
            histograms=tuple(self.histograms),
            errors=self.errors,
            path_errors=tuple(self.path_errors),
            generators=tuple(self.finished[i] for i in sorted(self.finished)),
            series=series,
            rate=self.load.rate,
            window=self.load.window,
        )
