"""A worker's CPU time per request, without the rest of the server.

    python -m bench.worker_cpu [--requests N] [--batch K] [--rounds R]

Run it from the repository root: the worker imports bench.apps from there. It starts one
process worker (`python -m interpserve.worker`, the same code an interpreter worker runs)
serving `bench.apps:app`, writes plaintext requests to its request pipe K at a time, as the
front end batches them, and waits for each batch's responses. It reports the worker's CPU time
(user and system, from /proc) per request, for each of R rounds. The front end, the client
sockets and the load generator are left out, so a change to the worker's side of a request
(the wire decode, the ASGI adapter, the encode, the pipe writes) shows on its own: on a noisy
machine, compare the best rounds of runs that alternate between two checkouts.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

from bench.procs import cpu_seconds
from bench.settings import parse_rounds
from interpserve import events as ev
from interpserve import wire
from interpserve.config import Config
from interpserve.pipes import open_pipe
from interpserve.pool.process_worker import spawn


def _request(request_id: int) -> bytes:
    """The request wrk sends for `GET /`, as the front end hands it to a worker."""
    return wire.encode(
        ev.Request(
            request_id,
            "GET",
            "http",
            "1.1",
            b"/",
            b"",
            ((b"host", b"127.0.0.1:8000"),),
            ("127.0.0.1", 40000),
            ("127.0.0.1", 8000),
            False,
            False,
        )
    )


class WorkerUnderTest:
    """One process worker on a pair of pipes, driven the way the front end drives it."""

    def __init__(self) -> None:
        # The pipes and the start of a process worker, as the front end makes them.
        to_worker, self._to_worker = open_pipe()
        self._from_worker, from_worker = open_pipe()
        try:
            self.process = spawn(
                Config(app="bench.apps:app").worker_settings(0), to_worker, from_worker
            )
        finally:
            os.close(to_worker)
            os.close(from_worker)
        self._decoder = wire.FrameDecoder()
        self._next_id = 0
        self._wait_for(lambda event: isinstance(event, ev.WorkerReady | ev.WorkerFailed), 1)

    def _wait_for(self, counts: Callable[[ev.Event], bool], wanted: int) -> None:
        """Read events until `wanted` of them satisfy `counts`."""
        seen = 0
        while seen < wanted:
            data = os.read(self._from_worker, 65536)
            if not data:
                raise RuntimeError("the worker closed its pipe")
            for event in self._decoder.feed(data):
                if isinstance(event, ev.WorkerFailed):
                    raise RuntimeError(f"the worker failed: {event.message}")
                seen += counts(event)

    def serve(self, requests: int, batch: int) -> None:
        """`requests` requests, `batch` at a time: each batch written in one write, and its
        responses all read before the next."""
        for _ in range(requests // batch):
            first = self._next_id + 1
            self._next_id += batch
            os.write(self._to_worker, b"".join(map(_request, range(first, first + batch))))
            self._wait_for(_request_done, batch)

    def close(self) -> None:
        os.close(self._to_worker)  # the worker sees its pipe close, and stops
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._from_worker)


def _request_done(event: ev.Event) -> bool:
    """The event that ends a request: a whole response from a returned app, or the return."""
    if isinstance(event, ev.ResponseStart):
        return event.finished
    return isinstance(event, ev.RequestFinished)


def main(argv: list[str] | None = None) -> None:
    description = __doc__.split("\n\n")[0]
    args = parse_rounds(description, argv, requests=60_000, batch=16, rounds=3, per="a write")
    # The worker inherits it: /cpu is not served here, and bench.apps need not calibrate it.
    os.environ.setdefault("BENCH_CPU_LOOPS", "1000")
    worker = WorkerUnderTest()
    try:
        worker.serve(min(args.requests, 3200), args.batch)  # warm-up
        for round_ in range(1, args.rounds + 1):
            cpu, wall = cpu_seconds(worker.process.pid), time.perf_counter()
            worker.serve(args.requests, args.batch)
            cpu = cpu_seconds(worker.process.pid) - cpu
            wall = time.perf_counter() - wall
            done = args.requests // args.batch * args.batch
            print(
                f"round {round_}: worker CPU {cpu / done * 1e6:.2f} us a request "
                f"(wall {wall / done * 1e6:.2f} us), {done} requests in batches of {args.batch}"
            )
    finally:
        worker.close()


if __name__ == "__main__":
    main()
