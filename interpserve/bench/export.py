"""--json and --csv: what a CI job keeps. The JSON layout is versioned (JSON_SCHEMA) and
documented in docs/bench.md; the CSV has one row per measured run (and per path of a mixed
run), for a spreadsheet or a time-series store."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from typing import Any

from interpserve.bench.deployment import Deployment
from interpserve.bench.load import Load
from interpserve.bench.search import Capacity, Step
from interpserve.bench.slo import Slo
from interpserve.bench.stats import Summary, curves, ideal_rps, knee, speedup

# Version of the --json layout; bumped when a field changes meaning or goes away.
JSON_SCHEMA = 2


def load_json(load: Load) -> dict[str, Any]:
    return {
        "method": load.method,
        "headers": [list(pair) for pair in load.headers],
        "body_bytes": len(load.body),
        "paths": [{"path": p.path, "weight": p.weight} for p in load.paths],
        "loop": "open" if load.open_loop else "closed",
        "connections": load.connections,
        "rate": load.rate,
        "arrival": load.arrival.value,
        "max_connections": load.max_connections,
        "generators": load.generators,
        "duration_s": load.window if load.open_loop else load.duration,
        "requests": load.requests,
        "warmup_s": load.warmup,
        "timeout_s": load.timeout,
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    data = dataclasses.asdict(summary)
    data["error_rate"] = summary.error_rate
    return data


def _step_json(step: Step) -> dict[str, Any]:
    return {"rate": step.rate, "met": step.met, "violations": step.violations,
            "result": summary_json(step.summary)}  # fmt: skip


def _capacity_json(capacity: Capacity) -> dict[str, Any]:
    return {
        "rate": capacity.rate,
        "generator_limited": capacity.generator_limited,
        "steps": [_step_json(step) for step in capacity.steps],
    }


def report_json(
    target: dict[str, Any],
    load: Load,
    deployments: Sequence[Deployment],
    slo: Slo | None,
    cpus: int,
    recommendations: Sequence[str],
) -> dict[str, Any]:
    points = [p for d in deployments if (p := d.point())]
    by_kind = curves(points)
    bases = {kind: curve[0] for kind, curve in by_kind.items()}
    entries = []
    for d in deployments:
        entry: dict[str, Any] = {"kind": d.kind, "workers": d.workers, "run": None}
        point = d.point()
        if d.run is not None:
            entry["run"] = summary_json(d.run)
        if point is not None and d.kind in bases:
            entry["ideal_rps"] = ideal_rps(point, bases[d.kind])
            entry["speedup"] = speedup(point, bases[d.kind])
        knee_step = d.knee
        entry["rate_sweep"] = (
            {
                "steps": [_step_json(s) for s in d.rates],
                "knee": knee_step.rate if knee_step else None,
            }
            if d.rates
            else None
        )
        entry["capacity"] = _capacity_json(d.capacity) if d.capacity else None
        entries.append(entry)
    return {
        "schema": JSON_SCHEMA,
        **target,
        "cpus": cpus,
        "load": load_json(load),
        "slo": slo.text if slo else None,
        "deployments": entries,
        "knees": {kind: knee(curve).workers for kind, curve in by_kind.items()},
        "recommendations": list(recommendations),
    }


CSV_COLUMNS = [
    "kind", "workers", "measurement", "path", "asked_rps", "sent_rps", "rps", "requests",
    "successes", "errors", "error_rate", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms",
    "max_ms", "late", "waited", "generator_cpu", "slo_met",
]  # fmt: skip


def _csv_rows(
    d: Deployment, measurement: str, summary: Summary, met: bool | None
) -> list[list[Any]]:
    def row(path: str, successes: int, errors: int, latency: Any) -> list[Any]:
        requests = successes + errors
        figures = (
            [latency.mean, latency.p50, latency.p90, latency.p99, latency.p99_9, latency.max]
            if latency
            else [""] * 6
        )
        return [
            d.kind or "", d.workers or "", measurement, path, summary.asked_rps or "",
            summary.sent_rps or "", summary.rps, requests, successes, errors,
            errors / requests if requests else 0.0, *figures, summary.late, summary.waited,
            summary.generator_cpu, "" if met is None else met,
        ]  # fmt: skip

    rows = [row("", summary.successes, summary.error_count, summary.latency_ms)]
    if len(summary.paths) > 1:
        rows += [row(p.path, p.successes, p.errors, p.latency_ms) for p in summary.paths]
    return rows


def report_csv(deployments: Sequence[Deployment], slo: Slo | None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in deployments:
        if d.run:
            writer.writerows(_csv_rows(d, "run", d.run, None))
        for step in d.rates:
            writer.writerows(_csv_rows(d, "rate_sweep", step.summary, step.met if slo else None))
        for step in d.capacity.steps if d.capacity else []:
            writer.writerows(_csv_rows(d, "capacity_search", step.summary, step.met))
    return out.getvalue()
