"""The ASGI websocket adapter: one WebSocket's stream events in, ASGI receive/send for the app,
stream events out. Runs inside a worker, many at once on the worker's event loop, so a
long-lived WebSocket holds a task, never a worker.

The front end does the framing, pings and the closing handshake; here a message is a whole
message, and the connection is one of: connecting, accepted, denying (the app's own HTTP
response, the websocket.http.response extension), or closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from enum import Enum, auto

from interpserve import events as ev
from interpserve.errors import ClientDisconnected
from interpserve.wire import MAX_PAYLOAD
from interpserve.worker.app import ASGIApp, Message
from interpserve.worker.asgi import (
    ASGICycle,
    checked_headers,
    checked_status,
    error_response,
)

logger = logging.getLogger("interpserve.error")


class _State(Enum):
    CONNECTING = auto()
    ACCEPTED = auto()
    DENYING = auto()
    CLOSED = auto()  # the app closed it, or its denial response is complete


class WebSocketCycle(ASGICycle):
    scope_type = "websocket"

    def _begin(self, request: ev.Request) -> None:
        # (A trusted proxy may have forwarded "wss" already.)
        self.scope["scheme"] = "wss" if request.scheme in ("https", "wss") else "ws"
        self.scope["subprotocols"] = _subprotocols(request.headers)
        self.scope.setdefault("extensions", {})["websocket.http.response"] = {}
        self._state = _State.CONNECTING
        self._connect_delivered = False
        self._messages: deque[bytes | str] = deque()
        # Set once the front end says the connection is closed: (code, reason).
        self._closed: tuple[int, str] | None = None
        self._unacknowledged = 0
        self._shutting_down = False
        self._wakeup = asyncio.Event()
        self._credit = asyncio.Event()

    # Events from the front end

    def message(self, data: bytes | str) -> None:
        self._messages.append(data)
        self._wakeup.set()

    def closed(self, code: int, reason: str) -> None:
        if self._closed is None:
            self._closed = (code, reason)
        self._wakeup.set()
        self._credit.set()

    def credit(self, size: int) -> None:
        self._unacknowledged -= size
        if self._unacknowledged <= ev.WEBSOCKET_WINDOW:
            self._credit.set()

    def shutdown(self) -> None:
        """The worker is stopping (shutdown, reload, recycling): close an open WebSocket with
        1012 so that its client reconnects elsewhere, and tell the app it is gone. One still in
        its handshake is closed once accepted."""
        self._shutting_down = True
        if self._state is _State.ACCEPTED and self._closed is None:
            self._state = _State.CLOSED
            self._send_event(ev.WebSocketClose(self._id, ev.WS_SERVICE_RESTART, ""))
            self.closed(ev.WS_SERVICE_RESTART, "")

    # ASGI

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._closed is None:
                logger.error("Exception in ASGI application", exc_info=exc)
                self._fail()
            else:
                # Most likely the disconnect itself, from send() or as the framework re-raised
                # it: nothing has gone wrong but the client left (or broke the protocol).
                logger.debug("The app stopped with %r after the WebSocket closed.", exc)
        except BaseException as exc:
            # SystemExit and the like: the app wants this worker gone.
            logger.error("Exception in ASGI application", exc_info=exc)
            self._fail()
            self._on_fatal(exc)
        else:
            if self._state is _State.CONNECTING:
                logger.error("ASGI callable returned without accepting or denying the WebSocket.")
                self._fail()
            elif self._state is _State.DENYING:
                logger.error("ASGI callable returned without completing its denial response.")
            elif self._state is _State.ACCEPTED:
                self._close(ev.WS_NORMAL_CLOSURE, "")  # returning is the end of the conversation
        finally:
            self._send_event(ev.RequestFinished(self._id))

    async def receive(self) -> Message:
        if not self._connect_delivered:
            self._connect_delivered = True
            return {"type": "websocket.connect"}
        while True:
            if self._messages:
                data = self._messages.popleft()
                if self._closed is None:
                    self._send_event(ev.Credit(self._id, len(data)))
                if isinstance(data, str):
                    return {"type": "websocket.receive", "text": data}
                return {"type": "websocket.receive", "bytes": data}
            if self._closed is not None:
                code, reason = self._closed
                return {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wakeup.clear()
            await self._wakeup.wait()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self._state
        if kind == "websocket.send" and state is _State.ACCEPTED:
            await self._send_message(message)
        elif kind == "websocket.accept" and state is _State.CONNECTING:
            self._accept(message)
        elif kind == "websocket.close" and state in (_State.CONNECTING, _State.ACCEPTED):
            # Before accepting, this denies the handshake: the front end answers 403.
            code = message.get("code", ev.WS_NORMAL_CLOSURE)
            if not isinstance(code, int) or not 1000 <= code <= 4999:
                raise RuntimeError(f"invalid WebSocket close code: {code!r}")
            self._close(code, str(message.get("reason") or ""))
        elif kind == "websocket.http.response.start" and state is _State.CONNECTING:
            self._start_denial(message)
        elif kind == "websocket.http.response.body" and state is _State.DENYING:
            await self._send_denial_body(message)
        elif self._closed is not None and kind in ("websocket.send", "websocket.close"):
            raise ClientDisconnected(f"the WebSocket is closed (code {self._closed[0]})")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in WebSocket state {state.name}")

    # Internals

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.scope["subprotocols"]:
            raise RuntimeError(f"subprotocol {subprotocol!r} was not offered by the client")
        headers = checked_headers(message.get("headers", ()))
        self._state = _State.ACCEPTED
        if self._closed is None:
            self._send_event(ev.WebSocketAccept(self._id, subprotocol or "", headers))
        if self._shutting_down:
            self.shutdown()

    async def _send_message(self, message: Message) -> None:
        if self._closed is not None:
            raise ClientDisconnected(f"the WebSocket is closed (code {self._closed[0]})")
        data = message.get("bytes")
        if data is not None:
            data = bytes(data)
        else:
            data = message.get("text")
            if not isinstance(data, str):
                raise RuntimeError("websocket.send needs 'bytes' or 'text'")
        if _too_big(data):
            # It would not fit in one frame of the wire format, and break the worker's pipe.
            raise RuntimeError(f"a WebSocket message is limited to {MAX_PAYLOAD} bytes")
        if self._pipe.backed_up:
            await self._pipe.drained()  # (the front end is not emptying the pipe: wait)
            if self._closed is not None:
                raise ClientDisconnected(f"the WebSocket is closed (code {self._closed[0]})")
        self._send_event(ev.WebSocketMessage(self._id, data))
        await self._wait_credit(len(data))

    def _close(self, code: int, reason: str) -> None:
        self._state = _State.CLOSED
        if self._closed is None:
            self._send_event(ev.WebSocketClose(self._id, code, reason))

    def _start_denial(self, message: Message) -> None:
        status = checked_status(message["status"])
        headers = checked_headers(message.get("headers", ()))
        self._state = _State.DENYING
        if self._closed is None:
            self._send_event(ev.ResponseStart(self._id, status, headers))

    async def _send_denial_body(self, message: Message) -> None:
        body = bytes(message.get("body", b""))
        more_body = bool(message.get("more_body", False))
        if not more_body:
            self._state = _State.CLOSED
        if self._closed is None:
            self._send_event(ev.ResponseBody(self._id, body, more_body))
            await self._wait_credit(len(body) if more_body else 0)

    async def _wait_credit(self, size: int) -> None:
        """Backpressure: a client that reads slowly slows the app's send()."""
        self._unacknowledged += size
        while self._unacknowledged > ev.WEBSOCKET_WINDOW and self._closed is None:
            self._credit.clear()
            await self._credit.wait()

    def _fail(self) -> None:
        """The app raised (or returned too soon): 500 before the handshake, 1011 after it."""
        if self._closed is not None:
            return
        if self._state is _State.CONNECTING:
            self._state = _State.CLOSED
            self._send_event(error_response(self._id))
        elif self._state is _State.ACCEPTED:
            self._close(ev.WS_INTERNAL_ERROR, "")


def _too_big(data: bytes | str) -> bool:
    if isinstance(data, bytes):
        return len(data) > MAX_PAYLOAD
    # Encoded only when it might be too big: UTF-8 takes at most 4 bytes a character.
    return len(data) > MAX_PAYLOAD // 4 and len(data.encode()) > MAX_PAYLOAD


def _subprotocols(headers: ev.Headers) -> list[str]:
    return [
        token.strip().decode("latin-1")
        for name, value in headers
        if name == b"sec-websocket-protocol"
        for token in value.split(b",")
        if token.strip()
    ]
