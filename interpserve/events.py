"""Stream events: the contract between the front end and a worker.

The front end turns bytes from a client into these, the wire format carries them over a
worker's pipes, and the worker's ASGI adapter turns them into ASGI messages (and back). The
front end never sees ASGI dicts; the worker never sees a socket.

Plain slotted dataclasses, not frozen ones: a frozen dataclass is several times slower to build,
and several are built per request on the hot path. Nobody changes an event once it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[bytes, bytes], ...]
Address = tuple[str, int]

# How many request (or response) body bytes may be in flight for one request before the sender
# waits for the receiver's Credit. Every request starts with the small window, which is all an
# app that does not read (or a client that does not) ever holds; the front end widens it,
# doubling, up to the large one while the transfer keeps going (frontend/budget.py says when).
# The large one is as much as a worker's pipe holds, so that one big transfer keeps both
# interpreters busy at once: at a quarter of it they took turns, and a big download ran slower.
BODY_WINDOW_MIN = 16 * 1024
BODY_WINDOW = 1024 * 1024
# The same for a WebSocket's message bytes, with no widening: its connections are many and
# long-lived, and their messages small. (A message crosses whole, so one bigger than the window
# is still sent; the sender then waits.)
WEBSOCKET_WINDOW = 64 * 1024


# Front end -> worker


@dataclass(slots=True)
class Request:
    request_id: int
    method: str
    scheme: str
    http_version: str
    raw_path: bytes
    query_string: bytes
    headers: Headers
    client: Address | None
    server: Address | None
    # True when RequestBody events follow; False means the body is empty.
    more_body: bool
    # The client waits for "100 Continue", sent once the app first asks for the body.
    expect_continue: bool
    # A WebSocket handshake the front end has validated: the app gets a websocket scope.
    websocket: bool = False


@dataclass(slots=True)
class RequestBody:
    request_id: int
    data: bytes
    more_body: bool


@dataclass(slots=True)
class Disconnect:
    """The client went away: the app's next receive() returns http.disconnect."""

    request_id: int


@dataclass(slots=True)
class Cancel:
    """The front end gave up on this request (it timed out): cancel the app's task."""

    request_id: int


@dataclass(slots=True)
class Ping:
    """Answer with Pong(sequence) from the event loop: a worker that cannot is stuck."""

    sequence: int


@dataclass(slots=True)
class Shutdown:
    """Finish what is in flight, run lifespan shutdown, and stop."""


@dataclass(slots=True)
class CancelAll:
    """The graceful shutdown's deadline has passed: cancel every app task still running."""


@dataclass(slots=True)
class MemoryQuery:
    """Answer with MemoryReport(sequence, ...): how much this worker's own allocator holds
    (--limit-max-memory)."""

    sequence: int


# Both ways


@dataclass(slots=True)
class Credit:
    """The sender may send `size` more body bytes of this request.

    From a worker: the app received `size` more of the request body (the front end decides
    how far ahead of the app it reads). A worker's first Credit for an expect-continue request,
    of size 0, is the app asking for the body: what sends 100 Continue.
    From the front end: `size` more bytes of the response (or WebSocket messages) may come,
    beyond the BODY_WINDOW_MIN (or WEBSOCKET_WINDOW) every response starts with: what the
    client took, and more when the front end widens the window."""

    request_id: int
    size: int


# Worker -> front end


@dataclass(slots=True)
class Pong:
    sequence: int


@dataclass(slots=True)
class MemoryReport:
    """The bytes the interpreter's own allocator holds, or -1 where that cannot be known."""

    sequence: int
    size: int


@dataclass(slots=True)
class WorkerReady:
    """The app is imported and its lifespan startup is complete."""


@dataclass(slots=True)
class WorkerFailed:
    """The worker could not start (or, after WorkerReady, is going down and takes no more
    requests); `message` is one line for the operator.

    `incompatible_module` names an extension module that refused to load in a subinterpreter.
    """

    message: str
    incompatible_module: str = ""


@dataclass(slots=True)
class ResponseStart:
    """The response's status and headers, with its first body chunk when the app sent one
    right after them: most responses cross whole in this one event. `more_body` is False when
    `body` completes the response; a start alone has no body and more to come. `finished` says
    the app had returned by then too, so no RequestFinished follows (only with a whole body)."""

    request_id: int
    status: int
    headers: Headers
    body: bytes = b""
    more_body: bool = True
    finished: bool = False


@dataclass(slots=True)
class ResponseBody:
    request_id: int
    data: bytes
    more_body: bool


@dataclass(slots=True)
class ResponseTrailers:
    """The response's trailer fields (ASGI's http.response.trailers extension), all of them,
    after its last body chunk: they complete the response. Only for a request whose scope
    offered the extension (HTTP/2, with "te: trailers")."""

    request_id: int
    headers: Headers


@dataclass(slots=True)
class RequestFinished:
    """The app's coroutine for this request returned (or raised). A response not completed by
    then is aborted. Until this, the request counts against the worker's load."""

    request_id: int


# Both ways, for a WebSocket (requests with websocket=True)


@dataclass(slots=True)
class WebSocketMessage:
    """One whole message, reassembled from its frames: str for text, bytes for binary. Its
    len() is what the receiver's Credit acknowledges."""

    request_id: int
    data: bytes | str


@dataclass(slots=True)
class WebSocketClose:
    """From the worker: the app closes (before accepting, that denies the handshake with 403).
    From the front end: the connection closed with this code (1006: with no close frame)."""

    request_id: int
    code: int
    reason: str


@dataclass(slots=True)
class WebSocketAccept:
    """Worker -> front end: the app accepts the handshake ("" for no subprotocol)."""

    request_id: int
    subprotocol: str
    headers: Headers


WebSocketEvent = WebSocketMessage | WebSocketClose | WebSocketAccept

Event = (
    Request
    | RequestBody
    | Disconnect
    | Cancel
    | Ping
    | Pong
    | Shutdown
    | CancelAll
    | MemoryQuery
    | MemoryReport
    | Credit
    | WorkerReady
    | WorkerFailed
    | ResponseStart
    | ResponseBody
    | ResponseTrailers
    | RequestFinished
    | WebSocketEvent
)
