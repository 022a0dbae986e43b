"""interpserve examples.sse:app --workers 2

Server-sent events (streaming responses) with Starlette. Open http://127.0.0.1:8000/ in a
browser, or watch the raw stream with `curl -N http://127.0.0.1:8000/mandelbrot`.

Routes:
    GET /                         a page that shows both streams (EventSource)
    GET /events?n=N&interval=S    N "tick" events (default 10), S seconds apart (default 0.5;
                                  at most 10), then one "done" event. Each tick's data is JSON
                                  {"n", "interpreter", "pid"}. A reconnecting EventSource sends
                                  Last-Event-ID and the stream resumes after that event.
    GET /mandelbrot?rows=R&iterations=I
                                  CPU-heavy streaming: an ASCII Mandelbrot set computed in pure
                                  Python, one "row" event per line as soon as it is done (default
                                  40 rows of 72 characters, 8000 iterations per point), then a
                                  "done" event with JSON {"rows", "ms", "interpreter", "pid"}

A stream holds a task on its worker's event loop, not the worker: one worker serves many
/events streams at once. /mandelbrot holds its worker's GIL while it computes each row, so
that worker's other requests wait for the row; concurrent renders run in parallel on
different workers (each worker is an interpreter with its own GIL). Through a reverse proxy,
turn response buffering off for these routes (the X-Accel-Buffering header does it for nginx).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Route

PAGE = """<!doctype html>
<meta charset="utf-8"><title>interpserve server-sent events</title>
<p>ticks: <span id="ticks"></span></p>
<pre id="art"></pre>
<script>
const ticks = new EventSource("/events?n=20");
ticks.addEventListener("tick", (e) => {
  document.getElementById("ticks").textContent = e.data;
});
ticks.addEventListener("done", () => ticks.close());
const art = new EventSource("/mandelbrot");
const draw = (e) => { document.getElementById("art").textContent += e.data + "\\n"; };
art.addEventListener("row", draw);
art.addEventListener("done", (e) => {
  draw(e);
  art.close();  // or the browser would reconnect and draw it again
});
</script>
"""

# Ask EventSource to wait this long before reconnecting after the stream drops.
RETRY_MS = 2000
WIDTH = 72


def _interpreter_id() -> int:
    try:
        from interpserve.interpreters import current_id

        return current_id()
    except Exception:  # under another server, or in the main interpreter of a process worker
        return -1


def sse_event(event: str, data: str, event_id: int | None = None) -> str:
    """One event in the text/event-stream format; a multi-line `data` becomes several lines."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _query_number[T: (int, float)](request: Request, name: str, default: T, top: T) -> T:
    try:
        value = type(default)(request.query_params.get(name, default))
    except ValueError:
        value = default
    return max(type(default)(0), min(value, top))


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def events(request: Request) -> StreamingResponse:
    n = _query_number(request, "n", 10, 10_000)
    interval = _query_number(request, "interval", 0.5, 10.0)
    try:
        first = int(request.headers.get("last-event-id", "-1")) + 1
    except ValueError:
        first = 0

    async def ticks() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        for i in range(first, n):
            if i > first:
                await asyncio.sleep(interval)
            data = {"n": i, "interpreter": _interpreter_id(), "pid": os.getpid()}
            yield sse_event("tick", json.dumps(data), event_id=i)
        yield sse_event("done", json.dumps({"events": n}))

    return event_stream(ticks())


def mandelbrot_row(y: int, rows: int, iterations: int) -> str:
    """One line of the set, in pure Python: every point holds the GIL for its whole loop."""
    shades = " .:-=+*#%@"
    ci = (y / max(rows - 1, 1)) * 2.4 - 1.2
    line = []
    for x in range(WIDTH):
        cr = (x / (WIDTH - 1)) * 3.0 - 2.2
        zr = zi = 0.0
        n = 0
        while n < iterations and zr * zr + zi * zi <= 4.0:
            zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
            n += 1
        line.append("@" if n == iterations else shades[n % (len(shades) - 1)])
    return "".join(line)


async def mandelbrot(request: Request) -> StreamingResponse:
    rows = _query_number(request, "rows", 40, 200)
    iterations = _query_number(request, "iterations", 8000, 100_000)

    async def render() -> AsyncIterator[str]:
        started = time.perf_counter()
        for y in range(rows):
            yield sse_event("row", mandelbrot_row(y, rows, iterations))
            # Let the loop send this row (and notice a client that left) before the next one.
            await asyncio.sleep(0)
        summary = {
            "rows": rows,
            "ms": round((time.perf_counter() - started) * 1000),
            "interpreter": _interpreter_id(),
            "pid": os.getpid(),
        }
        yield sse_event("done", json.dumps(summary))

    return event_stream(render())


app = Starlette(
    routes=[Route("/", home), Route("/events", events), Route("/mandelbrot", mandelbrot)]
)
