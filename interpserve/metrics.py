"""--metrics-port: Prometheus metrics of the front end and the pool, from the main interpreter.

Requests are counted as each response completes (one call from the request cycle); the pool's
gauges are read only when Prometheus scrapes, so dispatch pays nothing for them. The metrics have
their own port, served by prometheus_client's HTTP thread: a scrape never waits behind app
requests, and the port can stay private when the app's is public.

Needs the `metrics` extra (prometheus-client); Config refuses --metrics-port without it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric

from interpserve.frontend.connection import ServerState
from interpserve.pool.pool import WorkerPool

logger = logging.getLogger("interpserve.error")

# A scrape gives up on the event loop after this long (it is blocked, or shutting down).
SNAPSHOT_TIMEOUT = 5.0


@dataclass(frozen=True)
class PoolSnapshot:
    in_flight: dict[int, int]  # worker id -> requests whose app call has not returned
    workers_target: int
    restarts: int
    queued: int
    buffered: int  # bytes counted against --limit-buffers


def take_snapshot(pool: WorkerPool, state: ServerState) -> PoolSnapshot:
    return PoolSnapshot(
        in_flight={w.worker_id: w.channel.outstanding for w in pool.workers},
        workers_target=pool.target,
        restarts=pool.restarts,
        queued=state.queued_requests(),
        buffered=state.budget.held,
    )


class PoolCollector:
    """The pool's gauges, as a prometheus_client custom collector."""

    def __init__(
        self, pool: WorkerPool, state: ServerState, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._pool = pool
        self._state = state
        self._loop = loop

    async def _snapshot(self) -> PoolSnapshot:
        return take_snapshot(self._pool, self._state)

    def collect(self) -> Iterator[Metric]:
        # Scrapes run on prometheus_client's thread, while the pool and the connections change
        # on the event loop's: they are read there, between two callbacks.
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
        try:
            snapshot = future.result(SNAPSHOT_TIMEOUT)
        except (RuntimeError, TimeoutError, CancelledError):
            future.cancel()
            return
        in_flight = GaugeMetricFamily(
            "interpserve_worker_requests_in_flight",
            "Requests a worker is running now",
            labels=["worker"],
        )
        for worker_id, count in sorted(snapshot.in_flight.items()):
            in_flight.add_metric([str(worker_id)], count)
        yield in_flight
        yield GaugeMetricFamily(
            "interpserve_workers", "Workers serving now", value=len(snapshot.in_flight)
        )
        yield GaugeMetricFamily(
            "interpserve_workers_target",
            "Workers the pool keeps serving (--workers, moved by SIGTTIN/SIGTTOU)",
            value=snapshot.workers_target,
        )
        yield CounterMetricFamily(
            "interpserve_worker_restarts",
            "Workers replaced after a crash, a hang or their request quota",
            value=snapshot.restarts,
        )
        yield GaugeMetricFamily(
            "interpserve_queued_requests",
            "Pipelined requests waiting behind the one their connection is answering",
            value=snapshot.queued,
        )
        yield GaugeMetricFamily(
            "interpserve_buffered_bytes",
            "What the front end holds for its clients' traffic, against --limit-buffers",
            value=snapshot.buffered,
        )


class Metrics:
    def __init__(self, pool: WorkerPool, state: ServerState) -> None:
        # A registry of its own, not prometheus_client's global one: nothing else in this
        # process (an app's own metrics, in process workers' parent) gets mixed in.
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "interpserve_requests",
            "Responses completed, by status code",
            ["status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "interpserve_request_duration_seconds",
            "From a request's head arriving to its response's last byte being written",
            registry=self.registry,
        )
        self.registry.register(PoolCollector(pool, state, asyncio.get_running_loop()))
        ProcessCollector(registry=self.registry)
        self._httpd: WSGIServer | None = None

    def observe(self, status: int, seconds: float) -> None:
        self._requests.labels(str(status)).inc()
        self._latency.observe(seconds)

    def serve(self, sock: socket.socket) -> None:
        """Serve /metrics on a thread, on a socket bound for it (listen.bind_metrics): bound
        by the supervisor, it stays the same across serving processes."""
        # Across a reload, the serving process going and the one coming share the socket: both
        # are woken by a connection and one takes it. On a blocking socket the other's accept()
        # would wait for the next one, and shutdown() with it: the old process would never exit.
        sock.setblocking(False)
        httpd = _BoundServer(("", 0), _QuietHandler, bind_and_activate=False)
        httpd.socket.close()
        httpd.socket = sock
        httpd.server_bind()
        httpd.set_app(make_wsgi_app(self.registry))
        threading.Thread(
            target=httpd.serve_forever, name="interpserve-metrics", daemon=True
        ).start()
        self._httpd = httpd
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        logger.info("Metrics on http://%s:%d/metrics", shown, port)

    async def close(self) -> None:
        """Accept no more scrapes, and answer those accepted: the process may be about to exit,
        and a scrape cut off is a failed one. On a thread, since they read the pool on this
        loop."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            await asyncio.to_thread(_close, httpd)


def _close(httpd: WSGIServer) -> None:
    httpd.shutdown()
    httpd.server_close()  # (joins the scrapes' threads: see _BoundServer)


class _BoundServer(ThreadingWSGIServer):
    # Scrapes on threads that server_close() waits for, not daemon threads that the process's
    # exit would cut off mid-response.
    daemon_threads = False
    block_on_close = True

    def server_bind(self) -> None:
        # The socket is bound and listening already: only what binding would have set.
        self.server_address = self.socket.getsockname()
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)
        self.setup_environ()


class _QuietHandler(WSGIRequestHandler):
    # A client that connects and says nothing holds its thread (and close(), at shutdown) no
    # longer than a scrape may wait for the loop.
    timeout = SNAPSHOT_TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged (nor were they by prometheus_client's own server)."""


def start_metrics(sock: socket.socket, pool: WorkerPool, state: ServerState) -> Metrics:
    """Count every completed request from now on, and serve the metrics on `sock`."""
    metrics = Metrics(pool, state)
    state.observe_request = metrics.observe
    metrics.serve(sock)
    return metrics
