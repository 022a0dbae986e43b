"""The ASGI 3 app every server in the benchmark serves, so they all run identical code.

Stdlib only and no other `bench` module: it is imported inside subinterpreters, where extension
modules that refuse multi-phase init would make the interpserve interpreter kind fail.

Routes (any method):
    /                  200 text/plain "Hello, world!"
    /json              about 1 KB of JSON, serialised per request as a real endpoint would
    /cpu               a pure-Python loop of about CPU_TARGET_S seconds that holds the GIL
    /download?mib=N    N MiB (default 100) of b"x" streamed in 64 KiB chunks, with content-length;
                       with &fresh=1 each chunk is a new bytes object, as a file's reads are
    /upload            reads the whole request body and answers its length in bytes
    /sleep?ms=N        waits N ms (default 100) without using the CPU, then answers
    /sleep-upload?ms=N sleeps N ms (default 6000) before it does what /upload does

The /cpu loop count comes from BENCH_CPU_LOOPS when set: the runner calibrates once and passes it
to every server, so every server does the same work even if the machine was busy while one of
them started. Without it the module calibrates itself at import.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CPU_TARGET_S = 0.016
CHUNK = b"x" * 65536
MIB = 1 << 20
HELLO = b"Hello, world!"
TEXT = b"text/plain; charset=utf-8"

# Eleven user records: about 1.07 KB once serialised.
JSON_DOCUMENT: dict[str, Any] = {
    "page": 1,
    "users": [
        {
            "id": i,
            "name": f"user-{i:03d}",
            "email": f"user-{i:03d}@example.com",
            "active": i % 3 != 0,
            "score": round(i * 1.37, 2),
        }
        for i in range(11)
    ],
}


def burn(loops: int) -> int:
    """Pure-Python integer arithmetic: holds the GIL for the whole call."""
    x = 0
    for i in range(loops):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


def handler_seconds(loops: int, rounds: int = 5) -> float:
    """CPU time of one burn(loops), the best of `rounds`: the least disturbed run is the closest
    to what the loop costs on an idle core."""
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        burn(loops)
        best = min(best, time.thread_time() - start)
    return best


def calibrate(target_s: float = CPU_TARGET_S) -> int:
    """The loop count for which burn() takes about target_s of CPU time on this machine."""
    probe = 20_000
    loops = round(probe * target_s / handler_seconds(probe))
    # A second pass at the real size corrects for the fixed cost of the short probe.
    return max(1, round(loops * target_s / handler_seconds(loops, rounds=3)))


def _loops_from_env() -> int:
    text = os.environ.get("BENCH_CPU_LOOPS", "")
    return int(text) if text.isdigit() else calibrate()


CPU_LOOPS = _loops_from_env()


def _query_int(scope: Scope, name: str, default: int) -> int:
    raw: bytes = scope.get("query_string", b"")
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == name.encode() and value.isdigit():
            return int(value)
    return default


async def _respond(send: Send, body: bytes, content_type: bytes = TEXT, status: int = 200) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send, HELLO)


async def _json(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send, json.dumps(JSON_DOCUMENT).encode(), b"application/json")


async def _cpu(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send, str(burn(CPU_LOOPS)).encode())


async def _download(scope: Scope, receive: Receive, send: Send) -> None:
    remaining = _query_int(scope, "mib", 100) * MIB
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(remaining).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    # One object sent again and again is one a server may hold many times at the cost of one:
    # fresh chunks are what a server holds for a real app (a file, a database) instead.
    fresh = _query_int(scope, "fresh", 0)
    while remaining > len(CHUNK):
        body = CHUNK[:-1] + b"x" if fresh else CHUNK
        await send({"type": "http.response.body", "body": body, "more_body": True})
        remaining -= len(CHUNK)
    await send({"type": "http.response.body", "body": CHUNK[:remaining]})


async def _upload(scope: Scope, receive: Receive, send: Send) -> None:
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await _respond(send, str(received).encode())


async def _sleep(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(_query_int(scope, "ms", 100) / 1000)
    await _respond(send, HELLO)


async def _sleep_upload(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(_query_int(scope, "ms", 6000) / 1000)
    await _upload(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send, b"Not Found", status=404)


ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/": _hello,
    "/json": _json,
    "/cpu": _cpu,
    "/download": _download,
    "/upload": _upload,
    "/sleep": _sleep,
    "/sleep-upload": _sleep_upload,
}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await ROUTES.get(scope["path"], _not_found)(scope, receive, send)
