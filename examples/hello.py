"""interpserve examples.hello:app --workers 2

A raw ASGI 3 app with no dependencies, used by the demo and the tests.

Routes:
    /                      200 text/plain "Hello, world!"
    /cpu?ms=N              pure-Python busy loop of about N ms (default 500) that holds the GIL;
                           JSON {"pid", "interpreter", "ms"}
    /echo                  streams the request body back (chunked: no content-length)
    /stream?n=N&size=S     N chunks (default 10) of S bytes (default 1024) of b"x"
    /error                 raises RuntimeError("boom") before the response starts
    /error-after-start     sends the response start, then raises
    /state                 JSON: lifespan state "started_at" and this worker's request counter
    /scope                 JSON of the scope (headers as latin-1 pairs, "state" left out)
    /sleep?s=X             asyncio.sleep(X) (default 1), then "slept"
    /wait-disconnect       starts a streamed response, waits for http.disconnect; with
                           ?marker=PATH writes "disconnected" to PATH when it comes

Lifespan: startup sets state["started_at"] = time.time(). With HELLO_FAIL_STARTUP=1 in the
environment, startup answers lifespan.startup.failed instead.
"""

from __future__ import annotations

import asyncio
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

FAIL_STARTUP_MESSAGE = "startup refused by HELLO_FAIL_STARTUP"

# One per interpreter: each subinterpreter imports its own copy of this module.
_requests_served = 0


def _interpreter_id() -> int:
    try:
        from interpserve.interpreters import current_id
    except ImportError:
        return -1
    try:
        return current_id()
    except Exception:
        return -1


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return {k: v[-1] for k, v in parse_qs(raw.decode("latin-1")).items()}


def _number[T: (int, float)](query: dict[str, str], name: str, default: T, kind: type[T]) -> T:
    try:
        return kind(query[name])
    except (KeyError, ValueError):
        return default


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _respond_json(send: Send, data: Any, status: int = 200) -> None:
    await _respond(send, status, json.dumps(data).encode(), b"application/json")


async def _start_stream(send: Send, content_type: bytes = b"application/octet-stream") -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]}
    )


def _busy(ms: int) -> None:
    """Burn `ms` milliseconds of this thread's CPU time in pure Python, holding the GIL. CPU
    time, not wall time: two requests that had to share one GIL (or one core) would each take
    twice as long, which is what the parallelism test and `interpserve bench` must see."""
    deadline = time.thread_time() + ms / 1000
    x = 0
    while time.thread_time() < deadline:
        for i in range(1000):
            x = (x * 31 + i) & 0xFFFFFFFF


_OMIT = object()


def _jsonable(value: Any) -> Any:
    """`value` with bytes decoded as latin-1 and tuples as lists; _OMIT if it has no JSON form."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        items = [_jsonable(v) for v in value]
        return [v for v in items if v is not _OMIT]
    if isinstance(value, dict):
        pairs = {str(k): _jsonable(v) for k, v in value.items()}
        return {k: v for k, v in pairs.items() if v is not _OMIT}
    return _OMIT


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if os.environ.get("HELLO_FAIL_STARTUP") == "1":
                await send({"type": "lifespan.startup.failed", "message": FAIL_STARTUP_MESSAGE})
                return
            state = scope.get("state")
            if state is not None:
                state["started_at"] = time.time()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _echo(receive: Receive, send: Send) -> None:
    await _start_stream(send)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk: bytes = message.get("body", b"")
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b""})


async def _wait_disconnect(query: dict[str, str], receive: Receive, send: Send) -> None:
    await _start_stream(send, b"text/plain; charset=utf-8")
    await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass
    marker = query.get("marker")
    if marker:
        with open(marker, "w") as f:
            f.write("disconnected")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _requests_served
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        return

    _requests_served += 1
    path: str = scope["path"]
    query = _query(scope)

    if path == "/":
        await _respond(send, 200, b"Hello, world!")
    elif path == "/cpu":
        ms = max(0, min(_number(query, "ms", 500, int), 60_000))
        _busy(ms)
        await _respond_json(send, {"pid": os.getpid(), "interpreter": _interpreter_id(), "ms": ms})
    elif path == "/echo":
        await _echo(receive, send)
    elif path == "/stream":
        n = max(0, _number(query, "n", 10, int))
        chunk = b"x" * max(0, _number(query, "size", 1024, int))
        await _start_stream(send)
        for _ in range(n):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/error":
        raise RuntimeError("boom")
    elif path == "/error-after-start":
        await _start_stream(send)
        raise RuntimeError("boom after start")
    elif path == "/state":
        state = scope.get("state") or {}
        await _respond_json(
            send,
            {
                "started_at": state.get("started_at"),
                "requests_served": _requests_served,
                "pid": os.getpid(),
                "interpreter": _interpreter_id(),
            },
        )
    elif path == "/scope":
        await _respond_json(send, _jsonable({k: v for k, v in scope.items() if k != "state"}))
    elif path == "/sleep":
        await asyncio.sleep(max(0.0, _number(query, "s", 1.0, float)))
        await _respond(send, 200, b"slept")
    elif path == "/wait-disconnect":
        await _wait_disconnect(query, receive, send)
    else:
        await _respond(send, 404, b"Not Found")
