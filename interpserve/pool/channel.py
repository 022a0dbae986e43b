"""The front end's end of one worker's pipes: sends requests, routes what comes back to the
request it belongs to, and counts the requests the worker is busy with."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from interpserve import events as ev
from interpserve.pipes import FramePipe

logger = logging.getLogger("interpserve.error")

_MAX_REQUEST_ID = 2**32


class ResponseSink(Protocol):
    """Where a worker's answer to one request goes (the front end's request cycle)."""

    def on_response_start(self, status: int, headers: ev.Headers) -> None: ...
    def on_whole_response(self, status: int, headers: ev.Headers, body: bytes) -> None:
        """A whole response whose app has returned (most are): on_response_start,
        on_response_body and on_finished in one call."""
        ...

    def flush_head(self) -> None: ...
    def on_response_body(self, data: bytes, more_body: bool) -> None: ...
    def on_credit(self, size: int) -> None: ...
    def on_finished(self) -> None: ...
    def on_worker_lost(self) -> None: ...


class DrainWaiter(Protocol):
    """A connection that stopped reading a body while the worker's pipe was full."""

    def room_available(self) -> None: ...


@runtime_checkable
class WebSocketSink(Protocol):
    """A sink for a WebSocket request (the front end's WebSocket session) also takes these."""

    def on_websocket(self, event: ev.WebSocketEvent) -> None: ...


@runtime_checkable
class TrailersSink(Protocol):
    """A sink for an HTTP request (the request cycle) also takes the response's trailers."""

    def on_response_trailers(self, headers: ev.Headers) -> None: ...


class WorkerChannel:
    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self._sinks: dict[int, ResponseSink] = {}
        self._next_id = 0
        self._pipe = FramePipe(
            self._on_event, self._on_closed, self._on_batch_end, self._on_backlog
        )
        # Told how much more (or less) waits in memory to be written to the worker: set by
        # the pool, for the front end's budget.
        self.pipe_backlog: Callable[[int], None] | None = None
        self._backlog = 0
        self._drain_waiters: dict[DrainWaiter, None] = {}
        self._started: list[ResponseSink] = []
        self._ready: asyncio.Future[ev.WorkerReady | ev.WorkerFailed] | None = None
        self._answers: dict[int, asyncio.Future[ev.Pong | ev.MemoryReport | None]] = {}
        self.closed = asyncio.Event()
        # Set when the worker leaves: it said it is going down, or its pipe closed. (It may
        # take a while to exit after saying so: its replacement need not wait for that.)
        self.lost = asyncio.Event()
        # Whether requests may be sent: the worker is neither gone nor going. (A plain
        # attribute: it is read twice for every request.)
        self.accepting = True
        self.requests_taken = 0
        # Recycle the worker once it has taken this many requests (--limit-max-requests).
        self.request_limit: int | None = None

    @property
    def outstanding(self) -> int:
        """Requests sent whose app call has not returned yet: the load used for dispatch."""
        return len(self._sinks)

    async def connect(self, fd_in: int, fd_out: int) -> None:
        self._ready = asyncio.get_running_loop().create_future()
        await self._pipe.connect(fd_in, fd_out)

    async def wait_ready(self) -> ev.WorkerReady | ev.WorkerFailed:
        assert self._ready is not None
        return await self._ready

    def start_request(self, sink: ResponseSink, request: ev.Request) -> None:
        if not self.accepting:
            sink.on_worker_lost()
            return
        self._sinks[request.request_id] = sink
        self.requests_taken += 1
        self._pipe.send(request)

    def new_request_id(self) -> int:
        self._next_id = (self._next_id + 1) % _MAX_REQUEST_ID
        return self._next_id

    def send(self, event: ev.Event) -> None:
        self._pipe.send(event)

    async def ping(self, timeout: float) -> bool:
        """Whether the worker's event loop answers within `timeout`: False means it is stuck
        (or gone)."""
        return await self._ask(ev.Ping, timeout) is not None

    async def memory(self, timeout: float) -> int | None:
        """The bytes the worker's own allocator holds; None if it does not say in time."""
        report = await self._ask(ev.MemoryQuery, timeout)
        if isinstance(report, ev.MemoryReport) and report.size >= 0:
            return report.size
        return None

    async def _ask(
        self, question: type[ev.Ping | ev.MemoryQuery], timeout: float
    ) -> ev.Pong | ev.MemoryReport | None:
        """Send a question and wait for its answer from the worker's event loop (None if it
        does not come within `timeout`, or the worker is gone)."""
        sequence = self.new_request_id()
        answer = self._answers[sequence] = asyncio.get_running_loop().create_future()
        self._pipe.send(question(sequence))
        try:
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            return None
        finally:
            self._answers.pop(sequence, None)

    def shutdown(self) -> None:
        self._pipe.send(ev.Shutdown())

    def close(self) -> None:
        self._pipe.close()

    def _on_event(self, event: ev.Event) -> None:
        match event:
            # The usual order: most responses are one ResponseStart with the whole body. (Its
            # fields are read as attributes: a class pattern capturing all six would cost
            # as much as the rest of this case.)
            case ev.ResponseStart():
                request_id = event.request_id
                if sink := self._sinks.get(request_id):
                    if event.finished and not event.more_body:
                        sink.on_whole_response(event.status, event.headers, event.body)
                        self._sinks.pop(request_id, None)
                        return
                    sink.on_response_start(event.status, event.headers)
                    body, more_body = event.body, event.more_body
                    if body or not more_body:
                        sink.on_response_body(body, more_body)
                    else:
                        self._started.append(sink)
                    if event.finished and request_id in self._sinks:
                        del self._sinks[request_id]
                        sink.on_finished()
            case ev.RequestFinished(request_id):
                if sink := self._sinks.pop(request_id, None):
                    sink.on_finished()
            case ev.ResponseBody(request_id, data, more_body):
                if sink := self._sinks.get(request_id):
                    sink.on_response_body(data, more_body)
            case ev.ResponseTrailers(request_id, headers):
                if isinstance(sink := self._sinks.get(request_id), TrailersSink):
                    sink.on_response_trailers(headers)
            case ev.WebSocketMessage() | ev.WebSocketAccept() | ev.WebSocketClose():
                if isinstance(sink := self._sinks.get(event.request_id), WebSocketSink):
                    sink.on_websocket(event)
            case ev.Credit(request_id, size):
                if sink := self._sinks.get(request_id):
                    sink.on_credit(size)
            case ev.Pong(sequence) | ev.MemoryReport(sequence):
                if (answer := self._answers.get(sequence)) and not answer.done():
                    answer.set_result(event)
            case ev.WorkerReady() | ev.WorkerFailed():
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(event)
                elif isinstance(event, ev.WorkerFailed):
                    # After start-up it means the worker is going down: send it nothing more.
                    logger.error("Worker %d is stopping: %s", self.worker_id, event.message)
                    self.accepting = False
                    self.lost.set()
            case _:
                logger.error("Worker %d sent an unexpected event: %r", self.worker_id, event)

    @property
    def backed_up(self) -> bool:
        """The worker's pipe is full, and frames wait in memory to be written to it."""
        return self._backlog > 0

    def when_drained(self, waiter: DrainWaiter) -> None:
        """Tell `waiter` once nothing waits in memory for the pipe any more: a body read
        meanwhile would only wait there too."""
        self._drain_waiters[waiter] = None

    def _on_backlog(self, delta: int) -> None:
        self._backlog += delta
        if self.pipe_backlog is not None:
            self.pipe_backlog(delta)
        if not self._backlog and self._drain_waiters:
            waiters, self._drain_waiters = self._drain_waiters, {}
            for waiter in waiters:
                waiter.room_available()

    def _on_batch_end(self) -> None:
        """A response's head waits for its first body chunk, to leave in one write with it;
        a head whose body did not come with it in the same read goes out now."""
        for sink in self._started:
            sink.flush_head()
        self._started.clear()

    def _on_closed(self) -> None:
        # First: a lost request's 502 can let a pipelined one be dispatched, never to here.
        self.accepting = False
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(ev.WorkerFailed("the worker stopped before it was ready"))
        sinks, self._sinks = self._sinks, {}
        for sink in sinks.values():
            sink.on_worker_lost()
        for answer in self._answers.values():
            if not answer.done():
                answer.set_result(None)
        self.closed.set()
        self.lost.set()
