"""interpserve examples.quart_app:app --workers 2

A Quart app.

Routes:
    GET  /       plain text greeting
    GET  /json   a small JSON document
    POST /echo   the request body back, with the request's content type
"""

from __future__ import annotations

from typing import Any

from quart import Quart, Response, request

app = Quart(__name__)


@app.get("/")
async def home() -> Response:
    return Response("Hello from Quart!", content_type="text/plain; charset=utf-8")


@app.get("/json")
async def json_doc() -> dict[str, Any]:
    return {"message": "hello", "framework": "quart", "numbers": [1, 2, 3]}


@app.post("/echo")
async def echo() -> Response:
    body = await request.get_data(as_text=False)
    return Response(body, content_type=request.content_type or "application/octet-stream")
