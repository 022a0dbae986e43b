"""A raw ASGI 3 app for the supervision tests: it lets a test see which worker answered, make a
worker crash or hang, and observe lifespan shutdown and code reloads.

Routes (each with ?started=PATH creates PATH as it starts: a test's signal that the request
is in flight on a worker):
    /              200 "ok"
    /pid           the worker's os.getpid()
    /whoami        JSON {"pid", "interpreter", "version"}
    /forever       a pure-Python infinite loop that never yields to the event loop
    /sleep?s=X     asyncio.sleep(X) (default 1), then "slept"
    /crash         raise SystemExit(3): the worker must stop and the pool replace it; with
                   ?linger=S the worker's exit then takes S seconds more (an executor job
                   that asyncio.run waits for as it closes the worker's event loop)
    /exit          os._exit(1), or with ?segv=1 a segmentation fault: the process ends at
                   once (for an interpreter worker, the serving process and all its workers)
    /partial?s=X   a response's start and first chunk, then asyncio.sleep(X) (default 30)
    /grow?mib=N    keep about N MiB more of small objects, for as long as the worker lives

Environment:
    CONTROL_VERSION_FILE   VERSION is this file's content, read once at import (so a reload,
                           which imports the module afresh, shows the new content); "broken"
                           makes the import fail (a worker that cannot start), "slow" makes
                           it take 60 s
    CONTROL_SHUTDOWN_LOG   lifespan shutdown appends "shutdown <pid> <interpreter id>" to it
    CONTROL_CANCEL_LOG     /sleep and /partial append "cancelled" to it when they are
                           cancelled, and "finally" as they end however they end
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

from tests.apps.shared import Receive, Scope, Send, interpreter_id, respond


def _read_version() -> str:
    path = os.environ.get("CONTROL_VERSION_FILE")
    if not path:
        return "none"
    with open(path, encoding="utf-8") as f:
        version = f.read().strip()
    if version == "broken":
        raise RuntimeError("this version is broken on purpose")
    if version == "slow":
        time.sleep(60)
    return version


VERSION = _read_version()
_HELD: list[str] = []  # what /grow keeps


async def _text(send: Send, body: str, status: int = 200) -> None:
    await respond(
        send,
        body.encode(),
        status=status,
        headers=[(b"content-type", b"text/plain; charset=utf-8")],
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            log = os.environ.get("CONTROL_SHUTDOWN_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as f:
                    f.write(f"shutdown {os.getpid()} {interpreter_id()}\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


def _number(scope: Scope, name: str, default: float) -> float:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        return float(query[name][-1])
    except (KeyError, ValueError):
        return default


@contextlib.asynccontextmanager
async def _recorded() -> AsyncIterator[None]:
    """CONTROL_CANCEL_LOG: whether the app saw its cancellation, and whether `finally` ran."""
    try:
        yield
    except asyncio.CancelledError:
        _record("cancelled")
        raise
    finally:
        _record("finally")


def _record(word: str) -> None:
    log = os.environ.get("CONTROL_CANCEL_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{word}\n")


def _forever() -> None:
    x = 0
    while True:
        x = (x * 31 + 7) & 0xFFFF


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    started = parse_qs(scope["query_string"].decode("latin-1")).get("started")
    if started:
        open(started[-1], "w").close()
    if path == "/":
        await _text(send, "ok")
    elif path == "/pid":
        await _text(send, str(os.getpid()))
    elif path == "/whoami":
        body = {"pid": os.getpid(), "interpreter": interpreter_id(), "version": VERSION}
        await respond(
            send, json.dumps(body).encode(), headers=[(b"content-type", b"application/json")]
        )
    elif path == "/forever":
        _forever()
    elif path == "/sleep":
        async with _recorded():
            await asyncio.sleep(max(0.0, _number(scope, "s", 1.0)))
        await _text(send, "slept")
    elif path == "/partial":
        async with _recorded():
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"started", "more_body": True})
            await asyncio.sleep(max(0.0, _number(scope, "s", 30.0)))
            await send({"type": "http.response.body", "body": b""})
    elif path == "/exit":
        if _number(scope, "segv", 0):
            import ctypes
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file left behind
            ctypes.string_at(0)
        os._exit(1)
    elif path == "/grow":
        # Strings of about 64 bytes: objects that an interpreter's own allocator holds.
        count = int(_number(scope, "mib", 1) * 1024 * 1024 / 64)
        _HELD.extend(f"{i:015d}" for i in range(count))
        await _text(send, f"holding {len(_HELD)}")
    elif path == "/after":
        # Answers at once, then works on (like a background task) for s seconds.
        await _text(send, "answered")
        await asyncio.sleep(max(0.0, _number(scope, "s", 1.0)))
    elif path == "/crash":
        linger = _number(scope, "linger", 0.0)
        if linger > 0:
            asyncio.get_running_loop().run_in_executor(None, time.sleep, linger)
        raise SystemExit(3)
    else:
        await _text(send, "Not Found", 404)
