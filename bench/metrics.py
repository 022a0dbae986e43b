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
# The hostile scenario's loads (bench/hostile.py runs them).
HOSTILE_UPLOAD_CLIENTS = (500, 1000)
HOSTILE_TINY_CLIENTS = 4
HOSTILE_TINY_CHUNKS = 1_000_000
HOSTILE_SLOW_READERS = 1000
HOSTILE_DOWNLOAD_MIB = 10
HOSTILE_PIPELINED = 100_000
# HTTP/2 (h2load): a few connections, each with many streams at once, as a proxy in front sends.
H2_CONNECTIONS = 4
H2_STREAMS = 32
# The CPU-bound handler over HTTP/2: CPU_CONNECTIONS streams in all, on two connections.
H2_CPU_CONNECTIONS = 2
# Idle connections opened, of each protocol, to measure what one costs in memory.
IDLE_CONNECTIONS = 200


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


def _hostile_metrics() -> tuple[Metric, ...]:
    uploads = []
    for clients in HOSTILE_UPLOAD_CLIENTS:
        what = f"{clients} unread uploads"
        uploads += [
            Metric(f"hostile.uploads_{clients}_peak_mib", f"{what}: peak RSS", "MiB", False, 1),
            Metric(f"hostile.uploads_{clients}_after_idle", f"{what}: RSS after / idle", "x",
                   False, 3),
        ]  # fmt: skip
    return (
        *uploads,
        Metric("hostile.tiny_cpu_s", "server CPU per tiny-chunk upload", "s", False, 2),
        Metric("hostile.tiny_get_p99_ms", "GET p99 during tiny-chunk uploads", "ms", False, 1),
        Metric("hostile.slow_readers_peak_mib", "slow readers: peak RSS", "MiB", False, 1),
        Metric("hostile.pipelined_peak_mib", "unread pipelined GETs: peak RSS", "MiB", False, 1),
    )


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
        "hostile",
        "Hostile and heavy clients",
        "Total VmRSS of the server's process tree, its peak sampled every 50 ms, under loads run "
        "one after the other on one server (bench/hostile.py): N clients each POST 1 MiB to a "
        "handler that sleeps 6 s before it reads it (N = 500, then 1,000), and the RSS once all "
        "have gone (5 s after, then settled), as a multiple of the RSS idle before them; "
        f"{HOSTILE_TINY_CLIENTS} clients each upload {HOSTILE_TINY_CHUNKS:,} one-byte chunks, "
        "round after round for 5 s, while a plain GET / goes every 10 ms on another connection "
        "(the server's CPU per upload, and the p99 of all the GETs); "
        f"{HOSTILE_SLOW_READERS:,} clients each GET a {HOSTILE_DOWNLOAD_MIB} MiB download of "
        "fresh 64 KiB chunks with a 16 KiB receive buffer, reading 4 KiB every 100 ms for 5 s; "
        f"one client sends {HOSTILE_PIPELINED:,} pipelined GET / and reads no answer for 5 s.",
        _hostile_metrics(),
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
        "h2_hello",
        "Plaintext hello over HTTP/2",
        f"GET / over cleartext HTTP/2 (prior knowledge), {H2_CONNECTIONS} connections with "
        f"{H2_STREAMS} streams each at once (h2load).",
        (
            Metric("h2_hello.rps", "requests/s", "req/s", True),
            Metric("h2_hello.cpu_us", "server CPU per request", "us", False, digits=1),
        ),
    ),
    ScenarioInfo(
        "h2_cpu",
        "CPU-bound handler over HTTP/2",
        f"GET /cpu (as in the CPU-bound scenario) over HTTP/2, {CPU_CONNECTIONS} streams at once "
        f"on {H2_CPU_CONNECTIONS} connections (h2load).",
        (Metric("h2_cpu.rps", "requests/s", "req/s", True, digits=1, vs_limit=True),),
    ),
    ScenarioInfo(
        "h2_memory",
        "Memory per idle connection",
        f"RSS growth of the server's tree per connection, {IDLE_CONNECTIONS} idle keep-alive "
        "connections that each made one request: HTTP/1.1, then HTTP/2.",
        (
            Metric("h2_memory.h1_kib", "per idle HTTP/1.1 connection", "KiB", False, digits=1),
            Metric("h2_memory.h2_kib", "per idle HTTP/2 connection", "KiB", False, digits=1),
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
