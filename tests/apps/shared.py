"""What the raw ASGI test apps share: the ASGI types, the interpreter a request runs in, and a
whole response sent at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def interpreter_id() -> int:
    """The id of the interpreter this runs in (0 in a process worker), or -1 where interpserve's
    interpreter API is not there to ask."""
    try:
        from interpserve.interpreters import current_id

        return current_id()
    except Exception:
        return -1


async def respond(
    send: Send, body: bytes, *, status: int = 200, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """`body` as the whole response, with its Content-Length and `headers`."""
    fields = [(b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """A lifespan with nothing to start or stop."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def send_until_refused(send: Send, message: Message, marker: str) -> None:
    """Send `message` every 10 ms until send() raises, then write the exception's type name to
    the file `marker` (the test's sign of what the app was told) and raise it on."""
    try:
        while True:
            await send(message)
            await asyncio.sleep(0.01)
    except Exception as exc:
        with open(marker, "w") as f:
            f.write(type(exc).__name__)
        raise
