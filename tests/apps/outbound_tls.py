"""An app that makes an outbound TLS connection with asyncio from its worker, as an app calling
an HTTPS API does: ssl is imported with the app, as httpx or aiohttp import it, while the
worker deferred ssl, asyncio.sslproto and inspect (interpserve/worker/deferred.py).

    /?port=P&ca=FILE   connects to 127.0.0.1:P over TLS trusting the CA in FILE, sends "ping\\n"
                       and answers with the line it reads back, then the signature of this app
                       (inspect, the other deferred module)
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    query = {name: values[0] for name, values in parse_qs(scope["query_string"].decode()).items()}
    context = ssl.create_default_context(cafile=query["ca"])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", int(query["port"]), ssl=context, server_hostname="127.0.0.1"
    )
    writer.write(b"ping\n")
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    body = line + str(inspect.signature(app)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
