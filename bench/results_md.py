"""RESULTS.md: the run's conditions, the targets' verdicts, one table per figure, the scaling
curve, and every failure or warning."""

from __future__ import annotations

from bench.metrics import SCALING, SCENARIOS, Metric
from bench.results import Results
from bench.targets import (
    LIMIT,
    SUBJECTS,
    TARGETS,
    Target,
    limit_ratio,
    physical_limit,
    ratio,
    verdict,
)

PEERS = ("uvicorn-1", "uvicorn-n")  # every figure is also shown as a ratio to these
# A 1-minute load average above this per core before the run means other work was running.
BUSY_LOAD_PER_CORE = 0.5


def _ratio(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}x"


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """A markdown table: the first `text_columns` columns left-aligned, the figures right."""
    numeric = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(numeric) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _busy_warning(results: Results) -> str:
    """Other work on a machine this small moves every figure: say so where it shows. Only the
    load before counts: the one after includes the benchmark's own load."""
    cores = results.info.get("calibration", {}).get("cores", 1)
    before = results.info.get("load_before", "")
    busiest = float(before.split()[0]) if before else 0.0
    if busiest <= BUSY_LOAD_PER_CORE * cores:
        return ""
    return (
        f" **The machine was busy (load {busiest:.1f} on {cores} cores): other work shared the "
        "cores, so these figures are noisy.**"
    )


def _conditions(results: Results) -> list[str]:
    info = results.info
    settings, calibration = info.get("settings", {}), info.get("calibration", {})
    mode = "QUICK smoke run, not for conclusions" if settings.get("quick") else "full run"
    lines = [
        f"Run {info.get('started', '?')}, {mode}: {results.repetitions} repetition(s), "
        f"{settings.get('duration')} s per measurement after {settings.get('warmup')} s of "
        f"warm-up, N = {settings.get('workers')} workers.",
        "",
        "Each cell is the median over repetitions, each measured on a freshly started server. "
        "Ratios are the median of per-repetition ratios: both sides of a ratio come from the "
        "same repetition, minutes apart at most. For ms and MiB, lower is better.",
        "",
        f"CPU-bound handler: {calibration.get('loops', 0):,} loop iterations = "
        f"{calibration.get('handler_ms', 0):.2f} ms of CPU on one idle core (the faster of two "
        "timings, at the start and at the end of the run); physical limit "
        f"= min(N, cores) / handler time = {calibration.get('limit_rps', 0):.1f} req/s.",
        "",
        f"Load average (1, 5, 15 min) before: {info.get('load_before', '?')}; after: "
        f"{info.get('load_after', '?')}.{_busy_warning(results)}",
        "",
        "## Machine",
        "",
    ]
    rows = [[name, str(value)] for name, value in info.get("machine", {}).items()]
    return lines + _table(["", "version / value"], rows, text_columns=2)


def _targets(results: Results) -> list[str]:
    labels = results.servers
    rows = [
        # Three digits: the verdict is taken on the exact ratio, and 0.501 must not read 0.50.
        [target.describe(labels), labels[subject], _ratio(ratio(results, target, subject), 3),
         verdict(results, target, subject)]
        for target in TARGETS
        for subject in SUBJECTS
        if subject in labels
    ]  # fmt: skip
    header = ["target", "server", "ratio", "verdict"]
    return ["## Targets", "", *_table(header, rows, text_columns=2)]


def _verdicts(results: Results, targets: list[Target], server: str) -> str:
    if server not in SUBJECTS:
        return ""
    peers = [results.servers.get(t.peer, t.peer) for t in targets]
    return "; ".join(
        f"{verdict(results, t, server)} ({peer})" for t, peer in zip(targets, peers, strict=True)
    )


def _metric_table(results: Results, metric: Metric) -> list[str]:
    peers = [p for p in PEERS if p in results.servers]
    targets = [t for t in TARGETS if t.metric == metric.key]
    header = ["server", f"{metric.label} ({metric.unit})", "min-max"]
    header += [f"x {results.servers[p]}" for p in peers]
    header += [f"x {LIMIT}"] if metric.vs_limit else []
    header += ["verdict"] if targets else []
    rows = []
    for key, label in results.servers.items():
        values = results.values(metric.key, key)
        spread = f"{metric.format(min(values))}-{metric.format(max(values))}" if values else ""
        row = [label, metric.format(results.median(metric.key, key)), spread]
        row += [_ratio(results.ratio(metric.key, key, p)) for p in peers]
        row += [_ratio(limit_ratio(results, key, metric.key))] if metric.vs_limit else []
        row += [_verdicts(results, targets, key)] if targets else []
        rows.append(row)
    return [f"**{metric.label}** ({metric.direction})", "", *_table(header, rows)]


def _scaling(results: Results) -> list[str]:
    if not results.scaling:
        return []
    counts = sorted({int(w) for curve in results.scaling.values() for w in curve})
    keys = list(results.scaling)
    header = ["workers", *(results.name(k) for k in keys), "physical limit"]
    rows = [
        [str(w)]
        + [SCALING.format(results.scaling_median(k, w)) for k in keys]
        + [SCALING.format(physical_limit(results, w))]
        for w in counts
    ]
    return [
        "## Scaling: CPU-bound requests/s against the worker count",
        "",
        *_table(header, rows),
        "",
        "![scaling](scaling.png)",
        "",
    ]


def render(results: Results) -> str:
    lines = ["# interpserve benchmark results", "", *_conditions(results), "", *_targets(results)]
    for scenario in SCENARIOS:
        if not any(m.key in results.samples for m in scenario.metrics):
            continue
        lines += ["", f"## {scenario.title}", "", scenario.what, ""]
        for metric in scenario.metrics:
            lines += [*_metric_table(results, metric), ""]
        lines += [f"![{scenario.name}]({scenario.name}.png)"]
    lines += ["", *_scaling(results)]
    lines += ["## Failures and warnings", ""]
    lines += [f"- {note}" for note in results.notes] or ["None."]
    return "\n".join(lines) + "\n"
