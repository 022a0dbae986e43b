"""interpserve examples.falcon_app:app --workers 2

A Falcon (ASGI flavour) app.

Routes:
    GET  /              plain text greeting
    GET  /cpu?ms=N      pure-Python busy loop of about N ms (default 200); JSON {"pid", "ms"}
    POST /echo          the request body back, with the request's content type
"""

from __future__ import annotations

import os
import time

import falcon
import falcon.asgi


class Root:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello from Falcon!"


class Cpu:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        ms = max(0, min(req.get_param_as_int("ms", default=200) or 0, 60_000))
        deadline = time.perf_counter() + ms / 1000
        x = 0
        while time.perf_counter() < deadline:
            for i in range(1000):
                x = (x * 31 + i) & 0xFFFFFFFF
        resp.media = {"pid": os.getpid(), "ms": ms}


class Echo:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = await req.stream.read()
        resp.content_type = req.content_type or falcon.MEDIA_TEXT


app = falcon.asgi.App()
app.add_route("/", Root())
app.add_route("/cpu", Cpu())
app.add_route("/echo", Echo())
