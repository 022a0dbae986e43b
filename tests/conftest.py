"""Fixtures that start real servers on free loopback ports and always stop them, and the
parameters every test of the front end's HTTP or of the workers runs once per value of."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from support import HTTP_IMPLS, ROOT, WORKER_KINDS, ParserClass, StartServer

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


@pytest.fixture(params=_PARSER_PARAMS)
def http_impl(request: pytest.FixtureRequest) -> str:
    """Every HTTP test runs once per parser backend (the value of --http)."""
    return str(request.param)


@pytest.fixture
def parser_class(http_impl: str) -> ParserClass:
    """The front end's parser class for `http_impl`, for tests of the parsers themselves."""
    return PARSER_CLASSES[http_impl]


@pytest.fixture(params=WORKER_KINDS)
def worker_kind(request: pytest.FixtureRequest) -> str:
    """Every test of what the workers do runs once per worker kind (--worker-kind)."""
    return str(request.param)


@pytest.fixture
def hello_server(start_server: StartServer, http_impl: str) -> ServerProcess:
    return start_server("examples.hello:app", "--workers", "2", "--http", http_impl)
