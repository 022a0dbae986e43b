"""--plot: the scaling curve as a PNG (or any format matplotlib writes), with matplotlib from
the `bench` extra."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence

from interpserve.bench.stats import Point, curves, ideal_rps, knee


def matplotlib_installed() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_sweep(points: Sequence[Point], title: str, path: str) -> None:
    # Figure without pyplot: no global state and no GUI backend, just a file.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    rps_axes, p99_axes = figure.subplots(1, 2)
    for kind, curve in curves(points).items():
        workers = [p.workers for p in curve]
        (line,) = rps_axes.plot(workers, [p.summary.rps for p in curve], marker="o", label=kind)
        color = line.get_color()
        rps_axes.plot(
            workers,
            [ideal_rps(p, curve[0]) for p in curve],
            linestyle="--",
            color=color,
            alpha=0.5,
            label=f"{kind}, ideal",
        )
        best = knee(curve)
        rps_axes.scatter(
            [best.workers],
            [best.summary.rps],
            s=180,
            facecolors="none",
            edgecolors=color,
            label=f"{kind}, knee: {best.workers}",
        )
        p99 = [p.summary.latency_ms.p99 if p.summary.latency_ms else math.nan for p in curve]
        p99_axes.plot(workers, p99, marker="o", color=color, label=kind)
    for axes, ylabel in ((rps_axes, "requests/s"), (p99_axes, "p99 latency (ms)")):
        axes.set_xlabel("workers")
        axes.set_ylabel(ylabel)
        axes.set_ylim(bottom=0)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
