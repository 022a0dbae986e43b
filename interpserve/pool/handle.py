"""The pool's end of a worker: what both kinds (interpreter_worker.py, process_worker.py)
provide, and the stage of its life the pool has it in. (What runs inside a worker is
worker/main.py's Worker.)"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from interpserve.pool.channel import WorkerChannel


class WorkerHandle(Protocol):
    @property
    def kind(self) -> str:
        """ "interpreter" or "process"."""
        ...

    @property
    def worker_id(self) -> int: ...

    @property
    def channel(self) -> WorkerChannel:
        """Its pipes: requests out, responses and its own reports back."""
        ...

    @property
    def running(self) -> bool:
        """Its code still runs (an interpreter's thread, a process)."""
        ...

    @property
    def pid(self) -> int | None:
        """Its own process, if it has one (a process worker), while it runs; None for an
        interpreter, whose memory is the serving process's."""
        ...

    async def start(self) -> None:
        """Start it and connect its channel; the channel says when it is ready."""
        ...

    async def wait_stopped(self, timeout: float | None) -> bool:
        """Whether it stopped within `timeout` (None: however long it takes)."""
        ...

    def terminate(self) -> None:
        """Stop it without its consent: a process is killed, an interpreter disconnected."""
        ...

    async def memory(self, timeout: float) -> int | None:
        """The bytes it holds, or None if it cannot say within `timeout`."""
        ...

    def close(self, *, destroy: bool = True) -> bool:
        """Release what the pool holds of it; whether an interpreter was destroyed."""
        ...


class WorkerStage(Enum):
    """Where a worker is in the pool, from its start until it is closed (then the pool
    forgets it). Every live worker is in exactly one stage."""

    STARTING = "starting"  # started, not ready yet (or ready, in the instant before it is placed)
    SERVING = "serving"  # in rotation: it takes requests
    RECYCLING = "recycling"  # in rotation, and its successor is starting or waiting (a spare)
    SPARE = "spare"  # a successor, ready, waiting for its predecessor's tenure to end
    RETIRING = "retiring"  # out of rotation: finishing its requests, then lifespan shutdown
    LOST = "lost"  # left on its own (crashed, killed) while serving: being cleaned up
    ABANDONED = "abandoned"  # did not stop when asked: disconnected, closed once its code returns


IN_ROTATION = frozenset({WorkerStage.SERVING, WorkerStage.RECYCLING})
# Nothing on its way in or out: a pool whose workers are all in these holds what they hold and
# nothing passing (a starting successor, a retiring predecessor).
SETTLED = frozenset({WorkerStage.SERVING, WorkerStage.ABANDONED})
# Those a shutdown drains (stop) and whose apps' tasks it cancels (cancel_requests).
DRAINED_AT_STOP = frozenset(
    {WorkerStage.SERVING, WorkerStage.RECYCLING, WorkerStage.SPARE, WorkerStage.RETIRING}
)
