"""One WebSocket in the front end: after an upgrade request, the connection hands its transport
to a WebSocketSession, which does the handshake, the framing, pings and the closing handshake
with wsproto (sans-IO), and trades whole messages with the worker that runs the app.

Messages cross the pipes whole: the frames of a fragmented message are reassembled here, up to
--ws-max-size (beyond it the connection closes with 1009). Both directions are flow-controlled
with Credit, as request and response bodies are: a client that sends faster than the app
receives stops being read, and an app that sends faster than the client reads waits in send().
What a connection holds of the messages counts against the front end's budget (`budget.py`):
the client's, from the socket until the app has received them (a big one being reassembled,
those sent on to the worker), and the app's, until the client's socket has taken them. While
the budget is spent, a connection that holds some does not begin to read another message. (The
one under way is read to its end, which --ws-max-size bounds: two half-read messages must never
wait for each other's room.)
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from enum import Enum, auto
from typing import TYPE_CHECKING, cast

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from interpserve import events as ev
from interpserve.accesslog import ClosedBy
from interpserve.frontend.dispatch import SERVICE_UNAVAILABLE, WorkerRequest
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.response import status_line

if TYPE_CHECKING:
    from interpserve.frontend.connection import HTTPConnection

logger = logging.getLogger("interpserve.error")

# How long the client has to answer our close frame before the connection is dropped.
CLOSE_TIMEOUT = 10.0
# Bytes a client may send after its handshake before the app has accepted it; it should send
# none, since it has no answer yet.
_MAX_EARLY_DATA = ev.WEBSOCKET_WINDOW
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class _State(Enum):
    HANDSHAKE = auto()  # waiting for the app to accept or deny
    DENYING = auto()  # writing the app's HTTP response instead
    OPEN = auto()
    CLOSING = auto()  # our close frame is out; waiting for the client's
    CLOSED = auto()


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that inflates no more of a message than --ws-max-size: a few
    kilobytes can inflate to gigabytes, and wsproto would inflate them whole before the size
    of the message could be checked, holding the front end (every connection) meanwhile.

    (This takes over wsproto's own inflating step, and so its state's names.)"""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self._max_size = max_size
        self._inflated = 0  # of the message under way

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        budget = self._max_size - self._inflated
        try:
            # One byte over the budget is enough to know the message is too big.
            out = self._decompressor.decompress(bytes(data), max(budget, 0) + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if len(out) > budget:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if fin:
            self._inflated = 0
        return super().frame_inbound_complete(proto, fin)


class WebSocketSession(WorkerRequest):
    websocket = True
    _conn: HTTPConnection

    def __init__(self, conn: HTTPConnection, head: RequestHead):
        super().__init__(conn, head)
        self._config = conn.state.config
        self._ws = WSConnection(ConnectionType.SERVER)
        self._state = _State.HANDSHAKE
        self._early = bytearray()  # bytes received before the app accepted
        # The message being reassembled, and its size in bytes (text counted as UTF-8).
        self._parts: list[bytes | bytearray | str] = []
        self._size = 0
        self._in_flight = 0  # sent to the worker, not yet received by the app
        self._withheld_credit = 0  # the app's, written while the client's socket is full
        self._reserved = 0  # of the budget, for those three
        self._finished = False  # the app returned: the worker takes no more events for it
        self._app_told_closed = False
        self._shutting_down = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._accepted = False
        self._ending: tuple[int, ClosedBy] | None = None  # the first close: its code, by whom

    # From the connection

    def start(self, data: bytes) -> None:
        """Validate the handshake, then send it to a worker; `data` is what followed it."""
        self._early += data
        try:
            self._ws.receive_data(_handshake_bytes(self.head))
            events = list(self._ws.events())
        except RemoteProtocolError as exc:
            logger.debug("Invalid WebSocket handshake: %s", exc)
            hint = exc.event_hint
            if isinstance(hint, RejectConnection):
                self._send_handshake(self._rejection(hint.status_code, hint.headers, False))
            self._log_access(hint.status_code if isinstance(hint, RejectConnection) else 400)
            self._end()
            return
        if not (events and isinstance(events[0], Request)):  # (h11 always gives one)
            self._conn.abort()
            return
        self._dispatch()

    def _dispatch(self) -> None:
        # A handshake has no body: the framing guard refuses an Upgrade request with one.
        self._to_worker(self._dispatch)

    def _unavailable(self) -> None:
        self._respond(503, SERVICE_UNAVAILABLE)

    def data_received(self, data: bytes) -> None:
        if self._state is _State.HANDSHAKE:
            self._early += data
        elif self._state in (_State.OPEN, _State.CLOSING):
            self._ws.receive_data(data)
            self._process()

    def read_room(self) -> int:
        """How much the connection may read now; 0 to wait (for the app to accept, or to
        receive what it was sent, or for the budget)."""
        state = self._state
        if state is _State.HANDSHAKE:
            return _MAX_EARLY_DATA - len(self._early)
        if state is _State.OPEN or state is _State.CLOSING:
            if self._in_flight > ev.WEBSOCKET_WINDOW:
                return 0
            between = not self._size
            if between and self._reserved and self._conn.wait_for_budget():
                return 0
        return ev.WEBSOCKET_WINDOW

    def connection_lost(self) -> None:
        self._state = _State.CLOSED
        self._in_flight = self._size = self._withheld_credit = 0
        self._parts.clear()
        self._account()
        self._stop_waiting()
        for timer in (self._ping_timer, self._pong_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._tell_app_closed(ev.WS_ABNORMAL_CLOSURE, "")  # unless it already knows better
        if self._accepted:
            self._log_access(101, self._ending or (ev.WS_ABNORMAL_CLOSURE, ClosedBy.CLIENT))

    def writable(self) -> None:
        """The client's socket has drained: give the app the credit withheld meanwhile."""
        if self._withheld_credit:
            self._send_to_worker(ev.Credit(self._request_id, self._withheld_credit))
            self._withheld_credit = 0
            self._account()

    def shutdown(self) -> None:
        """The server is stopping: close with 1012 (a handshake still with the app is closed
        once accepted)."""
        self._shutting_down = True
        if self._state is _State.OPEN:
            self._tell_app_closed(ev.WS_SERVICE_RESTART, "")
            self._close(ev.WS_SERVICE_RESTART, "server shutting down", ClosedBy.SERVER)

    # From the worker (pool.channel.ResponseSink and WebSocketSink)

    def on_websocket(self, event: ev.WebSocketEvent) -> None:
        match event:
            case ev.WebSocketMessage(_, data):
                self._send_message(data)
            case ev.WebSocketAccept(_, subprotocol, headers):
                self._accept(subprotocol or None, list(headers))
            case ev.WebSocketClose(_, code, reason):
                if self._state is _State.HANDSHAKE:
                    self._respond(403, b"")  # a close before accepting is a denial (ASGI)
                else:
                    self._close(code, reason, ClosedBy.APP)

    def on_credit(self, size: int) -> None:
        """The app received `size` more of what the client sent."""
        self._in_flight -= size
        self._account()
        self._conn.update_reading()

    def on_response_start(self, status: int, headers: ev.Headers) -> None:
        if self._state is not _State.HANDSHAKE:
            return
        if self._send_handshake(self._rejection(status, list(headers), True)):
            self._state = _State.DENYING
            self._log_access(status)

    def flush_head(self) -> None:
        pass  # the denial's head left when it came: denials are rare and small

    def on_response_body(self, data: bytes, more_body: bool) -> None:
        if self._state is not _State.DENYING:
            return
        if not self._send_handshake(RejectData(data=data, body_finished=not more_body)):
            return
        if more_body:
            self._acknowledge(len(data))
        else:
            self._end()

    def on_finished(self) -> None:
        self._finished = True
        if self._state in (_State.HANDSHAKE, _State.DENYING):
            self._conn.abort()  # the app left without an answer, or with half of one
        elif self._state is _State.OPEN:
            self._close(ev.WS_NORMAL_CLOSURE, "", ClosedBy.APP)

    def on_worker_lost(self) -> None:
        self._finished = True
        if self._state is _State.HANDSHAKE:
            self._respond(502, b"Bad Gateway")
        elif self._state is _State.DENYING:
            self._conn.abort()
        elif self._state is _State.OPEN:
            self._close(ev.WS_INTERNAL_ERROR, "", ClosedBy.SERVER)

    # The handshake

    def _accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        if self._state is not _State.HANDSHAKE:
            return
        extensions: list[Extension] = []
        if self._config.ws_per_message_deflate:
            extensions.append(BoundedDeflate(self._config.ws_max_size))
        accept = AcceptConnection(
            subprotocol=subprotocol,
            extensions=extensions,
            extra_headers=self._with_server_headers(headers),
        )
        if not self._send_handshake(accept):
            return
        self._state = _State.OPEN
        self._accepted = True
        self._log_access(101)
        self._schedule_ping()
        early, self._early = bytes(self._early), bytearray()
        self._conn.update_reading()
        if early:
            self._ws.receive_data(early)
            self._process()
        if self._shutting_down:
            self.shutdown()

    def _send_handshake(self, event: AcceptConnection | RejectConnection | RejectData) -> bool:
        try:
            data = self._ws.send(event)
        except LocalProtocolError as exc:
            # The app's answer cannot be written (a header h11 refuses, a body longer than its
            # Content-Length...): the client cannot be told anything sensible.
            logger.error("Invalid WebSocket handshake response from the app: %s", exc)
            self._tell_app_closed(ev.WS_ABNORMAL_CLOSURE, "")
            self._conn.abort()
            return False
        if isinstance(event, RejectConnection):
            # wsproto leaves the reason phrase out ("HTTP/1.1 403 "): the HTTP responses' line.
            data = status_line(event.status_code) + data[data.index(b"\r\n") + 2 :]
        self._write(data)
        return True

    def _rejection(
        self, status: int, headers: list[tuple[bytes, bytes]], has_body: bool
    ) -> RejectConnection:
        """A denial of the handshake: the connection closes after it."""
        headers = self._with_server_headers([*headers, (b"connection", b"close")])
        return RejectConnection(status_code=status, headers=headers, has_body=has_body)

    def _with_server_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The headers the server adds to every response (Server, --header, Date), as to the
        HTTP ones: an app's own Server header replaces the server's."""
        state = self._conn.state
        has_server = any(name.lower() == b"server" for name, _ in headers)
        added = state.default_headers.fields(server=not has_server)
        if date := state.date():
            added.append((b"date", date))
        if self.correlation_id is not None and state.request_ids is not None:
            # (The names are lowercase: the app's, checked in the worker, and ours.)
            headers = list(state.request_ids.response_headers(tuple(headers), self.correlation_id))
        return [*headers, *added]

    def _respond(self, status: int, body: bytes) -> None:
        """Deny the handshake on the app's behalf (or as the app asked, with no body)."""
        headers = [*_TEXT, (b"content-length", b"%d" % len(body))] if body else []
        if not self._send_handshake(self._rejection(status, headers, bool(body))):
            return
        if body and not self._send_handshake(RejectData(data=body)):
            return
        self._log_access(status)
        self._end()

    # Messages

    def _process(self) -> None:
        for event in self._ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._receive_part(event)
            elif isinstance(event, Ping):
                if self._ws.state is ConnectionState.OPEN:
                    self._write(self._ws.send(event.response()))
            elif isinstance(event, Pong):
                if self._pong_timer is not None:
                    self._pong_timer.cancel()
                    self._pong_timer = None
            elif isinstance(event, CloseConnection):
                self._closed_by_client(event)
                return

    def _receive_part(self, event: TextMessage | BytesMessage) -> None:
        if self._state is not _State.OPEN:
            return  # our close frame is out: the app will not see more
        data = event.data
        text = isinstance(data, str)
        if isinstance(data, str) and not data.isascii():
            self._size += len(data.encode())  # the limit is in bytes, as the wire's is
        else:
            self._size += len(data)
        if self._size > self._config.ws_max_size:
            self._parts.clear()
            self._size = 0
            self._account()
            self._tell_app_closed(ev.WS_MESSAGE_TOO_BIG, "")
            self._close(ev.WS_MESSAGE_TOO_BIG, "message too big", ClosedBy.SERVER)
            return
        self._parts.append(data)
        if not event.message_finished:
            self._account()
            return
        parts, self._parts, self._size = self._parts, [], 0
        message: bytes | str
        if text:
            message = "".join(cast("list[str]", parts))
        else:
            message = b"".join(cast("list[bytes]", parts))
        if not self._finished:
            self._send_to_worker(ev.WebSocketMessage(self._request_id, message))
            self._in_flight += len(message)  # (reading waits while it is above the window)
        self._account()

    def _account(self) -> None:
        """Hold of the budget what the messages on their way take now."""
        held = self._in_flight + self._size + self._withheld_credit
        if held != self._reserved:
            self._conn.state.budget.change(held - self._reserved)
            self._reserved = held

    def _send_message(self, data: bytes | str) -> None:
        if self._state is not _State.OPEN:
            return  # closing: the app learns it from our WebSocketClose
        event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        self._write(self._ws.send(event))
        self._acknowledge(len(data))

    def _acknowledge(self, size: int) -> None:
        """What the app sent is written: let it send as much more, unless the client's socket
        is full, in which case the credit waits for it to drain."""
        if self._conn.writing_paused:
            self._withheld_credit += size
            self._account()
        else:
            self._send_to_worker(ev.Credit(self._request_id, size))

    # Closing

    def _close(self, code: int, reason: str, by: ClosedBy) -> None:
        """Start the closing handshake: the client has CLOSE_TIMEOUT to answer."""
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSING
        self._ending = (code, by)
        self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        self._arm_close_timer()

    def _closed_by_client(self, event: CloseConnection) -> None:
        """The client's close frame: its own (answer it) or its answer to ours. A frame
        wsproto could not parse comes here too, as the close code to fail with."""
        if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._write(self._ws.send(event.response()))
        if self._ending is None:
            self._ending = (event.code, ClosedBy.CLIENT)
        self._tell_app_closed(event.code, event.reason or "")
        self._end()

    def _end(self) -> None:
        """Nothing more to say: close the TCP connection (the server closes it first, RFC 6455
        §7.1.1), and drop it if the client does not take what is left in time."""
        self._state = _State.CLOSED
        self._conn.close()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT, self._conn.abort)

    def _tell_app_closed(self, code: int, reason: str) -> None:
        if not self._app_told_closed:
            self._app_told_closed = True
            self._send_to_worker(ev.WebSocketClose(self._request_id, code, reason))

    # Keepalive

    def _schedule_ping(self) -> None:
        interval = self._config.ws_ping_interval
        if interval > 0:
            self._ping_timer = asyncio.get_running_loop().call_later(interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self._state is not _State.OPEN:
            return
        # Paused reading would hide the pong: then the client is not the one to blame.
        if not self._conn.reading_paused:
            self._write(self._ws.send(Ping()))
            timeout = self._config.ws_ping_timeout
            if timeout > 0 and self._pong_timer is None:
                loop = asyncio.get_running_loop()
                self._pong_timer = loop.call_later(timeout, self._ping_timed_out)
        self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._pong_timer = None
        self._tell_app_closed(ev.WS_ABNORMAL_CLOSURE, "")
        self._close(ev.WS_INTERNAL_ERROR, "keepalive ping timeout", ClosedBy.SERVER)

    # Plumbing

    def _send_to_worker(self, event: ev.Event) -> None:
        if self._channel is not None and not self._finished:
            self._channel.send(event)

    def _write(self, data: bytes) -> None:
        if data:
            self._conn.write(data)

    def _log_access(self, status: int, closed: tuple[int, ClosedBy] | None = None) -> None:
        """A line for the handshake's answer, and one for the close of an accepted one."""
        self._write_access_line(status, None, closed=closed)


def _handshake_bytes(head: RequestHead) -> bytes:
    """The request head again, for wsproto's handshake (it parses HTTP with h11 itself)."""
    lines = [b"GET %s HTTP/1.1\r\n" % head.target]
    lines += [b"%s: %s\r\n" % pair for pair in head.headers]
    lines.append(b"\r\n")
    return b"".join(lines)
