"""HTTP/1.1 response writing, sans I/O: how a response is framed, and its bytes."""

from __future__ import annotations

import http
from dataclasses import dataclass
from email.utils import formatdate
from enum import Enum

from interpserve.compiled import speedups
from interpserve.events import Headers
from interpserve.option_values import encode_header

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()
    for status in http.HTTPStatus
}
_SERVER_HEADER = b"server: interpserve\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


class ResponseFraming(Enum):
    NONE = "none"  # HEAD, 1xx, 204, 304: headers only
    LENGTH = "length"  # the app's Content-Length
    CHUNKED = "chunked"  # HTTP/1.1 without a length
    CLOSE = "close"  # HTTP/1.0 without a length: the body ends when the connection does


@dataclass(slots=True)
class ResponsePlan:
    head: bytes
    framing: ResponseFraming
    content_length: int
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class DefaultHeaders:
    """What the server adds to every response, encoded once from the config: the Server line
    (b"" for none), which an app's own Server header replaces, and the --header lines."""

    server: bytes = _SERVER_HEADER
    extra: bytes = b""

    @classmethod
    def build(cls, *, server_header: bool, headers: tuple[str, ...]) -> DefaultHeaders:
        server = _SERVER_HEADER if server_header else b""
        extra = []
        for text in headers:
            line = encode_header(text)
            if line.startswith(b"server:"):
                server = line  # the operator's Server header: still the app's to replace
            else:
                extra.append(line)
        return cls(server, b"".join(extra))

    def fields(self, *, server: bool) -> list[tuple[bytes, bytes]]:
        """The same as (name, value) pairs, for a response another library writes (the
        WebSocket handshake's); `server=False` leaves the Server line out (the app has one)."""
        lines = (self.server if server else b"") + self.extra
        pairs = (line.partition(b": ") for line in lines.split(b"\r\n") if line)
        return [(name, value) for name, _, value in pairs]


DEFAULT_HEADERS = DefaultHeaders()


def status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n".encode()


def http_date(now: float) -> bytes:
    return formatdate(now, usegmt=True).encode()


def plan_response(
    status: int,
    headers: Headers,
    method: str,
    http_version: str,
    keep_alive: bool,
    date: bytes,
    defaults: DefaultHeaders = DEFAULT_HEADERS,
) -> ResponsePlan:
    """Decide the framing and write the head for an app's response start.

    `keep_alive` is what the request allows; the response can only take it away. `date` is
    b"" for no Date header.
    """
    lines = [status_line(status)]
    content_length = -1
    has_server = has_date = False
    no_body_allowed = status < 200 or status == 204
    for name, value in headers:
        if name == b"content-length":
            if content_length >= 0 or no_body_allowed or not value.strip().isdigit():
                continue  # a second length, or an invalid or forbidden one, is dropped
            content_length = int(value)
        elif name == b"transfer-encoding":
            continue  # framing is ours to decide
        elif name == b"connection":
            if b"close" in value.lower():
                keep_alive = False
            continue
        elif name == b"server":
            has_server = True
        elif name == b"date":
            has_date = True  # the app's own: a second one would contradict it
        lines.append(b"%s: %s\r\n" % (name, value))
    if not has_server and defaults.server:
        lines.append(defaults.server)
    if defaults.extra:
        lines.append(defaults.extra)
    if date and not has_date:
        lines.append(b"date: %s\r\n" % date)

    if method == "HEAD" or status < 200 or status in (204, 304):
        framing = ResponseFraming.NONE
    elif content_length >= 0:
        framing = ResponseFraming.LENGTH
    elif http_version == "1.1":
        framing = ResponseFraming.CHUNKED
        lines.append(b"transfer-encoding: chunked\r\n")
    else:
        framing = ResponseFraming.CLOSE
        keep_alive = False

    if not keep_alive:
        lines.append(b"connection: close\r\n")
    elif http_version == "1.0":
        lines.append(b"connection: keep-alive\r\n")
    lines.append(b"\r\n")
    return ResponsePlan(b"".join(lines), framing, content_length, keep_alive)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def error_response(status: int, message: str, defaults: DefaultHeaders = DEFAULT_HEADERS) -> bytes:
    """A complete response for errors the front end answers itself; the connection closes."""
    body = message.encode()
    return (
        status_line(status)
        + b"content-type: text/plain; charset=utf-8\r\n"
        + b"content-length: %d\r\n" % len(body)
        + defaults.server
        + defaults.extra
        + b"connection: close\r\n\r\n"
        + body
    )


# The Python version, the reference: its C twin, plan_response in _speedups.c, must match it
# (tests/test_speedups.py).
python_plan_response = plan_response

if speedups is not None:
    speedups.setup_response(
        ResponsePlan,
        ResponseFraming.NONE,
        ResponseFraming.LENGTH,
        ResponseFraming.CHUNKED,
        ResponseFraming.CLOSE,
        _STATUS_LINES,
        DEFAULT_HEADERS,
    )
    plan_response = speedups.plan_response
