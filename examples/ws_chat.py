"""interpserve examples.ws_chat:app --workers 1

A WebSocket chat room in raw ASGI: open http://127.0.0.1:8000/ in two browser tabs and talk.

Routes:
    GET /               the chat page (HTML and a few lines of JavaScript)
    WS  /ws?name=NAME   join the room: every text message sent is broadcast to everyone in the
                        room as JSON {"from", "text", "worker"}; joins and leaves are announced

Broadcast across workers is the app's business. Each worker is a separate interpreter (or
process) with its own copy of this module, so `ROOM` below holds only the connections that
worker serves, and interpserve spreads connections over the workers by load. Hence:

* `--workers 1` pins the whole chat to one worker: simplest, and one worker serves thousands of
  idle WebSockets, since a WebSocket holds a task on the worker's event loop, not the worker.
  To keep the rest of a site on many workers, serve the chat from its own interpserve
  instance with --workers 1, behind the same reverse proxy.
* With several workers, replace `Room.publish` with an external broker that every worker
  subscribes to, e.g. Redis pub/sub: publish each message to a channel, and have one task per
  worker (started in the lifespan startup) read the channel and deliver to its local `ROOM`.
  docs/websockets.md has a sketch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>interpserve chat</title>
<form id="f"><input id="t" autocomplete="off" autofocus><button>Send</button></form>
<pre id="log"></pre>
<script>
const name = prompt("Your name?") || "anonymous";
const ws = new WebSocket(`ws://${location.host}/ws?name=${encodeURIComponent(name)}`);
const log = document.getElementById("log");
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  log.textContent += `[worker ${m.worker}] ${m.from}: ${m.text}\\n`;
};
ws.onclose = (e) => { log.textContent += `(closed: ${e.code})\\n`; };
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const t = document.getElementById("t");
  if (t.value) { ws.send(t.value); t.value = ""; }
};
</script>
"""


def _worker_name() -> str:
    try:
        from interpserve.interpreters import current_id

        return f"{os.getpid()}/{current_id()}"
    except Exception:
        return str(os.getpid())


class Room:
    """The connections this worker serves, by their ASGI send callables."""

    def __init__(self) -> None:
        self.members: dict[Send, str] = {}

    async def publish(self, sender: str, text: str) -> None:
        # One send after another: a member that reads slowly slows the broadcast (its send()
        # waits, as flow control wants). A busy room would give each member a queue and a task.
        data = json.dumps({"from": sender, "text": text, "worker": _worker_name()})
        for send in list(self.members):
            try:
                await send({"type": "websocket.send", "text": data})
            except OSError:
                self.members.pop(send, None)  # it left while we were sending


ROOM = Room()


async def chat(scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    query = parse_qs(scope["query_string"].decode())
    name = (query.get("name") or ["anonymous"])[0][:40]
    await send({"type": "websocket.accept"})
    ROOM.members[send] = name
    await ROOM.publish("*", f"{name} joined")
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text"):
                await ROOM.publish(name, message["text"][:1000])
    finally:
        ROOM.members.pop(send, None)
        await ROOM.publish("*", f"{name} left")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket" and scope["path"] == "/ws":
        await chat(scope, receive, send)
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    elif scope["type"] == "http":
        found = scope["path"] == "/"
        kind = b"text/html; charset=utf-8" if found else b"text/plain"
        await send(
            {
                "type": "http.response.start",
                "status": 200 if found else 404,
                "headers": [(b"content-type", kind)],
            }
        )
        await send({"type": "http.response.body", "body": PAGE if found else b"Not Found"})
