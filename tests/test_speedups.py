"""The compiled module (`interpserve/_speedups.c`) against the Python it replaces: the same
frames, the same events, the same response heads, and the same errors, on generated input.

The rest of the suite runs on the compiled versions where they are built (CI builds them); the
suites of the pure functions (test_wire, test_response, test_default_headers, test_http_grammar,
test_parser_fast_path, test_http_parser) run on both, through conftest.py's `pure_impl`, and a
server started without them answers requests."""

from __future__ import annotations

import os
import random
import sys

import httpx
import pytest
from hpack import Decoder
from hpack.table import HeaderTable
from hypothesis import given, settings
from hypothesis import strategies as st
from support import (
    ROOT,
    SAMPLE_EVENTS,
    bench_responses,
    byte_fields,
    events_strategy,
    header_fields,
    request_ids,
)

from interpserve import events as ev
from interpserve import wire
from interpserve.bench import http1
from interpserve.compiled import speedups
from interpserve.frontend import http2_frames, http2_hpack, http2_rules, http_grammar, response
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.http_rules import Limits
from interpserve.interpreters import Interpreter
from interpserve.testing import ServerProcess
from interpserve.worker import asgi

if os.environ.get("CI") and not os.environ.get("INTERPSERVE_NO_SPEEDUPS"):
    # CI must test the code users get: a build that quietly lost the module would not.
    assert speedups is not None, "interpserve._speedups was not built"

needs_speedups = pytest.mark.skipif(speedups is None, reason="interpserve._speedups not built")
pytestmark = needs_speedups

PY_ENCODE, PY_DECODE = wire.python_encode_parts, wire.python_decode_whole_frames
_response_starts = st.builds(
    ev.ResponseStart,
    request_ids,
    st.integers(min_value=0, max_value=2**16 - 1),
    header_fields,
    st.binary(max_size=100),
    st.booleans(),
    st.booleans(),
)
_websocket_requests = events_strategy.filter(lambda e: isinstance(e, ev.Request)).map(
    lambda request: ev.Request(*[getattr(request, f) for f in request.__slots__][:-1], True)
)
_events = st.one_of(events_strategy, _response_starts, _websocket_requests)


def outcome(call: object, *args: object) -> object:
    """What a call returns, or the type of what it raises."""
    try:
        return call(*args)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)


# Encoding


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=lambda e: type(e).__name__)
def test_every_sample_event_encodes_to_the_same_frame(event: ev.Event) -> None:
    assert speedups.encode_parts(event) == PY_ENCODE(event)


@settings(max_examples=300)
@given(event=_events)
def test_property_the_same_frames(event: ev.Event) -> None:
    assert speedups.encode_parts(event) == PY_ENCODE(event)


@pytest.mark.parametrize(
    "event",
    [
        ev.Request(1, "GÉT", "http", "1.1", b"/", b"", (), None, None, False, False),
        ev.Request(1, "GET", "http", "1.1", b"/\0", b"", (), None, None, False, False),
        ev.Request(1, "GET", "http", "1.1", b"/", b"", ((b"a", b"\0"),), None, None, False, False),
        ev.Request(1, "GET", "http", "1.1", "/", b"", (), None, None, False, False),  # type: ignore[arg-type]
        ev.Request(2**32, "GET", "http", "1.1", b"/", b"", (), None, None, False, False),
        ev.Request(1, "GET", "http", "1.1", b"/", b"", (), ("h", 70000), None, False, False),
        ev.Request(1, "GET", "http", "1.1", b"/", b"", (), ("\udc80", 1), None, False, False),
        ev.ResponseStart(1, 2**16, ()),
        ev.ResponseStart(1, 200, ((b"x", "text"),)),  # type: ignore[arg-type]
        ev.ResponseStart(1, 200, (), "text"),  # type: ignore[arg-type]
        ev.ResponseStart(1, 200, tuple((b"n", b"v") for _ in range(40000))),
    ],
    ids=str,
)
def test_the_same_refusals(event: ev.Event) -> None:
    assert outcome(speedups.encode_parts, event) == outcome(PY_ENCODE, event)
    assert isinstance(outcome(PY_ENCODE, event), type)


def test_bytes_like_fields_are_taken_as_join_takes_them() -> None:
    start = ev.ResponseStart(1, 200, ((bytearray(b"a"), memoryview(b"b")),), bytearray(b"xy"))  # type: ignore[arg-type]
    assert speedups.encode_parts(start) == PY_ENCODE(start)


# Decoding


def decoded(decode: object, data: bytes, offset: int = 0) -> object:
    out: list[ev.Event] = []
    try:
        end = decode(data, offset, out)  # type: ignore[operator]
    except Exception as exc:
        return type(exc), out
    return end, out


@settings(max_examples=300)
@given(events=st.lists(_events, max_size=6), data=st.data())
def test_property_the_same_events_from_a_stream_cut_anywhere(
    events: list[ev.Event], data: st.DataObject
) -> None:
    stream = b"".join(b"".join(PY_ENCODE(event)) for event in events)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)))
    start = data.draw(st.integers(min_value=0, max_value=cut))
    assert decoded(speedups.decode_whole_frames, stream[:cut], start) == decoded(
        PY_DECODE, stream[:cut], start
    )


@settings(max_examples=500)
@given(events=st.lists(_events, min_size=1, max_size=3), data=st.data())
def test_property_the_same_outcome_for_corrupted_frames(
    events: list[ev.Event], data: st.DataObject
) -> None:
    stream = bytearray(b"".join(b"".join(PY_ENCODE(event)) for event in events))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(stream) - 1))
        stream[i] = data.draw(st.integers(min_value=0, max_value=255))
    corrupted = bytes(stream)
    assert decoded(speedups.decode_whole_frames, corrupted) == decoded(PY_DECODE, corrupted)


@given(data=st.binary(max_size=200))
def test_property_the_same_outcome_for_any_bytes(data: bytes) -> None:
    assert decoded(speedups.decode_whole_frames, data) == decoded(PY_DECODE, data)


# The response head

_NAMES = [b"content-length", b"transfer-encoding", b"connection", b"server", b"date", b"x-a"]
_VALUES = [
    b"12", b" 7\t", b"0", b"", b"12a", b"-1", b"1" * 25, b"close", b"Keep-Alive, CLOSE",
    b"keep-alive", b"chunked", b"\xff", b"+5", b"1_0", b"\x0b3\x0c",
]  # fmt: skip
_plan_headers = st.lists(
    st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES) | byte_fields(30)), max_size=6
).map(tuple)
_defaults = st.sampled_from(
    [
        response.DEFAULT_HEADERS,
        response.DefaultHeaders(b"", b""),
        response.DefaultHeaders.build(server_header=True, headers=("x-b: 1", "server: mine")),
    ]
)


@settings(max_examples=500)
@given(
    status=st.sampled_from([100, 101, 200, 204, 304, 404, 599, 999, 1000, -1, 2**70]),
    headers=_plan_headers,
    method=st.sampled_from(["GET", "HEAD", "POST", "head"]),
    http_version=st.sampled_from(["1.1", "1.0"]),
    keep_alive=st.booleans(),
    date=st.sampled_from([b"", b"Sun, 06 Nov 1994 08:49:37 GMT"]),
    defaults=_defaults,
)
def test_property_the_same_response_heads(
    status: int,
    headers: ev.Headers,
    method: str,
    http_version: str,
    keep_alive: bool,
    date: bytes,
    defaults: response.DefaultHeaders,
) -> None:
    args = (status, headers, method, http_version, keep_alive, date, defaults)
    assert outcome(speedups.plan_response, *args) == outcome(response.python_plan_response, *args)


def test_response_head_arguments_by_keyword_and_default() -> None:
    def call(plan: object) -> object:
        return plan(  # type: ignore[operator]
            200, (), http_version="1.0", method="GET", keep_alive=True, date=b""
        )

    assert call(speedups.plan_response) == call(response.python_plan_response)
    with pytest.raises(TypeError):
        speedups.plan_response(200, (), "GET", "1.1", True, b"", bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        speedups.plan_response(200, (), "GET")  # type: ignore[call-arg]


def test_a_digit_limit_on_a_huge_length_is_int_s() -> None:
    args = (200, ((b"content-length", b"9" * 5000),), "GET", "1.1", True, b"")
    assert outcome(speedups.plan_response, *args) == outcome(response.python_plan_response, *args)


# Where it runs


def test_it_loads_in_a_subinterpreter_with_its_own_state() -> None:
    interpreter = Interpreter()
    try:
        interpreter.run(
            "from interpserve import events as ev, wire\n"
            "from interpserve.compiled import speedups\n"
            "assert speedups is not None\n"
            "start = ev.ResponseStart(3, 200, ((b'a', b'b'),), b'x', False, True)\n"
            "assert wire.FrameDecoder().feed(wire.encode(start)) == [start]\n"
        )
    finally:
        interpreter.close()
    # This interpreter's module still has its own set-up.
    start = ev.ResponseStart(4, 201, ())
    assert wire.FrameDecoder().feed(wire.encode(start)) == [start]


def test_the_pure_suites_python_side_binds_every_python_reference(pure_impl: str) -> None:
    """conftest.py's pure_impl: on its "python" side no module of the package still calls a
    compiled function; on its "compiled" side they do."""
    compiled = {id(getattr(speedups, n)) for n in dir(speedups) if not n.startswith(("_", "setup"))}
    package = [m for name, m in sys.modules.items() if name.startswith("interpserve.")]
    bound = [
        f"{module.__name__}.{name}"
        for module in package
        if module is not speedups
        for name, value in vars(module).items()
        if id(value) in compiled
    ]
    if pure_impl == "python":
        assert bound == []
        assert wire.encode_parts is wire.python_encode_parts
        assert response.plan_response is response.python_plan_response
        assert os.environ["INTERPSERVE_NO_SPEEDUPS"] == "1"
    else:
        assert wire.encode_parts is speedups.encode_parts
        assert http_grammar.parse_plain_request is speedups.parse_plain_request
        assert asgi.checked_headers is speedups.checked_headers


@pytest.mark.timeout(60)
def test_a_server_without_them_answers(worker_kind: str) -> None:
    env = {"INTERPSERVE_NO_SPEEDUPS": "1"}
    args = ("--workers", "1", "--worker-kind", worker_kind)
    with ServerProcess("examples.hello:app", *args, env=env, cwd=str(ROOT)) as server:
        reply = httpx.get(server.url + "/", timeout=10)
    assert reply.status_code == 200
    assert reply.content


# The parser's fast path

# Requests mostly in the plain form, and something unusual (the odd ones) in one in sixteen
# of their parts; drawn with weights that hypothesis would not keep, so from a seeded Random.
_TARGET_CHARS = "/aZ09-._~!$&'()*+,;=:@?%"
_ODD_TARGETS = ["*", "http://h/p", "/a#f", "/\xe9", "/a b", "", "/\x00", "/\x7f"]
_METHODS = ["GET", "POST", "HEAD"]
_ODD_METHODS = ["OPTIONS", "CONNECT", "M-SEARCH", "FOO", "get", "G\x80T"]
_VERSIONS = ["HTTP/1.1", "HTTP/1.0"]
_ODD_VERSIONS = ["HTTP/2.0", "HTTP/1.1 ", "HTTP/1.2", "http/1.1"]
# The usual fields, each with values of its kind.
_FIELDS = {
    "Content-Length": ["0", "2", "002", "12"],
    "Connection": ["close", "keep-alive", "Keep-Alive, Close", " upgrade ,close", "x"],
    "Expect": ["100-continue", "100-Continue", "h"],
    "X-Forwarded-For": ["1.2.3.4"],
    "forwarded": ["for=x"],
    "X-A": ["", "a\tb", "\t4", "b  c", "~"],
}
_ODD_NAMES = ["Transfer-Encoding", "Upgrade", "bad name", "", "a:b", "\x80", "X-A ", "host"]
_ODD_VALUES = ["1" * 19, "5 ", "-1", "a ", "\x80", "\x01", "a\rb", "a\nb", "\x7f", "\t", "h"]


def _pick[T](rng: random.Random, usual: list[T], odd: list[T]) -> T:
    return rng.choice(odd if rng.random() < 1 / 16 else usual)


def _random_request(rng: random.Random) -> bytes:
    target = "/" + "".join(rng.choices(_TARGET_CHARS, k=rng.randrange(8)))
    lines = [
        " ".join(
            [
                _pick(rng, _METHODS, _ODD_METHODS),
                _pick(rng, [target], _ODD_TARGETS),
                _pick(rng, _VERSIONS, _ODD_VERSIONS),
            ]
        )
    ]
    if rng.random() < 0.9:
        lines.append("Host: example.com")
    for _ in range(rng.randrange(5)):
        name = _pick(rng, sorted(_FIELDS), _ODD_NAMES)
        colon = _pick(rng, [": "], [":", ":\t", " : "])
        lines.append(name + colon + _pick(rng, _FIELDS.get(name, ["v"]), _ODD_VALUES))
    eol = _pick(rng, ["\r\n"], ["\n", "\r"])
    head = _pick(rng, [""], ["\r\n", "\n"]) + eol.join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + rng.randbytes(rng.randrange(16))


_SMALL_LIMITS = [
    Limits(request_line=20),
    Limits(request_line=5),
    Limits(fields=2),
    Limits(fields=0),
    Limits(field_size=30),
    Limits(field_size=10),
    Limits(body=0),
    Limits(body=1),
]


def test_the_same_plain_requests_on_generated_heads() -> None:
    rng = random.Random(20261201)
    accepted = 0
    for _ in range(20000):
        data = _random_request(rng)
        limits = _pick(rng, [Limits()], _SMALL_LIMITS)
        max_section = _pick(rng, [limits.head], [40])
        for pos in (0, min(3, len(data))):
            args = (data, pos, limits, max_section)
            expected = outcome(http_grammar.python_parse_plain_request, *args)
            assert outcome(speedups.parse_plain_request, *args) == expected, args
            accepted += expected is not None and not isinstance(expected, type)
    assert accepted > 3000  # (the generator makes plain requests, not only faulty ones)


@settings(max_examples=500)
@given(data=st.binary(max_size=80), pos=st.integers(min_value=0, max_value=80))
def test_property_the_same_plain_requests_from_any_bytes(data: bytes, pos: int) -> None:
    limits, section = Limits(), Limits().head
    c = outcome(speedups.parse_plain_request, data, pos, limits, section)
    assert c == outcome(http_grammar.python_parse_plain_request, data, pos, limits, section)


def test_a_plain_request_is_parsed_at_all() -> None:
    data = b"GET /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Forwarded-For: 1\r\n\r\nokGET"
    found = speedups.parse_plain_request(data, 0, Limits(), Limits().head)
    assert found is not None
    assert found == http_grammar.python_parse_plain_request(data, 0, Limits(), Limits().head)
    head, body, end = found
    assert (head.method, head.target, head.has_body, head.forwarded) == ("GET", b"/a?b", True, True)
    assert data[body:end] == b"ok"


# The guard's run over a chunked body's chunks

_CHUNK_EXTENSIONS = [b";a", b";a=b", b';a="q\\"x"', b";", b";a=", b';a="open', b";a b", b";\x80"]


def _now_and_then_cut(rng: random.Random, data: bytes) -> bytes:
    """`data`, cut short at a random point three times in ten: a read that ends mid-way."""
    return data[: rng.randrange(len(data) + 1)] if rng.random() < 0.3 else data


def _random_chunks(rng: random.Random) -> bytes:
    """Chunks as a client would cut them, now and then with a fault or cut short."""
    out = []
    for _ in range(rng.randrange(8)):
        size = rng.choice([0, 1, 2, 3, 16, rng.randrange(1, 300)])
        digits = b"%x" % size
        if rng.random() < 1 / 16:
            digits = rng.choice([b"%X" % size, b"0" * 16 + digits, digits + b" ", b"g", b""])
        extensions = b"".join(rng.choices(_CHUNK_EXTENSIONS, k=rng.randrange(3)))
        crlf = b"\r\n" if rng.random() > 1 / 16 else rng.choice([b"\n", b"\r", b""])
        after = b"\r\n" if rng.random() > 1 / 16 else rng.choice([b"\n", b"", b"x\r\n"])
        out.append(digits + extensions + crlf + rng.randbytes(size) + after)
    data = b"".join(out)
    return _now_and_then_cut(rng, data)


def test_the_same_runs_over_generated_chunks() -> None:
    rng = random.Random(20261202)
    moved = 0
    for _ in range(20000):
        data = _random_chunks(rng)
        crlf_next = rng.random() < 0.3
        data = (b"\r\n" if crlf_next else b"") + data
        args = (
            data,
            rng.choice([0, 0, 0, 1, len(data)]),
            rng.choice([0, 0, 0, 1, 5, 2**64 - 1]),
            crlf_next,
            rng.choice([0, 0, 5]),
            rng.choice([8190, 8190, 3, 0]),
        )
        expected = outcome(http_grammar.python_skip_chunks, *args)
        assert outcome(speedups.skip_chunks, *args) == expected, args
        moved += expected[0] > args[1]  # type: ignore[index]
        # Taking the chunks' data too (the guard taking a body apart), after what `out` held.
        python_out, compiled_out = bytearray(b"held"), bytearray(b"held")
        assert outcome(http_grammar.python_skip_chunks, *args, python_out) == expected
        assert outcome(speedups.skip_chunks, *args, compiled_out) == expected
        assert compiled_out == python_out, args
    assert moved > 5000  # (the generator makes whole chunks, not only faulty ones)


@settings(max_examples=500)
@given(
    data=st.binary(max_size=60) | st.lists(st.sampled_from(list(b'0a;="\\\r\nx \t'))).map(bytes),
    remaining=st.integers(min_value=0, max_value=2**64 - 1),
    crlf_next=st.booleans(),
)
def test_property_the_same_chunk_runs_over_any_bytes(
    data: bytes, remaining: int, crlf_next: bool
) -> None:
    args = (data, 0, remaining, crlf_next, 0, 10)
    assert outcome(speedups.skip_chunks, *args) == outcome(http_grammar.python_skip_chunks, *args)


def test_a_run_of_tiny_chunks_stops_before_the_last_chunk() -> None:
    data = b"1\r\nx\r\n" * 10_000 + b"0\r\n\r\n"
    for skip_chunks in (speedups.skip_chunks, http_grammar.python_skip_chunks):
        out = bytearray()
        assert skip_chunks(data, 0, 0, False, 0, 10, out) == (len(data) - 7, 0, True, 0)
        assert out == b"x" * 10_000


# A worker's check of the app's response headers

_app_names = st.sampled_from([b"Content-Type", b"X-A", b"", b"a:b", b"a\rb", b"\0", b"SET-COOKIE"])
_app_values = st.sampled_from([b"text/plain", b"", b"a\nb", b"\0", b"x:y", b"\xff"])
_app_header = st.tuples(
    _app_names | st.binary(max_size=6) | _app_names.map(bytearray),
    _app_values | st.binary(max_size=6) | _app_values.map(bytearray),
)


@settings(max_examples=500)
@given(raw=st.lists(_app_header | _app_header.map(list), max_size=4))
def test_property_the_same_checked_headers(raw: list[object]) -> None:
    c = outcome(speedups.checked_headers, raw)
    assert c == outcome(asgi.python_checked_headers, raw)
    if isinstance(c, tuple):
        assert [type(name) for name, _ in c] == [type(pair[0]) for pair in raw]  # type: ignore[index]


@pytest.mark.parametrize(
    "raw",
    [
        [(b"a", "text")],
        [("a", b"b")],
        [(1, b"b")],
        [(b"a", b"b", b"c")],
        [(b"a",)],
        [b"ab"],
        None,
        # (its own id: a memoryview's repr names its address, which differs between runs)
        pytest.param([(b"a", memoryview(b"b\n"))], id="[(b'a', memoryview(b'b\\n'))]"),
        [(b"", b"v"), (1, b"v")],
    ],
    ids=repr,
)
def test_the_same_refusals_of_app_headers(raw: object) -> None:
    assert outcome(speedups.checked_headers, raw) == outcome(asgi.python_checked_headers, raw)


@pytest.mark.timeout(60)
def test_an_install_without_them_says_so_once_at_start() -> None:
    # An install made without a C compiler: the import of the module fails.
    hide = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'interpserve._speedups':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "sys.argv[0] = 'interpserve'\n"
        "from interpserve.cli import main\n"
        "main()\n"
    )
    command = [sys.executable, "-c", hide]
    # In this process, which the import hook is in: not under a supervisor, whose serving
    # process would be a fresh interpreter without it.
    args = ("--workers", "1", "--worker-kind", "process", "--no-supervisor")
    with ServerProcess("examples.hello:app", *args, command=command, cwd=str(ROOT)) as server:
        assert httpx.get(server.url + "/", timeout=10).status_code == 200
    assert server.output.count("_speedups is not built") == 1
    with ServerProcess("examples.hello:app", *args, cwd=str(ROOT)) as server:
        assert httpx.get(server.url + "/", timeout=10).status_code == 200
    assert "_speedups" not in server.output


# HTTP/2: HPACK's encoding, the response's header block, the request's head

_H2_NAMES = [
    b":status", b"content-type", b"content-length", b"server", b"date", b"set-cookie",
    b"x-a", b"connection", b"transfer-encoding", b"keep-alive", b"upgrade", b"age", b"",
]  # fmt: skip
_H2_VALUES = [
    b"200", b"404", b"13", b" 13 ", b"1" * 25, b"9" * 5000, b"gzip, deflate", b"", b"text/plain",
    b"\xff\x00", b"a" * 300,
]  # fmt: skip
_h2_fields = st.lists(
    st.tuples(
        st.sampled_from(_H2_NAMES) | st.binary(max_size=20),
        st.sampled_from(_H2_VALUES) | st.binary(max_size=40),
    ),
    max_size=8,
)


@settings(max_examples=500)
@given(fields=_h2_fields)
def test_property_the_same_header_blocks(fields: list[tuple[bytes, bytes]]) -> None:
    assert speedups.encode_fields(fields) == http2_hpack.python_encode_fields(fields)


def test_header_blocks_of_every_byte_and_every_static_entry() -> None:
    """Each byte's Huffman code (alone and after others, at every bit offset), every entry
    of the static table, and integers past their prefix (a name index of 15 and more, a
    string of 127 bytes and more)."""
    fields = [(bytes([b]), bytes([b]) * n) for b in range(256) for n in (1, 3, 7, 130)]
    fields += list(HeaderTable.STATIC_TABLE)
    fields += [(name, b"other") for name, _ in HeaderTable.STATIC_TABLE]
    for field in fields:
        assert speedups.encode_fields([field]) == http2_hpack.python_encode_fields([field])
    assert speedups.encode_fields(fields) == http2_hpack.python_encode_fields(fields)
    decoder = Decoder()
    decoder.max_header_list_size = 1 << 20
    assert decoder.decode(http2_hpack.StaticEncoder().encode(fields), raw=True) == fields


@pytest.mark.parametrize(
    "fields", [[("a", "b")], [(b"a", "b")], [(b"a",)], [(b"a", b"b", b"c")], [None], [(b"a", 1)]]
)
def test_the_same_refusals_of_fields(fields: object) -> None:
    assert outcome(speedups.encode_fields, fields) == outcome(
        http2_hpack.python_encode_fields, fields
    )


@settings(max_examples=500)
@given(
    status=st.sampled_from([100, 103, 200, 204, 206, 304, 404, 599, 1000, -1, 2**70]),
    headers=_h2_fields.map(tuple),
    method=st.sampled_from(["GET", "HEAD", "POST", "head"]),
    date=st.sampled_from([b"", b"Sun, 06 Nov 1994 08:49:37 GMT"]),
    defaults=_defaults,
)
def test_property_the_same_response_blocks(
    status: int, headers: ev.Headers, method: str, date: bytes, defaults: response.DefaultHeaders
) -> None:
    args = (status, headers, method, date, defaults)
    assert outcome(speedups.response_block, *args) == outcome(
        http2_rules.python_response_block, *args
    )


def test_response_blocks_asked_again_are_the_reference_s() -> None:
    """The compiled response_block keeps its last answers and gives them again for equal
    arguments: asked again with equal objects (not the same ones), after more answers than it
    keeps, and with one argument changed at a time (the method, the date, the status, a value,
    the defaults, fields as lists), it answers as the reference does."""
    date = b"Sun, 06 Nov 1994 08:49:37 GMT"

    def case(size: int = 3, **changes: object) -> tuple[object, ...]:
        headers = ((b"content-type", b"text/plain"), (b"content-length", b"%d" % size))
        args = {"status": 200, "headers": headers, "method": "GET", "date": bytes(date)}
        args["defaults"] = response.DEFAULT_HEADERS
        args.update(changes)
        return tuple(args.values())

    cases = [case(size) for size in range(12)]
    cases += [case(method="HEAD"), case(date=b""), case(date=date[:-3] + b"UTC"), case(status=204)]
    cases += [case(defaults=response.DefaultHeaders(b"", b"")), case(status=True)]
    cases += [case(headers=[[b"content-length", b"3"]]), case(headers=((b"a", bytearray(b"b")),))]
    for _ in range(3):
        for args in [*cases, case()]:
            assert outcome(speedups.response_block, *args) == outcome(
                http2_rules.python_response_block, *args
            )


_PSEUDO = {
    b":method": [b"GET", b"POST", b"OPTIONS", b"CONNECT", b"", b"G\xffT", b"get"],
    b":scheme": [b"https", b"http", b""],
    b":path": [b"/", b"/a?b=c", b"*", b"", b"a", b"/\x00 x"],
    b":authority": [b"example.com", b"h:1", b""],
}
_ODD_PSEUDO = [b":status", b":protocol", b":", b":Method"]
_REQUEST_FIELDS = {
    b"user-agent": [b"h2load", b"curl/8"],
    b"accept": [b"*/*", b""],
    b"cookie": [b"a=1", b"b=2", b""],
    b"host": [b"example.com", b"other"],
    b"content-length": [b"0", b"5", b"05", b"18", b"", b"-1", b"1" * 19, b"1" * 18, b"5 "],
    b"expect": [b"100-continue", b"100-Continue", b"nothing"],
    b"te": [b"trailers", b"TRAILERS", b"gzip"],
    b"x-forwarded-for": [b"10.0.0.1"],
    b"forwarded": [b"for=x"],
    b"x-a": [b"v", b"a b", b"\tv", b"v ", b"a\rb", b"a\nb", b"a\x00b", b"\xff", b"\x7f"],
}
_ODD_FIELD_NAMES = [
    b"Host", b"X-A", b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
    b"upgrade", b"bad name", b"", b"a:b", b"\x80", b"x{",
]  # fmt: skip


def _random_request_fields(rng: random.Random) -> list[tuple[bytes, bytes]]:
    """A decoded HTTP/2 request header list as a client sends it, now and then with a fault:
    pseudo-headers missing, repeated, unknown or late; fields invalid or HTTP/1.1's."""
    pseudo = [(name, rng.choice(values[:2])) for name, values in _PSEUDO.items()]
    if rng.random() < 1 / 8:
        pseudo = [(name, rng.choice(_PSEUDO[name])) for name, _ in pseudo]
    if rng.random() < 1 / 16:
        del pseudo[rng.randrange(len(pseudo))]
    if rng.random() < 1 / 16:
        pseudo.append(rng.choice(pseudo) if rng.random() < 0.5 else (rng.choice(_ODD_PSEUDO), b"x"))
    fields = []
    for _ in range(rng.randrange(6)):
        name = _pick(rng, sorted(_REQUEST_FIELDS), _ODD_FIELD_NAMES)
        fields.append((name, rng.choice(_REQUEST_FIELDS.get(name, [b"v"]))))
    if rng.random() < 1 / 16 and fields:
        fields.insert(rng.randrange(len(fields)), rng.choice(pseudo))
    return pseudo + fields


def test_the_same_request_heads_on_generated_fields() -> None:
    rng = random.Random(20261202)
    accepted = 0
    for _ in range(20000):
        fields = _random_request_fields(rng)
        end_stream = rng.random() < 0.5
        limits = _pick(rng, [Limits()], _SMALL_LIMITS)
        expected = http2_rules.python_accepted_head(fields, end_stream, limits)
        assert speedups.accepted_head(fields, end_stream, limits) == expected, fields
        accepted += expected is not None
    assert 5000 < accepted < 19000  # (both kinds, from the generator)


@settings(max_examples=500)
@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from([*_PSEUDO, *_ODD_PSEUDO, *_REQUEST_FIELDS, *_ODD_FIELD_NAMES])
            | st.binary(max_size=8),
            st.sampled_from(
                [v for vs in (*_PSEUDO.values(), *_REQUEST_FIELDS.values()) for v in vs]
            )
            | st.binary(max_size=8),
        ),
        max_size=10,
    ),
    end_stream=st.booleans(),
)
def test_property_the_same_request_heads(
    fields: list[tuple[bytes, bytes]], end_stream: bool
) -> None:
    limits = Limits()
    expected = http2_rules.python_accepted_head(fields, end_stream, limits)
    assert speedups.accepted_head(fields, end_stream, limits) == expected


def test_a_request_head_is_accepted_at_all() -> None:
    fields = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", b"/a?b"),
        (b":authority", b"h"),
        (b"cookie", b"a=1"),
        (b"content-length", b"2"),
        (b"cookie", b"b=2"),
        (b"x-forwarded-for", b"1"),
    ]
    head = speedups.accepted_head(fields, False, Limits())
    assert head == http2_rules.python_accepted_head(fields, False, Limits())
    assert head is not None
    assert (head.method, head.target, head.http_version, head.has_body) == (
        "POST",
        b"/a?b",
        "2",
        True,
    )
    assert head.headers == [
        (b"host", b"h"),
        (b"content-length", b"2"),
        (b"x-forwarded-for", b"1"),
        (b"cookie", b"a=1; b=2"),
    ]
    assert head.forwarded


# HTTP/2's frame splitting


def _random_frames(rng: random.Random) -> bytes:
    """A read's worth of HTTP/2 frames: types and flags of any value, stream ids with and
    without the reserved bit, payloads up to a little over the sizes tried; often cut short."""
    out = []
    for _ in range(rng.choice([0, 1, 2, 5, 32])):
        size = rng.choice([0, 0, 4, 8, 9, 100, 16384, 16385, 70000])
        stream_id = rng.choice([0, 1, 3, 2**31 - 1, 2**31 + 1, 2**32 - 1])
        header = size.to_bytes(3, "big") + bytes((rng.randrange(256), rng.randrange(256)))
        out.append(header + stream_id.to_bytes(4, "big") + rng.randbytes(size))
    data = b"".join(out)
    return _now_and_then_cut(rng, data)


def test_the_same_frames_split_from_generated_reads() -> None:
    rng = random.Random(20261203)
    split = 0
    for _ in range(5000):
        data = _random_frames(rng)
        max_size = rng.choice([16384, 16384, 2**24 - 1, 0, 100])
        expected = outcome(http2_frames.python_split_frames, data, max_size)
        assert outcome(speedups.split_frames, data, max_size) == expected, (data[:40], max_size)
        split += len(expected[0])  # type: ignore[index]
    assert split > 5000  # (the generator makes whole frames, not only cut ones)


@settings(max_examples=500)
@given(data=st.binary(max_size=80), max_size=st.sampled_from([0, 5, 16384, 2**24 - 1]))
def test_property_the_same_frames_split_from_any_bytes(data: bytes, max_size: int) -> None:
    expected = outcome(http2_frames.python_split_frames, data, max_size)
    assert outcome(speedups.split_frames, data, max_size) == expected


# What the compiled functions build by position

POSITIONAL_FIELDS = {
    RequestHead: [
        "method",
        "target",
        "http_version",
        "headers",
        "keep_alive",
        "expect_continue",
        "has_body",
        "upgrade",
        "forwarded",
    ],
    ev.Request: [
        "request_id",
        "method",
        "scheme",
        "http_version",
        "raw_path",
        "query_string",
        "headers",
        "client",
        "server",
        "more_body",
        "expect_continue",
        "websocket",
    ],
    ev.ResponseStart: ["request_id", "status", "headers", "body", "more_body", "finished"],
    response.ResponsePlan: ["head", "framing", "content_length", "keep_alive"],
}


@pytest.mark.parametrize("cls", POSITIONAL_FIELDS, ids=lambda cls: cls.__name__)
def test_the_fields_built_by_position(cls: type) -> None:
    """_speedups.c builds these by position, as their Python makers do: a field added, moved
    or removed must be changed there too (and then here)."""
    assert list(cls.__match_args__) == POSITIONAL_FIELDS[cls]


# The load generator's fast path


@settings(max_examples=1000)
@given(data=bench_responses)
def test_property_whole_response_the_same(data: bytes) -> None:
    assert speedups.whole_response(data) == http1.python_whole_response(data)


# Giving memory back (memory.py): not a pure function, so only what both say of it.


def test_malloc_trim_answers_like_its_reference() -> None:
    from interpserve import memory

    assert type(speedups.malloc_trim()) is type(memory.python_malloc_trim())


def test_set_malloc_thresholds_answers_like_its_reference() -> None:
    from interpserve import memory

    args = (memory.MMAP_LEAST, memory.TRIM_LEAST)  # (what the server sets: harmless here)
    assert speedups.set_malloc_thresholds(*args) == memory.python_set_malloc_thresholds(*args)
    with pytest.raises(TypeError):
        speedups.set_malloc_thresholds("1")  # type: ignore[arg-type]
