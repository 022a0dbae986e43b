"""The server's side of one HTTP/2 connection (RFC 9113), sans-IO: `receive` turns a client's
bytes into events (http2_events.py), and the session's `send_headers`, `send_data`, `reset`
and `acknowledge` become frames in one output buffer (`data_to_send`). No socket, no clock and
no requests here: those are the session's (http2.py).

It holds what the protocol needs and nothing more: each stream's state (§5.1) and its
flow-control windows both ways (§5.2, §6.9), the client's settings (§6.5), the field block
being assembled from CONTINUATION frames (§6.10), HPACK's state (§4.3), and how recent streams
were closed (what a late frame on one means, §5.1 "closed"). The frame rules of §4 to §6 and
the message framing of §8.1 (trailers, a body against its content-length) are checked here: a
breach that ends the connection queues GOAWAY and raises HTTP2ConnectionError; one that ends a
stream resets it and reports StreamReset. Whether fields are valid (§8.2, §8.3) is
http2_rules.py's, for the session to ask.

Written for the request path's cost: received bytes are split into frames by one pass of
struct calls, each frame goes to its type's method, a client's usual header block is decoded
once per HPACK table state (http2_hpack.py), and a small response is four byte strings for
one write. (The h2 library, which this replaces on the server's path, is the reference in
tests/test_http2_differential.py.)
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from enum import Enum, auto

from hpack.exceptions import HPACKError, OversizedHeaderListError

from interpserve.errors import HTTP2ConnectionError, HTTP2StreamError
from interpserve.frontend import http2_frames as fr
from interpserve.frontend.http2_events import (
    DataReceived,
    Event,
    Fields,
    FrameIgnored,
    GoAwayReceived,
    PingAcknowledged,
    PingReceived,
    PriorityReceived,
    RequestReceived,
    SettingsAcknowledged,
    SettingsChanged,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from interpserve.frontend.http2_hpack import CachingDecoder, StaticEncoder, encode_fields

ErrorCode = fr.ErrorCode
# Frames in one field block (HEADERS and its CONTINUATION frames) beyond which the client is
# taken to be flooding (CVE-2024-27316): however small, each costs a frame's work.
MAX_BLOCK_FRAMES = 64

_SETTINGS_ACK = fr.frame(fr.SETTINGS, fr.ACK, 0)
_FLAG_SETTINGS = frozenset((fr.Setting.ENABLE_PUSH, fr.Setting.ENABLE_CONNECT_PROTOCOL))
_PING_ACK_HEADER = fr.frame_header(fr.PING, fr.ACK, 0, 8)
# A whole small response's two frame headers (HEADERS with its block, then DATA ending the
# stream) packed at once: fr.frame_header's layout, twice.
_TWO_HEADERS = struct.Struct(">HBBBLHBBBL")
_HEADER_SIZE = fr.HEADER_SIZE
# The HEADERS flags that ask more of it than a whole field block.
_PLAIN = fr.END_HEADERS | fr.PADDED | fr.PRIORITY_FLAG


class ConnectionState(Enum):
    PREFACE = auto()  # the client's connection preface is not all in yet (§3.4)
    SETTINGS = auto()  # it is: its SETTINGS frame must come next
    OPEN = auto()
    CLOSED = auto()  # a connection error: GOAWAY is queued and nothing more is read


class StreamState(Enum):
    """A stream's state (§5.1) while the server has it: `OPEN` while the request's body may
    come, `HALF_CLOSED_REMOTE` once the client has ended it, `HALF_CLOSED_LOCAL` once the
    response has ended first. A closed stream is forgotten but for how it closed."""

    OPEN = auto()
    HALF_CLOSED_REMOTE = auto()
    HALF_CLOSED_LOCAL = auto()
    CLOSED = auto()


class ClosedBy(Enum):
    END_STREAM = auto()  # both sides ended it
    RESET_SENT = auto()  # late frames the client had in flight are ignored
    RESET_RECEIVED = auto()  # the client reset it: it must send nothing more on it


class _Stream:
    __slots__ = (
        "expected",
        "in_processed",
        "in_window",
        "out_window",
        "received",
        "state",
        "stream_id",
    )

    def __init__(self, stream_id: int, in_window: int, out_window: int, state: StreamState):
        self.stream_id = stream_id
        self.state = state
        self.in_window = in_window  # what the client may still send us on it
        self.in_processed = 0  # body bytes taken since its window was last opened
        self.out_window = out_window  # what we may still send it; may go below 0 (§6.9.2)
        self.expected = -1  # the request's content-length, if it has one
        self.received = 0


class _FieldBlock:
    """A HEADERS frame's field block while its CONTINUATION frames come."""

    __slots__ = ("flags", "fragments", "size", "stream_id")

    def __init__(self, stream_id: int, flags: int, fragment: bytes) -> None:
        self.stream_id = stream_id
        self.flags = flags
        self.fragments = [fragment]
        self.size = len(fragment)


def _window_increment(window: int, maximum: int, processed: int) -> int:
    """How far to reopen a receive window of `maximum` bytes, now at `window`, once `processed`
    bytes of it have been taken: by all of them when half the window's worth is, or when it is
    shut and a little is (not for every small DATA frame, nor so late that the client stalls);
    else not yet. (h2's rule, which this server used before.)"""
    if processed >= maximum // 2 or (window <= 0 and processed > min(1024, maximum // 4)):
        return min(processed, maximum - window)
    return 0


class HTTP2Connection:
    def __init__(
        self,
        *,
        max_concurrent_streams: int,
        max_header_list_size: int,
        header_table_size: int,
        stream_window: int,
        connection_window: int,
        closed_streams_kept: int,
    ) -> None:
        self.state = ConnectionState.PREFACE
        self.highest_stream_id = 0  # the last stream the client opened
        # The client's limits on what the server sends.
        self.max_outbound_frame = fr.DEFAULT_MAX_FRAME_SIZE
        self.outbound_window = fr.DEFAULT_WINDOW  # the connection's
        self._peer_initial_window = fr.DEFAULT_WINDOW
        # What the server lets the client send: per stream, and the connection's.
        self._stream_window = stream_window
        self._in_window = self._in_max = connection_window
        self._in_processed = 0
        self._max_streams = max_concurrent_streams
        self._max_block = max_header_list_size  # (encoded bytes: HPACK bounds the decoded)
        self._settings_sent: dict[int, int] = {
            fr.Setting.HEADER_TABLE_SIZE: header_table_size,
            fr.Setting.ENABLE_PUSH: 0,
            fr.Setting.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            fr.Setting.INITIAL_WINDOW_SIZE: stream_window,
            fr.Setting.MAX_HEADER_LIST_SIZE: max_header_list_size,
        }
        self._settings_unacked = 0
        self._decoder = CachingDecoder()
        self._decoder.max_header_list_size = max_header_list_size
        self._decoder.max_allowed_table_size = header_table_size
        self._encoder = StaticEncoder()
        self._streams: dict[int, _Stream] = {}
        self._closed: dict[int, ClosedBy] = {}
        self._closed_order: deque[int] = deque()
        self._closed_kept = closed_streams_kept
        self._block: _FieldBlock | None = None
        self._buffer = b""  # received bytes short of a whole frame
        self._out: list[bytes] = []
        handlers: list[Callable[[int, int, bytes, list[Event]], None]] = [
            self._data,
            self._headers,
            self._priority,
            self._rst_stream,
            self._settings,
            self._push_promise,
            self._ping,
            self._goaway,
            self._window_update,
            self._continuation,
        ]
        self._handlers = handlers

    # The session's view

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def window(self, stream_id: int) -> int:
        """How many bytes of DATA the client's windows let the server send on the stream now."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return min(stream.out_window, self.outbound_window)

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    # Sending

    def initiate(self) -> None:
        """The server's connection preface: its SETTINGS, and the connection's window opened
        from the 65,535 bytes every connection starts with."""
        self._out.append(fr.settings_frame(self._settings_sent))
        self._settings_unacked += 1
        if self._in_max > fr.DEFAULT_WINDOW:
            self._out.append(fr.window_update_frame(0, self._in_max - fr.DEFAULT_WINDOW))

    def send_headers(self, stream_id: int, fields: Fields, end_stream: bool = False) -> None:
        self.send_block(stream_id, encode_fields(fields), end_stream)

    def send_block(self, stream_id: int, block: bytes, end_stream: bool = False) -> None:
        """HEADERS (and CONTINUATION frames, if need be) with a header block from
        `encode_fields`."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.state is StreamState.HALF_CLOSED_LOCAL:
            return  # reset meanwhile, by either side
        block = self._encoder.start(block)
        flags = fr.END_STREAM if end_stream else 0
        size = self.max_outbound_frame
        out = self._out
        if len(block) <= size:
            out.append(fr.frame_header(fr.HEADERS, flags | fr.END_HEADERS, stream_id, len(block)))
            out.append(block)
        else:
            out.append(fr.frame(fr.HEADERS, flags, stream_id, block[:size]))
            for start in range(size, len(block), size):
                piece = block[start : start + size]
                last = start + size >= len(block)
                out.append(
                    fr.frame(fr.CONTINUATION, fr.END_HEADERS if last else 0, stream_id, piece)
                )
        if end_stream:
            self._local_end(stream)

    def send_response(self, stream_id: int, block: bytes, body: bytes) -> bool:
        """A whole response at once: HEADERS with its header block (from `encode_fields`) and
        its body in one DATA frame that ends the stream, if the client's windows and frame
        size take them now (else nothing is sent: False). Most responses are this."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.state is StreamState.HALF_CLOSED_LOCAL:
            return True  # reset meanwhile, by either side: nothing to send
        size = len(body)
        limit = self.max_outbound_frame
        if size > stream.out_window or size > self.outbound_window or size > limit:
            return False
        if len(block) >= limit:
            return False
        block = self._encoder.start(block)
        if size:
            length = len(block)
            heads = _TWO_HEADERS.pack(
                length >> 8, length & 0xFF, fr.HEADERS, fr.END_HEADERS, stream_id,
                size >> 8, size & 0xFF, fr.DATA, fr.END_STREAM, stream_id,
            )  # fmt: skip
            self._out += (heads[:_HEADER_SIZE], block, heads[_HEADER_SIZE:], body)
            stream.out_window -= size
            self.outbound_window -= size
        else:
            flags = fr.END_HEADERS | fr.END_STREAM
            self._out += (fr.frame_header(fr.HEADERS, flags, stream_id, len(block)), block)
        if stream.state is StreamState.OPEN:
            stream.state = StreamState.HALF_CLOSED_LOCAL
        else:  # (the usual: the request had ended; _local_end, inline)
            stream.state = StreamState.CLOSED
            del self._streams[stream_id]
            self._remember(stream_id, ClosedBy.END_STREAM)
        return True

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False) -> None:
        """DATA within `window(stream_id)` and the client's frame size (the session's to keep)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.state is StreamState.HALF_CLOSED_LOCAL:
            return
        size = len(data)
        stream.out_window -= size
        self.outbound_window -= size
        flags = fr.END_STREAM if end_stream else 0
        self._out.append(fr.frame_header(fr.DATA, flags, stream_id, size))
        if size:
            self._out.append(data)  # type: ignore[arg-type]  # (join takes a memoryview)
        if end_stream:
            self._local_end(stream)

    def reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM on a stream the server has (nothing if it is closed already)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._out.append(fr.rst_stream_frame(stream_id, code))
            self._forget(stream, ClosedBy.RESET_SENT)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """`size` bytes of the stream's body have been taken: the client may send as many more,
        on the connection, and on the stream if its body is still coming."""
        if size <= 0:
            return
        self._in_window, self._in_processed = self._reopen(
            0, self._in_window, self._in_max, self._in_processed + size
        )
        stream = self._streams.get(stream_id)
        if stream is None or stream.state is StreamState.HALF_CLOSED_REMOTE:
            return
        stream.in_window, stream.in_processed = self._reopen(
            stream_id, stream.in_window, self._stream_window, stream.in_processed + size
        )

    def _reopen(self, stream_id: int, window: int, maximum: int, processed: int) -> tuple[int, int]:
        """A receive window (the connection's: stream 0) of which `processed` bytes have been
        taken: its size and what counts as taken, after a WINDOW_UPDATE if one is due now."""
        increment = _window_increment(window, maximum, processed)
        if not increment:
            return window, processed
        self._out.append(fr.window_update_frame(stream_id, increment))
        return window + increment, 0

    def goaway(self, code: int, last_stream_id: int | None = None) -> None:
        """GOAWAY: the client may open no more streams (beyond `last_stream_id`, by default
        the last it opened); the streams it has go on, unless the session closes."""
        last = self.highest_stream_id if last_stream_id is None else last_stream_id
        self._out.append(fr.goaway_frame(last, code))

    def close(self, code: int, last_stream_id: int | None = None) -> None:
        """The end of the connection: GOAWAY (for an error of the session's finding, or its
        last word), and nothing more is read."""
        if self.state is not ConnectionState.CLOSED:
            self.goaway(code, last_stream_id)
            self.state = ConnectionState.CLOSED

    # Receiving

    def receive(self, data: bytes) -> list[Event]:
        """The events the client's `data` makes, in order. Raises HTTP2ConnectionError (its
        GOAWAY queued) if it breaks a rule that ends the connection."""
        state = self.state
        if state is ConnectionState.CLOSED:
            return []
        buffer = self._buffer + data if self._buffer else data
        events: list[Event] = []
        try:
            if state is ConnectionState.PREFACE:
                buffer = self._preface(buffer)
                if self.state is ConnectionState.PREFACE:
                    self._buffer = buffer
                    return events
            frames, used, too_large = fr.split_frames(buffer, fr.DEFAULT_MAX_FRAME_SIZE)
            if frames and self.state is ConnectionState.SETTINGS:
                kind, flags = frames[0][0], frames[0][1]
                if kind != fr.SETTINGS or flags & fr.ACK:
                    raise HTTP2ConnectionError(
                        ErrorCode.PROTOCOL_ERROR, "the preface is not followed by SETTINGS"
                    )
                self.state = ConnectionState.OPEN
            handlers = self._handlers
            for kind, flags, stream_id, payload in frames:
                if self._block is not None and kind != fr.CONTINUATION:
                    raise HTTP2ConnectionError(
                        ErrorCode.PROTOCOL_ERROR, "a frame inside a field block"
                    )
                try:
                    if kind == fr.HEADERS and stream_id and flags & _PLAIN == fr.END_HEADERS:
                        # A whole field block, unpadded, without priority: most requests
                        # (what _headers does with it, without its call).
                        self._field_block(stream_id, flags, payload, events)
                    elif kind < fr.KNOWN_TYPES:
                        handlers[kind](flags, stream_id, payload, events)
                    else:
                        events.append(UnknownFrameReceived(kind))  # §5.5: ignored
                except HTTP2StreamError as exc:
                    self._stream_error(exc, events)
            if too_large:
                raise HTTP2ConnectionError(
                    ErrorCode.FRAME_SIZE_ERROR, "a frame larger than SETTINGS_MAX_FRAME_SIZE"
                )
        except HTTP2ConnectionError as exc:
            self.close(exc.code)
            self._buffer = b""
            raise
        self._buffer = buffer[used:]
        return events

    def _preface(self, buffer: bytes) -> bytes:
        size = len(fr.PREFACE)
        if buffer[:size] != fr.PREFACE[: len(buffer)]:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "not HTTP/2's preface")
        if len(buffer) < size:
            return buffer
        self.state = ConnectionState.SETTINGS
        return buffer[size:]

    # Frames, by type (§6)

    def _data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)  # what flow control counts, padding and all
        data = payload
        if flags & fr.PADDED:
            if not size:
                raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "DATA without its padding")
            pad = payload[0]
            if pad >= size:
                raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA padding too long")
            data = payload[1 : size - pad]
        self._in_window -= size  # even if the frame is in error (§6.9)
        if self._in_window < 0:
            raise HTTP2ConnectionError(
                ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection's window"
            )
        stream = self._streams.get(stream_id)
        if stream is None or stream.state is StreamState.HALF_CLOSED_REMOTE:
            self._discarded(size)
            if stream is not None:
                raise HTTP2StreamError(stream_id, ErrorCode.STREAM_CLOSED, "DATA after the end")
            self._on_closed(stream_id, fr.DATA, events)
            return
        stream.in_window -= size
        if stream.in_window < 0:
            raise HTTP2ConnectionError(
                ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the stream's window"
            )
        received = stream.received + len(data)
        stream.received = received
        end = flags & fr.END_STREAM
        expected = stream.expected
        if expected >= 0 and (received > expected or (end and received != expected)):
            self._discarded(size)
            raise HTTP2StreamError(
                stream_id, ErrorCode.PROTOCOL_ERROR, "a body unlike its content-length"
            )
        if size > len(data):
            self.acknowledge(stream_id, size - len(data))  # padding: nobody will take it
        if end:
            self._remote_end(stream)
        events.append(DataReceived(stream_id, data, bool(end)))

    def _headers(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & (fr.PADDED | fr.PRIORITY_FLAG):
            # The priority fields are parsed past and ignored: RFC 9113 deprecates them (§5.3.2).
            size = len(payload)
            start = (1 if flags & fr.PADDED else 0) + (5 if flags & fr.PRIORITY_FLAG else 0)
            if size < start:
                raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short")
            pad = payload[0] if flags & fr.PADDED else 0
            if pad > size - start:
                raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS padding too long")
            payload = payload[start : size - pad]
        if flags & fr.END_HEADERS:
            self._field_block(stream_id, flags, payload, events)
        else:
            if len(payload) > self._max_block:
                raise HTTP2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "field block too large")
            self._block = _FieldBlock(stream_id, flags, payload)

    def _continuation(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        block = self._block
        if block is None or stream_id != block.stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        block.fragments.append(payload)
        block.size += len(payload)
        if block.size > self._max_block:
            raise HTTP2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "field block too large")
        if len(block.fragments) > MAX_BLOCK_FRAMES:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "too many CONTINUATION frames")
        if flags & fr.END_HEADERS:
            self._block = None
            self._field_block(stream_id, block.flags, b"".join(block.fragments), events)

    def _field_block(self, stream_id: int, flags: int, block: bytes, events: list[Event]) -> None:
        """A whole field block: a request, or its trailers."""
        stream = self._streams.get(stream_id)
        opens = stream is None and stream_id > self.highest_stream_id and stream_id & 1
        # Always decoded: HPACK's state must follow every block (§4.3).
        try:
            headers = self._decoder.decode(block, True)  # (raw: positional, a faster call)
        except OversizedHeaderListError as exc:
            raise HTTP2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, str(exc)) from exc
        except (HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise HTTP2ConnectionError(ErrorCode.COMPRESSION_ERROR, str(exc)) from exc
        if opens and len(self._streams) >= self._max_streams:
            # A stream error (§5.1.2), not the connection's: a proxy's streams may cross the
            # SETTINGS that lowered the limit, and its others go on. REFUSED_STREAM tells it
            # the request was not processed, so it may retry it (§8.7).
            self.highest_stream_id = stream_id
            raise HTTP2StreamError(
                stream_id, ErrorCode.REFUSED_STREAM, "more streams at once than SETTINGS allowed"
            )
        end = flags & fr.END_STREAM
        if stream is None:
            if not opens:
                self._headers_on_closed(stream_id, events)
                return
            self.highest_stream_id = stream_id
            state = StreamState.HALF_CLOSED_REMOTE if end else StreamState.OPEN
            stream = _Stream(stream_id, self._stream_window, self._peer_initial_window, state)
            self._streams[stream_id] = stream
            if not end:
                stream.expected = _content_length(headers)
            events.append(RequestReceived(stream_id, headers, bool(end)))
            return
        # A second field block ends the request with trailers (§8.1).
        if stream.state is StreamState.HALF_CLOSED_REMOTE:
            raise HTTP2StreamError(stream_id, ErrorCode.STREAM_CLOSED, "HEADERS after the end")
        if not end:
            raise HTTP2StreamError(stream_id, ErrorCode.PROTOCOL_ERROR, "trailers that go on")
        if any(name[:1] == b":" for name, _ in headers):
            raise HTTP2StreamError(stream_id, ErrorCode.PROTOCOL_ERROR, "pseudo-header trailer")
        if stream.expected >= 0 and stream.received != stream.expected:
            raise HTTP2StreamError(
                stream_id, ErrorCode.PROTOCOL_ERROR, "a body unlike its content-length"
            )
        self._remote_end(stream)
        events.append(TrailersReceived(stream_id, headers))

    def _headers_on_closed(self, stream_id: int, events: list[Event]) -> None:
        if not stream_id & 1:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on a server's stream")
        how = self._closed.get(stream_id)
        if how is ClosedBy.RESET_SENT:
            events.append(FrameIgnored(stream_id, fr.HEADERS))
        elif how is ClosedBy.RESET_RECEIVED:
            raise HTTP2StreamError(stream_id, ErrorCode.STREAM_CLOSED, "HEADERS after a reset")
        elif how is ClosedBy.END_STREAM:
            raise HTTP2ConnectionError(ErrorCode.STREAM_CLOSED, "HEADERS on a closed stream")
        else:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "a stream id used up")

    def _priority(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            if stream_id in self._streams:
                raise HTTP2StreamError(stream_id, ErrorCode.FRAME_SIZE_ERROR, "PRIORITY size")
            # (An idle or closed stream cannot be reset: the connection is.)
            raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PRIORITY size")
        events.append(PriorityReceived(stream_id))

    def _rst_stream(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM size")
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            events.append(FrameIgnored(stream_id, fr.RST_STREAM))  # never answered (§5.4.2)
            return
        code = fr.u32(payload)
        self._forget(stream, ClosedBy.RESET_RECEIVED)
        events.append(StreamReset(stream_id, code, True))

    def _settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & fr.ACK:
            if payload:
                raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a body")
            solicited = self._settings_unacked > 0
            if solicited:
                self._settings_unacked -= 1
            events.append(SettingsAcknowledged(solicited))
            return
        if len(payload) % 6:
            raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS size")
        changed: dict[int, int] = {}
        for setting, value in fr.parse_settings(payload):  # in order (§6.5.3)
            if setting == fr.Setting.INITIAL_WINDOW_SIZE:
                self._initial_window_changed(value)
            elif setting == fr.Setting.MAX_FRAME_SIZE:
                if not fr.DEFAULT_MAX_FRAME_SIZE <= value <= fr.MAX_FRAME_SIZE_LIMIT:
                    raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE")
                self.max_outbound_frame = value
            elif setting in _FLAG_SETTINGS and value > 1:
                raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "a setting not 0 or 1")
            # HEADER_TABLE_SIZE bounds a table the encoder never uses; the others bound
            # what a server does not send (streams it opens, requests' fields); and unknown
            # settings are ignored (§6.5.2).
            changed[setting] = value
        self._out.append(_SETTINGS_ACK)
        events.append(SettingsChanged(changed))

    def _initial_window_changed(self, value: int) -> None:
        """Every stream's window moves by the change (§6.9.2), below 0 if need be."""
        if value > fr.MAX_WINDOW:
            raise HTTP2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE")
        delta = value - self._peer_initial_window
        self._peer_initial_window = value
        for stream in self._streams.values():
            stream.out_window += delta
            if stream.out_window > fr.MAX_WINDOW:
                raise HTTP2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "a window beyond 2^31-1")

    def _push_promise(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE from a client (§8.4)")

    def _ping(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING size")
        if flags & fr.ACK:
            events.append(PingAcknowledged(payload))
        else:
            self._out.append(_PING_ACK_HEADER + payload)
            events.append(PingReceived(payload))

    def _goaway(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id:
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY size")
        last, code = fr.u32_pair(payload)
        events.append(GoAwayReceived(code, last & fr.STREAM_ID_MASK))

    def _window_update(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if len(payload) != 4:
            raise HTTP2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE size")
        increment = fr.u32(payload) & fr.STREAM_ID_MASK
        if not stream_id:
            if not increment:
                raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "a window opened by 0")
            self.outbound_window += increment
            if self.outbound_window > fr.MAX_WINDOW:
                raise HTTP2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "a window beyond 2^31-1")
            events.append(WindowUpdated(0, increment))
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on idle stream")
            events.append(FrameIgnored(stream_id, fr.WINDOW_UPDATE))  # §5.1: ignored
            return
        if not increment:
            raise HTTP2StreamError(stream_id, ErrorCode.PROTOCOL_ERROR, "a window opened by 0")
        stream.out_window += increment
        if stream.out_window > fr.MAX_WINDOW:
            raise HTTP2StreamError(stream_id, ErrorCode.FLOW_CONTROL_ERROR, "window beyond 2^31-1")
        events.append(WindowUpdated(stream_id, increment))

    # Streams' ends

    def _is_idle(self, stream_id: int) -> bool:
        """Never opened: the client's next ids, and every id of the server's (it opens none)."""
        return stream_id > self.highest_stream_id or not stream_id & 1

    def _on_closed(self, stream_id: int, kind: int, events: list[Event]) -> None:
        """DATA on a stream the server no longer has (§5.1)."""
        if self._is_idle(stream_id):
            raise HTTP2ConnectionError(ErrorCode.PROTOCOL_ERROR, "a frame on an idle stream")
        if self._closed.get(stream_id) is ClosedBy.RESET_SENT:
            events.append(FrameIgnored(stream_id, kind))  # sent before the client saw the reset
            return
        raise HTTP2StreamError(stream_id, ErrorCode.STREAM_CLOSED, "a frame on a closed stream")

    def _stream_error(self, exc: HTTP2StreamError, events: list[Event]) -> None:
        stream_id = exc.stream_id
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._forget(stream, ClosedBy.RESET_SENT)
        else:
            self._remember(stream_id, ClosedBy.RESET_SENT)  # one reset a stream (§5.4.2)
        self._out.append(fr.rst_stream_frame(stream_id, exc.code))
        events.append(StreamReset(stream_id, exc.code, False))

    def _remote_end(self, stream: _Stream) -> None:
        if stream.state is StreamState.OPEN:
            stream.state = StreamState.HALF_CLOSED_REMOTE
        else:
            self._forget(stream, ClosedBy.END_STREAM)

    def _local_end(self, stream: _Stream) -> None:
        if stream.state is StreamState.OPEN:
            stream.state = StreamState.HALF_CLOSED_LOCAL
        else:
            self._forget(stream, ClosedBy.END_STREAM)

    def _forget(self, stream: _Stream, how: ClosedBy) -> None:
        stream.state = StreamState.CLOSED
        del self._streams[stream.stream_id]
        self._remember(stream.stream_id, how)

    def _remember(self, stream_id: int, how: ClosedBy) -> None:
        """How a stream closed, for the last `closed_streams_kept` (an older one's late frame
        is taken for a connection error, as a stream id used up)."""
        closed = self._closed
        if stream_id not in closed:
            order = self._closed_order
            order.append(stream_id)
            if len(order) > self._closed_kept:
                del closed[order.popleft()]
        closed[stream_id] = how

    def _discarded(self, size: int) -> None:
        """Flow-controlled bytes nobody will take: the connection's window gets them back."""
        self.acknowledge(0, size)


def _content_length(headers: Fields) -> int:
    """The request's content-length, or -1 (an invalid one is http2_rules.py's to refuse)."""
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return -1
