"""A raw ASGI 3 app whose requests hold their worker until the test lets them go, so that a
test can tell what runs at the same time from signals instead of from timings.

Routes:
    /hold?here=PATH&release=PATH
                   writes the worker's interpreter id to `here`, then holds its interpreter's
                   GIL in a pure-Python loop (never yielding to the event loop) until the file
                   `release` exists or 30 s pass, then answers JSON {"pid", "interpreter",
                   "released"}
    anything else  200 "ok"
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import parse_qs

from tests.apps.shared import Receive, Scope, Send, interpreter_id, respond

HOLD_AT_MOST = 30.0


def _hold(release: str) -> bool:
    deadline = time.monotonic() + HOLD_AT_MOST
    while time.monotonic() < deadline:
        if os.path.exists(release):
            return True
    return False


_JSON = [(b"content-type", b"application/json")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] != "/hold":
        await respond(send, b'"ok"', headers=_JSON)
        return
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    with open(query["here"], "w") as f:
        f.write(str(interpreter_id()))
    released = _hold(query["release"])
    body = {"pid": os.getpid(), "interpreter": interpreter_id(), "released": released}
    await respond(send, json.dumps(body).encode(), headers=_JSON)
