"""One client connection: bytes from the socket go through the parser into request cycles, and
responses go back in request order (pipelining). This layer only moves bytes and applies
backpressure; HTTP is decided in the parser, the cycle and `response.py`.

It reads into a buffer of its own (asyncio's BufferedProtocol), so that it, not the kernel,
decides how much one read brings: between requests a head and a little after it; in a body
what the request's window has room for (`budget.py`). An upload whose app does not read then
costs its window, not what the client managed to send; and no single read, however hostile its
content, makes more than a bounded slice of parsing for the loop every connection shares.

Another protocol can take the connection over (a `Session`): a WebSocket after its handshake
(websocket.py), or HTTP/2 from the first byte (http2.py), when a client opens with its preface
or chose it by ALPN."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, cast

from interpserve.accesslog import AccessLog
from interpserve.config import Config
from interpserve.errors import BadRequest
from interpserve.events import Address
from interpserve.frontend.budget import MemoryBudget
from interpserve.frontend.correlation import CorrelationIds
from interpserve.frontend.cycle import RequestCycle
from interpserve.frontend.dispatch import SERVICE_UNAVAILABLE
from interpserve.frontend.http2_frames import PREFACE as _HTTP2_PREFACE
from interpserve.frontend.http_parser import (
    BodyData,
    EndOfRequest,
    ParsedEvent,
    RequestHead,
    RequestParser,
    Upgrade,
)
from interpserve.frontend.http_rules import is_websocket_upgrade
from interpserve.frontend.response import DefaultHeaders, error_response, http_date
from interpserve.memory import BurstWatch
from interpserve.option_values import TrustedProxies, parse_trusted
from interpserve.pool.pool import WorkerPool

logger = logging.getLogger("interpserve.error")

# The most one read brings: what bounds the parse (or decode) one read makes the loop do. A
# connection's reads start at READ_FIRST and widen beyond it only while they are quick to take
# apart (see _SLICE_SECONDS): a plain upload then costs a quarter of the reads (and loop
# passes), and a costly body (one-byte chunks) is never read more than READ_FIRST at once.
READ_SIZE = 256 * 1024
READ_FIRST = 64 * 1024
# A connection whose reads take longer than this to parse (or decode) reads less at once, down to
# the least, until they are quick again: no client's bytes, however costly to take apart (a body
# of one-byte chunks), hold the loop every connection shares for long.
_SLICE_SECONDS = 0.0005
_READ_LEAST = 1024
# A read that costs more than this a byte (and more than the least) is costly: its connection
# then reads again only at its turn, after the other costly reads' turns, each turn being the
# read and as long again (libuv would read on from it many times in a row). All such reads
# together then take at most half of the loop's time, whatever their number: plain requests
# find it free. Bodies of plain bytes cost a fraction of that; a flood of pipelined requests,
# far more. Reads smaller than the check are not timed (they are quick, and most requests come
# in one), unless the connection reads less than READ_FIRST: then they are, or it would never
# find them quick again and read the most once more.
_COSTLY_PER_BYTE = 5e-9
_COSTLY_LEAST = 0.0001
_TURN = 2
# A chunked body's read, though, is costly from a fifth of that a byte (the framing guard
# decodes chunks in C: chunks of a hundred bytes or more cost a fraction of it, one-byte chunks
# more), and its turn is the read and 95 times as long. The front end's decoding is the least
# of what a body of tiny chunks costs: the kernel carries several bytes for each byte of data,
# and the worker and the client have their share. With shorter turns such uploads, cheap for
# the loop, went fast enough to take the machine's cores from plain requests, whose latency
# rose several times over (docs/hardening.md).
_CHUNKED_COSTLY_PER_BYTE = 1e-9
_CHUNKED_TURN = 96
_SLICE_CHECK = 4096
# What one read brings between requests (a head, and what follows it), and the most body bytes a
# connection holds that no window has room for yet (a pipelined request's): beyond it, reading
# waits for the requests before to move on.
_READ_AHEAD = 16 * 1024
# Stop reading from a client that has this many pipelined requests waiting behind the one being
# answered; resume once they have moved on.
_MAX_QUEUED_REQUESTS = 64
# Memory is given back (interpserve/memory.py) once this many connections, or this many bytes
# held for them, have come and mostly gone.
_CONNECTION_BURST = 256
_BUFFER_BURST = 16 * 1024 * 1024
# When the server starts draining, an idle keep-alive connection may have a request on its way
# already (a client sends the next one as soon as it has the last response): it is given this
# long for it, answered with "connection: close", rather than closed under the client's feet.
DRAIN_IDLE = 0.5


class ReadWait(Enum):
    """What the connection's read timer is timing (one timer: see _update_read_timer)."""

    NOTHING = ""  # a response is under way (the app's time), or the connection is closing
    IDLE = "idle"  # the next request on a keep-alive connection
    HEAD = "head"  # the rest of a request head: a deadline
    BODY = "body"  # more of a request body: reset by every byte


class Closure(Enum):
    """Whether the connection is closing, and how."""

    OPEN = "open"
    CLOSING = "closing"  # after what was written (the protocol says so), or the client left
    ABORTED = "aborted"  # at once, by the server: a response could not be completed


class Session(Protocol):
    """A protocol that has taken a connection over: the connection hands it what it gets."""

    def data_received(self, data: bytes) -> None: ...
    def writable(self) -> None: ...
    def connection_lost(self) -> None: ...
    def shutdown(self) -> None: ...
    def read_room(self) -> int:
        """How much the connection may read now; 0 to wait (the session resumes it)."""
        ...


@dataclass
class ServerState:
    """What every connection shares: set up once by the server."""

    config: Config
    pool: WorkerPool
    new_parser: Callable[[], RequestParser]
    connections: set[HTTPConnection] = field(default_factory=set)
    # Shutting down: health probes answer 503, and every response closes its connection.
    draining: bool = False
    # Told each completed response's status and duration in seconds (--metrics-port).
    observe_request: Callable[[int, float], None] | None = None
    _date: bytes = b""
    _date_second: int = -1
    # From the config, once, for every request: see __post_init__.
    default_headers: DefaultHeaders = field(init=False)
    trusted_proxies: TrustedProxies | None = field(init=False)  # None: --no-proxy-headers
    scheme: str = field(init=False)
    access_log: AccessLog | None = field(init=False)  # None: --no-access-log
    request_ids: CorrelationIds | None = field(init=False)  # None: no --request-id
    _date_header: bool = field(init=False)
    budget: MemoryBudget = field(init=False)
    # Every connection reads into this buffer in turn (a read is copied out before the next).
    read_buffer: memoryview = field(init=False)
    bursts: tuple[BurstWatch, BurstWatch] = field(init=False)  # started by the server
    # When the costly reads scheduled so far have had their turn (loop time): see _COSTLY_*.
    costly_until: float = 0.0

    def __post_init__(self) -> None:
        config = self.config
        self.budget = budget = MemoryBudget(config.limit_buffers, READ_SIZE)
        self.pool.pipe_backlog = budget.change
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        self.bursts = (
            BurstWatch(lambda: len(self.connections), _CONNECTION_BURST, trim=True, quiet_looks=2),
            BurstWatch(lambda: budget.held, _BUFFER_BURST, trim=True, quiet_looks=2),
        )
        self.access_log = (
            AccessLog(config.access_log_format, self.pool.kind) if config.access_log else None
        )
        self._date_header = config.date_header
        self.default_headers = DefaultHeaders.build(
            server_header=config.server_header, headers=config.headers
        )
        self.trusted_proxies = (
            parse_trusted(config.forwarded_allow_ips) if config.proxy_headers else None
        )
        self.request_ids = (
            CorrelationIds(config.request_id_header, self.trusted_proxies)
            if config.request_id
            else None
        )
        self.scheme = "https" if config.ssl_certfile else "http"

    def date(self) -> bytes:
        """The Date header's value, formatted once a second; b"" with --no-date-header."""
        if not self._date_header:
            return b""
        now = time.time()
        if int(now) != self._date_second:
            self._date_second = int(now)
            self._date = http_date(now)
        return self._date

    def queued_requests(self) -> int:
        return sum(conn.queued for conn in self.connections)

    def quiet(self) -> bool:
        """No burst of connections or of buffered bytes under way (BurstWatch.quiet)."""
        return all(watch.quiet() for watch in self.bursts)

    def holds_websockets(self) -> bool:
        """A WebSocket is open: a fresh serving process in this one's place would close it
        with 1012 (leftover.py waits for none)."""
        return any(conn.websocket for conn in self.connections)


class HTTPConnection(asyncio.BufferedProtocol):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._parser = state.new_parser()
        self._transport: asyncio.Transport | None = None
        # The first is the one being answered. A list, not a deque: at most
        # _MAX_QUEUED_REQUESTS wait behind it, and an empty deque costs every connection 0.6 KiB.
        self._cycles: list[RequestCycle] = []
        self._parsing: RequestCycle | None = None  # the one whose body is being received
        self._bad_request: BadRequest | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._waiting_for = ReadWait.NOTHING  # what the read timer is timing
        self._deadline = 0.0  # when what is waited for is overdue (loop time)
        self._reading_paused = False
        self._read_size = _READ_AHEAD
        self._read_view = state.read_buffer[:_READ_AHEAD]
        self._read_most = READ_FIRST  # less while its reads are slow, more while quick
        self._read_rate = 0.0  # what the last read timed took to take apart, a byte
        self._turn_waiting = False  # paused after a costly read until its turn (_wait_turn)
        self._closure = Closure.OPEN  # nothing more is written once it is not OPEN
        # A WebSocket handshake waiting for the responses before it, then the session that has
        # taken the connection over: either way the connection carries no more HTTP/1.1.
        self._upgrade: Upgrade | None = None
        self._session: Session | None = None
        self.websocket = False  # its session is a WebSocket's (ServerState.holds_websockets)
        self.buffered = 0  # request body bytes read, waiting in this connection's cycles
        self.writing_paused = False
        self.scheme = state.scheme
        self.client: Address | None = None
        self.server: Address | None = None

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, though they behave as one.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        # Told as soon as the socket takes less than it is given, and again once what it left
        # is written: a response's credit is then withheld for what waits in memory. (Not 0:
        # TLS transports pause at a buffer as large as that, so they would pause when empty.)
        transport.set_write_buffer_limits(1, 0)
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        connections = self.state.connections
        connections.add(self)
        self.state.bursts[0].note(len(connections))
        self._update_read_timer()
        if self.state.config.http2:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._start_http2(b"")
            else:
                self._session = _PrefaceSniffer(self)
        if self.state.draining:  # accepted just before the listening socket closed
            self.shutdown()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._read_size > _READ_AHEAD:
            budget = self.state.budget
            if budget.held + self._read_size > budget.limit:
                # Other connections took the budget's room since this one's room was decided:
                # it reads what is left (at least a little: the read is under way; what it
                # brings then stops it until there is room).
                self._read_size = max(min(self._room(), self._read_most), _READ_LEAST)
                self._read_view = self.state.read_buffer[: self._read_size]
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        data = self._read_view[:nbytes].tobytes()
        if nbytes < _SLICE_CHECK and self._read_most >= READ_FIRST:
            self.data_received(data)
            return
        started = time.perf_counter()
        self.data_received(data)
        took = time.perf_counter() - started
        # Judged by the lesser of its cost a byte and the one before's: the frames reads leave
        # for a worker's pipe go in one write once a batch of them has gathered (pipes.py), at
        # the cost of whichever read completes it, and a preemption can slow any one read; a
        # client whose bytes are costly to take apart makes every read costly. (A byte: judged
        # by the time of a smaller read before it, a read of the most escaped its turn.) Beyond
        # READ_FIRST, though, reads widen only after one quick by its own time, and one slow by
        # its own time goes back to READ_FIRST at once: quick reads widened them, and a client
        # can make the next ones costly.
        rate = took / nbytes
        spent = min(rate, self._read_rate) * nbytes
        self._read_rate = rate
        most = self._read_most
        if spent > _SLICE_SECONDS:
            self._read_most = max(min(most // 2, READ_FIRST), _READ_LEAST)
        elif nbytes > READ_FIRST and took > _SLICE_SECONDS:
            self._read_most = READ_FIRST
        elif took < _SLICE_SECONDS / 4:
            self._read_most = min(most * 2, READ_SIZE)
        chunked = self._parser.in_chunked_body
        per_byte = _CHUNKED_COSTLY_PER_BYTE if chunked else _COSTLY_PER_BYTE
        if spent > _COSTLY_LEAST and spent > nbytes * per_byte:
            self._wait_turn(spent * (_CHUNKED_TURN if chunked else _TURN))
        elif self._read_most != most:
            self.update_reading()

    def _wait_turn(self, turn: float) -> None:
        """After a costly read: read again once the loop has had as long for the rest (and
        not sooner, whatever else gives the connection room meanwhile: a credit from its
        worker arrives after nearly every read)."""
        if self._transport is None:
            return
        self._turn_waiting = True
        state = self.state
        loop = asyncio.get_running_loop()
        # Its turn comes after the others' turns, and each turn is the read and as long again
        # (or more: see _CHUNKED_TURN) for the rest of the loop: waiting only as long as its
        # read, after the others', would give several connections' costly reads the whole loop
        # between them, back to back.
        state.costly_until = max(state.costly_until, loop.time()) + turn
        self._pause_reading()
        loop.call_at(state.costly_until, self._take_turn)

    def _take_turn(self) -> None:
        self._turn_waiting = False
        self.update_reading()

    def data_received(self, data: bytes) -> None:
        if self._session is not None:
            self._session.data_received(data)
            self.update_reading()
            return
        try:
            events = self._parser.feed(data)
        except BadRequest as exc:
            self._handle(exc.events)
            self._reject(exc)
            return
        self._handle(events)
        self.update_reading()
        self._update_read_timer()

    def _handle(self, events: list[ParsedEvent]) -> None:
        for event in events:
            if isinstance(event, BodyData):
                if self._parsing is not None:
                    self._parsing.add_body(event.data)
            elif isinstance(event, RequestHead):
                if event.upgrade and self._takes_websocket(event):  # (most have no Upgrade)
                    self._parsing = None
                    continue  # the Upgrade event after it brings what follows
                self._parsing = cycle = RequestCycle(self, event)
                # Whatever the read timer waited for has come: an answer the front end gives
                # at once (a probe) must not leave the idle wait's old deadline standing.
                self._waiting_for = ReadWait.NOTHING
                if self.state.draining:
                    cycle.keep_alive = False
                self._cycles.append(cycle)
                if len(self._cycles) == 1 and not self.writing_paused:
                    cycle.dispatch()  # (else once the client takes what it was sent)
            elif isinstance(event, EndOfRequest) and self._parsing is not None:
                self._parsing.end_body()
            elif isinstance(event, Upgrade):
                self._on_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        aborted = self._closure is Closure.ABORTED
        if not aborted:
            self._closure = Closure.CLOSING
        self._cancel_read_timer()
        state = self.state
        state.connections.discard(self)
        state.budget.forget(self)
        for cycle in self._cycles:  # the one being answered, and any pipelined behind it
            cycle.disconnect(client_gone=not aborted)
        self._cycles.clear()
        self._parsing = None
        if self._session is not None:
            self._session.connection_lost()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._cycles:
            first = self._cycles[0]
            if first.queued:
                first.dispatch()  # it waited for the client to take the responses before
            else:
                first.writable()
        elif self._session is not None:
            self._session.writable()

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    @property
    def queued(self) -> int:
        """Pipelined requests waiting behind the one being answered."""
        return max(len(self._cycles) - 1, 0)

    # Called by the request cycles

    def write(self, data: bytes) -> None:
        if self._transport is not None and self._closure is Closure.OPEN:
            self._transport.write(data)

    def hold(self, size: int) -> None:
        """A cycle holds `size` more body bytes (it gives them back to the budget once the app
        has received them, or they are dropped)."""
        self.buffered += size
        self.state.budget.reserve(size)

    def body_sent(self, size: int) -> None:
        """A cycle no longer holds `size` body bytes here: sent to its worker, or dropped."""
        self.buffered -= size

    def response_held(self, delta: int) -> None:
        """Response bytes written to a socket that has not taken them (cycle.py)."""
        self.state.budget.change(delta)

    def cycle_done(self, cycle: RequestCycle) -> None:
        """The first cycle's response is complete: answer the next request, or wait for one."""
        if not cycle.keep_alive:
            self.close()
            return
        self._cycles.pop(0)
        if cycle is self._parsing and cycle.body_complete:
            self._parsing = None
        if self._cycles:
            if not self.writing_paused:
                # (Else once the client has taken this response: resume_writing. A client that
                # pipelines requests and reads no answer holds its answers back, not a pile.)
                self._cycles[0].dispatch()
        elif self._upgrade is not None:
            self._start_websocket()
        elif self._bad_request is not None:
            self._reject(self._bad_request)
        self.update_reading()
        self._update_read_timer()

    def close(self) -> None:
        """Close after what has been written (used when the protocol says so)."""
        if self._transport is not None and self._closure is Closure.OPEN:
            self._closure = Closure.CLOSING
            self._transport.close()

    def abort(self) -> None:
        """Close at once: a response cannot be completed."""
        if self._transport is not None:
            self._closure = Closure.ABORTED
            self._transport.abort()

    # Called by the server

    def shutdown(self) -> None:
        """Finish the response under way, if any, then close; an idle connection waits
        DRAIN_IDLE for a request that may be on its way (see ServerState.draining). For
        HTTP/2: GOAWAY, and the streams it names finish."""
        if self._session is not None:
            self._session.shutdown()
        else:
            self.shutdown_http1()

    def shutdown_http1(self) -> None:
        if not self._cycles:
            if self._waiting_for is ReadWait.IDLE:
                self._set_read_timer(ReadWait.IDLE, DRAIN_IDLE)
        elif self._cycles[0].response_complete:
            self.close()
        else:
            for cycle in self._cycles:
                cycle.keep_alive = False

    def give_up(self) -> None:
        """The drain's deadline: a request with no response started yet is answered 503
        (then the connection closes), a response under way is cut off."""
        if self._session is None and self._cycles and not self._cycles[0].response_started:
            cycle = self._cycles[0]
            cycle.keep_alive = False
            cycle.respond(503, SERVICE_UNAVAILABLE)
        else:
            self.abort()

    # Internals

    def _reject(self, exc: BadRequest) -> None:
        """Malformed input: answer it once the responses before it are out, then close."""
        self._pause_reading()
        parsing = self._parsing
        if parsing is not None and not parsing.body_complete and parsing not in self._cycles:
            # Answered already, without waiting for its body: a second answer would be read as
            # the next request's. The connection just closes.
            self.close()
            return
        broken = parsing is not None and not parsing.body_complete
        if parsing is not None and broken:
            # Its body is broken mid-way: it is lost, like a client that went away (and its
            # access line says so: it is the answer below, if any).
            parsing.disconnect(client_gone=False, status=exc.status)
            self._cycles.remove(parsing)
            if parsing.response_started:
                self.abort()
                return
        if any(not cycle.keep_alive for cycle in self._cycles):
            return  # the connection closes after those anyway: the client expects no more
        if self._cycles:
            self._bad_request = exc
            return
        logger.debug("Invalid HTTP request: %s", exc)
        message = "Invalid HTTP request received." if exc.status == 400 else str(exc)
        self.write(error_response(exc.status, message, self.state.default_headers))
        if not broken and (access_log := self.state.access_log):
            # A request no worker saw, perhaps not even as far as its method: a line too.
            access_log.log(None, self.client, exc.status, None)
        self.close()

    def update_reading(self) -> None:
        """Read on, as much as there is room for now; or stop until there is room: a window
        opens, the responses before a pipelined request go, the budget has room again."""
        if (
            self._turn_waiting
            or self._bad_request is not None
            or self._closure is not Closure.OPEN
            or self._upgrade
        ):
            return  # reading stays paused: see _wait_turn, _reject and _on_upgrade
        room = self._room()
        if room <= 0:
            self._pause_reading()
            return
        room = min(room, self._read_most)
        if room != self._read_size:
            self._read_size = room
            self._read_view = self.state.read_buffer[:room]
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def _room(self) -> int:
        session = self._session
        return session.read_room() if session is not None else self._read_room()

    def room_available(self) -> None:
        self.update_reading()

    def wait_for_budget(self) -> bool:
        """Whether reading must wait for the budget to have room (it then resumes this)."""
        budget = self.state.budget
        if budget.spent:
            budget.wait(self)
            return True
        return False

    def _read_room(self) -> int:
        if len(self._cycles) > _MAX_QUEUED_REQUESTS:
            return 0
        parsing = self._parsing
        if parsing is not None and not parsing.body_complete:
            room = parsing.read_room()
            if room is not None:
                return room  # what its window takes now (no budget: the window is its own)
        # A head and what comes after it, or a body no window takes yet: a little, unless the
        # connection holds some already and the budget is spent.
        room = _READ_AHEAD - self.buffered
        if room <= 0 or (self.buffered and self.wait_for_budget()):
            return 0
        return room

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _update_read_timer(self) -> None:
        """One timer for what the connection waits for from the client: the next request on an
        idle keep-alive connection, the rest of a request head (a deadline: a client trickling
        it byte by byte is cut off), or more of a request body (reset by every byte)."""
        config = self.state.config
        parsing = self._parsing
        if (
            self._closure is not Closure.OPEN
            or self._bad_request is not None
            or self._session is not None
        ):
            self._waiting_for = ReadWait.NOTHING
        elif self._parser.in_head:
            if self._waiting_for is not ReadWait.HEAD:
                self._set_read_timer(ReadWait.HEAD, config.timeout_header_read)
        elif parsing is not None and not parsing.body_complete and parsing in self._cycles:
            self._set_read_timer(ReadWait.BODY, config.timeout_body_read)
        elif not self._cycles:
            if self._waiting_for is not ReadWait.IDLE:
                self._set_read_timer(ReadWait.IDLE, config.timeout_keep_alive)
        else:
            # A response is under way: the app's time, not ours.
            self._waiting_for = ReadWait.NOTHING

    def _set_read_timer(self, waiting_for: ReadWait, timeout: float) -> None:
        """Wait at most `timeout` for `waiting_for`. The timer is not moved on every request
        (two timer operations per request are a real cost): it fires at its first deadline,
        and then checks the current one."""
        loop = asyncio.get_running_loop()
        self._waiting_for = waiting_for
        self._deadline = deadline = loop.time() + timeout
        timer = self._read_timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._read_timer = loop.call_at(deadline, self._read_timer_due)

    def _cancel_read_timer(self) -> None:
        self._waiting_for = ReadWait.NOTHING
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timer_due(self) -> None:
        self._read_timer = None
        if self._waiting_for is ReadWait.NOTHING:
            return  # nothing is waited for now; the next wait sets a timer again
        loop = asyncio.get_running_loop()
        if self._deadline > loop.time():
            self._read_timer = loop.call_at(self._deadline, self._read_timer_due)
            return
        self._read_timed_out()

    def _read_timed_out(self) -> None:
        waiting_for, self._waiting_for = self._waiting_for, ReadWait.NOTHING
        if waiting_for is ReadWait.IDLE:
            self.close()
        elif waiting_for is ReadWait.BODY and self._reading_paused:
            # The server stopped reading (the app is not taking the body): not the client's fault.
            self._set_read_timer(ReadWait.BODY, self.state.config.timeout_body_read)
        else:
            self._reject(BadRequest(f"the request {waiting_for.value} took too long", status=408))

    # WebSocket

    def _takes_websocket(self, head: RequestHead) -> bool:
        return self.state.config.ws != "none" and is_websocket_upgrade(head)

    def _on_upgrade(self, upgrade: Upgrade) -> None:
        if not self._takes_websocket(upgrade.head):
            # A switch this server does not make: the request is served as plain HTTP, and the
            # bytes after it are not HTTP, so it is the last one.
            if self._cycles:
                self._cycles[-1].keep_alive = False
            else:
                self.close()
            return
        self._upgrade = upgrade
        if self._cycles:
            self._pause_reading()  # what follows waits for the responses before it
        else:
            self._start_websocket()

    def _start_websocket(self) -> None:
        # Imported on the first handshake: wsproto costs memory that apps without WebSockets
        # need not pay.
        from interpserve.frontend.websocket import WebSocketSession

        upgrade, self._upgrade = self._upgrade, None
        assert upgrade is not None and self._transport is not None
        websocket = self._session = WebSocketSession(self, upgrade.head)
        self.websocket = True
        websocket.start(upgrade.data)
        self.update_reading()

    # HTTP/2

    def _start_http2(self, data: bytes) -> None:
        # Imported on the first HTTP/2 connection, as wsproto is on the first WebSocket.
        from interpserve.frontend.http2 import HTTP2Session

        assert self._transport is not None
        self._cancel_read_timer()  # the session keeps its own
        http2 = self._session = HTTP2Session(self)
        http2.start(data)

    def _end_sniffing(self, data: bytes) -> None:
        """The first bytes decided: HTTP/2 by its preface, else HTTP/1.1 from them on."""
        if data.startswith(_HTTP2_PREFACE):
            self._start_http2(data)
        else:
            self._session = None
            if data:
                self.data_received(data)


class _PrefaceSniffer:
    """The connection's first bytes, held until they show whether they are HTTP/2's preface:
    a client with prior knowledge (h2c) sends nothing else first. Any other first bytes are
    HTTP/1.1, and after them it costs nothing more."""

    def __init__(self, conn: HTTPConnection) -> None:
        self._conn = conn
        self._held = b""

    def data_received(self, data: bytes) -> None:
        held = self._held + data
        if len(held) < len(_HTTP2_PREFACE) and _HTTP2_PREFACE.startswith(held):
            self._held = held
            return
        self._conn._end_sniffing(held)

    def writable(self) -> None:
        pass

    def connection_lost(self) -> None:
        pass

    def shutdown(self) -> None:
        self._conn.shutdown_http1()  # (what comes next, if anything, is HTTP/1.1's to drain)

    def read_room(self) -> int:
        return _READ_AHEAD


def _address(info: object) -> Address | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None
