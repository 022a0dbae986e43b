"""What one run measured, and the numbers reported from it: pure functions of the merged
histograms and counts, so every figure the report prints is tested on known inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from interpserve.bench.generator import LATE_AFTER, Finished
from interpserve.bench.histogram import Latency, latency_ms, merged
from interpserve.bench.load import WeightedPath

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

# Above this share of one core, a generator process may have been the bottleneck.
BUSY_GENERATOR = 0.8
# An open-loop run whose generators dispatched more than this share of requests late fell
# behind its schedule, unless the server was not keeping up anyway (then the server competed
# with the generator for the CPU, and was the limit).
LATE_SHARE = 0.05
KEPT_UP = 0.9


@dataclass(frozen=True)
class Second:
    """One second of the measurement (by when responses completed)."""

    start_s: float
    successes: int
    errors: int
    latency_ms: Latency | None

    @classmethod
    def of(cls, start: float, hist: HdrHistogram, errors: int) -> Second:
        return cls(start, hist.get_total_count(), errors, latency_ms(hist))


@dataclass(frozen=True)
class RunResult:
    """The generator processes' measurements of one run (warm-up excluded), merged."""

    paths: tuple[WeightedPath, ...]
    # Per path: latencies of successful requests, from when each was due (open loop) or sent.
    histograms: tuple[HdrHistogram, ...]
    # Failed requests by kind: "connection refused", "HTTP 500", ...
    errors: dict[str, int]
    path_errors: tuple[int, ...]
    generators: tuple[Finished, ...]
    series: tuple[Second, ...]
    # The open loop's asked rate and measured window, in seconds (None: closed loop).
    rate: float | None = None
    window: float | None = None


@dataclass(frozen=True)
class PathSummary:
    path: str
    weight: int
    successes: int
    errors: int
    latency_ms: Latency | None


@dataclass(frozen=True)
class GeneratorSummary:
    """One generator process."""

    cpu: float  # as a fraction of one core
    late: int
    waited: int
    max_lag_ms: float
    connections_opened: int
    peak_connections: int
    # Open loop: it kept the real-time scheduling policy throughout (generator.py).
    realtime: bool = False


@dataclass(frozen=True)
class Summary:
    requests: int
    successes: int
    errors: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    # Successful responses per second.
    rps: float = 0.0
    # None when no request succeeded.
    latency_ms: Latency | None = None
    # The busiest generator process's CPU use, as a fraction of one core.
    generator_cpu: float = 0.0
    # Open loop: the asked rate, and the rate at which requests really went out.
    asked_rps: float | None = None
    sent_rps: float | None = None
    # Open loop: measured requests due; dispatched late; queued for want of a free connection.
    due: int = 0
    late: int = 0
    waited: int = 0
    paths: list[PathSummary] = field(default_factory=list)
    generators: list[GeneratorSummary] = field(default_factory=list)
    series: list[Second] = field(default_factory=list)
    # Why the generator, not the server, may have limited the run (empty: it did not).
    generator_limits: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.requests if self.requests else 0.0


def _generator(finished: Finished) -> GeneratorSummary:
    return GeneratorSummary(
        cpu=finished.cpu_seconds / finished.elapsed if finished.elapsed > 0 else 0.0,
        late=finished.late,
        waited=finished.waited,
        max_lag_ms=finished.max_lag * 1000,
        connections_opened=finished.connections_opened,
        peak_connections=finished.peak_connections,
        realtime=finished.realtime,
    )


def generator_limits(
    generators: Sequence[GeneratorSummary], due: int, asked: float | None, answered: float
) -> list[str]:
    """Why the generator may have limited the run, one reason a line."""
    reasons = []
    for number, g in enumerate(generators, 1):
        if g.cpu >= BUSY_GENERATOR:
            who = "the load generator" if len(generators) == 1 else f"load generator {number}"
            reasons.append(f"{who} used {g.cpu:.0%} of a core")
    late = sum(g.late for g in generators)
    if asked is not None and due and late / due > LATE_SHARE and answered >= KEPT_UP * asked:
        worst = max(g.max_lag_ms for g in generators)
        reasons.append(
            f"{late / due:.1%} of requests were dispatched more than {LATE_AFTER * 1000:g} ms "
            f"after they were due, up to {worst:.1f} ms (it fell behind its schedule)"
        )
    return reasons


def summarize(result: RunResult) -> Summary:
    errors = dict(sorted(result.errors.items(), key=lambda item: (-item[1], item[0])))
    total = merged(list(result.histograms))
    successes = total.get_total_count()
    # An open-loop run lasts its window at least, even if its last request was due just before
    # the end of the window and answered at once.
    elapsed = max((f.elapsed for f in result.generators), default=0.0)
    elapsed = max(elapsed, result.window or 0.0)
    generators = [_generator(f) for f in result.generators]
    due = sum(f.due for f in result.generators)
    asked = sent = None
    if result.rate is not None and result.window:
        asked = result.rate
        sent = sum(f.sent_in_window for f in result.generators) / result.window
    paths = [
        PathSummary(p.path, p.weight, h.get_total_count(), e, latency_ms(h))
        for p, h, e in zip(result.paths, result.histograms, result.path_errors, strict=True)
    ]
    rps = successes / elapsed if elapsed > 0 else 0.0
    return Summary(
        requests=successes + sum(errors.values()),
        successes=successes,
        errors=errors,
        duration_s=elapsed,
        rps=rps,
        latency_ms=latency_ms(total),
        generator_cpu=max((g.cpu for g in generators), default=0.0),
        asked_rps=asked,
        sent_rps=sent,
        due=due,
        late=sum(g.late for g in generators),
        waited=sum(g.waited for g in generators),
        paths=paths,
        generators=generators,
        series=list(result.series),
        generator_limits=generator_limits(generators, due, asked, rps),
    )


# A worker count is enough once its throughput reaches this share of the best in the sweep.
KNEE_SHARE = 0.95


@dataclass(frozen=True)
class Point:
    """One measurement of a sweep: the app served by `workers` workers of one kind."""

    kind: str
    workers: int
    summary: Summary


def curves(points: Sequence[Point]) -> dict[str, list[Point]]:
    """The points of each worker kind, in the order the kinds first appear, by worker count."""
    grouped: dict[str, list[Point]] = {}
    for point in points:
        grouped.setdefault(point.kind, []).append(point)
    return {kind: sorted(curve, key=lambda p: p.workers) for kind, curve in grouped.items()}


def ideal_rps(point: Point, base: Point) -> float:
    """Perfect scaling from the curve's first point: throughput proportional to workers."""
    return base.summary.rps * point.workers / base.workers


def speedup(point: Point, base: Point) -> float:
    return point.summary.rps / base.summary.rps if base.summary.rps > 0 else 0.0


def knee(curve: Sequence[Point]) -> Point:
    """The fewest workers that reach KNEE_SHARE of the curve's best throughput: past it, more
    workers add nothing worth having."""
    best = max(point.summary.rps for point in curve)
    return next(point for point in curve if point.summary.rps >= KNEE_SHARE * best)
