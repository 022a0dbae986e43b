"""What a client's HTTP/2 frames mean to the server, as http2_connection.py reports them: one
event per frame that asks something of the session (a request, a body chunk, a reset, a window
opened) or that the flood meters count (PING, SETTINGS, PRIORITY, frames ignored).

The end of a request rides on the event of the frame that carried END_STREAM (`end_stream`);
trailers always end it.
"""

from __future__ import annotations

from dataclasses import dataclass

Fields = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class RequestReceived:
    stream_id: int
    headers: Fields
    end_stream: bool


@dataclass(slots=True)
class DataReceived:
    """Body bytes (padding removed: the connection has given its window back already)."""

    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(slots=True)
class TrailersReceived:
    stream_id: int
    headers: Fields


@dataclass(slots=True)
class StreamReset:
    """The stream is closed by a reset: the client's RST_STREAM (`remote`), or the connection's
    own, for a stream error the client made."""

    stream_id: int
    error_code: int
    remote: bool


@dataclass(slots=True)
class WindowUpdated:
    """The client opened a window: the connection's (stream 0) or an open stream's."""

    stream_id: int
    delta: int


@dataclass(slots=True)
class SettingsChanged:
    changed: dict[int, int]


@dataclass(slots=True)
class SettingsAcknowledged:
    """`solicited`: it answers a SETTINGS frame of the server's."""

    solicited: bool


@dataclass(slots=True)
class PingReceived:
    """Answered already (the ACK is queued)."""

    data: bytes


@dataclass(slots=True)
class PingAcknowledged:
    data: bytes


@dataclass(slots=True)
class PriorityReceived:
    """A PRIORITY frame (RFC 9113 deprecates its scheme: it changes nothing here)."""

    stream_id: int


@dataclass(slots=True)
class UnknownFrameReceived:
    frame_type: int


@dataclass(slots=True)
class FrameIgnored:
    """A frame on a stream already closed, which RFC 9113 §5.1 says to ignore (after a reset
    this side sent, DATA and HEADERS the client had in flight; WINDOW_UPDATE and RST_STREAM
    after the stream's end)."""

    stream_id: int
    frame_type: int


@dataclass(slots=True)
class GoAwayReceived:
    error_code: int
    last_stream_id: int


Event = (
    RequestReceived
    | DataReceived
    | TrailersReceived
    | StreamReset
    | WindowUpdated
    | SettingsChanged
    | SettingsAcknowledged
    | PingReceived
    | PingAcknowledged
    | PriorityReceived
    | UnknownFrameReceived
    | FrameIgnored
    | GoAwayReceived
)
