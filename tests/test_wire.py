"""The wire format: every event survives encode() and FrameDecoder.feed(), whatever the reads."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import SAMPLE_EVENTS, U32, events_strategy, make_request

from interpserve import events as ev
from interpserve import wire
from interpserve.errors import WireError
from interpserve.wire import HEADER_SIZE, MAX_PAYLOAD, FrameDecoder, encode

# On the compiled functions and on their Python references (conftest.py's pure_impl).
pytestmark = pytest.mark.usefixtures("pure_impl")


def roundtrip(event: ev.Event) -> list[ev.Event]:
    return FrameDecoder().feed(encode(event))


def feed_in_pieces(stream: bytes, cuts: list[int]) -> list[ev.Event]:
    decoder = FrameDecoder()
    out: list[ev.Event] = []
    previous = 0
    for cut in [*sorted(cuts), len(stream)]:
        out += decoder.feed(stream[previous:cut])
        previous = cut
    assert decoder.pending == 0
    return out


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: ev.Event) -> None:
    assert roundtrip(event) == [event]


def test_every_event_type_is_covered() -> None:
    covered = {type(event) for event in SAMPLE_EVENTS}
    assert covered == set(ev.Event.__args__)


def test_frame_header_layout() -> None:
    frame = encode(ev.ResponseBody(0x01020304, b"abc", True))
    assert HEADER_SIZE == 9
    assert frame == struct.pack("!BII", wire.RESPONSE_BODY, 0x01020304, 3) + b"abc"
    end = encode(ev.ResponseBody(5, b"abc", False))
    assert end[0] == wire.RESPONSE_BODY_END


def test_body_payload_is_not_re_encoded() -> None:
    data = bytes(range(256)) * 4
    assert encode(ev.RequestBody(9, data, True)) == struct.pack("!BII", 2, 9, len(data)) + data


def test_encode_rejects_non_events() -> None:
    with pytest.raises(TypeError):
        encode("not an event")  # type: ignore[arg-type]


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    stream = b"".join(encode(event) for event in SAMPLE_EVENTS)
    decoder = FrameDecoder()
    out: list[ev.Event] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == SAMPLE_EVENTS
    assert decoder.pending == 0


def test_whole_stream_in_one_feed() -> None:
    stream = b"".join(encode(event) for event in SAMPLE_EVENTS)
    decoder = FrameDecoder()
    assert decoder.feed(stream) == SAMPLE_EVENTS
    assert decoder.pending == 0


def test_interleaved_requests_decode_in_order() -> None:
    events: list[ev.Event] = [
        make_request(1),
        make_request(2, method="PUT"),
        ev.RequestBody(1, b"a1", True),
        ev.RequestBody(2, b"b1", True),
        ev.Credit(1, 2),
        ev.RequestBody(1, b"a2", False),
        ev.ResponseStart(2, 201, ()),
        ev.RequestBody(2, b"b2", False),
        ev.Disconnect(1),
        ev.ResponseBody(2, b"done", False),
        ev.RequestFinished(1),
        ev.RequestFinished(2),
    ]
    stream = b"".join(encode(event) for event in events)
    assert feed_in_pieces(stream, [5, 17, 40, 41, 100]) == events
    per_request = [e for e in FrameDecoder().feed(stream) if getattr(e, "request_id", 0) == 2]
    assert [type(e).__name__ for e in per_request] == [
        "Request",
        "RequestBody",
        "ResponseStart",
        "RequestBody",
        "ResponseBody",
        "RequestFinished",
    ]


def test_huge_body_frame_round_trips() -> None:
    data = bytes(range(251)) * (5 * 1024 * 1024 // 251 + 1)
    assert len(data) > 5 * 1024 * 1024
    event = ev.ResponseBody(4, data, False)
    frame = encode(event)
    decoder = FrameDecoder()
    assert decoder.feed(frame[: len(frame) // 2]) == []
    assert decoder.pending == len(frame) // 2
    assert decoder.feed(frame[len(frame) // 2 :]) == [event]
    assert decoder.pending == 0


def test_huge_body_in_many_reads() -> None:
    data = b"x" * (5 * 1024 * 1024)
    frame = encode(ev.RequestBody(1, data, True))
    decoder = FrameDecoder()
    out: list[ev.Event] = []
    for start in range(0, len(frame), 65536):
        out += decoder.feed(frame[start : start + 65536])
    assert out == [ev.RequestBody(1, data, True)]


def test_partial_header_stays_pending() -> None:
    frame = encode(ev.Credit(3, 100))
    decoder = FrameDecoder()
    assert decoder.pending == 0
    assert decoder.feed(frame[:4]) == []
    assert decoder.pending == 4
    assert decoder.feed(frame[4:HEADER_SIZE]) == []
    assert decoder.pending == HEADER_SIZE
    assert decoder.feed(frame[HEADER_SIZE:]) == [ev.Credit(3, 100)]
    assert decoder.pending == 0


def test_partial_payload_stays_pending() -> None:
    first = encode(ev.RequestFinished(1))
    second = encode(make_request(2))
    decoder = FrameDecoder()
    assert decoder.feed(first + second[:-1]) == [ev.RequestFinished(1)]
    assert decoder.pending == len(second) - 1
    assert decoder.feed(b"") == []
    assert decoder.pending == len(second) - 1
    assert decoder.feed(second[-1:]) == [make_request(2)]
    assert decoder.pending == 0


def test_empty_feed() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.pending == 0


UNKNOWN_KINDS = [0, max(wire._DECODERS) + 1, 200, 255]


@pytest.mark.parametrize("kind", UNKNOWN_KINDS)
def test_unknown_frame_type_raises(kind: int) -> None:
    with pytest.raises(WireError, match="unknown frame type"):
        FrameDecoder().feed(struct.pack("!BII", kind, 1, 2) + b"ab")


def test_unknown_frame_type_after_good_frames_raises() -> None:
    stream = encode(ev.WorkerReady()) + struct.pack("!BII", 255, 0, 0)
    with pytest.raises(WireError):
        FrameDecoder().feed(stream)


@pytest.mark.parametrize("length", [MAX_PAYLOAD + 1, U32])
def test_oversized_length_raises_before_the_payload_arrives(length: int) -> None:
    with pytest.raises(WireError, match="too large"):
        FrameDecoder().feed(struct.pack("!BII", wire.RESPONSE_BODY, 1, length))


def test_max_payload_length_is_accepted_and_pending() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(struct.pack("!BII", wire.RESPONSE_BODY, 1, MAX_PAYLOAD)) == []
    assert decoder.pending == HEADER_SIZE


def frame(kind: int, payload: bytes, request_id: int = 1) -> bytes:
    return struct.pack("!BII", kind, request_id, len(payload)) + payload


def fields(*values: bytes) -> bytes:
    return b"".join(struct.pack("!I", len(v)) + v for v in values)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(wire.REQUEST, b"\x00\x00"), id="request-shorter-than-fixed-part"),
        pytest.param(
            frame(wire.REQUEST, b"\x00\x00\x00\x00\x00" + fields(b"GET", b"http")),
            id="request-lacks-fields",
        ),
        pytest.param(
            frame(
                wire.REQUEST,
                b"\x00\x00\x00\x00\x00"
                + fields(b"GET", b"http", b"1.1", b"/", b"", b"", b"", b"odd"),
            ),
            id="request-odd-headers",
        ),
        pytest.param(
            frame(wire.REQUEST, b"\x00\x00\x00\x00\x00" + fields(b"GET") + b"\x00\x00"),
            id="truncated-field-length",
        ),
        pytest.param(
            frame(wire.REQUEST, b"\x00\x00\x00\x00\x00" + struct.pack("!I", 50) + b"GET"),
            id="truncated-field",
        ),
        pytest.param(frame(wire.CREDIT, b"\x00\x01"), id="short-credit"),
        pytest.param(frame(wire.CREDIT, b"\x00\x00\x00\x01\x00"), id="long-credit"),
        pytest.param(frame(wire.RESPONSE_START, b"\x00"), id="short-response-start"),
        pytest.param(
            frame(wire.RESPONSE_START, b"\x00\xc8" + struct.pack("!HI", 1, 4) + b"name"),
            id="response-start-odd-headers",
        ),
        pytest.param(
            frame(wire.RESPONSE_START_END, b"\x00\xc8" + struct.pack("!HI", 1, 9) + b"name"),
            id="response-start-field-beyond-payload",
        ),
    ],
)
def test_malformed_payload_raises_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        FrameDecoder().feed(data)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_worker_failed_with_wrong_field_count_raises_wire_error(count: int) -> None:
    payload = fields(*[b"x"] * count)
    with pytest.raises(WireError):
        FrameDecoder().feed(frame(wire.WORKER_FAILED, payload, request_id=0))


def test_request_with_non_ascii_method_raises_wire_error() -> None:
    payload = b"\x00\x00\x00\x00\x00" + fields(b"G\xffT", b"http", b"1.1", b"/", b"", b"", b"")
    with pytest.raises(WireError):
        FrameDecoder().feed(frame(wire.REQUEST, payload))


# Request details


@pytest.mark.parametrize(
    ("client", "server"),
    [
        (None, None),
        (("10.0.0.1", 1), None),
        (None, ("0.0.0.0", 65535)),
        (("::1", 0), ("::1", 8000)),
        (("", 0), ("", 0)),
        (("/run/app.sock", 0), ("hôst.example", 443)),
    ],
)
def test_request_client_and_server(client: ev.Address | None, server: ev.Address | None) -> None:
    request = make_request(client=client, server=server)
    (decoded,) = roundtrip(request)
    assert decoded == request
    assert isinstance(decoded, ev.Request)
    assert decoded.client == client
    assert decoded.server == server


@pytest.mark.parametrize("more_body", [False, True])
@pytest.mark.parametrize("expect_continue", [False, True])
def test_request_flags(more_body: bool, expect_continue: bool) -> None:
    request = make_request(more_body=more_body, expect_continue=expect_continue)
    (decoded,) = roundtrip(request)
    assert isinstance(decoded, ev.Request)
    assert decoded.more_body is more_body
    assert decoded.expect_continue is expect_continue


def test_request_headers_with_arbitrary_bytes() -> None:
    headers = (
        (b"x-binary", bytes(range(1, 256))),
        (b"x-utf8", "naïve - 日本語".encode()),
        (b"x-latin1", "café".encode("latin-1")),
        (b"x-empty", b""),
        (b"", b"empty name"),
        (b"x-dup", b"1"),
        (b"x-dup", b"2"),
        (b"\x01\xff", b"\r\n\x7f"),
    )
    request = make_request(
        headers=headers, raw_path="/caf\u00e9".encode(), query_string=b"q=\xff\x01"
    )
    (decoded,) = roundtrip(request)
    assert decoded == request


@pytest.mark.parametrize(
    "event",
    [
        make_request(headers=((b"x-a", b"1\x002"),)),
        make_request(raw_path=b"/\x00"),
        ev.ResponseStart(1, 200, ((b"x\x00", b"1"),)),
        ev.WebSocketAccept(1, "chat\x00", ()),
    ],
)
def test_a_nul_byte_in_a_field_is_refused(event: ev.Event) -> None:
    """Fields are joined by NUL bytes: one holding a NUL would be read back as two. HTTP allows
    none in any of them, and the front end and the workers refuse them before they get here."""
    with pytest.raises(ValueError, match="NUL"):
        encode(event)


def test_a_worker_failure_message_may_hold_any_character() -> None:
    failed = ev.WorkerFailed("bad\x00 input: ✗", incompatible_module="numpy")
    assert roundtrip(failed) == [failed]


def test_request_with_many_headers() -> None:
    headers = tuple((b"x-h%d" % i, b"v" * i) for i in range(500))
    request = make_request(headers=headers)
    assert roundtrip(request) == [request]


# Property tests


@given(event=events_strategy)
def test_property_single_event_round_trips(event: ev.Event) -> None:
    assert roundtrip(event) == [event]


@settings(max_examples=200)
@given(events=st.lists(events_strategy, max_size=12), data=st.data())
def test_property_random_split_points(events: list[ev.Event], data: st.DataObject) -> None:
    stream = b"".join(encode(event) for event in events)
    cuts = data.draw(
        st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=10), label="cuts"
    )
    assert feed_in_pieces(stream, cuts) == events


@given(events=st.lists(events_strategy, min_size=1, max_size=5), data=st.data())
def test_property_pending_counts_the_incomplete_tail(
    events: list[ev.Event], data: st.DataObject
) -> None:
    stream = b"".join(encode(event) for event in events)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)), label="cut")
    decoder = FrameDecoder()
    head = decoder.feed(stream[:cut])
    consumed = sum(len(encode(event)) for event in head)
    assert head == events[: len(head)]
    assert decoder.pending == cut - consumed
    assert head + decoder.feed(stream[cut:]) == events
