"""The worker pool: starts N workers side by side, hands each request to the least busy one,
and keeps N serving: a worker that dies or gets stuck is replaced, one that has served its
quota is recycled, and a reload swaps in new workers before the old ones drain."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from interpserve import events as ev
from interpserve.backoff import CrashLoop
from interpserve.config import Config
from interpserve.errors import NoWorkerYet, StartupError, WorkerGone
from interpserve.pool.channel import WorkerChannel
from interpserve.pool.interpreter_worker import InterpreterWorker
from interpserve.pool.process_worker import ProcessWorker
from interpserve.tasks import BackgroundTasks

logger = logging.getLogger("interpserve.error")

Worker = InterpreterWorker | ProcessWorker
WORKER_KINDS: dict[str, type[InterpreterWorker] | type[ProcessWorker]] = {
    "interpreter": InterpreterWorker,
    "process": ProcessWorker,
}

# How long a worker's event loop may take to answer a ping after one of its requests timed out
# before it counts as stuck (in CPU-bound code that never yields).
STUCK_AFTER = 1.0
# Added to the load of a worker past --limit-max-requests, so that dispatch avoids it.
_EXHAUSTED = 1 << 30
# How long a request waits for a worker when none is in rotation (the only one died and its
# replacement is starting), as it would wait in the listen backlog in front of a pool of
# processes, before it is answered 503.
WORKER_WAIT = 30.0


class WorkerPool:
    def __init__(self, config: Config, kind: str) -> None:
        self._config = config
        self.kind = kind
        self._make_worker = WORKER_KINDS[kind]
        self._last_id = 0
        self.workers: list[Worker] = []  # in rotation
        self._abandoned: list[Worker] = []
        # Out of rotation, finishing their requests (see _retire): stop() must not forget them.
        self._retiring: set[Worker] = set()
        self._tasks = BackgroundTasks()
        self._stopping = False
        # Held while workers start and join or leave the rotation (reload, recycle, replace,
        # SIGTTIN/SIGTTOU): one change at a time, each starting from what the last one left.
        self._changing = asyncio.Lock()
        self._reload_waiting = False  # a reload waits for the lock: more SIGHUPs join it
        self._recycling: set[Worker] = set()  # a recycle is under way or waiting for the lock
        self._starting: set[Worker] = set()  # being started: see abort()
        self._checking: set[WorkerChannel] = set()  # see request_timed_out
        self._crash_loop = CrashLoop()
        self._worker_joined: list[asyncio.Future[None]] = []  # see when_worker_ready
        self.restarts = 0
        # How many workers should serve: the configured count, moved by SIGTTIN/SIGTTOU.
        self.target = config.worker_count
        # Given to every worker's channel: see WorkerChannel.pipe_backlog.
        self.pipe_backlog: Callable[[int], None] | None = None

    @property
    def in_flight(self) -> int:
        return sum(worker.channel.outstanding for worker in self.workers)

    @property
    def ready(self) -> bool:
        return bool(self.workers) and not self._stopping

    # Start and dispatch

    async def start(self) -> None:
        """Start every worker at once; return when all are ready, or raise StartupError."""
        workers = await self._start_workers(self.target)
        for worker in workers:
            self._activate(worker)

    def choose(self) -> WorkerChannel:
        """The worker with the fewest requests in flight: a slow request on one worker never
        holds up requests that another worker could serve now. WorkerGone if there is none, or
        if --limit-concurrency requests are in flight already; NoWorkerYet if there is none
        now but the pool is not stopping (one is starting, or will be: when_worker_ready)."""
        limit = self._config.limit_concurrency
        if limit is not None and self.in_flight >= limit:
            raise WorkerGone("--limit-concurrency reached")
        best: Worker | None = None
        best_load = 0
        for worker in self.workers:
            channel = worker.channel
            if not channel.accepting:
                continue  # gone, or going: until the pool notices, it must get nothing
            load = channel.outstanding
            limit = channel.request_limit
            if limit is not None and channel.requests_taken >= limit:
                # Its replacement is starting: it serves on only if no other worker can.
                load += _EXHAUSTED
            if best is None or load < best_load:
                best, best_load = worker, load
                if not load:
                    break
        if best is None:
            if self._stopping:
                raise WorkerGone("no worker is running")
            raise NoWorkerYet("no worker is running yet")
        channel = best.channel
        limit = channel.request_limit
        if limit is not None and channel.requests_taken + 1 >= limit:
            self._start_recycle(best)
        return channel

    def when_worker_ready(self, retry: Callable[[], None]) -> asyncio.Task[None]:
        """Call `retry` (a dispatch that met NoWorkerYet) once a worker is in rotation again,
        the pool stops, or WORKER_WAIT has passed: its choose() then says which. Cancel the
        task to drop it (the client left)."""

        async def wait_then_retry() -> None:
            await self._wait_for_worker()
            retry()

        return asyncio.get_running_loop().create_task(wait_then_retry())

    async def _wait_for_worker(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WORKER_WAIT
        while not self._stopping and not any(w.channel.accepting for w in self.workers):
            joined = loop.create_future()
            self._worker_joined.append(joined)
            try:
                await asyncio.wait_for(joined, deadline - loop.time())
            except TimeoutError:
                return
            finally:
                if joined in self._worker_joined:
                    self._worker_joined.remove(joined)

    def _wake_waiting(self) -> None:
        """A worker joined the rotation, or the pool is stopping: the waits end."""
        waiting, self._worker_joined = self._worker_joined, []
        for joined in waiting:
            if not joined.done():
                joined.set_result(None)

    def request_timed_out(self, channel: WorkerChannel, request_id: int) -> None:
        """A request ran past --timeout-request: cancel it, and find out whether its worker is
        stuck (a stuck worker cannot cancel anything). Until it is known, it gets no requests."""
        channel.send(ev.Cancel(request_id))
        if channel not in self._checking and channel.accepting:
            self._checking.add(channel)
            channel.accepting = False
            self._tasks.spawn(self._check_stuck(channel))

    # Changes to the set of workers

    async def reload(self) -> None:
        """Zero-downtime reload: new workers (importing the code as it is now) take over once
        all of them are ready; the old ones then drain and stop. If the new ones fail to start,
        the old ones keep serving. A reload asked for while another one is under way follows
        it (the code may have changed again); one asked for while another waits joins it."""
        if self._reload_waiting:
            logger.info("A reload is already waiting to start; it will load the code as it is.")
            return
        self._reload_waiting = True
        async with self._changing:
            self._reload_waiting = False
            if self._stopping:
                return
            try:
                new = await self._start_workers(self.target)
            except StartupError as exc:
                logger.error("Reload failed, the old workers keep serving: %s", exc)
                return
            old = list(self.workers)
            for worker in old:
                self._deactivate(worker)
            for worker in new:
                self._activate(worker)
        await asyncio.gather(*(self._retire(worker) for worker in old))
        logger.info("Reloaded: %d new worker(s) serving.", len(new))

    async def add_worker(self) -> None:
        async with self._changing:
            if self._stopping:
                return
            try:
                (worker,) = await self._start_workers(1)
            except StartupError as exc:
                logger.error("Could not add a worker: %s", exc)
                return
            self.target += 1
            self._activate(worker)
        logger.info("Added worker %d: %d serving.", worker.worker_id, len(self.workers))

    async def remove_worker(self) -> None:
        async with self._changing:
            if len(self.workers) <= 1:
                logger.warning("Not removing the last worker.")
                return
            self.target -= 1
            worker = self.workers[-1]
            self._deactivate(worker)
        await self._retire(worker)
        logger.info("Removed a worker: %d serving.", len(self.workers))

    def begin_stop(self) -> None:
        """The server is shutting down: start no more workers, and let the requests waiting
        for one have their 503 now; the workers in rotation serve on until stop()."""
        self._stopping = True
        self._wake_waiting()

    async def stop(self, timeout: float | None) -> bool:
        """Drain and stop every worker (lifespan shutdown included). False if one could not be
        stopped: an interpreter stuck in code that never returns."""
        self.begin_stop()
        await self._tasks.cancel_all()
        # Those in rotation, and those a cancelled reload or recycle was draining.
        retiring = [*self.workers, *self._retiring]
        await asyncio.gather(*(self._retire(worker, timeout) for worker in retiring))
        busy = [worker for worker in self._abandoned if worker.running]
        for worker in busy:
            logger.warning(
                "Worker %d is still busy at exit (stuck, or starting).", worker.worker_id
            )
        return not busy

    def abort(self) -> None:
        """The server exits at once (a second Ctrl+C): kill every worker process, so that none
        outlives it. (Interpreters end with the process.)"""
        for worker in [*self.workers, *self._retiring, *self._starting, *self._abandoned]:
            if worker.kind == "process":
                worker.terminate()

    # Internals

    async def _start_workers(self, count: int) -> list[Worker]:
        """Start `count` new workers side by side; all ready, or StartupError (none left)."""
        workers = []
        for _ in range(count):
            self._last_id += 1
            settings = self._config.worker_settings(self._last_id)
            workers.append(self._make_worker(self._last_id, settings))
        self._starting.update(workers)
        timeout = self._config.timeout_worker_start
        try:
            for worker in workers:
                await worker.start()
            ready = asyncio.gather(*(worker.channel.wait_ready() for worker in workers))
            results = await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            # An import or a lifespan startup that hangs: left to wait, it would hold every
            # later reload and replacement back (they take turns).
            for worker in workers:
                self._give_up(worker)
            raise StartupError(
                f"the workers were not ready {timeout:g} s after they started "
                "(--timeout-worker-start)"
            ) from None
        except asyncio.CancelledError:
            # The server is stopping: none of them may outlive it (stop() reports those it
            # could not stop: interpreters still importing).
            for worker in workers:
                worker.terminate()
                self._abandoned.append(worker)
            raise
        finally:
            self._starting.difference_update(workers)
        failures = [result for result in results if isinstance(result, ev.WorkerFailed)]
        if failures:
            # The first reason is the one to show: usually they are all the same.
            failure = next((f for f in failures if f.incompatible_module), failures[0])
            for worker in workers:
                worker.channel.shutdown()
            await asyncio.gather(*(worker.wait_stopped(5.0) for worker in workers))
            for worker in workers:
                worker.close(destroy=not failure.incompatible_module)
            raise StartupError(failure.message, failure.incompatible_module)
        return workers

    def _activate(self, worker: Worker) -> None:
        limit = self._config.limit_max_requests
        if limit is not None:
            limit += random.randint(0, self._config.limit_max_requests_jitter)
        worker.channel.request_limit = limit
        worker.channel.pipe_backlog = self.pipe_backlog
        self.workers.append(worker)
        self._tasks.spawn(self._watch(worker))
        self._wake_waiting()

    def _deactivate(self, worker: Worker) -> bool:
        """Take a worker out of rotation; False if it was not in it."""
        if worker not in self.workers:
            return False
        self.workers.remove(worker)
        return True

    async def _watch(self, worker: Worker) -> None:
        """Replace a worker that leaves while in rotation: it crashed or was killed. The
        replacement starts at once, while the old one may still be exiting."""
        loop = asyncio.get_running_loop()
        ready_at = loop.time()
        await worker.channel.lost.wait()
        if self._stopping or not self._deactivate(worker):
            return
        uptime = loop.time() - ready_at
        delay = self._crash_loop.crashed(uptime)
        logger.error(
            "Worker %d stopped unexpectedly after %.1f s; its requests in flight get 502.%s",
            worker.worker_id,
            uptime,
            f" Crash loop: restarting in {delay:.1f} s." if delay else " Restarting it.",
        )
        self._tasks.spawn(self._replace(worker, delay))
        await worker.wait_stopped(5.0)
        worker.close()

    async def _replace(self, worker: Worker, delay: float) -> None:
        """Start a worker in place of one that left the rotation, retrying with backoff; no
        longer needed once the rotation is full again (a reload filled it meanwhile)."""
        while True:
            await asyncio.sleep(delay)
            async with self._changing:
                if self._stopping or len(self.workers) >= self.target:
                    return
                try:
                    (replacement,) = await self._start_workers(1)
                except StartupError as exc:
                    delay = self._crash_loop.start_failed()
                    logger.error(
                        "Replacement for worker %d failed (%s); retrying in %.1f s.",
                        worker.worker_id,
                        exc,
                        delay,
                    )
                    continue
                self.restarts += 1
                self._activate(replacement)
            logger.info("Worker %d replaces worker %d.", replacement.worker_id, worker.worker_id)
            return

    def _start_recycle(self, worker: Worker) -> None:
        """Recycle a worker, once: every dispatch to it until the recycle is done asks again,
        and each recycle starts a worker."""
        if worker not in self._recycling and not self._stopping:
            self._recycling.add(worker)
            self._tasks.spawn(self._recycle(worker))

    async def _recycle(self, worker: Worker) -> None:
        """Swap a worker that reached its request limit for a fresh one, without a gap."""
        channel = worker.channel
        try:
            async with self._changing:
                if self._stopping or worker not in self.workers:
                    return  # it left the rotation (a reload, a crash) meanwhile
                try:
                    (replacement,) = await self._start_workers(1)
                except StartupError as exc:
                    logger.error("Could not recycle worker %d: %s", worker.worker_id, exc)
                    channel.request_limit = None
                    return
                self._deactivate(worker)
                self._activate(replacement)
            logger.info(
                "Recycling worker %d after %d requests (worker %d takes over).",
                worker.worker_id,
                channel.requests_taken,
                replacement.worker_id,
            )
            self.restarts += 1
            await self._retire(worker)
        finally:
            self._recycling.discard(worker)

    async def _retire(self, worker: Worker, timeout: float | None = None) -> None:
        """Out of rotation, then finish its requests, run lifespan shutdown, and stop. If this
        is cancelled (the server stops meanwhile), stop() finishes it: see _retiring."""
        self._deactivate(worker)
        self._retiring.add(worker)
        worker.channel.shutdown()
        timeout = self._config.timeout_graceful_shutdown if timeout is None else timeout
        if await worker.wait_stopped(timeout):
            worker.close()
        else:
            logger.warning("Worker %d did not stop within %s s.", worker.worker_id, timeout)
            self._give_up(worker)
        self._retiring.discard(worker)

    async def _check_stuck(self, channel: WorkerChannel) -> None:
        """Whether a worker whose request timed out is stuck: it gets no requests meanwhile
        (see request_timed_out), and is replaced if it is, or back in rotation if not."""
        try:
            worker = next((w for w in self.workers if w.channel is channel), None)
            if worker is None:
                return
            if await channel.ping(STUCK_AFTER):
                self._readmit(channel)
                return
            stuck_still_running = sum(1 for w in self._abandoned if w.running)
            if stuck_still_running >= self._config.worker_count:
                # Each abandoned interpreter keeps a thread and its memory until its code
                # returns: past this cap the stuck worker stays (dispatch avoids it: busy).
                logger.error(
                    "Worker %d is stuck, but %d stuck workers are already running; keeping it.",
                    worker.worker_id,
                    stuck_still_running,
                )
                self._readmit(channel)
                return
            if not self._deactivate(worker):
                return
            logger.error(
                "Worker %d is stuck (its event loop has not answered for %.1f s); replacing it.",
                worker.worker_id,
                STUCK_AFTER,
            )
            self._give_up(worker)
            self._tasks.spawn(self._replace(worker, 0.0))
        finally:
            self._checking.discard(channel)

    def _readmit(self, channel: WorkerChannel) -> None:
        if not channel.lost.is_set():
            channel.accepting = True
            self._wake_waiting()

    def _give_up(self, worker: Worker) -> None:
        """Stop a worker that does not stop when asked: a process is killed; an interpreter
        cannot be, so it is disconnected and destroyed once its code returns, if ever."""
        worker.terminate()
        self._abandoned.append(worker)
        self._tasks.spawn(self._reap(worker))

    async def _reap(self, worker: Worker) -> None:
        await worker.wait_stopped(None)
        worker.close()
        self._abandoned.remove(worker)
        logger.info("Worker %d finally stopped and was cleaned up.", worker.worker_id)

