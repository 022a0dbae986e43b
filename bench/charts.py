"""PNG charts: one per scenario (a bar per server for each figure, whiskers from the fastest to
the slowest repetition) and the scaling curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a benchmark machine

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.axes import Axes

from bench.metrics import SCALING, SCENARIOS, Metric
from bench.results import Results
from bench.targets import physical_limit

OURS = {"interpserve-interpreter": "#d95f02", "interpserve-process": "#fdae61"}
THEIRS, LIMIT_COLOUR = "#7570b3", "#1b9e77"
PER_ROW = 4  # charts side by side; a scenario with more figures takes more rows


def _colour(server: str) -> str:
    return OURS.get(server, THEIRS)


def _bars(ax: Axes, results: Results, metric: Metric) -> None:
    keys = [k for k in results.servers if results.values(metric.key, k)]
    medians = [results.median(metric.key, k) or 0.0 for k in keys]
    lows = [m - min(results.values(metric.key, k)) for m, k in zip(medians, keys, strict=True)]
    highs = [max(results.values(metric.key, k)) - m for m, k in zip(medians, keys, strict=True)]
    colours = [_colour(k) for k in keys]
    positions = range(len(keys))
    ax.bar(positions, medians, color=colours, yerr=[lows, highs], capsize=3)
    ax.set_xticks(list(positions), [results.servers[k] for k in keys], rotation=30, ha="right")
    ax.set_title(f"{metric.label} ({metric.direction})", fontsize=10)
    ax.set_ylabel(metric.unit)
    if metric.vs_limit:
        limit = physical_limit(results, results.info.get("settings", {}).get("workers", 1))
        if limit:
            ax.axhline(limit, color=LIMIT_COLOUR, linestyle="--", label="physical limit")
            ax.legend(fontsize=8)
    for x, median in zip(positions, medians, strict=True):
        ax.annotate(metric.format(median), (x, median), ha="center", va="bottom", fontsize=7)


def scenario_charts(results: Results, out_dir: Path) -> list[Path]:
    written = []
    for scenario in SCENARIOS:
        metrics = [m for m in scenario.metrics if m.key in results.samples]
        if not metrics:
            continue
        columns = min(len(metrics), PER_ROW)
        rows = -(-len(metrics) // PER_ROW)
        fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.5 * rows), squeeze=False)
        cells = [ax for row in axes for ax in row]
        for ax, metric in zip(cells, metrics, strict=False):
            _bars(ax, results, metric)
        for ax in cells[len(metrics) :]:
            ax.set_visible(False)
        fig.suptitle(scenario.title)
        fig.tight_layout()
        path = out_dir / f"{scenario.name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def scaling_chart(results: Results, out_dir: Path) -> Path | None:
    if not results.scaling:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    counts = sorted({int(w) for curve in results.scaling.values() for w in curve})
    for key in results.scaling:
        points = [(w, results.scaling_median(key, w)) for w in counts]
        xs = [w for w, rps in points if rps is not None]
        ys = [rps for _, rps in points if rps is not None]
        ax.plot(xs, ys, marker="o", label=results.name(key), color=_colour(key))
    limits = [physical_limit(results, w) or 0.0 for w in counts]
    ax.plot(counts, limits, linestyle="--", color=LIMIT_COLOUR, label="physical limit")
    ax.set_xlabel("workers")
    ax.set_ylabel(SCALING.unit)
    ax.set_xticks(counts)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{SCALING.label} against workers")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
