"""`interpserve bench URL` load-tests a running server; `interpserve bench MODULE:APP` starts
the app once per worker count (and kind), measures each, and reports the scaling curve.

Exit codes: 0 after a run that got answers (errors are reported, not fatal), 1 when the
target cannot be reached, the app does not start or no request succeeded, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from interpserve.bench.client import Load, LoadError, check_reachable, run_load
from interpserve.bench.http1 import parse_header, parse_url
from interpserve.bench.plot import matplotlib_installed, plot_sweep
from interpserve.bench.progress import INSTALL_HINT, progress_bar, rich_installed
from interpserve.bench.report import TIMES, format_run, format_sweep, run_json, sweep_json
from interpserve.bench.stats import Point, summarize
from interpserve.bench.sweep import AppFailed, measure
from interpserve.cli_parser import Parser

PROG = "interpserve bench"
DEFAULT_DURATION = 5.0
DEFAULT_CONNECTIONS = Load.connections
# A freshly started server's first requests pay for lazy imports and caches.
SWEEP_WARMUP = 1.0
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
        description="Load-test an endpoint with keep-alive HTTP/1.1 connections from a "
        "separate process. With a URL, drive a running server; with MODULE:APP, start the app "
        "for each worker count of --sweep-workers and report how throughput scales.",
    )
    parser.add_argument("target", metavar="URL|MODULE:APP")
    load = parser.add_argument_group("load")
    load.add_argument(
        "-c",
        "--connections",
        type=int,
        metavar="N",
        help=f"concurrent connections (default: {DEFAULT_CONNECTIONS}, or twice the most "
        "workers of a sweep if that is more)",
    )
    length = load.add_mutually_exclusive_group()
    length.add_argument(
        "-d",
        "--duration",
        type=float,
        metavar="SECONDS",
        help=f"measure for this long (default: {DEFAULT_DURATION:g})",
    )
    length.add_argument(
        "-n",
        "--requests",
        type=int,
        metavar="N",
        help="measure until N requests are answered or failed",
    )
    load.add_argument(
        "--warmup",
        type=float,
        metavar="SECONDS",
        help="load the server this long before measuring "
        f"(default: 0 for a URL, {SWEEP_WARMUP:g} for each point of a sweep)",
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
    sweep = parser.add_argument_group("sweep (MODULE:APP only)")
    sweep.add_argument("--path", help="the endpoint to load (default: /)")
    sweep.add_argument(
        "--sweep-workers", metavar="1..8|1,2,4", help="worker counts to measure (default: 1..CPUs)"
    )
    sweep.add_argument(
        "--worker-kind",
        metavar="KINDS",
        help=f"comma-separated worker kinds to compare, of {', '.join(WORKER_KINDS)} "
        "(default: auto)",
    )
    sweep.add_argument(
        "--plot", metavar="PATH", help="draw the scaling curve to this file (needs matplotlib)"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return parser


def _fail(message: str) -> NoReturn:
    sys.exit(f"{PROG}: error: {message}")


def _note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _load(args: argparse.Namespace, sweep_workers: int | None) -> Load:
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
    default_warmup = 0.0 if sweep_workers is None else SWEEP_WARMUP
    return Load(
        method=args.method.upper(),
        headers=tuple(parse_header(header) for header in args.header),
        body=body,
        connections=connections,
        duration=None if args.requests else (args.duration or DEFAULT_DURATION),
        requests=args.requests,
        warmup=default_warmup if args.warmup is None else args.warmup,
        timeout=args.timeout,
    )


def _write_json(path: str, data: dict[str, Any]) -> None:
    try:
        Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    except OSError as exc:
        _fail(f"--json: {exc.strerror}: {path}")


def bench_url(url: str, load: Load, json_path: str | None) -> None:
    check_reachable(url, timeout=min(load.timeout, 5.0))
    with progress_bar(url, load) as on_progress:
        result = run_load(url, load, on_progress)
    summary = summarize(result)
    print(format_run(url, load, summary), flush=True)
    if json_path:
        _write_json(json_path, run_json(url, load, summary))
    if not summary.successes:
        _fail("no request succeeded")


def bench_app(
    app: str,
    path: str,
    kinds: Sequence[str],
    counts: Sequence[int],
    load: Load,
    json_path: str | None,
    plot_path: str | None,
    cpus: int,
) -> None:
    points: list[Point] = []
    for kind in kinds:
        for workers in counts:
            label = f"{kind} {TIMES} {workers}"
            with progress_bar(label, load) as on_progress:
                point = measure(app, path, kind, workers, load, on_progress)
            latency = point.summary.latency_ms
            p99 = f"p99 {latency.p99:.1f} ms" if latency else "no successes"
            _note(
                f"{point.kind} {TIMES} {workers}: {point.summary.rps:,.1f} requests/s, {p99}, "
                f"{point.summary.error_count:,} errors"
            )
            points.append(point)
    print(format_sweep(app, path, load, points, cpus), flush=True)
    if json_path:
        _write_json(json_path, sweep_json(app, path, load, points, cpus))
    if plot_path and matplotlib_installed():
        try:
            plot_sweep(points, f"{app} {path}", plot_path)
        except (OSError, ValueError) as exc:  # an unwritable path, an unknown file type
            _fail(f"--plot: {exc}")
        _note(f"plot written to {plot_path}")


def main(argv: Sequence[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    is_url = "://" in args.target
    sweep_flags = ("path", "sweep_workers", "worker_kind", "plot")
    if is_url and any(getattr(args, name) is not None for name in sweep_flags):
        parser.error("--path, --sweep-workers, --worker-kind and --plot need MODULE:APP")
    if not is_url and ":" not in args.target:
        parser.error(f"{args.target!r} is neither a URL (http://...) nor MODULE:APP")
    path = args.path or "/"
    cpus = os.process_cpu_count() or 1
    try:
        if not path.startswith("/"):
            raise ValueError(f"--path must start with '/', not {path!r}")
        if is_url:
            parse_url(args.target)
        counts = parse_worker_counts(args.sweep_workers or f"1..{cpus}")
        kinds = parse_worker_kinds(args.worker_kind or "auto")
        load = _load(args, None if is_url else max(counts))
    except ValueError as exc:
        parser.error(str(exc))
    if not rich_installed():
        _note(f"no progress bar without rich: {INSTALL_HINT}")
    if args.plot and not matplotlib_installed():
        _note(f"--plot needs matplotlib, so there will be no plot: {INSTALL_HINT}")
    try:
        if is_url:
            bench_url(args.target, load, args.json)
        else:
            bench_app(args.target, path, kinds, counts, load, args.json, args.plot, cpus)
    except (LoadError, AppFailed) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
