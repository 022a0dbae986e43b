"""Every exception interpserve raises across module boundaries, in one place: a module that needs
to raise or catch one imports it from here, never from the layer that happens to raise it (so
the front end, the CLI and the reloader do not import the pool for an exception).

Each message is one line for the operator (or the app's author), never a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: errors.py imports nothing of interpserve when it runs
    from interpserve.frontend.http_events import ParsedEvent


class ConfigError(ValueError):
    """An option has a value the server cannot use."""


class StartupError(Exception):
    """The server could not start: the workers failed, or the socket or TLS files could not
    be used. `incompatible_module` names an extension module that refused subinterpreters."""

    def __init__(self, message: str, incompatible_module: str = "") -> None:
        super().__init__(message)
        self.incompatible_module = incompatible_module


class AppLoadError(Exception):
    """The app cannot be loaded (in a worker, or in the compatibility probe); as for
    StartupError, `incompatible_module` names a module that refused subinterpreters."""

    def __init__(self, message: str, incompatible_module: str = "") -> None:
        super().__init__(message)
        self.incompatible_module = incompatible_module


class LifespanFailed(Exception):
    """The app reported (or raised) a lifespan startup or shutdown failure."""


class WorkerGone(Exception):
    """The worker stopped (or never started) and takes no requests."""


class NoWorkerYet(WorkerGone):
    """No worker is in rotation, but the pool is starting one: see WorkerPool.when_worker_ready."""


class WireError(Exception):
    """The byte stream on a worker's pipe is not a valid sequence of frames."""


class InterpreterFailed(Exception):
    """Code run in a subinterpreter raised; the message holds its formatted traceback."""


class ClientDisconnected(OSError):
    """What an app's send() raises once the client has gone, or the WebSocket is closed (ASGI
    2.4 asks for an OSError subclass): the app learns it may stop producing what nobody will
    read."""


class BadRequest(Exception):
    """The client sent something that is not acceptable HTTP/1.1: answer `status` and close.

    `events` are those parsed from the same data before the error: requests pipelined ahead of
    the bad one are still answered."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status
        self.events: list[ParsedEvent] = []


class MalformedRequest(Exception):
    """An HTTP/2 request breaks HTTP/2's rules: the stream is reset with PROTOCOL_ERROR."""


class HTTP2ConnectionError(Exception):
    """An HTTP/2 client broke the protocol in a way that ends its connection (RFC 9113 §5.4.1):
    the GOAWAY with `code` is queued, and nothing more is read."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class HTTP2StreamError(Exception):
    """An HTTP/2 client broke the protocol on one stream (RFC 9113 §5.4.2): that stream is
    reset with `code`, and the connection goes on."""

    def __init__(self, stream_id: int, code: int, message: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


# The test harness (interpserve.testing) and `interpserve bench` (interpserve/bench/)


class ServerFailed(Exception):
    """A server started by interpserve.testing exited (or did not come up) before it was
    listening."""


class AppFailed(Exception):
    """`interpserve bench` could not start the app; the message is one line for the user."""


class LoadError(Exception):
    """`interpserve bench` could not run the load; the message is one line for the user."""


class BadResponse(Exception):
    """The bytes `interpserve bench` read from the server are not an HTTP/1.x response."""
