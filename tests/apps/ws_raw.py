"""A raw ASGI 3 app for the WebSocket tests (tests/e2e/test_websocket.py).

WebSocket routes (query parameters in brackets):
    /echo            accept (the first offered subprotocol, and an x-ws-test: yes header), then
                     send every message back as it came, text or binary
    /scope           accept, send the scope (JSON, the parts that are JSON), then echo
    /close           [code, reason] accept, then close with that code
    /close-after     [code] accept, receive one message, then close with that code
    /return          accept, then return without closing (the server closes with 1000)
    /error           accept, then raise (the server closes with 1011)
    /error-early     raise before accepting (the server answers 500)
    /deny            close before accepting (the server answers 403)
    /deny-body       deny with the app's own 403 response and body, in two parts
    /until-closed    [marker] accept, receive until websocket.disconnect, then write its code
                     and reason to the marker file as JSON
    /flood           [n, size, marker] accept, send n binary messages of size bytes, writing how
                     many have been sent to the marker file as it goes
    /send-forever    [marker] accept, then send a message every 10 ms without receiving; when
                     send() raises, write the exception's class name to the marker file and
                     raise it on (as a framework that does not catch it would)
    /slow-reader     [seconds] accept, wait, then receive until disconnect and send back how
                     many bytes arrived, as text
    /whoami          accept, send {"pid", "interpreter"}, then wait for the client to leave

An HTTP request gets 200 "http" (for --ws none: upgrade requests served as plain HTTP).
"""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import parse_qs

from tests.apps.shared import (
    Message,
    Receive,
    Scope,
    Send,
    interpreter_id,
    lifespan,
    send_until_refused,
)


async def _accept(scope: Scope, send: Send) -> None:
    subprotocols = scope.get("subprotocols") or []
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocols[0] if subprotocols else None,
            "headers": [(b"x-ws-test", b"yes")],
        }
    )


async def _echo(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _until_closed(receive: Receive) -> Message:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return message


async def _http(send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]}
    )
    await send({"type": "http.response.body", "body": b"http"})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] == "http":
        await _http(send)
        return
    assert (await receive())["type"] == "websocket.connect"
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/deny-body":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away!!"})
        return
    if path == "/error-early":
        raise RuntimeError("refusing before accept")

    await _accept(scope, send)
    if path == "/echo":
        await _echo(receive, send)
    elif path == "/scope":
        shown = {k: v for k, v in scope.items() if k not in ("state", "headers")}
        shown["raw_path"] = scope["raw_path"].decode()
        shown["query_string"] = scope["query_string"].decode()
        shown["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
        await send({"type": "websocket.send", "text": json.dumps(shown)})
        await _echo(receive, send)
    elif path == "/close":
        code = int(query.get("code", "1000"))
        await send({"type": "websocket.close", "code": code, "reason": query.get("reason", "")})
    elif path == "/close-after":
        await receive()
        await send({"type": "websocket.close", "code": int(query.get("code", "1000"))})
    elif path == "/return":
        return
    elif path == "/error":
        raise RuntimeError("boom after accept")
    elif path == "/until-closed":
        message = await _until_closed(receive)
        with open(query["marker"], "w") as f:
            json.dump({"code": message["code"], "reason": message.get("reason", "")}, f)
    elif path == "/flood":
        chunk = b"x" * int(query["size"])
        for sent in range(1, int(query["n"]) + 1):
            await send({"type": "websocket.send", "bytes": chunk})
            with open(query["marker"], "w") as f:
                f.write(str(sent))
        await _until_closed(receive)
    elif path == "/send-forever":
        await send_until_refused(send, {"type": "websocket.send", "text": "tick"}, query["marker"])
    elif path == "/slow-reader":
        await asyncio.sleep(float(query["seconds"]))
        total = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or message.get("text") or b""
            total += len(data)
            if data in (b"done", "done"):
                await send({"type": "websocket.send", "text": str(total)})
    elif path == "/whoami":
        who = {"pid": os.getpid(), "interpreter": interpreter_id()}
        await send({"type": "websocket.send", "text": json.dumps(who)})
        await _until_closed(receive)
    else:
        await send({"type": "websocket.close", "code": 4404})
