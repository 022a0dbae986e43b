"""--uds: serving on a Unix domain socket, and claiming its path safely."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import httpx
import pytest
from support import ROOT, TIMEOUT

from interpserve.errors import ServerFailed
from interpserve.testing import ServerProcess


def uds_client(path: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=TIMEOUT)


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "interpserve.sock")


def test_serves_on_a_unix_socket(start_server, socket_path: str, http_impl: str) -> None:
    server = start_server(
        "examples.hello:app", "--workers", "1", "--http", http_impl, "--uds", socket_path
    )
    assert server.uds == socket_path
    assert f"Listening on unix:{socket_path}" in server.output
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    with uds_client(socket_path) as client:
        assert client.get("http://localhost/").text == "Hello, world!"
        scope = client.get("http://localhost/scope").json()
        assert (
            client.post("http://localhost/echo", content=b"x" * 100_000).content == b"x" * 100_000
        )
    assert scope["client"] is None  # a Unix socket peer has no address
    assert scope["scheme"] == "http"
    server.stop()
    assert not os.path.exists(socket_path)  # given back at shutdown


def test_a_stale_socket_file_is_replaced(start_server, socket_path: str) -> None:
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(socket_path)  # bound, never listening: what a killed server leaves
    server = start_server("examples.hello:app", "--workers", "1", "--uds", socket_path)
    with uds_client(socket_path) as client:
        assert client.get("http://localhost/").status_code == 200
    server.stop()


def test_a_live_server_is_not_taken_over(start_server, socket_path: str) -> None:
    start_server("examples.hello:app", "--workers", "1", "--uds", socket_path)
    second = ServerProcess(
        "examples.hello:app", "--workers", "1", "--uds", socket_path, cwd=str(ROOT)
    )
    with pytest.raises(ServerFailed):
        second.start(timeout=20)
    assert "another server is listening there" in second.output
    with uds_client(socket_path) as client:
        assert client.get("http://localhost/").status_code == 200


def test_a_file_that_is_not_a_socket_is_left_alone(socket_path: str) -> None:
    Path(socket_path).write_text("precious")
    server = ServerProcess(
        "examples.hello:app", "--workers", "1", "--uds", socket_path, cwd=str(ROOT)
    )
    with pytest.raises(ServerFailed):
        server.start(timeout=20)
    assert "is not a socket" in server.output
    assert Path(socket_path).read_text() == "precious"


def test_proxy_headers_over_a_unix_socket_need_star(start_server, socket_path: str) -> None:
    """A proxy in front on a Unix socket has no address to list: only "*" trusts it."""
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    server = start_server("examples.hello:app", "--workers", "1", "--uds", socket_path)
    with uds_client(socket_path) as client:
        assert client.get("http://localhost/scope", headers=headers).json()["client"] is None
    server.stop()
    start_server(
        "examples.hello:app", "--workers", "1", "--uds", socket_path, "--forwarded-allow-ips=*"
    )
    with uds_client(socket_path) as client:
        scope = client.get("http://localhost/scope", headers=headers).json()
    assert (scope["client"], scope["scheme"]) == (["203.0.113.7", 0], "https")
