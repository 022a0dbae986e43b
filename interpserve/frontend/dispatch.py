"""What every request shares on its way to a worker, whatever it came as (an HTTP/1.1 request
or an HTTP/2 stream: cycle.py; a WebSocket handshake: websocket.py): its correlation id, the
worker it goes to (the pool's least busy), the wait for one while none is in rotation, the 503
when there is none, and its access line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from interpserve import events as ev
from interpserve.errors import NoWorkerYet, WorkerGone
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.proxy import resolve
from interpserve.pool.channel import ResponseSink, WorkerChannel

if TYPE_CHECKING:
    from interpserve.accesslog import ClosedBy
    from interpserve.frontend.connection import ServerState

SERVICE_UNAVAILABLE = b"Service Unavailable"


class RequestConnection(Protocol):
    """What a request needs of the connection it came on to go to a worker."""

    @property
    def state(self) -> ServerState: ...
    @property
    def client(self) -> ev.Address | None: ...
    @property
    def server(self) -> ev.Address | None: ...
    @property
    def scheme(self) -> str: ...


def request_event(
    conn: RequestConnection,
    head: RequestHead,
    request_id: int,
    correlation_id: str | None,
    websocket: bool,
) -> ev.Request:
    """What a worker is told of a request (or a WebSocket handshake): the client and scheme as
    a trusted proxy says they are, else as the connection has them; and its --request-id."""
    path, _, query = head.target.partition(b"?")
    client, scheme = conn.client, conn.scheme
    if head.forwarded and (trusted := conn.state.trusted_proxies) is not None:
        client, scheme = resolve(client, scheme, head.headers, trusted)
    headers = tuple(head.headers)
    if correlation_id is not None and (ids := conn.state.request_ids) is not None:
        headers = ids.request_headers(headers, correlation_id)
    # (Positional: keyword arguments would double the cost of building it.)
    return ev.Request(
        request_id,
        head.method,
        scheme,
        head.http_version,
        path,
        query,
        headers,
        client,
        conn.server,
        head.has_body,
        head.expect_continue,
        websocket,
    )


class WorkerRequest:
    """A request on its way to a worker: the base of RequestCycle and WebSocketSession, which
    are the ResponseSinks its worker answers (each in its own protocol)."""

    # (Slots, as in its subclasses: see RequestCycle.)
    __slots__ = (
        "__weakref__",  # (a test sees it freed without the garbage collector)
        "_channel",
        "_client",
        "_conn",
        "_request_id",
        "_started_at",
        "_waiting_for_worker",
        "correlation_id",
        "head",
    )

    websocket = False  # whether it asks for a WebSocket (the worker runs a websocket scope)
    _conn: RequestConnection

    def __init__(self, conn: RequestConnection, head: RequestHead) -> None:
        self._conn = conn
        self.head = head
        self._channel: WorkerChannel | None = None  # its worker's, once it has one
        self._request_id = 0  # on that channel
        self._client = conn.client  # or the one a trusted proxy forwarded: see _to_worker()
        self._started_at = time.perf_counter()
        self._waiting_for_worker: asyncio.Task[None] | None = None
        ids = conn.state.request_ids
        self.correlation_id = None if ids is None else ids.choose(head.headers, conn.client)

    def _to_worker(self, retry: Callable[[], None]) -> bool:
        """Start it on the worker with the fewest requests in flight: True. False if there is
        none in rotation: while one is starting, it waits (`retry` is called once the pool has
        one, has stopped, or gave up waiting: the next try says which); otherwise it is
        answered 503 (`_unavailable`)."""
        pool = self._conn.state.pool
        try:
            channel = pool.choose()
        except WorkerGone as exc:
            if isinstance(exc, NoWorkerYet) and self._waiting_for_worker is None:
                self._waiting_for_worker = pool.when_worker_ready(retry)
            else:
                self._unavailable()
            return False
        self._channel = channel
        self._request_id = channel.new_request_id()
        request = request_event(  # (positional: a keyword argument costs a slower call)
            self._conn, self.head, self._request_id, self.correlation_id, self.websocket
        )
        self._client = request.client
        sink: ResponseSink = self  # type: ignore[assignment]  # (each subclass is one: no cast(),
        channel.start_request(sink, request)  # a function call, on every request)
        return True

    def on_whole_response(self, status: int, headers: ev.Headers, body: bytes) -> None:
        """(ResponseSink's) The three steps, in order: a protocol may do them in fewer."""
        sink = cast(ResponseSink, self)  # (each subclass is one)
        sink.on_response_start(status, headers)
        sink.on_response_body(body, False)
        sink.on_finished()

    def _unavailable(self) -> None:
        """Answer 503 (SERVICE_UNAVAILABLE), as its protocol does."""
        raise NotImplementedError

    def _stop_waiting(self) -> None:
        """The client left: it no longer waits for a worker."""
        if self._waiting_for_worker is not None:
            self._waiting_for_worker.cancel()

    def _write_access_line(
        self,
        status: int,
        response_bytes: int | None,
        *,
        disconnected: bool = False,
        closed: tuple[int, ClosedBy] | None = None,
    ) -> None:
        access_log = self._conn.state.access_log
        if access_log is None:
            return
        access_log.log(
            self.head,
            self._client,  # (a proxy's word for it)
            status,
            self._started_at,
            response_bytes=response_bytes,
            worker_id=self._channel.worker_id if self._channel else None,
            request_id=self.correlation_id,
            disconnected=disconnected,
            websocket=self.websocket,
            closed=closed,
        )
