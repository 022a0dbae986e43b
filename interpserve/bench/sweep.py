"""Sweeps over the app's deployments: start the app with one worker count and kind, measure it
(one run, a rate sweep or a capacity search), stop it; repeat."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from interpserve.errors import AppFailed, ServerFailed
from interpserve.testing import ServerProcess

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# The server names the kind it runs, which is how "auto" is resolved in the report.
_STARTING = re.compile(r"Starting \d+ (\w+) worker")


@dataclass(frozen=True)
class Served:
    url: str  # scheme, host and port: the paths come from the load
    kind: str  # as the server resolved it


def server_error(output: str) -> str:
    """The server's one-line reason for exiting: its last ERROR line, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip()
    return lines[-1] if lines else "the server exited without output"


@contextmanager
def serving(app: str, kind: str, workers: int) -> Iterator[Served]:
    # The access log is off: writing a line per request would be measured as the app's cost.
    server = ServerProcess(app, "--workers", str(workers), "--worker-kind", kind, "--no-access-log")
    try:
        server.start(timeout=START_TIMEOUT)
    except ServerFailed:
        raise AppFailed(
            f"{app} did not start with {workers} {kind} worker(s): {server_error(server.output)}"
        ) from None
    try:
        started = _STARTING.search(server.output)
        yield Served(server.url, started.group(1) if started else kind)
    finally:
        server.stop(timeout=STOP_TIMEOUT)
