"""A raw ASGI 3 app whose requests hold their worker until the test lets them go, so that a
test can tell what runs at the same time from signals instead of from timings.

Routes:
    /hold?here=PATH&release=PATH
                   writes the worker's interpreter id to `here`, then holds its interpreter's
                   GIL in a pure-Python loop (never yielding to the event loop) until the file
                   `release` exists or 30 s pass, then answers JSON {"pid", "interpreter",
                   "released"}
    anything else  200 "ok"
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOLD_AT_MOST = 30.0


def _interpreter_id() -> int:
    from interpserve.interpreters import current_id

    return current_id()


def _hold(release: str) -> bool:
    deadline = time.monotonic() + HOLD_AT_MOST
    while time.monotonic() < deadline:
        if os.path.exists(release):
            return True
    return False


async def _respond(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] != "/hold":
        await _respond(send, b'"ok"')
        return
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    with open(query["here"], "w") as f:
        f.write(str(_interpreter_id()))
    released = _hold(query["release"])
    body = {"pid": os.getpid(), "interpreter": _interpreter_id(), "released": released}
    await _respond(send, json.dumps(body).encode())
