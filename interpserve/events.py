"""Stream events: the contract between the front end and a worker.

The front end turns bytes from a client into these, the wire format carries them over a
worker's pipes, and the worker's ASGI adapter turns them into ASGI messages (and back). The
front end never sees ASGI dicts; the worker never sees a socket.

Plain slotted classes, written out rather than made by `dataclasses`: every worker interpreter
imports this module, and dataclasses (the module, and the functions it compiles for each class)
would be in the memory of each (docs/processes.md, "What a worker interpreter imports"). Not
frozen: a frozen class is several times slower to build, and several are built per request on
the hot path. Nobody changes an event once it is sent. An __init__ only sets its fields: the
wire codec's compiled half (_speedups.c) makes a decoded Request or ResponseStart by setting
their slots itself, and reads them there.
"""

from __future__ import annotations

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


class _Event:
    """An event's fields are its `__slots__`, in order, which are also its `__match_args__`:
    its repr and equality go field by field, as a dataclass's do, and (with an equality and
    no hash of its own) it is unhashable, as a mutable dataclass is."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__match_args__)


# Front end -> worker


class Request(_Event):
    __slots__ = __match_args__ = (
        "request_id",
        "method",
        "scheme",
        "http_version",
        "raw_path",
        "query_string",
        "headers",
        "client",
        "server",
        "more_body",
        "expect_continue",
        "websocket",
    )

    def __init__(
        self,
        request_id: int,
        method: str,
        scheme: str,
        http_version: str,
        raw_path: bytes,
        query_string: bytes,
        headers: Headers,
        client: Address | None,
        server: Address | None,
        more_body: bool,
        expect_continue: bool,
        websocket: bool = False,
    ) -> None:
        self.request_id = request_id
        self.method = method
        self.scheme = scheme
        self.http_version = http_version
        self.raw_path = raw_path
        self.query_string = query_string
        self.headers = headers
        self.client = client
        self.server = server
        # True when RequestBody events follow; False means the body is empty.
        self.more_body = more_body
        # The client waits for "100 Continue", sent once the app first asks for the body.
        self.expect_continue = expect_continue
        # A WebSocket handshake the front end has validated: the app gets a websocket scope.
        self.websocket = websocket


class RequestBody(_Event):
    __slots__ = __match_args__ = ("request_id", "data", "more_body")

    def __init__(self, request_id: int, data: bytes, more_body: bool) -> None:
        self.request_id = request_id
        self.data = data
        self.more_body = more_body


class Disconnect(_Event):
    """The client went away: the app's next receive() returns http.disconnect."""

    __slots__ = __match_args__ = ("request_id",)

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id


class Cancel(_Event):
    """The front end gave up on this request (it timed out): cancel the app's task."""

    __slots__ = __match_args__ = ("request_id",)

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id


class Ping(_Event):
    """Answer with Pong(sequence) from the event loop: a worker that cannot is stuck."""

    __slots__ = __match_args__ = ("sequence",)

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence


class Shutdown(_Event):
    """Finish what is in flight, run lifespan shutdown, and stop."""

    __slots__ = __match_args__ = ()

    def __init__(self) -> None:
        pass


class CancelAll(_Event):
    """The graceful shutdown's deadline has passed: cancel every app task still running."""

    __slots__ = __match_args__ = ()

    def __init__(self) -> None:
        pass


class MemoryQuery(_Event):
    """Answer with MemoryReport(sequence, ...): how much this worker's own allocator holds
    (--limit-max-memory)."""

    __slots__ = __match_args__ = ("sequence",)

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence


# Both ways


class Credit(_Event):
    """The sender may send `size` more body bytes of this request.

    From a worker: the app received `size` more of the request body (the front end decides
    how far ahead of the app it reads). A worker's first Credit for an expect-continue request,
    of size 0, is the app asking for the body: what sends 100 Continue.
    From the front end: `size` more bytes of the response (or WebSocket messages) may come,
    beyond the BODY_WINDOW_MIN (or WEBSOCKET_WINDOW) every response starts with: what the
    client took, and more when the front end widens the window."""

    __slots__ = __match_args__ = ("request_id", "size")

    def __init__(self, request_id: int, size: int) -> None:
        self.request_id = request_id
        self.size = size


# Worker -> front end


class Pong(_Event):
    __slots__ = __match_args__ = ("sequence",)

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence


class MemoryReport(_Event):
    """The bytes the interpreter's own allocator holds, or -1 where that cannot be known."""

    __slots__ = __match_args__ = ("sequence", "size")

    def __init__(self, sequence: int, size: int) -> None:
        self.sequence = sequence
        self.size = size


class WorkerReady(_Event):
    """The app is imported and its lifespan startup is complete."""

    __slots__ = __match_args__ = ()

    def __init__(self) -> None:
        pass


class WorkerFailed(_Event):
    """The worker could not start (or, after WorkerReady, is going down and takes no more
    requests); `message` is one line for the operator.

    `incompatible_module` names an extension module that refused to load in a subinterpreter.
    """

    __slots__ = __match_args__ = ("message", "incompatible_module")

    def __init__(self, message: str, incompatible_module: str = "") -> None:
        self.message = message
        self.incompatible_module = incompatible_module


class ResponseStart(_Event):
    """The response's status and headers, with its first body chunk when the app sent one
    right after them: most responses cross whole in this one event. `more_body` is False when
    `body` completes the response; a start alone has no body and more to come. `finished` says
    the app had returned by then too, so no RequestFinished follows (only with a whole body)."""

    __slots__ = __match_args__ = (
        "request_id",
        "status",
        "headers",
        "body",
        "more_body",
        "finished",
    )

    def __init__(
        self,
        request_id: int,
        status: int,
        headers: Headers,
        body: bytes = b"",
        more_body: bool = True,
        finished: bool = False,
    ) -> None:
        self.request_id = request_id
        self.status = status
        self.headers = headers
        self.body = body
        self.more_body = more_body
        self.finished = finished


class ResponseBody(_Event):
    __slots__ = __match_args__ = ("request_id", "data", "more_body")

    def __init__(self, request_id: int, data: bytes, more_body: bool) -> None:
        self.request_id = request_id
        self.data = data
        self.more_body = more_body


class ResponseTrailers(_Event):
    """The response's trailer fields (ASGI's http.response.trailers extension), all of them,
    after its last body chunk: they complete the response. Only for a request whose scope
    offered the extension (HTTP/2, with "te: trailers")."""

    __slots__ = __match_args__ = ("request_id", "headers")

    def __init__(self, request_id: int, headers: Headers) -> None:
        self.request_id = request_id
        self.headers = headers


class RequestFinished(_Event):
    """The app's coroutine for this request returned (or raised). A response not completed by
    then is aborted. Until this, the request counts against the worker's load."""

    __slots__ = __match_args__ = ("request_id",)

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id


# Both ways, for a WebSocket (requests with websocket=True)


class WebSocketMessage(_Event):
    """One whole message, reassembled from its frames: str for text, bytes for binary. Its
    len() is what the receiver's Credit acknowledges."""

    __slots__ = __match_args__ = ("request_id", "data")

    def __init__(self, request_id: int, data: bytes | str) -> None:
        self.request_id = request_id
        self.data = data


class WebSocketClose(_Event):
    """From the worker: the app closes (before accepting, that denies the handshake with 403).
    From the front end: the connection closed with this code (1006: with no close frame)."""

    __slots__ = __match_args__ = ("request_id", "code", "reason")

    def __init__(self, request_id: int, code: int, reason: str) -> None:
        self.request_id = request_id
        self.code = code
        self.reason = reason


class WebSocketAccept(_Event):
    """Worker -> front end: the app accepts the handshake ("" for no subprotocol)."""

    __slots__ = __match_args__ = ("request_id", "subprotocol", "headers")

    def __init__(self, request_id: int, subprotocol: str, headers: Headers) -> None:
        self.request_id = request_id
        self.subprotocol = subprotocol
        self.headers = headers


WebSocketEvent = WebSocketMessage | WebSocketClose | WebSocketAccept

# The close codes the server uses (RFC 6455 §7.4.1), in the front end and the worker alike.
WS_NORMAL_CLOSURE = 1000
WS_ABNORMAL_CLOSURE = 1006  # reported, never sent: the connection ended without a close frame
WS_MESSAGE_TOO_BIG = 1009
WS_INTERNAL_ERROR = 1011
WS_SERVICE_RESTART = 1012

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
