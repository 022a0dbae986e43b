"""--json, --csv and --openmetrics: what a CI job keeps. The JSON layout is versioned
(JSON_SCHEMA) and documented in docs/bench.md; the CSV has one row per measured run (and per
path of a mixed run), for a spreadsheet; the OpenMetrics text has the same figures as samples
labelled by run (and path), for a time-series store (a Pushgateway, a textfile collector)."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator, Sequence
from typing import Any

from interpserve.bench.deployment import Deployment
from interpserve.bench.histogram import PERCENTILES
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
        "realtime": load.realtime,
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


@dataclasses.dataclass(frozen=True)
class _Measured:
    deployment: Deployment
    measurement: str  # run, rate_sweep, capacity_search
    step: int  # its place among the deployment's measurements of that kind
    summary: Summary
    met: bool | None  # None: no SLO to meet


def _measured(deployments: Sequence[Deployment], slo: Slo | None) -> Iterator[_Measured]:
    """Every measured run, in the order of the report."""
    for d in deployments:
        if d.run:
            yield _Measured(d, "run", 0, d.run, None)
        for i, step in enumerate(d.rates):
            yield _Measured(d, "rate_sweep", i, step.summary, step.met if slo else None)
        for i, step in enumerate(d.capacity.steps if d.capacity else []):
            yield _Measured(d, "capacity_search", i, step.summary, step.met)


def report_csv(deployments: Sequence[Deployment], slo: Slo | None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in _measured(deployments, slo):
        writer.writerows(_csv_rows(m.deployment, m.measurement, m.summary, m.met))
    return out.getvalue()


# OpenMetrics families: name, type, unit, help. Every sample is labelled with its run (kind,
# workers, measurement, step) and path ("" for all paths together).
_FAMILIES = (
    ("latency_seconds", "summary", "seconds",
     "Latency of successful requests (open loop: from when each was due)"),
    ("latency_max_seconds", "gauge", "seconds", "The slowest successful request"),
    ("answered_per_second", "gauge", "", "Successful responses per second"),
    ("requests", "counter", "", "Measured requests, answered or failed"),
    ("errors", "counter", "", "Measured requests that failed"),
    ("asked_per_second", "gauge", "", "Open loop: the rate asked"),
    ("sent_per_second", "gauge", "", "Open loop: the rate at which requests went out"),
    ("late", "counter", "", "Open loop: requests the generator dispatched late"),
    ("waited", "counter", "", "Open loop: requests that waited for a free connection"),
    ("generator_cpu_ratio", "gauge", "ratio", "The busiest generator process's CPU, of a core"),
    ("slo_met", "gauge", "", "1 if the run met the SLO, else 0"),
)  # fmt: skip
OPENMETRICS_PREFIX = "interpserve_bench_"


def _label_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _samples(m: _Measured, family: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(suffix, extra labels, value) of one run's samples in `family`, per path where the
    figure is one of each path's."""
    summary = m.summary
    paths = [("", summary.successes, summary.error_count, summary.latency_ms)]
    if len(summary.paths) > 1:
        paths += [(p.path, p.successes, p.errors, p.latency_ms) for p in summary.paths]
    for path, successes, errors, latency in paths:
        on = {"path": path}
        if family == "latency_seconds" and latency is not None:
            for q, name in zip(PERCENTILES, ("p50", "p90", "p99", "p99.9"), strict=True):
                yield "", {**on, "quantile": f"{q / 100:g}"}, latency.at(name) / 1000
            yield "_sum", on, latency.mean * successes / 1000
            yield "_count", on, successes
        elif family == "latency_max_seconds" and latency is not None:
            yield "", on, latency.max / 1000
        elif family == "requests":
            yield "_total", on, successes + errors
        elif family == "errors":
            yield "_total", on, errors
        if path:
            continue  # the rest are the run's, not a path's
        if family == "answered_per_second":
            yield "", on, summary.rps
        elif family == "asked_per_second" and summary.asked_rps is not None:
            yield "", on, summary.asked_rps
        elif family == "sent_per_second" and summary.sent_rps is not None:
            yield "", on, summary.sent_rps
        elif family in ("late", "waited") and summary.asked_rps is not None:
            yield "_total", on, getattr(summary, family)
        elif family == "generator_cpu_ratio":
            yield "", on, summary.generator_cpu
        elif family == "slo_met" and m.met is not None:
            yield "", on, float(m.met)


def report_openmetrics(deployments: Sequence[Deployment], slo: Slo | None) -> str:
    """The OpenMetrics text exposition of every measured run (each family's samples together,
    as the format requires, and `# EOF` at the end)."""
    measured = list(_measured(deployments, slo))
    lines = []
    for family, kind, unit, text in _FAMILIES:
        name = OPENMETRICS_PREFIX + family
        lines += [f"# TYPE {name} {kind}", f"# HELP {name} {text}."]
        if unit:
            lines.append(f"# UNIT {name} {unit}")
        for m in measured:
            run = {"kind": m.deployment.kind or "", "workers": m.deployment.workers or "",
                   "measurement": m.measurement, "step": m.step}  # fmt: skip
            for suffix, labels, value in _samples(m, family):
                pairs = ",".join(
                    f'{key}="{_label_value(v)}"' for key, v in {**run, **labels}.items()
                )
                lines.append(f"{name}{suffix}{{{pairs}}} {value!r}")
    return "\n".join([*lines, "# EOF", ""])
