"""The text and JSON that `interpserve bench` prints and writes: pure functions of the
summaries, so the output is tested without running anything."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from interpserve.bench.client import Load
from interpserve.bench.stats import BUSY_GENERATOR, Point, Summary, curves, ideal_rps, knee, speedup

# Version of the --json layout; bumped when a field changes meaning or goes away.
JSON_SCHEMA = 1
BAR_WIDTH = 40
# The multiplication sign, escaped: ruff takes it for a confusable letter x.
TIMES = "\u00d7"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int) -> str:
    """Columns padded to their widest cell: the first `text_columns` to the left, numbers to
    the right."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  " + "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _rps(value: float) -> str:
    return f"{value:,.1f}"


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def describe_load(load: Load) -> str:
    length = f"{load.requests:,} requests" if load.requests is not None else f"{load.duration:g} s"
    warmup = f" after {load.warmup:g} s of warm-up" if load.warmup else ""
    return f"{load.method}, {load.connections} connections, {length}{warmup}"


def format_errors(summary: Summary) -> str:
    if not summary.errors:
        return "Errors: none"
    return "Errors: " + ", ".join(f"{kind} {count:,}" for kind, count in summary.errors.items())


def format_generator(cpu: float) -> str:
    """The generator's own CPU use, and whether it may have been what limited the run."""
    line = f"Load generator CPU: {cpu:.0%} of one core"
    if cpu >= BUSY_GENERATOR:
        return line + " (it may have limited the run: the server can do more than measured)"
    return line + " (not the bottleneck)"


def format_run(url: str, load: Load, summary: Summary) -> str:
    headers = ["requests", "ok", "errors", "requests/s", "mean ms", "p50 ms", "p90 ms"]
    headers += ["p99 ms", "max ms"]
    counts = [f"{summary.requests:,}", f"{summary.successes:,}", f"{summary.error_count:,}"]
    latency = summary.latency_ms
    timings = (
        [_ms(latency.mean), _ms(latency.p50), _ms(latency.p90), _ms(latency.p99), _ms(latency.max)]
        if latency
        else ["-"] * 5
    )
    table = format_table(headers, [[*counts, _rps(summary.rps), *timings]], text_columns=0)
    return "\n".join(
        [
            f"{url}: {describe_load(load)}, {summary.duration_s:.2f} s measured",
            table,
            format_errors(summary),
            format_generator(summary.generator_cpu),
        ]
    )


def recommendation(curve: Sequence[Point], name_kind: bool, cpus: int) -> str:
    """One line: how many workers of this kind to run, and what they buy."""
    base, best = curve[0], knee(curve)
    prefix = f"{best.kind}: " if name_kind else ""
    if best.summary.rps == 0:
        return f"{prefix}no request succeeded; see the errors above."
    if len(curve) == 1:
        return (
            f"{prefix}{_workers(best.workers)}: {_rps(best.summary.rps)} requests/s; sweep more "
            "than one worker count to see how it scales."
        )
    if best is base:
        return f"{prefix}{_workers(best.workers)}: more workers add nothing on this machine."
    unit = "one worker" if base.workers == 1 else _workers(base.workers)
    gain = f"{speedup(best, base):.1f}{TIMES} {unit}"
    if best is curve[-1]:
        advice = f"{gain}, and still scaling; try more than {best.workers}."
    else:
        advice = f"{gain}; more adds nothing on this machine."
    if best.workers > cpus:
        # Workers beyond the CPUs cannot add computation, only overlap waiting.
        advice += (
            f" More workers than the {cpus} CPUs here still helped, so requests do not only "
            "compute: they also wait (I/O, sleeps, a loop timed by the clock)."
        )
    return f"{prefix}{_workers(best.workers)}: {advice}"


def format_curve(curve: Sequence[Point]) -> str:
    """Bars of measured requests/s, with │ where perfect scaling would reach."""
    base = curve[0]
    top = max(max(p.summary.rps, ideal_rps(p, base)) for p in curve) or 1.0
    label_width = len(str(curve[-1].workers))
    lines = []
    for point in curve:
        bar = round(point.summary.rps / top * BAR_WIDTH)
        ideal = round(ideal_rps(point, base) / top * BAR_WIDTH)
        cells = ["█" if i < bar else " " for i in range(BAR_WIDTH)]
        if ideal > bar:
            cells[ideal - 1] = "│"
        row = "".join(cells)
        lines.append(f"  {point.workers:>{label_width}} {row} {_rps(point.summary.rps)}")
    return "\n".join(lines)


def format_sweep(app: str, path: str, load: Load, points: Sequence[Point], cpus: int) -> str:
    headers = ["kind", "workers", "requests/s", "ideal", "speedup", "p50 ms", "p99 ms"]
    headers += ["errors", "generator CPU"]
    by_kind = curves(points)
    rows = []
    for curve in by_kind.values():
        base = curve[0]
        for p in curve:
            latency = p.summary.latency_ms
            rows.append(
                [
                    p.kind,
                    str(p.workers),
                    _rps(p.summary.rps),
                    _rps(ideal_rps(p, base)),
                    f"{speedup(p, base):.2f}{TIMES}",
                    _ms(latency.p50) if latency else "-",
                    _ms(latency.p99) if latency else "-",
                    f"{p.summary.error_count:,}",
                    f"{p.summary.generator_cpu:.0%}",
                ]
            )
    lines = [
        f"{app} {path}: {describe_load(load)} per worker count",
        format_table(headers, rows, text_columns=1),
    ]
    for kind, curve in by_kind.items():
        lines += [
            "",
            f"{kind} workers, requests/s (│ = ideal: the first point's rate {TIMES} workers):",
            format_curve(curve),
            f"Knee: {_workers(knee(curve).workers)}",
        ]
    lines.append("")
    errors = {kind: n for p in points for kind, n in p.summary.errors.items()}
    if errors:
        lines.append("Errors: " + ", ".join(sorted(errors)) + " (counts in the table)")
    lines.append(format_generator(max(p.summary.generator_cpu for p in points)))
    lines += [f"Recommendation: {line}" for line in recommendations(points, cpus)]
    return "\n".join(lines)


def recommendations(points: Sequence[Point], cpus: int) -> list[str]:
    by_kind = curves(points)
    return [recommendation(curve, len(by_kind) > 1, cpus) for curve in by_kind.values()]


def _load_json(load: Load) -> dict[str, Any]:
    return {
        "method": load.method,
        "headers": [list(pair) for pair in load.headers],
        "body_bytes": len(load.body),
        "connections": load.connections,
        "duration_s": load.duration,
        "requests": load.requests,
        "warmup_s": load.warmup,
        "timeout_s": load.timeout,
    }


def run_json(url: str, load: Load, summary: Summary) -> dict[str, Any]:
    return {
        "schema": JSON_SCHEMA,
        "mode": "url",
        "url": url,
        "load": _load_json(load),
        "result": dataclasses.asdict(summary),
    }


def sweep_json(
    app: str, path: str, load: Load, points: Sequence[Point], cpus: int
) -> dict[str, Any]:
    by_kind = curves(points)
    return {
        "schema": JSON_SCHEMA,
        "mode": "sweep",
        "app": app,
        "path": path,
        "cpus": cpus,
        "load": _load_json(load),
        "points": [
            {
                "kind": p.kind,
                "workers": p.workers,
                "ideal_rps": ideal_rps(p, curve[0]),
                "speedup": speedup(p, curve[0]),
                "result": dataclasses.asdict(p.summary),
            }
            for curve in by_kind.values()
            for p in curve
        ],
        "knees": {kind: knee(curve).workers for kind, curve in by_kind.items()},
        "recommendations": recommendations(points, cpus),
    }
