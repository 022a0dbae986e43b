"""The process model's figures: what the supervisor costs, what recycling and reloading leave
behind, memory against uvicorn --workers N, and plaintext with several serving processes.

    python -m bench.process_model [--quick] [--rounds R] [--seconds S] [--only NAMES] [--out FILE]

Run it from the repository root, on a quiet machine: every figure is compared with a baseline
or a peer measured in the same run. Each measurement starts its own servers (bench.servers):

- supervisor: VmRSS of interpserve's supervisor alone (the process started), idle and at the
  end of the recycling and reloading runs.
- recycles: 2 interpreter workers with --limit-max-requests 100 under wrk until 200 recycles;
  the tree's settled RSS before and after, with --limit-max-leftover as default and off (0).
- recycling: 20 s of wrk -c32 with --limit-max-requests 100 (2 workers): the tree's RSS over
  time, interpserve as it is, interpserve as it was (--no-supervisor --limit-max-leftover 0:
  every destroyed interpreter's leftovers kept in the one process) and uvicorn --workers 2.
- shutdown: 50 requests sleeping 10 s, then SIGTERM with --timeout-graceful-shutdown 3: the
  time to exit and what the clients got, interpserve against uvicorn --workers 2.
- reloads: 20 SIGHUPs, each followed by a little load; the tree's settled RSS before and after,
  and the same with --no-supervisor (the workers reloaded inside one process).
- memory: the tree's RSS idle and after load (bench's memory scenario) at 2 and 8 workers,
  against uvicorn --workers N; after the load, each process's RSS and the tree's PSS too
  (the RSS sum counts the pages the processes share once per process, PSS once in all).
- processes: plaintext requests/s and CPU per request with --processes 2 against 1 and
  uvicorn --workers 2 (in turns, R rounds), and the main interpreter's CPU per request, which
  sets one front end's ceiling.

Prints each figure as it comes, and writes them all to --out (JSON).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import load_tools
from bench.apps import MIB
from bench.cpu_split import measure as cpu_split
from bench.metrics import HELLO_CONNECTIONS
from bench.procs import tree, tree_pss_bytes, tree_rss_bytes
from bench.scenarios import Context, memory, settled_rss
from bench.servers import HOST, RunningServer, ServerSpec, catalogue, running
from bench.settings import RESULTS_DIR, Settings
from bench.suite import precompile, server_env
from interpserve.rss import rss_bytes
from interpserve.testing import running as process_runs

RECYCLES = 200
RELOADS = 20
RECYCLE_LIMIT = "100"
LOAD_CHUNK_S = 2
RECYCLING_MAX_S = 300.0
RELOAD_TIMEOUT_S = 60.0
PEAK_INTERVAL_S = 0.1
RECYCLING_S = 20
RECYCLING_CONNECTIONS = 32
SHUTDOWN_CLIENTS = 50
SHUTDOWN_SLEEP_S = 10
SHUTDOWN_GRACE = "3"
SHUTDOWN_MAX_S = 60.0

Figures = dict[str, Any]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Run:
    def __init__(self, env: dict[str, str], log_dir: Path, settings: Settings) -> None:
        self.env = env
        self.log_dir = log_dir
        self.settings = settings

    @contextmanager
    def server(self, spec: ServerSpec) -> Iterator[tuple[RunningServer, Path]]:
        with running(spec, self.env, self.log_dir) as server:
            yield server, self.log_dir / f"{spec.key}.log"


def _lines(log_file: Path, text: str) -> int:
    return log_file.read_text(errors="replace").count(text)


@contextmanager
def _peak_rss(pid: int) -> Iterator[list[float]]:
    """The tree's highest RSS in MiB while the block runs (sampled), in the list yielded."""
    peak = [tree_rss_bytes(pid) / MIB]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(PEAK_INTERVAL_S):
            peak[0] = max(peak[0], tree_rss_bytes(pid) / MIB)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def recycles(run: Run, leftover: str | None) -> Figures:
    """`leftover`: --limit-max-leftover, or None for its default."""
    flags: tuple[str, ...] = ("--limit-max-requests", RECYCLE_LIMIT, "--log-level", "info")
    if leftover is not None:
        flags += ("--limit-max-leftover", leftover)
    what = "recycling" + ("" if leftover is None else f" leftover {leftover}")
    spec = ServerSpec.interpserve("interpreter", 2, flags, what)
    with run.server(spec) as (server, log_file):
        idle = settled_rss(server.pid)
        supervisor_idle = rss_bytes(server.pid) / MIB
        deadline = time.monotonic() + RECYCLING_MAX_S
        with _peak_rss(server.pid) as peak:
            while _lines(log_file, "Recycling worker") < RECYCLES:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fewer than {RECYCLES} recycles in {RECYCLING_MAX_S} s")
                load_tools.wrk(server.url("/"), 32, LOAD_CHUNK_S)
        after = settled_rss(server.pid)
        return {
            "recycles": _lines(log_file, "Recycling worker"),
            "serving_processes_replaced": _lines(log_file, "takes over from"),
            "idle_mib": idle,
            "peak_mib": peak[0],
            "after_mib": after,
            "after_vs_idle": after / idle,
            "supervisor_idle_mib": supervisor_idle,
            "supervisor_after_mib": rss_bytes(server.pid) / MIB,
        }


def recycling(run: Run) -> Figures:
    """RSS over RECYCLING_S of load with a request limit of 100, three ways."""
    limit = ("--limit-max-requests", RECYCLE_LIMIT)
    logged = ("--log-level", "info")
    specs = {
        "now": ServerSpec.interpserve("interpreter", 2, limit + logged, "recycling"),
        "before": ServerSpec.interpserve(
            "interpreter",
            2,
            limit + logged + ("--no-supervisor", "--limit-max-leftover", "0"),
            "recycling in one process",
        ),
        "uvicorn": ServerSpec.uvicorn(2, limit, "recycling"),
    }
    figures: Figures = {}
    for name, spec in specs.items():
        with run.server(spec) as (server, log_file):
            idle = settled_rss(server.pid)
            series, requests, errors, stalled = [], 0, 0, 0
            with _peak_rss(server.pid) as peak:
                for _ in range(RECYCLING_S // LOAD_CHUNK_S):
                    try:
                        result = load_tools.wrk(
                            server.url("/"), RECYCLING_CONNECTIONS, LOAD_CHUNK_S
                        )
                        requests, errors = requests + result.requests, errors + result.errors
                    except load_tools.LoadFailed:  # not one answer: every worker was restarting
                        stalled += 1
                    series.append(round(tree_rss_bytes(server.pid) / MIB, 1))
            after = settled_rss(server.pid)
            figures[name] = {
                "server": spec.label,
                "idle_mib": idle,
                "rss_mib_every_2_s": series,
                "peak_mib": peak[0],
                "after_mib": after,
                "after_vs_idle": after / idle,
                "requests": requests,
                "errors": errors,
                "stalled_2_s": stalled,
                "recycles": _lines(log_file, "Recycling worker"),
                "serving_processes_replaced": _lines(log_file, "takes over from"),
            }
    for name in ("now", "before"):
        figures[f"{name}_after_vs_uvicorn"] = (
            figures[name]["after_mib"] / figures["uvicorn"]["after_mib"]
        )
    figures["now_after_vs_before"] = figures["now"]["after_mib"] / figures["before"]["after_mib"]
    return figures


def _established(port: int) -> int:
    """Connections to `port` on loopback the server has accepted (Linux's /proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                count += int(local.rsplit(":", 1)[1], 16) == port and state == "01"
    return count


def _shutdown_under_load(server: RunningServer) -> Figures:
    outcomes: Counter[str] = Counter()

    def request() -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=SHUTDOWN_MAX_S)
        try:
            conn.request("GET", f"/sleep?ms={SHUTDOWN_SLEEP_S * 1000}")
            outcomes[str(conn.getresponse().status)] += 1
        except (OSError, http.client.HTTPException) as exc:
            outcomes[type(exc).__name__] += 1
        finally:
            conn.close()

    clients = [threading.Thread(target=request) for _ in range(SHUTDOWN_CLIENTS)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + SHUTDOWN_MAX_S
    while _established(server.port) < SHUTDOWN_CLIENTS and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # for the requests to reach the apps
    started = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    while process_runs(server.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    exit_s = time.monotonic() - started
    for client in clients:
        client.join(SHUTDOWN_MAX_S)
    return {"exit_s": exit_s, "outcomes": dict(outcomes)}


def shutdown(run: Run) -> Figures:
    grace = ("--timeout-graceful-shutdown", SHUTDOWN_GRACE)
    specs = {
        "interpserve": ServerSpec.interpserve("interpreter", 2, grace, "shutdown"),
        "uvicorn": ServerSpec.uvicorn(2, grace, "shutdown"),
    }
    figures: Figures = {"deadline_s": float(SHUTDOWN_GRACE), "clients": SHUTDOWN_CLIENTS}
    for name, spec in specs.items():
        with run.server(spec) as (server, _):
            figures[name] = _shutdown_under_load(server)
    figures["exit_vs_uvicorn"] = figures["interpserve"]["exit_s"] / figures["uvicorn"]["exit_s"]
    return figures


def reloads(run: Run, supervised: bool) -> Figures:
    flags = ("--log-level", "info") + (() if supervised else ("--no-supervisor",))
    what = "reloading" if supervised else "reloading in place"
    spec = ServerSpec.interpserve("interpreter", 2, flags, what)
    with run.server(spec) as (server, log_file):
        idle = settled_rss(server.pid)
        with _peak_rss(server.pid) as peak:
            for reload in range(1, RELOADS + 1):
                os.kill(server.pid, signal.SIGHUP)
                deadline = time.monotonic() + RELOAD_TIMEOUT_S
                while _lines(log_file, "Reloaded:") < reload:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"reload {reload} did not finish")
                    time.sleep(0.05)
                load_tools.wrk(server.url("/"), 8, 1)
        after = settled_rss(server.pid)
        return {
            "reloads": RELOADS,
            "idle_mib": idle,
            "peak_mib": peak[0],
            "after_mib": after,
            "after_vs_idle": after / idle,
            "supervisor_after_mib": rss_bytes(server.pid) / MIB if supervised else None,
        }


def memory_against_uvicorn(run: Run, workers: int) -> Figures:
    specs = {spec.key: spec for spec in catalogue(workers)}
    ctx = Context(run.settings, Path(os.devnull))
    figures: Figures = {}
    for key in ("interpserve-interpreter", "uvicorn-n"):
        with run.server(specs[key]) as (server, _):
            figures[key] = memory(server, ctx).figures
            # After the load, settled: each process's RSS (parents first), and the tree's PSS.
            figures[key]["processes_rss_mib"] = [
                round(rss_bytes(pid) / MIB, 1) for pid in tree(server.pid)
            ]
            figures[key]["loaded_pss_mib"] = tree_pss_bytes(server.pid) / MIB
    ours, theirs = figures["interpserve-interpreter"], figures["uvicorn-n"]
    for name in ("memory.idle_mib", "memory.loaded_mib", "loaded_pss_mib"):
        figures[f"{name.removeprefix('memory.').removesuffix('_mib')}_vs_uvicorn"] = (
            ours[name] / theirs[name]
        )
    return figures


def processes(run: Run, rounds: int, seconds: int) -> Figures:
    one = ServerSpec.interpserve("interpreter", 2)
    two = ServerSpec.interpserve("interpreter", 2, ("--processes", "2"), "2 processes")
    uvicorn = {spec.key: spec for spec in catalogue(2)}["uvicorn-n"]
    order = (one, two, uvicorn)
    samples: dict[str, list[dict[str, float]]] = {spec.key: [] for spec in order}
    for round_ in range(rounds):
        for spec in order if round_ % 2 == 0 else order[::-1]:
            with run.server(spec) as (server, _):
                split = cpu_split(server, seconds)
            log("  " + split.describe(spec))
            samples[spec.key].append(
                {"rps": split.rps, "cpu_us": split.total_us, "main_us": split.main_us}
            )

    def median(key: str, figure: str) -> float:
        values = sorted(sample[figure] for sample in samples[key])
        return values[len(values) // 2]

    main_us = median(one.key, "main_us")
    return {
        "connections": HELLO_CONNECTIONS,
        "samples": samples,
        "rps_2_vs_1": median(two.key, "rps") / median(one.key, "rps"),
        "rps_1_vs_uvicorn_2": median(one.key, "rps") / median(uvicorn.key, "rps"),
        "rps_2_vs_uvicorn_2": median(two.key, "rps") / median(uvicorn.key, "rps"),
        "main_interpreter_us": main_us,
        "one_process_ceiling_rps": 1e6 / main_us,
    }


MEASUREMENTS: dict[str, Callable[[Run, argparse.Namespace], Figures]] = {
    "recycles": lambda run, args: {
        "default": recycles(run, None),
        "off": recycles(run, "0"),
    },
    "recycling": lambda run, args: recycling(run),
    "shutdown": lambda run, args: shutdown(run),
    "reloads": lambda run, args: {
        "supervisor": reloads(run, supervised=True),
        "in_place": reloads(run, supervised=False),
    },
    "memory": lambda run, args: {
        "workers_2": memory_against_uvicorn(run, 2),
        "workers_8": memory_against_uvicorn(run, 8),
    },
    "processes": lambda run, args: processes(run, args.rounds, args.seconds),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s loads")
    parser.add_argument("--rounds", type=int, default=3, help="of the processes runs (3)")
    parser.add_argument("--seconds", type=int, default=5, help="of each plaintext load (5)")
    parser.add_argument("--only", default=",".join(MEASUREMENTS), help="%(default)s")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "process_model.json")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := [name for name in names if name not in MEASUREMENTS]:
        parser.error(f"--only takes names among {list(MEASUREMENTS)}, not {unknown}")
    if args.quick:
        args.rounds, args.seconds = 1, 2
    settings = Settings(duration=args.seconds, warmup=1 if args.quick else 2)
    precompile()
    results: Figures = {}
    with tempfile.TemporaryDirectory(prefix="process-model-") as log_dir:
        run = Run(server_env(), Path(log_dir), settings)
        for name in names:
            log(f"{name}:")
            results[name] = MEASUREMENTS[name](run, args)
            log(json.dumps(results[name], indent=2, default=str))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
