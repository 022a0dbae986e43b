"""The set of open connections on the listening sockets: accept, then drain on shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from interpserve.config import Config
from interpserve.frontend.connection import HTTPConnection, ServerState
from interpserve.frontend.http_parser import parser_factory
from interpserve.frontend.http_rules import Limits
from interpserve.frontend.tls import create_ssl_context
from interpserve.pool.pool import WorkerPool

logger = logging.getLogger("interpserve.error")


class Server:
    """Serves HTTP on listening sockets bound by someone else: the supervisor, or the serving
    process itself (interpserve.listen)."""

    def __init__(self, config: Config, pool: WorkerPool, sockets: list[socket.socket]) -> None:
        self._config = config
        parser = parser_factory(config.http)
        limits = Limits(
            request_line=config.limit_request_line,
            fields=config.limit_request_fields,
            field_size=config.limit_request_field_size,
            body=config.limit_request_body,
        )
        self._state = ServerState(config, pool, lambda: parser(limits))
        self._sockets = sockets
        self._servers: list[asyncio.Server] = []
        self._ssl = create_ssl_context(config)

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def port(self) -> int:
        return int(self._sockets[0].getsockname()[1])

    def after_bursts(self, released: Callable[[], None]) -> None:
        """Call `released` each time the front end has given back what a burst left."""
        for watch in self._state.bursts:
            watch.on_release = released

    async def start(self) -> None:
        """Accept connections."""
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            server = await loop.create_server(
                lambda: HTTPConnection(self._state),
                sock=sock,
                backlog=self._config.backlog,
                ssl=self._ssl,
                start_serving=False,
            )
            self._servers.append(server)
            await server.start_serving()
        for watch in self._state.bursts:
            watch.start()

    async def shutdown(self, timeout: float | None) -> None:
        """The front end's drain, in one place: stop accepting, let every connection finish
        the response under way (up to `timeout`), then cancel what the apps still run, answer
        503 where no response has started, and close the rest."""
        self._state.draining = True
        for watch in self._state.bursts:
            watch.stop()
        for server in self._servers:
            server.close()
        connections = self._state.connections
        for conn in list(connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while connections and (deadline is None or loop.time() < deadline):
            await asyncio.sleep(0.05)
        if connections:
            logger.warning("Cancelling %d request(s) still running at shutdown.", len(connections))
            self._state.pool.cancel_requests()
            for conn in list(connections):
                conn.give_up()
        await asyncio.sleep(0)  # let the closed connections report their loss
