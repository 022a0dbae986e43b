"""ASGI lifespan, run once per worker: startup before it takes requests, shutdown when retired."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from interpserve.errors import LifespanFailed
from interpserve.worker.app import ASGIApp, Message, incompatible_module

logger = logging.getLogger("interpserve.error")


class Lifespan:
    def __init__(self, app: ASGIApp, mode: str, state: dict[str, Any]) -> None:
        self._app = app
        self._mode = mode
        self._state = state
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._failure = ""
        self._refusal: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def startup(self) -> None:
        if self._mode == "off":
            return
        self._task = asyncio.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._wait(self._startup_done)

    async def shutdown(self) -> None:
        if self._task is None or not self._supported or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._wait(self._shutdown_done)

    async def _wait(self, done: asyncio.Event) -> None:
        assert self._task is not None
        finished = asyncio.ensure_future(done.wait())
        await asyncio.wait([finished, self._task], return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        if self._refusal is not None:
            raise self._refusal
        if self._failure:
            raise LifespanFailed(self._failure)

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._state,
        }
        try:
            await self._app(scope, self._inbox.get, self._send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if incompatible_module(exc):
                # An extension module refused this interpreter: the app does not lack lifespan
                # support, it cannot run here at all. The worker reports it in one line.
                self._refusal = exc
            elif self._mode == "auto" and not self._startup_done.is_set():
                # Apps without lifespan support raise on the unknown scope type.
                self._supported = False
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                logger.exception("Exception in 'lifespan' protocol")
                self._failure = f"lifespan raised {type(exc).__name__}: {exc}"
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._failure = message.get("message") or kind
            self._startup_done.set()
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
