"""interpserve examples.lifespan_state:app --workers 2

Lifespan runs once in every worker, and what it creates belongs to that worker alone.

At startup each worker opens its own connection (an in-memory SQLite database standing in for
a connection pool or a cache client) and makes up a name for itself; at shutdown it closes the
connection and prints a line saying so. Every response says which worker answered: its name,
its interpreter id (`interpserve.interpreters.current_id()`, 1 and up; -1 outside interpserve's
interpreter workers) and the pid.

Routes:
    GET /?hold=S         this worker's state: name, interpreter, pid, started_at and how many
                         requests it has served. hold=S (at most 5) keeps the request open S
                         seconds first, so that requests sent at the same time land on
                         different workers (dispatch goes to the least busy one)
    PUT /cache/{key}     store the request body under key, in this worker's database
    GET /cache/{key}     the value, if this worker has it: a value stored through another
                         worker is not here (404), as nothing is shared between workers

Try it: `curl -X PUT --data hello localhost:8000/cache/greeting`, then a few times
`curl "localhost:8000/cache/greeting?hold=1" & curl "localhost:8000/cache/greeting?hold=1"`
shows one worker with the value and one without. State that all workers must see belongs in
something outside the server: a database server, Redis, files.

Dispatch is per request, not per connection: the requests of one keep-alive connection (a
page, then its favicon or its CSS) may run on different workers, so a per-worker cache can
answer differently within one page load.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Worker:
    """What lifespan startup made for this worker; `requests` counts what it has served."""

    def __init__(self) -> None:
        self.name = f"worker-{secrets.token_hex(3)}"
        self.interpreter = _interpreter_id()
        self.pid = os.getpid()
        self.started_at = time.time()
        self.requests = 0

    def describe(self) -> dict[str, Any]:
        return {
            "worker": self.name,
            "interpreter": self.interpreter,
            "pid": self.pid,
            "started_at": self.started_at,
            "requests": self.requests,
        }


class State(TypedDict):
    worker: Worker
    db: sqlite3.Connection


def _interpreter_id() -> int:
    try:
        from interpserve.interpreters import current_id

        return current_id()
    except Exception:  # under another server, or in the main interpreter of a process worker
        return -1


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    # The requests of this worker run on the thread (and event loop) that runs this, so the
    # connection may be used from the async handlers below without check_same_thread trouble.
    worker = Worker()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE cache (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    print(f"{worker.name} (interpreter {worker.interpreter}): connection opened", flush=True)
    try:
        yield {"worker": worker, "db": db}
    finally:
        db.close()
        print(f"{worker.name} (interpreter {worker.interpreter}): connection closed", flush=True)


def _served(request: Request) -> tuple[Worker, sqlite3.Connection]:
    worker: Worker = request.state.worker
    worker.requests += 1
    return worker, request.state.db


async def _hold(request: Request) -> None:
    try:
        seconds = float(request.query_params.get("hold", 0))
    except ValueError:
        seconds = 0.0
    await asyncio.sleep(max(0.0, min(seconds, 5.0)))


async def home(request: Request) -> JSONResponse:
    await _hold(request)
    worker, _ = _served(request)
    return JSONResponse(worker.describe())


async def cache(request: Request) -> JSONResponse:
    await _hold(request)
    worker, db = _served(request)
    key = request.path_params["key"]
    if request.method == "PUT":
        value = await request.body()
        with db:
            db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?)", (key, value))
        return JSONResponse({"key": key, "stored": len(value), "worker": worker.name})
    row = db.execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
    if row is None:
        return JSONResponse(
            {"key": key, "error": "not in this worker's cache", "worker": worker.name},
            status_code=404,
        )
    return JSONResponse(
        {"key": key, "value": row[0].decode(errors="replace"), "worker": worker.name}
    )


app = Starlette(
    routes=[Route("/", home), Route("/cache/{key}", cache, methods=["GET", "PUT"])],
    lifespan=lifespan,
)
