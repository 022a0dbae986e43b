"""The live progress bar, drawn with rich when it is installed (the `bench` extra); without it
runs are silent until the final table."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from interpserve.bench.client import Progress
from interpserve.bench.generator import Phase
from interpserve.bench.load import Load


def rich_installed() -> bool:
    return importlib.util.find_spec("rich") is not None


def _ignore(progress: Progress) -> None:
    pass


@contextmanager
def progress_bar(label: str, load: Load) -> Iterator[Callable[[Progress], None]]:
    """A callback for run_load's progress messages; the bar goes away when the run ends.

    A --duration run is measured in seconds, warm-up included; a --requests run in requests.
    """
    if not rich_installed():
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    console = Console(stderr=True)
    if not console.is_terminal:
        yield _ignore  # a bar in a log file is noise
        return
    by_time = load.requests is None or load.open_loop
    length = load.window if load.open_loop else load.duration
    total = (length or 0.0) + load.warmup if by_time else float(load.requests or 0)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rate]} requests/s, {task.fields[errors]} errors"),
        TimeElapsedColumn(),
    )
    with Bar(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total, rate="-", errors=0)

        def update(progress: Progress) -> None:
            warming = progress.phase is Phase.WARMUP
            if by_time:
                done = min(progress.elapsed + load.warmup, total)
            else:
                done = 0.0 if warming else float(progress.successes + progress.errors)
            rate = progress.successes / progress.elapsed if progress.elapsed > 0 else 0.0
            if progress.phase is Phase.DRAIN:
                label_now = f"{label} (last answers)"
            else:
                label_now = f"{label} (warm-up)" if warming else label
            bar.update(
                task,
                completed=done,
                description=label_now,
                rate="-" if warming else f"{rate:,.0f}",
                errors=progress.errors,
            )

        yield update
