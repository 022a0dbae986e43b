"""The wire format: stream events as compact binary frames, for a worker's pipes.

A frame is a 9-byte header, then the payload:

    type: u8 | request id: u32 | payload length: u32 | payload

A list of strings inside a payload (a request's method, path, headers ...) is a u16 count, the
u32 size of the list, then the strings joined by NUL bytes, which none of them may hold. Body
chunks are the payload as they are, never re-encoded. Pure functions and a small incremental
decoder: no I/O here, so an interpreter worker and a process worker speak exactly the same
format.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import chain
from typing import Any

from interpserve import events as ev
from interpserve.compiled import speedups
from interpserve.errors import WireError

_HEADER = struct.Struct("!BII")
HEADER_SIZE = _HEADER.size
# A list of fields: their count, and the size of the list (see _pack_fields)
_FIELDS = struct.Struct("!HI")
_CREDIT = struct.Struct("!I")
_MEMORY = struct.Struct("!q")
_STATUS = struct.Struct("!H")
# flags, client port, server port
_REQUEST_FIXED = struct.Struct("!BHH")

# Payloads larger than this are a broken peer, not a big body: bodies travel in chunks.
MAX_PAYLOAD = 64 * 1024 * 1024


# Frame types. Body frames come in two types so "more_body" costs no payload byte.
REQUEST = 1
REQUEST_BODY = 2
REQUEST_BODY_END = 3
DISCONNECT = 4
SHUTDOWN = 5
CREDIT = 6
WORKER_READY = 7
WORKER_FAILED = 8
RESPONSE_START = 9
RESPONSE_BODY = 10
RESPONSE_BODY_END = 11
REQUEST_FINISHED = 12
CANCEL = 13
PING = 14
PONG = 15
# WebSocket messages come in two types so text or binary costs no payload byte.
WEBSOCKET_TEXT = 16
WEBSOCKET_BINARY = 17
WEBSOCKET_ACCEPT = 18
WEBSOCKET_CLOSE = 19
# A response start whose body chunk completes the response (see ResponseStart).
RESPONSE_START_END = 20
# The same from an app that has returned: the usual answer, in one frame.
RESPONSE_START_FINISHED = 21
# Recycling and shutdown (26-29 are this part's numbers).
CANCEL_ALL = 26
MEMORY_QUERY = 27
MEMORY_REPORT = 28
# HTTP/2 (30-33 are this part's numbers).
RESPONSE_TRAILERS = 30

_MORE_BODY = 1
_EXPECT_CONTINUE = 2
_HAS_CLIENT = 4
_HAS_SERVER = 8
_WEBSOCKET = 16


# A frame is encoded as its header and its payload, joined only where it is written: a body
# chunk is then copied once on its way into the pipe (with the frames written with it), not
# once more into its own frame first.
Frame = tuple[bytes, bytes]


def _frame(kind: int, request_id: int, payload: bytes = b"") -> Frame:
    return _HEADER.pack(kind, request_id, len(payload)), payload


def _pack_fields(fields: list[bytes]) -> bytes:
    """The count, then the fields joined by NUL bytes, after their total size: one C call to
    join them and one to split them, where a length for each field cost a Python step each.
    None of these fields may hold a NUL (HTTP allows it in none of them, and the parsers and
    the workers refuse it): one that does is refused here, before it is read back as two."""
    count = len(fields)
    block = b"\0".join(fields)
    if count > 0xFFFF:
        raise ValueError(f"{count} fields do not fit in a frame")
    if count and block.count(b"\0") != count - 1:
        raise ValueError("a field holds a NUL byte")
    return _FIELDS.pack(count, len(block)) + block


def _unpack_fields(payload: bytes, offset: int = 0) -> tuple[list[bytes], int]:
    """The list of fields at `offset` in `payload`, and the offset right after it."""
    if len(payload) < offset + _FIELDS.size:
        raise WireError("truncated field list")
    count, size = _FIELDS.unpack_from(payload, offset)
    start = offset + _FIELDS.size
    end = start + size
    if end > len(payload):
        raise WireError("field list exceeds the payload")
    fields = payload[start:end].split(b"\0") if count else []
    if len(fields) != count or (not count and size):
        raise WireError("field count does not match the fields")
    return fields, end


def _only_fields(payload: bytes, offset: int = 0) -> list[bytes]:
    """The list of fields at `offset`, which must end the payload."""
    fields, end = _unpack_fields(payload, offset)
    if end != len(payload):
        raise WireError("field list does not end the payload")
    return fields


def _pack_headers(headers: ev.Headers) -> list[bytes]:
    return list(chain.from_iterable(headers))


def _unpack_headers(fields: list[bytes]) -> ev.Headers:
    if len(fields) % 2:
        raise WireError("odd number of header fields")
    # One iterator zipped with itself gives (name, value) pairs without two sliced copies.
    # No strict argument: it would only repeat the check above, and merely passing it (even
    # strict=False) makes the call markedly slower.
    pairs = iter(fields)
    return tuple(zip(pairs, pairs))  # noqa: B905


def encode(event: ev.Event) -> bytes:
    """One event as one frame."""
    return b"".join(encode_parts(event))


def encode_parts(event: ev.Event) -> Frame:
    """One event as one frame's header and payload, to be written one after the other."""
    encoder = _ENCODERS.get(type(event))
    if encoder is None:
        raise TypeError(f"not a stream event: {event!r}")
    return encoder(event)


def _encode_request(request: ev.Request) -> Frame:
    flags = (
        (_MORE_BODY if request.more_body else 0)
        | (_EXPECT_CONTINUE if request.expect_continue else 0)
        | (_HAS_CLIENT if request.client else 0)
        | (_HAS_SERVER if request.server else 0)
        | (_WEBSOCKET if request.websocket else 0)
    )
    client_host, client_port = request.client or ("", 0)
    server_host, server_port = request.server or ("", 0)
    fields = [
        request.method.encode("ascii"),
        request.scheme.encode("ascii"),
        request.http_version.encode("ascii"),
        request.raw_path,
        request.query_string,
        client_host.encode(),
        server_host.encode(),
        *_pack_headers(request.headers),
    ]
    payload = _REQUEST_FIXED.pack(flags, client_port, server_port) + _pack_fields(fields)
    return _frame(REQUEST, request.request_id, payload)


def _encode_response_start(start: ev.ResponseStart) -> Frame:
    # The first body chunk follows the headers to the end of the payload.
    payload = _STATUS.pack(start.status) + _pack_fields(_pack_headers(start.headers)) + start.body
    if start.more_body:
        kind = RESPONSE_START
    else:
        kind = RESPONSE_START_FINISHED if start.finished else RESPONSE_START_END
    return _frame(kind, start.request_id, payload)


def _encode_websocket_message(message: ev.WebSocketMessage) -> Frame:
    data = message.data
    if isinstance(data, str):
        return _frame(WEBSOCKET_TEXT, message.request_id, data.encode())
    return _frame(WEBSOCKET_BINARY, message.request_id, data)


def _encode_websocket_accept(accept: ev.WebSocketAccept) -> Frame:
    payload = _pack_fields([accept.subprotocol.encode(), *_pack_headers(accept.headers)])
    return _frame(WEBSOCKET_ACCEPT, accept.request_id, payload)


def _encode_worker_failed(failed: ev.WorkerFailed) -> Frame:
    # The message (an exception's text: any character) ends the payload, outside the fields.
    payload = _pack_fields([failed.incompatible_module.encode()]) + failed.message.encode()
    return _frame(WORKER_FAILED, 0, payload)


# By the event's exact type: one dict lookup, where a match statement would try each class.
_ENCODERS: dict[type, Callable[[Any], Frame]] = {
    ev.Request: _encode_request,
    ev.RequestBody: lambda e: _frame(
        REQUEST_BODY if e.more_body else REQUEST_BODY_END, e.request_id, e.data
    ),
    ev.ResponseStart: _encode_response_start,
    ev.ResponseBody: lambda e: _frame(
        RESPONSE_BODY if e.more_body else RESPONSE_BODY_END, e.request_id, e.data
    ),
    ev.ResponseTrailers: lambda e: _frame(
        RESPONSE_TRAILERS, e.request_id, _pack_fields(_pack_headers(e.headers))
    ),
    ev.RequestFinished: lambda e: _frame(REQUEST_FINISHED, e.request_id),
    ev.Credit: lambda e: _frame(CREDIT, e.request_id, _CREDIT.pack(e.size)),
    ev.Disconnect: lambda e: _frame(DISCONNECT, e.request_id),
    ev.Cancel: lambda e: _frame(CANCEL, e.request_id),
    ev.Ping: lambda e: _frame(PING, e.sequence),
    ev.Pong: lambda e: _frame(PONG, e.sequence),
    ev.Shutdown: lambda e: _frame(SHUTDOWN, 0),
    ev.CancelAll: lambda e: _frame(CANCEL_ALL, 0),
    ev.MemoryQuery: lambda e: _frame(MEMORY_QUERY, e.sequence),
    ev.MemoryReport: lambda e: _frame(MEMORY_REPORT, e.sequence, _MEMORY.pack(e.size)),
    ev.WorkerReady: lambda e: _frame(WORKER_READY, 0),
    ev.WorkerFailed: _encode_worker_failed,
    ev.WebSocketMessage: _encode_websocket_message,
    ev.WebSocketClose: lambda e: _frame(
        WEBSOCKET_CLOSE, e.request_id, _STATUS.pack(e.code) + e.reason.encode()
    ),
    ev.WebSocketAccept: _encode_websocket_accept,
}


def _decode_request(request_id: int, payload: bytes) -> ev.Request:
    if len(payload) < _REQUEST_FIXED.size:
        raise WireError("truncated request")
    flags, client_port, server_port = _REQUEST_FIXED.unpack_from(payload)
    fields = _only_fields(payload, _REQUEST_FIXED.size)
    if len(fields) < 7:
        raise WireError("request frame lacks fields")
    method, scheme, version, raw_path, query, client_host, server_host = fields[:7]
    return ev.Request(
        request_id,
        method.decode("ascii"),
        scheme.decode("ascii"),
        version.decode("ascii"),
        raw_path,
        query,
        _unpack_headers(fields[7:]),
        (client_host.decode(), client_port) if flags & _HAS_CLIENT else None,
        (server_host.decode(), server_port) if flags & _HAS_SERVER else None,
        bool(flags & _MORE_BODY),
        bool(flags & _EXPECT_CONTINUE),
        bool(flags & _WEBSOCKET),
    )


def _response_start_decoder(
    more_body: bool, finished: bool = False
) -> Callable[[int, bytes], ev.ResponseStart]:
    def decode(request_id: int, payload: bytes) -> ev.ResponseStart:
        if len(payload) < _STATUS.size:
            raise WireError("truncated response start")
        (status,) = _STATUS.unpack_from(payload)
        fields, end = _unpack_fields(payload, _STATUS.size)
        headers = _unpack_headers(fields)
        return ev.ResponseStart(request_id, status, headers, payload[end:], more_body, finished)

    return decode


def _decode_credit(request_id: int, payload: bytes) -> ev.Credit:
    if len(payload) != _CREDIT.size:
        raise WireError("bad credit frame")
    return ev.Credit(request_id, _CREDIT.unpack(payload)[0])


def _decode_websocket_close(request_id: int, payload: bytes) -> ev.WebSocketClose:
    if len(payload) < _STATUS.size:
        raise WireError("truncated websocket close")
    (code,) = _STATUS.unpack_from(payload)
    return ev.WebSocketClose(request_id, code, payload[2:].decode())


def _decode_websocket_accept(request_id: int, payload: bytes) -> ev.WebSocketAccept:
    fields = _only_fields(payload)
    if not fields:
        raise WireError("websocket accept lacks its subprotocol")
    return ev.WebSocketAccept(request_id, fields[0].decode(), _unpack_headers(fields[1:]))


def _decode_worker_failed(_: int, payload: bytes) -> ev.WorkerFailed:
    (module,), end = _unpack_fields(payload)
    return ev.WorkerFailed(payload[end:].decode(errors="replace"), module.decode(errors="replace"))


_DECODERS: dict[int, Callable[[int, bytes], ev.Event]] = {
    REQUEST: _decode_request,
    REQUEST_BODY: lambda rid, p: ev.RequestBody(rid, p, True),
    REQUEST_BODY_END: lambda rid, p: ev.RequestBody(rid, p, False),
    DISCONNECT: lambda rid, _: ev.Disconnect(rid),
    SHUTDOWN: lambda _, __: ev.Shutdown(),
    CANCEL_ALL: lambda _, __: ev.CancelAll(),
    MEMORY_QUERY: lambda seq, _: ev.MemoryQuery(seq),
    MEMORY_REPORT: lambda seq, p: ev.MemoryReport(seq, _MEMORY.unpack(p)[0]),
    CREDIT: _decode_credit,
    WORKER_READY: lambda _, __: ev.WorkerReady(),
    WORKER_FAILED: _decode_worker_failed,
    RESPONSE_START: _response_start_decoder(more_body=True),
    RESPONSE_START_END: _response_start_decoder(more_body=False),
    RESPONSE_START_FINISHED: _response_start_decoder(more_body=False, finished=True),
    RESPONSE_BODY: lambda rid, p: ev.ResponseBody(rid, p, True),
    RESPONSE_BODY_END: lambda rid, p: ev.ResponseBody(rid, p, False),
    RESPONSE_TRAILERS: lambda rid, p: ev.ResponseTrailers(rid, _unpack_headers(_only_fields(p))),
    REQUEST_FINISHED: lambda rid, _: ev.RequestFinished(rid),
    CANCEL: lambda rid, _: ev.Cancel(rid),
    PING: lambda seq, _: ev.Ping(seq),
    PONG: lambda seq, _: ev.Pong(seq),
    WEBSOCKET_TEXT: lambda rid, p: ev.WebSocketMessage(rid, p.decode()),
    WEBSOCKET_BINARY: lambda rid, p: ev.WebSocketMessage(rid, p),
    WEBSOCKET_ACCEPT: _decode_websocket_accept,
    WEBSOCKET_CLOSE: _decode_websocket_close,
}


class FrameDecoder:
    """Bytes in, events out, whatever the boundaries of the reads that delivered the bytes.

    Frames are sliced straight out of each read. A frame cut by the end of a read is held as
    views of the reads that carry it, and its payload is joined once it is whole: a big body
    frame arriving in many reads is copied once, not once a read."""

    def __init__(self) -> None:
        self._header = b""  # the start of a frame header cut by the end of a read
        self._frame: tuple[int, int, int] | None = None  # the header of a frame still arriving
        self._parts: list[memoryview] = []  # and its payload so far
        self._received = 0  # bytes in _parts

    def feed(self, data: bytes) -> list[ev.Event]:
        out: list[ev.Event] = []
        offset, end = 0, len(data)
        if self._header or self._frame is not None:
            offset = self._resume(data, out)
        offset = _decode_whole_frames(data, offset, out)
        if end - offset >= HEADER_SIZE:
            self._hold(_read_header(data, offset), memoryview(data)[offset + HEADER_SIZE :])
        elif offset < end:
            self._header = data[offset:]
        return out

    def _resume(self, data: bytes, out: list[ev.Event]) -> int:
        """Complete the frame the last reads left incomplete; the offset in `data` after it
        (the end of `data` if it is still incomplete)."""
        offset = 0
        if self._header:
            offset = HEADER_SIZE - len(self._header)
            self._header += data[:offset]
            if len(self._header) < HEADER_SIZE:
                return len(data)
            header, self._header = self._header, b""
            self._hold(_read_header(header), memoryview(b""))
        assert self._frame is not None
        kind, request_id, length = self._frame
        stop = offset + length - self._received
        self._parts.append(memoryview(data)[offset:stop])
        if stop > len(data):
            self._received += len(data) - offset
            return len(data)
        payload = b"".join(self._parts)
        self._frame, self._parts, self._received = None, [], 0
        out.append(_decode(kind, request_id, payload))
        return stop

    def _hold(self, header: tuple[int, int, int], payload: memoryview) -> None:
        self._frame, self._parts, self._received = header, [payload], len(payload)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back until the rest arrives."""
        held = len(self._header)
        if self._frame is not None:
            held += HEADER_SIZE + self._received
        return held


def _decode_whole_frames(data: bytes, offset: int, out: list[ev.Event]) -> int:
    """The events of the whole frames in `data` from `offset`, appended to `out`; returns
    where the first incomplete frame starts (or the end of `data`)."""
    end = len(data)
    while end - offset >= HEADER_SIZE:
        kind, request_id, length = _read_header(data, offset)
        start = offset + HEADER_SIZE
        stop = start + length
        if stop > end:
            break
        out.append(_decode(kind, request_id, data[start:stop]))
        offset = stop
    return offset


def _read_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """The frame header at `offset`: type, request id, payload length (refused if too large,
    before any of the payload is waited for)."""
    header: tuple[int, int, int] = _HEADER.unpack_from(data, offset)
    if header[2] > MAX_PAYLOAD:
        raise WireError(f"frame payload of {header[2]} bytes is too large")
    return header


def _decode(kind: int, request_id: int, payload: bytes) -> ev.Event:
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise WireError(f"unknown frame type {kind}")
    try:
        return decoder(request_id, payload)
    except (ValueError, struct.error) as exc:  # UnicodeDecodeError included
        raise WireError(f"malformed frame of type {kind}: {exc}") from None


# The Python versions, the reference: their C twins, encode_parts and decode_whole_frames in
# _speedups.c, must match them (tests/test_speedups.py).
python_encode_parts = encode_parts
python_decode_whole_frames = _decode_whole_frames

if speedups is not None:
    # The two functions every frame goes through, compiled: they decode and encode requests
    # and response starts themselves, and call the Python above for the other events.
    speedups.setup_wire(
        ev.Request,
        ev.ResponseStart,
        WireError,
        struct.error,
        _ENCODERS,
        _DECODERS,
        MAX_PAYLOAD,
        (REQUEST, RESPONSE_START, RESPONSE_START_END, RESPONSE_START_FINISHED),
    )
    encode_parts = speedups.encode_parts
    _decode_whole_frames = speedups.decode_whole_frames
