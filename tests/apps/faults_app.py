"""A raw ASGI 3 app that misbehaves on purpose, for tests/e2e/test_faults.py and the smuggling
tests.

Routes:
    /read-body             reads the whole request body, then answers its length: nothing is
                           sent before the body is complete (so a broken body gets the server's
                           4xx, not a response already under way)
    /upload?marker=PATH    reads the body; when http.disconnect comes instead, writes
                           "disconnected" to PATH; with &started=PATH, creates that file once
                           the first part of the body has arrived
    /no-response           returns without sending anything
    /after-complete        completes a response, then sends another body message
    /too-long              declares Content-Length: 5 and sends 10 bytes; ?chunks=3 sends
                           them in three messages, the last of which is a whole response
    /too-short             declares Content-Length: 10 and sends 5 bytes, then returns
    /late-body?s=S         starts a response, sleeps S seconds, then sends its body "late"
    /bad-header?part=P     a response header whose name (P=name) or value (P=value) has a CR
                           LF in it, as a careless app echoing user input would send;
                           P=bytearray: a valid one whose name (upper case) and value are
                           bytearrays, not bytes
    /stream-forever?marker=PATH
                           streams a chunk every 10 ms and never checks for http.disconnect;
                           when send() raises, writes the exception's class name to PATH
    /status?code=N         a response with status N and body "ok"
    /block?ms=N            blocks its worker's event loop (time.sleep) until the end of the
                           next free N ms slot, then answers "ok": a worker serves one request
                           per slot, so it holds exactly 1000 / N requests/s whatever else the
                           machine does (a fixed capacity, for tests/e2e/test_bench_load.py)
    anything else          200 "ok"
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs

from tests.apps.shared import Receive, Scope, Send, send_until_refused

# When the worker's current /block slot ends (one per interpreter).
_slot_free_at = 0.0


async def _start(send: Send, length: int | None = None) -> None:
    headers = [(b"content-type", b"text/plain")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _read_body(receive: Receive, started: str | None = None) -> bytes | None:
    """The whole body, or None if the client went away first. `started`: a file to create
    once the first part of the body has arrived (a test's signal that the app is reading)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        if started is not None and message.get("body"):
            open(started, "w").close()
            started = None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
    if path == "/read-body":
        body = await _read_body(receive)
        if body is not None:
            answer = str(len(body)).encode()
            await _start(send, len(answer))
            await send({"type": "http.response.body", "body": answer})
    elif path == "/upload":
        if await _read_body(receive, query.get("started")) is None:
            with open(query["marker"], "w") as f:
                f.write("disconnected")
            return
        await _start(send, 2)
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/no-response":
        return
    elif path == "/after-complete":
        await _start(send, 4)
        await send({"type": "http.response.body", "body": b"done"})
        await send({"type": "http.response.body", "body": b"EXTRA"})
    elif path == "/too-long":
        await _start(send, 5)
        if query.get("chunks") == "3":
            for part in (b"012", b"3456789", b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfake"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"0123456789"})
    elif path == "/too-short":
        await _start(send, 10)
        await send({"type": "http.response.body", "body": b"01234"})
    elif path == "/late-body":
        await _start(send)
        await asyncio.sleep(float(query.get("s", "3")))
        await send({"type": "http.response.body", "body": b"late"})
    elif path == "/stream-forever":
        await _start(send)
        tick = {"type": "http.response.body", "body": b"tick\n", "more_body": True}
        await send_until_refused(send, tick, query["marker"])
    elif path == "/status":
        await send({"type": "http.response.start", "status": int(query["code"]), "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/block":
        global _slot_free_at
        now, slot = time.monotonic(), float(query.get("ms", "10")) / 1000
        # Slots follow each other on one grid while requests keep coming (less than a slot
        # apart), so the time a busy machine adds between two requests is taken from the slot.
        start = _slot_free_at if now - _slot_free_at < slot else now
        _slot_free_at = start + slot
        time.sleep(max(0.0, _slot_free_at - now))
        await _start(send, 2)
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/bad-header":
        injected = b"x\r\nset-cookie: stolen=1"
        part = query.get("part")
        if part == "bytearray":
            header = (bytearray(b"X-Echo"), bytearray(b"fine"))
        else:
            header = (injected, b"1") if part == "name" else (b"x-echo", injected)
        await send({"type": "http.response.start", "status": 200, "headers": [header]})
        await send({"type": "http.response.body", "body": b"ok"})
    else:
        await _start(send, 2)
        await send({"type": "http.response.body", "body": b"ok"})
