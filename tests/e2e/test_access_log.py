"""The access log against a real server: a line for every request (also one the client
abandons, or the front end refuses) and for every WebSocket close, every JSON line with the
documented fields, --access-log-format, no log injection through either format; and no
traceback on any error page."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import (
    HTTP_IMPLS,
    LOGS_APP,
    ROOT,
    TIMEOUT,
    exchange,
    json_lines,
    wait_for_access,
    ws_client,
)

from interpserve.accesslog import FIELDS, WEBSOCKET_FIELDS, AccessFormat
from interpserve.logs import escape
from interpserve.testing import ServerProcess, wait_until

RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def log_lines(server: ServerProcess) -> list[str]:
    return server.output.splitlines()


def get(server: ServerProcess, path: str, **options: Any) -> httpx.Response:
    return httpx.get(server.url + path, timeout=TIMEOUT, **options)


# Every line in JSON


@pytest.mark.parametrize("kind", ["interpreter", "process"])
def test_json_access_lines_have_the_documented_fields(
    start_server: Callable[..., ServerProcess], http_impl: str, kind: str
) -> None:
    server = start_server(
        LOGS_APP, "--workers", "1", "--worker-kind", kind, "--http", http_impl,
        "--log-format", "json",
    )  # fmt: skip
    headers = {"User-Agent": "tester/1.0", "Referer": "http://example.test/from"}
    assert get(server, "/a/b?c=1&d", headers=headers).status_code == 200
    assert httpx.head(server.url + "/h", timeout=TIMEOUT).status_code == 200
    assert httpx.post(server.url + "/p", content=b"x" * 10, timeout=TIMEOUT).status_code == 200
    line = wait_for_access(server, lambda r: r["path"] == "/a/b")
    assert set(line) == {"time", "level", "logger", "message", *FIELDS}
    assert RFC3339_MS.fullmatch(line["time"])
    port = line["client_port"]
    assert line == {
        **line,
        "level": "INFO",
        "client_addr": "127.0.0.1",
        "method": "GET",
        "query": "c=1&d",
        "http_version": "1.1",
        "status": 200,
        "response_bytes": 2,
        "worker_id": 1,
        "worker_kind": kind,
        "request_id": None,
        "user_agent": "tester/1.0",
        "referer": "http://example.test/from",
        "disconnected": False,
        "protocol": "http",
    }
    assert isinstance(port, int) and port > 0
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["message"] == (
        f'127.0.0.1:{port} - "GET /a/b?c=1&d HTTP/1.1" 200 OK {line["duration_ms"]:.1f}ms worker=1'
    )
    head = wait_for_access(server, lambda r: r["method"] == "HEAD")
    assert head["response_bytes"] == 0 and head["query"] == ""
    wait_for_access(server, lambda r: r["method"] == "POST" and r["response_bytes"] == 2)
    records = json_lines(server.output)  # the server's own lines too: every one is JSON
    assert any(r["message"].startswith("Started supervisor process") for r in records)


def test_http2_lines_count_the_response_bytes(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A whole response (Content-Length), one without a body (HEAD), and a streamed one the
    app leaves unfinished (its stream reset): each line gives the body bytes sent."""
    server = start_server(LOGS_APP, "--workers", "1", "--log-format", "json")
    with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        whole = client.get(server.url + "/whole")
        head = client.head(server.url + "/head")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(server.url + "/partial")
    assert (whole.http_version, whole.content, head.content) == ("HTTP/2", b"ok", b"")
    for path, sent in (("/whole", 2), ("/head", 0), ("/partial", 100)):
        line = wait_for_access(server, lambda r, path=path: r["path"] == path)
        assert (line["http_version"], line["response_bytes"]) == ("2", sent), line


def test_text_and_json_escape_what_a_client_sends(
    start_server: Callable[..., ServerProcess],
) -> None:
    """No log injection: quotes, backslashes and C1 controls in a path, a header and a
    forwarded client stay escaped in the text line, and inside their JSON strings."""
    attack = b'\x9b31m" - "GET /admin" 200 \\ {"level": "ERROR"}'
    request = (
        b'GET /in"je\\ct?q="x HTTP/1.1\r\nHost: a\r\nUser-Agent: ' + attack
        + b"\r\nReferer: " + attack + b"\r\nX-Forwarded-For: " + attack
        + b"\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    text_format = '%(client)s "%(request_line)s" %(status)s "%(user_agent)s" "%(referer)s"'
    text = start_server(
        LOGS_APP, "--workers", "1", "--forwarded-allow-ips", "*",
        "--access-log-format", text_format,
    )  # fmt: skip
    json_server = start_server(
        LOGS_APP, "--workers", "1", "--forwarded-allow-ips", "*", "--log-format", "json"
    )
    for server in (text, json_server):
        assert exchange(server, request).startswith(b"HTTP/1.1 200 ")
    sent = attack.decode("latin-1")
    forwarded = sent.partition(":")[0]  # what a proxy's "host:port" form makes of it
    line = wait_for_access(json_server, lambda r: r["path"] == '/in"je\\ct')
    assert (line["user_agent"], line["referer"], line["client_addr"]) == (sent, sent, forwarded)
    assert line["query"] == 'q="x'
    expected = (
        f'{escape(forwarded)}:0 "GET /in\\"je\\\\ct?q=\\"x HTTP/1.1" 200 '
        f'"{escape(sent)}" "{escape(sent)}"'
    )
    assert text.wait_for_output("INFO:     " + expected + "\n")
    for server in (text, json_server):
        assert "\x9b" not in server.output
        assert '{"level": "ERROR"}' not in server.output  # never unescaped


# Every request gets its line


def test_a_response_the_client_abandons_is_logged_when_it_ends(
    start_server: Callable[..., ServerProcess], http_impl: str
) -> None:
    server = start_server(LOGS_APP, "--workers", "1", "--http", http_impl, "--log-format", "json")
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
        received = b""
        while received.count(b"d" * 1000) < 3:  # a few chunks of the stream
            data = sock.recv(65536)
            assert data, received
            received += data
    line = wait_for_access(server, lambda r: r["path"] == "/stream")
    assert line["status"] == 200 and line["disconnected"] is True
    assert line["response_bytes"] >= 3000
    assert "200 OK, client disconnected" in line["message"]


def test_a_request_the_client_leaves_before_its_answer_is_a_499(
    start_server: Callable[..., ServerProcess],
) -> None:
    """And so are the requests it had pipelined behind it, which no worker saw."""
    server = start_server(LOGS_APP, "--workers", "1", "--log-format", "json")
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"GET /slow?seconds=3 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /queued HTTP/1.1\r\nHost: a\r\n\r\n"
        )
    slow = wait_for_access(server, lambda r: r["path"] == "/slow")
    queued = wait_for_access(server, lambda r: r["path"] == "/queued")
    for line in (slow, queued):
        assert line["status"] == 499 and line["disconnected"] is True
        assert line["response_bytes"] == 0
        assert "499 client disconnected" in line["message"]
    assert queued["worker_id"] is None


def test_a_response_the_server_cuts_off_is_not_the_clients_doing(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(LOGS_APP, "--workers", "1", "--log-format", "json")
    with pytest.raises(httpx.RemoteProtocolError):
        get(server, "/partial")  # the app returned mid-response
    line = wait_for_access(server, lambda r: r["path"] == "/partial")
    assert line["status"] == 200 and line["disconnected"] is False
    assert line["response_bytes"] == 100


def test_requests_the_front_end_refuses_get_a_line(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        LOGS_APP, "--workers", "1", "--log-format", "json", "--limit-request-field-size", "100"
    )
    exchange(server, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 200 + b"\r\n\r\n")
    line = wait_for_access(server, lambda r: r["status"] == 431)
    assert (line["method"], line["path"], line["worker_id"]) == (None, None, None)
    assert line["client_addr"] == "127.0.0.1"
    assert line["message"].endswith(' - "-" 431 Request Header Fields Too Large 0.0ms worker=-')


# WebSocket


@pytest.mark.parametrize(
    ("path", "closing", "code", "closed_by"),
    [
        ("/echo", "client", 1000, "client"),
        ("/echo", "drop", 1006, "client"),
        ("/close?code=4001", None, 4001, "app"),
        ("/return", None, 1000, "app"),
    ],
)
async def test_a_websocket_gets_a_line_when_it_opens_and_when_it_closes(
    start_server: Callable[..., ServerProcess],
    path: str,
    closing: str | None,
    code: int,
    closed_by: str,
) -> None:
    server = start_server("tests.apps.ws_raw:app", "--workers", "1", "--log-format", "json")
    async with ws_client(server, path) as ws:
        if closing == "client":
            await ws.close(1000)
        elif closing == "drop":
            ws.transport.abort()
        else:
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    route = path.partition("?")[0]
    accept = wait_for_access(server, lambda r: r["path"] == route and "close_code" not in r)
    assert (accept["status"], accept["protocol"]) == (101, "websocket")
    assert accept["message"].endswith(
        "accepted " + accept["message"].rsplit(" ", 2)[-2] + " worker=1"
    )
    close = wait_for_access(server, lambda r: r["path"] == route and "close_code" in r)
    assert set(close) == {"time", "level", "logger", "message", *FIELDS, *WEBSOCKET_FIELDS}
    assert (close["close_code"], close["closed_by"], close["status"]) == (code, closed_by, 101)
    assert close["duration_ms"] >= accept["duration_ms"]
    assert f'"WebSocket {path}" 101 closed {code} by {closed_by} ' in close["message"]


# --access-log-format


def test_access_log_format_names_fields_and_request_headers(
    start_server: Callable[..., ServerProcess],
) -> None:
    text_format = (
        "%(client_addr)s %(method)s %(path)s %(query)s %(status)d %(response_bytes)s "
        "[%({x-tenant}i)s] [%({x-missing}i)s] %(request_id)s %(close_code)s pid=%(pid)s"
    )
    server = start_server(LOGS_APP, "--workers", "1", "--access-log-format", text_format)
    assert get(server, "/f?x=1", headers={"X-Tenant": "acme"}).status_code == 200
    assert server.wait_for_output(
        f"INFO:     127.0.0.1 GET /f x=1 200 2 [acme] [-] - - pid={server.pid}\n"
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("%(nope)s", "unknown field 'nope'"),
        ("%s %(status)s", "name every field"),
        ("%(close_code)d", "cannot render every line"),
        ("%(status)q", "cannot render every line"),
    ],
)
def test_a_bad_access_log_format_is_refused_in_one_line(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        AccessFormat(text)
    result = subprocess.run(
        [sys.executable, "-m", "interpserve", LOGS_APP, "--access-log-format", text],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and complaint in result.stderr, result.stderr


def test_escape() -> None:
    assert escape("/a\r\nINFO:     forged") == "/a\\x0d\\x0aINFO:     forged"
    assert escape("\x1b[2J\x9b31m\x7f") == "\\x1b[2J\\x9b31m\\x7f"
    assert escape("back\\slash caf\u00e9") == "back\\\\slash caf\u00e9"


@pytest.mark.own_server
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


@pytest.fixture(scope="module", params=HTTP_IMPLS)
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
