"""interpserve examples.starlette_app:app --workers 2

A Starlette app.

Routes:
    GET  /                   plain text greeting
    GET  /cpu?iterations=N   pure-Python key-stretching loop (default 300000 rounds) that holds
                             the GIL; JSON {"digest", "iterations", "pid", "interpreter"}
    GET  /json               a small JSON document
    GET  /items/{id}?q=...   path parameter (an int) echoed as JSON
    POST /upload             reads the body as a stream; JSON {"bytes": <count>}
    GET  /state              this worker's lifespan state: started_at and a request counter

See CPU work scale: with --workers 4 and four idle CPU cores,
`for i in 1 2 3 4; do curl -s localhost:8000/cpu & done; wait` takes about as long as one
request, because each runs in its own interpreter with its own GIL (the JSON says which);
with --workers 1 it takes four times as long, as it would in one process with one GIL.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class Counter:
    def __init__(self) -> None:
        self.value = 0


class State(TypedDict):
    started_at: float
    requests: Counter


def _interpreter_id() -> int:
    try:
        from interpserve.interpreters import current_id
    except ImportError:
        return -1
    try:
        return current_id()
    except Exception:
        return -1


def stretch(secret: bytes, iterations: int) -> int:
    """A PBKDF2-shaped loop in pure Python (FNV-1a mixing), so it holds the GIL throughout."""
    h = 0xCBF29CE484222325
    for _ in range(iterations):
        for byte in secret:
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h


def _count(request: Request) -> None:
    counter: Counter | None = getattr(request.state, "requests", None)
    if counter is not None:
        counter.value += 1


async def home(request: Request) -> PlainTextResponse:
    _count(request)
    return PlainTextResponse("Hello from Starlette!")


async def cpu(request: Request) -> JSONResponse:
    _count(request)
    try:
        iterations = max(0, min(int(request.query_params.get("iterations", 300_000)), 10**8))
    except ValueError:
        return JSONResponse({"error": "iterations must be an integer"}, status_code=400)
    digest = stretch(b"interpserve", iterations)
    return JSONResponse(
        {
            "digest": f"{digest:016x}",
            "iterations": iterations,
            "pid": os.getpid(),
            "interpreter": _interpreter_id(),
        }
    )


async def json_doc(request: Request) -> JSONResponse:
    _count(request)
    return JSONResponse({"message": "hello", "numbers": [1, 2, 3], "nested": {"ok": True}})


async def item(request: Request) -> JSONResponse:
    _count(request)
    return JSONResponse({"id": request.path_params["id"], "q": request.query_params.get("q")})


async def upload(request: Request) -> JSONResponse:
    _count(request)
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return JSONResponse({"bytes": total})


async def state(request: Request) -> JSONResponse:
    _count(request)
    counter: Counter | None = getattr(request.state, "requests", None)
    return JSONResponse(
        {
            "started_at": getattr(request.state, "started_at", None),
            "requests": counter.value if counter is not None else None,
            "pid": os.getpid(),
            "interpreter": _interpreter_id(),
        }
    )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    # Runs once per worker; the yielded dict becomes each request's `request.state`.
    # The Counter object is shared by reference, so it counts this worker's requests.
    yield {"started_at": time.time(), "requests": Counter()}


routes: list[Any] = [
    Route("/", home),
    Route("/cpu", cpu),
    Route("/json", json_doc),
    Route("/items/{id:int}", item),
    Route("/upload", upload, methods=["POST"]),
    Route("/state", state),
]

app = Starlette(routes=routes, lifespan=lifespan)
