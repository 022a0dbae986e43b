"""The framing guard, sans I/O: its own verdicts, how it keeps the events of the requests before
a fault, and how it catches a backend that frames requests differently. (The vectors it refuses,
through both backends, are in test_smuggling.py.)"""

from __future__ import annotations

import pytest
from support import ParserClass

from interpserve.errors import BadRequest
from interpserve.frontend.http_grammar import FramingGuard
from interpserve.frontend.http_parser import (
    END_OF_REQUEST,
    BodyData,
    EndOfRequest,
    Limits,
    ParsedEvent,
    RequestHead,
    RequestParser,
)

# On the compiled functions and on their Python references (conftest.py's pure_impl).
pytestmark = pytest.mark.usefixtures("pure_impl")

GOOD = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture
def parser(parser_class: ParserClass) -> RequestParser:
    return parser_class()


def targets(events: list[ParsedEvent]) -> list[bytes]:
    return [e.target for e in events if isinstance(e, RequestHead)]


def fake_head(*, has_body: bool = False, keep_alive: bool = True) -> RequestHead:
    return RequestHead("GET", b"/", "1.1", [(b"host", b"a")], keep_alive, False, has_body)


def test_requests_before_a_bad_head_are_kept(parser: RequestParser) -> None:
    with pytest.raises(BadRequest) as info:
        parser.feed(GOOD + GOOD.replace(b"/a", b"/b") + b"GET / HTTP/1.1\r\nX : y\r\n\r\n")
    assert targets(info.value.events) == [b"/a", b"/b"]
    assert sum(isinstance(e, EndOfRequest) for e in info.value.events) == 2


def test_requests_before_a_head_over_the_limits_are_kept(parser: RequestParser) -> None:
    parser = type(parser)(Limits(fields=2))  # type: ignore[call-arg]
    chunked = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    with pytest.raises(BadRequest) as info:
        parser.feed(chunked + b"GET /b HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n")
    assert info.value.status == 431
    assert targets(info.value.events) == [b"/c"]


def test_a_bad_chunk_keeps_its_request_head(parser: RequestParser) -> None:
    """The request whose body breaks is kept (the connection disconnects it), its body is not."""
    data = GOOD + b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    with pytest.raises(BadRequest) as info:
        parser.feed(data + b"3 \r\nabc\r\n0\r\n\r\n")
    events = info.value.events
    assert targets(events) == [b"/a", b"/c"]
    assert isinstance(events[-1], RequestHead)


def test_a_bad_chunk_in_a_later_read(parser: RequestParser) -> None:
    events = parser.feed(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert targets(events) == [b"/c"]
    assert parser.feed(b"3\r\nabc\r\n") == [BodyData(b"abc")]
    with pytest.raises(BadRequest) as info:
        parser.feed(b"3;\rx\r\nabc\r\n")
    assert info.value.events == []


@pytest.mark.parametrize(
    "after",
    [b"E", b"\r\r", b"\rE", b"\r\nG", b"\r\n1\rX", b"\r\n1 ", b"\r\n" + b"1" * 17],
)
def test_a_chunk_is_refused_at_its_first_wrong_byte(parser: RequestParser, after: bytes) -> None:
    """In the CRLF after a chunk's data or in the next size line, as llhttp refuses it: a client
    that sends one wrong byte and then waits gets its 400 now, not at its read timeout."""
    chunked = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc"
    with pytest.raises(BadRequest):
        parser.feed(chunked + after)


@pytest.mark.parametrize("start", [b"", b"1f", b"1" * 16, b"a;", b"a;x=", b'a;x="y', b"a\r"])
def test_a_size_line_still_incomplete_waits(parser: RequestParser, start: bytes) -> None:
    chunked = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    events = parser.feed(chunked + start)
    assert targets(events) == [b"/c"]


@pytest.mark.parametrize(
    "line", [b"get", b"G\x01", b"GET  ", b"GET /\x01", b"GET /a X", b"GET /a HTTP/1.1\rX"]
)
def test_a_request_line_is_refused_at_its_first_wrong_byte(
    parser: RequestParser, line: bytes
) -> None:
    with pytest.raises(BadRequest, match="malformed request line"):
        parser.feed(GOOD + line)


@pytest.mark.parametrize("line", [b"\r", b"GE", b"GET /a", b"GET /a HT", b"GET /a HTTP/1.1\r"])
def test_a_request_line_still_incomplete_waits(parser: RequestParser, line: bytes) -> None:
    assert targets(parser.feed(GOOD + line)) == [b"/a"]


HEAD_START = b"GET / HTTP/1.1\r\nHost: a\r\n"
TRAILERS_START = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"


@pytest.mark.parametrize("start", [HEAD_START, TRAILERS_START])
@pytest.mark.parametrize("line", [b"X-T v", b" folded", b"X:\x01", b"\rX", b":v"])
def test_a_field_line_is_refused_at_its_first_wrong_byte(
    parser: RequestParser, start: bytes, line: bytes
) -> None:
    """In a head or in trailers, as llhttp judges a line byte by byte: a client that sends one
    wrong byte and then waits gets its 400 now, not at its read timeout."""
    with pytest.raises(BadRequest, match=r"header line|folding"):
        parser.feed(start + line)


@pytest.mark.parametrize("start", [HEAD_START, TRAILERS_START])
@pytest.mark.parametrize("line", [b"X-T", b"X-T:", b"X-T: v", b"X-T: v\r", b"\r"])
def test_a_field_line_still_incomplete_waits(
    parser: RequestParser, start: bytes, line: bytes
) -> None:
    parser.feed(start + line)


def test_in_head(parser: RequestParser) -> None:
    assert not parser.in_head
    parser.feed(b"\r\n\r")
    assert not parser.in_head  # empty lines before a request are not a request yet
    parser.feed(b"\nGE")
    assert parser.in_head
    parser.feed(b"T / HTTP/1.1\r\nHost: a\r\n")
    assert parser.in_head
    parser.feed(b"\r\n")
    assert not parser.in_head


def test_chunk_extensions_count_against_one_budget(parser: RequestParser) -> None:
    limits = Limits(field_size=100)
    parser = type(parser)(limits)  # type: ignore[call-arg]
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):
        parser.feed(b"1;" + b"e" * 29 + b"\r\nx\r\n")  # 30 bytes of extension each
    with pytest.raises(BadRequest, match="chunk extensions"):
        parser.feed(b"1;" + b"e" * 29 + b"\r\nx\r\n")


def test_chunk_extension_trickled_is_cut_off(parser: RequestParser) -> None:
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;")
    with pytest.raises(BadRequest, match="chunk extensions"):
        for _ in range(10_000):
            parser.feed(b"x")


@pytest.mark.parametrize(
    "last",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",  # (the fast path's)
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",  # (the backend's)
    ],
)
def test_nothing_is_read_after_the_last_request(parser: RequestParser, last: bytes) -> None:
    """Not by the backend either: llhttp would call it an error, h11 would ignore it."""
    assert targets(parser.feed(last)) == [b"/"]
    assert parser.feed(b"NOT HTTP AT ALL\r\n\r\n") == []


def test_an_upgrade_ends_the_http_stream(parser: RequestParser) -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n"
    events = parser.feed(head + b"\x00\x01 not http")
    assert targets(events) == [b"/"]


# A backend that frames differently from the guard


def test_a_backend_that_sees_no_request_is_caught() -> None:
    guard = FramingGuard(Limits())
    with pytest.raises(BadRequest, match="disagree"):
        guard.check(GOOD, lambda data: [])


def test_a_backend_that_sees_an_extra_request_is_caught() -> None:
    guard = FramingGuard(Limits())
    with pytest.raises(BadRequest, match="disagree") as info:
        guard.check(GOOD, lambda data: [fake_head(), END_OF_REQUEST, fake_head()])
    assert len(info.value.events) == 2  # the request both agree on


def test_a_backend_that_sees_no_body_is_caught() -> None:
    guard = FramingGuard(Limits())
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    with pytest.raises(BadRequest, match="disagree") as info:
        guard.check(data, lambda data: [fake_head(has_body=False), END_OF_REQUEST])
    assert info.value.events == []


def test_the_backends_error_stands_when_the_guard_finds_none() -> None:
    def failing(data: bytes) -> list[ParsedEvent]:
        raise BadRequest("the backend's reason", 505)

    with pytest.raises(BadRequest, match="the backend's reason"):
        FramingGuard(Limits()).check(GOOD, failing)


def test_the_guards_error_wins_for_the_same_request() -> None:
    def failing(data: bytes) -> list[ParsedEvent]:
        raise BadRequest("the backend's reason")

    with pytest.raises(BadRequest, match="more than one Content-Length"):
        data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"
        FramingGuard(Limits()).check(data, failing)


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
def test_the_last_requests_body_in_later_reads(parser: RequestParser, version: bytes) -> None:
    """A request that closes the connection still gets its body: h11's backend once stopped
    reading at its head, and the app waited for a body that never came."""
    head = b"POST / HTTP/" + version + b"\r\nHost: a\r\nConnection: close\r\n"
    events = parser.feed(head + b"Content-Length: 6\r\n\r\n")
    events += parser.feed(b"abc") + parser.feed(b"def")
    assert events[1:] == [BodyData(b"abc"), BodyData(b"def"), END_OF_REQUEST]
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == []
