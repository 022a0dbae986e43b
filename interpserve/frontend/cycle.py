"""One request's trip through the front end: sent to a worker, its body streamed after it as the
app receives it, and the worker's response written back to the client as the client takes it.

Both bodies move in windows (events.BODY_WINDOW_MIN to BODY_WINDOW): the request's is what the
worker may hold that the app has not received yet, the response's what the worker may send that
the client's socket has not taken yet. Each starts small and doubles, as the budget allows
(`budget.py`), each time a whole window has gone through: a transfer that keeps moving soon has
the large one, and an app that never reads (or a client that never does) holds the small one.
The budget counts a request body's bytes from the socket until the app has received them, a
response's bytes until the client's socket has taken them, and the widening of either window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum, auto
from typing import Protocol

from interpserve import events as ev
from interpserve.accesslog import CLIENT_CLOSED
from interpserve.frontend.dispatch import SERVICE_UNAVAILABLE, RequestConnection, WorkerRequest
from interpserve.frontend.health import is_probe, probe_response
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.response import (
    CONTINUE,
    LAST_CHUNK,
    ResponseFraming,
    ResponsePlan,
    chunk,
    plan_response,
)
from interpserve.logs import escape

logger = logging.getLogger("interpserve.error")

# What a response's window narrows to while the budget is spent: enough that the client's socket
# is given something to take at each credit round trip (docs/hardening.md, "Slow readers").
_RESPONSE_WINDOW_LEAST = 4 * 1024

_TEXT = ((b"content-type", b"text/plain; charset=utf-8"),)


class CycleConnection(RequestConnection, Protocol):
    """What a request cycle needs of "its connection": an HTTP/1.1 connection (connection.py),
    or one stream of an HTTP/2 connection (http2_stream.py)."""

    @property
    def writing_paused(self) -> bool:
        """The client is not taking the response as fast as it comes: no more credit."""
        ...

    def write(self, data: bytes) -> None: ...
    def hold(self, size: int) -> None:
        """The cycle holds `size` more request body bytes (reserved in the budget)."""
        ...

    def body_sent(self, size: int) -> None:
        """The cycle no longer holds `size` body bytes here: sent to its worker, or dropped."""
        ...

    def response_held(self, delta: int) -> None:
        """`delta` more (or fewer) response bytes wait in memory for the client: counted in the
        budget where they wait."""
        ...

    def update_reading(self) -> None:
        """Read on if there is room now (a window opened), or stop."""
        ...

    def wait_for_budget(self) -> bool:
        """Whether reading must wait for the budget to have room (it resumes by itself)."""
        ...

    def room_available(self) -> None:
        """The worker's pipe has drained (channel.DrainWaiter): read on."""
        ...

    def cycle_done(self, cycle: RequestCycle) -> None: ...
    def abort(self) -> None: ...


class Stage(Enum):
    """Where a request is on its way (the app's own life, and the client's, are apart)."""

    QUEUED = auto()  # behind the responses before it on its connection
    DISPATCHED = auto()  # with a worker, or waiting for one; no response yet
    RESPONDING = auto()  # the response has started
    COMPLETE = auto()  # the response is complete


class RequestCycle(WorkerRequest):
    """One request, whichever connection it came on. The response's framing is HTTP/1.1's
    here (`_start_response`, `_write_body`, `_write_trailers`, `_send_continue`); HTTP/2's
    cycle replaces those and nothing else.

    Its state is `stage`, the response's way to the client (what the connection reads), and
    two one-way latches beside it, one per party, each of which can close in any stage (so
    not stages of their own, nor one of the other): `_disconnected`, the client's end (gone,
    or its response cut off: nothing more is written, nor sent to the app), and `_finished`,
    the app's end (it returned, its worker was lost, or it never had one: nothing more is
    sent to a worker). A response complete with the app still running (a background task),
    and a client gone while the app runs on, are both ordinary."""

    # Slots: with HTTP/2's few more, a cycle has more attributes than the 30 an instance keeps
    # inline (CPython 3.13), past which each instance had a dict of its own, slower to make and
    # to read, on every request.
    __slots__ = (
        "_body",
        "_continue_sent",
        "_credit",
        "_disconnected",
        "_end_sent",
        "_finished",
        "_head",
        "_held",
        "_in_flight",
        "_plan",
        "_response_taken",
        "_response_window",
        "_taken",
        "_timeout",
        "_window",
        "_withheld_credit",
        "_written",
        "body_complete",
        "keep_alive",
        "stage",
        "status",
    )

    _conn: CycleConnection

    def __init__(self, conn: CycleConnection, head: RequestHead) -> None:
        super().__init__(conn, head)
        self.keep_alive = head.keep_alive
        self.stage = Stage.QUEUED
        # Request body received from the client, not yet sent to the worker, and its size; and
        # how much was sent that the app has not received yet.
        self._body: list[bytes] = []
        self._held = 0
        self._in_flight = 0
        self.body_complete = not head.has_body
        self._end_sent = not head.has_body
        # The request body's window (none before "100 Continue": the app has not asked yet),
        # how much of it the worker takes now, and what the app received since it widened.
        self._window = 0 if head.expect_continue else ev.BODY_WINDOW_MIN
        self._credit = self._window
        self._taken = 0
        self._continue_sent = False
        self._plan: ResponsePlan | None = None
        self._head = b""  # the response head, until it can leave with the first body bytes
        self._written = 0
        # The response's window, what the client took since it widened, and the credit kept
        # back while the client's socket has not taken what it was given.
        self._response_window = ev.BODY_WINDOW_MIN
        self._response_taken = 0
        self._withheld_credit = 0
        self._finished = False
        self._disconnected = False
        self.status = 0
        self._timeout: asyncio.TimerHandle | None = None

    @property
    def queued(self) -> bool:
        return self.stage is Stage.QUEUED

    @property
    def response_started(self) -> bool:
        return self.stage is Stage.RESPONDING or self.stage is Stage.COMPLETE

    @property
    def response_complete(self) -> bool:
        return self.stage is Stage.COMPLETE

    # Toward the worker

    def dispatch(self) -> None:
        if self.stage is Stage.QUEUED:
            self.stage = Stage.DISPATCHED
        conn = self._conn
        pool = conn.state.pool
        health_path = conn.state.config.health_path
        if health_path is not None and is_probe(health_path, self.head.target):
            self._finished = True
            self.respond(*probe_response(ready=pool.ready, draining=conn.state.draining))
            return
        if not self._to_worker(self.dispatch):
            return
        if not self._end_sent:  # (most requests have no body)
            self._flush_body()
        timeout = conn.state.config.timeout_request
        if timeout is not None:
            self._timeout = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _unavailable(self) -> None:
        self._finished = True
        self.respond(503, SERVICE_UNAVAILABLE)

    def _timed_out(self) -> None:
        self._timeout = None
        if self._finished or self._channel is None:
            return
        self._conn.state.pool.request_timed_out(self._channel, self._request_id)
        if self.stage is Stage.COMPLETE:
            return  # the app runs on after its response (a background task): the client has it
        if self.stage is Stage.RESPONDING:
            self._conn.abort()
        else:
            self.respond(504, b"Gateway Timeout")

    def read_room(self) -> int | None:
        """How many more body bytes to read for this request now: what its window takes, less
        what it holds; none while its worker's pipe is full, nor while the budget is spent
        unless the app has received all it was sent (so that it always moves); None while no
        window is open for it (no worker has it yet)."""
        if self.stage is Stage.COMPLETE or self._disconnected or self._finished:
            return ev.BODY_WINDOW  # nobody will read it: it is dropped as fast as it comes
        channel = self._channel
        if channel is None:
            return None
        room = self._credit - self._held
        if room > 0 and channel.backed_up:
            channel.when_drained(self._conn)  # (what it reads would wait in memory for it)
            return 0
        outstanding = self._held + self._in_flight
        if room > 0 and outstanding and self._conn.wait_for_budget():
            return 0
        if outstanding + room > ev.BODY_WINDOW_MIN:
            # Beyond the small window only what the budget has room for: a window widened
            # while there was room is not all taken again once many others fill the budget.
            budget = self._conn.state.budget
            room = min(room, max(ev.BODY_WINDOW_MIN - outstanding, budget.limit - budget.held))
        return room

    def add_body(self, data: bytes) -> None:
        if self.stage is Stage.COMPLETE or self._disconnected:
            return  # nobody will read it: discard, so the next request can be parsed
        self._body.append(data)
        self._held += len(data)
        self._conn.hold(len(data))
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
            data = b"".join(self._body) if len(self._body) > 1 else self._body[0]
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
            self._held -= sent
            self._in_flight += sent
            self._conn.body_sent(sent)

    def disconnect(self, *, client_gone: bool = True, status: int = CLIENT_CLOSED) -> None:
        """The client is gone (or the server cut the response off, or its body broke): tell
        the app, drop whatever it still sends, and log the request unless it was answered
        (with `status` if it was not started)."""
        if self._disconnected:
            return
        self._disconnected = True
        self._stop_waiting()
        if self._channel is not None and not self._finished:
            self._channel.send(ev.Disconnect(self._request_id))
        self._let_go()
        if not self.response_complete and self._conn.state.access_log:
            self._log_access(self.status if self.response_started else status, client_gone)

    def _let_go(self) -> None:
        """Nothing more moves: give back to the budget the body held here and sent, and the
        response's window."""
        budget = self._conn.state.budget
        if self._held:
            self._body.clear()
            self._conn.body_sent(self._held)
            budget.release(self._held)
            self._held = 0
        if self._in_flight:
            budget.release(self._in_flight)  # (the worker drops what the app did not take)
            self._in_flight = 0
        if self._withheld_credit:
            self._conn.response_held(-self._withheld_credit)
            self._withheld_credit = 0
        if self._response_window > ev.BODY_WINDOW_MIN:
            budget.release(self._response_window - ev.BODY_WINDOW_MIN)
            self._response_window = ev.BODY_WINDOW_MIN

    def writable(self) -> None:
        """The client's socket has drained: give the app the credit withheld meanwhile."""
        withheld, self._withheld_credit = self._withheld_credit, 0
        if withheld:
            self._conn.response_held(-withheld)
            if not self._finished:
                self._give_credit(withheld)

    # From the worker (pool.channel.ResponseSink)

    def on_credit(self, size: int) -> None:
        """The app received `size` more bytes of the body (0: it asks for it, after the client
        said it would wait for "100 Continue")."""
        if not self._window:
            if not self._continue_sent and self.stage is Stage.DISPATCHED:
                self._continue_sent = True
                self._send_continue()
            self._window = self._credit = ev.BODY_WINDOW_MIN
        else:
            size = min(size, self._in_flight)  # (after _let_go, nothing is counted any more)
            self._in_flight -= size
            self._credit += size
            budget = self._conn.state.budget
            budget.release(size)
            self._taken += size
            if self._taken >= self._window and not self._end_sent:
                self._taken = 0
                wider = min(2 * self._window, ev.BODY_WINDOW)
                if budget.has_room(wider - self._window):
                    self._credit += wider - self._window
                    self._window = wider
        self._flush_body()
        self._conn.update_reading()

    def on_response_start(self, status: int, headers: ev.Headers) -> None:
        if self._disconnected or self.response_complete:
            return  # (answered already on the app's behalf: a 504, or a 503 at shutdown)
        head = self.head
        if head.expect_continue and not self._continue_sent:
            # The client may never send the body it announced; it cannot be skipped safely.
            self.keep_alive = False
        self._begin_response(status)
        if self.correlation_id is not None and (ids := self._conn.state.request_ids):
            headers = ids.response_headers(headers, self.correlation_id)
        self._start_response(status, headers)

    def _begin_response(self, status: int) -> None:
        """The response has started: the stage its connection reads, and the status its access
        line gives (on_response_start's, and HTTP/2's on_whole_response's)."""
        self.stage = Stage.RESPONDING
        self.status = status

    def _send_continue(self) -> None:
        self._conn.write(CONTINUE)

    def _start_response(self, status: int, headers: ev.Headers) -> None:
        head = self.head
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
        if self._disconnected or self.stage is not Stage.RESPONDING:
            return
        self._write_body(data, more_body)
        if more_body:
            self._response_sent(len(data))
        else:
            self._complete()

    def _write_body(self, data: bytes, more_body: bool) -> None:
        plan = self._plan
        assert plan is not None
        size = len(data)
        framing = plan.framing
        if framing is ResponseFraming.CHUNKED:
            out = chunk(data) if data else b""
            if not more_body:
                out += LAST_CHUNK
        elif framing is ResponseFraming.LENGTH:
            remaining = plan.content_length - self._written
            if size > remaining >= 0 or (not more_body and size < remaining):
                # More (or less) than the app's Content-Length: the client cannot tell where
                # this response ends, so it is the last one on the connection.
                self.keep_alive = False
                self._log_length_mismatch(self._written + size)
            out = data[: max(remaining, 0)]  # (a negative end would cut from the end instead)
        elif framing is ResponseFraming.CLOSE:
            out = data
        else:
            out = b""
        self._written += size
        if self._head:
            out = self._head + out
            self._head = b""
        if out:
            self._conn.write(out)

    def _response_sent(self, size: int) -> None:
        """`size` more response bytes were written: the app may send as many more once the
        client's socket has taken them, and more again when a whole window has gone."""
        if self._conn.writing_paused:
            # They wait in memory: the credit is given in writable(), once the socket took them.
            self._withheld_credit += size
            self._conn.response_held(size)
        else:
            self._give_credit(size)

    def _give_credit(self, size: int) -> None:
        """The client took `size` response bytes: the app may send as many more, and more
        again each time a whole window has gone; while the budget is spent, fewer, until the
        window is the least."""
        window = self._response_window
        budget = self._conn.state.budget
        if budget.spent:
            # The response's first window is outside the budget, and a client that reads slowly
            # holds all of it here (uvloop keeps the whole of a write its socket took part of):
            # thousands of them would hold thousands of first windows, whatever the limit.
            cut = min(size, window - _RESPONSE_WINDOW_LEAST)
            if cut > 0:
                self._response_window = budget.narrow(window, window - cut, ev.BODY_WINDOW_MIN)
                self._response_taken = 0
                size -= cut
        else:
            self._response_taken += size
            if self._response_taken >= window:
                self._response_taken = 0
                self._response_window = budget.widen(window, ev.BODY_WINDOW, ev.BODY_WINDOW_MIN)
                size += self._response_window - window
        if size and self._channel is not None:
            self._channel.send(ev.Credit(self._request_id, size))

    def _log_length_mismatch(self, sent: int) -> None:
        """The app's mistake, named: its client sees a response cut short, or cut."""
        assert self._plan is not None
        length = self._plan.content_length
        request = f"{self.head.method} {escape(self.head.target.decode('latin-1'))}"
        if sent > length:
            logger.error(
                'Response to "%s" is longer than its Content-Length of %d bytes: cut there, '
                "and the connection closed.",
                request,
                length,
            )
        else:
            logger.error(
                'Response to "%s" ended after %d of its Content-Length of %d bytes: the '
                "connection is closed.",
                request,
                sent,
                length,
            )

    def on_response_trailers(self, headers: ev.Headers) -> None:
        if self._disconnected or self.stage is not Stage.RESPONDING:
            return
        self._write_trailers(headers)
        self._complete()

    def _write_trailers(self, headers: ev.Headers) -> None:
        """HTTP/1.1 sends none (the extension is offered over HTTP/2 only): the body ends."""
        self._write_body(b"", False)

    def _app_done(self) -> None:
        """The app's end closes: nothing more goes to its worker, and its time limit no longer
        runs."""
        self._finished = True
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None

    def on_finished(self) -> None:
        self._app_done()
        if self.stage is not Stage.COMPLETE and not self._disconnected:
            self._let_go()
            self._conn.abort()  # the app returned mid-response: the client must not wait

    def on_worker_lost(self) -> None:
        self._app_done()
        if self._disconnected or self.stage is Stage.COMPLETE:
            return
        if self.stage is Stage.RESPONDING:
            self._let_go()
            self._conn.abort()
        else:
            self.respond(502, b"Bad Gateway")

    def respond(self, status: int, body: bytes) -> None:
        """Answer on the app's behalf (the worker is gone or there is none)."""
        self.on_response_start(status, (*_TEXT, (b"content-length", b"%d" % len(body))))
        self.on_response_body(body, False)

    def _complete(self) -> None:
        self.stage = Stage.COMPLETE
        if (
            self._held
            or self._in_flight
            or self._withheld_credit
            or self._response_window > ev.BODY_WINDOW_MIN
        ):
            # Body the app never took (or a request answered without a worker) is dropped, and
            # the window of a streamed response given back.
            self._let_go()
        state = self._conn.state
        if state.observe_request is not None:
            state.observe_request(self.status, time.perf_counter() - self._started_at)
        if state.access_log:
            self._log_access(self.status, False)
        self._conn.cycle_done(self)

    def _log_access(self, status: int, disconnected: bool) -> None:
        self._write_access_line(status, self._body_bytes_sent(), disconnected=disconnected)

    def _body_bytes_sent(self) -> int:
        """The response body bytes written for the client (the access line's response_bytes):
        the app's, less what its framing cut off."""
        plan = self._plan
        if plan is None or plan.framing is ResponseFraming.NONE:
            return 0
        if plan.framing is ResponseFraming.LENGTH:
            return min(self._written, plan.content_length)
        return self._written
