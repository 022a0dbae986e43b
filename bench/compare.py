"""`python -m bench`: run the suite, then write results.json, RESULTS.md and the PNGs."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench import charts, machine, results_md
from bench.metrics import SCENARIOS
from bench.results import Results
from bench.servers import catalogue
from bench.settings import Settings, quick
from bench.suite import Suite, calibration, faster_calibration, log

SERVER_KEYS = [spec.key for spec in catalogue(1)]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


def _names(allowed: list[str]) -> Callable[[str], tuple[str, ...]]:
    """An argparse type for a comma-separated subset of `allowed`."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {allowed}")
        return names

    return parse


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark interpserve against uvicorn, granian and hypercorn on loopback.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run: 1 repetition of 2 s loads")
    add("-r", "--repetitions", type=int, help=f"per cell (default {defaults.repetitions})")
    add("-d", "--duration", type=int, help=f"seconds per load (default {defaults.duration})")
    add("--warmup", type=int, help=f"seconds of unmeasured load first (default {defaults.warmup})")
    add("-w", "--workers", type=int, help=f"N, the multi-worker count (default {defaults.workers})")
    add("--servers", type=_names(SERVER_KEYS), help=f"comma-separated subset of {SERVER_KEYS}")
    add("--scenarios", type=_names(SCENARIO_NAMES), help=f"subset of {SCENARIO_NAMES}")
    add("--stream-mib", type=int, help=f"download/upload size (default {defaults.stream_mib})")
    add("--scaling-max", type=int, help=f"scaling curve 1..W workers, 0 skips it "
        f"(default {defaults.scaling_max})")  # fmt: skip
    add("--out", type=Path, help=f"output directory (default {defaults.out_dir})")
    add("--render-only", action="store_true", help="redraw the report and plots from the "
        "output directory's results.json, without measuring")  # fmt: skip
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    settings = quick(Settings()) if args.quick else Settings()
    given = {
        "repetitions": args.repetitions, "duration": args.duration, "warmup": args.warmup,
        "workers": args.workers, "servers": args.servers, "scenarios": args.scenarios,
        "stream_mib": args.stream_mib, "scaling_max": args.scaling_max, "out_dir": args.out,
    }  # fmt: skip
    return dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl+C, so every running server is stopped on the way out.
    raise KeyboardInterrupt


def write_outputs(results: Results, out_dir: Path) -> None:
    results.save(out_dir / "results.json")
    (out_dir / "RESULTS.md").write_text(results_md.render(results))
    charts.scenario_charts(results, out_dir)
    charts.scaling_chart(results, out_dir)
    log(f"wrote {out_dir / 'RESULTS.md'}")


def measure(settings: Settings) -> Results:
    specs = [s for s in catalogue(settings.workers) if s.key in (settings.servers or SERVER_KEYS)]
    results = Results(settings.repetitions, {s.key: s.label for s in specs})
    results.info = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "settings": {k: str(v) if isinstance(v, Path) else v
                     for k, v in dataclasses.asdict(settings).items()},
        "machine": machine.describe(),
        "calibration": calibration(settings),
        "load_before": machine.load_average(),
    }  # fmt: skip
    suite = Suite(settings, specs, results)
    try:
        suite.run_scenarios(settings.scenarios or SCENARIO_NAMES)
        if settings.scaling_max > 0:
            suite.run_scaling()
    except KeyboardInterrupt:
        results.notes.append("INTERRUPTED: the run was stopped before it finished")
        log("interrupted: writing what was measured so far")
    results.info["load_after"] = machine.load_average()
    results.info["calibration"] = faster_calibration(results.info["calibration"], settings)
    return results


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        write_outputs(Results.load(settings.out_dir / "results.json"), settings.out_dir)
        return
    signal.signal(signal.SIGTERM, _terminate)
    results = measure(settings)
    write_outputs(results, settings.out_dir)
    if any(note.startswith("INTERRUPTED") for note in results.notes):
        sys.exit(130)
