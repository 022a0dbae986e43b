"""End-to-end HTTP/1.1 behaviour of a real interpserve process, over loopback only.

Every test that takes `hello_server` runs once per parser backend (h11 and httptools). Byte-level
cases use raw sockets; the rest use httpx. Every socket and client has a timeout, so a server
that hangs fails the test instead of hanging the run.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import (
    HELLO,
    MB,
    TIMEOUT,
    PeakRSS,
    RawConnection,
    assert_still_serving,
    raw_get,
    raw_request,
    rss_bytes,
)

from interpserve.testing import ServerProcess, wait_until

# A second app for what hello cannot show: it is written to a temporary directory that is put
# on the server's PYTHONPATH. /read-body reads the whole request body before it answers (hello's
# /echo starts its response first); any other path answers with the parts of its scope that
# concern paths.
PROBE_APP = """
import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/read-body"):
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
    else:
        body = json.dumps(
            {
                "root_path": scope["root_path"],
                "path": scope["path"],
                "raw_path": scope["raw_path"].decode("latin-1"),
                "query_string": scope["query_string"].decode("latin-1"),
            }
        ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
"""


def start_probe_server(start_server, tmp_path: Path, *args: str) -> ServerProcess:
    (tmp_path / "interpserve_probe_app.py").write_text(PROBE_APP)
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    return start_server("interpserve_probe_app:app", *args, env={"PYTHONPATH": pythonpath})


@pytest.fixture
def probe_server(start_server, http_impl: str, tmp_path: Path) -> ServerProcess:
    return start_probe_server(start_server, tmp_path, "--workers", "2", "--http", http_impl)


# Basics and connection management ----------------------------------------------------------


def test_get_root(hello_server: ServerProcess) -> None:
    response = httpx.get(hello_server.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == HELLO
    assert response.headers["content-length"] == str(len(HELLO))
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["server"] == "interpserve"
    date = email.utils.parsedate_to_datetime(response.headers["date"])
    assert abs(date.timestamp() - time.time()) < 60
    assert response.http_version == "HTTP/1.1"


def test_unknown_path_is_the_apps_404(hello_server: ServerProcess) -> None:
    response = httpx.get(hello_server.url + "/no/such/page", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.content == b"Not Found"


def test_keep_alive_answers_in_order_on_one_connection(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        ports = set()
        for i in range(5):
            conn.send(raw_get("/"))
            response = conn.read_response()
            assert (response.status, response.body) == (200, HELLO)
            assert response.header("connection") is None  # HTTP/1.1: keep-alive is implied
            conn.send(raw_get(f"/stream?n=1&size={i + 1}"))
            response = conn.read_response()
            assert (response.status, response.body) == (200, b"x" * (i + 1))
            conn.send(raw_get("/scope"))
            scope = json.loads(conn.read_response().body)
            ports.add(scope["client"][1])
        assert ports == {conn.sock.getsockname()[1]}, "all requests came on this one connection"
        assert not conn.is_closed_by_server(timeout=0.3)


def test_connection_close_request(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/", "Connection: close"))
        response = conn.read_response()
        assert (response.status, response.body) == (200, HELLO)
        assert response.header("connection") == "close"
        assert conn.is_closed_by_server()


def test_connection_close_on_a_chunked_response(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/stream?n=3&size=4", "Connection: close"))
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"x" * 12)
        assert conn.is_closed_by_server()


def test_http10_closes_by_default(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("GET", "/", version="1.0"))
        response = conn.read_response()
        assert (response.status, response.body) == (200, HELLO)
        assert conn.is_closed_by_server()


def test_http10_streamed_response_ends_with_the_connection(hello_server: ServerProcess) -> None:
    # No chunked encoding in HTTP/1.0: a response without a length is delimited by close.
    with RawConnection(hello_server) as conn:
        conn.send(
            raw_request("GET", "/stream?n=5&size=10", "Connection: keep-alive", version="1.0")
        )
        head = conn.read_head()
        assert head.status == 200
        assert head.header("transfer-encoding") is None
        assert head.header("content-length") is None
        assert conn.read_to_eof() == b"x" * 50


def test_http10_keep_alive(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        for _ in range(3):
            conn.send(raw_request("GET", "/", "Connection: keep-alive", version="1.0"))
            response = conn.read_response()
            assert (response.status, response.body) == (200, HELLO)
            assert (response.header("connection") or "").lower() == "keep-alive"
        assert not conn.is_closed_by_server(timeout=0.3)


def test_idle_keep_alive_connection_is_closed(start_server, http_impl: str) -> None:
    server = start_server("examples.hello:app", "--http", http_impl, "--timeout-keep-alive", "1")
    with RawConnection(server) as conn:
        conn.send(raw_get("/"))
        assert conn.read_response().status == 200
        started = time.monotonic()
        assert conn.is_closed_by_server(timeout=8)
        assert 0.5 < time.monotonic() - started < 5


# Pipelining --------------------------------------------------------------------------------


def test_pipelined_requests_answered_in_order(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(
            raw_get("/")
            + raw_get("/sleep?s=0.2")
            + raw_get("/stream?n=2&size=3")
            + raw_request("POST", "/echo", "Content-Length: 5", body=b"abcde")
            + raw_get("/")
        )
        expected = [HELLO, b"slept", b"xxxxxx", b"abcde", HELLO]
        for body in expected:
            response = conn.read_response()
            assert (response.status, response.body) == (200, body)
        assert conn.buffer == b""
        assert not conn.is_closed_by_server(timeout=0.3)


def test_pipelined_slow_request_first_does_not_reorder(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(
            raw_get("/sleep?s=0.5") + raw_get("/") + raw_get("/stream?n=1&size=1") + raw_get("/")
        )
        bodies = [conn.read_response().body for _ in range(4)]
        assert bodies == [b"slept", HELLO, b"x", HELLO]


def test_pipelined_requests_then_close(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/") + raw_get("/sleep?s=0.1", "Connection: close"))
        assert conn.read_response().body == HELLO
        last = conn.read_response()
        assert (last.body, last.header("connection")) == (b"slept", "close")
        assert conn.is_closed_by_server()
        assert conn.buffer == b""


def test_pipelined_request_after_connection_close_is_ignored(hello_server: ServerProcess) -> None:
    """A client must not send more after "Connection: close"; if it does, what it sent
    before is still answered, and the rest is not."""
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/") + raw_get("/sleep?s=0.1", "Connection: close") + raw_get("/"))
        assert conn.read_response().body == HELLO
        last = conn.read_response()
        assert (last.body, last.header("connection")) == (b"slept", "close")
        data = conn.read_to_eof()
        assert HELLO not in data, "the request after 'Connection: close' was answered"


# Chunked bodies ----------------------------------------------------------------------------


def test_chunked_request_body_is_echoed(hello_server: ServerProcess) -> None:
    pieces = [b"first,", b"second-" * 100, b"3", os.urandom(5000)]
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("POST", "/echo", "Transfer-Encoding: chunked"))
        for piece in pieces:
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)  # the stimulus: chunks that arrive in separate reads
        conn.send(b"0\r\n\r\n")
        response = conn.read_response()
        assert response.status == 200
        assert response.header("transfer-encoding") == "chunked"
        assert response.body == b"".join(pieces)
        # The connection is still usable.
        conn.send(raw_get("/"))
        assert conn.read_response().body == HELLO


def test_chunked_request_with_extensions_and_trailers(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(
            raw_request("POST", "/echo", "Transfer-Encoding: chunked")
            + b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        )
        assert conn.read_response().body == b"hello world"
        conn.send(raw_get("/"))
        assert conn.read_response().body == HELLO


def test_chunked_response_decoded_by_httpx(hello_server: ServerProcess) -> None:
    body = os.urandom(200_000)
    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.post(hello_server.url + "/echo", content=body)
    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == body


def test_empty_echo(hello_server: ServerProcess) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.post(hello_server.url + "/echo", content=b"")
    assert response.status_code == 200
    assert response.content == b""


def test_stream_many_chunks(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/stream?n=2000&size=100"))
        head = conn.read_head()
        assert head.status == 200
        assert head.header("transfer-encoding") == "chunked"
        sizes = [len(c) for c in conn.iter_chunks()]
        assert sum(sizes) == 200_000
        assert all(size > 0 for size in sizes)
    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.get(hello_server.url + "/stream?n=2000&size=100")
    assert response.content == b"x" * 200_000


def test_stream_zero_chunks(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/stream?n=0") + raw_get("/"))
        first = conn.read_response()
        assert (first.status, first.body) == (200, b"")
        assert conn.read_response().body == HELLO


# Expect: 100-continue ----------------------------------------------------------------------


def test_expect_100_continue(probe_server: ServerProcess) -> None:
    body = b"hello there"
    with RawConnection(probe_server) as conn:
        conn.send(
            raw_request(
                "POST", "/read-body", f"Content-Length: {len(body)}", "Expect: 100-continue"
            )
        )
        interim = conn.read_head()  # before any body byte is sent
        assert (interim.http_version, interim.status) == ("HTTP/1.1", 100)
        assert interim.reason == "Continue"
        assert interim.headers == []
        conn.send(body)
        response = conn.read_response()
        assert (response.status, response.body) == (200, body)
        conn.send(raw_get("/"))
        assert conn.read_response().status == 200


def test_expect_100_continue_chunked(probe_server: ServerProcess) -> None:
    with RawConnection(probe_server) as conn:
        conn.send(
            raw_request("POST", "/read-body", "Transfer-Encoding: chunked", "Expect: 100-continue")
        )
        assert conn.read_head().status == 100
        conn.send(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"abcdefg")


def test_expect_100_continue_with_httpx(probe_server: ServerProcess) -> None:
    body = os.urandom(300_000)
    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.post(
            probe_server.url + "/read-body", content=body, headers={"Expect": "100-continue"}
        )
    assert response.status_code == 200
    assert response.content == body


def test_expect_100_continue_when_response_starts_first(hello_server: ServerProcess) -> None:
    """hello's /echo starts its response before it reads: the final response comes instead of
    "100 Continue"; a client that sends its body anyway gets it echoed, and the connection
    is not reused (the server cannot know whether the body will ever come)."""
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("POST", "/echo", "Content-Length: 5", "Expect: 100-continue"))
        head = conn.read_head()
        assert head.status == 200
        assert head.header("connection") == "close"
        conn.send(b"hello")
        assert b"".join(conn.iter_chunks()) == b"hello"
        assert conn.is_closed_by_server()


def test_expect_100_continue_not_sent_when_app_ignores_body(hello_server: ServerProcess) -> None:
    # "/" never reads the body: the final response comes without a "100 Continue" first.
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("POST", "/", "Content-Length: 5", "Expect: 100-continue"))
        response = conn.read_head()
        assert response.status == 200
        assert conn.read_exactly(len(HELLO)) == HELLO


# HEAD --------------------------------------------------------------------------------------


def test_head_has_headers_and_no_body(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("HEAD", "/"))
        response = conn.read_response("HEAD")
        assert response.status == 200
        assert response.header("content-length") == str(len(HELLO))
        assert response.header("server") == "interpserve"
        # Nothing but the next response follows: it must parse from its first byte.
        conn.send(raw_get("/"))
        response = conn.read_response()
        assert (response.status, response.body) == (200, HELLO)


def test_head_of_streamed_response_has_no_body(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("HEAD", "/stream?n=3&size=10") + raw_get("/stream?n=1&size=2"))
        assert conn.read_response("HEAD").status == 200
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"xx")
    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.head(hello_server.url + "/")
        assert response.status_code == 200 and response.content == b""
        assert client.get(hello_server.url + "/").content == HELLO


# Large bodies stream, never buffer whole ---------------------------------------------------


RSS_HEADROOM = 150 * MB


def _idle_rss(server: ServerProcess) -> int:
    assert_still_serving(server)  # both code paths warmed up a little
    httpx.post(server.url + "/echo", content=b"x" * 100_000, timeout=TIMEOUT)
    return rss_bytes(server.pid)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.own_server
def test_large_upload_is_streamed(hello_server: ServerProcess, chunked: bool) -> None:
    """100 MB sent to /echo while its echo is read back; neither is ever held whole."""
    total = 100 * MB
    block = os.urandom(MB)
    sent_digest = hashlib.sha256()
    idle = _idle_rss(hello_server)
    errors: list[BaseException] = []

    conn = RawConnection(hello_server, timeout=30)

    def upload() -> None:
        try:
            framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
            conn.sock.sendall(raw_request("POST", "/echo", framing))
            for i in range(total // len(block)):
                data = block[i % 7 :] + block[: i % 7]  # not the same MB every time
                sent_digest.update(data)
                conn.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                conn.sock.sendall(b"0\r\n\r\n")
        except BaseException as exc:
            errors.append(exc)

    uploader = threading.Thread(target=upload, daemon=True)
    received = 0
    received_digest = hashlib.sha256()
    with conn, PeakRSS(hello_server.pid) as rss:
        uploader.start()
        head = conn.read_head()
        assert head.status == 200
        for piece in conn.iter_chunks():
            received += len(piece)
            received_digest.update(piece)
        uploader.join(30)
    assert not errors
    assert received == total
    assert received_digest.digest() == sent_digest.digest()
    grown = rss.peak - idle
    assert grown < RSS_HEADROOM, f"RSS grew by {grown / MB:.0f} MB while echoing 100 MB"


@pytest.mark.own_server
def test_large_upload_with_httpx_generator(hello_server: ServerProcess) -> None:
    """httpx writes the whole body before it reads the response, so it cannot upload 100 MB
    to /echo (that needs reading while writing: see above). "/" answers without reading the
    body: the server must drain and drop the 100 MB, never hold it, and keep the connection
    in step for the next request."""
    total = 100 * MB
    block = b"u" * MB
    idle = _idle_rss(hello_server)

    def body() -> Iterator[bytes]:
        for _ in range(total // len(block)):
            yield block

    with PeakRSS(hello_server.pid) as rss, httpx.Client(timeout=30) as client:
        response = client.post(
            hello_server.url + "/", content=body(), headers={"content-length": str(total)}
        )
        assert response.status_code == 200
        assert response.content == HELLO
        # The discarded body did not desynchronise the connection.
        assert client.get(hello_server.url + "/").content == HELLO
    grown = rss.peak - idle
    assert grown < RSS_HEADROOM, f"RSS grew by {grown / MB:.0f} MB for a 100 MB upload"


@pytest.mark.own_server
def test_large_download_is_streamed(hello_server: ServerProcess) -> None:
    n, size = 1600, 65536  # 100 MB
    idle = _idle_rss(hello_server)
    received = 0
    url = hello_server.url + f"/stream?n={n}&size={size}"
    with (
        PeakRSS(hello_server.pid) as rss,
        httpx.Client(timeout=30) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_bytes():
            received += len(piece)
    assert received == n * size
    grown = rss.peak - idle
    assert grown < RSS_HEADROOM, f"RSS grew by {grown / MB:.0f} MB while sending 100 MB"


@pytest.mark.own_server
def test_slow_reader_applies_backpressure(hello_server: ServerProcess) -> None:
    """A client that does not read holds the app back: the server does not queue the rest."""
    n, size = 1600, 65536
    idle = _idle_rss(hello_server)
    with RawConnection(hello_server, timeout=30) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.send(raw_get(f"/stream?n={n}&size={size}"))
        # The stimulus: a client that reads nothing for as long as the app, if nothing held
        # it, would take to produce all 100 MB.
        time.sleep(2)
        held = rss_bytes(hello_server.pid) - idle
        assert held < RSS_HEADROOM, f"RSS grew by {held / MB:.0f} MB for a client not reading"
        assert conn.read_head().status == 200
        assert sum(len(c) for c in conn.iter_chunks()) == n * size
    assert_still_serving(hello_server)


# Client disconnect -------------------------------------------------------------------------


def test_client_disconnect_reaches_the_app(hello_server: ServerProcess, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with RawConnection(hello_server) as conn:
        conn.send(raw_get(f"/wait-disconnect?marker={marker}"))
        head = conn.read_head()
        assert head.status == 200
        assert next(conn.iter_chunks()) == b"waiting\n"
        assert not marker.exists()
    assert wait_until(marker.exists, TIMEOUT), "the app never received http.disconnect"
    assert marker.read_text() == "disconnected"
    assert_still_serving(hello_server)


def test_disconnect_with_pipelined_requests_queued(
    hello_server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    with RawConnection(hello_server) as conn:
        marked = raw_get(f"/wait-disconnect?marker={marker}")
        conn.send(marked + raw_get("/") + raw_get("/sleep?s=5"))
        assert conn.read_head().status == 200
    assert wait_until(marker.exists, TIMEOUT)
    assert_still_serving(hello_server)


def test_disconnect_during_request_body(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("POST", "/echo", "Content-Length: 1000000", body=b"x" * 1000))
        assert conn.read_head().status == 200
    assert_still_serving(hello_server)


# Application errors ------------------------------------------------------------------------


@pytest.mark.own_server
def test_app_error_before_start_is_a_500(hello_server: ServerProcess) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.get(hello_server.url + "/error")
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
        assert "Traceback" not in response.text and "boom" not in response.text
        # The connection stays usable after a complete 500.
        assert client.get(hello_server.url + "/").content == HELLO
    assert hello_server.wait_for_output("RuntimeError: boom")
    output = hello_server.output
    assert "Exception in ASGI application" in output
    assert "Traceback (most recent call last)" in output


def _assert_cut_short(data: bytes) -> None:
    """What came of a response the app broke off: possibly its head (it may be dropped when
    the connection is aborted), never a complete chunked body."""
    if data:
        assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:200]
        assert b"transfer-encoding: chunked" in data.lower()
    assert not data.endswith(b"0\r\n\r\n"), "a broken response must not look complete"
    assert data.count(b"HTTP/1.1 ") <= 1, "nothing may follow a response that was cut short"


@pytest.mark.own_server
def test_app_error_after_start_breaks_the_response(hello_server: ServerProcess) -> None:
    with httpx.Client(timeout=TIMEOUT) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(hello_server.url + "/error-after-start")
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/error-after-start"))
        _assert_cut_short(conn.read_to_eof())  # a timeout here: the server left it hanging
    assert hello_server.wait_for_output("RuntimeError: boom after start")
    assert_still_serving(hello_server)


def test_app_error_after_start_on_pipelined_connection(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/") + raw_get("/error-after-start") + raw_get("/"))
        assert conn.read_response().body == HELLO
        _assert_cut_short(conn.read_to_eof())
    assert_still_serving(hello_server)


# Malformed requests ------------------------------------------------------------------------

MALFORMED = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "header-without-colon": b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "invalid-chunk-size": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    ),
    "content-length-and-transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "nul-in-header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
    "invalid-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "two-content-lengths": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    ),
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "bad-http-version": b"GET / HTTP/9.Z\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_gets_400_and_close(hello_server: ServerProcess, raw: bytes) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw)
        data = conn.read_to_eof()  # the server must close: a timeout here fails the test
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"Traceback" not in body
    assert_still_serving(hello_server)


# A client that sends a wrong byte, then nothing: the 400 comes at once, not at a deadline.
WRONG_THEN_NOTHING = {
    "request-line": b"GET /\x01",
    "field-line": b"GET / HTTP/1.1\r\nHost: x\r\nX-T v",
    "chunk-end": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcE",
}


@pytest.mark.parametrize("raw", WRONG_THEN_NOTHING.values(), ids=WRONG_THEN_NOTHING.keys())
def test_a_wrong_byte_with_nothing_after_it_gets_400(
    hello_server: ServerProcess, raw: bytes
) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw)
        data = conn.read_to_eof()
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]


def test_unsupported_transfer_encoding_is_501(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
        data = conn.read_to_eof()
    assert data.startswith(b"HTTP/1.1 501 "), data[:200]
    assert_still_serving(hello_server)


def test_malformed_request_after_a_good_one(hello_server: ServerProcess) -> None:
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/sleep?s=0.2") + b"GARBAGE\r\n\r\n")  # one write, one read
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"slept")
        data = conn.read_to_eof()
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]


def test_malformed_request_after_a_good_one_in_a_later_read(hello_server: ServerProcess) -> None:
    """The bad request arrives while the good one is being served: the good one's response
    goes out first, then the 400."""
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/sleep?s=0.5"))
        time.sleep(0.2)  # the stimulus: the bad request comes in a later read
        conn.send(b"GARBAGE\r\n\r\n")
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"slept")
        data = conn.read_to_eof()
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]


def test_invalid_chunk_size_mid_body(hello_server: ServerProcess) -> None:
    """The body goes bad after the app has started answering: the connection is dropped, and
    the server is unharmed."""
    with RawConnection(hello_server) as conn:
        conn.send(raw_request("POST", "/echo", "Transfer-Encoding: chunked") + b"3\r\nabc\r\n")
        head = conn.read_head()
        assert head.status == 200
        assert next(conn.iter_chunks()) == b"abc"
        conn.send(b"zz\r\nbroken\r\n")
        rest = conn.read_to_eof()
        assert not rest.endswith(b"0\r\n\r\n")
    assert_still_serving(hello_server)


def _send_tolerating_close(conn: RawConnection, pieces: Iterator[bytes]) -> None:
    """Send until done or until the server, having answered, closes its end."""
    try:
        for piece in pieces:
            conn.send(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _read_rejection(conn: RawConnection) -> bytes:
    try:
        return conn.read_to_eof()
    except ConnectionResetError:
        return conn.buffer  # what arrived before the reset


OVERSIZED = {
    # name: (what to send, the status it gets)
    "long-target": (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "large-header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n", 431),
    "many-headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
        + b"\r\n",
        431,
    ),
}


@pytest.mark.parametrize("case", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_oversized_request_head_is_refused(
    hello_server: ServerProcess, case: tuple[bytes, int]
) -> None:
    raw, status = case
    with RawConnection(hello_server) as conn:
        _send_tolerating_close(conn, iter([raw]))
        data = _read_rejection(conn)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    assert_still_serving(hello_server)


ENDLESS = {
    "header-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ",
    "header-name": b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless",
    "trailer": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Endless: "
    ),
}


@pytest.mark.parametrize("start", ENDLESS.values(), ids=ENDLESS.keys())
@pytest.mark.own_server
def test_endless_field_is_cut_off(hello_server: ServerProcess, start: bytes) -> None:
    """A header or trailer field that never ends is refused once it passes the field size
    limit: it is not buffered, and other clients are served as usual meanwhile."""
    idle = rss_bytes(hello_server.pid)
    block = b"c" * 65536
    deadline = time.monotonic() + 12
    sent = [0]

    def pieces() -> Iterator[bytes]:
        yield start
        for _ in range(100 * MB // len(block)):
            if time.monotonic() > deadline:
                return
            sent[0] += 1
            yield block

    conn = RawConnection(hello_server, timeout=30)
    sender = threading.Thread(target=_send_tolerating_close, args=(conn, pieces()), daemon=True)
    with conn, PeakRSS(hello_server.pid) as rss:
        sender.start()
        # Other clients come once the field is well under way (or already cut off).
        assert wait_until(lambda: sent[0] >= 4 or not sender.is_alive(), TIMEOUT)
        durations = []
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(3):
                started = time.perf_counter()
                assert client.get(hello_server.url + "/").content == HELLO
                durations.append(time.perf_counter() - started)
        sender.join(30)
        conn.sock.settimeout(5)
        data = _read_rejection(conn)  # a timeout: the server let it go on
    # Refused with 431; or, as the app answered before the body ended (the trailer case), the
    # connection is closed with no second answer.
    assert b"HTTP/1.1 431 " in data or data.count(b"HTTP/1.1 ") <= 1, data[:300]
    # Generous, for a loaded machine: a front end held up by the field would keep them
    # waiting until its end.
    assert max(durations) < 3, f"other clients were held up: {durations}"
    assert rss.peak - idle < 40 * MB, f"RSS grew by {(rss.peak - idle) / MB:.0f} MB"
    assert_still_serving(hello_server)


# root_path ---------------------------------------------------------------------------------


def test_root_path(start_server, http_impl: str, tmp_path: Path) -> None:
    server = start_probe_server(start_server, tmp_path, "--http", http_impl, "--root-path", "/api")
    response = httpx.get(server.url + "/scope?a=1", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {
        "root_path": "/api",
        "path": "/api/scope",  # ASGI: path includes root_path; raw_path too, as in uvicorn
        "raw_path": "/api/scope",
        "query_string": "a=1",
    }


def test_path_is_percent_decoded(probe_server: ServerProcess) -> None:
    response = httpx.get(probe_server.url + "/a%20b/%C3%A9%2Fc?x=%C3%A9", timeout=TIMEOUT)
    assert response.json() == {
        "root_path": "",
        "path": "/a b/é/c",
        "raw_path": "/a%20b/%C3%A9%2Fc",
        "query_string": "x=%C3%A9",
    }


def test_scope_contents(hello_server: ServerProcess) -> None:
    response = httpx.get(
        hello_server.url + "/scope?q=%20&b=2",
        headers={"X-Custom": "Value"},
        timeout=TIMEOUT,
    )
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == ""
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "q=%20&b=2"
    assert ["x-custom", "Value"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", hello_server.port]


def test_url_target_reaches_the_app_as_path_and_host(hello_server: ServerProcess) -> None:
    """Absolute-form (RFC 9112 §3.2.2: a server must accept it): the path and query go to the
    app, and the URL's authority as its Host header."""
    with RawConnection(hello_server) as conn:
        conn.send(b"GET http://example.com:8080/scope?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        response = conn.read_response()
    scope = json.loads(response.body)
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/scope", "/scope", "q=1")
    assert [name for name, _ in scope["headers"]].count("host") == 1
    assert ["host", "example.com:8080"] in scope["headers"]


# Parallelism and dispatch ------------------------------------------------------------------


HOLD_TIMEOUT = 40.0  # longer than tests/apps/hold.py holds a request at the most


def _hold(server: ServerProcess, here: Path, release: Path) -> dict[str, int]:
    """GET /hold of tests/apps/hold.py: it answers once `release` exists."""
    query = f"here={here}&release={release}"
    response = httpx.get(f"{server.url}/hold?{query}", timeout=HOLD_TIMEOUT)
    assert response.status_code == 200
    info: dict[str, int] = response.json()
    assert info["released"], "the request was held until the app gave up"
    return info


@pytest.fixture
def hold_server(start_server, http_impl: str) -> ServerProcess:
    return start_server("tests.apps.hold:app", "--workers", "2", "--http", http_impl)


def test_cpu_bound_requests_run_in_parallel(hold_server: ServerProcess, tmp_path: Path) -> None:
    """Two requests that each hold their interpreter's GIL until the other has started both
    finish: they run at the same time, on the two workers (least outstanding first), in two
    interpreters of one process. How much faster that makes CPU-bound work is measured in
    bench/, not here."""
    a, b = tmp_path / "a", tmp_path / "b"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_hold, hold_server, a, b)
        second = pool.submit(_hold, hold_server, b, a)
        infos = [first.result(), second.result()]
    assert infos[0]["pid"] == infos[1]["pid"] == hold_server.pid, "one process serves both"
    assert infos[0]["interpreter"] != infos[1]["interpreter"], "each ran in its own interpreter"
    assert infos[0]["interpreter"] > 0 and infos[1]["interpreter"] > 0  # not the main one


def test_slow_request_does_not_block_fast_ones(hold_server: ServerProcess, tmp_path: Path) -> None:
    """While one worker is held by a request, the other answers every other request."""
    here, release = tmp_path / "here", tmp_path / "release"
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_hold, hold_server, here, release)
        assert wait_until(here.exists, TIMEOUT), "the held request never started"
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(5):
                assert client.get(hold_server.url + "/").json() == "ok"
        assert not slow.done(), "the held request ended before the others: test is invalid"
        release.touch()
        assert slow.result()["interpreter"] == int(here.read_text())
