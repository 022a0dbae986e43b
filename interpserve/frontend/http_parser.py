"""HTTP/1.1 request parsing, sans I/O: bytes in, request events out.

Two backends behind one interface: h11 (pure Python, always there) and httptools (llhttp, the
faster one). Both emit the same events and share the checks that decide how a request is framed,
so the rest of the server cannot tell them apart: those checks live in `http_rules.py`. Most
requests (whole in one read, in the plainest form) need neither: the framing guard
(`http_grammar.py`) parses them itself, by the same rules.
Responses are not written here: see `response.py`, shared by both.

A body's bytes come out as one BodyData per read (per request), however many chunks the client
cut them into: what a body costs the rest of the server follows its size, not its framing.
"""

from __future__ import annotations

from typing import Protocol

import h11

from interpserve.errors import BadRequest
from interpserve.frontend.http_events import (
    END_OF_REQUEST,
    BodyData,
    EndOfRequest,
    ParsedEvent,
    RequestHead,
    Upgrade,
)
from interpserve.frontend.http_grammar import FramingGuard
from interpserve.frontend.http_rules import Limits, make_head, without_fragment

DEFAULT_LIMITS = Limits()

# The parser's interface: what feed() returns and raises.
__all__ = [
    "END_OF_REQUEST",
    "BodyData",
    "EndOfRequest",
    "H11Parser",
    "HttptoolsParser",
    "Limits",
    "ParsedEvent",
    "RequestHead",
    "RequestParser",
    "Upgrade",
    "parser_factory",
]

try:
    import httptools
except ImportError:  # the optional, faster backend
    httptools = None  # type: ignore[assignment]


class _Body:
    """A request body's bytes as a backend hands them over (a chunk at a time), gathered into
    one BodyData per read, and counted against the body limit as it is."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.parts: list[bytes | bytearray] = []
        self.size = 0  # of this request's body so far

    def gather(self, out: list[ParsedEvent]) -> None:
        """What came since the last call, as one event (BadRequest if it is over the limit)."""
        parts = self.parts
        if parts:
            data = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)  # (h11: bytearray)
            parts.clear()
            self.size += len(data)
            self._limits.check_body(self.size)
            out.append(BodyData(data))


class RequestParser(Protocol):
    @property
    def in_head(self) -> bool:
        """A request head has begun to arrive and is not complete yet."""
        ...

    @property
    def in_chunked_body(self) -> bool:
        """A chunked body is under way, past its first chunk boundary (its chunks are the
        framing guard's to take apart: http_grammar.py)."""
        ...

    def feed(self, data: bytes) -> list[ParsedEvent]:
        """Parse what arrived; raise BadRequest on malformed input."""
        ...


class _GuardedParser:
    """What both backends share: every read goes through the framing guard (`http_grammar.py`),
    which parses the plainest requests itself (the fast path), takes chunked bodies apart
    itself from their first chunk boundary, and vets the backend's own parse (`_feed`) of the
    rest."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._guard = FramingGuard(limits)
        self._body = _Body(limits)  # the request's body, whichever of the two takes it apart

    @property
    def in_head(self) -> bool:
        """A request head has begun to arrive and is not complete yet."""
        return self._guard.in_head

    @property
    def in_chunked_body(self) -> bool:
        return self._guard.owns_body

    def feed(self, data: bytes) -> list[ParsedEvent]:
        guard, pos, end = self._guard, 0, len(data)
        events: list[ParsedEvent] = []
        try:
            while pos < end:
                if guard.owns_body:  # a chunked body's data, decoded by the guard alone
                    body, pos, backend_end = guard.take_body(data, pos)
                    if body:
                        self._body.parts.append(body)
                    if backend_end:
                        events += self._feed(backend_end)
                elif (request := guard.plain_request(data, pos)) is not None:
                    head, body_start, pos = request
                    events.append(head)
                    if body_start < pos:
                        events.append(BodyData(data[body_start:pos]))
                    events.append(END_OF_REQUEST)
                else:
                    # From a request boundary, or where the bytes before stopped: the backend
                    # has parsed up to here, as the guard has.
                    stop = guard.backend_part(data, pos)
                    part = data[pos:stop] if pos or stop < end else data
                    events += guard.check(part, self._feed)
                    pos = stop
            # One event for the body bytes of the read (they may have come from both parsers).
            self._body.gather(events)
        except BadRequest as exc:
            exc.events = events + exc.events
            raise
        return events

    def _feed(self, data: bytes) -> list[ParsedEvent]:
        raise NotImplementedError


class H11Parser(_GuardedParser):
    """h11, one `h11.Connection` per request: h11 would parse the next (pipelined) request only
    after seeing this one's response, which is written elsewhere, and it never keeps an
    HTTP/1.0 connection alive. The bytes after a request go to a fresh one."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        # h11 holds at most this much of an incomplete head (or trailers): a little more than
        # the guard lets through, so that the guard is the one to refuse a head too large.
        self._max_head = limits.head + 8
        self._conn = self._new_connection()
        self._keep_alive = True
        self._finished = False  # the last request is complete: nothing after it is parsed
        self._upgrade: RequestHead | None = None  # the request proposing a protocol switch
        self._fresh = True  # nothing but empty lines received since the last request

    def _new_connection(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head)

    def _feed(self, data: bytes) -> list[ParsedEvent]:
        out: list[ParsedEvent] = []
        if self._finished:
            # The last request closes the connection: nothing after it counts. (Its body may
            # still come in later reads: not self._keep_alive alone does not mean finished.)
            return out
        self._receive(data)
        try:
            self._parse(out)
        except BadRequest as exc:
            exc.events = out
            raise
        return out

    def _receive(self, data: bytes) -> None:
        if self._fresh:
            # Empty lines before a request are ignored (RFC 9112 2.2), as llhttp does; h11 would
            # take the first for a missing request line. (The guard refuses stray CRs and LFs.)
            data = data.lstrip(b"\r\n")
            self._fresh = not data
        if data:  # (empty data would tell h11 the client closed)
            self._conn.receive_data(data)

    def _parse(self, out: list[ParsedEvent]) -> None:
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise BadRequest(str(exc), exc.error_status_hint) from None
            if isinstance(event, h11.Data):
                self._body.parts.append(event.data)
            elif isinstance(event, h11.Request):
                head = self._head(event)
                self._upgrade = head if head.upgrade else None
                out.append(head)
            elif isinstance(event, h11.EndOfMessage):
                self._body.gather(out)
                out.append(END_OF_REQUEST)
                rest, _ = self._conn.trailing_data
                if self._upgrade is not None:
                    out.append(Upgrade(self._upgrade, bytes(rest)))
                    self._keep_alive = False  # what follows is not HTTP: parse no more
                if not self._keep_alive:
                    self._finished = True
                    return
                self._conn = self._new_connection()
                self._fresh = True
                self._receive(bytes(rest))
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return

    def _head(self, request: h11.Request) -> RequestHead:
        self._body.size = 0
        version = request.http_version.decode("ascii")
        target = without_fragment(request.target)
        head = make_head(request.method, target, version, list(request.headers), self._limits)
        self._keep_alive = head.keep_alive
        return head


class HttptoolsParser(_GuardedParser):
    """llhttp through httptools' callbacks, collected into the same events as h11's."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        assert httptools is not None
        super().__init__(limits)
        self._events = _LlhttpEvents(limits, self._body)
        self._parser = httptools.HttpRequestParser(self._events)
        self._closed = False

    def _feed(self, data: bytes) -> list[ParsedEvent]:
        events = self._events
        out: list[ParsedEvent] = []
        events.out = out
        if self._closed:
            return out
        events.parser = self._parser  # (for the time of the parse only: see _LlhttpEvents)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # llhttp parses nothing past a protocol switch; the rest is the new protocol's.
            self._closed = True
            if events.last_head is not None:
                out.append(Upgrade(events.last_head, data[exc.args[0] :]))
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            error = cause if isinstance(cause, BadRequest) else BadRequest(str(exc))
            error.events = out
            raise error from None
        finally:
            # Nor to what it parsed: a connection whose client pauses would keep its last read's
            # body bytes, already on their way to the worker (docs/hardening.md).
            events.parser = None
            events.out = []
        return out


class _LlhttpEvents:
    """httptools' callbacks: what llhttp parses, made into events. Apart from the parser
    object, which holds it, and holds no reference back to it but during a parse: the two are
    freed with their connection, not left for the garbage collector."""

    def __init__(self, limits: Limits, body: _Body) -> None:
        self._limits = limits
        self.parser: httptools.HttpRequestParser | None = None
        self.out: list[ParsedEvent] = []
        self.body = body
        # Called by llhttp for every chunk of a body: a C call, with no Python frame.
        self.on_body = self.body.parts.append
        self.last_head: RequestHead | None = None
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []

    def on_message_begin(self) -> None:
        self._target = b""
        self._headers = []
        self.body.size = 0

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._limits.check_target(len(self._target))

    def on_header(self, name: bytes, value: bytes) -> None:
        # (The guard checks each field line's size and count as it was sent.)
        # llhttp keeps trailing whitespace, which is not part of the value (RFC 9112 §5).
        self._headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        head = make_head(
            parser.get_method(),
            without_fragment(self._target),
            parser.get_http_version(),
            self._headers,
            self._limits,
        )
        # llhttp reports trailer fields through on_header too: they must not land in this
        # head's headers (the app would take them for request headers). Like h11, drop them.
        self._headers = []
        self.last_head = head
        self.out.append(head)

    def on_message_complete(self) -> None:
        self.body.gather(self.out)
        self.out.append(END_OF_REQUEST)


def parser_factory(name: str) -> type[H11Parser] | type[HttptoolsParser]:
    """The parser class for --http: auto prefers httptools when it is installed."""
    if name == "httptools" or (name == "auto" and httptools is not None):
        if httptools is None:
            raise ImportError("--http httptools needs the httptools package: pip install httptools")
        return HttptoolsParser
    return H11Parser
