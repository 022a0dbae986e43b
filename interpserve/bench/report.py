"""The text that `interpserve bench` prints: pure functions of the summaries, so the output is
tested without running anything."""

from __future__ import annotations

from collections.abc import Sequence

from interpserve.bench.deployment import TIMES, Deployment
from interpserve.bench.load import Load
from interpserve.bench.search import Capacity, Step
from interpserve.bench.slo import Slo
from interpserve.bench.stats import (
    BUSY_GENERATOR,
    Point,
    Summary,
    curves,
    ideal_rps,
    knee,
    speedup,
)

BAR_WIDTH = 40
# A worker count is recommended once its capacity is this share of its kind's best.
CAPACITY_SHARE = 0.95


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


def describe_steps(load: Load) -> str:
    """The load of each step of a rate sweep or capacity search."""
    warmup = f" after {load.warmup:g} s of warm-up" if load.warmup else ""
    return (
        f"{load.method}, open loop ({load.arrival.value} arrivals) at each rate below, up to "
        f"{load.max_connections} connections, {load.duration:g} s a step{warmup}"
    )


def describe_load(load: Load) -> str:
    generators = f", {load.generators} generator processes" if load.generators > 1 else ""
    warmup = f" after {load.warmup:g} s of warm-up" if load.warmup else ""
    if load.rate is not None:
        return (
            f"{load.method}, {_rps(load.rate)} requests/s ({load.arrival.value} arrivals), up to "
            f"{load.max_connections} connections, {load.window:g} s{warmup}{generators}"
        )
    length = f"{load.requests:,} requests" if load.requests is not None else f"{load.duration:g} s"
    return f"{load.method}, {load.connections} connections, {length}{warmup}{generators}"


def describe_paths(load: Load) -> str:
    total = sum(p.weight for p in load.paths)
    return ", ".join(f"{p.path} {p.weight / total:.0%}" for p in load.paths)


def format_errors(summary: Summary) -> str:
    if not summary.errors:
        return "Errors: none"
    return "Errors: " + ", ".join(f"{kind} {count:,}" for kind, count in summary.errors.items())


def format_generator(summaries: Sequence[Summary]) -> list[str]:
    """Each generator process's CPU (the busiest of each across runs), and whether the
    generator, not the server, may have limited a run."""
    count = max((len(s.generators) for s in summaries), default=0)
    cpus = [
        max(s.generators[i].cpu for s in summaries if len(s.generators) > i) for i in range(count)
    ]
    if count == 1:
        line = f"Load generator CPU: {cpus[0]:.0%} of one core"
    else:
        each = ", ".join(f"{cpu:.0%}" for cpu in cpus)
        line = f"Load generator CPU: {each} of one core each ({count} processes)"
    limited = [s for s in summaries if s.generator_limits]
    if not limited:
        return [line + " (not the bottleneck)"]
    runs = "the run" if len(summaries) == 1 else f"{len(limited)} of {len(summaries)} runs"
    worst = max(limited, key=lambda s: max(g.cpu for g in s.generators))
    if max(g.cpu for g in worst.generators) >= BUSY_GENERATOR:
        advice = "Try --generators, or a second machine."
    else:
        # Behind its schedule with CPU to spare: the machine did not give it the CPU in time.
        advice = (
            "Its CPU was not busy: the server or other programs kept it waiting for a core; "
            "the latencies include that delay."
        )
        if not all(g.realtime for g in worst.generators):
            advice += (
                " With --realtime (and the right to it: root, or CAP_SYS_NICE), it waits less."
            )
    return [
        line,
        f"The load generator may have limited {runs}: "
        + "; ".join(worst.generator_limits)
        + f". {advice}",
    ]


def _latency_cells(summary: Summary) -> list[str]:
    latency = summary.latency_ms
    if latency is None:
        return ["-"] * 6
    return [
        _ms(latency.mean),
        _ms(latency.p50),
        _ms(latency.p90),
        _ms(latency.p99),
        _ms(latency.p99_9),
        _ms(latency.max),
    ]


LATENCY_HEADERS = ["mean ms", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"]


def format_open_loop(summary: Summary) -> list[str]:
    """How the schedule went: the rate asked and sent, late and queued requests, connections."""
    if summary.asked_rps is None or summary.sent_rps is None:
        return []
    peak = sum(g.peak_connections for g in summary.generators)
    opened = sum(g.connections_opened for g in summary.generators)
    lines = [
        f"Rate: {_rps(summary.asked_rps)} requests/s asked, {_rps(summary.sent_rps)} sent, "
        f"{_rps(summary.rps)} answered; {peak} connections at most ({opened} opened)",
        f"Late: {summary.late:,} sent late by the generator, {summary.waited:,} queued for a "
        "free connection (all busy); latency counts from when each request was due",
    ]
    return lines


def format_paths(summary: Summary) -> list[str]:
    if len(summary.paths) < 2:
        return []
    headers = ["path", "weight", "ok", "errors", *LATENCY_HEADERS]
    rows = [
        [
            p.path,
            str(p.weight),
            f"{p.successes:,}",
            f"{p.errors:,}",
            *_latency_cells(Summary(p.successes + p.errors, p.successes, latency_ms=p.latency_ms)),
        ]
        for p in summary.paths
    ]
    return ["Per path:", format_table(headers, rows, text_columns=1)]


def format_run(target: str, load: Load, summary: Summary) -> str:
    headers = ["requests", "ok", "errors", "requests/s", *LATENCY_HEADERS]
    counts = [f"{summary.requests:,}", f"{summary.successes:,}", f"{summary.error_count:,}"]
    row = [*counts, _rps(summary.rps), *_latency_cells(summary)]
    return "\n".join(
        [
            f"{target}: {describe_load(load)}, {summary.duration_s:.2f} s measured",
            format_table(headers, [row], text_columns=0),
            *format_open_loop(summary),
            *format_paths(summary),
            format_errors(summary),
            *format_generator([summary]),
        ]
    )


def format_rates(deployment: Deployment, slo: Slo | None) -> str:
    """A rate sweep: latency against the rate, the knee marked."""
    headers = ["asked/s", "sent/s", "answered/s", *LATENCY_HEADERS, "errors", "late"]
    if slo:
        headers.append("SLO")
    knee_step = deployment.knee
    rows = []
    for step in deployment.rates:
        s = step.summary
        row = [_rps(step.rate), _rps(s.sent_rps or 0.0), _rps(s.rps), *_latency_cells(s)]
        row += [f"{s.error_count:,}", f"{s.late:,}"]
        if slo:
            row.append("met" if step.met else "missed")
        row.append("<- knee" if step is knee_step else "")
        rows.append(row)
    lines = [
        f"{deployment.label}: latency against the rate",
        format_table([*headers, ""], rows, text_columns=0),
    ]
    if knee_step is None:
        lines.append("Knee: none (latency was already up at the lowest rate)")
    else:
        lines.append(
            f"Knee: {_rps(knee_step.rate)} requests/s (past it, p99 more than doubles or the "
            "server stops keeping up)"
        )
    return "\n".join(lines)


def _holds(deployment: Deployment, capacity: Capacity, slo: Slo) -> str:
    who = (
        "the server"
        if deployment.kind is None
        else (
            f"{deployment.workers} {deployment.kind} worker"
            + ("s" if deployment.workers != 1 else "")
        )
    )
    if capacity.rate is None:
        return f"{who} met {slo.text} at no rate tried"
    verb = "holds" if who == "the server" or deployment.workers == 1 else "hold"
    bound = " (at least: the generator limited the search)" if capacity.generator_limited else ""
    return f"{who} {verb} {_rps(capacity.rate)} requests/s at {slo.latency_text}{bound}"


def format_capacity(deployments: Sequence[Deployment], slo: Slo) -> str:
    headers = ["kind", "workers", "capacity req/s", "answered/s", "p50 ms", "p99 ms"]
    headers += ["p99.9 ms", "errors", "steps"]
    rows = []
    for d in deployments:
        capacity = d.capacity
        assert capacity is not None
        best = capacity.best
        s = best.summary if best else None
        latency = s.latency_ms if s else None
        rows.append(
            [
                d.kind or "-",
                str(d.workers) if d.workers else "-",
                _rps(capacity.rate) if capacity.rate else "none",
                _rps(s.rps) if s else "-",
                _ms(latency.p50) if latency else "-",
                _ms(latency.p99) if latency else "-",
                _ms(latency.p99_9) if latency else "-",
                f"{s.error_rate:.2%}" if s else "-",
                str(len(capacity.steps)),
            ]
        )
    lines = [f"Capacity at {slo.text}:", format_table(headers, rows, text_columns=1)]
    lines += [f"  {_holds(d, d.capacity, slo)}" for d in deployments if d.capacity]
    return "\n".join(lines)


def capacity_recommendations(deployments: Sequence[Deployment], slo: Slo) -> list[str]:
    """Per worker kind: the fewest workers within CAPACITY_SHARE of the kind's best capacity."""
    by_kind: dict[str, list[Deployment]] = {}
    for d in deployments:
        if d.kind is not None and d.capacity is not None:
            by_kind.setdefault(d.kind, []).append(d)
    lines = []
    for kind, group in by_kind.items():
        group = sorted(group, key=lambda d: d.workers or 0)
        rates = [d.capacity.rate or 0.0 for d in group if d.capacity]
        best = max(rates)
        prefix = f"{kind}: " if len(by_kind) > 1 else ""
        if best == 0:
            lines.append(f"{prefix}no worker count met {slo.text}; see the steps in --json.")
            continue
        chosen = next(d for d, r in zip(group, rates, strict=True) if r >= CAPACITY_SHARE * best)
        assert chosen.capacity is not None and chosen.workers is not None
        text = _holds(chosen, chosen.capacity, slo)
        if chosen is group[-1] and len(group) > 1:
            text += f"; still rising: try more than {chosen.workers}"
        elif len(group) > 1:
            text += "; more add nothing on this machine"
        lines.append(prefix + text[0].upper() + text[1:] + ".")
    return lines


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


def recommendations(points: Sequence[Point], cpus: int) -> list[str]:
    by_kind = curves(points)
    return [recommendation(curve, len(by_kind) > 1, cpus) for curve in by_kind.values()]


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


def format_scaling(points: Sequence[Point]) -> str:
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
    lines = [format_table(headers, rows, text_columns=1)]
    for kind, curve in by_kind.items():
        lines += [
            "",
            f"{kind} workers, requests/s (│ = ideal: the first point's rate {TIMES} workers):",
            format_curve(curve),
            f"Knee: {_workers(knee(curve).workers)}",
        ]
    errors = {kind: n for p in points for kind, n in p.summary.errors.items()}
    if errors:
        lines += ["", "Errors: " + ", ".join(sorted(errors)) + " (counts in the table)"]
    return "\n".join(lines)


def all_summaries(deployments: Sequence[Deployment]) -> list[Summary]:
    summaries = []
    for d in deployments:
        if d.run:
            summaries.append(d.run)
        summaries += [step.summary for step in d.rates]
        if d.capacity:
            summaries += [step.summary for step in d.capacity.steps]
    return summaries


def format_report(
    title: str, load: Load, deployments: Sequence[Deployment], slo: Slo | None, cpus: int
) -> str:
    """Everything measured of an app's deployments (or of a URL), then the generator's own
    account and the recommendations."""
    stepped = any(d.rates or d.capacity for d in deployments)
    lines = [f"{title}: {describe_steps(load) if stepped else describe_load(load)}"]
    if len(load.paths) > 1:
        lines.append(f"Paths: {describe_paths(load)}")
    points = [p for d in deployments if (p := d.point())]
    if points and any(d.kind is not None for d in deployments):
        lines += ["", format_scaling(points)]
    for d in deployments:
        if d.run and d.kind is None:
            lines += ["", format_run(title, load, d.run)]
        if d.rates:
            lines += ["", format_rates(d, slo)]
    if slo and any(d.capacity for d in deployments):
        lines += ["", format_capacity([d for d in deployments if d.capacity], slo)]
    lines += ["", *format_generator(all_summaries(deployments))]
    if slo and any(d.capacity and d.kind for d in deployments):
        lines += [f"Recommendation: {line}" for line in capacity_recommendations(deployments, slo)]
    elif points:
        lines += [f"Recommendation: {line}" for line in recommendations(points, cpus)]
    return "\n".join(lines)


def step_note(deployment: Deployment, step: Step) -> str:
    """The one line printed as each step of a search or sweep completes."""
    s = step.summary
    p99 = f"p99 {s.latency_ms.p99:.1f} ms" if s.latency_ms else "no successes"
    verdict = "" if not step.violations else f" (missed: {'; '.join(step.violations)})"
    return (
        f"{deployment.label} at {_rps(step.rate)} requests/s: {_rps(s.rps)} answered, {p99}, "
        f"{s.error_count:,} errors{verdict}"
    )
