"""A worker that is a subinterpreter of this process, with its own GIL, run by its own thread."""

from __future__ import annotations

import asyncio
import json
import logging
import marshal
import os
import threading

from interpserve.errors import InterpreterFailed
from interpserve.interpreters import Interpreter
from interpserve.pipes import open_pipe
from interpserve.pool.channel import WorkerChannel

logger = logging.getLogger("interpserve.error")

# Runs inside the new interpreter. Its sys.path starts as the process's did at start-up, so it
# is set from the settings before anything of ours or the app's is imported. The settings cross
# in marshal's format, which the interpreter has loaded already (importlib reads bytecode with
# it), where json would be one more module in every worker's memory. What asyncio imports but
# uses only when asked (ssl, inspect) is imported on first use (worker/deferred.py).
_BOOTSTRAP = """\
import marshal, sys
settings = marshal.loads({settings!r})
sys.path[:] = settings["sys_path"]
from interpserve.worker.deferred import defer_imports
defer_imports()
from interpserve.worker.main import run_worker
run_worker({fd_in}, {fd_out}, settings, "interpreter")
"""


class InterpreterWorker:
    kind = "interpreter"

    def __init__(self, worker_id: int, settings: str) -> None:
        self.worker_id = worker_id
        self.channel = WorkerChannel(worker_id)
        self._settings = marshal.dumps(json.loads(settings))
        self._interpreter: Interpreter | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._main_fds: tuple[int, ...] = ()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        to_worker_r, to_worker_w = open_pipe()
        from_worker_r, from_worker_w = open_pipe()
        self._stopped = loop.create_future()
        self._interpreter = Interpreter()
        code = _BOOTSTRAP.format(settings=self._settings, fd_in=to_worker_r, fd_out=from_worker_w)
        self._thread = threading.Thread(
            target=self._run,
            args=(code, loop, (to_worker_r, from_worker_w)),
            name=f"interpserve-worker-{self.worker_id}",
            daemon=True,
        )
        await self.channel.connect(from_worker_r, to_worker_w)
        self._main_fds = (from_worker_r, to_worker_w)
        self._thread.start()

    def _run(self, code: str, loop: asyncio.AbstractEventLoop, worker_fds: tuple[int, int]) -> None:
        """The worker's thread: its whole life is one call into the interpreter."""
        assert self._interpreter is not None
        try:
            self._interpreter.run(code)
        except InterpreterFailed as exc:
            logger.error("Worker %d crashed:\n%s", self.worker_id, exc)
        finally:
            # Closing the worker's ends is what tells the front end the worker is gone.
            for fd in worker_fds:
                os.close(fd)
            assert self._stopped is not None
            loop.call_soon_threadsafe(_resolve, self._stopped)

    async def wait_stopped(self, timeout: float | None) -> bool:
        assert self._stopped is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped), timeout)
        except TimeoutError:
            return False
        return True

    def terminate(self) -> None:
        """A stuck interpreter cannot be stopped from outside: disconnect it, and leave its
        thread to finish whatever it is running. `close` once `wait_stopped` says it has."""
        self.channel.close()

    @property
    def running(self) -> bool:
        return self._stopped is not None and not self._stopped.done()

    @property
    def pid(self) -> None:
        return None

    async def memory(self, timeout: float) -> int | None:
        """What its own allocator holds (it says so over its pipe)."""
        return await self.channel.memory(timeout)

    def close(self, *, destroy: bool = True) -> bool:
        """Release the pipes and, if its thread has returned, the interpreter; whether the
        interpreter was destroyed.

        `destroy=False` keeps the interpreter: CPython 3.13.0 can abort the process when it
        destroys interpreters in which extension imports failed.
        """
        self.channel.close()
        for fd in self._main_fds:
            os.close(fd)
        self._main_fds = ()
        finished = self._stopped is not None and self._stopped.done()
        if destroy and finished and self._interpreter and self._thread:
            self._thread.join()  # it has returned from the interpreter already
            self._interpreter.close()
            self._interpreter = None
            return True
        return False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
