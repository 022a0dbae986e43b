"""The fast paths: requests in the plainest form parsed by the guard's grammar alone, without
the backend (`FramingGuard.plain_request`), and chunked bodies taken apart by the guard alone
once the backend is between two chunks (`FramingGuard.take_body`). They must not change a
thing: for any bytes, in any reads, the parser gives the same events and the same errors as the
full path alone (the backend's parse, vetted by the guard), with either backend; but for a fault
in a chunked body the guard took, which it names in its own words, at most a line later."""

from __future__ import annotations

import random

import pytest
from support import ParserClass

from interpserve.errors import BadRequest
from interpserve.frontend.http_grammar import FramingGuard
from interpserve.frontend.http_parser import (
    END_OF_REQUEST,
    BodyData,
    H11Parser,
    HttptoolsParser,
    Limits,
    ParsedEvent,
    RequestHead,
)

# On the compiled functions and on their Python references (conftest.py's pure_impl).
pytestmark = pytest.mark.usefixtures("pure_impl")


def full_path(parser: H11Parser | HttptoolsParser, data: bytes) -> list[ParsedEvent]:
    """What the parser makes of `data` with the backend parsing all of it, vetted by the guard:
    no fast path, and no chunked body taken apart by the guard alone."""
    events = parser._guard.check(data, parser._feed)
    try:
        parser._body.gather(events)
    except BadRequest as exc:  # (the body limit)
        exc.events = events
        raise
    return events


class H11FullPath(H11Parser):
    def feed(self, data: bytes) -> list[ParsedEvent]:
        return full_path(self, data)


class HttptoolsFullPath(HttptoolsParser):
    def feed(self, data: bytes) -> list[ParsedEvent]:
        return full_path(self, data)


FULL_PATH: dict[ParserClass, ParserClass] = {
    H11Parser: H11FullPath,
    HttptoolsParser: HttptoolsFullPath,
}
SMALL = Limits(request_line=60, fields=6, field_size=60, body=40)

# A client that sends requests, mostly plain ones, often with something odd about them.

METHODS = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "QUERY", "PURGE", "M-SEARCH",
    "PROPFIND", "MKCALENDAR",
]  # fmt: skip
ODD_METHODS = ["CONNECT", "TRACE", "get", "FOO", "G:T"]
SAFE = "ABCXYZabcxyz0189-._~!$&'()*+,;=:@/?%"
UNSAFE = ['"', "#", "<", ">", "[", "]", "\\", "^", "`", "{", "|", "}", "\x7f", "\x80", "\xe9"]
ODD_TARGETS = ["*", "http://a/b", "a/b", "//a", "/a b", ""]
NAMES = [
    "Accept", "accept-language", "User-Agent", "X-Custom", "x-a", "X-A", "COOKIE", "Via",
    "X!#$%&'*+-.^_`|~9", "Sec-Fetch-Mode", "Upgrade-Insecure-Requests", "Content-Type",
]  # fmt: skip
VALUES = [
    "*/*", "text/html, application/json;q=0.9", "Mozilla/5.0 (X11; Linux x86_64)", "1", "a=b; c",
    '"quoted, string"', "a\tb", "a  b", "",
]  # fmt: skip
ODD_VALUES = ["caf\xe9", "a\x01b", "a\x7fb", "a\rb", "a\nb", "\x00"]
CONNECTION = ["close", "keep-alive", "Keep-Alive", "CLOSE", "upgrade", "foo", "te"]
LENGTHS = ["-1", "1x", "0x5", "99999999999999999999", "+5", " 5", "1 2"]
CODINGS = ["gzip", "chunked, gzip", "identity", "Chunked"]


class Client:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.oddness = 0

    def odd(self, chance: float) -> bool:
        """Something odd, with this chance, in an odd request (plain ones have nothing odd)."""
        return self.rng.random() < chance * self.oddness

    def stream(self) -> bytes:
        """Requests pipelined on one connection, now and then cut short or with garbage after."""
        rng = self.rng
        count = rng.choices([1, 2, 3, 5], [40, 30, 20, 10])[0]
        data = b"".join(self.request() for _ in range(count))
        roll = rng.random()
        if roll < 0.05:
            data += rng.choice([b"\r\n", b"\r\n\r\n", b"GARBAGE\r\n\r\n", b"\x00\x01", b"GE"])
        elif roll < 0.1:
            data = data[: rng.randint(1, len(data))]
        return data

    def request(self) -> bytes:
        """A head, and a body if it has one."""
        rng = self.rng
        self.oddness = rng.choice([0, 0, 1])
        method = rng.choice(ODD_METHODS) if self.odd(0.1) else rng.choice(METHODS)
        version = rng.choices(["1.1", "1.0"], [80, 20])[0]
        if self.odd(0.03):
            version = rng.choice(["2.0", "1.2", "0.9", "11"])
        head = f"{method} {self.target()} HTTP/{version}\r\n"
        if self.odd(0.02):
            head = head.replace(" ", rng.choice(["  ", "\t"]), 1)
        hosts = 1 if version == "1.1" else rng.randint(0, 1)
        if self.odd(0.05):
            hosts = rng.choice([0, 2])
        fields = [self.field(rng.choice(["Host", "host"]), "127.0.0.1:8123") for _ in range(hosts)]
        for _ in range(rng.choices([0, 1, 3, 10], [2, 5, 2, 1])[0]):
            value = rng.choice(ODD_VALUES) if self.odd(0.1) else rng.choice(VALUES)
            fields.append(self.field(rng.choice(NAMES), value))
        if rng.random() < 0.3:
            tokens = rng.choices(CONNECTION, k=rng.randint(1, 3))
            value = rng.choice([",", ", ", " ,", ",\t", " "]).join(tokens)
            fields.append(self.field(rng.choice(["Connection", "connection"]), value))
        if self.odd(0.1):
            fields.append(self.field("Upgrade", rng.choice(["websocket", "h2c"])))
        if rng.random() < 0.05:
            fields.append(self.field("Expect", rng.choice(["100-continue", "100-Continue", "x"])))
        body = b""
        if rng.random() < 0.4:
            body = rng.randbytes(rng.choice([0, 1, 5, 30, 100]))
            length = self.field(rng.choice(["Content-Length", "content-length"]), str(len(body)))
            fields += [length, length] if self.odd(0.05) else [length]
        if self.odd(0.1):
            fields.append(self.field("Transfer-Encoding", "chunked"))
            chunk = rng.randbytes(rng.randint(1, 20))
            body = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
        if self.odd(0.05):
            name, values = rng.choice([("Content-Length", LENGTHS), ("Transfer-Encoding", CODINGS)])
            fields.append(self.field(name, rng.choice(values)))
        rng.shuffle(fields)
        if self.odd(0.02):
            fields.insert(rng.randint(0, len(fields)), rng.choice([" folded\r\n", "X: a\nb\r\n"]))
        prefix = "\r\n" * rng.choice([0, 1, 2]) if self.odd(0.1) else ""
        return (prefix + head + "".join(fields) + "\r\n").encode("latin-1") + body

    def target(self) -> str:
        rng = self.rng
        if self.odd(0.05):
            return rng.choice(ODD_TARGETS)
        chars = [rng.choice(SAFE) for _ in range(rng.randint(0, 12))]
        if self.odd(0.15):
            chars.insert(rng.randint(0, len(chars)), rng.choice(UNSAFE))
        return "/" + "".join(chars)

    def field(self, name: str, value: str) -> str:
        """A field line, with whitespace around the value, or not."""
        rng = self.rng
        colon = rng.choice([":", ": ", ":\t", ":  ", ": \t"])
        if self.odd(0.01):
            colon = " :"
        after = rng.choice([" ", "\t", "  "]) if self.odd(0.1) else ""
        return name + colon + value + after + "\r\n"


def reads(rng: random.Random, data: bytes) -> list[bytes]:
    """`data` as a client might send it: whole, cut at random places, or a byte at a time."""
    roll = rng.random()
    if roll < 0.5 or len(data) < 2:
        return [data]
    if roll < 0.95:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 4))))
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return [data[i : i + 1] for i in range(len(data))]


Outcome = list[list[ParsedEvent] | tuple[str, int, list[ParsedEvent]] | bool]


def run(parser: H11Parser | HttptoolsParser, chunks: list[bytes]) -> Outcome:
    """The events of each read, up to the error that stops the connection; and `in_head`."""
    outcome: Outcome = []
    for chunk in chunks:
        try:
            outcome.append(parser.feed(chunk))
        except BadRequest as exc:
            outcome.append((str(exc), exc.status, exc.events))
            break
        outcome.append(parser.in_head)
    return outcome


def counting_fast_path(parser: H11Parser | HttptoolsParser, taken: list[int]) -> None:
    plain_request = parser._guard.plain_request

    def counted(data: bytes, pos: int) -> tuple[RequestHead, int, int] | None:
        request = plain_request(data, pos)
        taken[0] += request is not None
        return request

    parser._guard.plain_request = counted  # type: ignore[method-assign]


def test_the_fast_path_changes_nothing(parser_class: ParserClass) -> None:
    fast, full = parser_class, FULL_PATH[parser_class]
    client, rng = Client(20240611), random.Random(1)
    taken, streams = [0], 1500
    for _ in range(streams):
        data = client.stream()
        chunks = reads(rng, data)
        limits = SMALL if rng.random() < 0.15 else Limits()
        parser = fast(limits)
        counting_fast_path(parser, taken)
        assert run(parser, chunks) == run(full(limits), chunks), (data, chunks, limits)
    assert taken[0] > streams / 3  # the comparison is not vacuous


# Chunked bodies, whole or faulty, with what may follow them
CHUNK_SIZES = [1, 1, 1, 2, 5, 17, 300, 5000]
EXTENSIONS = [";a", ";a=b", ';q="x y"', ";a=b;c", ";" + "e" * 70, "; a", ";a=", ';a="\\"']
BAD_SIZE_LINES = ["g\r\n", "1 \r\n", "1\n", " 1\r\n", "0x1\r\n", "1" * 17 + "\r\n", "-1\r\n"]
TRAILERS = ["X-T: v\r\n", "x:\r\n", "Content-Length: 5\r\n", " folded\r\n", "X-T v\r\n"]


def chunked_stream(rng: random.Random) -> bytes:
    """A chunked upload, now and then with a fault in its chunks or trailers, and a request or
    garbage after it."""
    head = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = bytearray()
    for _ in range(rng.choice([0, 1, 3, 50, 400])):
        size = rng.choice(CHUNK_SIZES)
        line = f"{size:x}" if rng.random() < 0.8 else f"{size:X}".rjust(4, "0")
        if rng.random() < 0.05:
            line += rng.choice(EXTENSIONS)
        body += line.encode() + b"\r\n" + rng.randbytes(size) + b"\r\n"
    roll = rng.random()
    if roll < 0.1:  # a faulty size line, or a chunk's data not followed by its CRLF
        fault = rng.choice([*BAD_SIZE_LINES, "1\r\nab\r\n", "1\r\na\n", "1\r\na\r\r\n"])
        body[rng.randint(0, len(body)) if body else 0 :] = fault.encode()
    body += rng.choice(["0", "000", "0;x=y"]).encode() + b"\r\n"
    if rng.random() < 0.1:
        body += rng.choice(TRAILERS).encode()
    body += b"\r\n"
    after = rng.choice([b"", b"", GET, POST + GET, CHUNKED, b"GARBAGE\r\n\r\n", b"GE"])
    return head + bytes(body) + after


def test_the_guard_taking_chunks_apart_changes_nothing(parser_class: ParserClass) -> None:
    fast, full = parser_class, FULL_PATH[parser_class]
    rng = random.Random(20261203)
    taken, refused = [0], 0
    for _ in range(500):
        data = chunked_stream(rng)
        chunks = reads(rng, data) if rng.random() < 0.3 else many_reads(rng, data)
        limits = SMALL if rng.random() < 0.15 else Limits()
        parser = fast(limits)
        counting_taken_bodies(parser, taken)
        ours, backends = run(parser, chunks), run(full(limits), chunks)
        if ours != backends:
            # Both refuse the bytes, for the same read or a line later: a backend judges a line
            # byte by byte, the guard once it is whole; and each names the fault its own way.
            assert isinstance(ours[-1], tuple) and isinstance(backends[-1], tuple), (data, chunks)
            before = min(len(ours), len(backends)) - 1
            assert ours[:before] == backends[:before], (data, chunks)
            refused += 1
    assert taken[0] > 300  # most of the bodies were the guard's (the comparison is not vacuous)
    assert refused < 30


def counting_taken_bodies(parser: H11Parser | HttptoolsParser, taken: list[int]) -> None:
    """Counts in `taken` the streams whose parser had the guard take a chunked body apart."""
    take_body = parser._guard.take_body
    counted = False

    def counting(data: bytes, pos: int) -> tuple[bytearray, int, bytes]:
        nonlocal counted
        taken[0] += not counted
        counted = True
        return take_body(data, pos)

    parser._guard.take_body = counting  # type: ignore[method-assign]


def many_reads(rng: random.Random, data: bytes) -> list[bytes]:
    """`data` in reads of a few to a few thousand bytes."""
    cuts, pos = [], 0
    while pos < len(data):
        cuts.append(data[pos : (pos := pos + rng.choice([1, 3, 7, 64, 1000, 4096]))])
    return cuts


# The fast path at work


def failing_backend(data: bytes) -> list[ParsedEvent]:
    raise AssertionError(f"the backend was asked to parse {data!r}")


def fast_only(parser_class: ParserClass) -> H11Parser | HttptoolsParser:
    """A parser whose backend must not be needed."""
    parser = parser_class()
    parser._feed = failing_backend  # type: ignore[method-assign]
    return parser


GET = b"GET /a?b=c HTTP/1.1\r\nHost: 127.0.0.1:8123\r\nAccept:\t*/*\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"


def test_the_backend_sees_no_chunk_of_a_body_the_guard_takes_apart(
    parser_class: ParserClass,
) -> None:
    """It parses the head, and the last chunk of an empty body in place of the body: what the
    client chose to send in one-byte chunks costs the guard's loop in C, not a call a chunk."""
    parser = parser_class()
    seen: list[bytes] = []
    backend = parser._feed

    def watched(data: bytes) -> list[ParsedEvent]:
        seen.append(data)
        return backend(data)

    parser._feed = watched  # type: ignore[method-assign]
    head = CHUNKED[: CHUNKED.index(b"\r\n\r\n") + 4]
    body = b"1\r\nx\r\n" * 1000
    events = parser.feed(head + body[:2999])  # (cut inside a chunk)
    assert parser.in_chunked_body
    events += parser.feed(body[2999:] + b"0;a=b\r\nX-T: v\r\n\r\n" + GET)
    assert seen == [head, b"0\r\n\r\n"]
    assert b"".join(e.data for e in events if isinstance(e, BodyData)) == b"x" * 1000
    assert [type(e) for e in events].count(RequestHead) == 2
    assert events[-1] is END_OF_REQUEST and not parser.in_chunked_body


def test_plain_requests_need_no_backend(parser_class: ParserClass) -> None:
    parser = fast_only(parser_class)
    events = parser.feed(GET + b"\r\n" + POST + GET)
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.target for h in heads] == [b"/a?b=c", b"/p", b"/a?b=c"]
    assert heads[0].headers == [(b"host", b"127.0.0.1:8123"), (b"accept", b"*/*")]
    assert events[2:5] == [heads[1], BodyData(b"hello"), END_OF_REQUEST]
    assert not parser.in_head


def test_the_backend_takes_over_at_a_request_boundary(parser_class: ParserClass) -> None:
    """What the fast path leaves (a chunked body here) goes to the backend, which has seen none
    of the requests before it, in this read or in earlier ones."""
    parser = parser_class()
    assert len(parser.feed(GET)) == 2
    events = parser.feed(POST + CHUNKED + GET)
    end = type(END_OF_REQUEST)
    assert [type(e) for e in events] == [RequestHead, BodyData, end] * 2 + [RequestHead, end]
    assert events[4] == BodyData(b"abc")
    assert len(parser.feed(GET + CHUNKED[:-5])) == 4  # a plain request, then a partial one
    assert parser.feed(CHUNKED[-5:] + GET)[0] is END_OF_REQUEST
    assert len(parser.feed(GET)) == 2


def test_a_body_still_to_come_goes_to_the_backend(parser_class: ParserClass) -> None:
    parser = parser_class()
    events = parser.feed(POST[:-2])
    assert events[1:] == [BodyData(b"hel")]
    assert parser.feed(b"lo" + GET)[:2] == [BodyData(b"lo"), END_OF_REQUEST]


@pytest.mark.parametrize(
    "last",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nab",
    ],
)
def test_nothing_is_parsed_after_a_plain_last_request(
    parser_class: ParserClass, last: bytes
) -> None:
    parser = fast_only(parser_class)
    assert parser.feed(GET + last)[-1] is END_OF_REQUEST
    assert parser.feed(GET) == []
    assert parser.feed(b"NOT HTTP\r\n\r\n") == []
    assert not parser.in_head


def test_a_fault_after_plain_requests_keeps_their_events(parser_class: ParserClass) -> None:
    with pytest.raises(BadRequest) as info:
        parser_class().feed(GET + POST + b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n" + GET)
    assert [e.target for e in info.value.events if isinstance(e, RequestHead)] == [b"/a?b=c", b"/p"]
    assert info.value.events[-1] is END_OF_REQUEST


def test_a_body_over_the_limit(parser_class: ParserClass) -> None:
    with pytest.raises(BadRequest) as info:
        parser_class(Limits(body=4)).feed(GET + POST)
    assert info.value.status == 413
    assert len(info.value.events) == 2


@pytest.mark.parametrize(
    "data",
    [
        GET.replace(b"/a?b=c", b"/caf\xc3\xa9"),  # not a URI character
        GET.replace(b"*/*", b"caf\xe9"),  # obs-text
        GET.replace(b"*/*", b"*/* "),  # whitespace after the value
        GET.replace(b"Accept", b"Upgrade"),
        CHUNKED,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET",  # after the last request
        GET.replace(b"GET", b"CONNECT"),  # make_head refuses it: the full path says why
    ],
)
def test_what_the_fast_path_leaves(data: bytes) -> None:
    guard = FramingGuard(Limits())
    assert guard.plain_request(data, 0) is None
    assert not guard.in_head


def test_the_fast_path_waits_for_the_full_path_to_reach_a_boundary() -> None:
    guard = FramingGuard(Limits())
    assert guard.plain_request(GET, 0) is not None
    guard.check(b"GE", lambda data: [])
    assert guard.plain_request(GET, 0) is None  # the guard holds a partial line
