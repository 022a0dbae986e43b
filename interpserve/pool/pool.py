"""The worker pool: starts N workers side by side, hands each request to the least busy one,
and keeps N serving: a worker that dies or gets stuck is replaced, one that has reached a
recycling limit (requests, lifetime, memory: recycling.py) is swapped for a successor started
ahead of time, and a reload swaps in new workers before the old ones drain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from interpserve import events as ev
from interpserve.backoff import CrashLoop
from interpserve.config import Config
from interpserve.errors import NoWorkerYet, StartupError, WorkerGone
from interpserve.pool.channel import WorkerChannel
from interpserve.pool.handle import (
    DRAINED_AT_STOP,
    IN_ROTATION,
    SETTLED,
    WorkerHandle,
    WorkerStage,
)
from interpserve.pool.interpreter_worker import InterpreterWorker
from interpserve.pool.process_worker import ProcessWorker
from interpserve.pool.recycling import Ending, Tenure
from interpserve.tasks import BackgroundTasks

logger = logging.getLogger("interpserve.error")

WORKER_KINDS: dict[str, Callable[[int, str], WorkerHandle]] = {
    "interpreter": InterpreterWorker,
    "process": ProcessWorker,
}

# How long a worker's event loop may take to answer a ping after one of its requests timed out
# before it counts as stuck (in CPU-bound code that never yields).
STUCK_AFTER = 1.0
# What the apps' tasks get to finish once they are cancelled at the graceful shutdown's
# deadline (their `finally` blocks, lifespan shutdown), before a worker is given up.
STOP_GRACE = 1.0
# How often --limit-max-memory looks at each worker's memory.
MEMORY_CHECK = 5.0
# How long a worker may take to say how much memory it holds.
MEMORY_REPORT_TIMEOUT = 1.0
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
        # Every worker from its start until it is closed, and its stage: stop() and abort()
        # must not forget one (a retire that was cancelled, a successor waiting, a stuck one).
        self._stages: dict[WorkerHandle, WorkerStage] = {}
        self.workers: list[WorkerHandle] = []  # those in rotation (IN_ROTATION), in order
        self._tasks = BackgroundTasks()
        self._stopping = False
        # Held while workers start and join or leave the rotation (reload, recycle, replace,
        # SIGTTIN/SIGTTOU): one change at a time, each starting from what the last one left.
        self._changing = asyncio.Lock()
        self._reload_waiting = False  # a reload waits for the lock: more SIGHUPs join it
        self._tenures: dict[WorkerHandle, Tenure] = {}  # of those in rotation
        # How long starting a worker takes, as last measured: successors start this early.
        self._start_seconds = 0.0
        # Called after an interpreter worker is destroyed (see ServingProcess._check_leftovers).
        self.on_interpreter_destroyed: Callable[[], None] | None = None
        # Workers in rotation whose stuck check is under way (see request_timed_out): a check
        # of its own, beside the stage (a worker may be checked while it is recycling).
        self._checking: set[WorkerChannel] = set()
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

    @property
    def settled(self) -> bool:
        """No worker starting, waiting to take over, retiring or lost (SETTLED)."""
        return all(stage in SETTLED for stage in self._stages.values())

    def worker_pids(self) -> list[int]:
        """The processes of the process workers in rotation."""
        return [pid for worker in self.workers if (pid := worker.pid) is not None]

    # Start and dispatch

    async def start(self) -> None:
        """Start every worker at once; return when all are ready, or raise StartupError."""
        workers = await self._start_workers(self.target)
        for worker in workers:
            self._activate(worker)
        if self._config.limit_max_memory is not None:
            self._tasks.spawn(self._watch_memory(self._config.limit_max_memory * 1024 * 1024))

    def choose(self) -> WorkerChannel:
        """The worker with the fewest requests in flight: a slow request on one worker never
        holds up requests that another worker could serve now. WorkerGone if there is none, or
        if --limit-concurrency requests are in flight already; NoWorkerYet if there is none
        now but the pool is not stopping (one is starting, or will be: when_worker_ready)."""
        limit = self._config.limit_concurrency
        if limit is not None and self.in_flight >= limit:
            raise WorkerGone("--limit-concurrency reached")
        best: WorkerHandle | None = None
        best_load = 0
        for worker in self.workers:
            channel = worker.channel
            if not channel.accepting:
                continue  # gone, or going: until the pool notices, it must get nothing
            limit = channel.request_limit
            if limit is not None and channel.requests_taken >= limit:
                continue  # it has taken its last request: its successor takes over
            load = channel.outstanding
            if best is None or load < best_load:
                best, best_load = worker, load
                if not load:
                    break
        if best is None:
            if self._stopping:
                raise WorkerGone("no worker is running")
            raise NoWorkerYet("no worker is running yet")
        if best.channel.request_limit is not None:
            self._count_request(best)
        return best.channel

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
        while not self._stopping and not any(map(_takes_requests, self.workers)):
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
                self._deactivate(worker, WorkerStage.RETIRING)
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
            self._deactivate(worker, WorkerStage.RETIRING)
        await self._retire(worker)
        logger.info("Removed a worker: %d serving.", len(self.workers))

    def begin_stop(self) -> None:
        """The server is shutting down: start no more workers, and let the requests waiting
        for one have their 503 now; the workers in rotation serve on until stop(), past their
        request limits too (no successor will come to take what still arrives)."""
        self._stopping = True
        for worker in self.workers:
            worker.channel.request_limit = None
        self._wake_waiting()

    async def stop(self, timeout: float | None) -> bool:
        """Drain and stop every worker (lifespan shutdown included) within `timeout`, then
        cancel what the apps still run and give them STOP_GRACE. False if one could not be
        stopped: an interpreter stuck in code that never returns."""
        self.begin_stop()
        await self._tasks.cancel_all()
        # Those in rotation, those a cancelled reload or recycle was draining, and successors
        # that were waiting to take over.
        retiring = self._in(DRAINED_AT_STOP)
        await asyncio.gather(*(self._retire(worker, timeout) for worker in retiring))
        busy = [worker for worker in self._in({WorkerStage.ABANDONED}) if worker.running]
        for worker in busy:
            logger.warning(
                "Worker %d is still busy at exit (stuck, or starting).", worker.worker_id
            )
        return not busy

    def cancel_requests(self) -> None:
        """The graceful shutdown's deadline: every app task still running is cancelled (it
        sees CancelledError, its `finally` runs)."""
        for worker in self._in(DRAINED_AT_STOP):
            worker.channel.send(ev.CancelAll())

    def abort(self) -> None:
        """The server exits at once (a second Ctrl+C): kill every worker process, so that none
        outlives it. (Interpreters end with the process.)"""
        for worker in list(self._stages):
            if worker.kind == "process":
                worker.terminate()

    # Internals

    def _in(self, stages: frozenset[WorkerStage] | set[WorkerStage]) -> list[WorkerHandle]:
        return [worker for worker, stage in self._stages.items() if stage in stages]

    async def _start_workers(self, count: int) -> list[WorkerHandle]:
        """Start `count` new workers side by side; all ready, or StartupError (none left)."""
        workers = []
        for _ in range(count):
            self._last_id += 1
            settings = self._config.worker_settings(self._last_id)
            workers.append(self._make_worker(self._last_id, settings))
        for worker in workers:
            self._stages[worker] = WorkerStage.STARTING
        timeout = self._config.timeout_worker_start
        started_at = asyncio.get_running_loop().time()
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
                self._stages[worker] = WorkerStage.ABANDONED
            raise
        self._start_seconds = asyncio.get_running_loop().time() - started_at
        failures = [result for result in results if isinstance(result, ev.WorkerFailed)]
        if failures:
            # The first reason is the one to show: usually they are all the same.
            failure = next((f for f in failures if f.incompatible_module), failures[0])
            for worker in workers:
                worker.channel.shutdown()
            await asyncio.gather(*(worker.wait_stopped(5.0) for worker in workers))
            for worker in workers:
                self._close(worker, destroy=not failure.incompatible_module)
            raise StartupError(failure.message, failure.incompatible_module)
        return workers

    def _activate(self, worker: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        self._tenures[worker] = tenure = Tenure(self._config, loop.time())
        worker.channel.request_limit = tenure.request_limit
        worker.channel.pipe_backlog = self.pipe_backlog
        if (start_at := tenure.successor_starts_at(self._start_seconds)) is not None:
            assert tenure.ends_at is not None
            tenure.timers = [
                loop.call_at(start_at, self._start_recycle, worker),
                loop.call_at(tenure.ends_at, tenure.end, Ending.LIFETIME),
            ]
        self._stages[worker] = WorkerStage.SERVING
        self.workers.append(worker)
        self._tasks.spawn(self._watch(worker))
        self._wake_waiting()

    def _deactivate(self, worker: WorkerHandle, stage: WorkerStage) -> bool:
        """Take a worker out of rotation, into `stage`; False if it was not in rotation."""
        if self._stages.get(worker) not in IN_ROTATION:
            return False
        self._stages[worker] = stage
        self.workers.remove(worker)
        self._tenures.pop(worker).end(Ending.LEFT)
        return True

    def _count_request(self, worker: WorkerHandle) -> None:
        """A request is about to be sent to a worker with a request limit: its successor
        starts early enough to be ready when the worker has taken its last one."""
        taken = worker.channel.requests_taken + 1
        tenure = self._tenures[worker]
        assert tenure.request_limit is not None
        if taken >= tenure.request_limit:
            tenure.end(Ending.REQUESTS)
            self._start_recycle(worker)
        elif self._stages[worker] is WorkerStage.SERVING:
            now = asyncio.get_running_loop().time()
            if tenure.successor_due(taken, now, self._start_seconds):
                self._start_recycle(worker)

    async def _watch(self, worker: WorkerHandle) -> None:
        """Replace a worker that leaves while in rotation: it crashed or was killed. The
        replacement starts at once, while the old one may still be exiting."""
        loop = asyncio.get_running_loop()
        ready_at = loop.time()
        await worker.channel.lost.wait()
        if self._stopping or not self._deactivate(worker, WorkerStage.LOST):
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
        self._close(worker)

    async def _replace(self, worker: WorkerHandle, delay: float) -> None:
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

    def _start_recycle(self, worker: WorkerHandle) -> None:
        """Start a worker's successor, once: each recycle starts a worker."""
        if self._stages.get(worker) is WorkerStage.SERVING and not self._stopping:
            self._stages[worker] = WorkerStage.RECYCLING
            self._tasks.spawn(self._recycle(worker))

    async def _recycle(self, worker: WorkerHandle) -> None:
        """Start a successor while the worker serves on, and swap them when its tenure ends:
        no gap in the rotation, and no request past the worker's limit. Successors start side
        by side (not one change at a time): workers that reach their limits together are
        replaced together."""
        tenure = self._tenures[worker]
        try:
            try:
                (successor,) = await self._start_workers(1)
            except StartupError as exc:
                logger.error("Could not recycle worker %d: %s", worker.worker_id, exc)
                worker.channel.request_limit = None  # it serves on: better than nobody
                return
            self._stages[successor] = WorkerStage.SPARE
            ending = await tenure.ended
            async with self._changing:
                if self._stopping or (ending is Ending.LEFT and len(self.workers) >= self.target):
                    # The server is stopping, or another took the place it would have taken.
                    self._tasks.spawn(self._retire(successor))
                    return
                if ending is Ending.LEFT:
                    self._activate(successor)
                    logger.info(
                        "Worker %d replaces worker %d.", successor.worker_id, worker.worker_id
                    )
                    return
                self._deactivate(worker, WorkerStage.RETIRING)
                self._activate(successor)
            logger.info(
                "Recycling worker %d after %d requests (%s; worker %d takes over).",
                worker.worker_id,
                worker.channel.requests_taken,
                ending.value,
                successor.worker_id,
            )
            self.restarts += 1
            await self._retire(worker)
        finally:
            if self._stages.get(worker) is WorkerStage.RECYCLING:
                self._stages[worker] = (
                    WorkerStage.SERVING
                )  # no successor came: it may recycle again

    async def _watch_memory(self, limit: int) -> None:
        """--limit-max-memory: every MEMORY_CHECK seconds, a worker over the limit is recycled
        (its successor takes over as soon as it is ready)."""
        while True:
            await asyncio.sleep(MEMORY_CHECK)
            for worker in list(self.workers):
                tenure = self._tenures.get(worker)
                if tenure is None or tenure.ended.done():
                    continue
                held = await worker.memory(MEMORY_REPORT_TIMEOUT)
                if held is not None and held > limit and worker in self.workers:
                    logger.info(
                        "Worker %d holds %.0f MiB (--limit-max-memory %d).",
                        worker.worker_id,
                        held / (1024 * 1024),
                        self._config.limit_max_memory,
                    )
                    tenure.end(Ending.MEMORY)
                    self._start_recycle(worker)

    async def _retire(self, worker: WorkerHandle, timeout: float | None = None) -> None:
        """Out of rotation, then finish its requests, run lifespan shutdown, and stop. If this
        is cancelled (the server stops meanwhile), stop() finishes it (it is RETIRING still)."""
        self._deactivate(worker, WorkerStage.RETIRING)
        self._stages[worker] = WorkerStage.RETIRING
        worker.channel.shutdown()
        timeout = self._config.timeout_graceful_shutdown if timeout is None else timeout
        stopped = await worker.wait_stopped(timeout)
        if not stopped:
            # Its apps' tasks see CancelledError, and get a moment for their `finally` blocks
            # (and then lifespan shutdown).
            worker.channel.send(ev.CancelAll())
            stopped = await worker.wait_stopped(STOP_GRACE)
        if stopped:
            self._close(worker)
        else:
            logger.warning("Worker %d did not stop within %s s.", worker.worker_id, timeout)
            self._give_up(worker)

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
            stuck_still_running = sum(1 for w in self._in({WorkerStage.ABANDONED}) if w.running)
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
            if not self._deactivate(worker, WorkerStage.ABANDONED):
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

    def _close(self, worker: WorkerHandle, *, destroy: bool = True) -> None:
        """Release a worker that has stopped: the pool forgets it."""
        self._stages.pop(worker, None)
        if worker.close(destroy=destroy) and self.on_interpreter_destroyed is not None:
            self.on_interpreter_destroyed()

    def _give_up(self, worker: WorkerHandle) -> None:
        """Stop a worker that does not stop when asked: a process is killed; an interpreter
        cannot be, so it is disconnected and destroyed once its code returns, if ever."""
        worker.terminate()
        self._stages[worker] = WorkerStage.ABANDONED
        self._tasks.spawn(self._reap(worker))

    async def _reap(self, worker: WorkerHandle) -> None:
        await worker.wait_stopped(None)
        self._close(worker)
        logger.info("Worker %d finally stopped and was cleaned up.", worker.worker_id)


def _takes_requests(worker: WorkerHandle) -> bool:
    """In rotation and able to take a request now: not going, not at its request limit."""
    channel = worker.channel
    limit = channel.request_limit
    return channel.accepting and (limit is None or channel.requests_taken < limit)
