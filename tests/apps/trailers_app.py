"""A response with trailers when the scope offers them (ASGI's http.response.trailers), in two
messages after a body of two chunks; without the offer, the same body alone. /scope answers
with the scope's extensions."""

from __future__ import annotations

import json
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    offered = "http.response.trailers" in scope.get("extensions", {})
    if scope["path"] == "/scope":
        body = json.dumps(sorted(scope.get("extensions", {}))).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    headers = [(b"content-type", b"text/plain")]
    await send(
        {"type": "http.response.start", "status": 200, "headers": headers, "trailers": offered}
    )
    await send({"type": "http.response.body", "body": b"part1,", "more_body": True})
    await send({"type": "http.response.body", "body": b"part2"})
    if offered:
        trailer = {"type": "http.response.trailers", "more_trailers": True}
        await send({**trailer, "headers": [(b"x-checksum", b"abc")]})
        await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})
