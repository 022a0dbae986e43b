"""The targets the team checks interpserve against, and whether a run meets them."""

from __future__ import annotations

from dataclasses import dataclass

from bench.metrics import HOSTILE_UPLOAD_CLIENTS, METRICS
from bench.results import Results

LIMIT = "physical limit"  # the peer of targets against the CPU-bound ceiling, not a server
AS_MEASURED = "1"  # the peer of targets on a figure that is a ratio already
SUBJECTS = ("interpserve-interpreter", "interpserve-process")


@dataclass(frozen=True)
class Target:
    metric: str
    peer: str  # a server key, LIMIT, or AS_MEASURED
    factor: float  # at least factor x peer if higher is better, else at most

    def describe(self, labels: dict[str, str]) -> str:
        metric = METRICS[self.metric]
        sign = ">=" if metric.higher_is_better else "<="
        if self.peer == AS_MEASURED:
            return f"{metric.key} {sign} {self.factor:g}"
        peer = labels.get(self.peer, self.peer)
        return f"{metric.key} {sign} {self.factor:g} x {peer}"


TARGETS: tuple[Target, ...] = (
    Target("cpu.rps", LIMIT, 0.9),
    Target("cpu.rps", "uvicorn-n", 1.0),
    Target("cpu.rps", "granian-n", 1.0),
    Target("hello.rps", "uvicorn-1", 1.2),
    Target("memory.idle_mib", "uvicorn-n", 0.5),
    Target("memory.loaded_mib", "uvicorn-n", 0.5),
    Target("mixed.p99_ms", "uvicorn-n", 1.0),
    *(
        target
        for clients in HOSTILE_UPLOAD_CLIENTS
        for target in (
            Target(f"hostile.uploads_{clients}_peak_mib", "uvicorn-n", 0.5),
            Target(f"hostile.uploads_{clients}_after_idle", AS_MEASURED, 1.1),
        )
    ),
    Target("hostile.tiny_cpu_s", "uvicorn-n", 1.0),
    Target("hostile.tiny_get_p99_ms", "uvicorn-n", 1.0),
    Target("hostile.slow_readers_peak_mib", "uvicorn-n", 0.5),
    Target("hostile.pipelined_peak_mib", "uvicorn-n", 0.5),
    Target("h2_hello.rps", "granian-1", 1.0),
    Target("h2_cpu.rps", LIMIT, 0.9),
    Target("h2_cpu.rps", "granian-n", 1.0),
)


def physical_limit(results: Results, workers: int) -> float | None:
    """CPU-bound requests/s if every busy core did nothing but run the handler."""
    calibration = results.info.get("calibration", {})
    if not calibration.get("handler_ms"):
        return None
    return min(workers, int(calibration["cores"])) * 1000 / float(calibration["handler_ms"])


def limit_ratio(results: Results, server: str, metric: str = "cpu.rps") -> float | None:
    median = results.median(metric, server)
    limit = physical_limit(results, results.info.get("settings", {}).get("workers", 1))
    return median / limit if median is not None and limit else None


def ratio(results: Results, target: Target, server: str) -> float | None:
    if target.peer == LIMIT:
        return limit_ratio(results, server, target.metric)
    if target.peer == AS_MEASURED:
        return results.median(target.metric, server)
    return results.ratio(target.metric, server, target.peer)


def verdict(results: Results, target: Target, server: str) -> str:
    value = ratio(results, target, server)
    if value is None:
        return "n/a"
    higher = METRICS[target.metric].higher_is_better
    met = value >= target.factor if higher else value <= target.factor
    return "meets" if met else "misses"
