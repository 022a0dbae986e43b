"""The ASGI adapter: one HTTP request's stream events in, ASGI receive/send for the app, stream
events out. Runs inside a worker, many cycles at once on the worker's event loop."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from interpserve import events as ev
from interpserve.compiled import speedups
from interpserve.errors import ClientDisconnected
from interpserve.worker.app import ASGIApp, Message

logger = logging.getLogger("interpserve.error")

_ERROR_BODY = b"Internal Server Error"
_ERROR_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"))
# What would split or corrupt the response if it were in a header.
_FORBIDDEN_IN_NAME = re.compile(rb"[\r\n\0:]")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\0]")


class EventPipe(Protocol):
    """Where a cycle's events go: the worker's pipe to the front end (pipes.FramePipe)."""

    def send(self, event: ev.Event) -> None: ...
    @property
    def backed_up(self) -> bool:
        """The front end is not emptying the pipe: more than a little waits in memory."""
        ...

    async def drained(self) -> None:
        """Return once the pipe has room again."""
        ...


def checked_headers(raw: Any) -> ev.Headers:
    """Header pairs with lowercase names, refusing what would split or corrupt the response.
    Names and values are taken as the app gives them (byte strings, says ASGI; bytearrays work
    too): a bytes() copy of each first would double the cost of this."""
    headers = tuple([(name.lower(), value) for name, value in raw])
    for name, value in headers:
        if not name or _FORBIDDEN_IN_NAME.search(name) or _FORBIDDEN_IN_VALUE.search(value):
            raise RuntimeError(f"invalid HTTP header in the response: {name!r}: {value!r}")
    return headers


# The Python version, the reference: its C twin, checked_headers in _speedups.c, must match it
# (tests/test_speedups.py).
python_checked_headers = checked_headers
if speedups is not None:
    checked_headers = speedups.checked_headers


def checked_status(status: Any) -> int:
    """A final response's status. A 1xx is refused too: sent as the response, its body-less
    head would leave the client to take the next response for this one's."""
    if not isinstance(status, int) or not 200 <= status <= 999:
        raise RuntimeError(f"invalid HTTP status in the response: {status!r}")
    return status


def connection_scope(
    kind: str,
    request: ev.Request,
    root_path: str,
    state: dict[str, Any],
    request_id_header: bytes | None,
) -> dict[str, Any]:
    """The scope of an http or websocket connection, from what the front end sent. Both path
    and raw_path start with root_path, as uvicorn's do: an app comparing them sees one path.
    With --request-id, the id the front end put in the request's headers is in
    scope["extensions"]["request_id"]["id"] too."""
    raw_path = request.raw_path
    scope = {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": request.http_version,
        "scheme": request.scheme,
        "path": root_path + decode_path(raw_path),
        "raw_path": root_path.encode() + raw_path if root_path else raw_path,
        "query_string": request.query_string,
        "root_path": root_path,
        "headers": list(request.headers),
        "client": request.client,
        "server": request.server,
        "state": state.copy(),
    }
    if request_id_header is not None:
        # The front end sends exactly one (last, unless the client's was taken).
        for name, value in reversed(request.headers):
            if name == request_id_header:
                scope["extensions"] = {"request_id": {"id": value.decode("latin-1")}}
                break
    return scope


class ASGICycle:
    """What the HTTP and the websocket adapters share: the request's id, the pipe its events
    go out on, what to call if the app breaks the worker, and its scope."""

    scope_type = "http"

    def __init__(
        self,
        request: ev.Request,
        pipe: EventPipe,
        on_fatal: Callable[[BaseException], None],
        root_path: str,
        state: dict[str, Any],
        request_id_header: bytes | None,
    ) -> None:
        self._id = request.request_id
        self._pipe = pipe
        self._send_event = pipe.send
        self._on_fatal = on_fatal
        self.scope = connection_scope(self.scope_type, request, root_path, state, request_id_header)
        self._begin(request)

    def _begin(self, request: ev.Request) -> None:
        """The rest of its scope and state: its kind's own."""
        raise NotImplementedError


class HTTPCycle(ASGICycle):
    def _begin(self, request: ev.Request) -> None:
        self.scope["method"] = request.method
        # Trailers reach a client only over HTTP/2, and only one that said it takes them.
        self._trailers_offered = request.http_version == "2" and any(
            name == b"te" and b"trailers" in value.lower() for name, value in request.headers
        )
        if self._trailers_offered:
            self.scope["extensions"] = {"http.response.trailers": {}}
        self._trailers: list[tuple[bytes, bytes]] | None = None  # awaited after the body
        self._chunks: list[bytes] = []
        self._body_done = not request.more_body
        self._body_delivered = False
        self._wants_continue = request.expect_continue and request.more_body
        self._disconnected = False
        self._response_started = False
        self._response_complete = False
        self._body_sent = False  # all of it, with trailers still to come
        # The response start, held for the first body chunk; a whole response is held for the
        # app's return, so that one frame tells the front end both (see _finish).
        self._start: ev.ResponseStart | None = None
        # Inside the task's eager first step (see Worker._start_request): what is held then is
        # sent when the step ends, not by a callback scheduled per request.
        self._first_step = True
        # How many more response body bytes the front end takes now: the window every response
        # starts with, then what the front end grants as the client takes them.
        self._send_credit = ev.BODY_WINDOW_MIN
        # What receive() and send() wait on, made only when they wait: most requests never do.
        self._wakeup: asyncio.Event | None = None
        self._credit: asyncio.Event | None = None

    # Events from the front end

    def feed_body(self, data: bytes, more_body: bool) -> None:
        if data:
            self._chunks.append(data)
        self._body_done = not more_body
        _wake(self._wakeup)

    def disconnect(self) -> None:
        self._disconnected = True
        _wake(self._wakeup)
        _wake(self._credit)

    def credit(self, size: int) -> None:
        self._send_credit += size
        _wake(self._credit)

    # ASGI

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError as exc:
            # The front end gave up on it (--timeout-request, or the shutdown's deadline) and
            # answers the client itself.
            why = exc.args[0] if exc.args else "cancelled"
            logger.warning("Cancelled %s %s: %s.", self.scope["method"], self.scope["path"], why)
            raise
        except Exception as exc:
            if not self._disconnected:
                self._app_failed(exc)
            else:
                # Most likely the disconnect itself, from send() or as the framework re-raised
                # it (Starlette's ClientDisconnect): nothing has gone wrong but the client left.
                logger.debug("The app stopped with %r after the client disconnected.", exc)
        except BaseException as exc:
            # SystemExit and the like: the app wants this worker gone.
            self._app_failed(exc)
            self._on_fatal(exc)
        else:
            if not self._response_started and not self._disconnected:
                logger.error("ASGI callable returned without starting response.")
                self._send_error()
            elif not self._response_complete and not self._disconnected:
                logger.error("ASGI callable returned without completing response.")
        finally:
            self._finish()

    def _app_failed(self, exc: BaseException) -> None:
        logger.error("Exception in ASGI application", exc_info=exc)
        if not self._response_started:
            self._send_error()

    def first_step_done(self) -> None:
        """The app's first step ended at a real wait: what it holds leaves at the end of this
        loop pass, as it would had it been sent later."""
        self._first_step = False
        if self._start is not None:
            asyncio.get_running_loop().call_soon(self._send_start)

    def _finish(self) -> None:
        """Tell the front end the app has returned: inside a whole response still held (most
        responses: one frame for everything), or on its own."""
        start, self._start = self._start, None
        if start is not None and not self._disconnected:
            start.finished = not start.more_body
            self._send_event(start)
            if start.finished:
                return
        self._send_event(ev.RequestFinished(self._id))

    async def receive(self) -> Message:
        self._send_start()  # before any Credit: the front end must see the start first
        if self._wants_continue:
            # The first receive() is the app asking for the body: only now may the client send
            # it, and the front end answers "100 Continue" when this credit arrives.
            self._wants_continue = False
            self._send_event(ev.Credit(self._id, 0))
        while True:
            if self._disconnected:
                return {"type": "http.disconnect"}
            if not self._body_delivered and (self._chunks or self._body_done):
                data = b"".join(self._chunks)
                self._chunks.clear()
                if data:
                    self._send_event(ev.Credit(self._id, len(data)))
                self._body_delivered = self._body_done
                return {"type": "http.request", "body": data, "more_body": not self._body_done}
            if self._body_delivered and self._response_complete:
                return {"type": "http.disconnect"}
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def send(self, message: Message) -> None:
        if self._disconnected:
            raise ClientDisconnected("the client has disconnected")
        kind = message["type"]
        if kind == "http.response.start":
            if self._response_started:
                if self._start is not None:
                    # The first start has not left yet: the client can still be told, with a
                    # 500, once the app's error is logged (see run()).
                    self._start = None
                    self._response_started = False
                raise RuntimeError("Expected ASGI message 'http.response.body', got 'start'.")
            status = checked_status(message["status"])
            headers = checked_headers(message.get("headers", ()))
            self._response_started = True
            if self._trailers_offered and message.get("trailers", False):
                self._trailers = []
            # The first body chunk usually follows at once: it joins the start, and the front
            # end gets the whole response in one frame. If the app waits for something else
            # first, the start leaves alone at the end of this loop pass.
            self._start = ev.ResponseStart(self._id, status, headers)
            if not self._first_step:
                asyncio.get_running_loop().call_soon(self._send_start)
        elif kind == "http.response.body":
            if not self._response_started:
                raise RuntimeError("Expected ASGI message 'http.response.start', got 'body'.")
            if self._response_complete or self._body_sent:
                logger.warning("Ignored an ASGI message sent after the response was complete.")
                return
            body = bytes(message.get("body", b""))
            more_body = bool(message.get("more_body", False))
            if self._trailers is not None and not more_body:
                # The trailers complete it: for the front end, more is to come.
                more_body, self._body_sent = True, True
            self._response_complete = not more_body
            if self._response_complete:
                _wake(self._wakeup)
            if len(body) > self._send_credit:
                body = await self._send_beyond_credit(body)
            if self._pipe.backed_up:
                await self._pipe.drained()
            if self._disconnected:
                return
            self._send_body(body, more_body)
        elif kind == "http.response.trailers":
            self._send_trailers(message)
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} in an http scope")

    def _send_body(self, body: bytes, more_body: bool) -> None:
        self._send_credit -= len(body)
        start = self._start
        if start is not None:
            start.body, start.more_body = body, more_body
            if more_body:
                self._start = None
                self._send_event(start)
            # else the whole response waits for the app's return (or the pass's end)
        else:
            self._send_event(ev.ResponseBody(self._id, body, more_body))

    async def _send_beyond_credit(self, body: bytes) -> bytes:
        """Backpressure: send what the credit allows of a chunk bigger than it, waiting for more
        as the client takes it; the rest, which the credit now allows, is returned. A client
        that reads slowly slows the app's send(), and never has more than its window of the
        response waiting for it.

        The rest is copied only once the pipe has room for it too, and leaves at once: copied
        before the wait for the pipe, each of a thousand slow downloads held its app's chunk
        twice while the front end was busy (docs/hardening.md)."""
        view = memoryview(body)
        while not self._disconnected:
            if self._pipe.backed_up:
                await self._pipe.drained()
            elif len(view) <= self._send_credit:
                break
            elif self._send_credit > 0:
                piece, view = view[: self._send_credit], view[self._send_credit :]
                self._send_body(piece.tobytes(), True)
            else:
                await self._credit_given()
        return view.tobytes()

    async def _credit_given(self) -> None:
        if self._credit is None:
            self._credit = asyncio.Event()
        self._credit.clear()
        await self._credit.wait()

    def _send_trailers(self, message: Message) -> None:
        trailers = self._trailers
        if trailers is None or not self._body_sent or self._response_complete:
            raise RuntimeError(
                "Unexpected ASGI message 'http.response.trailers': the response start did not "
                "ask for trailers, or its body is not complete yet."
            )
        trailers += checked_headers(message.get("headers", ()))
        if not message.get("more_trailers", False):
            self._response_complete = True
            _wake(self._wakeup)
            self._send_event(ev.ResponseTrailers(self._id, tuple(trailers)))

    def _send_start(self) -> None:
        """Send the held response start without a body chunk: none came in time."""
        start, self._start = self._start, None
        if start is not None and not self._disconnected:
            self._send_event(start)

    def _send_error(self) -> None:
        self._response_started = self._response_complete = True
        if self._disconnected:
            return
        self._send_event(error_response(self._id))


def error_response(request_id: int) -> ev.ResponseStart:
    """The 500 for an app that failed before it started a response."""
    return ev.ResponseStart(request_id, 500, _ERROR_HEADERS, _ERROR_BODY, more_body=False)


def _wake(event: asyncio.Event | None) -> None:
    """Wake whoever waits on `event` (None: nobody has yet); each checks again what it waits
    for, and clears the event before it waits again."""
    if event is not None:
        event.set()


def decode_path(raw_path: bytes) -> str:
    """ASGI's `path`: percent-escapes and UTF-8 decoded."""
    if b"%" in raw_path:
        # Imported here, once a path has an escape: at the top, urllib.parse (and ipaddress,
        # which it imports) would be in the memory of every worker interpreter (see
        # docs/processes.md, "What a worker interpreter imports").
        from urllib.parse import unquote_to_bytes

        raw_path = unquote_to_bytes(raw_path)
    return raw_path.decode("utf-8", errors="replace")
