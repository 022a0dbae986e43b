"""Fixtures that start real servers on free loopback ports and always stop them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interpserve.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent

StartServer = Callable[..., ServerProcess]


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


@pytest.fixture(params=["h11", "httptools"])
def http_impl(request: pytest.FixtureRequest) -> str:
    """Every HTTP test runs once per parser backend."""
    return str(request.param)


@pytest.fixture
def hello_server(start_server: StartServer, http_impl: str) -> ServerProcess:
    return start_server("examples.hello:app", "--workers", "2", "--http", http_impl)
