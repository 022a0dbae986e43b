"""interpserve examples.numpy_app:app --workers 2

This app imports numpy at module level. NumPy's C extension (`numpy._core._multiarray_umath`)
does not support loading in subinterpreters, so interpserve serves it with process workers:
`--worker-kind auto` (the default) finds out in a throwaway child process before serving and
says so at startup ("Worker kind: process, because module ..."). With
`--worker-kind interpreter` the server refuses to start, with one line naming the module.
`/` returns numpy's version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    found = scope["path"] == "/"
    body = f"numpy {numpy.__version__}".encode() if found else b"Not Found"
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
