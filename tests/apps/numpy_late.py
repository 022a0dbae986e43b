"""Apps that import numpy (which refuses subinterpreters) only after their module has loaded:
`make` in its factory (`--factory`), `lifespan_app` in its lifespan startup. A check that only
imports the module finds nothing wrong with either. And `formatter`, a log formatter factory
for --log-config that imports numpy."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tests.apps.shared import Receive, Scope, Send

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _answer(send: Send, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def make() -> ASGIApp:
    import numpy

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await _answer(send, f"numpy {numpy.__version__}".encode())

    return app


async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        import numpy  # noqa: F401

        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await _answer(send, b"started")


def formatter() -> logging.Formatter:
    import numpy  # noqa: F401

    return logging.Formatter()
