"""What the access log costs plaintext, against uvicorn's, in the same run.

    python -m bench.access_log [--seconds S] [--rounds R] [--workers N] [--servers KEYS]

Run it from the repository root. In each of R rounds it starts, in turn and each afresh,
uvicorn x1 (httptools, uvloop) with its access log off and on, and interpserve's interpreter
kind xN with its access log off (text and JSON logs, and with --request-id) and on (text and
JSON lines), all answering GET / of bench.apps; it drives each with wrk (64 connections, one
thread) for S seconds after a second of warm-up, and prints the rate and the server's CPU per
request. The
access lines go to a file (each server's log, as a container runtime's pipe would take them).

It ends with the ratios that matter, each the median over the rounds of a ratio of two servers
measured in the same round: interpserve with its access log off to uvicorn with its off, and
interpserve with its access log on to uvicorn with its on.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import deployed, load_tools
from bench.cpu_split import rounds_options
from bench.metrics import HELLO_CONNECTIONS
from bench.procs import tree_cpu_seconds
from bench.servers import APP, HOST, Command, RunningServer, ServerSpec, running


def _uvicorn(*log_flags: str) -> Command:
    def command(port: int, workers: int) -> list[str]:
        return [
            deployed.python(), "-m", "uvicorn", APP, "--workers", str(workers),
            "--http", "httptools", "--loop", "uvloop", *log_flags,
            "--host", HOST, "--port", str(port),
        ]  # fmt: skip

    return command


def _interpserve(*log_flags: str) -> Command:
    def command(port: int, workers: int) -> list[str]:
        return [
            deployed.python(), "-m", "interpserve", APP, "--workers", str(workers),
            "--worker-kind", "interpreter", *log_flags, "--host", HOST, "--port", str(port),
        ]  # fmt: skip

    return command


# Access lines are written at level info: the servers run at info when theirs is on.
_OFF = ("--no-access-log", "--log-level", "warning")
_ON = ("--access-log", "--log-level", "info")


# key, label, log flags
_INTERPSERVE = (
    ("interpserve-off", "access log off", _OFF),
    ("interpserve-json-off", "JSON logs, access log off", (*_OFF, "--log-format", "json")),
    ("interpserve-text-on", "access log on (text)", _ON),
    ("interpserve-json-on", "access log on (JSON)", (*_ON, "--log-format", "json")),
    ("interpserve-request-id", "access log off, --request-id", (*_OFF, "--request-id")),
)


def servers(workers: int) -> list[ServerSpec]:
    uvicorn = [
        ServerSpec("uvicorn-1-off", "uvicorn, access log off", "uvicorn", 1, _uvicorn(*_OFF)),
        ServerSpec("uvicorn-1-on", "uvicorn, access log on", "uvicorn", 1, _uvicorn(*_ON)),
    ]
    return uvicorn + [
        ServerSpec(key, f"interpserve, {label}", "interpserve", workers, _interpserve(*flags))
        for key, label, flags in _INTERPSERVE
    ]


# (numerator, denominator): each figure is measured against the uvicorn of its kind.
RATIOS = (
    ("interpserve-off", "uvicorn-1-off"),
    ("interpserve-json-off", "uvicorn-1-off"),
    ("interpserve-text-on", "uvicorn-1-on"),
    ("interpserve-json-on", "uvicorn-1-on"),
    ("interpserve-json-on", "interpserve-text-on"),
    ("interpserve-request-id", "interpserve-off"),
)


@dataclass(frozen=True)
class Sample:
    rps: float
    cpu_us: float  # server CPU (every process and thread of its tree) per request


def measure(server: RunningServer, seconds: int) -> Sample:
    url = server.url("/")
    load_tools.wrk(url, HELLO_CONNECTIONS, 1)  # warm-up
    before = tree_cpu_seconds(server.pid)
    result = load_tools.wrk(url, HELLO_CONNECTIONS, seconds)
    used = tree_cpu_seconds(server.pid) - before
    return Sample(result.rps, used * 1e6 / result.requests)


def main(argv: list[str] | None = None) -> None:
    args, chosen, env = rounds_options(argv, __doc__, servers)
    rounds: list[dict[str, Sample]] = []
    with tempfile.TemporaryDirectory(prefix="access-log-") as log_dir:
        for number in range(1, args.rounds + 1):
            print(f"round {number}:", flush=True)
            samples: dict[str, Sample] = {}
            # Each round starts with another server, so slow drift spreads over all of them.
            shift = (number - 1) % len(chosen)
            for spec in chosen[shift:] + chosen[:shift]:
                with running(spec, env, Path(log_dir)) as server:
                    samples[spec.key] = sample = measure(server, args.seconds)
                print(
                    f"  {spec.label}: {sample.rps:,.0f} req/s, {sample.cpu_us:.1f} us a request",
                    flush=True,
                )
            rounds.append(samples)
    print("ratios (median over rounds of same-round ratios; requests/s, CPU per request):")
    for top, bottom in RATIOS:
        pairs = [(r[top], r[bottom]) for r in rounds if top in r and bottom in r]
        if pairs:
            rps = statistics.median(a.rps / b.rps for a, b in pairs)
            cpu = statistics.median(a.cpu_us / b.cpu_us for a, b in pairs)
            print(f"  {top} / {bottom}: {rps:.2f}x requests/s, {cpu:.2f}x CPU a request")


if __name__ == "__main__":
    main()
