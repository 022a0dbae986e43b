"""Request smuggling and malformed input: every vector must be refused, by both parser backends
alike, with a 4xx/5xx status line and the connection closed; and the server must keep serving.

Each vector runs twice: through both parsers, sans I/O (fast, exact status), and over a raw
socket to a real server per backend. Sources: RFC 9112's framing rules (sections 2.2, 3, 5, 6,
7.1), h11's and uvicorn's test suites, llhttp's strict mode, PortSwigger's request smuggling
research (CL.TE, TE.CL, TE.TE obfuscations) and "funky chunks" (chunk-line terminators).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from support import HTTP_IMPLS, ROOT, TIMEOUT, ParserClass, exchange, read_to_eof

from interpserve.errors import BadRequest
from interpserve.frontend.http_parser import (
    Limits,
    RequestParser,
)
from interpserve.testing import ServerProcess

LIMITS = Limits(request_line=2048, fields=30, field_size=2048, body=4096)
LIMIT_FLAGS = (
    "--limit-request-line=2048",
    "--limit-request-fields=30",
    "--limit-request-field-size=2048",
    "--limit-request-body=4096",
)


def post(*headers: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    """A POST to /read-body, whose app answers only once the body is complete."""
    lines = [b"POST /read-body HTTP/" + version, b"Host: a", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes) -> bytes:
    return post(b"Transfer-Encoding: chunked", body=body)


def get(*headers: bytes, line: bytes = b"GET / HTTP/1.1") -> bytes:
    return b"\r\n".join([line, b"Host: a", *headers]) + b"\r\n\r\n"


VECTORS: dict[str, tuple[bytes, int]] = {
    # Content-Length and Transfer-Encoding together (CL.TE and TE.CL), both orders.
    "cl-then-te": (
        post(b"Content-Length: 6", b"Transfer-Encoding: chunked", body=b"0\r\n\r\nG"),
        400,
    ),
    "te-then-cl": (
        post(
            b"Transfer-Encoding: chunked", b"Content-Length: 4", body=b"5c\r\nGPOST / HTTP/1.1\r\n"
        ),
        400,
    ),
    "te-identity-and-cl": (
        post(b"Transfer-Encoding: identity", b"Content-Length: 3", body=b"abc"),
        400,
    ),
    # Content-Length: duplicates, lists, and what is not a plain decimal.
    "two-differing-cl": (post(b"Content-Length: 3", b"Content-Length: 4", body=b"abcd"), 400),
    "two-identical-cl": (post(b"Content-Length: 3", b"Content-Length: 3", body=b"abc"), 400),
    "cl-list-identical": (post(b"Content-Length: 3, 3", body=b"abc"), 400),
    "cl-list-differing": (post(b"Content-Length: 1, 2", body=b"ab"), 400),
    "cl-negative": (post(b"Content-Length: -1"), 400),
    "cl-plus-sign": (post(b"Content-Length: +3", body=b"abc"), 400),
    "cl-hex": (post(b"Content-Length: 0x3", body=b"abc"), 400),
    "cl-inner-space": (post(b"Content-Length: 1 2"), 400),
    "cl-trailing-space": (post(b"Content-Length: 3 ", body=b"abc"), 400),
    "cl-empty": (post(b"Content-Length: "), 400),
    "cl-overflow": (post(b"Content-Length: 99999999999999999999999"), 400),
    "cl-superscript-digit": (post("Content-Length: \u00b3".encode("latin-1"), body=b"abc"), 400),
    # Transfer-Encoding obfuscations (TE.TE).
    "te-chunked-identity": (post(b"Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n"), 501),
    "te-xchunked": (post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), 501),
    "te-gzip-chunked": (post(b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), 501),
    "te-chunked-twice": (
        post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        501,
    ),
    "te-chunked-trailing-space": (post(b"Transfer-Encoding: chunked ", body=b"0\r\n\r\n"), 400),
    "te-chunked-trailing-tab": (post(b"Transfer-Encoding: chunked\t", body=b"0\r\n\r\n"), 400),
    "te-leading-comma": (post(b"Transfer-Encoding: ,chunked", body=b"0\r\n\r\n"), 400),
    "te-nbsp-chunked": (post(b"Transfer-Encoding: \xa0chunked", body=b"0\r\n\r\n"), 400),
    "te-empty": (post(b"Transfer-Encoding: "), 400),
    "te-vertical-tab": (post(b"Transfer-Encoding:\x0bchunked", body=b"0\r\n\r\n"), 400),
    "te-form-feed": (post(b"Transfer-Encoding:\x0cchunked", body=b"0\r\n\r\n"), 400),
    "te-space-before-colon": (post(b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"), 400),
    "te-folded-name": (post(b"X: y", b" Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 400),
    "te-on-http-1.0": (post(b"Transfer-Encoding: chunked", body=b"0\r\n\r\n", version=b"1.0"), 400),
    # Chunk size lines.
    "chunk-size-negative": (chunked(b"-1\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-overflow": (chunked(b"ffffffffffffffffff\r\nabc\r\n"), 400),
    "chunk-size-20-digits": (chunked(b"f" * 20 + b"\r\nabc\r\n"), 400),
    "chunk-size-not-hex": (chunked(b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-0x": (chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-trailing-space": (chunked(b"3 \r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-leading-space": (chunked(b" 3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-bare-lf": (chunked(b"3\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-empty": (chunked(b"\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-ext-huge": (chunked(b"3;" + b"x" * 100_000 + b"\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-ext-many-small": (
        chunked(b"".join(b"1;" + b"e" * 200 + b"\r\nx\r\n" for _ in range(40))),
        400,
    ),
    "chunk-ext-bare-cr": (chunked(b"3;a\rb\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-ext-bare-lf": (chunked(b"3;a\nabc\r\n0\r\n\r\n"), 400),
    "chunk-ext-space": (chunked(b"3 ;a=b\r\nabc\r\n0\r\n\r\n"), 400),
    # Chunk data and its terminator.
    "chunk-data-too-long": (chunked(b"3\r\nabcde\r\n0\r\n\r\n"), 400),
    "chunk-data-bare-lf": (chunked(b"3\r\nabc\n0\r\n\r\n"), 400),
    "chunk-data-bare-cr": (chunked(b"3\r\nabc\r0\r\n\r\n"), 400),
    "chunk-last-bare-lf": (chunked(b"3\r\nabc\r\n0\n\n"), 400),
    # Trailers.
    "trailer-bare-lf": (chunked(b"0\r\nX: y\n\r\n"), 400),
    "trailer-obs-fold": (chunked(b"0\r\nX: y\r\n z\r\n\r\n"), 400),
    "trailer-nul": (chunked(b"0\r\nX: y\x00\r\n\r\n"), 400),
    "trailer-space-before-colon": (chunked(b"0\r\nX : y\r\n\r\n"), 400),
    "trailer-content-length": (chunked(b"0\r\nContent-Length: 3\r\n\r\n"), 400),
    "trailer-transfer-encoding": (chunked(b"0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
    # Header lines.
    "obs-fold": (get(b"X-A: b", b" c"), 400),
    "obs-fold-tab": (get(b"X-A: b", b"\tc"), 400),
    "bare-cr-in-head": (b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400),
    "bare-lf-line-endings": (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    "bare-lf-one-header": (b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400),
    "bare-lf-head-end": (b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    "nul-in-name": (get(b"X\x00A: b"), 400),
    "nul-in-value": (get(b"X-A: b\x00c"), 400),
    "soh-in-value": (get(b"X-A: b\x01c"), 400),
    "esc-in-value": (get(b"X-A: \x1b[31mred"), 400),
    "del-in-value": (get(b"X-A: b\x7fc"), 400),
    "control-in-name": (get(b"X\x01A: b"), 400),
    "high-bit-in-name": (get(b"X\xffA: b"), 400),
    "space-in-name": (get(b"X A: b"), 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "tab-before-colon": (b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    "empty-name": (get(b": b"), 400),
    "no-colon": (get(b"NoColonHere"), 400),
    # Request lines.
    "method-bad-char": (get(line=b"G(T / HTTP/1.1"), 400),
    "method-nul": (get(line=b"GE\x00T / HTTP/1.1"), 400),
    "method-lowercase": (get(line=b"get / HTTP/1.1"), 400),
    "method-unknown": (get(line=b"FOO / HTTP/1.1"), 501),
    "method-pri-on-http-1.1": (get(line=b"PRI / HTTP/1.1"), 501),
    "absolute-form-not-http": (get(line=b"GET ftp://a/ HTTP/1.1"), 400),
    "absolute-form-userinfo": (get(line=b"GET http://u@a/ HTTP/1.1"), 400),
    "asterisk-form-get": (get(line=b"GET * HTTP/1.1"), 400),
    "authority-form-connect": (get(line=b"CONNECT a:443 HTTP/1.1"), 501),
    "http-0.9": (b"GET /\r\n", 400),
    "http-0.9-then-empty-line": (b"GET /\r\n\r\n", 400),
    "http-2.0": (get(line=b"GET / HTTP/2.0"), 505),
    "http-1.2": (get(line=b"GET / HTTP/1.2"), 505),
    "http-0.9-version": (get(line=b"GET / HTTP/0.9"), 505),
    "http-2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "version-lowercase": (get(line=b"GET / http/1.1"), 400),
    "version-two-digits": (get(line=b"GET / HTTP/1.10"), 400),
    "two-spaces": (get(line=b"GET  / HTTP/1.1"), 400),
    "tab-separator": (get(line=b"GET\t/ HTTP/1.1"), 400),
    "space-after-version": (get(line=b"GET / HTTP/1.1 "), 400),
    "space-in-target": (get(line=b"GET /a b HTTP/1.1"), 400),
    "nul-in-target": (get(line=b"GET /a\x00b HTTP/1.1"), 400),
    "del-in-target": (get(line=b"GET /a\x7fb HTTP/1.1"), 400),
    "high-bit-in-target": (get(line=b"GET /a\xffb HTTP/1.1"), 400),
    "esc-in-target": (get(line=b"GET /\x1b[2J HTTP/1.1"), 400),
    "bare-lf-before-request": (b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "bare-cr-before-request": (b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "space-before-request": (b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    # A protocol switch with a body: llhttp gives the body to the new protocol, h11 to HTTP.
    "upgrade-with-body": (
        post(b"Connection: Upgrade", b"Upgrade: websocket", b"Content-Length: 3", body=b"abc"),
        400,
    ),
    "upgrade-with-chunked-body": (
        post(
            b"Connection: upgrade",
            b"Upgrade: h2c",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        400,
    ),
    # Host.
    "missing-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "duplicate-host": (get(b"Host: b"), 400),
    # Sizes.
    "request-line-too-long": (get(line=b"GET /" + b"a" * 3000 + b" HTTP/1.1"), 414),
    "too-many-headers": (get(*(b"X-%d: a" % i for i in range(40))), 431),
    "header-too-large": (get(b"X-Big: " + b"a" * 3000), 431),
    "cl-over-limit": (post(b"Content-Length: 5000", body=b"a" * 5000), 413),
    "chunked-over-limit": (
        chunked(b"bb8\r\n" + b"a" * 3000 + b"\r\n" + b"bb8\r\n" + b"a" * 3000),
        413,
    ),
}


# Sans I/O: both parsers, the exact status


@pytest.mark.parametrize(("data", "status"), VECTORS.values(), ids=VECTORS.keys())
def test_parsers_refuse(parser_class: ParserClass, data: bytes, status: int) -> None:
    parser: RequestParser = parser_class(LIMITS)  # type: ignore[call-arg]
    with pytest.raises(BadRequest) as info:
        parser.feed(data)
    assert info.value.status == status


@pytest.mark.parametrize(("data", "status"), VECTORS.values(), ids=VECTORS.keys())
def test_parsers_refuse_byte_by_byte(parser_class: ParserClass, data: bytes, status: int) -> None:
    """Refused whatever the reads: a vector trickled in one byte at a time. (llhttp may give up
    in the middle of a line, before the shared rules see it whole: then it says a plain 400
    where the whole line would get 501 or 505.)"""
    parser: RequestParser = parser_class(LIMITS)  # type: ignore[call-arg]
    with pytest.raises(BadRequest) as info:
        for i in range(min(len(data), 4000)):
            parser.feed(data[i : i + 1])
        parser.feed(data[4000:])
    assert info.value.status in (status, 400)


# Over the wire: a real server per backend


@pytest.fixture(scope="module", params=HTTP_IMPLS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    flags = ("--http", request.param, "--workers", "1", *LIMIT_FLAGS)
    with ServerProcess("tests.apps.faults_app:app", *flags, cwd=str(ROOT)) as server:
        yield server


# The server speaks HTTP/2 to a client that opens with its preface (tests/e2e/test_http2.py, where
# --no-http2 is shown to answer it with 505 as the parsers do).
SERVER_VECTORS = {name: vector for name, vector in VECTORS.items() if name != "http-2-preface"}


@pytest.mark.parametrize(("data", "status"), SERVER_VECTORS.values(), ids=SERVER_VECTORS.keys())
def test_server_refuses_and_closes(server: ServerProcess, data: bytes, status: int) -> None:
    received = exchange(server, data)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), received[:300]
    assert b"\r\nconnection: close" in head.lower()
    assert b"Traceback" not in body
    assert body.count(b"HTTP/1.1") == 0, "nothing may follow the error response"
    response = httpx.get(server.url + "/", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "ok")


def test_a_request_after_empty_lines_is_served(server: ServerProcess) -> None:
    """RFC 9112 2.2: a server SHOULD ignore empty lines (CRLF) before a request line, and both
    backends do, also between pipelined requests."""
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    last = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    received = exchange(server, b"\r\n\r\n" + request + b"\r\n" + last)
    assert received.count(b"HTTP/1.1 200 OK") == 2, received


def test_valid_requests_near_the_vectors_are_served(server: ServerProcess) -> None:
    """What the strict rules must not refuse: optional whitespace around field values, mixed
    case codings, chunk extensions within limits, trailers, leading zeros in lengths."""
    requests = [
        post(b"Content-Length:3", body=b"abc"),
        post(b"Content-Length:\t 003", body=b"abc"),
        post(b"Transfer-Encoding:\tChunked", body=b"3\r\nabc\r\n0\r\n\r\n"),
        post(b"Transfer-Encoding: CHUNKED", body=b'3;a=b;c\r\nabc\r\n0;x="y z"\r\nT: v\r\n\r\n'),
        post(b"X-Obs-Text: caf\xe9", b"Content-Length: 0"),
    ]
    received = exchange(server, b"".join(requests) + get(b"Connection: close"))
    assert received.count(b"HTTP/1.1 200 OK") == len(requests) + 1, received
    assert received.count(b"\r\n\r\n3") == 4, received


def test_trailer_fields_never_become_headers(hello_server: ServerProcess) -> None:
    """llhttp reports trailer fields like header fields: they once landed in the request's
    headers, where the app took them for headers the client never sent in the head."""
    with socket.create_connection((hello_server.host, hello_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"POST /scope HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n"
            b"Authorization: Basic c3B5\r\n\r\n"
        )
        received = read_to_eof(sock)
    assert received.startswith(b"HTTP/1.1 200 ")
    body = received.partition(b"\r\n\r\n")[2]
    assert b"authorization" not in body.lower()
    assert b"6.6.6.6" not in body
