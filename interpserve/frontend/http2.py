"""HTTP/2 on one client connection: bytes from the socket go into the protocol's state machine
(http2_connection.py, sans-IO) in bounded slices, its events open streams (one request cycle
each, to the pool like any HTTP/1.1 request: http2_stream.py), carry their bodies and the
client's window updates, and what it has to send goes out in one write per loop pass.

The connection takes over from HTTPConnection when a client opens with HTTP/2's preface
(prior knowledge, "h2c") or chose "h2" by ALPN. What a peer can make it do for free is
counted (http2_guard.py); the limits are Config's http2_* fields and the constants below.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum, auto
from typing import TYPE_CHECKING

from interpserve.errors import BadRequest, HTTP2ConnectionError, MalformedRequest
from interpserve.frontend import http2_events as h2e
from interpserve.frontend.http2_connection import HTTP2Connection
from interpserve.frontend.http2_frames import ErrorCode
from interpserve.frontend.http2_guard import (
    IDLE_FRAME_BURST,
    IDLE_FRAME_RATE,
    RAPID_RESET_BURST,
    RAPID_RESET_RATE,
    FloodMeter,
)
from interpserve.frontend.http2_rules import accepted_head, check_trailers, request_head
from interpserve.frontend.http2_stream import STREAM_HIGH_WATER, HTTP2Stream, StreamPhase
from interpserve.frontend.http_rules import Limits

if TYPE_CHECKING:
    from interpserve.config import Config
    from interpserve.frontend.connection import HTTPConnection

logger = logging.getLogger("interpserve.error")

# Received bytes handled at a time: one busy connection holds the loop for at most one slice's
# frames before the others' turn (a frame can be as short as 9 bytes).
SLICE = 16 * 1024
# The flow-control windows the server offers: for each stream, and for the connection, which
# bounds the request body bytes the connection holds for its workers at any time.
STREAM_WINDOW = 256 * 1024
CONNECTION_WINDOW = 1024 * 1024
# Response bytes the connection may hold for its client's windows, all streams together,
# beyond which every stream's app is given no more credit.
OUTPUT_BUDGET = 1024 * 1024
# Closed streams whose end is remembered (to tell a late frame on a reset stream, ignored, from
# one on a finished stream, a connection error): a bound for a long-lived connection, which a
# proxy's is.
CLOSED_STREAMS_KEPT = 1024
# After a connection error, how long what the client still sends is read and dropped before the
# connection closes: a socket closed with bytes unread is reset, and the client may then lose
# the GOAWAY that says why.
LINGER = 1.0


class SessionState(Enum):
    OPEN = auto()
    DRAINING = auto()  # our GOAWAY is out: streams under way finish, new ones are refused
    CLOSED = auto()


def new_connection(config: Config) -> HTTP2Connection:
    """The protocol's state for one connection, with the server's settings and limits."""
    return HTTP2Connection(
        max_concurrent_streams=config.http2_max_concurrent_streams,
        max_header_list_size=config.http2_max_header_list_size,
        header_table_size=config.http2_header_table_size,
        stream_window=STREAM_WINDOW,
        connection_window=CONNECTION_WINDOW,
        closed_streams_kept=CLOSED_STREAMS_KEPT,
    )


class HTTP2Session:
    def __init__(self, conn: HTTPConnection) -> None:
        self.conn = conn
        self._budget = conn.state.budget
        self._config = config = conn.state.config
        self._limits = Limits(
            request_line=config.limit_request_line,
            fields=config.limit_request_fields,
            field_size=config.limit_request_field_size,
            body=config.limit_request_body,
        )
        self._loop = asyncio.get_running_loop()
        self._h2 = new_connection(config)
        self._state = SessionState.OPEN
        self._streams: dict[int, HTTP2Stream] = {}
        # Streams with DATA waiting for the client's window, in the order they queued it.
        self._sending: dict[int, HTTP2Stream] = {}
        self._pending = 0  # their bytes, together (counted in the budget)
        self._inbox = bytearray()  # received bytes not yet handled
        self._slice_scheduled = False
        self._flush_scheduled = False
        self._last_stream_id = 0
        self._resets = FloodMeter(RAPID_RESET_BURST, RAPID_RESET_RATE, self._loop.time)
        self._idle_frames = FloodMeter(IDLE_FRAME_BURST, IDLE_FRAME_RATE, self._loop.time)
        self._idle_since = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stream_timer: asyncio.TimerHandle | None = None

    # From the connection (connection.Session)

    def start(self, data: bytes) -> None:
        """Send the server's SETTINGS, then take what the client has sent so far."""
        self._h2.initiate()
        self._arm_idle_timer()
        self._flush()
        if data:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._state is SessionState.CLOSED:
            return
        if not self._inbox:
            if len(data) <= SLICE:
                self._receive(data)  # the usual read, at once and without a copy
                return
            self._inbox += memoryview(data)[SLICE:]
            data = data[:SLICE]
            self._receive(data)
        else:
            self._inbox += data
        if self._inbox and not self.closed:  # (_receive may have closed it)
            self._schedule_slice()  # what is read waits here, a slice a loop pass (read_room)

    def writable(self) -> None:
        """The socket has drained: send what waited, and read again."""
        if self._state is SessionState.CLOSED:
            return
        self._send_pending()
        self._flush()
        self._output_resumed()
        if self._inbox:
            self._schedule_slice()
        else:
            self.conn.update_reading()

    def connection_lost(self) -> None:
        self._state = SessionState.CLOSED
        for timer in (self._idle_timer, self._stream_timer):
            if timer is not None:
                timer.cancel()
        streams, self._streams = self._streams, {}
        self._sending.clear()
        self._queued(-self._pending)
        for stream in streams.values():
            stream.phase = StreamPhase.CLOSED
            if not stream.cycle.response_complete:
                stream.cycle.disconnect()

    def shutdown(self) -> None:
        """Graceful: GOAWAY with the last stream id taken; those streams finish, then the
        connection closes (with a second GOAWAY, which says the same)."""
        if self._state is not SessionState.OPEN:
            return
        self._state = SessionState.DRAINING
        self._h2.goaway(ErrorCode.NO_ERROR, self._last_stream_id)
        self._flush()
        self._close_if_done()

    def read_room(self) -> int:
        """How much the connection may read now: nothing while what it read waits to be
        handled, while the client does not take what it asked for, or while the budget is
        spent and this connection holds bytes already (the budget resumes it); else a slice."""
        if self._state is SessionState.CLOSED:
            return SLICE  # (dropped: see _abandon)
        if self._inbox or self.conn.writing_paused:
            return 0
        if self._budget.spent and self._holds() and self.conn.wait_for_budget():
            return 0
        return SLICE

    def _holds(self) -> bool:
        return bool(self._pending) or any(s.buffered for s in self._streams.values())

    def now(self) -> float:
        return self._loop.time()

    @property
    def closed(self) -> bool:
        return self._state is SessionState.CLOSED

    # From the streams

    @property
    def output_paused(self) -> bool:
        return self.conn.writing_paused or self._pending > OUTPUT_BUDGET

    def send_block(self, stream: HTTP2Stream, block: bytes, end_stream: bool) -> None:
        """HEADERS with a header block (http2_hpack.encode_fields')."""
        self._h2.send_block(stream.stream_id, block, end_stream=end_stream)
        if end_stream:
            self._answered_in_full(stream)
        self._flush_soon()

    def send_response(self, stream: HTTP2Stream, block: bytes, body: bytes) -> bool:
        """A whole response in one go, if the client's windows take its body now: it skips the
        queue of streams waiting for them (False: it is for the queue)."""
        if not self._h2.send_response(stream.stream_id, block, body):
            return False
        # _answered_in_full and _close_if_answered, inline: this is every small response.
        stream.phase = StreamPhase.ANSWERED
        stream.end_pending = False
        if not stream.request_ended:
            # Answered before the client sent all of its body: it need send no more.
            self._h2.reset(stream.stream_id, ErrorCode.NO_ERROR)
        self._close_stream(stream)
        if not self._flush_scheduled:
            self._flush_soon()
        return True

    def queue(self, stream: HTTP2Stream, size: int) -> None:
        self._sending[stream.stream_id] = stream
        self._queued(size)
        self._flush_soon()

    def _queued(self, delta: int) -> None:
        """`delta` more (or fewer) response bytes wait for the client's windows."""
        self._pending += delta
        self._budget.change(delta)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """`size` body bytes went on to the worker: the client may send as many more."""
        if size and self._state is not SessionState.CLOSED:
            self._h2.acknowledge(stream_id, size)
            self._flush_soon()
            self._arm_stream_timer()  # its body may be the client's to send again

    def answered(self, stream: HTTP2Stream) -> None:
        """The cycle's response is complete (it may still wait for the client's window)."""
        self._resets.relieve()

    def reset(self, stream: HTTP2Stream, code: ErrorCode = ErrorCode.INTERNAL_ERROR) -> None:
        if stream.phase is StreamPhase.CLOSED or self._state is SessionState.CLOSED:
            return
        self._h2.reset(stream.stream_id, code)  # (nothing if the connection has closed it)
        self._close_stream(stream)
        self._flush_soon()

    # Reading

    def _schedule_slice(self) -> None:
        if not self._slice_scheduled:
            self._slice_scheduled = True
            self._loop.call_soon(self._next_slice)

    def _next_slice(self) -> None:
        self._slice_scheduled = False
        if self._state is SessionState.CLOSED or not self._inbox:
            return
        if self.conn.writing_paused:
            return  # writable() goes on
        data = bytes(self._inbox[:SLICE])
        del self._inbox[:SLICE]
        self._receive(data)
        if self._inbox:
            self._schedule_slice()
        else:
            self.conn.update_reading()

    def _receive(self, data: bytes) -> None:
        try:
            events = self._h2.receive(data)
        except HTTP2ConnectionError as exc:
            # Its GOAWAY is queued, with the error's code.
            logger.debug("HTTP/2 connection error from %s: %s", self.conn.client, exc)
            self._abandon()
            return
        self._handle(events)
        if self._state is not SessionState.CLOSED:
            self._flush()  # (if the client does not read what it asks for, read_room waits)

    def _handle(self, events: list[h2e.Event]) -> None:
        for event in events:
            if self._state is SessionState.CLOSED:
                return
            kind = type(event)
            if kind is h2e.RequestReceived:
                self._open_stream(event)  # type: ignore[arg-type]
            elif kind is h2e.DataReceived:
                self._data(event)  # type: ignore[arg-type]
            elif kind is h2e.WindowUpdated:
                self._window_updated(event.stream_id)  # type: ignore[union-attr]
            elif kind is h2e.StreamReset:
                self._stream_reset(event)  # type: ignore[arg-type]
            elif kind is h2e.TrailersReceived:
                self._trailers(event)  # type: ignore[arg-type]
            elif kind is h2e.GoAwayReceived:
                self._goaway(event)  # type: ignore[arg-type]
            elif kind is h2e.SettingsChanged:
                self._idle_frame("control frames")
                self._flush_soon()  # the initial window may have grown
            elif kind is not h2e.SettingsAcknowledged or not event.solicited:  # type: ignore[union-attr]
                # PING, PRIORITY, unknown types, frames on closed streams: nothing to do.
                self._idle_frame("control frames")

    def _open_stream(self, event: h2e.RequestReceived) -> None:
        stream_id = event.stream_id
        h2 = self._h2
        if self._state is not SessionState.OPEN:
            h2.reset(stream_id, ErrorCode.REFUSED_STREAM)  # after our GOAWAY
            return
        self._last_stream_id = stream_id
        try:
            head = accepted_head(event.headers, event.end_stream, self._limits) or request_head(
                event.headers, event.end_stream, self._limits
            )  # (the second names the fault)
        except MalformedRequest as exc:
            logger.debug("Malformed HTTP/2 request from %s: %s", self.conn.client, exc)
            h2.reset(stream_id, ErrorCode.PROTOCOL_ERROR)
            self._count_reset()
            return
        except BadRequest as exc:
            h2.send_headers(stream_id, [(b":status", b"%d" % exc.status)], end_stream=True)
            if not event.end_stream:
                h2.reset(stream_id, ErrorCode.NO_ERROR)  # its body is not wanted
            return
        stream = self._streams[stream_id] = HTTP2Stream(self, stream_id, head)
        if self._idle_timer is not None:  # (only while no stream was open: spares a call a stream)
            self._cancel_idle_timer()
        stream.cycle.dispatch()
        if stream.body_since is not None:
            self._arm_stream_timer()

    def _data(self, event: h2e.DataReceived) -> None:
        stream_id = event.stream_id
        data = event.data
        if not data and not event.end_stream:
            self._idle_frame("empty DATA frames")
        stream = self._streams.get(stream_id)
        if stream is None or stream.cycle.response_complete:
            self._h2.acknowledge(stream_id, len(data))  # nobody will read it
            if event.end_stream and stream is not None:
                self._request_ended(stream)
            return
        stream.received += len(data)
        limit = self._limits.body
        if limit is not None and stream.received > limit:
            self._refuse_body(stream, 413)
            return
        stream.body_since = None if event.end_stream else self._loop.time()
        stream.cycle.add_body(data)
        if event.end_stream:
            self._request_ended(stream)

    def _trailers(self, event: h2e.TrailersReceived) -> None:
        """The request's trailers end its body; they are checked, and not passed on (an ASGI
        request has none)."""
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        try:
            check_trailers(event.headers)
        except MalformedRequest as exc:
            logger.debug("Malformed HTTP/2 trailers from %s: %s", self.conn.client, exc)
            self.reset(stream, ErrorCode.PROTOCOL_ERROR)
            return
        self._request_ended(stream)

    def _request_ended(self, stream: HTTP2Stream) -> None:
        stream.request_ended = True
        stream.body_since = None
        stream.cycle.end_body()
        self._close_if_answered(stream)

    def _goaway(self, event: h2e.GoAwayReceived) -> None:
        """The client will open no more streams: with NO_ERROR, the ones it has are answered
        and then the connection closes; with an error, it is gone."""
        if event.error_code != ErrorCode.NO_ERROR:
            self._abandon()
        elif self._state is SessionState.OPEN:
            self.shutdown()

    def _refuse_body(self, stream: HTTP2Stream, status: int) -> None:
        """A body beyond --limit-request-body (413), or one that stalled (408): that status
        if the app has not answered yet, and the stream ends there."""
        if not stream.cycle.response_started:
            stream.cycle.disconnect()
            self._h2.send_headers(stream.stream_id, [(b":status", b"%d" % status)], end_stream=True)
        self.reset(stream, ErrorCode.CANCEL)

    def _stream_reset(self, event: h2e.StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            if event.error_code == ErrorCode.REFUSED_STREAM and not event.remote:
                self._count_reset()  # a stream beyond the limit costs what a reset one does
            return
        unanswered = not stream.cycle.response_complete
        self._close_stream(stream)
        if unanswered:
            self._count_reset()

    def _count_reset(self) -> None:
        if self._resets.add():
            self._calm("streams reset faster than they are served")

    def _idle_frame(self, what: str) -> None:
        if self._idle_frames.add():
            self._calm(f"too many {what}")

    def _calm(self, why: str) -> None:
        logger.warning(
            "HTTP/2 client %s: %s; closing with ENHANCE_YOUR_CALM.", _peer(self.conn), why
        )
        self._h2.close(ErrorCode.ENHANCE_YOUR_CALM, self._last_stream_id)
        self._abandon()

    # Writing

    def _window_updated(self, stream_id: int) -> None:
        waiting = bool(self._sending) if stream_id == 0 else stream_id in self._sending
        if not waiting:
            self._idle_frame("window updates")
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._flush_scheduled and self._state is not SessionState.CLOSED:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        if self._state is not SessionState.CLOSED:
            self._flush()

    def _flush(self) -> None:
        """Send what the windows let through, then everything else the connection has to
        send, in one write."""
        self._send_pending()
        data = self._h2.data_to_send()
        if data:
            self.conn.write(data)

    def _send_pending(self) -> None:
        """DATA for the waiting streams, a frame each in turn, while the windows and the
        socket take it."""
        max_frame = self._h2.max_outbound_frame
        now = self._loop.time()
        was_over = self._pending > OUTPUT_BUDGET
        moved = True
        while moved and self._sending and not self.conn.writing_paused:
            moved = False
            for stream in list(self._sending.values()):
                moved = self._send_frame(stream, max_frame, now) or moved
        if self.conn.writing_paused:
            for stream in self._sending.values():  # held up by the client all the same
                if stream.blocked_since is None:
                    stream.blocked_since = now
        if was_over and self._pending <= OUTPUT_BUDGET:
            self._output_resumed()
        if self._sending:
            self._arm_stream_timer()

    def _send_frame(self, stream: HTTP2Stream, max_frame: int, now: float) -> bool:
        """One DATA frame of `stream`'s, if its window allows; whether anything was sent."""
        h2 = self._h2
        stream_id = stream.stream_id
        out = stream.out
        if out:
            size = min(h2.window(stream_id), max_frame)
            if size <= 0:
                if stream.blocked_since is None:
                    stream.blocked_since = now
                return False
            chunk = out[0]
            if len(chunk) > size:
                piece, out[0] = chunk[:size], chunk[size:]
            else:
                piece = out.popleft()
            stream.blocked_since = None
            before = stream.pending
            stream.pending -= len(piece)
            self._queued(-len(piece))
            last = stream.end_pending and not out
            h2.send_data(stream_id, piece, end_stream=last and not stream.trailers)
            if before > STREAM_HIGH_WATER >= stream.pending and not self.output_paused:
                stream.cycle.writable()  # the credit withheld from its app
        else:
            last = stream.end_pending
            if last and not stream.trailers:
                h2.send_data(stream_id, b"", end_stream=True)
        if not out:
            del self._sending[stream_id]
            if last:
                if stream.trailers:
                    h2.send_headers(stream_id, stream.trailers, end_stream=True)
                self._answered_in_full(stream)
        return True

    def _output_resumed(self) -> None:
        """The connection takes output again: apps whose credit was withheld get it."""
        if not self.output_paused:
            for stream in list(self._streams.values()):
                if not stream.writing_paused:
                    stream.cycle.writable()

    # Streams' ends

    def _answered_in_full(self, stream: HTTP2Stream) -> None:
        stream.phase = StreamPhase.ANSWERED
        stream.end_pending = False
        self._close_if_answered(stream)

    def _close_if_answered(self, stream: HTTP2Stream) -> None:
        if stream.phase is not StreamPhase.ANSWERED:
            return
        if not stream.request_ended:
            # Answered before the client sent all of its body: it need send no more.
            self._h2.reset(stream.stream_id, ErrorCode.NO_ERROR)
        self._close_stream(stream)

    def _close_stream(self, stream: HTTP2Stream) -> None:
        """Forget a stream: its response is sent, or it was reset."""
        if stream.phase is StreamPhase.CLOSED:
            return
        if stream.phase is not StreamPhase.ANSWERED and not stream.cycle.response_complete:
            stream.cycle.disconnect()
        stream.phase = StreamPhase.CLOSED
        stream_id = stream.stream_id
        if stream.buffered:
            # Body the worker never took: the connection's window must not lose it.
            self._h2.acknowledge(stream_id, stream.buffered)
            stream.buffered = 0
        if self._sending and self._sending.pop(stream_id, None) is not None:
            self._queued(-stream.pending)
        if stream.out:
            stream.out.clear()
        stream.pending = 0
        streams = self._streams
        streams.pop(stream_id, None)
        # Its cycle lives on while its worker may still report to it, and holds the stream:
        # without the stream's reference back, reference counting frees both at the end,
        # and every stream is not left to the garbage collector.
        del stream.cycle
        if not streams:
            self._idle_since = self._loop.time()
            self._arm_idle_timer()
            self._close_if_done()  # (only a connection with no stream left closes)

    def _close_if_done(self) -> None:
        if self._state is SessionState.DRAINING and not self._streams:
            self._h2.close(ErrorCode.NO_ERROR, self._last_stream_id)
            self._flush()
            self._state = SessionState.CLOSED
            self.conn.close()

    def _abandon(self) -> None:
        """A connection error: send what is queued (its GOAWAY), and close once the client
        has had a moment to read it."""
        if self._state is SessionState.CLOSED:
            return
        data = self._h2.data_to_send()
        if data:
            self.conn.write(data)
        self.connection_lost()
        self._inbox.clear()
        self.conn.update_reading()
        self._loop.call_later(LINGER, self.conn.close)

    # Timers

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is None and self._state is not SessionState.CLOSED:
            self._idle_timer = self._loop.call_at(
                self._idle_since + self._config.timeout_keep_alive, self._idle_timer_due
            )

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_timer_due(self) -> None:
        self._idle_timer = None
        if self._streams or self._state is SessionState.CLOSED:
            return
        if self._loop.time() < self._idle_since + self._config.timeout_keep_alive:
            self._arm_idle_timer()  # streams came and went meanwhile
            return
        self._h2.close(ErrorCode.NO_ERROR, self._last_stream_id)
        self._abandon()

    def _overdue_at(self, stream: HTTP2Stream) -> float | None:
        """When the client will have kept `stream` waiting too long: for its window, with a
        response waiting, or for its body, with none of it held back for the worker (then the
        app is the one not taking it)."""
        config = self._config
        due = None
        if stream.blocked_since is not None:
            due = stream.blocked_since + config.http2_timeout_window
        if stream.body_since is not None and not stream.buffered:
            body_due = stream.body_since + config.timeout_body_read
            due = body_due if due is None else min(due, body_due)
        return due

    def _arm_stream_timer(self) -> None:
        if self._stream_timer is not None or self._state is SessionState.CLOSED:
            return
        dues = [due for s in self._streams.values() if (due := self._overdue_at(s)) is not None]
        if dues:
            self._stream_timer = self._loop.call_at(min(dues), self._stream_timer_due)

    def _stream_timer_due(self) -> None:
        """Streams whose client has kept its window shut too long are reset (if it is the
        connection's window, or the client reads nothing at all, the connection goes); those
        whose body stalled get 408, as in HTTP/1.1."""
        self._stream_timer = None
        now = self._loop.time()
        window_deadline = now - self._config.http2_timeout_window
        overdue = [
            s
            for s in self._streams.values()
            if (due := self._overdue_at(s)) is not None and due <= now
        ]
        shut = [
            s for s in overdue if s.blocked_since is not None and s.blocked_since <= window_deadline
        ]
        if shut and (self.conn.writing_paused or self._h2.outbound_window <= 0):
            logger.info("HTTP/2 client %s stopped reading: closing.", _peer(self.conn))
            self._abandon()
            self.conn.abort()
            return
        for stream in overdue:
            if stream in shut:
                self.reset(stream, ErrorCode.CANCEL)
            else:
                self._refuse_body(stream, 408)
        self._arm_stream_timer()


def _peer(conn: HTTPConnection) -> str:
    return f"{conn.client[0]}:{conn.client[1]}" if conn.client else "-"
