"""Sweeps: start the app with one worker count and kind, measure it, stop it; repeat."""

from __future__ import annotations

import re
from collections.abc import Callable

from interpserve.bench.client import Load, Progress, run_load
from interpserve.bench.stats import Point, summarize
from interpserve.testing import ServerFailed, ServerProcess

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# The server names the kind it runs, which is how "auto" is resolved in the report.
_STARTING = re.compile(r"Starting \d+ (\w+) worker")


class AppFailed(Exception):
    """The app did not start; the message is one line for the user."""


def server_error(output: str) -> str:
    """The server's one-line reason for exiting: its last ERROR line, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip()
    return lines[-1] if lines else "the server exited without output"


def measure(
    app: str,
    path: str,
    kind: str,
    workers: int,
    load: Load,
    on_progress: Callable[[Progress], None],
) -> Point:
    # The access log is off: writing a line per request would be measured as the app's cost.
    server = ServerProcess(app, "--workers", str(workers), "--worker-kind", kind, "--no-access-log")
    try:
        server.start(timeout=START_TIMEOUT)
    except ServerFailed:
        raise AppFailed(
            f"{app} did not start with {workers} {kind} worker(s): {server_error(server.output)}"
        ) from None
    try:
        result = run_load(server.url + path, load, on_progress)
    finally:
        server.stop(timeout=STOP_TIMEOUT)
    started = _STARTING.search(server.output)
    return Point(started.group(1) if started else kind, workers, summarize(result))
