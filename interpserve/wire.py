"""The wire format: stream events as compact binary frames, for a worker's pipes.

A frame is a 9-byte header, then the payload:

    type: u8 | request id: u32 | payload length: u32 | payload

A list of strings inside a payload (a request's method, path, headers ...) is a u16 count, the
u32 length of each, then the strings back to back. Body chunks are the payload as they are,
never re-encoded. Pure functions and a small incremental decoder: no I/O here, so
an interpreter worker and a process worker speak exactly the same format.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from interpserve import events as ev

_HEADER = struct.Struct("!BII")
HEADER_SIZE = _HEADER.size
_COUNT = struct.Struct("!H")
_CREDIT = struct.Struct("!I")
_STATUS = struct.Struct("!H")
# flags, client port, server port
_REQUEST_FIXED = struct.Struct("!BHH")

# Payloads larger than this are a broken peer, not a big body: bodies travel in chunks.
MAX_PAYLOAD = 64 * 1024 * 1024


class WireError(Exception):
    """The byte stream is not a valid sequence of frames."""


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

_MORE_BODY = 1
_EXPECT_CONTINUE = 2
_HAS_CLIENT = 4
_HAS_SERVER = 8
_WEBSOCKET = 16


def _frame(kind: int, request_id: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, request_id, len(payload)) + payload


@functools.lru_cache(maxsize=128)
def _lengths(count: int) -> struct.Struct:
    """The layout of a list of `count` fields: the count, then each field's length."""
    return struct.Struct(f"!H{count}I")


def _pack_fields(fields: list[bytes]) -> bytes:
    """All the lengths up front, then the fields back to back: two C calls, not one a field."""
    count = len(fields)
    if count > 0xFFFF:
        raise ValueError(f"{count} fields do not fit in a frame")
    return _lengths(count).pack(count, *map(len, fields)) + b"".join(fields)


def _unpack_fields(payload: memoryview) -> list[bytes]:
    if len(payload) < 2:
        raise WireError("truncated field count")
    (count,) = _COUNT.unpack_from(payload)
    layout = _lengths(count)
    if len(payload) < layout.size:
        raise WireError("truncated field lengths")
    offset = layout.size
    data = bytes(payload[offset:])
    fields = []
    start = 0
    for length in layout.unpack_from(payload)[1:]:
        fields.append(data[start : start + length])
        start += length
    if start != len(data):
        raise WireError("field lengths do not match the payload")
    return fields


def _pack_headers(headers: ev.Headers) -> list[bytes]:
    return [item for pair in headers for item in pair]


def _unpack_headers(fields: list[bytes]) -> ev.Headers:
    if len(fields) % 2:
        raise WireError("odd number of header fields")
    return tuple(zip(fields[::2], fields[1::2], strict=True))


def encode(event: ev.Event) -> bytes:
    """One event as one frame."""
    match event:
        case ev.RequestBody(request_id, data, more_body):
            return _frame(REQUEST_BODY if more_body else REQUEST_BODY_END, request_id, data)
        case ev.ResponseBody(request_id, data, more_body):
            return _frame(RESPONSE_BODY if more_body else RESPONSE_BODY_END, request_id, data)
        case ev.WebSocketMessage(request_id, str() as text):
            return _frame(WEBSOCKET_TEXT, request_id, text.encode())
        case ev.WebSocketMessage(request_id, bytes() as data):
            return _frame(WEBSOCKET_BINARY, request_id, data)
        case ev.Credit(request_id, size):
            return _frame(CREDIT, request_id, _CREDIT.pack(size))
        case ev.ResponseStart(request_id, status, headers):
            payload = _STATUS.pack(status) + _pack_fields(_pack_headers(headers))
            return _frame(RESPONSE_START, request_id, payload)
        case ev.RequestFinished(request_id):
            return _frame(REQUEST_FINISHED, request_id)
        case ev.Request():
            return _frame(REQUEST, event.request_id, _encode_request(event))
        case ev.Disconnect(request_id):
            return _frame(DISCONNECT, request_id)
        case ev.Cancel(request_id):
            return _frame(CANCEL, request_id)
        case ev.Ping(sequence):
            return _frame(PING, sequence)
        case ev.Pong(sequence):
            return _frame(PONG, sequence)
        case ev.Shutdown():
            return _frame(SHUTDOWN, 0)
        case ev.WorkerReady():
            return _frame(WORKER_READY, 0)
        case ev.WorkerFailed(message, module):
            return _frame(WORKER_FAILED, 0, _pack_fields([message.encode(), module.encode()]))
        case ev.WebSocketClose(request_id, code, reason):
            return _frame(WEBSOCKET_CLOSE, request_id, _STATUS.pack(code) + reason.encode())
        case ev.WebSocketAccept(request_id, subprotocol, headers):
            payload = _pack_fields([subprotocol.encode(), *_pack_headers(headers)])
            return _frame(WEBSOCKET_ACCEPT, request_id, payload)
    raise TypeError(f"not a stream event: {event!r}")


def _encode_request(request: ev.Request) -> bytes:
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
    return _REQUEST_FIXED.pack(flags, client_port, server_port) + _pack_fields(fields)


def _decode_request(request_id: int, payload: memoryview) -> ev.Request:
    if len(payload) < _REQUEST_FIXED.size:
        raise WireError("truncated request")
    flags, client_port, server_port = _REQUEST_FIXED.unpack_from(payload)
    fields = _unpack_fields(payload[_REQUEST_FIXED.size :])
    if len(fields) < 7:
        raise WireError("request frame lacks fields")
    method, scheme, version, raw_path, query, client_host, server_host = fields[:7]
    return ev.Request(
        request_id=request_id,
        method=method.decode("ascii"),
        scheme=scheme.decode("ascii"),
        http_version=version.decode("ascii"),
        raw_path=raw_path,
        query_string=query,
        headers=_unpack_headers(fields[7:]),
        client=(client_host.decode(), client_port) if flags & _HAS_CLIENT else None,
        server=(server_host.decode(), server_port) if flags & _HAS_SERVER else None,
        more_body=bool(flags & _MORE_BODY),
        expect_continue=bool(flags & _EXPECT_CONTINUE),
        websocket=bool(flags & _WEBSOCKET),
    )


def _decode_response_start(request_id: int, payload: memoryview) -> ev.ResponseStart:
    if len(payload) < _STATUS.size:
        raise WireError("truncated response start")
    (status,) = _STATUS.unpack_from(payload)
    return ev.ResponseStart(request_id, status, _unpack_headers(_unpack_fields(payload[2:])))


def _decode_credit(request_id: int, payload: memoryview) -> ev.Credit:
    if len(payload) != _CREDIT.size:
        raise WireError("bad credit frame")
    return ev.Credit(request_id, _CREDIT.unpack(payload)[0])


def _decode_websocket_close(request_id: int, payload: memoryview) -> ev.WebSocketClose:
    if len(payload) < _STATUS.size:
        raise WireError("truncated websocket close")
    (code,) = _STATUS.unpack_from(payload)
    return ev.WebSocketClose(request_id, code, bytes(payload[2:]).decode())


def _decode_websocket_accept(request_id: int, payload: memoryview) -> ev.WebSocketAccept:
    fields = _unpack_fields(payload)
    if not fields:
        raise WireError("websocket accept lacks its subprotocol")
    return ev.WebSocketAccept(request_id, fields[0].decode(), _unpack_headers(fields[1:]))


def _decode_worker_failed(_: int, payload: memoryview) -> ev.WorkerFailed:
    message, module = _unpack_fields(payload)
    return ev.WorkerFailed(message.decode(errors="replace"), module.decode(errors="replace"))


_DECODERS: dict[int, Callable[[int, memoryview], ev.Event]] = {
    REQUEST: _decode_request,
    REQUEST_BODY: lambda rid, p: ev.RequestBody(rid, bytes(p), True),
    REQUEST_BODY_END: lambda rid, p: ev.RequestBody(rid, bytes(p), False),
    DISCONNECT: lambda rid, _: ev.Disconnect(rid),
    SHUTDOWN: lambda _, __: ev.Shutdown(),
    CREDIT: _decode_credit,
    WORKER_READY: lambda _, __: ev.WorkerReady(),
    WORKER_FAILED: _decode_worker_failed,
    RESPONSE_START: _decode_response_start,
    RESPONSE_BODY: lambda rid, p: ev.ResponseBody(rid, bytes(p), True),
    RESPONSE_BODY_END: lambda rid, p: ev.ResponseBody(rid, bytes(p), False),
    REQUEST_FINISHED: lambda rid, _: ev.RequestFinished(rid),
    CANCEL: lambda rid, _: ev.Cancel(rid),
    PING: lambda seq, _: ev.Ping(seq),
    PONG: lambda seq, _: ev.Pong(seq),
    WEBSOCKET_TEXT: lambda rid, p: ev.WebSocketMessage(rid, str(p, "utf-8")),
    WEBSOCKET_BINARY: lambda rid, p: ev.WebSocketMessage(rid, bytes(p)),
    WEBSOCKET_ACCEPT: _decode_websocket_accept,
    WEBSOCKET_CLOSE: _decode_websocket_close,
}


class FrameDecoder:
    """Bytes in, events out, whatever the boundaries of the reads that delivered the bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[ev.Event]:
        buffer = self._buffer
        buffer += data
        out: list[ev.Event] = []
        offset, end = 0, len(buffer)
        view = memoryview(buffer)
        try:
            while end - offset >= HEADER_SIZE:
                kind, request_id, length = _HEADER.unpack_from(buffer, offset)
                if length > MAX_PAYLOAD:
                    raise WireError(f"frame payload of {length} bytes is too large")
                if end - offset - HEADER_SIZE < length:
                    break
                start = offset + HEADER_SIZE
                decoder = _DECODERS.get(kind)
                if decoder is None:
                    raise WireError(f"unknown frame type {kind}")
                try:
                    out.append(decoder(request_id, view[start : start + length]))
                except (ValueError, struct.error) as exc:  # UnicodeDecodeError included
                    raise WireError(f"malformed frame of type {kind}: {exc}") from None
                offset = start + length
        finally:
            view.release()
        del buffer[:offset]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back until the rest arrives."""
        return len(self._buffer)
