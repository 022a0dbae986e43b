"""Load generators side by side: `interpserve bench`, locust and wrk, against the same server in
the same run.

    python -m bench.generators [--seconds S] [--rates 40,80] [--overhead-rate 5000]

Run it from the repository root (locust comes with the `compare` extra). Three parts:

1. Open loop, the same schedule from two tools: interpserve's interpreter kind xN serves
   bench.apps:app, whose /cpu is calibrated to about 5 ms here; at each rate of --rates
   (below its capacity), `interpserve bench --rate R` (constant arrivals) and locust
   (FastHttpUser users with constant_throughput, together R requests/s) in turn, then wrk and
   `interpserve bench` closed loop at 2xN connections for reference. Rate and p50/p99 side by
   side.
2. Open loop on /sleep?ms=SLEEP_MS, a handler that waits without using the CPU: the rates of
   --slow-rates from both tools. Locust adds milliseconds of its own to each request on this
   machine (part 3 measures it), more than a tenth of /cpu's 5 ms, so this is where the two
   tools' percentiles can be compared.
3. Each generator's own latency: the same rates, and `interpserve bench --rate 5000` (without
   and with --realtime), against bench.bare_server (one fixed reply per read, nothing parsed:
   its own latency is a few tens of microseconds), so what is measured is the generator's and
   the loopback's. Beside it, at 5000/s, bench/floor_client.c (the same schedule kept by a C
   program with nothing else to do, built with cc): the floor of any generator on this
   machine. Then both again against a bare server with the real-time policy (--realtime),
   which takes the server's own waits for a core out of what is measured.
4. The generator's top rate: GET / of interpserve x N, wrk closed loop against one and two
   `interpserve bench` generator processes, each's CPU.

Each row has the generator's CPU per request: interpserve bench's generator processes over the
measured window (from its --json), wrk's and locust's whole process (locust's start, about a
second of imports, included).

Writes bench/results/GENERATORS.md (the tables) and generators.json, each with the load
average before and after.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import load_tools
from bench.machine import load_average
from bench.servers import HOST, ROOT, RunningServer, ServerSpec, catalogue, running
from bench.settings import cores

HANDLER_S = 0.005
SLEEP_MS = 100
# Each locust user sends this many requests/s: enough users that one slow answer does not hold
# back the schedule, few enough for one locust process.
LOCUST_USER_RATE = 5.0
LOCUSTFILE = """
import os
from locust import FastHttpUser, constant_throughput, task

class Client(FastHttpUser):
    wait_time = constant_throughput(float(os.environ["BENCH_USER_RATE"]))

    @task
    def get(self):
        self.client.get(os.environ["BENCH_PATH"])
"""


def _children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _per_request_us(cpu_seconds: float, requests: float) -> float | None:
    return cpu_seconds / requests * 1e6 if requests else None


def interpserve_bench(url: str, *args: str) -> dict[str, Any]:
    """One `interpserve bench` run's result, from its --json."""
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        out = Path(tmp) / "run.json"
        argv = [sys.executable, "-m", "interpserve", "bench", url, *args, "--json", str(out)]
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True, timeout=600)
        run: dict[str, Any] = json.loads(out.read_text())["deployments"][0]["run"]
    return run


def _ours(run: dict[str, Any], tool: str, rate: float | None) -> dict[str, Any]:
    latency = run["latency_ms"] or {}
    cpus = [g["cpu"] for g in run["generators"]]
    # The generator processes' CPU over the measured window (the parent only collects).
    cpu_us = _per_request_us(sum(cpus) * run["duration_s"], run["requests"])
    return {
        "tool": tool, "asked": rate, "sent": run["sent_rps"], "rps": run["rps"],
        "p50_ms": latency.get("p50"), "p99_ms": latency.get("p99"),
        "errors": run["requests"] - run["successes"], "generator_cpu": cpus, "late": run["late"],
        "realtime": all(g["realtime"] for g in run["generators"]), "cpu_us": cpu_us,
    }  # fmt: skip


def build_floor_client(directory: Path) -> Path | None:
    """bench/floor_client.c, built with cc into `directory`; None without a C compiler."""
    compiler = shutil.which("cc")
    if compiler is None:
        return None
    program = directory / "floor_client"
    source = ROOT / "bench" / "floor_client.c"
    subprocess.run([compiler, "-O2", "-o", str(program), str(source)], check=True, timeout=120)
    return program


def floor_client(program: Path, server: RunningServer, rate: float, seconds: int) -> dict[str, Any]:
    argv = [str(program), str(server.port), str(rate), str(seconds)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 60)
    result = json.loads(done.stdout)
    return {
        "tool": "C floor client", "asked": rate, "sent": None, "rps": result["rps"],
        "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "errors": 0,
        "generator_cpu": None, "late": result["late"], "realtime": result["realtime"],
        "cpu_us": None,
    }  # fmt: skip


def locust(url: str, path: str, rate: float, seconds: int) -> dict[str, Any]:
    users = max(1, round(rate / LOCUST_USER_RATE))
    with tempfile.TemporaryDirectory(prefix="bench-locust-") as tmp:
        locustfile = Path(tmp) / "locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        prefix = Path(tmp) / "stats"
        argv = [
            sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
            "-u", str(users), "-r", str(users), "-t", f"{seconds + 1}s", "--reset-stats",
            "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        ]  # fmt: skip
        env = os.environ | {"BENCH_USER_RATE": str(rate / users), "BENCH_PATH": path}
        before = _children_cpu()
        subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
        cpu = _children_cpu() - before
        with open(f"{prefix}_stats.csv", newline="") as f:
            total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    return {
        "tool": "locust", "asked": rate, "sent": None, "rps": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]), "p99_ms": float(total["99%"]),
        "errors": int(total["Failure Count"]), "generator_cpu": None, "late": None,
        "realtime": None,
        # The whole process, its start (about a second of imports) included.
        "cpu_us": _per_request_us(cpu, int(total["Request Count"])),
    }  # fmt: skip


def wrk(url: str, connections: int, seconds: int) -> dict[str, Any]:
    before = _children_cpu()
    result = load_tools.wrk(url, connections, seconds, latency=True)
    cpu = _children_cpu() - before
    return {
        "tool": f"wrk -c{connections}", "asked": None, "sent": None, "rps": result.rps,
        "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "errors": result.errors,
        "generator_cpu": [cpu / seconds], "late": None, "realtime": None,
        "cpu_us": _per_request_us(cpu, result.requests),
    }  # fmt: skip


@contextmanager
def serving(spec: ServerSpec, env: dict[str, str], log_dir: Path) -> Iterator[RunningServer]:
    with running(spec, env, log_dir) as server:
        load_tools.wrk(server.url("/"), 16, 1)  # warm-up: imports, caches
        yield server


def side_by_side(
    server: RunningServer, path: str, rates: list[float], seconds: int
) -> list[dict[str, Any]]:
    """`interpserve bench --rate R` and locust at R, in turn, for each rate."""
    rows = []
    for rate in rates:
        args = ["--rate", str(rate), "-d", str(seconds), "--warmup", "1"]
        rows.append(_ours(interpserve_bench(server.url(path), *args), "interpserve bench", rate))
        rows.append(locust(server.url(""), path, rate, seconds))
    return rows


def compare_open_loop(
    server: RunningServer, rates: list[float], seconds: int, workers: int
) -> list[dict[str, Any]]:
    url = server.url("/cpu")
    rows = side_by_side(server, "/cpu", rates, seconds)
    connections = 2 * workers
    rows.append(wrk(url, connections, seconds))
    closed = interpserve_bench(url, "-c", str(connections), "-d", str(seconds), "--warmup", "1")
    rows.append(_ours(closed, f"interpserve bench -c{connections}", None))
    return rows


def at_top_rate(
    server: RunningServer, floor: Path | None, top: float, seconds: int
) -> list[dict[str, Any]]:
    """`interpserve bench --rate top`, without and with --realtime, then the C floor client at
    the same rate."""
    args = ["--rate", str(top), "-d", str(seconds), "--warmup", "1"]
    rows = [
        _ours(
            interpserve_bench(server.url("/"), *args, *flag),
            " ".join(["interpserve bench", *flag]),
            top,
        )
        for flag in ([], ["--realtime"])
    ]
    if floor is not None:
        rows.append(floor_client(floor, server, top, seconds))
    return rows


def overhead(
    server: RunningServer, floor: Path | None, rates: list[float], top: float, seconds: int
) -> list[dict[str, Any]]:
    """Each tool's own floor: the bare server answers in tens of microseconds, so what is
    measured is the generator's (and the loopback's) latency."""
    return side_by_side(server, "/", rates, seconds) + at_top_rate(server, floor, top, seconds)


def closed_loop(url: str, connections: int, seconds: int, generators: int = 1) -> dict[str, Any]:
    """One closed-loop `interpserve bench` run (after a second's warm-up), as a table row."""
    args = ["-c", str(connections), "-d", str(seconds), "--warmup", "1"]
    run = interpserve_bench(url, *args, "--generators", str(generators))
    return _ours(run, f"interpserve bench -c{connections} x{generators}", None)


def top_rate(server: RunningServer, seconds: int) -> list[dict[str, Any]]:
    url = server.url("/")
    return [wrk(url, 64, seconds), *(closed_loop(url, 64, seconds, n) for n in (1, 2))]


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(f"{v:.0%}" for v in value)
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _yes_no(value: bool | None) -> str | None:
    """A flag's cell: unknown (the tool does not say) stays unknown."""
    return None if value is None else ("yes" if value else "no")


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["generator", "asked/s", "sent/s", "answered/s", "p50 ms", "p99 ms", "errors"]
    headers += ["late", "generator CPU", "CPU µs/request", "real-time"]
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for r in rows:
        cells = [r["tool"], _cell(r["asked"]), _cell(r["sent"]), _cell(r["rps"]),
                 _cell(r["p50_ms"], 2), _cell(r["p99_ms"], 2), _cell(r["errors"]),
                 _cell(r["late"]), _cell(r["generator_cpu"]), _cell(r.get("cpu_us")),
                 _cell(_yes_no(r.get("realtime")))]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="of each measured load (10)")
    parser.add_argument("--rates", default="40,80", help="open-loop rates on /cpu (40,80)")
    parser.add_argument(
        "--slow-rates", default="20,50", help=f"open-loop rates on /sleep?ms={SLEEP_MS} (20,50)"
    )
    parser.add_argument("--overhead-rate", type=float, default=5000.0, help="(5000)")
    parser.add_argument("--workers", type=int, default=cores(), help="interpserve's (cores)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    from bench import apps

    # About HANDLER_S of CPU per /cpu request: bench.apps calibrates CPU_TARGET_S.
    loops = round(apps.CPU_LOOPS * HANDLER_S / apps.CPU_TARGET_S)
    env = os.environ | {"BENCH_CPU_LOOPS": str(loops)}
    peers = {spec.key: spec for spec in catalogue(args.workers)}
    bare = ServerSpec("bare-uvloop", "bare uvloop", "uvloop", 1,
                      lambda port, workers: [sys.executable, "-m", "bench.bare_server",
                                             "--host", HOST, "--port", str(port)])  # fmt: skip
    realtime_bare = replace(bare, key="bare-uvloop-realtime",
                            command=lambda port, workers: [*bare.command(port, workers),
                                                           "--realtime"])  # fmt: skip
    results: dict[str, Any] = {"workers": args.workers, "seconds": args.seconds,
                               "loadavg_before": load_average()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as log_dir:
        floor = build_floor_client(Path(log_dir))
        with serving(peers["interpserve-interpreter"], env, Path(log_dir)) as server:
            print("open loop on /cpu ...", flush=True)
            results["open_loop"] = compare_open_loop(server, rates, args.seconds, args.workers)
            print(f"open loop on /sleep?ms={SLEEP_MS} ...", flush=True)
            slow = [float(r) for r in args.slow_rates.split(",")]
            results["slow"] = side_by_side(server, f"/sleep?ms={SLEEP_MS}", slow, args.seconds)
            print("top rate on / ...", flush=True)
            results["top_rate"] = top_rate(server, args.seconds)
        with serving(bare, env, Path(log_dir)) as server:
            print("overhead against the bare server ...", flush=True)
            results["overhead"] = overhead(server, floor, rates, args.overhead_rate, args.seconds)
        with serving(realtime_bare, env, Path(log_dir)) as server:
            print("overhead against the real-time bare server ...", flush=True)
            results["overhead_realtime"] = at_top_rate(
                server, floor, args.overhead_rate, args.seconds
            )
    results["loadavg_after"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generators.json").write_text(json.dumps(results, indent=2) + "\n")
    report = [
        "# Load generators side by side",
        "",
        f"`python -m bench.generators --seconds {args.seconds} --rates {args.rates} "
        f"--slow-rates {args.slow_rates}` "
        f"(interpserve interpreter x{args.workers}, the same server for every row of a table).",
        f"Load average (1, 5, 15 min) before: {results['loadavg_before']}; "
        f"after: {results['loadavg_after']}.",
        "",
        f"## Open loop: /cpu (about {HANDLER_S * 1000:g} ms of CPU), the same rates",
        "",
        table(results["open_loop"]),
        "",
        f"## Open loop: /sleep?ms={SLEEP_MS} (no CPU), the same rates",
        "",
        table(results["slow"]),
        "",
        "## Each generator's own latency: against bench.bare_server",
        "",
        table(results["overhead"]),
        "",
        "## The same at the top rate, against the bare server with the real-time policy",
        "",
        table(results["overhead_realtime"]),
        "",
        "## Top rate: GET /, closed loop, 64 connections",
        "",
        table(results["top_rate"]),
        "",
    ]
    (args.out / "GENERATORS.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
