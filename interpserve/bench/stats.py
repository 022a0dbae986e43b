"""What one run measured, and the numbers reported from it. Pure functions: no sockets, no
clocks, so every figure the report prints is tested on known inputs."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

# Above this share of one core, the load generator may have been the bottleneck.
BUSY_GENERATOR = 0.8


@dataclass(frozen=True)
class RunResult:
    """The load generator's raw measurements of one run (warm-up excluded)."""

    # Seconds from sending each successful request to its complete response.
    latencies: array[float]
    # Failed requests by kind: "connection refused", "HTTP 500", ...
    errors: dict[str, int]
    # Wall time of the measurement, in seconds.
    elapsed: float
    # CPU time (user + system) the generator process used during it, in seconds.
    cpu_seconds: float


@dataclass(frozen=True)
class Latency:
    """Milliseconds."""

    mean: float
    p50: float
    p90: float
    p99: float
    max: float


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
    # The generator's CPU use, as a fraction of one core.
    generator_cpu: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below
    it. Always one of the values, never an interpolation between two."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {q}")
    # q * n first: it is exact for whole q, where q / 100 * n can round up past an integer.
    rank = math.ceil(q * len(sorted_values) / 100)
    return sorted_values[max(rank, 1) - 1]


def latency_ms(latencies: Sequence[float]) -> Latency | None:
    """Mean, p50, p90, p99 and max of latencies given in seconds, in milliseconds."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    ms = 1000.0
    return Latency(
        mean=math.fsum(ordered) / len(ordered) * ms,
        p50=percentile(ordered, 50) * ms,
        p90=percentile(ordered, 90) * ms,
        p99=percentile(ordered, 99) * ms,
        max=ordered[-1] * ms,
    )


def summarize(result: RunResult) -> Summary:
    successes = len(result.latencies)
    errors = dict(sorted(result.errors.items(), key=lambda item: (-item[1], item[0])))
    elapsed = result.elapsed
    return Summary(
        requests=successes + sum(errors.values()),
        successes=successes,
        errors=errors,
        duration_s=elapsed,
        rps=successes / elapsed if elapsed > 0 else 0.0,
        latency_ms=latency_ms(result.latencies),
        generator_cpu=result.cpu_seconds / elapsed if elapsed > 0 else 0.0,
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
