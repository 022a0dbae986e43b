"""A Starlette app for the WebSocket tests (tests/e2e/test_websocket.py).

Routes:
    GET /       200 "starlette"
    WS  /echo   send back "echo: <text>" for every text message
    WS  /json   receive one JSON message, send {"got": it}, then close with 4000
    WS  /deny   deny with Starlette's send_denial_response: 401 "members only"
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("starlette")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"echo: {text}")
    except WebSocketDisconnect:
        pass


async def json_once(websocket: WebSocket) -> None:
    await websocket.accept()
    data = await websocket.receive_json()
    await websocket.send_json({"got": data})
    await websocket.close(code=4000)


async def deny(websocket: WebSocket) -> None:
    await websocket.send_denial_response(PlainTextResponse("members only", status_code=401))


app = Starlette(
    routes=[
        Route("/", home),
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/json", json_once),
        WebSocketRoute("/deny", deny),
    ]
)
