"""The load generator: keep-alive HTTP/1.1 connections on one event loop, in a process of its
own (spawned), so the tool does not compete with its own report for a GIL and its CPU use can
be measured apart from everything else.

Each connection is closed-loop, like wrk's: it sends the next request as soon as the previous
response is complete. A failed request is counted by kind and the connection is replaced, so a
server that goes away mid-run shows up as errors, not as a crash.
"""

from __future__ import annotations

import asyncio
import errno
import multiprocessing
import resource
import signal
import socket
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import cast

from interpserve.bench.http1 import ProtocolError, ResponseParser, build_request, parse_url
from interpserve.bench.stats import RunResult

# After a failed connect, wait this long before the next attempt, so a server that is down
# is counted at a bounded rate instead of spinning the generator.
RECONNECT_DELAY = 0.05
PROGRESS_INTERVAL = 0.2


class LoadError(Exception):
    """The run could not happen; the message is one line for the user."""


@dataclass(frozen=True)
class Load:
    """What to send and how hard, wherever it is sent."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    connections: int = 16
    # Run for `duration` seconds, or until `requests` requests have been answered or failed.
    duration: float | None = 5.0
    requests: int | None = None
    warmup: float = 0.0
    timeout: float = 30.0


@dataclass(frozen=True)
class Progress:
    phase: str  # "warmup" or "measure"
    elapsed: float
    successes: int
    errors: int


@dataclass(frozen=True)
class _Spec:
    """What the generator process needs, picklable."""

    host: str
    port: int
    request: bytes
    no_body: bool
    load: Load


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Raises LoadError if nothing accepts connections at the URL's host and port."""
    try:
        target = parse_url(url)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    try:
        socket.create_connection((target.host, target.port), timeout=timeout).close()
    except OSError as exc:
        raise LoadError(f"cannot connect to {url}: {_describe_os_error(exc)}") from None


def run_load(url: str, load: Load, on_progress: Callable[[Progress], None]) -> RunResult:
    """Drive `url` from a spawned generator process; `on_progress` is called a few times a
    second from this thread."""
    try:
        target = parse_url(url)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    spec = _Spec(
        target.host,
        target.port,
        build_request(load.method, target, load.headers, load.body),
        load.method == "HEAD",
        load,
    )
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=generate, args=(spec, sender), daemon=True)
    process.start()
    sender.close()
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                process.join(5)
                raise LoadError(
                    f"the load generator exited unexpectedly (exit code {process.exitcode})"
                ) from None
            if isinstance(message, Progress):
                on_progress(message)
            elif isinstance(message, RunResult):
                return message
            else:
                raise LoadError(f"the load generator failed: {message}")
    except BaseException:
        process.kill()  # Ctrl-C, or the run failed: the generator's numbers are not wanted
        raise
    finally:
        receiver.close()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


def generate(spec: _Spec, report: Connection) -> None:
    """The generator process: run, send Progress messages, then the RunResult (or one line
    describing why it could not)."""
    # Ctrl-C reaches the whole process group; the parent decides when this process ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from interpserve.supervisor import loop_factory

    try:
        with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
            report.send(runner.run(_Run(spec, report).run()))
    except Exception as exc:
        report.send(f"{type(exc).__name__}: {exc}")
    finally:
        report.close()


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if exc.errno is not None and exc.errno in errno.errorcode:
        return exc.strerror or errno.errorcode[exc.errno]
    return str(exc) or type(exc).__name__


# What `_Run.take` grants: nothing more, a warm-up request (not counted), a measured one.
_STOP, _WARMUP, _MEASURED = range(3)


class _Run:
    """The connections of one run, its counts, and when it ends.

    Warm-up and measurement share the connections: a request sent during warm-up is not
    counted even if it completes after, and the measurement starts on connections that are
    already open, with no abandoned requests still occupying the server.
    """

    def __init__(self, spec: _Spec, report: Connection) -> None:
        self.spec = spec
        self.load = spec.load
        self.report = report
        self.measuring = self.load.warmup <= 0
        self.latencies: array[float] = array("d")
        self.errors: Counter[str] = Counter()
        # Measured requests still to send (None: no limit, the duration ends the run).
        self.budget = self.load.requests
        self.stopping = False
        self.connections: set[_Connection] = set()
        self.started = 0.0

    def take(self) -> int:
        """May one more request be sent, and is it measured? Counts it against --requests."""
        if self.stopping:
            return _STOP
        if not self.measuring:
            return _WARMUP
        if self.budget is None:
            return _MEASURED
        if self.budget == 0:
            return _STOP
        self.budget -= 1
        return _MEASURED

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        self.started = time.perf_counter()
        drivers = [loop.create_task(self._drive()) for _ in range(self.load.connections)]
        helpers = [loop.create_task(self._watch_timeouts()), loop.create_task(self._progress())]
        try:
            if not self.measuring:
                await asyncio.sleep(self.load.warmup)
                self.measuring = True
                self.started = time.perf_counter()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            if self.load.duration is None:
                await asyncio.gather(*drivers)
            else:
                await asyncio.wait(drivers, timeout=self.load.duration)
            elapsed = time.perf_counter() - self.started
            after = resource.getrusage(resource.RUSAGE_SELF)
            self.stop()
        finally:
            for task in (*drivers, *helpers):
                task.cancel()
            await asyncio.gather(*drivers, *helpers, return_exceptions=True)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        return RunResult(self.latencies, dict(self.errors), elapsed, cpu)

    def stop(self) -> None:
        """End the run now: requests still in flight are dropped, uncounted, as wrk does."""
        self.stopping = True
        for connection in list(self.connections):
            connection.abandon()

    async def _drive(self) -> None:
        """One client connection after another, until the run ends."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        while (token := self.take()) != _STOP:
            try:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(lambda: _Connection(self, token), spec.host, spec.port),
                    self.load.timeout,
                )
            except (OSError, TimeoutError) as exc:
                if self.stopping:
                    return
                if token == _MEASURED:
                    timed_out = isinstance(exc, TimeoutError)
                    self.errors["connect timeout" if timed_out else _describe_os_error(exc)] += 1
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            await connection.closed

    async def _watch_timeouts(self) -> None:
        """Checked a few times a second rather than with a timer per request, which would cost
        more than the request itself for a fast endpoint."""
        interval = min(self.load.timeout / 4, 0.25)
        while True:
            await asyncio.sleep(interval)
            now = time.perf_counter()
            for connection in list(self.connections):
                if connection.sent_at and now - connection.sent_at > self.load.timeout:
                    connection.fail("timeout")

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            self.report.send(
                Progress(
                    "measure" if self.measuring else "warmup",
                    time.perf_counter() - self.started,
                    len(self.latencies),
                    self.errors.total(),
                )
            )


class _Connection(asyncio.Protocol):
    """One keep-alive connection. Its first request is sent as soon as it connects, on the
    token the driver took for it."""

    def __init__(self, run: _Run, token: int) -> None:
        self.run = run
        self.token = token
        self.parser = ResponseParser(no_body=run.spec.no_body)
        self.transport: asyncio.Transport | None = None
        # When the request in flight was sent; 0.0 when none is.
        self.sent_at = 0.0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, though they behave as one.
        self.transport = cast(asyncio.Transport, transport)
        if self.run.stopping:
            self.transport.abort()
            return
        self.run.connections.add(self)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.run.spec.request)

    def data_received(self, data: bytes) -> None:
        if not self.sent_at:
            return  # the rest of a response already given up on (timed out)
        try:
            statuses = self.parser.feed(data)
        except ProtocolError:
            self.fail("invalid response")
            return
        if statuses:
            self._record(statuses[-1])
            assert self.transport is not None
            if self.parser.keep_alive and (token := self.run.take()) != _STOP:
                self.token = token
                self._send()
            else:
                self.transport.close()

    def _record(self, status: int) -> None:
        latency = time.perf_counter() - self.sent_at
        self.sent_at = 0.0
        if status >= 400:
            self._count_error(f"HTTP {status}")
        elif self.token == _MEASURED:
            self.run.latencies.append(latency)

    def _count_error(self, kind: str) -> None:
        if self.token == _MEASURED:
            self.run.errors[kind] += 1

    def fail(self, kind: str) -> None:
        """Count the request in flight as failed and give up on this connection."""
        self.sent_at = 0.0
        self._count_error(kind)
        assert self.transport is not None
        self.transport.abort()

    def abandon(self) -> None:
        self.sent_at = 0.0
        assert self.transport is not None
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.connections.discard(self)
        if self.sent_at:
            status = self.parser.feed_eof()
            if status is not None:
                self._record(status)
            else:
                self.sent_at = 0.0
                self._count_error("connection closed" if exc is None else "connection reset")
        if not self.closed.done():
            self.closed.set_result(None)
