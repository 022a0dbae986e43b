"""Request parsing, sans I/O: both backends must turn the same bytes into the same events."""

from __future__ import annotations

import gc
import importlib.util

import pytest
from support import ParserClass

from interpserve.errors import BadRequest
from interpserve.frontend.http_parser import (
    DEFAULT_LIMITS,
    END_OF_REQUEST,
    BodyData,
    EndOfRequest,
    H11Parser,
    HttptoolsParser,
    ParsedEvent,
    RequestHead,
    RequestParser,
    parser_factory,
)

# On the compiled functions and on their Python references (conftest.py's pure_impl).
pytestmark = pytest.mark.usefixtures("pure_impl")

HAS_HTTPTOOLS = importlib.util.find_spec("httptools") is not None


@pytest.fixture
def parser(parser_class: ParserClass) -> RequestParser:
    return parser_class()


def feed_all(parser: RequestParser, *chunks: bytes) -> list[ParsedEvent]:
    out: list[ParsedEvent] = []
    for data in chunks:
        out += parser.feed(data)
    return out


def heads(events: list[ParsedEvent]) -> list[RequestHead]:
    return [e for e in events if isinstance(e, RequestHead)]


def body_of(events: list[ParsedEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyData))


def only_head(events: list[ParsedEvent]) -> RequestHead:
    (head,) = heads(events)
    return head


# Well-formed requests


def test_simple_get(parser: RequestParser) -> None:
    events = parser.feed(
        b"GET /search?q=a%20b&x=1 HTTP/1.1\r\n"
        b"Host: Example.COM\r\n"
        b"X-Custom-Header: Mixed Case Value\r\n"
        b"ACCEPT: */*\r\n"
        b"\r\n"
    )
    assert len(events) == 2
    head, end = events
    assert isinstance(head, RequestHead)
    assert end is END_OF_REQUEST
    assert isinstance(end, EndOfRequest)
    assert head.method == "GET"
    assert head.target == b"/search?q=a%20b&x=1"
    assert head.http_version == "1.1"
    assert head.headers == [
        (b"host", b"Example.COM"),
        (b"x-custom-header", b"Mixed Case Value"),
        (b"accept", b"*/*"),
    ]
    assert head.keep_alive is True
    assert head.expect_continue is False
    assert head.has_body is False


def test_http_1_0_request(parser: RequestParser) -> None:
    head = only_head(parser.feed(b"GET /old HTTP/1.0\r\n\r\n"))
    assert head.http_version == "1.0"
    assert head.target == b"/old"
    assert head.headers == []
    assert head.keep_alive is False


@pytest.mark.parametrize(
    "method", ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
)
def test_methods(parser: RequestParser, method: str) -> None:
    head = only_head(parser.feed(f"{method} / HTTP/1.1\r\nHost: a\r\n\r\n".encode()))
    assert head.method == method


@pytest.mark.parametrize("target", [b"/", b"*", b"/p%C3%A9?a=%FF&b", b"/a;b?c"])
def test_targets_pass_through(parser: RequestParser, target: bytes) -> None:
    method = b"OPTIONS" if target == b"*" else b"GET"
    head = only_head(parser.feed(method + b" " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert head.target == target


@pytest.mark.parametrize(
    ("target", "kept"), [(b"/a;b?c#d", b"/a;b?c"), (b"/p#x?y", b"/p"), (b"/#", b"/")]
)
def test_a_fragment_is_dropped(parser: RequestParser, target: bytes, kept: bytes) -> None:
    head = only_head(parser.feed(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert head.target == kept


@pytest.mark.parametrize(
    "target",
    [b"example.com:80", b"*", b"ftp://example.com/x", b"http://user@example.com/", b"http:///x"],
)
def test_targets_other_than_a_path_or_url_are_rejected(
    parser: RequestParser, target: bytes
) -> None:
    with pytest.raises(BadRequest):
        parser.feed(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"http://example.com/x?y=1", b"/x?y=1"),
        (b"HTTPS://example.com:8443", b"/"),
        (b"http://[::1]:80?q", b"/?q"),
    ],
)
def test_a_url_target_is_taken_with_its_host(
    parser: RequestParser, target: bytes, path: bytes
) -> None:
    """Absolute-form, which a server must accept (RFC 9112 §3.2.2): the app gets the path, and
    the URL's authority in place of the Host header's value, so it never sees two hosts."""
    head = only_head(parser.feed(b"GET " + target + b" HTTP/1.1\r\nHost: other\r\n\r\n"))
    assert head.target == path
    authority = target.split(b"//")[1].split(b"/")[0].split(b"?")[0]
    assert head.headers == [(b"host", authority)]


def test_repeated_headers_and_order_are_kept(parser: RequestParser) -> None:
    head = only_head(
        parser.feed(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nx-a: 3\r\n"
            b"Cookie: a=1\r\nCookie: b=2\r\n\r\n"
        )
    )
    assert head.headers == [
        (b"host", b"a"),
        (b"x-a", b"1"),
        (b"x-b", b"2"),
        (b"x-a", b"3"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
    ]


def test_header_value_leading_whitespace_is_trimmed_and_obs_text_kept(
    parser: RequestParser,
) -> None:
    head = only_head(parser.feed(b"GET / HTTP/1.1\r\nHost:   a\r\nX-Name: caf\xe9\r\n\r\n"))
    assert head.headers == [(b"host", b"a"), (b"x-name", b"caf\xe9")]


def test_header_value_trailing_whitespace_is_trimmed(parser_class: ParserClass) -> None:
    head = only_head(parser_class().feed(b"GET / HTTP/1.1\r\nHost: a  \r\nX-A: b\t\r\n\r\n"))
    assert head.headers == [(b"host", b"a"), (b"x-a", b"b")]


def test_expect_continue_with_trailing_whitespace(parser_class: ParserClass) -> None:
    head = only_head(
        parser_class().feed(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue \r\n\r\n"
        )
    )
    assert head.expect_continue is True


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", None, True),
        ("1.1", b"close", False),
        ("1.1", b"Close", False),
        ("1.1", b"keep-alive", True),
        ("1.1", b"foo, close", False),
        ("1.1", b"Upgrade-Insecure, keep-alive", True),
        ("1.0", None, False),
        ("1.0", b"keep-alive", True),
        ("1.0", b"Keep-Alive", True),
        ("1.0", b"close", False),
    ],
)
def test_keep_alive_rules(
    parser: RequestParser, version: str, connection: bytes | None, keep_alive: bool
) -> None:
    request = b"GET / HTTP/%s\r\nHost: a\r\n" % version.encode()
    if connection is not None:
        request += b"Connection: %s\r\n" % connection
    head = only_head(parser.feed(request + b"\r\n"))
    assert head.http_version == version
    assert head.keep_alive is keep_alive


# Bodies


def test_content_length_body_split_across_feeds(parser: RequestParser) -> None:
    first = parser.feed(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel")
    head = only_head(first)
    assert head.has_body is True
    assert END_OF_REQUEST not in first
    second = parser.feed(b"lo w")
    assert END_OF_REQUEST not in second
    assert heads(second) == []
    third = parser.feed(b"orld")
    assert third[-1] is END_OF_REQUEST
    assert body_of(first + second + third) == b"hello world"


def test_head_split_across_feeds(parser: RequestParser) -> None:
    assert parser.feed(b"POST /x HT") == []
    assert parser.feed(b"TP/1.1\r\nHost: a\r\nContent-Le") == []
    events = parser.feed(b"ngth: 3\r\n\r\nabc")
    head = only_head(events)
    assert head.target == b"/x"
    assert head.headers == [(b"host", b"a"), (b"content-length", b"3")]
    assert body_of(events) == b"abc"
    assert events[-1] is END_OF_REQUEST


def test_one_byte_at_a_time(parser: RequestParser) -> None:
    data = b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
    events: list[ParsedEvent] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    head = only_head(events)
    assert head.target == b"/x?y=1"
    assert body_of(events) == b"0123456789"
    assert events[-1] is END_OF_REQUEST
    assert sum(e is END_OF_REQUEST for e in events) == 1


def test_binary_body(parser: RequestParser) -> None:
    body = bytes(range(256)) * 10
    events = parser.feed(
        b"PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    assert body_of(events) == body


def test_a_parser_keeps_no_body_it_has_handed_over(parser: RequestParser) -> None:
    """What a read brought is the caller's once fed: a connection whose client pauses must not
    hold its last read's body on top of the worker's copy."""
    events = parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    (body,) = [e for e in events if isinstance(e, BodyData)]
    del events
    assert not [r for r in gc.get_referrers(body) if isinstance(r, list)]


def test_chunked_body(parser: RequestParser) -> None:
    events = parser.feed(
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"
        b"1;ext=1\r\n \r\n"
        b"A\r\n0123456789\r\n"
        b"0\r\n\r\n"
    )
    head = only_head(events)
    assert head.has_body is True
    assert isinstance(events[0], RequestHead)
    assert events[-1] is END_OF_REQUEST
    middle = events[1:-1]
    assert middle
    assert all(isinstance(e, BodyData) for e in middle)
    assert body_of(events) == b"hello 0123456789"


def test_chunked_body_split_across_feeds(parser: RequestParser) -> None:
    data = (
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
    )
    events: list[ParsedEvent] = []
    for start in range(0, len(data), 7):
        events += parser.feed(data[start : start + 7])
    assert len(heads(events)) == 1
    assert body_of(events) == b"abc0123456789abcdef"
    assert events[-1] is END_OF_REQUEST


def test_a_body_is_one_event_per_read_however_it_is_chunked(parser: RequestParser) -> None:
    """What a body costs the rest of the server follows its size, not the client's chunks."""
    head = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(b"1\r\n%c\r\n" % (i % 256) for i in range(10_000))
    first = parser.feed(head + chunks[:30_001])  # (cut inside a chunk size line)
    second = parser.feed(chunks[30_001:] + b"0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [type(e) for e in first] == [RequestHead, BodyData]
    assert [type(e) for e in second] == [BodyData, EndOfRequest, RequestHead, EndOfRequest]
    assert body_of(first + second) == bytes(i % 256 for i in range(10_000))


def test_chunked_body_with_trailers(parser: RequestParser) -> None:
    events = parser.feed(
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\nX-Checksum: 1\r\n\r\n"
    )
    assert body_of(events) == b"ok"
    assert events[-1] is END_OF_REQUEST


@pytest.mark.parametrize(
    ("headers", "has_body"),
    [
        (b"", False),
        (b"Content-Length: 0\r\n", False),
        (b"Content-Length: 5\r\n", True),
        (b"Transfer-Encoding: chunked\r\n", True),
    ],
)
def test_has_body(parser: RequestParser, headers: bytes, has_body: bool) -> None:
    events = parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
    assert only_head(events).has_body is has_body
    assert (END_OF_REQUEST in events) is not has_body


def test_content_length_zero_ends_at_once(parser: RequestParser) -> None:
    events = parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, EndOfRequest]


@pytest.mark.parametrize(
    ("version", "headers", "expect_continue"),
    [
        ("1.1", b"Content-Length: 3\r\nExpect: 100-continue\r\n", True),
        ("1.1", b"Content-Length: 3\r\nExpect: 100-Continue\r\n", True),
        ("1.1", b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n", True),
        ("1.1", b"Expect: 100-continue\r\n", False),
        ("1.1", b"Content-Length: 0\r\nExpect: 100-continue\r\n", False),
        ("1.1", b"Content-Length: 3\r\n", False),
        ("1.0", b"Content-Length: 3\r\nExpect: 100-continue\r\n", False),
    ],
)
def test_expect_continue(
    parser: RequestParser, version: str, headers: bytes, expect_continue: bool
) -> None:
    request = b"POST / HTTP/%s\r\nHost: a\r\n%s\r\n" % (version.encode(), headers)
    head = only_head(parser.feed(request))
    assert head.expect_continue is expect_continue


# Pipelining


def test_pipelined_requests_in_one_feed(parser: RequestParser) -> None:
    events = parser.feed(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two?x HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert [type(e) for e in events] == [RequestHead, EndOfRequest, RequestHead, EndOfRequest]
    assert [h.target for h in heads(events)] == [b"/one", b"/two?x"]


def test_pipelined_requests_with_bodies(parser: RequestParser) -> None:
    events = parser.feed(
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert [h.target for h in heads(events)] == [b"/a", b"/b", b"/c"]
    ends = [i for i, e in enumerate(events) if e is END_OF_REQUEST]
    assert len(ends) == 3
    assert body_of(events[: ends[0]]) == b"abc"
    assert body_of(events[ends[0] : ends[1]]) == b"de"
    assert body_of(events[ends[1] :]) == b""


def test_keep_alive_requests_in_separate_feeds(parser: RequestParser) -> None:
    for path in (b"/1", b"/2", b"/3"):
        events = parser.feed(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert only_head(events).target == path
        assert events[-1] is END_OF_REQUEST


@pytest.mark.parametrize("split", [False, True], ids=["one-feed", "two-feeds"])
def test_http_1_0_keep_alive_carries_a_second_request(
    parser_class: ParserClass, split: bool
) -> None:
    parser = parser_class()
    first = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    second = b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    chunks = [first, second] if split else [first + second]
    events = feed_all(parser, *chunks)
    assert heads(events)[0].keep_alive is True
    assert [h.target for h in heads(events)] == [b"/a", b"/b"]


def test_connect_request_yields_events_or_bad_request(parser_class: ParserClass) -> None:
    parser = parser_class()
    try:
        events = parser.feed(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    except BadRequest:
        return
    assert only_head(events).method == "CONNECT"


# Malformed requests: refused by both backends. The backends used to differ on many inputs
# (bare LF, duplicate identical Content-Length, obs-fold, control characters, chunk-size
# overflow, HTTP/1.2 and HTTP/0.9, Host, lowercase methods, empty lines before a request):
# the framing guard (frontend/http_grammar.py) now holds both to one grammar, and
# tests/test_smuggling.py checks each of those vectors, and more, on both.

MALFORMED = [
    pytest.param(b"GARBAGE\r\n\r\n", id="garbage-request-line"),
    pytest.param(b"\x00\x01\x02 / HTTP/1.1\r\nHost: a\r\n\r\n", id="binary-request-line"),
    pytest.param(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", id="space-in-target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nBadHeader\r\n\r\n", id="header-without-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", id="tab-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", id="empty-header-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n", id="nul-in-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", id="bare-cr"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        id="content-length-and-transfer-encoding",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
        id="transfer-encoding-and-content-length",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        id="two-different-content-lengths",
    ),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", id="cl-negative"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", id="cl-plus"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", id="cl-hex"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", id="cl-space"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", id="cl-word"),
    pytest.param(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \u00b3\r\n\r\nabc".encode(),
        id="cl-superscript-digit",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        id="cl-overflow",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        id="chunk-size-zz",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
        id="chunk-without-crlf",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        id="transfer-encoding-twice",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n",
        id="content-length-trailer",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\ntransfer-encoding: chunked\r\n\r\n",
        id="transfer-encoding-trailer",
    ),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_request_raises_bad_request(parser: RequestParser, data: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parser.feed(data)
    assert info.value.status in (400, 501)


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_request_one_byte_at_a_time(parser: RequestParser, data: bytes) -> None:
    with pytest.raises(BadRequest):
        for i in range(len(data)):
            parser.feed(data[i : i + 1])


@pytest.mark.parametrize(
    "encoding", [b"gzip", b"gzip, chunked", b"chunked, gzip", b"identity", b"deflate"]
)
def test_unsupported_transfer_encoding(parser: RequestParser, encoding: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + encoding + b"\r\n\r\n")
    assert info.value.status in (400, 501)


def _big_head(size: int) -> bytes:
    """A GET whose head is `size` bytes, in field lines of at most 8000 bytes."""
    start, end = b"GET / HTTP/1.1\r\nHost: a\r\n", b"\r\n"
    left = size - len(start) - len(end)
    count = -(-left // 8000)
    sizes = [left // count + (i < left % count) for i in range(count)]
    head = start + b"".join(b"X-%03d: " % i + b"v" * (n - 9) + b"\r\n" for i, n in enumerate(sizes))
    return head + end


@pytest.mark.parametrize("pieces", [1, 16], ids=["one-read", "in-pieces"])
def test_head_size_limit_is_the_same_for_both_parsers(
    parser_class: ParserClass, pieces: int
) -> None:
    """Every field within its limit, the whole head over 64 KiB: 431 on both parsers, however
    it arrives (h11 alone would refuse it only in pieces); just under it, taken by both."""
    limit = DEFAULT_LIMITS.head + 2  # (the head's lines, then the empty line that ends it)
    for size, refused in ((limit, False), (limit + 1, True), (160_000, True)):
        data = _big_head(size)
        step = -(-len(data) // pieces)
        parser = parser_class()
        if refused:
            with pytest.raises(BadRequest) as info:
                feed_all(parser, *(data[i : i + step] for i in range(0, len(data), step)))
            assert info.value.status == 431
        else:
            events = feed_all(parser, *(data[i : i + step] for i in range(0, len(data), step)))
            assert len(only_head(events).headers) > 8


def test_bad_request_after_a_good_one(parser: RequestParser) -> None:
    events = parser.feed(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
    assert only_head(events).target == b"/ok"
    with pytest.raises(BadRequest):
        parser.feed(b"GARBAGE\r\n\r\n")


def test_bad_request_default_status() -> None:
    assert BadRequest("nope").status == 400
    assert BadRequest("nope", status=501).status == 501
    assert str(BadRequest("why")) == "why"


# Backend choice


def test_parser_factory() -> None:
    assert parser_factory("h11") is H11Parser
    if HAS_HTTPTOOLS:
        assert parser_factory("httptools") is HttptoolsParser
        assert parser_factory("auto") is HttptoolsParser
    else:
        assert parser_factory("auto") is H11Parser
        with pytest.raises(ImportError):
            parser_factory("httptools")
