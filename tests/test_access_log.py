"""No log injection through the access log, and no traceback on any error page."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from interpserve.logs import escape
from interpserve.testing import ServerProcess, wait_until

TIMEOUT = 10.0
ROOT = Path(__file__).resolve().parent.parent


def exchange(server: ServerProcess, data: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def log_lines(server: ServerProcess) -> list[str]:
    return server.output.splitlines()


def test_escape() -> None:
    assert escape("/a\r\nINFO:     forged") == "/a\\x0d\\x0aINFO:     forged"
    assert escape("\x1b[2J\x9b31m\x7f") == "\\x1b[2J\\x9b31m\\x7f"
    assert escape("back\\slash caf\u00e9") == "back\\\\slash caf\u00e9"


def test_encoded_crlf_in_the_path_stays_encoded(hello_server: ServerProcess) -> None:
    target = "/a%0d%0aINFO:%20%20%20%20%20forged%1b[2J"
    exchange(
        hello_server, f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
    )
    assert hello_server.wait_for_output(f'"GET {target} HTTP/1.1" 404')
    assert not any(line.startswith("INFO:     forged") for line in log_lines(hello_server))


def test_raw_control_characters_never_reach_the_log(start_server, http_impl: str) -> None:
    server = start_server(
        "examples.hello:app", "--workers", "1", "--http", http_impl, "--log-level", "debug"
    )
    for data in (
        b"GET /\x1b[2J\x1b[31mred HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\rINFO: forged HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[31m\r\n\r\n",
        b"\x1b[31m / HTTP/1.1\r\nHost: a\r\n\r\n",
    ):
        assert exchange(server, data).startswith(b"HTTP/1.1 400 ")
    assert server.wait_for_output("Invalid HTTP request", timeout=5)
    assert "\x1b" not in server.output
    assert not any(line.startswith("INFO: forged") for line in log_lines(server))


def test_forwarded_client_is_escaped(start_server) -> None:
    """A client named by X-Forwarded-For (here every peer is trusted) is the client's own
    text: latin-1, with C1 controls and quotes."""
    server = start_server("examples.hello:app", "--workers", "1", "--forwarded-allow-ips", "*")
    exchange(
        server,
        b'GET /who HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: \x9b31m" - "GET /admin\r\n'
        b"Connection: close\r\n\r\n",
    )
    assert server.wait_for_output('\\x9b31m\\" - \\"GET /admin:0 - "GET /who HTTP/1.1" 404')
    assert "\x9b" not in server.output


ERRORS = {
    "app-500": (b"GET /error HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 500),
    "app-404": (b"GET /nowhere HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404),
    "bad-request": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "h11-style-detail": (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", 400),
    "too-large": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n", 413),
    "line-too-long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "header-too-large": (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "not-implemented": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    "version": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    "timeout": (b"GET / HTTP/1.1\r\nHost: a\r\n", 408),
}


@pytest.fixture(scope="module", params=["h11", "httptools"])
def error_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    flags = ("--workers=1", "--limit-request-body=1000", "--timeout-header-read=0.5")
    with ServerProcess(
        "examples.hello:app", "--http", request.param, *flags, cwd=str(ROOT)
    ) as server:
        yield server


@pytest.mark.parametrize(("data", "status"), ERRORS.values(), ids=ERRORS.keys())
def test_error_pages_never_show_tracebacks(
    error_server: ServerProcess, data: bytes, status: int
) -> None:
    received = exchange(error_server, data)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), received[:200]
    for leak in (b"Traceback", b'File "', b"Error:", b"bytearray", b"interpserve/", b", line "):
        assert leak not in body, body
    assert len(body) < 200
    response = httpx.get(error_server.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200


# Where the lines go


def test_access_log_on_stdout_error_log_on_stderr(tmp_path: Path) -> None:
    # As uvicorn's: a service manager (or a shell redirect) can keep them apart.
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    command = [sys.executable, "-m", "interpserve", "examples.hello:app", "--workers", "1"]
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--port", "0"], stdout=stdout, stderr=stderr, cwd=ROOT
        )
    try:
        assert wait_until(lambda: "Listening on" in err.read_text(), 30), err.read_text()
        port = re.search(r"Listening on http://127\.0\.0\.1:(\d+)", err.read_text())
        assert port is not None
        response = httpx.get(f"http://127.0.0.1:{port.group(1)}/?marker", timeout=TIMEOUT)
        assert response.status_code == 200
        assert wait_until(lambda: "GET /?marker" in out.read_text(), 5), out.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    access = out.read_text().splitlines()
    assert len(access) == 1 and access[0].startswith("INFO:"), access
    assert '"GET /?marker HTTP/1.1" 200' in access[0]
    errors = err.read_text()
    assert "Listening on" in errors and "Finished server process" in errors
    assert "GET /?marker" not in errors
