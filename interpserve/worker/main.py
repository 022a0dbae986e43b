"""A worker's life, the same in a subinterpreter and in a child process: import the app once,
run lifespan startup once, then serve many requests at once on its own event loop until told
to stop, and run lifespan shutdown."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from interpserve import events as ev
from interpserve.errors import AppLoadError, ConfigError, LifespanFailed
from interpserve.logoutput import Output
from interpserve.logs import capture_worker_output, configure_worker_logging
from interpserve.memory import BurstWatch, tune_malloc
from interpserve.pipes import FramePipe
from interpserve.worker.allocator import held_bytes
from interpserve.worker.app import ASGIApp, load_app, refusal
from interpserve.worker.asgi import HTTPCycle
from interpserve.worker.lifespan import Lifespan
from interpserve.worker.websocket import WebSocketCycle

logger = logging.getLogger("interpserve.error")

# Memory is given back (interpserve/memory.py) once this many requests in flight at once have
# mostly finished.
_REQUEST_BURST = 64


def run_worker(fd_in: int, fd_out: int, settings: dict[str, Any], kind: str) -> None:
    """Entry point: blocks until the worker has stopped. `kind`: interpreter or process;
    `settings`: Config.worker_settings, decoded."""
    if kind == "process":
        tune_malloc()  # (an interpreter worker's process is the front end's: tuned already)
    outputs = configure_worker_logging(
        settings["log_level"], settings["log_format"], settings["worker_id"], kind
    )
    try:
        asyncio.run(Worker(settings, kind, outputs).serve(fd_in, fd_out))
    finally:
        sys.stdout.flush()  # a line the app left without its end
        sys.stderr.flush()
        for output in outputs:
            output.flush()  # and the lines of the loop's last pass


class Worker:
    def __init__(self, settings: dict[str, Any], kind: str, outputs: tuple[Output, Output]) -> None:
        self._settings = settings
        self._kind = kind
        self._outputs = outputs  # stdout, stderr
        self._root_path: str = settings["root_path"]
        header = settings["request_id_header"]
        self._request_id_header: bytes | None = header.encode("latin-1") if header else None
        self._state: dict[str, Any] = {}
        self._cycles: dict[int, HTTPCycle] = {}
        self._websockets: dict[int, WebSocketCycle] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._app: ASGIApp | None = None
        self._fatal_error: BaseException | None = None
        self._pipe = FramePipe(self._on_event, self._stopping.set)

    async def serve(self, fd_in: int, fd_out: int) -> None:
        await self._pipe.connect(fd_in, fd_out)
        try:
            await self._serve()
        finally:
            # Also when the worker crashes: the closed pipe is how the front end learns it.
            self._pipe.close()

    async def _serve(self) -> None:
        lifespan = await self._start()
        if lifespan is None:
            return
        self._pipe.send(ev.WorkerReady())
        # A process worker is its process's main interpreter: it trims the process's heaps.
        bursts = BurstWatch(lambda: len(self._tasks), _REQUEST_BURST, trim=self._kind == "process")
        bursts.start()
        await self._stopping.wait()
        bursts.stop()
        if self._fatal_error is not None:
            logger.error("Worker stopping: the app raised %r.", self._fatal_error)
            return
        # The front end sends Shutdown only once it has drained, but a closed pipe (front end
        # gone) can leave requests running: they get to finish before lifespan shutdown.
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))
        try:
            await lifespan.shutdown()
        except LifespanFailed as exc:
            logger.error("Lifespan shutdown failed: %s", exc)

    async def _start(self) -> Lifespan | None:
        """Apply --log-config, import the app and run lifespan startup; on failure tell the
        front end why."""
        try:
            self._configure_logging()
            self._app = load_app(self._settings["app"], factory=self._settings["factory"])
            lifespan = Lifespan(self._app, self._settings["lifespan"], self._state)
            await lifespan.startup()
        except AppLoadError as exc:
            self._pipe.send(ev.WorkerFailed(str(exc), exc.incompatible_module))
            return None
        except LifespanFailed as exc:
            self._pipe.send(ev.WorkerFailed(f"Application startup failed: {exc}"))
            return None
        except ConfigError as exc:  # --log-config: a handler that cannot load here
            error = refusal(exc, self._settings["app"])
            module = error.incompatible_module if error else ""
            self._pipe.send(ev.WorkerFailed(str(error or exc), module))
            return None
        except Exception as exc:
            if error := refusal(exc, self._settings["app"]):  # from lifespan startup
                self._pipe.send(ev.WorkerFailed(str(error), error.incompatible_module))
                return None
            logger.exception("Error loading ASGI app %r", self._settings["app"])
            self._pipe.send(ev.WorkerFailed(f"Error loading ASGI app: {type(exc).__name__}: {exc}"))
            return None
        return lifespan

    def _configure_logging(self) -> None:
        """--log-config, as the front end applied it, then the app's stdout and stderr: after
        it, so that the handlers it makes keep the streams they were given."""
        settings = self._settings
        if settings["log_config"] is not None:
            from interpserve.logconfig import apply_log_config

            apply_log_config(settings["log_config"], in_worker=True)
        capture_worker_output(
            settings["log_format"], settings["worker_id"], self._kind, *self._outputs
        )

    def _fatal(self, exc: BaseException) -> None:
        """The app raised SystemExit (or the like): stop at once, without lifespan shutdown,
        and the front end replaces this worker."""
        self._fatal_error = exc
        self._pipe.send(ev.WorkerFailed(f"the app raised {exc!r}"))
        self._stopping.set()

    def _on_event(self, event: ev.Event) -> None:
        match event:
            case ev.Request():
                self._start_request(event)
            case ev.RequestBody(request_id, data, more_body):
                if cycle := self._cycles.get(request_id):
                    cycle.feed_body(data, more_body)
            case ev.WebSocketMessage(request_id, data):
                if websocket := self._websockets.get(request_id):
                    websocket.message(data)
            case ev.Credit(request_id, size):
                if sender := self._cycles.get(request_id) or self._websockets.get(request_id):
                    sender.credit(size)
            case ev.WebSocketClose(request_id, code, reason):
                if websocket := self._websockets.get(request_id):
                    websocket.closed(code, reason)
            case ev.Disconnect(request_id):
                if cycle := self._cycles.get(request_id):
                    cycle.disconnect()
            case ev.Cancel(request_id):
                if task := self._tasks.get(request_id):
                    task.cancel("it ran too long (--timeout-request)")
            case ev.CancelAll():
                for task in list(self._tasks.values()):
                    task.cancel("the graceful shutdown's deadline passed")
            case ev.MemoryQuery(sequence):
                self._pipe.send(ev.MemoryReport(sequence, held_bytes()))
            case ev.Ping(sequence):
                self._pipe.send(ev.Pong(sequence))
            case ev.Shutdown():
                self._stopping.set()
                for websocket in self._websockets.values():
                    websocket.shutdown()  # they would hold up the drain as long as they last
            case _:
                logger.error("Worker got an unexpected event: %r", event)

    def _start_request(self, request: ev.Request) -> None:
        assert self._app is not None
        request_id = request.request_id
        args = (
            request,
            self._pipe,
            self._fatal,
            self._root_path,
            self._state,
            self._request_id_header,
        )
        cycle: HTTPCycle | WebSocketCycle
        if request.websocket:
            cycle = self._websockets[request_id] = WebSocketCycle(*args)
        else:
            cycle = self._cycles[request_id] = HTTPCycle(*args)
        # Started eagerly: the app runs at once, up to its first real wait. Most requests are
        # answered right there, and never cost a trip through the event loop's queue.
        loop = asyncio.get_running_loop()
        task = asyncio.Task(cycle.run(self._app), loop=loop, eager_start=True)
        if task.done():
            self._finish_request(request_id)
            return
        self._tasks[request_id] = task
        task.add_done_callback(lambda _: self._finish_request(request_id))
        if isinstance(cycle, HTTPCycle):
            cycle.first_step_done()

    def _finish_request(self, request_id: int) -> None:
        self._tasks.pop(request_id, None)
        self._cycles.pop(request_id, None)
        self._websockets.pop(request_id, None)
