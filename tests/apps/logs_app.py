"""A raw ASGI 3 app for the logging tests (tests/e2e/test_access_log.py, test_request_id.py,
test_worker_output.py, test_log_config.py).

Routes (query parameters in brackets):
    /print      [n, size, threads, tag] print n lines from each of `threads` threads at once,
                each "TAG-<thread>-<i>-" padded with "x" to `size` characters (threads=0:
                print them from the event loop, as most handlers would)
    /log        a warning and an exception through the app's own logger ("logs_app"), and an
                info line, which shows only where a configuration lets it
    /stream     a chunk of 1000 bytes every 20 ms until the client leaves
    /slow       [seconds] answer after a while
    /partial    start a streamed response, send one chunk, and return without finishing it
    /scope      the request's id as the app sees it, JSON: {"extension", "header"}
    /own-id     a response carrying its own X-Request-ID: "the-app's"
    anything else: 200 "ok"

With LOGS_APP_BASIC_CONFIG=1 in the environment, the module calls logging.basicConfig at
import, with level INFO and the format "app-format %(levelname)s %(name)s %(message)s".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from urllib.parse import parse_qs

from tests.apps.shared import Receive, Scope, Send, lifespan, respond

logger = logging.getLogger("logs_app")
if os.environ.get("LOGS_APP_BASIC_CONFIG") == "1":
    logging.basicConfig(level=logging.INFO, format="app-format %(levelname)s %(name)s %(message)s")


def _print_lines(tag: str, thread: int, n: int, size: int) -> None:
    for i in range(n):
        head = f"{tag}-{thread}-{i}-"
        print(head + "x" * (size - len(head)))


def _print(query: dict[str, str]) -> None:
    n, size, count = (
        int(query.get("n", "1")),
        int(query.get("size", "20")),
        int(query.get("threads", "1")),
    )
    tag = query.get("tag", "line")
    threads = [threading.Thread(target=_print_lines, args=(tag, t, n, size)) for t in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


async def _stream(receive: Receive, send: Send) -> None:
    await receive()  # the request (with no body)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    gone = asyncio.ensure_future(receive())  # http.disconnect, when the client leaves
    while not gone.done():
        await send({"type": "http.response.body", "body": b"d" * 1000, "more_body": True})
        await asyncio.wait([gone], timeout=0.02)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    assert scope["type"] == "http"
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/print" and query.get("threads") == "0":
        _print_lines(
            query.get("tag", "line"), 0, int(query.get("n", "1")), int(query.get("size", "20"))
        )
    elif path == "/print":
        await asyncio.to_thread(_print, query)
    elif path == "/log":
        logger.info("an info line")
        logger.warning("a warning from the app")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("an exception from the app")
    elif path == "/stream":
        await _stream(receive, send)
        return
    elif path == "/slow":
        await asyncio.sleep(float(query.get("seconds", "5")))
    elif path == "/partial":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"p" * 100, "more_body": True})
        return
    elif path == "/scope":
        header = dict(scope["headers"]).get(b"x-request-id")
        found = {
            "extension": scope.get("extensions", {}).get("request_id"),
            "header": header.decode() if header else None,
        }
        await respond(send, json.dumps(found).encode())
        return
    elif path == "/own-id":
        await respond(send, b"ok", headers=[(b"x-request-id", b"the-app's")])
        return
    await respond(send, b"ok")
