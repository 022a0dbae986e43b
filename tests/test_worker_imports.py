"""What a worker interpreter imports at start, before the app's own imports, against a real
server. Every worker interpreter loads its modules afresh and holds them for its whole life, so
a module imported there costs memory once per worker (docs/processes.md, "What a worker
interpreter imports"): a change that pulls one more into every worker (the front end's code,
a parser, rich, dataclasses, urllib.parse, json) fails here, not only in a benchmark's figure.

The bound is relative: what a fresh interpreter holds once it has imported asyncio and logging
(which every worker needs, and which bring ssl, inspect, typing and the rest with them) is
measured on the Python running the tests, so the same list holds on every Python from 3.13.

What asyncio imports but uses only when asked (ssl, asyncio.sslproto, inspect) a worker holds
deferred: in sys.modules, loaded on first use (interpserve/worker/deferred.py). That they are
not loaded at start is pinned here, that they work once used here and, with a real TLS
connection, in tests/e2e/test_tls.py.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import subprocess
import sys
import threading
from types import ModuleType

import pytest
from support import ROOT, TIMEOUT, WORKER_KINDS, StartServer, get_path, skip_under_coverage

from interpserve.compiled import speedups
from interpserve.worker.deferred import DEFERRED, _deferred_module, pending

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
    "interpserve.worker.deferred",
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


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _baseline() -> set[str]:
    """The modules of a fresh isolated interpreter once it has imported asyncio and logging."""
    return set(_run(_BASELINE).split())


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_a_worker_imports_only_its_own_modules_beyond_asyncio(
    start_server: StartServer, kind: str
) -> None:
    skip_under_coverage()
    server = start_server("tests.apps.modules_app:app", "--workers", "1", "--worker-kind", kind)
    response = get_path(server, "/")
    assert response.status_code == 200
    names = response.text.split()
    at_start = {name for name in names if not name.startswith("~")}
    deferred = {name.removeprefix("~") for name in names if name.startswith("~")}
    assert deferred == set(DEFERRED)
    assert not {"_ssl", "ast", "dis"} & at_start  # what ssl and inspect would have imported
    assert {"asyncio", "logging", "interpserve.worker.main"} <= at_start
    if kind == "interpreter":  # a process worker's process imports its own (runpy, json)
        extra = {name for name in at_start - _baseline() if name.split(".")[0] != "tests"}
        assert extra - WORKER_MODULES - BUILT_IN == set()


_RELEASE = (
    "import sys\n"
    "from interpserve.memory import release_memory\n"
    "before = set(sys.modules)\n"
    "release_memory(trim=False)\n"
    "release_memory(trim=True)\n"
    "print(*sorted(set(sys.modules) - before), sep=chr(10))\n"
)


@pytest.mark.skipif(speedups is None, reason="interpserve._speedups not built")
def test_giving_memory_back_imports_nothing() -> None:
    """What a module imported once a burst is over creates lands in the blocks the burst freed
    and keeps their arenas (interpserve/memory.py): ctypes for the trim did, and CPython's
    interpreter API with datetime did to ask which interpreter trims."""
    skip_under_coverage()
    assert _run(_RELEASE).split() == []


_DEFERRED_USED = """import sys, threading
from interpserve.worker.deferred import defer_imports, pending
defer_imports()
import asyncio, ssl, inspect
assert all(pending(sys.modules[name]) for name in ("ssl", "asyncio.sslproto", "inspect"))
assert asyncio.sslproto is sys.modules["asyncio.sslproto"] and ssl is sys.modules["ssl"]
# The first reads, from several threads at once: one load, into the module already bound.
found = []
threads = [threading.Thread(target=lambda: found.append(ssl.SSLContext)) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
from ssl import SSLContext, create_default_context
assert set(found) == {SSLContext} and not pending(ssl)
create_default_context()
assert asyncio.sslproto.SSLProtocol and not pending(asyncio.sslproto)
assert inspect.signature(defer_imports).return_annotation == "None"
try:
    from ssl import no_such_name
except ImportError:
    pass
else:
    raise AssertionError("imported a name ssl does not have")
print("ok")
"""


def test_deferred_modules_load_whole_on_first_use() -> None:
    skip_under_coverage()
    assert _run(_DEFERRED_USED).split() == ["ok"]


class _SlowLoader(importlib.abc.Loader):
    """A module whose code defines one name, then waits to be let go before the next."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.go_on = threading.Event()

    def exec_module(self, module: ModuleType) -> None:
        setattr(module, "early", "early")  # noqa: B010 (a module that has no such name yet)
        assert getattr(module, "early") == "early" and pending(module)  # noqa: B009
        self.running.set()
        assert self.go_on.wait(TIMEOUT)
        setattr(module, "late", "late")  # noqa: B010


def test_a_thread_reading_a_deferred_module_while_it_loads_waits_for_all_of_it() -> None:
    loader = _SlowLoader()
    spec = importlib.util.spec_from_loader("slow", loader)
    assert spec is not None
    module = _deferred_module(spec)
    found: list[object] = []
    first = threading.Thread(target=lambda: found.append(module.early))
    first.start()
    assert loader.running.wait(TIMEOUT)
    second = threading.Thread(target=lambda: found.append(module.late))
    second.start()
    second.join(0.2)  # not a synchronisation: it must still be waiting for the module's code
    assert second.is_alive()
    loader.go_on.set()
    first.join(TIMEOUT)
    second.join(TIMEOUT)
    assert sorted(map(str, found)) == ["early", "late"] and not pending(module)
    with pytest.raises(AttributeError):
        module.missing  # noqa: B018
