"""One request's trip through the front end: sent to a worker, its body streamed after it as the
worker grants credit, and the worker's response written back to the client."""

from __future__ import annotations

import asyncio
import http
import logging
import time
from typing import TYPE_CHECKING

from interpserve import events as ev
from interpserve.errors import NoWorkerYet, WorkerGone
from interpserve.frontend.health import is_probe, probe_response
from interpserve.frontend.http_parser import RequestHead
from interpserve.frontend.proxy import resolve
from interpserve.frontend.response import (
    CONTINUE,
    LAST_CHUNK,
    Framing,
    ResponsePlan,
    chunk,
    plan_response,
)
from interpserve.logs import escape
from interpserve.pool.channel import WorkerChannel

if TYPE_CHECKING:
    from interpserve.frontend.connection import HTTPConnection

access_logger = logging.getLogger("interpserve.access")

_TEXT = ((b"content-type", b"text/plain; charset=utf-8"),)


def request_event(
    conn: HTTPConnection, head: RequestHead, request_id: int, *, websocket: bool = False
) -> ev.Request:
    """What a worker is told of a request (or a WebSocket handshake): the client and scheme as
    a trusted proxy says they are, else as the connection has them."""
    path, _, query = head.target.partition(b"?")
    client, scheme = conn.client, conn.scheme
    if head.forwarded and (trusted := conn.state.trusted_proxies) is not None:
        client, scheme = resolve(client, scheme, head.headers, trusted)
    # (Positional: keyword arguments would double the cost of building it.)
    return ev.Request(
        request_id,
        head.method,
        scheme,
        head.http_version,
        path,
        query,
        tuple(head.headers),
        client,
        conn.server,
        head.has_body,
        head.expect_continue,
        websocket,
    )


class RequestCycle:
    def __init__(self, conn: HTTPConnection, head: RequestHead) -> None:
        self._conn = conn
        self.head = head
        self.keep_alive = head.keep_alive
        self._channel: WorkerChannel | None = None
        self._request_id = 0
        # Request body received from the client, not yet sent to the worker.
        self._body: list[bytes] = []
        self.body_complete = not head.has_body
        self._end_sent = not head.has_body
        # How many body bytes the worker will take now; none before "100 Continue".
        self._credit = 0 if head.expect_continue else ev.BODY_WINDOW
        self._continue_sent = False
        self._plan: ResponsePlan | None = None
        self._head = b""  # the response head, until it can leave with the first body bytes
        self._written = 0
        self._withheld_credit = 0
        self.response_started = False
        self.response_complete = False
        self._finished = False
        self._disconnected = False
        self.status = 0
        self._client = conn.client  # or the one a trusted proxy forwarded: see dispatch()
        self._started_at = time.perf_counter()
        self._timeout: asyncio.TimerHandle | None = None
        self._waiting_for_worker: asyncio.Task[None] | None = None

    # Toward the worker

    def dispatch(self) -> None:
        conn = self._conn
        pool = conn.state.pool
        if is_probe(conn.state.config.health_path, self.head.target):
            self._finished = True
            self.respond(*probe_response(ready=pool.ready, draining=conn.state.draining))
            return
        try:
            channel = pool.choose()
        except WorkerGone as exc:
            if isinstance(exc, NoWorkerYet) and self._waiting_for_worker is None:
                self._waiting_for_worker = pool.when_worker_ready(self.dispatch)
                return
            self._finished = True
            self.respond(503, b"Service Unavailable")
            return
        self._channel = channel
        self._request_id = channel.new_request_id()
        request = request_event(conn, self.head, self._request_id)
        self._client = request.client
        channel.start_request(self, request)
        self._flush_body()
        timeout = conn.state.config.timeout_request
        if timeout is not None:
            self._timeout = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timeout = None
        if self._finished or self._channel is None:
            return
        self._conn.state.pool.request_timed_out(self._channel, self._request_id)
        if self.response_complete:
            return  # the app runs on after its response (a background task): the client has it
        if self.response_started:
            self._conn.abort()
        else:
            self.respond(504, b"Gateway Timeout")

    def _cancel_timeout(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None

    def add_body(self, data: bytes) -> None:
        if self.response_complete or self._disconnected:
            return  # nobody will read it: discard, so the next request can be parsed
        self._body.append(data)
        self._conn.buffered += len(data)
        self._flush_body()

    def end_body(self) -> None:
        self.body_complete = True
        self._flush_body()

    def _flush_body(self) -> None:
        channel = self._channel
        if channel is None or self._end_sent or self._finished or self._disconnected:
            return
        sent = 0
        while self._body and self._credit > 0:
            data = b"".join(self._body)
            data, rest = data[: self._credit], data[self._credit :]
            self._body = [rest] if rest else []
            self._credit -= len(data)
            sent += len(data)
            last = self.body_complete and not rest
            channel.send(ev.RequestBody(self._request_id, data, not last))
            self._end_sent = last
        if self.body_complete and not self._body and not self._end_sent:
            channel.send(ev.RequestBody(self._request_id, b"", False))
            self._end_sent = True
        if sent:
            self._conn.body_sent(sent)

    def disconnect(self) -> None:
        """The client is gone: tell the app, and drop whatever it still sends."""
        self._disconnected = True
        if self._waiting_for_worker is not None:
            self._waiting_for_worker.cancel()
        if self._channel is not None and not self._finished:
            self._channel.send(ev.Disconnect(self._request_id))

    def writable(self) -> None:
        """The client's socket has drained: give the app the credit withheld meanwhile."""
        if self._withheld_credit and self._channel is not None and not self._finished:
            self._channel.send(ev.Credit(self._request_id, self._withheld_credit))
        self._withheld_credit = 0

    # From the worker (pool.channel.ResponseSink)

    def on_credit(self, size: int) -> None:
        if self.head.expect_continue and not self._continue_sent and not self.response_started:
            self._continue_sent = True
            self._conn.write(CONTINUE)
        self._credit += size
        self._flush_body()

    def on_response_start(self, status: int, headers: ev.Headers) -> None:
        if self._disconnected:
            return
        head = self.head
        if head.expect_continue and not self._continue_sent:
            # The client may never send the body it announced; it cannot be skipped safely.
            self.keep_alive = False
        self.response_started = True
        self.status = status
        # (Positional: keyword arguments cost more to pass.)
        self._plan = plan = plan_response(
            status,
            headers,
            head.method,
            head.http_version,
            self.keep_alive,
            self._conn.state.date(),
            self._conn.state.default_headers,
        )
        self.keep_alive = plan.keep_alive
        self._head = plan.head

    def flush_head(self) -> None:
        if self._head:
            self._conn.write(self._head)
            self._head = b""

    def on_response_body(self, data: bytes, more_body: bool) -> None:
        plan = self._plan
        if self._disconnected or self.response_complete or plan is None:
            return
        size = len(data)
        framing = plan.framing
        if framing is Framing.CHUNKED:
            out = chunk(data) if data else b""
            if not more_body:
                out += LAST_CHUNK
        elif framing is Framing.LENGTH:
            remaining = plan.content_length - self._written
            if size > remaining or (not more_body and size < remaining):
                # More (or less) than the app's Content-Length: the client cannot tell where
                # this response ends, so it is the last one on the connection.
                self.keep_alive = False
            out = data[: max(remaining, 0)]  # (a negative end would cut from the end instead)
        elif framing is Framing.CLOSE:
            out = data
        else:
            out = b""
        self._written += size
        if self._head:
            out = self._head + out
            self._head = b""
        if out:
            self._conn.write(out)
        if more_body:
            if self._conn.writing_paused:
                self._withheld_credit += size
            elif self._channel is not None:
                self._channel.send(ev.Credit(self._request_id, size))
        else:
            self._complete()

    def on_finished(self) -> None:
        self._finished = True
        self._cancel_timeout()
        if not self.response_complete and not self._disconnected:
            self._conn.abort()  # the app returned mid-response: the client must not wait

    def on_worker_lost(self) -> None:
        self._finished = True
        self._cancel_timeout()
        if self._disconnected or self.response_complete:
            return
        if self.response_started:
            self._conn.abort()
        else:
            self.respond(502, b"Bad Gateway")

    def respond(self, status: int, body: bytes) -> None:
        """Answer on the app's behalf (the worker is gone or there is none)."""
        self.on_response_start(status, (*_TEXT, (b"content-length", b"%d" % len(body))))
        self.on_response_body(body, False)

    def _complete(self) -> None:
        self.response_complete = True
        if self._body:
            # Body the app never took (or a request answered without a worker): it is dropped,
            # and must stop counting against the connection's read budget.
            self._conn.body_sent(sum(map(len, self._body)))
            self._body.clear()
        state = self._conn.state
        if state.observe_request is not None:
            state.observe_request(self.status, time.perf_counter() - self._started_at)
        if state.access_log:
            self._log_access()
        self._conn.cycle_done(self)

    def _log_access(self) -> None:
        head = self.head
        client = self._client
        try:
            phrase = http.HTTPStatus(self.status).phrase
        except ValueError:
            phrase = ""
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d %s %.1fms worker=%s',
            escape(f"{client[0]}:{client[1]}") if client else "-",  # (a proxy's word for it)
            head.method,
            escape(head.target.decode("latin-1")),
            head.http_version,
            self.status,
            phrase,
            (time.perf_counter() - self._started_at) * 1000,
            self._channel.worker_id if self._channel else "-",
        )
