"""The worker pool: starts N workers side by side, hands each request to the least busy one,
and stops them all."""

from __future__ import annotations

import asyncio
import logging

from interpserve import events as ev
from interpserve.config import Config
from interpserve.pool.channel import WorkerChannel, WorkerGone
from interpserve.pool.interpreter_worker import InterpreterWorker
from interpserve.pool.process_worker import ProcessWorker

logger = logging.getLogger("interpserve.error")

Worker = InterpreterWorker | ProcessWorker
WORKER_KINDS: dict[str, type[InterpreterWorker] | type[ProcessWorker]] = {
    "interpreter": InterpreterWorker,
    "process": ProcessWorker,
}


class StartupError(Exception):
    """The workers could not start; the message is one line for the operator."""

    def __init__(self, message: str, incompatible_module: str = "") -> None:
        super().__init__(message)
        self.incompatible_module = incompatible_module


class WorkerPool:
    def __init__(self, config: Config) -> None:
        self._config = config
        kind = WORKER_KINDS[config.worker_kind]
        self.workers: list[Worker] = [
            kind(worker_id, config.worker_settings(worker_id))
            for worker_id in range(1, config.worker_count + 1)
        ]
        self._channels = [worker.channel for worker in self.workers]

    async def start(self) -> None:
        """Start every worker at once; return when all are ready, or raise StartupError."""
        for worker in self.workers:
            await worker.start()
        results = await asyncio.gather(*(c.wait_ready() for c in self._channels))
        failures = [r for r in results if isinstance(r, ev.WorkerFailed)]
        if failures:
            # The first reason is the one to show: usually they are all the same.
            failure = next((f for f in failures if f.incompatible_module), failures[0])
            await self.stop(timeout=5.0, destroy=not failure.incompatible_module)
            raise StartupError(failure.message, failure.incompatible_module)

    def choose(self) -> WorkerChannel:
        """The worker with the fewest requests in flight: a slow request on one worker never
        holds up requests that another worker could serve now."""
        best: WorkerChannel | None = None
        for channel in self._channels:
            if channel.closed.is_set():
                continue
            if best is None or channel.outstanding < best.outstanding:
                best = channel
                if not best.outstanding:
                    break
        if best is None:
            raise WorkerGone("no worker is running")
        return best

    async def stop(self, timeout: float | None, *, destroy: bool = True) -> None:
        """Tell every worker to finish (lifespan shutdown included) and release them."""
        for channel in self._channels:
            channel.shutdown()
        stopped = await asyncio.gather(*(w.wait_stopped(timeout) for w in self.workers))
        for worker, done in zip(self.workers, stopped, strict=True):
            if not done:
                logger.warning("Worker %d did not stop in time; abandoning it.", worker.worker_id)
            worker.close(destroy=destroy)
