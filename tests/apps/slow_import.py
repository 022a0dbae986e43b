"""An app whose import takes SLOW_IMPORT_SECONDS (default 6): a server asked to stop meanwhile
must not wait for it. With SLOW_IMPORT_STARTED=PATH, each import first appends a line to PATH
(the test's signal that the import is under way)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

if started := os.environ.get("SLOW_IMPORT_STARTED"):
    with open(started, "a") as f:
        f.write(f"{os.getpid()}\n")
time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "6")))


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finally"})
