"""Response writing, sans I/O: framing decisions and the exact bytes of a response head."""

from __future__ import annotations

import h11
import pytest

from interpserve.events import Headers
from interpserve.frontend.response import (
    CONTINUE,
    LAST_CHUNK,
    ResponseFraming,
    ResponsePlan,
    chunk,
    error_response,
    http_date,
    plan_response,
    status_line,
)

# On the compiled functions and on their Python references (conftest.py's pure_impl).
pytestmark = pytest.mark.usefixtures("pure_impl")

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def plan(
    status: int = 200,
    headers: Headers = (),
    *,
    method: str = "GET",
    http_version: str = "1.1",
    keep_alive: bool = True,
) -> ResponsePlan:
    return plan_response(
        status,
        headers,
        method=method,
        http_version=http_version,
        keep_alive=keep_alive,
        date=DATE,
    )


def head_lines(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The status line and the header pairs of a response head."""
    assert head.endswith(b"\r\n\r\n")
    first, *lines = head[:-4].split(b"\r\n")
    pairs = []
    for line in lines:
        name, sep, value = line.partition(b": ")
        assert sep, line
        pairs.append((name, value))
    return first, pairs


def values(head: bytes, name: bytes) -> list[bytes]:
    return [v for n, v in head_lines(head)[1] if n == name]


def client_reads(data: bytes, *, method: bytes = b"GET", closed: bool = False) -> list[object]:
    """What an h11 client makes of these bytes: proof that the response is well formed."""
    client = h11.Connection(h11.CLIENT)
    headers = [(b"host", b"example.com")]
    client.send(h11.Request(method=method, target=b"/", headers=headers))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    if closed:
        client.receive_data(b"")
    events: list[object] = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return events
        events.append(event)
        if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return events


# ResponseFraming


def test_content_length_framing() -> None:
    p = plan(200, ((b"content-type", b"text/plain"), (b"content-length", b"5")))
    assert p.framing is ResponseFraming.LENGTH
    assert p.content_length == 5
    assert p.keep_alive is True
    first, pairs = head_lines(p.head)
    assert first == b"HTTP/1.1 200 OK"
    assert (b"content-type", b"text/plain") in pairs
    assert values(p.head, b"content-length") == [b"5"]
    assert values(p.head, b"transfer-encoding") == []
    assert values(p.head, b"connection") == []
    events = client_reads(p.head + b"hello")
    assert isinstance(events[0], h11.Response)
    assert events[0].status_code == 200
    assert isinstance(events[1], h11.Data) and events[1].data == b"hello"
    assert isinstance(events[2], h11.EndOfMessage)


def test_content_length_zero() -> None:
    p = plan(200, ((b"content-length", b"0"),))
    assert p.framing is ResponseFraming.LENGTH
    assert p.content_length == 0


def test_no_length_on_1_1_is_chunked() -> None:
    p = plan(200, ((b"content-type", b"text/html"),))
    assert p.framing is ResponseFraming.CHUNKED
    assert p.content_length == -1
    assert p.keep_alive is True
    assert values(p.head, b"transfer-encoding") == [b"chunked"]
    assert values(p.head, b"content-length") == []
    body = chunk(b"hello ") + chunk(b"world") + LAST_CHUNK
    events = client_reads(p.head + body)
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"hello world"
    assert isinstance(events[-1], h11.EndOfMessage)


def test_apps_transfer_encoding_is_replaced() -> None:
    p = plan(200, ((b"transfer-encoding", b"gzip, chunked"),))
    assert p.framing is ResponseFraming.CHUNKED
    assert values(p.head, b"transfer-encoding") == [b"chunked"]


def test_apps_transfer_encoding_is_dropped_with_a_length() -> None:
    p = plan(200, ((b"transfer-encoding", b"chunked"), (b"content-length", b"3")))
    assert p.framing is ResponseFraming.LENGTH
    assert values(p.head, b"transfer-encoding") == []


@pytest.mark.parametrize("bad", [b"abc", b"-1", b"", b"1.5", b"0x10", b"5, 5"])
def test_invalid_content_length_is_dropped_for_chunked(bad: bytes) -> None:
    p = plan(200, ((b"content-length", bad),))
    assert p.framing is ResponseFraming.CHUNKED
    assert p.content_length == -1
    assert values(p.head, b"content-length") == []
    assert values(p.head, b"transfer-encoding") == [b"chunked"]


@pytest.mark.parametrize(
    "lengths", [(b"5", b"abc"), (b"5", b"6"), (b"5", b"5")], ids=["valid-invalid", "differ", "same"]
)
def test_repeated_content_length_gives_one_consistent_header(lengths: tuple[bytes, ...]) -> None:
    p = plan(200, tuple((b"content-length", v) for v in lengths))
    cl = values(p.head, b"content-length")
    te = values(p.head, b"transfer-encoding")
    assert len(cl) <= 1
    assert not (cl and te)
    if cl:
        assert p.framing is ResponseFraming.LENGTH
        assert int(cl[0]) == p.content_length


def test_http_1_0_without_length_closes() -> None:
    p = plan(200, ((b"content-type", b"text/plain"),), http_version="1.0", keep_alive=True)
    assert p.framing is ResponseFraming.CLOSE
    assert p.keep_alive is False
    assert values(p.head, b"connection") == [b"close"]
    assert values(p.head, b"transfer-encoding") == []
    assert values(p.head, b"content-length") == []
    events = client_reads(p.head + b"until the end", closed=True)
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"until the end"
    assert isinstance(events[-1], h11.EndOfMessage)


def test_http_1_0_keep_alive_with_length() -> None:
    p = plan(200, ((b"content-length", b"2"),), http_version="1.0", keep_alive=True)
    assert p.framing is ResponseFraming.LENGTH
    assert p.keep_alive is True
    assert values(p.head, b"connection") == [b"keep-alive"]


def test_http_1_0_without_keep_alive_with_length() -> None:
    p = plan(200, ((b"content-length", b"2"),), http_version="1.0", keep_alive=False)
    assert p.framing is ResponseFraming.LENGTH
    assert p.keep_alive is False
    assert values(p.head, b"connection") == [b"close"]


def test_status_line_is_always_http_1_1() -> None:
    first, _ = head_lines(plan(200, http_version="1.0").head)
    assert first == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    ("status", "method"),
    [
        (200, "HEAD"),
        (404, "HEAD"),
        (204, "GET"),
        (304, "GET"),
        (100, "GET"),
        (101, "GET"),
        (103, "POST"),
        (204, "HEAD"),
    ],
)
@pytest.mark.parametrize("http_version", ["1.1", "1.0"])
def test_bodyless_responses(status: int, method: str, http_version: str) -> None:
    p = plan(status, ((b"x-a", b"1"),), method=method, http_version=http_version)
    assert p.framing is ResponseFraming.NONE
    assert values(p.head, b"transfer-encoding") == []
    assert (b"x-a", b"1") in head_lines(p.head)[1]


def test_head_response_keeps_the_apps_content_length() -> None:
    p = plan(200, ((b"content-length", b"1234"),), method="HEAD")
    assert p.framing is ResponseFraming.NONE
    assert p.keep_alive is True
    assert values(p.head, b"content-length") == [b"1234"]
    events = client_reads(p.head, method=b"HEAD")
    assert isinstance(events[0], h11.Response)
    assert isinstance(events[-1], h11.EndOfMessage)


def test_head_response_on_1_0_stays_alive_when_allowed() -> None:
    p = plan(200, (), method="HEAD", http_version="1.0", keep_alive=True)
    assert p.framing is ResponseFraming.NONE
    assert p.keep_alive is True
    assert values(p.head, b"connection") == [b"keep-alive"]


def test_304_is_well_formed_for_a_client() -> None:
    p = plan(304, ((b"etag", b'"abc"'),))
    events = client_reads(p.head)
    assert isinstance(events[0], h11.Response) and events[0].status_code == 304
    assert isinstance(events[-1], h11.EndOfMessage)


# Connection management


@pytest.mark.parametrize("value", [b"close", b"Close", b"CLOSE", b"keep-alive, close"])
def test_apps_connection_close_ends_keep_alive(value: bytes) -> None:
    p = plan(200, ((b"connection", value), (b"content-length", b"0")))
    assert p.keep_alive is False
    assert values(p.head, b"connection") == [b"close"]


def test_apps_connection_keep_alive_is_dropped() -> None:
    p = plan(200, ((b"connection", b"keep-alive"), (b"content-length", b"0")))
    assert p.keep_alive is True
    assert values(p.head, b"connection") == []


def test_request_without_keep_alive_closes() -> None:
    p = plan(200, ((b"content-length", b"0"),), keep_alive=False)
    assert p.keep_alive is False
    assert values(p.head, b"connection") == [b"close"]


def test_response_cannot_turn_keep_alive_back_on() -> None:
    p = plan(200, ((b"connection", b"keep-alive"),), keep_alive=False)
    assert p.keep_alive is False
    assert values(p.head, b"connection") == [b"close"]


# Server and date headers


def test_server_header_added() -> None:
    p = plan(200, ((b"content-length", b"0"),))
    assert values(p.head, b"server") == [b"interpserve"]


def test_apps_server_header_wins() -> None:
    p = plan(200, ((b"server", b"my-app/1.0"), (b"content-length", b"0")))
    assert values(p.head, b"server") == [b"my-app/1.0"]


def test_date_header_present() -> None:
    p = plan(200, ((b"content-length", b"0"),))
    assert values(p.head, b"date") == [DATE]


def test_apps_date_header_wins() -> None:
    p = plan(200, ((b"date", b"Mon, 01 Jan 2024 00:00:00 GMT"), (b"content-length", b"0")))
    assert values(p.head, b"date") == [b"Mon, 01 Jan 2024 00:00:00 GMT"]


def test_http_date() -> None:
    assert http_date(784111777) == DATE
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"


def test_headers_keep_their_order_and_repeats() -> None:
    headers = (
        (b"set-cookie", b"a=1"),
        (b"x-b", b"2"),
        (b"set-cookie", b"b=2"),
        (b"content-length", b"0"),
    )
    _, pairs = head_lines(plan(200, headers).head)
    assert pairs[:4] == list(headers)
    assert [n for n, _ in pairs[4:]] == [b"server", b"date"]


def test_head_exact_bytes() -> None:
    p = plan(201, ((b"content-type", b"application/json"), (b"content-length", b"2")))
    assert p.head == (
        b"HTTP/1.1 201 Created\r\n"
        b"content-type: application/json\r\n"
        b"content-length: 2\r\n"
        b"server: interpserve\r\n"
        b"date: " + DATE + b"\r\n"
        b"\r\n"
    )


# Small helpers


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (404, b"HTTP/1.1 404 Not Found\r\n"),
        (418, b"HTTP/1.1 418 I'm a Teapot\r\n"),
        (503, b"HTTP/1.1 503 Service Unavailable\r\n"),
        (599, b"HTTP/1.1 599 \r\n"),
    ],
)
def test_status_line(status: int, line: bytes) -> None:
    assert status_line(status) == line


def test_continue_line() -> None:
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"hello", b"5\r\nhello\r\n"),
        (b"x" * 10, b"a\r\n" + b"x" * 10 + b"\r\n"),
        (b"y" * 255, b"ff\r\n" + b"y" * 255 + b"\r\n"),
        (b"z" * 4096, b"1000\r\n" + b"z" * 4096 + b"\r\n"),
        (b"\r\n0\r\n\r\n", b"7\r\n\r\n0\r\n\r\n\r\n"),
    ],
)
def test_chunk_encoding(data: bytes, encoded: bytes) -> None:
    assert chunk(data) == encoded


def test_empty_chunk_would_end_the_body() -> None:
    # Why callers never send chunk(b""): it is indistinguishable from the last chunk.
    assert chunk(b"") == LAST_CHUNK == b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "Bad Request"), (501, "Not Implemented: gzip"), (503, "Überlastet - später")],
)
def test_error_response_is_complete(status: int, message: str) -> None:
    data = error_response(status, message)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep
    assert body == message.encode()
    first, pairs = head_lines(head + b"\r\n\r\n")
    assert first == status_line(status).rstrip(b"\r\n")
    headers = dict(pairs)
    assert int(headers[b"content-length"]) == len(body)
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"server"] == b"interpserve"
    events = client_reads(data)
    assert isinstance(events[0], h11.Response) and events[0].status_code == status
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == message.encode()
    assert isinstance(events[-1], h11.EndOfMessage)


def test_error_response_with_empty_message() -> None:
    data = error_response(500, "")
    assert data.endswith(b"content-length: 0\r\nserver: interpserve\r\nconnection: close\r\n\r\n")
