"""What each scenario measures: its figures, their units and which way is better. The report,
the plots and the targets read this; bench.scenarios says how each figure is obtained."""

from __future__ import annotations

from dataclasses import dataclass

# Connection counts are part of what a scenario means, so they live with its description.
HELLO_CONNECTIONS = 64
JSON_CONNECTIONS = 64
CPU_CONNECTIONS = 16
FAST_CONNECTIONS = 4
# Two per worker of N keeps every worker busy with one more queued, without burying the fast
# requests under a deep queue that would make every server's latency the same queue length.
MIXED_CPU_CONNECTIONS_PER_WORKER = 2


@dataclass(frozen=True)
class Metric:
    key: str  # "<scenario>.<figure>", the key in the results
    label: str
    unit: str
    higher_is_better: bool
    digits: int = 0
    vs_limit: bool = False  # also reported as a fraction of the CPU-bound physical limit

    def format(self, value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.{self.digits}f}"

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class ScenarioInfo:
    name: str
    title: str
    what: str  # one sentence for the report
    metrics: tuple[Metric, ...]


SCENARIOS: tuple[ScenarioInfo, ...] = (
    ScenarioInfo(
        "hello",
        "Plaintext hello",
        f"GET / answering 13 bytes, keep-alive, {HELLO_CONNECTIONS} connections (wrk).",
        (
            Metric("hello.rps", "requests/s", "req/s", True),
            Metric("hello.cpu_us", "server CPU per request", "us", False, digits=1),
        ),
    ),
    ScenarioInfo(
        "json",
        "JSON, about 1 KB",
        f"GET /json serialising a 1.07 KB document per request, {JSON_CONNECTIONS} connections.",
        (
            Metric("json.rps", "requests/s", "req/s", True),
            Metric("json.cpu_us", "server CPU per request", "us", False, digits=1),
        ),
    ),
    ScenarioInfo(
        "cpu",
        "CPU-bound handler",
        f"GET /cpu running a pure-Python loop calibrated to about 16 ms, {CPU_CONNECTIONS} "
        "connections; the physical limit is min(workers, cores) / handler time.",
        (Metric("cpu.rps", "requests/s", "req/s", True, digits=1, vs_limit=True),),
    ),
    ScenarioInfo(
        "mixed",
        "Fast endpoint under CPU saturation",
        f"GET / latency over {FAST_CONNECTIONS} connections (wrk --latency, at least 5 s) while "
        f"a second wrk keeps {MIXED_CPU_CONNECTIONS_PER_WORKER} x N connections busy on /cpu, "
        "the same for every server.",
        (
            Metric("mixed.p50_ms", "fast p50", "ms", False, digits=2),
            Metric("mixed.p99_ms", "fast p99", "ms", False, digits=2),
            Metric("mixed.cpu_rps", "CPU requests/s meanwhile", "req/s", True, digits=1),
        ),
    ),
    ScenarioInfo(
        "stream",
        "Streaming",
        "One 100 MiB download from /download (64 KiB chunks) and one 100 MiB upload to /upload, "
        "with curl; the size follows --stream-mib.",
        (
            Metric("stream.download_mib_s", "download", "MiB/s", True),
            Metric("stream.upload_mib_s", "upload", "MiB/s", True),
        ),
    ),
    ScenarioInfo(
        "memory",
        "Memory",
        "Total VmRSS of the server's whole process tree: once settled after start, and once "
        "settled after a load of /json and /cpu together.",
        (
            Metric("memory.idle_mib", "RSS idle", "MiB", False, digits=1),
            Metric("memory.loaded_mib", "RSS after load", "MiB", False, digits=1),
        ),
    ),
    ScenarioInfo(
        "startup",
        "Start-up",
        "Time from spawning the server to its first answered GET /.",
        (Metric("startup.ms", "start-up", "ms", False),),
    ),
)

SCALING = Metric("scaling.rps", "CPU-bound requests/s", "req/s", True, digits=1)
METRICS: dict[str, Metric] = {m.key: m for s in SCENARIOS for m in s.metrics} | {
    SCALING.key: SCALING
}
