"""One HTTP/2 stream in the front end: the "connection" its request cycle answers on
(`cycle.CycleConnection`), and the cycle itself, which is HTTP/1.1's but for how a response is
framed. Dispatch to a worker, body credit, timeouts, the access log and 502/503/504 are the
cycle's, exactly as for HTTP/1.1.

A response's DATA waits here for the client's flow-control window; the app gets no more credit
while more than a little waits (or the connection as a whole holds too much), so a client
that opens its window slowly slows the app's send(), as a slow HTTP/1.1 reader does.
"""

from __future__ import annotations

from collections import deque
from enum import Enum, auto
from typing import TYPE_CHECKING

from interpserve import events as ev
from interpserve.frontend.cycle import RequestCycle, Stage
from interpserve.frontend.http2_hpack import encode_fields
from interpserve.frontend.http2_rules import CONNECTION_SPECIFIC, H2Framing, response_block
from interpserve.frontend.http_events import RequestHead

if TYPE_CHECKING:
    from interpserve.frontend.connection import ServerState
    from interpserve.frontend.http2 import HTTP2Session

# Response bytes of one stream waiting for the client's window beyond which the app's credit
# is withheld (it resumes once they are sent).
STREAM_HIGH_WATER = 64 * 1024


class StreamPhase(Enum):
    OPEN = auto()  # the response is not complete yet
    ANSWERED = auto()  # all of the response is sent, END_STREAM with it
    CLOSED = auto()  # reset, by either side, or the connection is gone


class HTTP2Stream:
    __slots__ = (
        "__weakref__",  # (a test sees it freed without the garbage collector)
        "_session",
        "blocked_since",
        "body_since",
        "buffered",
        "client",
        "cycle",
        "end_pending",
        "out",
        "pending",
        "phase",
        "received",
        "request_ended",
        "scheme",
        "server",
        "state",
        "stream_id",
        "trailers",
    )

    def __init__(self, session: HTTP2Session, stream_id: int, head: RequestHead) -> None:
        conn = session.conn
        self._session = session
        self.stream_id = stream_id
        self.state: ServerState = conn.state
        self.client = conn.client
        self.server = conn.server
        self.scheme = conn.scheme
        self.phase = StreamPhase.OPEN
        self.buffered = 0  # request body bytes held here, not yet sent to the worker
        self.received = 0  # request body bytes so far (--limit-request-body)
        self.request_ended = not head.has_body
        # Response DATA not yet framed (made by the first write: most responses leave whole,
        # without one), and whether the end of the response is in it.
        self.out: deque[memoryview] | None = None
        self.pending = 0
        self.end_pending = False
        self.trailers: list[tuple[bytes, bytes]] = []  # sent after the DATA, ending the stream
        self.blocked_since: float | None = None  # when the client's window last held it up
        # While more of the request body is due: when the last of it came.
        self.body_since = session.now() if head.has_body else None
        self.cycle = HTTP2Cycle(self, head)

    @property
    def writing_paused(self) -> bool:
        return self.pending > STREAM_HIGH_WATER or self._session.output_paused

    # For the cycle (cycle.CycleConnection)

    def write(self, data: bytes) -> None:
        """Response body bytes, sent as the client's window allows."""
        if self.phase is not StreamPhase.OPEN or not data:
            return
        if self.out is None:
            self.out = deque()
        self.out.append(memoryview(data))
        self.pending += len(data)
        self._session.queue(self, len(data))

    def finish(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """The response is complete: END_STREAM goes with its last DATA, or with the HEADERS
        frame of its trailers after it."""
        if self.phase is StreamPhase.OPEN:
            self.end_pending = True
            self.trailers = trailers or []
            self._session.queue(self, 0)

    def send_headers(self, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self.send_block(encode_fields(fields), end_stream)

    def send_block(self, block: bytes, end_stream: bool) -> None:
        """HEADERS with a header block from `encode_fields`."""
        if self.phase is StreamPhase.OPEN:
            self._session.send_block(self, block, end_stream)

    def send_response(self, block: bytes, body: bytes) -> bool:
        """The whole response at once, if the client's windows allow (else False, and the
        cycle sends it in parts)."""
        if self.phase is not StreamPhase.OPEN:
            return True  # reset meanwhile: nothing to send
        return self._session.send_response(self, block, body)

    def hold(self, size: int) -> None:
        self.buffered += size
        self.state.budget.reserve(size)

    def body_sent(self, size: int) -> None:
        if self.phase is not StreamPhase.CLOSED:
            self.buffered -= size
            self._session.acknowledge(self.stream_id, size)

    def response_held(self, delta: int) -> None:
        """(The response bytes waiting for the client are the session's queue, which counts
        them in the budget itself.)"""

    def update_reading(self) -> None:
        self._session.conn.update_reading()

    def room_available(self) -> None:
        self._session.conn.update_reading()

    def wait_for_budget(self) -> bool:
        return self._session.conn.wait_for_budget()

    def cycle_done(self, cycle: RequestCycle) -> None:
        self._session.answered(self)

    def abort(self) -> None:
        """The response cannot be completed: this stream is reset, the others go on."""
        self._session.reset(self)


class HTTP2Cycle(RequestCycle):
    """A request cycle whose response goes out as HTTP/2 HEADERS and DATA frames."""

    __slots__ = ("_block", "_framing", "_length")  # (see RequestCycle's)
    _conn: HTTP2Stream

    def __init__(self, stream: HTTP2Stream, head: RequestHead) -> None:
        super().__init__(stream, head)
        self._framing = H2Framing.STREAM
        self._length = -1
        # The response's header block, until it can leave with its first body bytes (as
        # HTTP/1.1's head does): the whole of a small response then leaves at once.
        self._block: bytes | None = None

    def _send_continue(self) -> None:
        self._conn.send_headers([(b":status", b"100")], end_stream=False)

    def _start_response(self, status: int, headers: ev.Headers) -> None:
        self._keep_block(self._header_block(status, headers))

    def _header_block(self, status: int, headers: ev.Headers) -> bytes:
        """The response's header block; its framing and length are kept, for its body."""
        state = self._conn.state
        block, self._framing, self._length = response_block(
            status, headers, self.head.method, state.date(), state.default_headers
        )
        return block

    def _keep_block(self, block: bytes) -> None:
        """A response without a body ends with its HEADERS; another's wait for its first body
        bytes (`_block`), to leave in one write with them."""
        if self._framing is H2Framing.NONE:
            self._conn.send_block(block, end_stream=True)
        else:
            self._block = block

    def on_whole_response(self, status: int, headers: ev.Headers, body: bytes) -> None:
        """Most responses: on_response_start, on_response_body and on_finished with fewer
        steps (the three, where a response asks more of them)."""
        if (
            self.stage is not Stage.DISPATCHED
            or self._disconnected
            or self.correlation_id is not None
            or self.head.expect_continue
        ):
            super().on_whole_response(status, headers, body)
            return
        self._begin_response(status)
        block = self._header_block(status, headers)
        framing = self._framing
        if (
            framing is H2Framing.NONE
            or (framing is H2Framing.LENGTH and len(body) != self._length)
            or not self._conn.send_response(block, body)
        ):
            self._keep_block(block)
            self.on_response_body(body, False)
            self.on_finished()
            return
        self._written = len(body)  # (_write_body's)
        self._complete()
        self._app_done()

    def flush_head(self) -> None:
        """The response's start came without body bytes: its HEADERS go now."""
        block = self._block
        if block is not None:
            self._block = None
            self._conn.send_block(block, end_stream=False)

    def _write_body(self, data: bytes, more_body: bool) -> None:
        framing = self._framing
        size = len(data)
        if framing is H2Framing.LENGTH:
            remaining = self._length - self._written
            if not more_body and size < remaining:
                # Less than the app's Content-Length: the client must not take it for whole.
                self._block = None
                self._conn.abort()
                return
            data = data[: max(remaining, 0)]  # no more than it, either
        self._written += size
        if framing is H2Framing.NONE:
            return
        block = self._block
        if block is not None:
            self._block = None
            if not more_body and self._conn.send_response(block, data):
                return
            self._conn.send_block(block, end_stream=False)
        self._conn.write(data)
        if not more_body:
            self._conn.finish()

    def _body_bytes_sent(self) -> int:
        """(The base reads HTTP/1.1's ResponsePlan, which this cycle has none of.)"""
        framing = self._framing
        if framing is H2Framing.NONE:
            return 0
        if framing is H2Framing.LENGTH:
            return min(self._written, self._length)
        return self._written

    def _write_trailers(self, headers: ev.Headers) -> None:
        if self._framing is H2Framing.LENGTH and self._written < self._length:
            self._block = None
            self._conn.abort()  # less than the app's Content-Length, as in _write_body
        elif self._framing is not H2Framing.NONE:
            self.flush_head()
            fields = [(name, value) for name, value in headers if name not in CONNECTION_SPECIFIC]
            self._conn.finish(fields)
