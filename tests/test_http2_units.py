"""HTTP/2's pure parts and its connection in memory: the request and response rules, the flood
meters on a controllable clock, the bounded header block, and the session's bounded slices
on a fake transport (no socket, no worker). The protocol's state machine against h2's is
tests/test_http2_differential.py."""

from __future__ import annotations

import asyncio
import gc
import random
import struct
import weakref
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from support import connection, receive

from interpserve import events as ev
from interpserve.config import Config
from interpserve.errors import BadRequest, HTTP2ConnectionError, MalformedRequest
from interpserve.frontend.http2 import CLOSED_STREAMS_KEPT, SLICE, HTTP2Session, new_connection
from interpserve.frontend.http2_events import RequestReceived
from interpserve.frontend.http2_frames import (
    DATA,
    HEADERS,
    MAX_FRAME_SIZE_LIMIT,
    PREFACE,
    ErrorCode,
    split_frames,
)
from interpserve.frontend.http2_guard import FloodMeter
from interpserve.frontend.http2_hpack import CachingDecoder, StaticEncoder
from interpserve.frontend.http2_rules import (
    H2Framing,
    request_head,
    response_fields,
)
from interpserve.frontend.http_rules import Limits
from interpserve.frontend.response import DefaultHeaders

# On the compiled functions and on their Python references (conftest.py's pure_impl).
pytestmark = pytest.mark.usefixtures("pure_impl")

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a?b=1"), (b":authority", b"h")]


# Requests -----------------------------------------------------------------------------------


def test_a_request_head_from_its_fields() -> None:
    fields = [*BASE, (b"cookie", b"a=1"), (b"x-y", b"z"), (b"cookie", b"b=2")]
    head = request_head(fields, end_stream=True, limits=Limits())
    assert (head.method, head.target, head.http_version) == ("GET", b"/a?b=1", "2")
    assert head.headers == [(b"host", b"h"), (b"x-y", b"z"), (b"cookie", b"a=1; b=2")]
    assert not head.has_body and head.keep_alive and not head.expect_continue


def test_a_body_and_100_continue() -> None:
    fields = [*BASE, (b"expect", b"100-continue"), (b"x-forwarded-for", b"1.2.3.4")]
    head = request_head(fields, end_stream=False, limits=Limits())
    assert head.has_body and head.expect_continue and head.forwarded


@pytest.mark.parametrize(
    "fields",
    [
        [*BASE, (b"connection", b"close")],
        [*BASE, (b"keep-alive", b"5")],
        [*BASE, (b"proxy-connection", b"x")],
        [*BASE, (b"transfer-encoding", b"chunked")],
        [*BASE, (b"upgrade", b"h2c")],
        [*BASE, (b"te", b"gzip")],
        [*BASE, (b"Upper", b"1")],
        [*BASE, (b"x", b" padded")],
        [*BASE, (b"x", b"a\0b")],
        [*BASE, (b"host", b"other")],
        [BASE[0], BASE[1], BASE[2], (b"host", b"a"), (b"host", b"a")],
        [*BASE, (b"content-length", b"1x")],
        [(b"x", b"1"), *BASE],
        [(b"cookie", b"a=1"), *BASE],
        [*BASE, (b":method", b"GET")],
        [*BASE, (b":status", b"200")],
        BASE[1:],
        [BASE[0], BASE[2]],
        [BASE[0], BASE[1], (b":path", b"")],
        [BASE[0], BASE[1], (b":path", b"a")],
    ],
)
def test_malformed_requests(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MalformedRequest):
        request_head(fields, end_stream=True, limits=Limits())


def test_te_trailers_and_options_star_are_allowed() -> None:
    request_head([*BASE, (b"te", b"trailers")], end_stream=True, limits=Limits())
    fields = [(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":path", b"*")]
    assert request_head(fields, end_stream=True, limits=Limits()).target == b"*"


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ([*BASE, *[(b"x-%d" % i, b"1") for i in range(3)]], 431),
        ([*BASE, (b"x", b"y" * 100)], 431),
        ([*BASE, (b"content-length", b"5000")], 413),
        (
            [
                (b":method", b"CONNECT"),
                (b":authority", b"h:443"),
                (b":scheme", b"h"),
                (b":path", b"/"),
            ],
            501,
        ),
        ([(b":method", b"CONNECT"), (b":authority", b"h:443")], 501),  # §8.5's form
        ([BASE[0], BASE[1], (b":path", b"/" + b"a" * 200)], 414),
    ],
)
def test_limits_answer_like_http_1_1(fields: list[tuple[bytes, bytes]], status: int) -> None:
    limits = Limits(request_line=100, fields=2, field_size=50, body=1000)
    with pytest.raises(BadRequest) as caught:
        request_head(fields, end_stream=False, limits=limits)
    assert caught.value.status == status


# Responses ----------------------------------------------------------------------------------


def test_response_fields() -> None:
    headers = ((b"content-length", b"5"), (b"connection", b"close"), (b"transfer-encoding", b"x"))
    defaults = DefaultHeaders.build(server_header=True, headers=("x-a:b",))
    fields, framing, length = response_fields(200, headers, "GET", b"D", defaults)
    assert fields == [
        (b":status", b"200"),
        (b"content-length", b"5"),
        (b"server", b"interpserve"),
        (b"x-a", b"b"),
        (b"date", b"D"),
    ]
    assert (framing, length) == (H2Framing.LENGTH, 5)


@pytest.mark.parametrize(
    ("status", "method", "framing"),
    [(200, "GET", H2Framing.STREAM), (200, "HEAD", H2Framing.NONE), (204, "GET", H2Framing.NONE),
     (304, "GET", H2Framing.NONE)],
)  # fmt: skip
def test_response_framing(status: int, method: str, framing: H2Framing) -> None:
    headers = ((b"server", b"app"), (b"date", b"mine"))
    fields, got, _ = response_fields(status, headers, method, b"D", DefaultHeaders())
    assert got is framing
    assert [name for name, _ in fields] == [b":status", b"server", b"date"]  # the app's own


def test_no_content_length_where_no_body_is_allowed() -> None:
    fields, framing, length = response_fields(
        204, ((b"content-length", b"3"),), "GET", b"", DefaultHeaders(b"")
    )
    assert (fields, framing, length) == ([(b":status", b"204")], H2Framing.NONE, -1)


# Guards -------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_flood_meter_overflows_and_drains_with_time() -> None:
    clock = Clock()
    meter = FloodMeter(10, 5.0, clock)
    assert not any(meter.add() for _ in range(10))
    assert meter.add()  # the 11th at once
    clock.now += 1.0  # 5 drained
    assert not any(meter.add() for _ in range(4))
    assert meter.add()


def test_flood_meter_relieved_by_answers() -> None:
    meter = FloodMeter(3, 0.0, Clock())
    for _ in range(3):
        assert not meter.add()
        meter.relieve()
    assert not any(meter.add() for _ in range(3))
    assert meter.add()


def _client_frames(*frames: Any) -> bytes:
    return PREFACE + b"".join(frame.serialize() for frame in frames)


def _bounded_connection(max_block: int) -> Any:
    server = new_connection(Config(http2_max_header_list_size=max_block))
    server.initiate()
    return server


def test_a_header_block_is_bounded_before_it_is_complete() -> None:
    server = _bounded_connection(max_block=1000)
    events = server.receive(_client_frames(SettingsFrame(0), HeadersFrame(1, data=b"a" * 600)))
    assert events[1:] == []  # no END_HEADERS: held for its CONTINUATION frames
    assert server.receive(ContinuationFrame(1, data=b"b" * 300).serialize()) == []
    with pytest.raises(HTTP2ConnectionError) as raised:
        server.receive(ContinuationFrame(1, data=b"c" * 300).serialize())
    assert raised.value.code == ErrorCode.ENHANCE_YOUR_CALM


def test_a_header_block_within_the_bound_is_whole() -> None:
    server = _bounded_connection(max_block=1000)
    fields = [*BASE, (b"x-long", b"v" * 580)]
    block = Encoder().encode(fields, huffman=False)
    headers = HeadersFrame(1, data=block[:600], flags=["END_STREAM"])
    events = server.receive(
        _client_frames(
            SettingsFrame(0), headers, ContinuationFrame(1, data=block[600:], flags=["END_HEADERS"])
        )
    )
    assert events[1:] == [RequestReceived(1, fields, True)]


# The session on a fake transport (and a fake worker: test_windows.py's) -------------------


def _server_frames(data: bytes) -> list[Any]:
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    return client.receive_data(data)


def _count(written: bytearray, kind: str) -> int:
    return sum(type(event).__name__ == kind for event in _server_frames(bytes(written)))


async def test_one_connection_holds_the_loop_for_a_slice_at_a_time() -> None:
    conn, transport, _ = connection()
    # SETTINGS frames of a thousand entries each: few frames, many slices' worth of bytes.
    payload = struct.pack("!HL", 2, 0) * 1000
    big = struct.pack("!L", len(payload))[1:] + b"\x04\x00" + b"\x00" * 4 + payload
    count = 3 * SLICE // len(big) + 1
    conn.data_received(_client_frames(SettingsFrame(0)) + big * count)
    assert isinstance(conn._session, HTTP2Session)
    # The first slice now (the client's own SETTINGS, and the big ones it holds whole) ...
    assert 0 < _count(transport.written, "SettingsAcknowledged") <= SLICE // len(big) + 1
    assert not transport.reading  # ... and nothing more is read meanwhile
    for _ in range(10):
        await asyncio.sleep(0)
    assert _count(transport.written, "SettingsAcknowledged") == count + 1 and transport.reading


async def test_shutdown_sends_goaway_and_closes_an_idle_connection() -> None:
    conn, transport, _ = connection()
    conn.data_received(_client_frames(SettingsFrame(0)))
    conn.shutdown()
    events = _server_frames(bytes(transport.written))
    terminated = [e for e in events if type(e).__name__ == "ConnectionTerminated"]
    assert terminated and terminated[0].error_code == 0 and terminated[0].last_stream_id == 0
    assert transport.closed


def _upload(stream_id: int, size: int) -> list[Any]:
    encoder = Encoder()
    fields = [(":method", "POST"), (":scheme", "http"), (":path", "/up"), (":authority", "a")]
    headers = HeadersFrame(stream_id, data=encoder.encode(fields), flags=["END_HEADERS"])
    return [headers, *(DataFrame(stream_id, data=b"x" * 16384) for _ in range(size // 16384))]


async def test_request_bodies_are_held_under_the_budget() -> None:
    limit = 64 * 1024
    conn, transport, channel = connection(limit_buffers=limit)
    budget = conn.state.budget
    # Eight uploads whose apps receive nothing yet: each worker takes its first window, and
    # the rest waits in the front end, counted, until the budget is spent.
    frames = [SettingsFrame(0)] + [f for i in range(1, 17, 2) for f in _upload(i, 48 * 1024)]
    await receive(conn, transport, _client_frames(*frames))
    assert not transport.reading
    assert limit <= budget.held <= limit + SLICE + 48 * 1024
    held = budget.held
    # The apps receive what their workers have: the budget has room again, and reading resumes.
    for cycle in channel.sinks.values():
        cycle.on_credit(ev.BODY_WINDOW_MIN)
    assert budget.held < held and transport.reading
    conn.connection_lost(None)
    assert budget.held == 0


async def test_response_bytes_waiting_for_the_client_are_in_the_budget() -> None:
    conn, transport, channel = connection()
    budget = conn.state.budget
    encoder = Encoder()
    fields = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]
    get = HeadersFrame(1, data=encoder.encode(fields), flags=["END_HEADERS", "END_STREAM"])
    shut = SettingsFrame(0, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    conn.data_received(_client_frames(shut, get))
    (cycle,) = channel.sinks.values()
    cycle.on_response_start(200, [])
    cycle.on_response_body(b"y" * 10_000, True)
    await asyncio.sleep(0)
    assert budget.held == 10_000  # the client's window is shut: the bytes wait, counted
    conn.data_received(WindowUpdateFrame(1, window_increment=10_000).serialize())
    await asyncio.sleep(0)
    assert budget.held == 0
    frames, _, _ = split_frames(bytes(transport.written), MAX_FRAME_SIZE_LIMIT)
    assert sum(len(payload) for kind, _, _, payload in frames if kind == DATA) == 10_000


def _get(stream_id: int, encoder: Encoder) -> HeadersFrame:
    fields = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]
    return HeadersFrame(stream_id, data=encoder.encode(fields), flags=["END_HEADERS", "END_STREAM"])


async def test_a_whole_small_response_leaves_as_headers_and_one_data_frame() -> None:
    conn, transport, channel = connection()
    encoder = Encoder()
    conn.data_received(_client_frames(SettingsFrame(0), _get(1, encoder)))
    (cycle,) = channel.sinks.values()
    transport.take()
    cycle.on_response_start(200, [(b"content-length", b"2")])
    cycle.on_response_body(b"ok", False)
    await asyncio.sleep(0)
    frames, _, _ = split_frames(transport.take(), MAX_FRAME_SIZE_LIMIT)
    assert [(kind, flags) for kind, flags, _, _ in frames] == [(HEADERS, 0x4), (DATA, 0x1)]
    assert frames[1][3] == b"ok"
    # A start without its body: its HEADERS go at the end of the worker's batch, alone.
    conn.data_received(_get(3, encoder).serialize())
    cycle = channel.sinks[2]
    cycle.on_response_start(200, [])
    cycle.flush_head()
    cycle.on_response_body(b"more", True)
    cycle.on_response_body(b"", False)
    await asyncio.sleep(0)
    frames, _, _ = split_frames(transport.take(), MAX_FRAME_SIZE_LIMIT)
    assert [(kind, flags, payload) for kind, flags, _, payload in frames] == [
        (HEADERS, 0x4, frames[0][3]),
        (DATA, 0x1, b"more"),  # (the end came before the window was used: it goes with it)
    ]


async def test_a_finished_stream_is_freed_without_the_garbage_collector() -> None:
    conn, _, channel = connection()
    conn.data_received(_client_frames(SettingsFrame(0), _get(1, Encoder())))
    session = conn._session
    assert isinstance(session, HTTP2Session)
    stream = weakref.ref(session._streams[1])
    cycle = weakref.ref(channel.sinks[1])
    gc.disable()
    try:
        channel.sinks[1].on_response_start(200, [])
        channel.sinks[1].on_response_body(b"ok", False)
        channel.sinks.pop(1).on_finished()  # (the channel forgets it, as the pool's does)
        await asyncio.sleep(0)
        assert stream() is None and cycle() is None
    finally:
        gc.enable()


# HPACK --------------------------------------------------------------------------------------


def test_the_static_encoder_is_decoded_by_any_decoder() -> None:
    encoder, decoder = StaticEncoder(), Decoder()
    fields = [
        (b":status", b"200"),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"13"),
        (b"x-custom", b"\xff\x00 value"),
        (b"date", b"Tue, 01 Dec 2026 22:39:42 GMT"),
    ]
    first = encoder.encode(fields)
    assert first.startswith(b"\x20")  # the table size update, in the first block only
    assert decoder.decode(first, raw=True) == fields
    assert decoder.decode(encoder.encode(fields), raw=True) == fields
    assert decoder.decode(encoder.encode(fields[1:2]), raw=True) == fields[1:2]
    assert len(decoder.header_table.dynamic_entries) == 0


def test_the_caching_decoder_decodes_as_hpack_does() -> None:
    """Blocks that add to the table, index it, resize it and evict from it, in many orders:
    the caching decoder's answers are the plain decoder's."""
    rng = random.Random(20)
    values = [(b"x-%d" % i, b"v" * rng.randrange(1, 300)) for i in range(40)]
    encoder, plain, caching = Encoder(), Decoder(), CachingDecoder()
    for round_ in range(400):
        if round_ % 97 == 50:
            encoder.header_table_size = rng.choice([0, 256, 4096])
        fields = [(b":method", b"GET"), *rng.sample(values, rng.randrange(1, 6))]
        block = encoder.encode(fields)
        assert caching.decode(block, raw=True) == plain.decode(block, raw=True) == fields
        again = encoder.encode(fields)  # indexed now, most often: the same bytes again
        assert caching.decode(again, raw=True) == plain.decode(again, raw=True) == fields


def test_a_long_lived_connection_remembers_a_bounded_number_of_closed_streams() -> None:
    server = new_connection(Config())
    server.initiate()
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    server.receive(client.data_to_send())
    request = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]
    for stream_id in range(1, 2 * (CLOSED_STREAMS_KEPT + 500), 2):
        client.send_headers(stream_id, request, end_stream=True)
        server.receive(client.data_to_send())
        server.send_headers(stream_id, [(b":status", b"204")], end_stream=True)
        client.receive_data(server.data_to_send())
    assert server.open_streams == 0
    assert len(server._closed) <= CLOSED_STREAMS_KEPT  # (the connection's record of them)
