"""HTTP/1.1 request parsing, sans I/O: bytes in, request events out.

Two backends behind one interface: h11 (pure Python, always there) and httptools (llhttp, the
fast path). Both emit the same events and share the checks that decide how a request is framed,
so the rest of the server cannot tell them apart. Responses are not written here: see
`response.py`, shared by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import h11

try:
    import httptools
except ImportError:  # the optional fast path
    httptools = None  # type: ignore[assignment]


@dataclass(slots=True)
class RequestHead:
    method: str
    target: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]  # names lowercased
    keep_alive: bool
    expect_continue: bool
    has_body: bool


@dataclass(slots=True)
class BodyData:
    data: bytes


class EndOfRequest:
    """The request's body is complete."""


END_OF_REQUEST = EndOfRequest()

ParsedEvent = RequestHead | BodyData | EndOfRequest


class BadRequest(Exception):
    """The client sent something that is not acceptable HTTP/1.1: answer `status` and close.

    `events` are those parsed from the same data before the error: requests pipelined ahead of
    the bad one are still answered."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status
        self.events: list[ParsedEvent] = []


class RequestParser(Protocol):
    def feed(self, data: bytes) -> list[ParsedEvent]:
        """Parse what arrived; raise BadRequest on malformed input."""
        ...


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }


def make_head(
    method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]]
) -> RequestHead:
    """The checks and decisions both backends share, on a parsed request line and headers."""
    lengths = [value for name, value in headers if name == b"content-length"]
    encodings = [value for name, value in headers if name == b"transfer-encoding"]
    if encodings and lengths:
        raise BadRequest("both Transfer-Encoding and Content-Length")
    if len(lengths) > 1:
        raise BadRequest("more than one Content-Length")
    if encodings and (len(encodings) > 1 or encodings[0].strip().lower() != b"chunked"):
        raise BadRequest("unsupported Transfer-Encoding", status=501)
    if lengths and not lengths[0].strip().isdigit():
        raise BadRequest("invalid Content-Length")
    if method == b"CONNECT":
        raise BadRequest("CONNECT is for proxies, not supported here", status=501)
    tokens = _connection_tokens(headers)
    if http_version == "1.1":
        keep_alive = b"close" not in tokens
    else:
        keep_alive = b"keep-alive" in tokens and b"close" not in tokens
    has_body = bool(encodings) or (bool(lengths) and int(lengths[0]) > 0)
    expect_continue = (
        http_version == "1.1"
        and has_body
        and any(n == b"expect" and v.lower() == b"100-continue" for n, v in headers)
    )
    return RequestHead(
        method=method.decode("ascii"),
        target=target,
        http_version=http_version,
        headers=headers,
        keep_alive=keep_alive,
        expect_continue=expect_continue,
        has_body=has_body,
    )


class H11Parser:
    """h11, one `h11.Connection` per request: h11 would parse the next (pipelined) request only
    after seeing this one's response, which is written elsewhere, and it never keeps an
    HTTP/1.0 connection alive. The bytes after a request go to a fresh one."""

    def __init__(self) -> None:
        self._conn = h11.Connection(h11.SERVER)
        self._keep_alive = True

    def feed(self, data: bytes) -> list[ParsedEvent]:
        out: list[ParsedEvent] = []
        if not self._keep_alive:
            return out  # the last request closes the connection: nothing after it counts
        self._conn.receive_data(data)
        try:
            self._parse(out)
        except BadRequest as exc:
            exc.events = out
            raise
        return out

    def _parse(self, out: list[ParsedEvent]) -> None:
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise BadRequest(str(exc), exc.error_status_hint) from None
            if isinstance(event, h11.Data):
                out.append(BodyData(bytes(event.data)))
            elif isinstance(event, h11.Request):
                version = event.http_version.decode("ascii")
                head = make_head(event.method, event.target, version, list(event.headers))
                self._keep_alive = head.keep_alive
                out.append(head)
            elif isinstance(event, h11.EndOfMessage):
                out.append(END_OF_REQUEST)
                if not self._keep_alive:
                    return
                rest, _ = self._conn.trailing_data
                self._conn = h11.Connection(h11.SERVER)
                if rest:  # (empty data would tell h11 the client closed)
                    self._conn.receive_data(bytes(rest))
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return


class HttptoolsParser:
    """llhttp through httptools' callbacks, collected into the same events as h11's."""

    def __init__(self) -> None:
        assert httptools is not None
        self._parser = httptools.HttpRequestParser(self)
        self._out: list[ParsedEvent] = []
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._closed = False

    def feed(self, data: bytes) -> list[ParsedEvent]:
        out: list[ParsedEvent] = []
        self._out = out
        if self._closed:
            return out
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade this server does not perform: the request was served as plain HTTP,
            # and llhttp will not parse past it, so the connection carries nothing more.
            self._closed = True
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            error = cause if isinstance(cause, BadRequest) else BadRequest(str(exc))
            error.events = out
            raise error from None
        return out

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._target = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp keeps trailing whitespace, which is not part of the value (RFC 9112 §5).
        self._headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        head = make_head(
            parser.get_method(), self._target, parser.get_http_version(), self._headers
        )
        self._out.append(head)

    def on_body(self, body: bytes) -> None:
        self._out.append(BodyData(body))

    def on_message_complete(self) -> None:
        self._out.append(END_OF_REQUEST)


def parser_factory(name: str) -> type[H11Parser] | type[HttptoolsParser]:
    """The parser class for --http: auto prefers httptools when it is installed."""
    if name == "httptools" or (name == "auto" and httptools is not None):
        if httptools is None:
            raise ImportError("--http httptools needs the httptools package: pip install httptools")
        return HttptoolsParser
    return H11Parser
