"""Fixtures that start real servers on free loopback ports and always stop them, and the
parameters every test of the front end's HTTP or of the workers runs once per value of."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from support import (
    HTTP_IMPLS,
    ROOT,
    WORKER_KINDS,
    ParserClass,
    StartServer,
    backend_server_fixtures,
)

from interpserve.compiled import speedups
from interpserve.frontend.http_parser import H11Parser, HttptoolsParser
from interpserve.testing import ServerProcess

_NO_HTTPTOOLS = pytest.mark.skipif(
    importlib.util.find_spec("httptools") is None, reason="httptools is not installed"
)
_PARSER_PARAMS = [
    pytest.param(name, id=name, marks=_NO_HTTPTOOLS if name == "httptools" else ())
    for name in HTTP_IMPLS
]
PARSER_CLASSES = {"h11": H11Parser, "httptools": HttptoolsParser}
_PURE_IMPL_PARAMS = [
    pytest.param(
        "compiled",
        marks=pytest.mark.skipif(speedups is None, reason="interpserve._speedups not built"),
    ),
    "python",
]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """`start_server(app, *flags, env=...)` starts a server and returns it once it listens."""
    servers: list[ServerProcess] = []

    def start(app: str = "examples.hello:app", *args: str, **kwargs: object) -> ServerProcess:
        kwargs.setdefault("cwd", str(ROOT))
        server = ServerProcess(app, *args, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop(timeout=15)


@pytest.fixture(scope="module", params=_PARSER_PARAMS)
def http_impl(request: pytest.FixtureRequest) -> str:
    """Every HTTP test runs once per parser backend (the value of --http). Per module, so that a
    module's shared servers (`shared_or_own`) are started once per backend."""
    return str(request.param)


@pytest.fixture
def parser_class(http_impl: str) -> ParserClass:
    """The front end's parser class for `http_impl`, for tests of the parsers themselves."""
    return PARSER_CLASSES[http_impl]


@pytest.fixture(params=WORKER_KINDS)
def worker_kind(request: pytest.FixtureRequest) -> str:
    """Every test of what the workers do runs once per worker kind (--worker-kind)."""
    return str(request.param)


# examples.hello on two workers.
shared_hello_server, hello_server = backend_server_fixtures(
    "hello_server", "examples.hello:app", "--workers", "2"
)


def _python_twins(package: list[ModuleType]) -> dict[int, object]:
    """The Python reference of each compiled function (_speedups.c), by the compiled one's id:
    a module's `python_NAME` is the reference of `speedups.NAME`."""
    return {
        id(getattr(speedups, name.removeprefix("python_"))): value
        for module in package
        for name, value in vars(module).items()
        if name.startswith("python_") and hasattr(speedups, name.removeprefix("python_"))
    }


@pytest.fixture(params=_PURE_IMPL_PARAMS)
def pure_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The suites of the pure functions run once per implementation, as aiohttp runs its
    parser's on both: "compiled" (_speedups.c, what users get where it is built) and "python"
    (the reference). For "python", every name bound to a compiled function, in the package and
    in the test's module, is its Python twin during the test, and the servers the test starts
    run without the compiled module (INTERPSERVE_NO_SPEEDUPS)."""
    if request.param == "python":
        package = [
            module
            for name, module in sys.modules.items()
            if name.startswith("interpserve.") and module is not speedups
        ]
        twins = _python_twins(package)
        for module in [*package, request.module]:
            for name, value in list(vars(module).items()):
                if id(value) in twins:
                    monkeypatch.setattr(module, name, twins[id(value)])
        monkeypatch.setenv("INTERPSERVE_NO_SPEEDUPS", "1")
    return str(request.param)
