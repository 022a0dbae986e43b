"""A raw ASGI 3 app for tests/e2e/test_buffers.py: it shows what the front end's windows and budget
let through to a worker, and makes the app mistakes the server must name.

HTTP routes:
    /hold?marker=PATH    waits until PATH exists, then reads the body; answers JSON {"first": the
                         bytes the first receive() brought (all the worker held meanwhile),
                         "total": the body's size}
    /count               reads the body; answers JSON {"sha256", "size", "messages": how many
                         receive() calls brought body bytes}
    /double-start        sends http.response.start twice
    /stream?mib=N        N MiB with content-length, in 64 KiB chunks, each a new bytes object
                         (as a file's reads are) whose bytes are all its index modulo 256
WebSocket routes:
    /hold?marker=PATH&log=LOG
                         accepts, waits until PATH exists, then receives: each message's size
                         and time.monotonic() go to LOG, one line each
    /echo-size           accepts, and answers each message with its size, as text
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from typing import Any
from urllib.parse import parse_qs

from tests.apps.shared import Receive, Scope, Send

STREAM_CHUNK = 64 * 1024
STREAM_CHUNKS_PER_MIB = 16


async def _until_exists(path: str) -> None:
    while not os.path.exists(path):
        await asyncio.sleep(0.01)


async def _answer(send: Send, data: Any) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send, mib: int) -> None:
    headers = [(b"content-length", b"%d" % (mib * STREAM_CHUNKS_PER_MIB * STREAM_CHUNK))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    chunks = mib * STREAM_CHUNKS_PER_MIB
    for index in range(chunks):
        body = bytes([index % 256]) * STREAM_CHUNK
        await send({"type": "http.response.body", "body": body, "more_body": index < chunks - 1})


async def _http(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    path = scope["path"]
    if path == "/stream":
        await _stream(send, int(query["mib"]))
        return
    if path == "/double-start":
        start = {"type": "http.response.start", "status": 200, "headers": []}
        await send(start)
        await send(start)
        return
    if path == "/hold":
        await _until_exists(query["marker"])
    digest, sizes = hashlib.sha256(), []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if body := message.get("body", b""):
            digest.update(body)
            sizes.append(len(body))
        if not message.get("more_body", False):
            break
    if path == "/hold":
        await _answer(send, {"first": sizes[0] if sizes else 0, "total": sum(sizes)})
    else:
        await _answer(
            send, {"sha256": digest.hexdigest(), "size": sum(sizes), "messages": len(sizes)}
        )


async def _websocket(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    if scope["path"] == "/hold":
        await _until_exists(query["marker"])
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        size = len(message.get("bytes") or message.get("text") or b"")
        if scope["path"] == "/hold":
            with open(query["log"], "a") as log:
                log.write(f"{size} {time.monotonic()}\n")
        else:
            await send({"type": "websocket.send", "text": str(size)})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    if scope["type"] == "http":
        await _http(scope, receive, send, query)
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send, query)
