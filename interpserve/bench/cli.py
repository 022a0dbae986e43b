"""`interpserve bench URL` load-tests a running server; `interpserve bench MODULE:APP` starts
the app once per worker count (and kind), measures each, and reports the scaling curve. Either
closed loop (--connections) or open loop (--rate); --sweep-rate draws latency against the rate,
--slo searches for the highest rate that meets an objective.

Exit codes: 0 after runs that got answers (errors are reported, not fatal), 1 when the target
cannot be reached, the app does not start, a needed package is missing or no request
succeeded, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from interpserve.bench.client import check_reachable, run_load
from interpserve.bench.deployment import Deployment
from interpserve.bench.export import report_csv, report_json, report_openmetrics
from interpserve.bench.histogram import INSTALL_HINT, hdrhistogram_installed
from interpserve.bench.http1 import parse_header, parse_url
from interpserve.bench.load import GENERATOR_RATE, Arrival, Load, WeightedPath, parse_path
from interpserve.bench.plot import matplotlib_installed, plot_all
from interpserve.bench.progress import progress_bar, rich_installed
from interpserve.bench.report import (
    capacity_recommendations,
    format_report,
    format_run,
    recommendations,
    step_note,
)
from interpserve.bench.search import Step, find_capacity, measured, rate_steps
from interpserve.bench.slo import Slo, parse_slo
from interpserve.bench.stats import Summary, summarize
from interpserve.bench.sweep import serving
from interpserve.cli_parser import Parser
from interpserve.errors import AppFailed, LoadError

PROG = "interpserve bench"
DEFAULT_DURATION = 5.0
DEFAULT_CONNECTIONS = Load.connections
# A freshly started server's first requests pay for lazy imports and caches, and an open-loop
# run's first requests for opening its connections.
SWEEP_WARMUP = 1.0
# The closed-loop run whose throughput starts a capacity search.
PROBE_DURATION = 2.0
WORKER_KINDS = ("auto", "interpreter", "process")


def parse_worker_counts(text: str) -> list[int]:
    """ "1..8" (a range, both ends included) or "1,2,4"; sorted, without repeats."""
    try:
        if ".." in text:
            first, _, last = text.partition("..")
            counts = list(range(int(first), int(last) + 1))
        else:
            counts = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: give worker counts as 1..8 or 1,2,4") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"{text!r}: worker counts are 1 or more")
    return sorted(set(counts))


def parse_worker_kinds(text: str) -> list[str]:
    kinds = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [kind for kind in kinds if kind not in WORKER_KINDS]
    if not kinds or unknown:
        raise ValueError(f"{text!r}: worker kinds are {', '.join(WORKER_KINDS)}")
    return list(dict.fromkeys(kinds))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Load-test an endpoint with keep-alive HTTP/1.1 connections from separate "
        "processes, closed loop (--connections) or open loop (--rate). With a URL, drive a "
        "running server; with MODULE:APP, start the app for each worker count of "
        "--sweep-workers. --slo finds the highest rate that meets an objective.",
    )
    parser.add_argument("target", metavar="URL|MODULE:APP")
    load = parser.add_argument_group("load")
    load.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="[WEIGHT:]PATH",
        help="the endpoint to load (default: the URL's, or /); repeat for a weighted mix, "
        "e.g. --path 90:/ --path 10:/cpu",
    )
    length = load.add_mutually_exclusive_group()
    length.add_argument(
        "-d",
        "--duration",
        type=float,
        metavar="SECONDS",
        help=f"measure for this long, each step of a sweep or search too (default: "
        f"{DEFAULT_DURATION:g})",
    )
    length.add_argument(
        "-n",
        "--requests",
        type=int,
        metavar="N",
        help="measure until N requests are answered or failed (open loop: N / rate seconds)",
    )
    load.add_argument(
        "--warmup",
        type=float,
        metavar="SECONDS",
        help="load the server this long before measuring (default: 0 for one run against a "
        f"URL, else {SWEEP_WARMUP:g})",
    )
    load.add_argument("-m", "--method", default="GET", help="HTTP method (default: GET)")
    load.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    body = load.add_mutually_exclusive_group()
    body.add_argument("--body", help="request body")
    body.add_argument("--body-file", metavar="PATH", help="read the request body from a file")
    load.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="count a request unanswered after this long as an error (default: 30)",
    )
    load.add_argument(
        "--generators",
        type=int,
        metavar="N",
        help="generator processes (default: 1, or one per "
        f"{GENERATOR_RATE:,} requests/s asked, up to the CPUs)",
    )
    closed = parser.add_argument_group("closed loop (the default)")
    closed.add_argument(
        "-c",
        "--connections",
        type=int,
        metavar="N",
        help=f"concurrent connections, each sending its next request when the last answer "
        f"arrives (default: {DEFAULT_CONNECTIONS}, or twice the most workers of a sweep)",
    )
    opened = parser.add_argument_group("open loop")
    opened.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="send R requests/s on a schedule, whatever the answers do; latency counts from "
        "when each request was due",
    )
    opened.add_argument(
        "--arrival",
        choices=[a.value for a in Arrival],
        default=Arrival.CONSTANT.value,
        help="the schedule: evenly spaced, or Poisson (random, independent) arrivals "
        "(default: constant)",
    )
    opened.add_argument(
        "--max-connections",
        type=int,
        default=Load.max_connections,
        metavar="N",
        help="open connections as the schedule needs, up to N; then requests queue, their "
        f"latency still counted from when they were due (default: {Load.max_connections})",
    )
    opened.add_argument(
        "--realtime",
        action="store_true",
        help="run the generator processes under the real-time scheduling policy (SCHED_FIFO, "
        "where allowed: root or CAP_SYS_NICE), so that on a busy machine a due request waits "
        "for no ordinary process",
    )
    opened.add_argument(
        "--sweep-rate",
        metavar="50..400",
        help="measure at each rate (50..400: 8 rates; 50..400:25 every 25; or 50,100,200) "
        "and mark the knee of the latency curve",
    )
    opened.add_argument(
        "--slo",
        metavar="OBJECTIVE",
        help="find the highest rate that meets it, e.g. 'p99<200ms' or 'p99<200ms,p50<50ms,"
        "errors<0.1%%' (latencies: mean, p50, p90, p99, p99.9, max; errors<1%% unless given); "
        "the search starts at --rate, else at a closed-loop run's throughput",
    )
    sweep = parser.add_argument_group("deployments (MODULE:APP only)")
    sweep.add_argument(
        "--sweep-workers", metavar="1..8|1,2,4", help="worker counts to measure (default: 1..CPUs)"
    )
    sweep.add_argument(
        "--worker-kind",
        metavar="KINDS",
        help=f"comma-separated worker kinds to compare, of {', '.join(WORKER_KINDS)} "
        "(default: auto)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="PATH", help="write the results as JSON")
    output.add_argument(
        "--csv", metavar="PATH", help="write one row per measured run (and path) as CSV"
    )
    output.add_argument(
        "--openmetrics",
        metavar="PATH",
        help="write every measured run's figures as OpenMetrics text, for a time-series store",
    )
    output.add_argument(
        "--plot",
        metavar="PATH",
        help="draw PATH-scaling.png, PATH-latency.png, PATH-timeline.png, as measured "
        "(needs matplotlib)",
    )
    return parser


def _fail(message: str) -> NoReturn:
    sys.exit(f"{PROG}: error: {message}")


def _note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _load(args: argparse.Namespace, sweep_workers: int | None, paths: list[WeightedPath]) -> Load:
    """The Load the flags describe; raises ValueError for values no run could use."""
    if args.connections is not None and args.connections < 1:
        raise ValueError("--connections must be at least 1")
    if args.requests is not None and args.requests < 1:
        raise ValueError("--requests must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise ValueError("--duration must be positive")
    if args.warmup is not None and args.warmup < 0:
        raise ValueError("--warmup must be 0 or more")
    if args.timeout <= 0:
        raise ValueError("--timeout must be positive")
    if args.rate is not None and args.rate <= 0:
        raise ValueError("--rate must be positive")
    if args.max_connections < 1:
        raise ValueError("--max-connections must be at least 1")
    if args.generators is not None and args.generators < 1:
        raise ValueError("--generators must be at least 1")
    if args.requests is not None and (args.slo or args.sweep_rate):
        raise ValueError("--slo and --sweep-rate measure for --duration, not --requests")
    if args.body_file is not None:
        try:
            body = Path(args.body_file).read_bytes()
        except OSError as exc:
            raise ValueError(f"--body-file: {exc.strerror}: {args.body_file}") from None
    else:
        body = (args.body or "").encode()
    connections = args.connections
    if connections is None:
        connections = max(DEFAULT_CONNECTIONS, 2 * (sweep_workers or 0))
    single_url_run = sweep_workers is None and not (args.slo or args.sweep_rate)
    default_warmup = 0.0 if single_url_run else SWEEP_WARMUP
    load = Load(
        method=args.method.upper(),
        headers=tuple(parse_header(header) for header in args.header),
        body=body,
        paths=tuple(paths),
        connections=connections,
        arrival=Arrival(args.arrival),
        max_connections=args.max_connections,
        generators=args.generators or 1,
        duration=None if args.requests else (args.duration or DEFAULT_DURATION),
        requests=args.requests,
        warmup=default_warmup if args.warmup is None else args.warmup,
        timeout=args.timeout,
        realtime=args.realtime,
    )
    if load.generators > connections and args.rate is None and not (args.slo or args.sweep_rate):
        raise ValueError("--generators cannot be more than --connections in a closed loop")
    return replace(load, rate=args.rate) if args.rate is not None else load


def _write(flag: str, path: str, text: str) -> None:
    try:
        Path(path).write_text(text, "utf-8")
    except OSError as exc:
        _fail(f"{flag}: {exc.strerror}: {path}")


class _Bench:
    """The measurements of one invocation, against one URL or each deployment of an app."""

    def __init__(self, args: argparse.Namespace, load: Load, cpus: int) -> None:
        self.load = load
        self.cpus = cpus
        self.explicit_generators = args.generators is not None
        self.slo: Slo | None = parse_slo(args.slo) if args.slo else None
        self.rates = rate_steps(args.sweep_rate) if args.sweep_rate else []
        self.start_rate: float | None = args.rate

    def at_rate(self, rate: float) -> Load:
        generators = self.load.generators
        if not self.explicit_generators:
            generators = max(1, min(self.cpus, math.ceil(rate / GENERATOR_RATE)))
        return replace(self.load, rate=rate, generators=generators)

    def run(self, label: str, url: str, load: Load) -> Summary:
        with progress_bar(label, load) as on_progress:
            return summarize(run_load(url, load, on_progress))

    def measure(self, url: str, deployment: Deployment) -> Deployment:
        label = deployment.label
        if not self.rates and not self.slo:
            rate = self.load.rate
            deployment.run = self.run(label, url, self.load if rate is None else self.at_rate(rate))
            if deployment.kind is not None:
                _note(_run_note(deployment, deployment.run))
            return deployment

        def at(rate: float) -> Summary:
            return self.run(f"{label} at {rate:,.0f}/s", url, self.at_rate(rate))

        def noted(step: Step) -> None:
            _note(step_note(deployment, step))

        for rate in self.rates:
            if self.slo:
                # The curve keeps the run that counts: a miss is measured again first.
                step = measured(at, self.slo, rate, noted)[-1]
            else:
                step = Step(rate, at(rate), [])
                noted(step)
            deployment.rates.append(step)
        if self.slo:
            start = self.start_rate or self.probe(url, deployment)
            deployment.capacity = find_capacity(at, self.slo, start, on_step=noted)
        return deployment

    def probe(self, url: str, deployment: Deployment) -> float:
        """A closed-loop run's throughput: where the search for capacity starts."""
        load = replace(self.load, rate=None, duration=PROBE_DURATION, requests=None, generators=1)
        summary = self.run(f"{deployment.label}, closed-loop probe", url, load)
        if not summary.successes:
            raise LoadError(f"no request succeeded in a closed-loop probe of {url}")
        _note(
            f"{deployment.label}: {summary.rps:,.1f} requests/s closed loop; searching from there"
        )
        return summary.rps


def _run_note(deployment: Deployment, summary: Summary) -> str:
    p99 = f"p99 {summary.latency_ms.p99:.1f} ms" if summary.latency_ms else "no successes"
    return (
        f"{deployment.label}: {summary.rps:,.1f} requests/s, {p99}, {summary.error_count:,} errors"
    )


def _successes(deployments: Sequence[Deployment]) -> int:
    from interpserve.bench.report import all_summaries

    return sum(s.successes for s in all_summaries(deployments))


def main(argv: Sequence[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    is_url = "://" in args.target
    app_flags = ("sweep_workers", "worker_kind")
    if is_url and any(getattr(args, name) is not None for name in app_flags):
        parser.error("--sweep-workers and --worker-kind need MODULE:APP")
    if not is_url and ":" not in args.target:
        parser.error(f"{args.target!r} is neither a URL (http://...) nor MODULE:APP")
    cpus = os.process_cpu_count() or 1
    try:
        paths = [parse_path(text) for text in args.path]
        if is_url:
            parse_url(args.target)
        elif not paths:
            paths = [WeightedPath("/")]
        counts = parse_worker_counts(args.sweep_workers or f"1..{cpus}")
        kinds = parse_worker_kinds(args.worker_kind or "auto")
        load = _load(args, None if is_url else max(counts), paths)
        bench = _Bench(args, load, cpus)
    except ValueError as exc:
        parser.error(str(exc))
    if not hdrhistogram_installed():
        _fail(f"interpserve bench needs the hdrhistogram package: {INSTALL_HINT}")
    if args.plot and not matplotlib_installed():
        _fail(f"--plot needs matplotlib: {INSTALL_HINT} (or pip install matplotlib)")
    if not rich_installed():
        _note(f"no progress bar without rich: {INSTALL_HINT}")
    deployments: list[Deployment] = []
    try:
        if is_url:
            check_reachable(args.target, timeout=min(load.timeout, 5.0))
            deployments.append(bench.measure(args.target, Deployment()))
        else:
            for kind in kinds:
                for workers in counts:
                    with serving(args.target, kind, workers) as served:
                        deployment = Deployment(served.kind, workers)
                        deployments.append(bench.measure(served.url, deployment))
    except (LoadError, AppFailed) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    _output(args, is_url, load, bench, deployments, cpus)


def _output(
    args: argparse.Namespace,
    is_url: bool,
    load: Load,
    bench: _Bench,
    deployments: list[Deployment],
    cpus: int,
) -> None:
    title = args.target if is_url else f"{args.target} {' '.join(p.path for p in load.paths)}"
    slo = bench.slo
    single = is_url and deployments[0].run is not None
    if single and deployments[0].run is not None:
        print(format_run(args.target, load, deployments[0].run), flush=True)
    else:
        print(format_report(title, load, deployments, slo, cpus), flush=True)
    points = [p for d in deployments if (p := d.point())]
    if slo and any(d.capacity and d.kind for d in deployments):
        advice = capacity_recommendations(deployments, slo)
    else:
        advice = recommendations(points, cpus) if points else []
    if args.json:
        target = {"mode": "url", "url": args.target} if is_url else {
            "mode": "app", "app": args.target, "paths": [p.path for p in load.paths]
        }  # fmt: skip
        data = report_json(target, load, deployments, slo, cpus, advice)
        _write("--json", args.json, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    if args.csv:
        _write("--csv", args.csv, report_csv(deployments, slo))
    if args.openmetrics:
        _write("--openmetrics", args.openmetrics, report_openmetrics(deployments, slo))
    if args.plot:
        try:
            written = plot_all(deployments, slo, title, args.plot)
        except (OSError, ValueError) as exc:  # an unwritable path, an unknown file type
            _fail(f"--plot: {exc}")
        _note("plots written: " + ", ".join(str(path) for path in written))
    if not _successes(deployments):
        _fail("no request succeeded")
