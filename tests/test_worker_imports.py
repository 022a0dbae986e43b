"""What a worker interpreter imports at start, before the app's own imports, against a real
server. Every worker interpreter loads its modules afresh and holds them for its whole life, so
a module imported there costs memory once per worker (docs/processes.md, "What a worker
interpreter imports"): a change that pulls one more into every worker (the front end's code,
a parser, rich, dataclasses, urllib.parse, json) fails here, not only in a benchmark's figure.

The bound is relative: what a fresh interpreter holds once it has imported asyncio and logging
(which every worker needs, and which bring ssl, inspect, typing and the rest with them) is
measured on the Python running the tests, so the same list holds on every Python from 3.13.
"""

from __future__ import annotations

import subprocess
import sys

from support import ROOT, TIMEOUT, StartServer, get_path

# interpserve's modules a worker needs from its start: the worker itself, and what it shares
# with the front end (the events, their wire format and pipes, the log output, the errors).
WORKER_MODULES = {
    "interpserve",
    "interpserve._speedups",
    "interpserve.compiled",
    "interpserve.errors",
    "interpserve.events",
    "interpserve.logbase",
    "interpserve.logoutput",
    "interpserve.logs",
    "interpserve.memory",
    "interpserve.pipes",
    "interpserve.wire",
    "interpserve.worker",
    "interpserve.worker.allocator",
    "interpserve.worker.app",
    "interpserve.worker.asgi",
    "interpserve.worker.lifespan",
    "interpserve.worker.main",
    "interpserve.worker.websocket",
}
# Built into the interpreter (no file is loaded, nothing of size is made), or the compiler's.
BUILT_IN = {"gc", "__future__"}

_BASELINE = (
    "from interpserve.interpreters import Interpreter\n"
    "interpreter = Interpreter()\n"
    "interpreter.run('import asyncio, logging, sys; print(*sorted(sys.modules), sep=chr(10))')\n"
    "interpreter.close()\n"
)


def _baseline() -> set[str]:
    """The modules of a fresh isolated interpreter once it has imported asyncio and logging."""
    result = subprocess.run(
        [sys.executable, "-c", _BASELINE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=True,
    )
    return set(result.stdout.split())


def test_a_worker_imports_only_its_own_modules_beyond_asyncio(start_server: StartServer) -> None:
    server = start_server(
        "tests.apps.modules_app:app", "--workers", "1", "--worker-kind", "interpreter"
    )
    response = get_path(server, "/")
    assert response.status_code == 200
    at_start = set(response.text.split())
    baseline = _baseline()
    assert {"asyncio", "logging", "interpserve.worker.main"} <= at_start
    extra = {name for name in at_start - baseline if name.split(".")[0] != "tests"}
    assert extra - WORKER_MODULES - BUILT_IN == set()
