"""One load generator process: keep-alive HTTP/1.1 connections on one event loop, spawned by
interpserve.bench.client, which starts several when the load needs them and merges what they
measure.

Closed loop (like wrk): each connection sends its next request as soon as the previous
response is complete, and latency runs from sending to the complete response. Its process runs
under SCHED_BATCH where there is one, so that a response waking it does not preempt the server.

Open loop (like wrk2): requests are due on a schedule, whatever the server does. A due request
goes out on an idle connection, or on a new one up to the connection limit, or waits in a queue
for the first connection to come free; its latency runs from when it was *due*, so time spent
waiting for a slow server is counted (no coordinated omission). The schedule is kept with a
timerfd where the platform has one (microsecond wake-ups; the event loop's own timers have
millisecond steps), and a request dispatched later than LATE_AFTER past its due time is counted
as late: the generator, not the server, fell behind. Asked to (--realtime), and where it is
allowed, an open-loop process also takes a real-time scheduling policy, so that a due request
waits for no ordinary process (docs/bench.md has what that changes, and why it is not the
default), and gives it back if it ever needs most of a core.

A failed request is counted by kind and its connection replaced, so a server that goes away
mid-run shows up as errors, not as a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import itertools
import os
import resource
import signal
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, cast

from interpserve.bench import histogram
from interpserve.bench.http1 import ResponseParser, whole_response
from interpserve.bench.load import Load, share
from interpserve.bench.schedule import due_times
from interpserve.errors import BadResponse

if TYPE_CHECKING:
    pass

# After a failed connect, wait this long before the next attempt, so a server that is down
# is counted at a bounded rate instead of spinning the generator.
RECONNECT_DELAY = 0.05
TICK_INTERVAL = 0.25
# A request dispatched this long after it was due counts as late (the generator's fault).
LATE_AFTER = 0.002
# An open loop's generator processes' scheduling priority (nice), where the user may raise it.
GENERATOR_NICE = -10
# Open loop: the real-time priority (SCHED_FIFO) taken where allowed, the lowest: above every
# ordinary process, below the kernel's own real-time threads.
REALTIME_PRIORITY = 1
# A real-time process using more of a core than this (over a tick) goes back to the ordinary
# policy: it no longer waits for wake-ups, and it must not starve the server of a core.
REALTIME_CPU_LIMIT = 0.8
# At most this many due requests go out per wake-up before the loop reads what has arrived (a
# generator behind its schedule would otherwise never read, nor tick).
DISPATCH_BATCH = 64


class Phase(enum.Enum):
    WARMUP = "warmup"
    MEASURE = "measure"
    DRAIN = "drain"  # open loop: the schedule is over, the last answers are awaited


@dataclass(frozen=True)
class Share:
    """What one generator process does, picklable."""

    index: int
    host: str
    port: int
    # The request bytes of each path, built once, and the order in which paths are sent.
    requests: tuple[bytes, ...]
    cycle: tuple[int, ...]
    no_body: bool
    load: Load


@dataclass(frozen=True)
class Ready:
    index: int


@dataclass(frozen=True)
class Tick:
    """What one process measured since its previous tick (measured requests only)."""

    index: int
    phase: Phase
    # Seconds since the measurement started (negative during the warm-up).
    elapsed: float
    # Per path, the encoded histogram of successful latencies (None: no success).
    histograms: tuple[bytes | None, ...]
    errors: dict[str, int]
    # Per path, failed requests.
    path_errors: tuple[int, ...]


@dataclass(frozen=True)
class Finished:
    """One process's account of the whole run."""

    index: int
    # Wall time of the measurement and the CPU time (user + system) used during it.
    elapsed: float
    cpu_seconds: float
    # Measured requests: due (open loop) and actually written before the window ended.
    due: int
    sent_in_window: int
    # Open loop: dispatched later than LATE_AFTER, waited for a free connection at the limit.
    late: int
    waited: int
    max_lag: float
    connections_opened: int
    peak_connections: int
    # Whether the process ran under the real-time policy throughout the run.
    realtime: bool


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if exc.errno is not None and exc.errno in errno.errorcode:
        return exc.strerror or errno.errorcode[exc.errno]
    return str(exc) or type(exc).__name__


def generate(spec: Share, report: Connection) -> None:
    """The process: say Ready, wait for the start time (a time.monotonic() value, the same
    clock in every process), run, send Ticks, then Finished (or one line saying why not)."""
    # Ctrl-C reaches the whole process group; the parent decides when this process ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.load.open_loop:
        realtime = _raise_priority(spec.load)
    else:
        realtime = False
        _take_batch_policy()
    from interpserve.serving import loop_factory

    try:
        report.send(Ready(spec.index))
        start = report.recv()
        run = (
            _OpenLoop(spec, report, start, realtime)
            if spec.load.open_loop
            else _ClosedLoop(spec, report, start, realtime)
        )
        with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
            report.send(runner.run(run.run()))
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone
    except Exception as exc:
        report.send(f"{type(exc).__name__}: {exc}")
    finally:
        report.close()


def _raise_priority(load: Load) -> bool:
    """An open loop's process ahead of the server for a core, where that is allowed: on a
    machine whose cores the server (or anything else) keeps busy, a request due would otherwise
    wait for the scheduler, as a client on another machine never does. The generator's own CPU
    use is small, so the server loses little. nice is not enough: the scheduler still lets a
    waking process wait milliseconds for a busy core, and where sessions are grouped
    (autogroup) nice ranks only the processes of one session; `load.realtime` takes the
    real-time policy too. A closed loop keeps no schedule (_take_batch_policy). Whether it runs
    real-time."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, GENERATOR_NICE)
    realtime = load.realtime
    if not realtime or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except OSError:
        return False  # not root, no CAP_SYS_NICE, no RLIMIT_RTPRIO
    return True


def _take_batch_policy() -> None:
    """A closed loop's process under SCHED_BATCH, where there is one (any user may take it): its
    fair share of the CPU, but a response that wakes it does not preempt the process running,
    the server. It keeps no schedule, so it loses nothing by waiting for the core; woken ahead
    of the server, it would take one response per wake-up and cost the server a context switch
    for each, instead of taking several (docs/bench.md has the figures)."""
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


class _Run:
    """What both loops share: the clock of the run, the connections, the counts, the ticks."""

    def __init__(self, spec: Share, report: Connection, start: float, realtime: bool) -> None:
        self.spec = spec
        self.realtime = realtime
        self.load = spec.load
        self.report = report
        self.start = start
        self.measure_from = start + self.load.warmup
        # Per path, the latencies (seconds) of successful requests since the last tick.
        self.latencies: list[list[float]] = [[] for _ in spec.requests]
        self.errors: Counter[str] = Counter()
        self.path_errors = [0] * len(spec.requests)
        self.connections: set[_Connection] = set()
        self.stopping = False
        self.phase = Phase.WARMUP if self.load.warmup > 0 else Phase.MEASURE
        self.due = 0
        self.sent_in_window = 0
        self.late = 0
        self.waited = 0
        self.max_lag = 0.0
        self.opened = 0
        self.peak = 0
        # Requests sent or queued and not yet answered or failed; `settled` is set when that
        # falls to 0 while the run waits for its last answers.
        self.outstanding = 0
        self.draining = False
        self.settled = asyncio.Event()
        # Each process starts at its own place in the cycle, so together they carry the mix.
        at = spec.index * len(spec.cycle) // max(self.load.generators, 1)
        self.next_path = itertools.cycle(spec.cycle[at:] + spec.cycle[:at]).__next__

    async def run(self) -> Finished:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.start - time.monotonic()))
        helpers = [loop.create_task(self._watch_timeouts()), loop.create_task(self._tick())]
        try:
            await self.drive()
        finally:
            self.stop()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        self.send_tick()
        return self.finished()

    async def drive(self) -> None:
        raise NotImplementedError

    def begin_measuring(self) -> None:
        """Called when the warm-up ends (or at once): the CPU count starts here."""
        self.phase = Phase.MEASURE
        self.usage = resource.getrusage(resource.RUSAGE_SELF)
        self.measured_at = time.monotonic()

    def end_measuring(self) -> None:
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = (after.ru_utime - self.usage.ru_utime) + (after.ru_stime - self.usage.ru_stime)
        self.elapsed = time.monotonic() - self.measured_at

    def finished(self) -> Finished:
        return Finished(
            index=self.spec.index,
            elapsed=self.elapsed,
            cpu_seconds=self.cpu,
            due=self.due,
            sent_in_window=self.sent_in_window,
            late=self.late,
            waited=self.waited,
            max_lag=self.max_lag,
            connections_opened=self.opened,
            peak_connections=self.peak,
            realtime=self.realtime,
        )

    def connect(self, on_made: Callable[[_Connection], None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._connect(on_made))

    async def _connect(self, on_made: Callable[[_Connection], None]) -> None:
        loop = asyncio.get_running_loop()
        spec = self.spec
        while not self.stopping:
            try:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Connection(self, spec.no_body), spec.host, spec.port
                    ),
                    self.load.timeout,
                )
            except (OSError, TimeoutError) as exc:
                if self.stopping:
                    return
                timed_out = isinstance(exc, TimeoutError)
                self.connect_failed("connect timeout" if timed_out else describe_os_error(exc))
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            self.opened += 1
            self.connections.add(connection)
            self.peak = max(self.peak, len(self.connections))
            on_made(connection)
            return

    def connect_failed(self, kind: str) -> None:
        raise NotImplementedError

    def completed(self, connection: _Connection, status: int, now: float, keep_alive: bool) -> None:
        """A response is complete: record it, then give the connection its next request (unless
        the response closes it). Once per request: kept to the fewest calls."""
        latency = now - connection.started
        connection.started = 0.0
        if connection.measured:
            if status >= 400:
                self.count_error(f"HTTP {status}", connection.path)
            else:
                self.latencies[connection.path].append(latency)
        if keep_alive and not self.stopping:
            self.next_request(connection)
        else:
            connection.close()
        self.outstanding -= 1
        if not self.outstanding and self.draining:
            self.settled.set()

    def answered(self, connection: _Connection, status: int) -> None:
        """The read was one whole response, and the connection stays open."""
        self.completed(connection, status, time.monotonic(), True)

    def next_request(self, connection: _Connection) -> None:
        raise NotImplementedError

    def failed(self, connection: _Connection, kind: str) -> None:
        """The request in flight on `connection` failed; the connection is gone."""
        if connection.measured:
            self.count_error(kind, connection.path)
        connection.started = 0.0
        self.done_one()

    async def drain(self) -> None:
        """Wait for every request sent or queued to be answered or to fail (the timeout
        watcher bounds the wait)."""
        self.phase = Phase.DRAIN
        self.draining = True
        if self.outstanding:
            await self.settled.wait()

    def done_one(self) -> None:
        self.outstanding -= 1
        if not self.outstanding and self.draining:
            self.settled.set()

    def lost(self, connection: _Connection) -> None:
        self.connections.discard(connection)

    def count_error(self, kind: str, path: int) -> None:
        self.errors[kind] += 1
        self.path_errors[path] += 1

    def stop(self) -> None:
        """End the run now: requests still in flight are dropped, uncounted."""
        self.stopping = True
        for connection in list(self.connections):
            connection.abandon()

    async def _watch_timeouts(self) -> None:
        """Checked a few times a second rather than with a timer per request, which would cost
        more than the request itself for a fast endpoint."""
        interval = min(self.load.timeout / 4, TICK_INTERVAL)
        while True:
            await asyncio.sleep(interval)
            self.expire(time.monotonic() - self.load.timeout)

    def expire(self, deadline: float) -> None:
        for connection in list(self.connections):
            if connection.started and connection.started < deadline:
                connection.fail("timeout")

    async def _tick(self) -> None:
        cpu, at = time.process_time(), time.monotonic()
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            self.send_tick()
            last_cpu, last_at = cpu, at
            cpu, at = time.process_time(), time.monotonic()
            if self.realtime and cpu - last_cpu > REALTIME_CPU_LIMIT * (at - last_at):
                self.realtime = False
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    def send_tick(self) -> None:
        encoded = tuple(
            histogram.encode(histogram.recorded(values)) if values else None
            for values in self.latencies
        )
        self.latencies = [[] for _ in self.latencies]
        self.report.send(
            Tick(
                self.spec.index,
                self.phase,
                time.monotonic() - self.measure_from,
                encoded,
                dict(self.errors),
                tuple(self.path_errors),
            )
        )
        self.errors.clear()
        self.path_errors = [0] * len(self.path_errors)


class _ClosedLoop(_Run):
    """`connections` connections, each with one request in flight. Warm-up and measurement
    share them: a request sent during the warm-up is not counted even if it completes after.
    At the end of a --duration run, requests still in flight are dropped, as wrk does."""

    def __init__(self, spec: Share, report: Connection, start: float, realtime: bool) -> None:
        super().__init__(spec, report, start, realtime)
        # Measured requests still to send (None: no limit, the duration ends the run).
        self.budget = (
            None
            if self.load.requests is None
            else share(self.load.requests, self.load.generators, spec.index)
        )
        self.all_sent = asyncio.Event()
        # Whether a response may take the short way of `answered`: measuring, for a duration.
        self.steady = False

    async def drive(self) -> None:
        count = share(self.load.connections, self.load.generators, self.spec.index)
        connectors = [self.connect(self.next_request) for _ in range(count)]
        if self.load.warmup > 0:
            await asyncio.sleep(self.load.warmup)
        self.begin_measuring()
        try:
            if self.load.requests is None:
                await asyncio.sleep(cast(float, self.load.duration))
            else:
                await self.all_sent.wait()
                await self.drain()
        finally:
            self.end_measuring()
            for task in connectors:
                task.cancel()

    def begin_measuring(self) -> None:
        super().begin_measuring()
        self.steady = self.budget is None

    def stop(self) -> None:
        self.steady = False
        super().stop()

    def answered(self, connection: _Connection, status: int) -> None:
        """completed() and next_request() in fewer steps, for the request of every fast
        response (once per request: each Python call counts). The next request's latency
        starts at the reading that ended this one's, just before it is written."""
        if not (self.steady and connection.measured):
            super().answered(connection, status)
            return
        now = time.monotonic()
        if status < 400:
            self.latencies[connection.path].append(now - connection.started)
        else:
            self.count_error(f"HTTP {status}", connection.path)
        self.due += 1
        self.sent_in_window += 1
        path = self.next_path()
        connection.send(self.spec.requests[path], path, True, now)

    def take(self) -> bool | None:
        """Whether the next request is measured; None: no more requests."""
        if self.phase is Phase.WARMUP:
            return False
        if self.budget is None:
            return True
        if self.budget == 0:
            self.all_sent.set()
            return None
        self.budget -= 1
        return True

    def next_request(self, connection: _Connection) -> None:
        measured = self.take()
        if measured is None:
            connection.close()
            return
        if measured:
            self.due += 1
            self.sent_in_window += 1
        self.outstanding += 1
        connection.send(self.spec.requests[path := self.next_path()], path, measured, None)

    def lost(self, connection: _Connection) -> None:
        super().lost(connection)
        if not self.stopping and self.budget != 0:
            self.connect(self.next_request)  # keep the connection count

    def connect_failed(self, kind: str) -> None:
        if self.take():
            self.count_error(kind, self.next_path())
            self.due += 1


class _OpenLoop(_Run):
    def __init__(self, spec: Share, report: Connection, start: float, realtime: bool) -> None:
        super().__init__(spec, report, start, realtime)
        load = self.load
        self.window_end = self.measure_from + cast(float, load.window)
        self.limit = max(1, share(load.max_connections, load.generators, spec.index))
        self.idle: deque[_Connection] = deque()
        # Due requests without a connection: (due time, path, measured).
        self.queue: deque[tuple[float, int, bool]] = deque()
        self.connecting = 0

    def schedule(self) -> Iterator[float]:
        load = self.load
        rate = cast(float, load.rate)
        span = self.window_end - self.start
        times = due_times(load.arrival, rate, span, self.spec.index, load.generators)
        return (self.start + t for t in times)

    async def drive(self) -> None:
        if self.load.warmup <= 0:
            self.begin_measuring()
        await _keep_schedule(self.schedule(), self.dispatch)
        if self.phase is Phase.WARMUP:
            self.begin_measuring()  # a warm-up with nothing due after it
        await self.drain()
        self.end_measuring()

    def dispatch(self, due: float, now: float) -> None:
        if self.phase is Phase.WARMUP and due >= self.measure_from:
            self.begin_measuring()
        measured = due >= self.measure_from
        if measured:
            self.due += 1
            lag = now - due
            self.max_lag = max(self.max_lag, lag)
            if lag > LATE_AFTER:
                self.late += 1
        self.outstanding += 1
        path = self.next_path()
        if self.idle:
            self._send(self.idle.popleft(), due, path, measured)
            return
        self.queue.append((due, path, measured))
        if len(self.connections) + self.connecting < self.limit:
            self._open()
        elif measured:
            self.waited += 1

    def _open(self) -> None:
        self.connecting += 1
        self.connect(self._made)

    def _made(self, connection: _Connection) -> None:
        self.connecting -= 1
        self.next_request(connection)

    def _send(self, connection: _Connection, due: float, path: int, measured: bool) -> None:
        if measured and time.monotonic() < self.window_end:
            self.sent_in_window += 1
        connection.send(self.spec.requests[path], path, measured, due)

    def next_request(self, connection: _Connection) -> None:
        if self.queue:
            due, path, measured = self.queue.popleft()
            self._send(connection, due, path, measured)
        else:
            self.idle.append(connection)

    def lost(self, connection: _Connection) -> None:
        super().lost(connection)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)
        if (
            self.queue
            and not self.stopping
            and len(self.connections) + self.connecting < self.limit
        ):
            self._open()  # the queue still needs a connection

    def connect_failed(self, kind: str) -> None:
        """A connection was being opened for the oldest queued request: that request fails."""
        if self.queue:
            _, path, measured = self.queue.popleft()
            if measured:
                self.count_error(kind, path)
            self.done_one()

    def expire(self, deadline: float) -> None:
        super().expire(deadline)
        while self.queue and self.queue[0][0] < deadline:
            _, path, measured = self.queue.popleft()
            if measured:
                self.count_error("timeout", path)
            self.done_one()


async def _keep_schedule(times: Iterator[float], dispatch: Callable[[float, float], None]) -> None:
    """Call dispatch(due, now) for each due time once it has come: all that have come at each
    wake-up, up to DISPATCH_BATCH, the rest once the loop has read what arrived. A timerfd
    wakes the loop to the microsecond; without one (not Linux), the loop's own timers do, to
    the millisecond."""
    due = next(times, None)
    if due is None:
        return
    loop = asyncio.get_running_loop()
    if not hasattr(os, "timerfd_create"):
        while due is not None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            while due is not None and due <= now:
                dispatch(due, now)
                due = next(times, None)
        return
    done = loop.create_future()
    fd = os.timerfd_create(time.CLOCK_MONOTONIC, flags=os.TFD_NONBLOCK | os.TFD_CLOEXEC)

    def wake() -> None:
        nonlocal due
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 8)
        now = time.monotonic()
        for _ in range(DISPATCH_BATCH):
            if due is None or due > now:
                break
            dispatch(due, now)
            due = next(times, None)
            now = time.monotonic()
        if due is None:
            if not done.done():
                done.set_result(None)
        else:
            os.timerfd_settime_ns(fd, flags=os.TFD_TIMER_ABSTIME, initial=int(due * 1e9))

    loop.add_reader(fd, wake)
    try:
        os.timerfd_settime_ns(fd, flags=os.TFD_TIMER_ABSTIME, initial=int(due * 1e9))
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at most."""

    def __init__(self, run: _Run, no_body: bool) -> None:
        self.run = run
        self.parser = ResponseParser(no_body=no_body)
        # Whether a read may be taken by whole_response: not for HEAD (its responses have a
        # Content-Length and no body), nor with part of a response in the parser.
        self.fast = not no_body
        self.whole_reads = self.fast
        self.transport: asyncio.Transport | None = None
        # When the latency of the request in flight started (sent, or due); 0.0: none is.
        self.started = 0.0
        self.path = 0
        self.measured = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, though they behave as one.
        self.transport = cast(asyncio.Transport, transport)
        if self.run.stopping:
            self.transport.abort()

    def send(self, request: bytes, path: int, measured: bool, start: float | None) -> None:
        """`start`: when its latency starts (by default now)."""
        assert self.transport is not None
        self.path, self.measured = path, measured
        self.started = time.monotonic() if start is None else start
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if not self.started:
            return  # the rest of a response already given up on (timed out)
        if self.whole_reads:
            status = whole_response(data)
            if status:
                self.run.answered(self, status)
                return
        try:
            statuses = self.parser.feed(data)
        except BadResponse:
            self.fail("invalid response")
            return
        self.whole_reads = self.fast and self.parser.idle
        if statuses:
            self.run.completed(self, statuses[-1], time.monotonic(), self.parser.keep_alive)

    def fail(self, kind: str) -> None:
        """Count the request in flight as failed and give up on this connection."""
        if self.started:
            self.run.failed(self, kind)
        assert self.transport is not None
        self.transport.abort()

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()

    def abandon(self) -> None:
        self.started = 0.0
        assert self.transport is not None
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.started:
            status = self.parser.feed_eof()
            if status is not None:
                self.run.completed(self, status, time.monotonic(), False)
            else:
                self.run.failed(self, "connection closed" if exc is None else "connection reset")
        self.run.lost(self)
