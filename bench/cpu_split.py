"""Where a plaintext request's CPU goes, server by server.

    python -m bench.cpu_split [--seconds S] [--rounds R] [--workers N] [--servers KEYS] [--http2]

Run it from the repository root. In each of R rounds it starts, in turn and each afresh: the
bare uvloop floor (`bench.bare_server`: a recv and a send per request, nothing parsed), uvicorn
x1 (httptools, uvloop) and interpserve's interpreter kind xN, all answering GET / of
bench.apps, and drives each with wrk (64 connections, one thread) for S seconds after a second
of warm-up. From the CPU time of every thread of the server's process tree, read before and
after, it prints the rate and the CPU per request; for interpserve, also how much of it is the
main interpreter's (the main thread of each serving process: the front end) and how much the
workers' (every other thread). Compare the rows of one round: the machine's speed drifts
between runs. With --http2 the load is h2load's over cleartext HTTP/2 (the h2_hello scenario's
connections and streams), and the servers are granian x1 (Rust's HTTP/2, the target's peer) and
interpserve's interpreter kind xN.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import load_tools
from bench.metrics import H2_CONNECTIONS, H2_STREAMS, HELLO_CONNECTIONS
from bench.procs import children, thread_cpu_seconds, tree
from bench.servers import HOST, RunningServer, ServerSpec, catalogue, running
from bench.settings import cores


def _bare_server(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "bench.bare_server", "--host", HOST, "--port", str(port)]


def servers(workers: int) -> list[ServerSpec]:
    peers = {spec.key: spec for spec in catalogue(workers)}
    return [
        ServerSpec("bare-uvloop", "bare uvloop", "uvloop", 1, _bare_server, http2=False),
        peers["uvicorn-1"],
        peers["granian-1"],
        peers["interpserve-interpreter"],
    ]


def _load(url: str, seconds: int, http2: bool) -> load_tools.WrkResult:
    if http2:
        return load_tools.h2load(url, H2_CONNECTIONS, H2_STREAMS, seconds)
    return load_tools.wrk(url, HELLO_CONNECTIONS, seconds)


def _cpu_by_thread(root: int) -> dict[tuple[int, int], float]:
    """Every thread of the tree, keyed by (process, thread)."""
    return {
        (pid, tid): seconds
        for pid in tree(root)
        for tid, seconds in thread_cpu_seconds(pid).items()
    }


@dataclass(frozen=True)
class Split:
    rps: float
    total_us: float  # the whole tree's CPU per request
    main_us: float  # the main threads' share: interpserve's front ends (and its supervisor)

    def describe(self, spec: ServerSpec) -> str:
        line = f"{spec.label}: {self.rps:,.0f} req/s, {self.total_us:.1f} us a request"
        if spec.family == "interpserve":
            workers = self.total_us - self.main_us
            line += f" (main interpreter {self.main_us:.1f}, workers {workers:.1f})"
        return line


def measure(server: RunningServer, seconds: int, http2: bool = False) -> Split:
    """The rate, the CPU per request, and the main threads' share of it. interpserve's main
    interpreter is the main thread of each serving process (the supervisor's children) and of
    the supervisor, which sleeps."""
    url = server.url("/")
    _load(url, 1, http2)  # warm-up
    before = _cpu_by_thread(server.pid)
    result = _load(url, seconds, http2)
    after = _cpu_by_thread(server.pid)
    used = {key: after[key] - before.get(key, 0.0) for key in after}
    us = 1e6 / result.requests
    mains = [server.pid, *children(server.pid)] if server.spec.family == "interpserve" else []
    main = sum(used.get((pid, pid), 0.0) for pid in mains) * us
    return Split(result.rps, sum(used.values()) * us, main)


def rounds_options(
    argv: list[str] | None,
    doc: str,
    catalogue: Callable[[int], list[ServerSpec]],
    http2_option: bool = False,
) -> tuple[argparse.Namespace, list[ServerSpec], dict[str, str]]:
    """The command line of a script that measures a few servers in rounds: its options, the
    servers chosen from `catalogue(workers)` (with `http2_option`, --http2 keeps those that
    speak HTTP/2), and their environment."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if http2_option:
        parser.add_argument("--http2", action="store_true", help="load over HTTP/2 (h2load)")
    parser.add_argument("--seconds", type=int, default=5, help="of each measured load (5)")
    parser.add_argument("--rounds", type=int, default=3, help="(default 3)")
    parser.add_argument("--workers", type=int, default=cores(), help="interpserve's (cores)")
    parser.add_argument(
        "--servers",
        default=",".join(spec.key for spec in catalogue(1)),
        help="which, by key (default: all, %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("need --seconds, --rounds and --workers >= 1")
    keys = args.servers.split(",")
    chosen = [spec for spec in catalogue(args.workers) if spec.key in keys]
    if len(chosen) != len(set(keys)):
        parser.error(f"--servers takes keys among {[spec.key for spec in catalogue(1)]}")
    if getattr(args, "http2", False):
        chosen = [spec for spec in chosen if spec.http2]
    # Set before bench.apps is imported (by bench.suite, here): /cpu is not served, and need
    # not be calibrated.
    os.environ.setdefault("BENCH_CPU_LOOPS", "1000")
    from bench.suite import server_env

    return args, chosen, server_env()


def main(argv: list[str] | None = None) -> None:
    args, chosen, env = rounds_options(argv, __doc__, servers, http2_option=True)
    with tempfile.TemporaryDirectory(prefix="cpu-split-") as log_dir:
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}:", flush=True)
            for spec in chosen:
                with running(spec, env, Path(log_dir)) as server:
                    split = measure(server, args.seconds, args.http2)
                    print("  " + split.describe(spec), flush=True)


if __name__ == "__main__":
    main()
