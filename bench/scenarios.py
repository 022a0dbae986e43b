"""How each scenario of bench.metrics is measured against one running server."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import load_tools
from bench.apps import MIB
from bench.idle import idle_connections
from bench.metrics import (
    CPU_CONNECTIONS,
    FAST_CONNECTIONS,
    H2_CONNECTIONS,
    H2_CPU_CONNECTIONS,
    H2_STREAMS,
    HELLO_CONNECTIONS,
    HOSTILE_DOWNLOAD_MIB,
    HOSTILE_PIPELINED,
    HOSTILE_SLOW_READERS,
    HOSTILE_TINY_CHUNKS,
    HOSTILE_TINY_CLIENTS,
    HOSTILE_UPLOAD_CLIENTS,
    IDLE_CONNECTIONS,
    JSON_CONNECTIONS,
    MIXED_CPU_CONNECTIONS_PER_WORKER,
)
from bench.procs import tree_cpu_seconds, tree_rss_bytes
from bench.servers import HOST, RunningServer
from bench.settings import Settings

# The CPU load of the mixed scenario starts this long before the latency run and ends this long
# after it, so every latency sample is taken with the workers saturated.
MIXED_MARGIN_S = 1
# A p99 needs samples: on a loaded machine fast requests can wait behind CPU-bound ones for
# hundreds of ms, and --quick's 2 s would leave a handful.
MIXED_MIN_S = 5
# Memory counts as settled when two readings this far apart differ by less than 1 %.
RSS_INTERVAL_S = 0.25
RSS_SETTLE_MAX_S = 5.0
TRANSFER_TIMEOUT_S = 300.0
# The hostile loads: how often the peak is sampled, how long a server has to give memory back
# once the clients of a burst have gone (the same for every server), and how long a load may
# take at most.
PEAK_INTERVAL_S = 0.05
AFTER_BURST_S = 5.0
HOSTILE_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Context:
    settings: Settings
    upload_body: Path  # a file of settings.stream_mib MiB


@dataclass
class Outcome:
    figures: dict[str, float] = field(default_factory=dict)  # metric key -> value
    errors: int = 0  # failed requests during the measurement, reported as a warning
    warnings: list[str] = field(default_factory=list)  # for the report's notes

    def add_wrk(self, key: str, result: load_tools.WrkResult) -> None:
        self.figures[key] = result.rps
        self.errors += result.errors


def _load(url: str, connections: int, seconds: int, streams: int) -> load_tools.WrkResult:
    """wrk; or h2load over HTTP/2, with `streams` requests in flight on each connection."""
    if streams:
        return load_tools.h2load(url, connections, streams, seconds)
    return load_tools.wrk(url, connections, seconds)


def _warm(
    server: RunningServer, path: str, connections: int, ctx: Context, streams: int = 0
) -> None:
    """Load not counted: lets lazy imports, caches and worker start-up finish first. A warm-up
    in which no slow request completed is fine; a broken server fails the measured run."""
    if ctx.settings.warmup > 0:
        with contextlib.suppress(load_tools.LoadFailed):
            _load(server.url(path), connections, ctx.settings.warmup, streams)


def _rate(
    path: str, connections: int, scenario: str, *, streams: int = 0, cpu_per_request: bool = True
) -> Callable[[RunningServer, Context], Outcome]:
    """Requests/s, and the server's CPU time per request over the same run: on a noisy machine
    the second is the steadier measure of how much work a server does for one request. Over
    HTTP/2 with `streams` per connection."""

    def measure(server: RunningServer, ctx: Context) -> Outcome:
        _warm(server, path, connections, ctx, streams)
        outcome = Outcome()
        cpu_before = tree_cpu_seconds(server.pid)
        result = _load(server.url(path), connections, ctx.settings.duration, streams)
        cpu_used = tree_cpu_seconds(server.pid) - cpu_before
        outcome.add_wrk(f"{scenario}.rps", result)
        if cpu_per_request and result.requests:
            outcome.figures[f"{scenario}.cpu_us"] = cpu_used / result.requests * 1e6
        return outcome

    return measure


def cpu_connections(workers: int) -> int:
    """Enough connections to keep every worker busy with a request queued behind it."""
    return max(CPU_CONNECTIONS, 2 * workers)


def cpu(server: RunningServer, ctx: Context) -> Outcome:
    return _rate("/cpu", cpu_connections(server.spec.workers), "cpu", cpu_per_request=False)(
        server, ctx
    )


def _load_result(
    finish: Callable[[], load_tools.WrkResult], outcome: Outcome
) -> load_tools.WrkResult | None:
    """Collect a load that is there to keep the server busy: if none of its requests completed
    (a single event loop can starve /cpu behind other requests for seconds), the server was
    still busy, so that is a warning, not a failed cell."""
    try:
        result = finish()
    except load_tools.LoadFailed as exc:
        outcome.warnings.append(f"background load: {str(exc).splitlines()[0]}")
        return None
    outcome.errors += result.errors
    return result


def mixed(server: RunningServer, ctx: Context) -> Outcome:
    _warm(server, "/", FAST_CONNECTIONS, ctx)
    seconds = max(ctx.settings.duration, MIXED_MIN_S)
    # The same CPU load for every server, whatever its worker count, so their latencies compare.
    connections = MIXED_CPU_CONNECTIONS_PER_WORKER * ctx.settings.workers
    busy = load_tools.start_wrk(server.url("/cpu"), connections, seconds + 2 * MIXED_MARGIN_S)
    outcome = Outcome()
    try:
        time.sleep(MIXED_MARGIN_S)
        fast = load_tools.wrk(server.url("/"), FAST_CONNECTIONS, seconds, latency=True)
    finally:
        saturating = _load_result(lambda: load_tools.wait_wrk(busy), outcome)
    assert fast.p50_ms is not None and fast.p99_ms is not None  # wait_wrk checked
    outcome.figures |= {"mixed.p50_ms": fast.p50_ms, "mixed.p99_ms": fast.p99_ms}
    outcome.errors += fast.errors
    if saturating:
        outcome.figures["mixed.cpu_rps"] = saturating.rps
    return outcome


def stream(server: RunningServer, ctx: Context) -> Outcome:
    mib = ctx.settings.stream_mib
    down = load_tools.download(server.url(f"/download?mib={mib}"), mib * MIB, TRANSFER_TIMEOUT_S)
    up = load_tools.upload(server.url("/upload"), ctx.upload_body, TRANSFER_TIMEOUT_S)
    return Outcome({"stream.download_mib_s": down / MIB, "stream.upload_mib_s": up / MIB})


def settled_rss(pid: int) -> float:
    """The tree's RSS in MiB once it stops moving (workers still importing, buffers being
    released), or after RSS_SETTLE_MAX_S."""
    deadline = time.monotonic() + RSS_SETTLE_MAX_S
    previous = tree_rss_bytes(pid)
    while time.monotonic() < deadline:
        time.sleep(RSS_INTERVAL_S)
        current = tree_rss_bytes(pid)
        if abs(current - previous) < 0.01 * max(previous, 1):
            return current / MIB
        previous = current
    return previous / MIB


def memory(server: RunningServer, ctx: Context) -> Outcome:
    outcome = Outcome({"memory.idle_mib": settled_rss(server.pid)})
    seconds = max(ctx.settings.warmup + ctx.settings.duration, 1)
    cpu_load = load_tools.start_wrk(
        server.url("/cpu"), cpu_connections(server.spec.workers), seconds
    )
    try:
        json_load = load_tools.start_wrk(server.url("/json"), JSON_CONNECTIONS, seconds)
        _load_result(lambda: load_tools.wait_wrk(json_load), outcome)
    finally:
        _load_result(lambda: load_tools.wait_wrk(cpu_load), outcome)
    outcome.figures["memory.loaded_mib"] = settled_rss(server.pid)
    return outcome


def _hostile_load(server: RunningServer, kind: str, *args: str) -> tuple[dict[str, Any], float]:
    """Run one load of bench.hostile against the server: what it reports, and the peak RSS of
    the server's tree meanwhile (MiB)."""
    argv = [sys.executable, "-m", "bench.hostile", kind, "--port", str(server.port), *args]
    peak = tree_rss_bytes(server.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(PEAK_INTERVAL_S):
            peak = max(peak, tree_rss_bytes(server.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        finished = subprocess.run(
            argv, capture_output=True, text=True, timeout=HOSTILE_TIMEOUT_S, check=False
        )
    finally:
        done.set()
        sampler.join()
    if finished.returncode != 0:
        raise _load_error(f"bench.hostile {kind}", finished)
    return json.loads(finished.stdout), peak / MIB


def _load_error(what: str, finished: subprocess.CompletedProcess[str]) -> load_tools.LoadFailed:
    tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
    return load_tools.LoadFailed(
        f"{what} exited with code {finished.returncode}: {' | '.join(tail)}"
    )


def _count_failures(outcome: Outcome, what: str, result: dict[str, Any]) -> None:
    for failed, detail in (("failed", "errors"), ("get_errors", "get_error")):
        if result.get(failed):
            outcome.errors += result[failed]
            outcome.warnings.append(f"{what}: {result[failed]} failed: {result.get(detail)}")


def hostile(server: RunningServer, ctx: Context) -> Outcome:
    """The loads of bench.hostile, one after the other on one server; a load that fails is a
    warning, and the others are still measured."""
    idle = settled_rss(server.pid)
    outcome = Outcome()

    def run(what: str, kind: str, *args: str) -> tuple[dict[str, Any], float] | None:
        try:
            result, peak = _hostile_load(server, kind, *args)
        except (load_tools.LoadFailed, subprocess.TimeoutExpired, ValueError) as exc:
            outcome.warnings.append(f"{what}: {str(exc).splitlines()[0]}")
            return None
        _count_failures(outcome, what, result)
        return result, peak

    for clients in HOSTILE_UPLOAD_CLIENTS:
        if done := run(f"{clients} unread uploads", "uploads", "--clients", str(clients)):
            time.sleep(AFTER_BURST_S)
            outcome.figures[f"hostile.uploads_{clients}_peak_mib"] = done[1]
            after = settled_rss(server.pid) / idle
            outcome.figures[f"hostile.uploads_{clients}_after_idle"] = after
    cpu_before = tree_cpu_seconds(server.pid)
    tiny = ("--clients", str(HOSTILE_TINY_CLIENTS), "--chunks", str(HOSTILE_TINY_CHUNKS))
    if done := run("tiny-chunk uploads", "tiny-chunks", *tiny):
        cpu = tree_cpu_seconds(server.pid) - cpu_before
        outcome.figures["hostile.tiny_cpu_s"] = cpu / max(done[0]["uploads"], 1)
        if done[0].get("gets"):
            outcome.figures["hostile.tiny_get_p99_ms"] = done[0]["get_p99_ms"]
    slow = ("--clients", str(HOSTILE_SLOW_READERS), "--mib", str(HOSTILE_DOWNLOAD_MIB))
    if done := run("slow readers", "slow-readers", *slow):
        outcome.figures["hostile.slow_readers_peak_mib"] = done[1]
    if done := run("pipelined GETs", "pipelined", "--requests", str(HOSTILE_PIPELINED)):
        outcome.figures["hostile.pipelined_peak_mib"] = done[1]
    return outcome


def startup(server: RunningServer, ctx: Context) -> Outcome:
    return Outcome({"startup.ms": server.startup_s * 1000})


def h2_cpu(server: RunningServer, ctx: Context) -> Outcome:
    streams = cpu_connections(server.spec.workers) // H2_CPU_CONNECTIONS
    measure = _rate("/cpu", H2_CPU_CONNECTIONS, "h2_cpu", streams=streams, cpu_per_request=False)
    return measure(server, ctx)


def h2_memory(server: RunningServer, ctx: Context) -> Outcome:
    """What one idle connection costs, HTTP/1.1 then HTTP/2, in KiB of the tree's RSS."""
    outcome = Outcome()
    for http2, key in ((False, "h2_memory.h1_kib"), (True, "h2_memory.h2_kib")):
        before = settled_rss(server.pid)
        with idle_connections(HOST, server.port, IDLE_CONNECTIONS, http2):
            during = settled_rss(server.pid)
        outcome.figures[key] = max(during - before, 0.0) * 1024 / IDLE_CONNECTIONS
    return outcome


# Measured only against servers that speak HTTP/2 with prior knowledge (ServerSpec.http2).
HTTP2_SCENARIOS = frozenset(("h2_hello", "h2_cpu", "h2_memory"))

RUNNERS: dict[str, Callable[[RunningServer, Context], Outcome]] = {
    "hello": _rate("/", HELLO_CONNECTIONS, "hello"),
    "json": _rate("/json", JSON_CONNECTIONS, "json"),
    "cpu": cpu,
    "mixed": mixed,
    "stream": stream,
    "memory": memory,
    "hostile": hostile,
    "h2_hello": _rate("/", H2_CONNECTIONS, "h2_hello", streams=H2_STREAMS),
    "h2_cpu": h2_cpu,
    "h2_memory": h2_memory,
    "startup": startup,
}
