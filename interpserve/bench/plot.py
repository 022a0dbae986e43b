"""--plot: PNGs (or any format matplotlib writes), with matplotlib from the `bench` extra.

`--plot out.png` writes, of what was measured: out-scaling.png (requests/s or capacity, and
p99, against workers), out-latency.png (latency against the rate of a rate sweep, knees and
the SLO marked) and out-timeline.png (latency over time, second by second)."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from interpserve.bench.deployment import Deployment
from interpserve.bench.slo import Slo
from interpserve.bench.stats import Point, Summary, curves, ideal_rps, knee

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def matplotlib_installed() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _figure(columns: int) -> tuple[Figure, list[Axes]]:
    # Figure without pyplot: no global state and no GUI backend, just a file.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * columns, 4.5), layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _finish(figure: Figure, axes: Sequence[Axes], title: str, path: Path) -> None:
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    figure.savefig(path, dpi=110)


def named(base: str, figure: str) -> Path:
    path = Path(base)
    return path.with_name(f"{path.stem}-{figure}{path.suffix or '.png'}")


def plot_scaling(
    points: Sequence[Point], capacities: Sequence[Deployment], title: str, path: Path
) -> None:
    from matplotlib.ticker import MaxNLocator

    figure, (rate_axes, p99_axes) = _figure(2)
    for kind, curve in curves(points).items():
        workers = [p.workers for p in curve]
        (line,) = rate_axes.plot(workers, [p.summary.rps for p in curve], marker="o", label=kind)
        color = line.get_color()
        rate_axes.plot(workers, [ideal_rps(p, curve[0]) for p in curve], linestyle="--",
                       color=color, alpha=0.5, label=f"{kind}, ideal")  # fmt: skip
        best = knee(curve)
        rate_axes.scatter([best.workers], [best.summary.rps], s=180, facecolors="none",
                          edgecolors=color, label=f"{kind}, knee: {best.workers}")  # fmt: skip
        p99_axes.plot(
            workers, [_p99(p.summary) for p in curve], marker="o", color=color, label=kind
        )
    by_kind: dict[str, list[Deployment]] = {}
    for d in capacities:
        by_kind.setdefault(d.kind or "", []).append(d)
    for kind, group in by_kind.items():
        group.sort(key=lambda d: d.workers or 0)
        workers = [d.workers or 0 for d in group]
        rates = [d.capacity.rate or 0.0 if d.capacity else 0.0 for d in group]
        rate_axes.plot(workers, rates, marker="s", label=f"{kind}, capacity at the SLO")
        at_capacity = [d.capacity.best if d.capacity else None for d in group]
        p99 = [_p99(b.summary) if b else math.nan for b in at_capacity]
        p99_axes.plot(workers, p99, marker="s", label=f"{kind}, at capacity")
    for ax, ylabel in ((rate_axes, "requests/s"), (p99_axes, "p99 latency (ms)")):
        ax.set_xlabel("workers")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(figure, (rate_axes, p99_axes), title, path)


def _p99(summary: Summary) -> float:
    return summary.latency_ms.p99 if summary.latency_ms else math.nan


def plot_rates(deployments: Sequence[Deployment], slo: Slo | None, title: str, path: Path) -> None:
    figure, (ax,) = _figure(1)
    for d in deployments:
        rates = [s.rate for s in d.rates]
        (line,) = ax.plot(
            rates, [_p99(s.summary) for s in d.rates], marker="o", label=f"{d.label} p99"
        )
        ax.plot(rates, [s.summary.latency_ms.p50 if s.summary.latency_ms else math.nan
                        for s in d.rates], linestyle=":", color=line.get_color(),
                label=f"{d.label} p50")  # fmt: skip
        if (k := d.knee) is not None:
            ax.scatter([k.rate], [_p99(k.summary)], s=180, facecolors="none",
                       edgecolors=line.get_color(), label=f"knee: {k.rate:,.0f}/s")  # fmt: skip
    for bound in slo.bounds if slo else ():
        if bound.figure in ("p50", "p90", "p99"):
            ax.axhline(
                bound.limit, color="red", alpha=0.4, linestyle="--", label=f"SLO {bound.text}"
            )
    ax.set_xlabel("asked requests/s")
    ax.set_ylabel("latency (ms), from when each request was due")
    ax.set_yscale("symlog", linthresh=10)
    _finish(figure, (ax,), title, path)
    ax.set_ylim(bottom=0)


def plot_timeline(runs: Sequence[tuple[str, Summary]], title: str, path: Path) -> None:
    figure, (ax,) = _figure(1)
    for label, summary in runs:
        seconds = [s.start_s for s in summary.series]
        p99 = [s.latency_ms.p99 if s.latency_ms else math.nan for s in summary.series]
        top = [s.latency_ms.max if s.latency_ms else math.nan for s in summary.series]
        (line,) = ax.plot(seconds, p99, marker=".", label=f"{label} p99")
        ax.plot(seconds, top, linestyle=":", color=line.get_color(), label=f"{label} max")
    ax.set_xlabel("second of the measurement")
    ax.set_ylabel("latency (ms)")
    _finish(figure, (ax,), title, path)


def plot_all(
    deployments: Sequence[Deployment], slo: Slo | None, title: str, base: str
) -> list[Path]:
    """Every figure that what was measured can draw; the paths written."""
    written = []
    points = [p for d in deployments if (p := d.point())]
    capacities = [d for d in deployments if d.capacity and d.kind]
    if len(points) > 1 or len(capacities) > 1:
        plot_scaling(points, capacities, title, path := named(base, "scaling"))
        written.append(path)
    swept = [d for d in deployments if d.rates]
    if swept:
        plot_rates(swept, slo, title, path := named(base, "latency"))
        written.append(path)
    runs = [(d.label, d.run) for d in deployments if d.run and d.run.series]
    runs += [(d.label, b.summary) for d in deployments if d.capacity and (b := d.capacity.best)]
    if runs:
        plot_timeline(runs, title, path := named(base, "timeline"))
        written.append(path)
    return written
