"""interpserve's HTTP/2 state machine (http2_connection.py) against the h2 library's, the
reference: the same client frames, one at a time, go to an h2 server connection set up as this
server used it (header validation off, the same settings, HPACK and bounded field block) and to
interpserve's; the same request rules (http2_rules.py) and the same answers are applied to
what each delivers, and after every frame the two must agree on what they delivered (requests
and their heads, bodies, trailers, ends, the client's resets and settings), on what they sent
(responses, resets, GOAWAY, the connection's window updates, the ACKs) and on their state
(open streams, both ways' flow-control windows).

Client programs are drawn by hypothesis: well-formed ones, of every request shape (bodies,
trailers, CONTINUATION, padding, priority, window updates, resets, SETTINGS changes, PING,
unknown frames, the server answering in between), which must agree frame for frame; and
corrupted ones (a frame dropped, repeated, swapped, retyped, resized, moved to another stream,
its flags or a byte flipped, or a stray frame put in), which must agree until the first frame
where RFC 9113 and h2 part: each such place is named in DIVERGENCES, follows the RFC, and has
a program of its own below (test_rfc_where_h2_parts). Where field validity is concerned (§8.2,
§8.3), the rules are held against h2's own validation in test_field_rules_agree_with_h2.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h2.events as h2e
import pytest
from h2.connection import H2Connection
from h2.exceptions import DenialOfServiceError, ProtocolError
from h2.frame_buffer import FrameBuffer
from h2.settings import Settings
from h2.utilities import HeaderValidationFlags, validate_headers
from hpack import Decoder, Encoder
from hyperframe.frame import Frame as HFrame
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench.h2_connection import h2_server
from interpserve.config import Config
from interpserve.errors import BadRequest, HTTP2ConnectionError, MalformedRequest
from interpserve.frontend import http2_events as ev
from interpserve.frontend import http2_frames as fr
from interpserve.frontend.http2 import (
    CLOSED_STREAMS_KEPT,
    CONNECTION_WINDOW,
    STREAM_WINDOW,
    new_connection,
)
from interpserve.frontend.http2_connection import ClosedBy, HTTP2Connection, StreamState
from interpserve.frontend.http2_hpack import CachingDecoder
from interpserve.frontend.http2_rules import check_trailers, request_head
from interpserve.frontend.http_rules import Limits

CONFIG = Config()
LIMITS = Limits()
E = fr.ErrorCode
Observation = tuple[Any, ...]


# The two servers, driven alike ---------------------------------------------------------------


def _head(fields: list[tuple[bytes, bytes]], end_stream: bool) -> Any:
    """What the session makes of a request's fields: its head, or the status it answers."""
    try:
        head = request_head(list(fields), end_stream, LIMITS)
    except MalformedRequest:
        return "malformed"
    except BadRequest as exc:
        return exc.status
    return (head.method, head.target, tuple(head.headers), head.has_body, head.expect_continue)


class Wire:
    """Reads what a server sent: the frames a client would act on, as observations."""

    def __init__(self) -> None:
        self.buffer = b""
        self.decoder = Decoder()
        self.block: list[bytes] = []
        self.block_flags = 0

    def feed(self, data: bytes) -> list[Observation]:
        self.buffer += data
        seen: list[Observation] = []
        frames, used, too_large = fr.split_frames(self.buffer, fr.MAX_FRAME_SIZE_LIMIT)
        assert not too_large
        self.buffer = self.buffer[used:]
        for kind, flags, stream_id, payload in frames:
            if kind in (fr.HEADERS, fr.CONTINUATION):
                self.block.append(payload)
                if kind == fr.HEADERS:
                    self.block_flags = flags
                if flags & fr.END_HEADERS:
                    fields = self.decoder.decode(b"".join(self.block), raw=True)
                    self.block = []
                    end = bool(self.block_flags & fr.END_STREAM)
                    seen.append(("sent headers", stream_id, tuple(fields), end))
            elif kind == fr.DATA:
                seen.append(("sent data", stream_id, payload, bool(flags & fr.END_STREAM)))
            elif kind == fr.RST_STREAM:
                seen.append(("sent reset", stream_id, fr.u32(payload)))
            elif kind == fr.GOAWAY:
                seen.append(("sent goaway", fr.u32_pair(payload)[1]))
            elif kind == fr.WINDOW_UPDATE and not stream_id:
                seen.append(("sent window update", fr.u32(payload)))
            elif kind == fr.SETTINGS:
                seen.append(("sent settings", flags))
            elif kind == fr.PING:
                seen.append(("sent ping", flags, payload))
        return seen


class Server:
    """One server connection under the harness: frames in, observations out."""

    name = ""

    def __init__(self) -> None:
        self.wire = Wire()
        self.failed = False
        self.error: Exception | None = None

    def feed(self, data: bytes, kind: int) -> list[Observation]:
        raise NotImplementedError

    # What the session does with a request or trailers (the same for both).

    def _request(self, stream_id: int, fields: Any, end_stream: bool) -> list[Observation]:
        head = _head(fields, end_stream)
        if head == "malformed":
            self.reset(stream_id, E.PROTOCOL_ERROR)
        elif isinstance(head, int):
            self.send_headers(stream_id, [(b":status", b"%d" % head)], True)
            if not end_stream:
                self.reset(stream_id, E.NO_ERROR)
        return [("request", stream_id, head)]

    def _trailers(self, stream_id: int, fields: Any) -> list[Observation]:
        try:
            check_trailers(list(fields))
        except MalformedRequest:
            self.reset(stream_id, E.PROTOCOL_ERROR)
            return [("trailers", stream_id, "malformed")]
        return [("trailers", stream_id, tuple(fields))]

    # What the harness answers with, and the state compared.

    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        raise NotImplementedError

    def send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        raise NotImplementedError

    def reset(self, stream_id: int, code: int) -> None:
        raise NotImplementedError

    def flush(self) -> list[Observation]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def sendable(self, stream_id: int) -> bool:
        raise NotImplementedError

    def window(self, stream_id: int) -> int:
        raise NotImplementedError

    def max_frame(self) -> int:
        raise NotImplementedError


class Ours(Server):
    name = "interpserve"

    def __init__(self) -> None:
        super().__init__()
        self.conn: HTTP2Connection = new_connection(CONFIG)
        self.conn.initiate()
        self.wire.feed(self.conn.data_to_send())

    def feed(self, data: bytes, kind: int) -> list[Observation]:
        seen: list[Observation] = []
        try:
            events = self.conn.receive(data)
        except HTTP2ConnectionError as exc:
            self.failed, self.error = True, exc
            seen.append(("connection error",))
            events = []
        for happened in events:
            seen += self._event(happened)
        return seen + self.flush()

    def _event(self, event: ev.Event) -> list[Observation]:
        if isinstance(event, ev.RequestReceived):
            seen = self._request(event.stream_id, event.headers, event.end_stream)
            return seen + [("end", event.stream_id)] * event.end_stream
        if isinstance(event, ev.DataReceived):
            self.conn.acknowledge(event.stream_id, len(event.data))  # (it took the padding)
            end = [("end", event.stream_id)] if event.end_stream else []
            return [("data", event.stream_id, event.data), *end]
        if isinstance(event, ev.TrailersReceived):
            return [*self._trailers(event.stream_id, event.headers), ("end", event.stream_id)]
        if isinstance(event, ev.StreamReset):
            return [("client reset", event.stream_id, event.error_code)] if event.remote else []
        if isinstance(event, ev.WindowUpdated):
            return [("window", event.stream_id, event.delta)]
        if isinstance(event, ev.SettingsChanged):
            return [("settings", tuple(sorted(event.changed.items())))]
        if isinstance(event, ev.SettingsAcknowledged):
            return [("settings ack",)]
        if isinstance(event, ev.PingReceived):
            return [("ping", event.data)]
        if isinstance(event, ev.PingAcknowledged):
            return [("ping ack", event.data)]
        if isinstance(event, ev.PriorityReceived):
            return [("priority", event.stream_id)]
        if isinstance(event, ev.UnknownFrameReceived):
            return [("unknown", event.frame_type)]
        if isinstance(event, ev.GoAwayReceived):
            return [("goaway", event.error_code, event.last_stream_id)]
        assert isinstance(event, ev.FrameIgnored)
        return []

    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        self.conn.send_headers(stream_id, fields, end)

    def send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        self.conn.send_data(stream_id, data, end)

    def reset(self, stream_id: int, code: int) -> None:
        self.conn.reset(stream_id, code)

    def flush(self) -> list[Observation]:
        return self.wire.feed(self.conn.data_to_send())

    def state(self) -> dict[str, Any]:
        conn = self.conn
        streams = conn._streams
        return {
            "open": sorted(streams),
            "highest": conn.highest_stream_id,
            "out": conn.outbound_window,
            "in": conn._in_window,
            "stream out": {sid: conn.window(sid) for sid in streams},
            "stream in": {
                sid: s.in_window for sid, s in streams.items() if s.state is StreamState.OPEN
            },
        }

    def sendable(self, stream_id: int) -> bool:
        stream = self.conn._streams.get(stream_id)
        return stream is not None and stream.state is not StreamState.HALF_CLOSED_LOCAL

    def window(self, stream_id: int) -> int:
        return self.conn.window(stream_id)

    def max_frame(self) -> int:
        return self.conn.max_outbound_frame


class _BoundedFrameBuffer(FrameBuffer):
    """h2's frame buffer as this server extended it: a field block is bounded in bytes while
    its CONTINUATION frames come (CVE-2024-27316)."""

    def __init__(self, max_block: int) -> None:
        super().__init__(server=True)
        self._max_block = max_block

    def _update_header_buffer(self, f: HFrame | None) -> HFrame | None:
        out = super()._update_header_buffer(f)
        block = self._headers_buffer
        if block and sum(len(frame.data) for frame in block) > self._max_block:
            raise DenialOfServiceError("header block too large")
        return out


class _H2Server(H2Connection):
    MAX_CLOSED_STREAMS = CLOSED_STREAMS_KEPT


class Reference(Server):
    """h2, set up as this server used it before it had its own connection."""

    name = "h2"

    def __init__(self) -> None:
        super().__init__()
        conn = self.conn = h2_server(_H2Server)
        conn.local_settings = Settings(
            client=False,
            initial_values={
                fr.Setting.MAX_CONCURRENT_STREAMS: CONFIG.http2_max_concurrent_streams,
                fr.Setting.MAX_HEADER_LIST_SIZE: CONFIG.http2_max_header_list_size,
                fr.Setting.HEADER_TABLE_SIZE: CONFIG.http2_header_table_size,
                fr.Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        assert isinstance(conn.decoder, CachingDecoder)
        conn.decoder.max_header_list_size = CONFIG.http2_max_header_list_size
        conn.decoder.max_allowed_table_size = CONFIG.http2_header_table_size
        conn.incoming_buffer = _BoundedFrameBuffer(CONFIG.http2_max_header_list_size)
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - fr.DEFAULT_WINDOW)
        self.wire.feed(conn.data_to_send())

    def feed(self, data: bytes, kind: int) -> list[Observation]:
        seen: list[Observation] = []
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.failed, self.error = True, exc
            seen.append(("connection error",))
            events = []
        # (h2 reports a HEADERS frame's priority fields too: interpserve ignores them.)
        attached = {id(getattr(e, "priority_updated", None)) for e in events}
        for happened in events:
            if id(happened) not in attached:
                seen += self._event(happened)
        return seen + self.flush()

    def _event(self, event: h2e.Event) -> list[Observation]:
        conn = self.conn
        if isinstance(event, h2e.RequestReceived):
            return self._request(event.stream_id, event.headers, event.stream_ended is not None)
        if isinstance(event, h2e.DataReceived):
            data = event.data
            padding = event.flow_controlled_length - len(data)
            if padding:  # as the session did
                conn.acknowledge_received_data(padding, event.stream_id)
            if data:
                conn.acknowledge_received_data(len(data), event.stream_id)
            return [("data", event.stream_id, data)]
        if isinstance(event, h2e.StreamEnded):
            return [("end", event.stream_id)]
        if isinstance(event, h2e.TrailersReceived):
            return self._trailers(event.stream_id, event.headers)
        if isinstance(event, h2e.StreamReset):
            return (
                [("client reset", event.stream_id, event.error_code)] if event.remote_reset else []
            )
        if isinstance(event, h2e.WindowUpdated):
            return [("window", event.stream_id, event.delta)]
        if isinstance(event, h2e.RemoteSettingsChanged):
            changed = {int(k): v.new_value for k, v in event.changed_settings.items()}
            return [("settings", tuple(sorted(changed.items())))]
        if isinstance(event, h2e.SettingsAcknowledged):
            return [("settings ack",)]
        if isinstance(event, h2e.PingReceived):
            return [("ping", event.ping_data)]
        if isinstance(event, h2e.PingAckReceived):
            return [("ping ack", event.ping_data)]
        if isinstance(event, h2e.PriorityUpdated):
            return [("priority", event.stream_id)]
        if isinstance(event, h2e.UnknownFrameReceived):
            return [("unknown", event.frame.type)]
        if isinstance(event, h2e.ConnectionTerminated):
            return [("goaway", event.error_code, event.last_stream_id)]
        raise AssertionError(f"unexpected h2 event {event!r}")

    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        self.conn.send_headers(stream_id, fields, end_stream=end)

    def send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        self.conn.send_data(stream_id, data, end_stream=end)

    def reset(self, stream_id: int, code: int) -> None:
        self.conn.reset_stream(stream_id, code)

    def flush(self) -> list[Observation]:
        return self.wire.feed(self.conn.data_to_send())

    def _open(self) -> dict[int, Any]:
        return {sid: s for sid, s in self.conn.streams.items() if not s.closed}

    def state(self) -> dict[str, Any]:
        conn = self.conn
        streams = self._open()
        return {
            "open": sorted(streams),
            "highest": conn.highest_inbound_stream_id,
            "out": conn.outbound_flow_control_window,
            "in": conn.inbound_flow_control_window,
            "stream out": {sid: conn.local_flow_control_window(sid) for sid in streams},
            "stream in": {
                sid: s._inbound_window_manager.current_window_size
                for sid, s in streams.items()
                if s.state_machine.state.name == "OPEN"
            },
        }

    def sendable(self, stream_id: int) -> bool:
        stream = self._open().get(stream_id)
        return stream is not None and stream.state_machine.state.name != "HALF_CLOSED_LOCAL"

    def window(self, stream_id: int) -> int:
        return self.conn.local_flow_control_window(stream_id)

    def max_frame(self) -> int:
        return self.conn.max_outbound_frame_size


# Divergences: where h2 departs from RFC 9113 and interpserve follows the RFC --------------------


@dataclass
class Step:
    """One frame fed to both servers, and what each made of it."""

    frame: fr.Frame
    ours: list[Observation]
    theirs: list[Observation]
    ours_error: Exception | None
    their_error: Exception | None
    before: dict[str, Any]  # interpserve's state before the frame


def _resets(seen: list[Observation]) -> set[int]:
    return {o[2] for o in seen if o[0] == "sent reset"}


def _reset_instead(step: Step, code: int, *h2_words: str) -> bool:
    """interpserve reset a stream with `code` where h2 ended the connection (saying one of
    `h2_words`)."""
    return code in _resets(step.ours) and step.ours_error is None and _h2_says(step, *h2_words)


def _h2_says(step: Step, *words: str) -> bool:
    error = step.their_error
    return error is not None and any(w in f"{type(error).__name__} {error}" for w in words)


def _ours_says(step: Step, *words: str) -> bool:
    return step.ours_error is not None and any(w in str(step.ours_error) for w in words)


def _only_ours_failed(step: Step, *words: str) -> bool:
    return step.their_error is None and _ours_says(step, *words)


def _ignored_by_us(step: Step) -> bool:
    """interpserve ignored a frame that h2 answered with a reset (and nothing else)."""
    ours = [o for o in step.ours if o[0] != "sent window update"]
    theirs = [o for o in step.theirs if o[0] != "sent window update"]
    return (
        step.ours_error is None
        and step.their_error is None
        and not ours
        and len(theirs) == 1
        and theirs[0][0] == "sent reset"
        and theirs[0][2] == E.STREAM_CLOSED
    )


# name: (the RFC's word, how to know a step where h2 and interpserve part for that reason)
DIVERGENCES: dict[str, tuple[str, Callable[[Step], bool]]] = {
    "a malformed message is a stream error": (
        "§8.1.1: a malformed request (trailers without END_STREAM, a body unlike its "
        "content-length, an invalid content-length) is a stream error of type PROTOCOL_ERROR",
        lambda s: _reset_instead(
            s, E.PROTOCOL_ERROR, "END_STREAM", "content-length", "InvalidBodyLength"
        ),
    ),
    "a stream beyond the limit is refused": (
        "§5.1.2: a stream that exceeds SETTINGS_MAX_CONCURRENT_STREAMS is a stream error of "
        "type PROTOCOL_ERROR or REFUSED_STREAM",
        lambda s: _reset_instead(s, E.REFUSED_STREAM, "TooManyStreams", "concurrent streams"),
    ),
    "priority signals are not checked": (
        "§5.3.2: RFC 7540's priority scheme is deprecated; nothing says a stream may not "
        "depend on itself any more",
        lambda s: s.ours_error is None and _h2_says(s, "depend on itself"),
    ),
    "pseudo-header fields in trailers are a stream error": (
        "§8.1: trailers must not include pseudo-header fields, so they are malformed: a "
        "stream error PROTOCOL_ERROR where the field block is decoded (h2 hands them up first)",
        lambda s: (
            E.PROTOCOL_ERROR in _resets(s.ours)
            and s.ours_error is None
            and any(o[0] == "trailers" and o[2] == "malformed" for o in s.theirs)
        ),
    ),
    "PRIORITY of the wrong size is a stream error": (
        "§6.3: a PRIORITY frame with a length other than 5 is a stream error FRAME_SIZE_ERROR",
        lambda s: _reset_instead(s, E.FRAME_SIZE_ERROR, "PRIORITY", "FrameDataMissing"),
    ),
    "a stream's zero window increment is a stream error": (
        "§6.9: an increment of 0 is a stream error PROTOCOL_ERROR (a connection error only "
        "for the connection's window)",
        lambda s: _reset_instead(s, E.PROTOCOL_ERROR, "non-compliant"),
    ),
    "a stream's window overflow is a stream error": (
        "§6.9.1: a WINDOW_UPDATE that takes a stream's window beyond 2^31-1 resets the stream "
        "with FLOW_CONTROL_ERROR",
        lambda s: _reset_instead(s, E.FLOW_CONTROL_ERROR, "FlowControl", "flow control"),
    ),
    "SETTINGS ACK with a payload is FRAME_SIZE_ERROR": (
        "§6.5: a SETTINGS ACK with a length other than 0 is a connection error FRAME_SIZE_ERROR",
        lambda s: _ours_says(s, "SETTINGS ACK with a body") and s.their_error is not None,
    ),
    "RST_STREAM on an idle stream is a connection error": (
        "§6.4: RST_STREAM on an idle stream is a connection error PROTOCOL_ERROR",
        lambda s: _only_ours_failed(s, "RST_STREAM on an idle stream"),
    ),
    "a field block that does not decode is COMPRESSION_ERROR": (
        "§4.3: a decoding error in a field block is a connection error COMPRESSION_ERROR",
        lambda s: (
            isinstance(s.ours_error, HTTP2ConnectionError)
            and s.ours_error.code == E.COMPRESSION_ERROR
            and _h2_says(s, "decoding")
        ),
    ),
    "a bad preface may go without GOAWAY": (
        "§3.4: an invalid preface is a connection error PROTOCOL_ERROR, and its GOAWAY MAY be "
        "omitted (interpserve sends it; h2 does not)",
        lambda s: _ours_says(s, "not HTTP/2's preface") and _h2_says(s, "preamble"),
    ),
    "the preface is followed by SETTINGS": (
        "§3.4: the client's preface is the magic string followed by a SETTINGS frame",
        lambda s: _ours_says(s, "not followed by SETTINGS"),
    ),
    "frames after a reset the server sent are ignored": (
        "§5.1 (closed): frames received on a stream after sending RST_STREAM are ignored",
        _ignored_by_us,
    ),
    "frames go on after the client's GOAWAY": (
        "§6.8: GOAWAY stops new streams; the ones under way go on, with their frames",
        lambda s: s.ours_error is None and _h2_says(s, "ConnectionState.CLOSED"),
    ),
    "a HEADERS frame may be all padding": (
        "§6.2: only padding as long as the payload or longer is an error; a field block "
        "fragment may be empty",
        lambda s: (
            s.ours_error is None
            and _h2_says(s, "Padding is too long", "InvalidPadding", "invalid padding")
        ),
    ),
    "padding cannot cover the priority fields": (
        "§6.2: the Pad Length, the priority fields and the padding are all in the payload",
        lambda s: s.their_error is None and _ours_says(s, "HEADERS padding too long"),
    ),
    "an oversized frame is refused from its header": (
        "§4.2: a frame larger than SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR (h2 waits for "
        "its whole payload first)",
        lambda s: _only_ours_failed(s, "larger than SETTINGS_MAX_FRAME_SIZE"),
    ),
    "a frame is checked once it is whole": (
        "§5.4: an endpoint reports an error when it detects it (h2 checks a frame's header "
        "before its payload is in; interpserve waits for the whole frame, within "
        "SETTINGS_MAX_FRAME_SIZE)",
        lambda s: not s.ours and s.ours_error is None and _h2_says(s, "invalid header"),
    ),
    "PUSH_PROMISE from a client is a connection error": (
        "§8.4: a server treats any PUSH_PROMISE as a connection error PROTOCOL_ERROR (h2 first "
        "waits for the end of its field block)",
        lambda s: _only_ours_failed(s, "PUSH_PROMISE from a client"),
    ),
    "CONTINUATION without its HEADERS is a connection error": (
        "§6.10: a CONTINUATION frame not preceded by HEADERS or CONTINUATION without "
        "END_HEADERS is a connection error PROTOCOL_ERROR",
        lambda s: _ours_says(s, "CONTINUATION without its HEADERS"),
    ),
    "WINDOW_UPDATE's reserved bit is ignored": (
        "§6.9: the increment is 31 bits after a reserved bit, which is ignored on receipt",
        lambda s: (
            s.ours_error is None
            and s.frame[0] == fr.WINDOW_UPDATE
            and s.frame[3][:1] >= b"\x80"
            and _h2_says(s, "non-compliant")
        ),
    ),
    "GOAWAY's reserved bit is ignored": (
        "§6.8: the last stream id is 31 bits after a reserved bit, which is ignored on receipt",
        lambda s: (
            any(o[0] == "goaway" for o in s.ours)
            and [o for o in s.ours if o[0] == "goaway"]
            == [(o[0], o[1], o[2] & fr.STREAM_ID_MASK) for o in s.theirs if o[0] == "goaway"]
        ),
    ),
    "a frame that breaks two rules may be reported for either": (
        "§5.4: an endpoint that detects several errors MAY report any one of them, with any "
        "applicable code (both end the connection)",
        lambda s: s.ours_error is not None and s.their_error is not None,
    ),
    "extension frames are ignored": (
        "§5.5: frames of unknown or unsupported types are ignored (h2 parses ALTSVC, RFC 7838)",
        lambda s: s.ours_error is None and (s.frame[0] == 0xA or _h2_says(s, "AltSvc", "ALTSVC")),
    ),
}


def divergence(step: Step) -> str | None:
    for name, (_, applies) in DIVERGENCES.items():
        if applies(step):
            return name
    return None


# Running a program ---------------------------------------------------------------------------


def _sorted(seen: list[Observation]) -> list[Observation]:
    return sorted(seen, key=repr)


@dataclass
class Run:
    ours: Ours = field(default_factory=Ours)
    theirs: Reference = field(default_factory=Reference)
    steps: int = 0
    diverged: str | None = None
    answered: set[int] = field(default_factory=set)  # streams whose response has begun

    @property
    def over(self) -> bool:
        return self.diverged is not None or self.ours.failed or self.theirs.failed

    def client(self, data: bytes) -> None:
        """Feed one client frame (or the preface) to both, and compare."""
        if self.over:
            return
        frames, _, _ = fr.split_frames(data, fr.MAX_FRAME_SIZE_LIMIT)
        frame = frames[0] if frames else (-1, 0, 0, data)
        before = self.ours.state()
        ours = self.ours.feed(data, frame[0])
        theirs = self.theirs.feed(data, frame[0])
        self.steps += 1
        step = Step(frame, ours, theirs, self.ours.error, self.theirs.error, before)
        if _sorted(ours) != _sorted(theirs) or self.ours.failed != self.theirs.failed:
            name = divergence(step)
            assert name is not None, (
                f"step {self.steps}, frame {frame[:3]} {frame[3][:40]!r}:\n"
                f"  interpserve: {ours} {self.ours.error!r}\n"
                f"  h2:          {theirs} {self.theirs.error!r}"
            )
            self.diverged = name
            return
        if not self.over:
            assert self.ours.state() == self.theirs.state(), f"step {self.steps}, {frame[:3]}"

    def reset_by_server(self, stream_id: int) -> bool:
        return self.ours.conn._closed.get(stream_id) is ClosedBy.RESET_SENT

    def answer(self, stream_id: int, kind: str, size: int, end: bool) -> None:
        """The same answer from both servers, where both may send on the stream."""
        if self.over or not (self.ours.sendable(stream_id) and self.theirs.sendable(stream_id)):
            return
        if kind == "headers":
            if stream_id in self.answered:
                end = True  # trailers
                fields = [(b"x-trailer", b"%d" % size)]
            else:
                fields = [(b":status", b"200"), (b"x-size", b"%d" % size)]
            self.answered.add(stream_id)
            for server in (self.ours, self.theirs):
                server.send_headers(stream_id, fields, end)
        elif kind == "data":
            if stream_id not in self.answered:
                return
            size = min(size, self.ours.window(stream_id), self.ours.max_frame())
            if size < 0:
                return
            data = bytes(range(256)) * (size // 256) + bytes(size % 256)
            for server in (self.ours, self.theirs):
                server.send_data(stream_id, data, end)
        else:
            for server in (self.ours, self.theirs):
                server.reset(stream_id, size % 14)
        ours, theirs = self.ours.flush(), self.theirs.flush()
        assert _sorted(ours) == _sorted(theirs), (ours, theirs)
        assert self.ours.state() == self.theirs.state()


# Well-formed client programs -----------------------------------------------------------------

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
VALUE = st.builds(
    lambda middle: middle.strip(" \t"),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS", "QUERY"])


@st.composite
def request_fields(draw: st.DrawFn, body: int | None) -> list[tuple[bytes, bytes]]:
    """A valid request's fields: pseudo-headers first, then regular ones (cookies split,
    te: trailers, a content-length that will be true)."""
    method = draw(METHODS)
    path = "/" + draw(st.text("abc/%?=&xyz019", max_size=20))
    if method == "OPTIONS" and draw(st.booleans()):
        path = "*"
    pseudo = [(":method", method), (":scheme", draw(st.sampled_from(["http", "https"])))]
    pseudo.append((":path", path))
    authority = draw(st.sampled_from(["a", "example.com:8443", "127.0.0.1"]))
    if draw(st.booleans()):
        pseudo.insert(draw(st.integers(0, len(pseudo))), (":authority", authority))
    regular = [(name, value) for name, value in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=5))]
    regular = [(n, v) for n, v in regular if n not in ("host", "te", "content-length", "cookie")]
    if draw(st.booleans()):
        regular += [("cookie", f"c{i}={draw(TOKEN)}") for i in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        regular.append(("te", "trailers"))
    if body is not None and draw(st.booleans()):
        regular.append(("content-length", str(body)))
    fields = pseudo + draw(st.permutations(regular))
    return [(name.encode(), value.encode()) for name, value in fields]


class Client:
    """A well-behaved client's frames, drawn one action at a time."""

    def __init__(self, draw: st.DrawFn, run: Run) -> None:
        self.draw = draw
        self.run = run
        self.encoder = Encoder()
        self.next_id = 1
        self.open: dict[int, dict[str, Any]] = {}  # streams whose request is not over
        self.used: list[int] = []
        self.window = fr.DEFAULT_WINDOW  # the connection's, as a client must assume it
        self.settings_acked = False

    def send(self, *frames: bytes) -> None:
        for frame in frames:
            self.run.client(frame)

    def headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        """HEADERS, padded or with priority fields or neither, and CONTINUATION frames."""
        draw = self.draw
        block = self.encoder.encode(fields, huffman=draw(st.booleans()))
        cuts = sorted(draw(st.lists(st.integers(0, len(block)), max_size=3)))
        pieces = [block[a:b] for a, b in zip([0, *cuts], [*cuts, len(block)], strict=True)]
        flags = fr.END_STREAM if end else 0
        prefix = b""
        pad = b""
        priority = draw(st.booleans())
        # (h2 refuses a HEADERS frame that is all padding, which RFC 9113 allows: see
        # test_rfc_where_h2_parts.)
        if draw(st.booleans()) and (pieces[0] or priority):
            flags |= fr.PADDED
            pad = bytes(draw(st.integers(0, 20)))
            prefix += bytes([len(pad)])
        if priority:
            flags |= fr.PRIORITY_FLAG
            depends = draw(st.sampled_from([0, *self.used]))
            if depends == stream_id:
                depends = 0  # (see test_rfc_where_h2_parts)
            exclusive = draw(st.booleans()) << 31
            prefix += struct.pack(">LB", depends | exclusive, draw(st.integers(0, 255)))
        last = len(pieces) == 1
        frames = [
            fr.frame(
                fr.HEADERS,
                flags | (fr.END_HEADERS if last else 0),
                stream_id,
                prefix + pieces[0] + pad,
            )
        ]
        for i, piece in enumerate(pieces[1:], 2):
            end_headers = fr.END_HEADERS if i == len(pieces) else 0
            frames.append(fr.frame(fr.CONTINUATION, end_headers, stream_id, piece))
        self.send(*frames)

    def step(self) -> None:
        draw = self.draw
        for stream_id in [s for s in self.open if self.run.reset_by_server(s)]:
            del self.open[stream_id]  # (what it had in flight is ignored: see DIVERGENCES)
        actions = ["open", "ping", "settings", "priority", "window", "unknown", "answer"]
        if self.open:
            actions += ["data", "data", "trailers", "reset"]
        if not self.settings_acked:
            actions.append("ack")
        action = draw(st.sampled_from(actions))
        getattr(self, "_" + action)()

    def _open(self) -> None:
        draw = self.draw
        stream_id = self.next_id + 2 * draw(st.integers(0, 2))
        self.next_id = stream_id + 2
        has_body = draw(st.booleans())
        size = draw(st.integers(0, 3000)) if has_body else None
        fields = request_fields(size)
        chosen = draw(fields)
        self.headers(stream_id, chosen, end=not has_body)
        self.used.append(stream_id)
        if has_body:
            declared = dict(chosen).get(b"content-length")
            self.open[stream_id] = {"left": size, "exact": declared is not None, "window": 65535}

    def _data(self) -> None:
        draw = self.draw
        stream_id = draw(st.sampled_from(sorted(self.open)))
        stream = self.open[stream_id]
        room = min(stream["window"], self.window, fr.DEFAULT_MAX_FRAME_SIZE - 21)
        size = draw(st.integers(0, max(0, min(room, stream["left"]))))
        stream["left"] -= size
        end = (stream["left"] == 0 or not stream["exact"]) and draw(st.booleans())
        flags = fr.END_STREAM if end else 0
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        if draw(st.booleans()):
            pad = draw(st.integers(0, 20))
            flags |= fr.PADDED
            payload = bytes([pad]) + payload + bytes(pad)
        stream["window"] -= len(payload)
        self.window -= len(payload)
        self.send(fr.frame(fr.DATA, flags, stream_id, payload))
        if end:
            del self.open[stream_id]

    def _trailers(self) -> None:
        stream_id = self.draw(st.sampled_from(sorted(self.open)))
        if self.open[stream_id]["exact"] and self.open[stream_id]["left"]:
            return
        fields = [(b"x-checksum", self.draw(TOKEN).encode()), (b"grpc-status", b"0")]
        self.headers(stream_id, fields, end=True)
        del self.open[stream_id]

    def _reset(self) -> None:
        stream_id = self.draw(st.sampled_from(sorted(self.open)))
        code = self.draw(st.sampled_from([E.CANCEL, E.NO_ERROR, E.INTERNAL_ERROR, 0x99]))
        self.send(fr.rst_stream_frame(stream_id, code))
        del self.open[stream_id]

    def _ping(self) -> None:
        flags = fr.ACK if self.draw(st.booleans()) else 0
        self.send(fr.frame(fr.PING, flags, 0, self.draw(st.binary(min_size=8, max_size=8))))

    def _settings(self) -> None:
        chosen = self.draw(
            st.dictionaries(
                st.sampled_from([1, 2, 3, 4, 5, 6, 8, 0x77]),
                st.integers(0, 2**20),
                max_size=4,
            )
        )
        for flag in (fr.Setting.ENABLE_PUSH, fr.Setting.ENABLE_CONNECT_PROTOCOL):
            if flag in chosen:
                chosen[flag] %= 2
        if 5 in chosen:
            chosen[5] = max(chosen[5], fr.DEFAULT_MAX_FRAME_SIZE)
        self.send(fr.settings_frame(chosen))

    def _ack(self) -> None:
        self.settings_acked = True
        self.send(fr.frame(fr.SETTINGS, fr.ACK, 0))

    def _priority(self) -> None:
        stream_id = self.draw(st.sampled_from([*self.used, self.next_id + 4]))
        depends = self.draw(st.sampled_from([0, *self.used]))
        if depends == stream_id:
            depends = 0
        self.send(fr.frame(fr.PRIORITY, 0, stream_id, struct.pack(">LB", depends, 7)))

    def _window(self) -> None:
        stream_id = self.draw(st.sampled_from([0, *self.used]))
        increment = self.draw(st.integers(1, 2**20))
        self.send(fr.window_update_frame(stream_id, increment))

    def _unknown(self) -> None:
        kind = self.draw(st.integers(0x0B, 0xFF))
        self.send(fr.frame(kind, 0, self.draw(st.integers(0, 9)), self.draw(st.binary(max_size=9))))

    def _answer(self) -> None:
        if not self.used:
            return
        stream_id = self.draw(st.sampled_from(self.used))
        kind = self.draw(st.sampled_from(["headers", "data", "data", "reset"]))
        self.run.answer(stream_id, kind, self.draw(st.integers(0, 70000)), self.draw(st.booleans()))

    def close(self) -> None:
        self.send(fr.goaway_frame(max(self.used, default=0), E.NO_ERROR))


def _preface(run: Run, client_settings: dict[int, int] | None = None) -> None:
    run.client(fr.PREFACE)
    run.client(fr.settings_frame(client_settings or {}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_well_formed_programs_agree_frame_for_frame(data: st.DataObject) -> None:
    run = Run()
    client = Client(data.draw, run)
    _preface(run)
    for _ in range(data.draw(st.integers(1, 30))):
        client.step()
    if data.draw(st.booleans()):
        client.close()
    assert run.diverged is None
    assert not run.ours.failed and not run.theirs.failed


# Corrupted programs --------------------------------------------------------------------------


class Recorder:
    """Stands in for a Run while a program is drawn: it keeps the frames."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def client(self, data: bytes) -> None:
        self.frames.append(data)

    def answer(self, *args: Any) -> None:
        self.frames.append(b"")  # an answer (skipped when replayed: it needs live state)

    def reset_by_server(self, stream_id: int) -> bool:
        return False


def _mutate(draw: st.DrawFn, frames: list[bytes]) -> list[bytes]:
    """One corruption, at a frame after the preface (now and then, at the preface)."""
    if len(frames) < 2:
        return frames  # (all but the preface dropped already)
    i = draw(st.integers(0 if draw(st.integers(0, 19)) == 0 else 1, len(frames) - 1))
    frame = frames[i]
    header, payload = frame[:9], frame[9:]
    how = draw(
        st.sampled_from(
            [
                "drop", "repeat", "swap", "type", "stream", "flags", "byte", "resize",
                "length", "insert",
            ]
        )
    )  # fmt: skip
    if how == "drop":
        return frames[:i] + frames[i + 1 :]
    if how == "repeat":
        return frames[: i + 1] + frames[i:]
    if how == "swap" and i + 1 < len(frames):
        return [*frames[:i], frames[i + 1], frame, *frames[i + 2 :]]
    if len(header) < 9:
        return frames
    kind, flags, stream_id = header[3], header[4], int.from_bytes(header[5:9])
    if how == "type":
        kind = draw(st.integers(0, 12))
    elif how == "stream":
        stream_id = draw(st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF, stream_id + 2]))
    elif how == "flags":
        flags ^= 1 << draw(st.integers(0, 7))
    elif how == "byte" and payload:
        at = draw(st.integers(0, len(payload) - 1))
        payload = (
            payload[:at] + bytes([payload[at] ^ draw(st.integers(1, 255))]) + payload[at + 1 :]
        )
    elif how == "resize":
        payload = payload[: draw(st.integers(0, len(payload)))] + draw(st.binary(max_size=6))
    elif how == "length":
        length = draw(st.integers(0, 17000))
        return [*frames[:i], struct.pack(">L", length)[1:] + header[3:] + payload, *frames[i + 1 :]]
    elif how == "insert":
        stray = fr.frame(
            draw(st.integers(0, 12)),
            draw(st.integers(0, 255)),
            draw(st.sampled_from([0, 1, 2, 3, 5, 101])),
            draw(st.binary(max_size=12)),
        )
        return [*frames[:i], stray, *frames[i:]]
    return [*frames[:i], fr.frame(kind, flags, stream_id, payload), *frames[i + 1 :]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corrupted_programs_agree_until_the_rfc_and_h2_part(data: st.DataObject) -> None:
    recorder = Recorder()
    client = Client(data.draw, recorder)  # type: ignore[arg-type]
    _preface(recorder)  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 15))):
        client.step()
    frames = recorder.frames
    for _ in range(data.draw(st.integers(1, 3))):
        frames = _mutate(data.draw, frames)
    run = Run()
    for frame in frames:
        if frame:
            run.client(frame)
    # (Run.client asserts each step: the same, or a divergence DIVERGENCES names.)
    if run.diverged is None and run.ours.failed:
        assert isinstance(run.ours.error, HTTP2ConnectionError)
    event(f"parted: {run.diverged}" if run.diverged else f"ended: {run.ours.error!s:.40}")


def test_every_divergence_is_named_once() -> None:
    assert len({rule for rule, _ in DIVERGENCES.values()}) == len(DIVERGENCES)


# Where RFC 9113 and h2 part: one program each ------------------------------------------------

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/")]


def _block(fields: list[tuple[bytes, bytes]]) -> bytes:
    return Encoder().encode(fields, huffman=False)


def _request(stream_id: int, fields: list[tuple[bytes, bytes]], end: bool = True) -> bytes:
    flags = fr.END_HEADERS | (fr.END_STREAM if end else 0)
    return fr.frame(fr.HEADERS, flags, stream_id, _block(fields))


OPEN_1 = _request(1, POST, end=False)
# name of the divergence: (the client's frames after its preface, what interpserve then sent)
# (None: nothing, and no error)
RFC_PROGRAMS: dict[str, tuple[list[bytes], Observation | None]] = {
    "a malformed message is a stream error": (
        [
            _request(1, [*POST, (b"content-length", b"5")], end=False),
            fr.frame(fr.DATA, fr.END_STREAM, 1, b"ab"),
        ],
        ("sent reset", 1, E.PROTOCOL_ERROR),
    ),
    "a stream beyond the limit is refused": (
        [
            _request(i, POST, end=False)
            for i in range(1, 2 * CONFIG.http2_max_concurrent_streams + 3, 2)
        ],
        ("sent reset", 2 * CONFIG.http2_max_concurrent_streams + 1, E.REFUSED_STREAM),
    ),
    "priority signals are not checked": (
        [fr.frame(fr.PRIORITY, 0, 1, struct.pack(">LB", 1, 15)), _request(1, GET)],
        ("request", 1, ("GET", b"/", (), False, False)),
    ),
    "pseudo-header fields in trailers are a stream error": (
        [OPEN_1, fr.frame(fr.HEADERS, fr.END_HEADERS | fr.END_STREAM, 1, _block(POST))],
        ("sent reset", 1, E.PROTOCOL_ERROR),
    ),
    "PRIORITY of the wrong size is a stream error": (
        [OPEN_1, fr.frame(fr.PRIORITY, 0, 1, bytes(4))],
        ("sent reset", 1, E.FRAME_SIZE_ERROR),
    ),
    "a stream's zero window increment is a stream error": (
        [OPEN_1, fr.window_update_frame(1, 0)],
        ("sent reset", 1, E.PROTOCOL_ERROR),
    ),
    "a stream's window overflow is a stream error": (
        [OPEN_1, fr.window_update_frame(1, fr.MAX_WINDOW)],
        ("sent reset", 1, E.FLOW_CONTROL_ERROR),
    ),
    "SETTINGS ACK with a payload is FRAME_SIZE_ERROR": (
        [fr.frame(fr.SETTINGS, fr.ACK, 0, bytes(6))],
        ("sent goaway", E.FRAME_SIZE_ERROR),
    ),
    "RST_STREAM on an idle stream is a connection error": (
        [OPEN_1, fr.rst_stream_frame(5, E.CANCEL)],
        ("sent goaway", E.PROTOCOL_ERROR),
    ),
    "a field block that does not decode is COMPRESSION_ERROR": (
        [fr.frame(fr.HEADERS, fr.END_HEADERS | fr.END_STREAM, 1, b"\xff\xff\xff\xff")],
        ("sent goaway", E.COMPRESSION_ERROR),
    ),
    "a bad preface may go without GOAWAY": (
        [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"],
        ("sent goaway", E.PROTOCOL_ERROR),
    ),
    "the preface is followed by SETTINGS": (
        [fr.PREFACE, fr.frame(fr.PING, 0, 0, bytes(8))],
        ("sent goaway", E.PROTOCOL_ERROR),
    ),
    "frames after a reset the server sent are ignored": (
        [
            _request(1, [*POST, (b"connection", b"close")], end=False),
            fr.frame(fr.DATA, fr.END_STREAM, 1, b"late"),
        ],
        None,  # (the stream was reset on its HEADERS)
    ),
    "frames go on after the client's GOAWAY": (
        [OPEN_1, fr.goaway_frame(1, E.NO_ERROR), fr.frame(fr.DATA, fr.END_STREAM, 1, b"body")],
        ("data", 1, b"body"),
    ),
    "a HEADERS frame may be all padding": (
        [
            fr.frame(fr.HEADERS, fr.PADDED | fr.END_STREAM, 1, bytes([3, 0, 0, 0])),
            fr.frame(fr.CONTINUATION, fr.END_HEADERS, 1, _block(GET)),
        ],
        ("request", 1, ("GET", b"/", (), False, False)),
    ),
    "padding cannot cover the priority fields": (
        [
            fr.frame(
                fr.HEADERS, fr.PADDED | fr.PRIORITY_FLAG | fr.END_HEADERS, 1, bytes([3]) + bytes(5)
            )
        ],
        ("sent goaway", E.PROTOCOL_ERROR),
    ),
    "an oversized frame is refused from its header": (
        [fr.frame_header(fr.DATA, 0, 1, fr.DEFAULT_MAX_FRAME_SIZE + 1)],
        ("sent goaway", E.FRAME_SIZE_ERROR),
    ),
    "PUSH_PROMISE from a client is a connection error": (
        [fr.frame(fr.PUSH_PROMISE, 0, 1, bytes(4))],
        ("sent goaway", E.PROTOCOL_ERROR),
    ),
    "CONTINUATION without its HEADERS is a connection error": (
        [fr.frame(fr.CONTINUATION, fr.END_HEADERS, 1, _block(GET))],
        ("sent goaway", E.PROTOCOL_ERROR),
    ),
    "GOAWAY's reserved bit is ignored": (
        [fr.frame(fr.GOAWAY, 0, 0, struct.pack(">LL", 1 << 31, E.NO_ERROR))],
        ("goaway", E.NO_ERROR, 0),
    ),
    "a frame that breaks two rules may be reported for either": (
        [fr.frame(fr.PUSH_PROMISE, fr.END_HEADERS | 0x80, 5)],
        ("connection error",),
    ),
    "a frame is checked once it is whole": (
        [fr.frame_header(fr.SETTINGS, 0, 1, 6), bytes(6)],
        ("sent goaway", E.PROTOCOL_ERROR),
    ),
    "WINDOW_UPDATE's reserved bit is ignored": (
        [fr.frame(fr.WINDOW_UPDATE, 0, 0, struct.pack(">L", 1 << 31 | 1))],
        ("window", 0, 1),
    ),
    "extension frames are ignored": (
        [fr.frame(0xA, 0, 0, b"\x00")],
        ("unknown", 0xA),
    ),
}


@pytest.mark.parametrize("name", DIVERGENCES)
def test_rfc_where_h2_parts(name: str) -> None:
    """interpserve does what the RFC says in each place, and h2 agrees or parts for that
    reason only (some of these places need a longer program for h2 to part)."""
    frames, expected = RFC_PROGRAMS[name]
    if not frames[0].startswith(b"PRI"):
        frames = [fr.PREFACE, fr.settings_frame({}), *frames]
    run, ours = Run(), Ours()  # (both, and interpserve's alone past where they part)
    seen: list[Observation] = []
    for frame in frames:
        run.client(frame)
        seen = ours.feed(frame, 0)
    if expected is None:
        assert seen == [] and not ours.failed
    else:
        assert expected in seen
    assert run.diverged in (None, name)


# Field rules ---------------------------------------------------------------------------------

REQUEST_FLAGS = HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False
)


def _breach(draw: st.DrawFn, fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A valid request's fields with one of the breaches §8.2 and §8.3 name (or none)."""
    fields = list(fields)
    at = draw(st.integers(0, len(fields)))
    how = draw(st.integers(0, 10))
    if how == 0:
        fields.insert(at, (b"X-" + draw(TOKEN).encode(), b"1"))
    elif how == 1:
        name = draw(st.sampled_from(["connection", "keep-alive", "proxy-connection", "upgrade"]))
        fields.insert(at, (name.encode(), b"x"))
    elif how == 2:
        fields.insert(at, (b"transfer-encoding" if draw(st.booleans()) else b"te", b"gzip"))
    elif how == 3:
        fields.insert(at, fields[draw(st.integers(0, 2))])  # a pseudo-header again, or late
    elif how == 4:
        del fields[draw(st.integers(0, 2))]
    elif how == 5:
        fields.insert(at, (draw(st.sampled_from([b":status", b":protocol", b":x"])), b"1"))
    elif how == 6:
        fields.insert(at, (b"x", draw(st.sampled_from([b" y", b"y\t", b"a\0b", b"a\nb"]))))
    elif how == 7:
        fields.insert(at, (b"", b"x"))
    elif how == 8:
        fields.insert(at, (b"host", b"other"))
    elif how == 9:
        fields.insert(draw(st.integers(0, 2)), (b"cookie", b"a=1"))  # (kept apart by the rules)
    return fields


def _valid_for_h2(fields: list[tuple[bytes, bytes]]) -> bool:
    try:
        list(validate_headers(fields, REQUEST_FLAGS))
    except ProtocolError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_field_rules_agree_with_h2(data: st.DataObject) -> None:
    fields = _breach(data.draw, data.draw(request_fields(None)))
    ours = _head(fields, end_stream=True) != "malformed"
    names = {name for name, _ in fields}
    if ours and not names & {b":authority", b"host"}:
        # §8.3.1: a request may go without authority (h2 wants :authority or Host).
        assert _valid_for_h2([(b":authority", b"a"), *fields]), fields
        return
    assert ours == _valid_for_h2(fields), fields
