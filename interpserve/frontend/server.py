"""The listening socket and the set of open connections: accept, then drain on shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket

from interpserve.config import Config
from interpserve.frontend.connection import HTTPConnection, ServerState
from interpserve.frontend.http_parser import parser_factory
from interpserve.frontend.http_rules import Limits
from interpserve.pool.pool import WorkerPool

logger = logging.getLogger("interpserve.error")


class Server:
    def __init__(self, config: Config, pool: WorkerPool) -> None:
        self._config = config
        parser = parser_factory(config.http)
        limits = Limits(
            request_line=config.limit_request_line,
            fields=config.limit_request_fields,
            field_size=config.limit_request_field_size,
            body=config.limit_request_body,
        )
        self._state = ServerState(config, pool, lambda: parser(limits))
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        config = self._config
        self._server = await loop.create_server(
            lambda: HTTPConnection(self._state),
            host=config.host,
            port=config.port,
            family=socket.AF_INET6 if ":" in config.host else socket.AF_UNSPEC,
            backlog=config.backlog,
            reuse_address=True,
        )
        host = f"[{config.host}]" if ":" in config.host else config.host
        logger.info("Listening on http://%s:%d (Press CTRL+C to quit)", host, self.port)

    async def shutdown(self, timeout: float | None) -> None:
        """Stop accepting, let in-flight responses finish (up to `timeout`), close the rest."""
        if self._server is not None:
            self._server.close()
        connections = self._state.connections
        for conn in list(connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while connections and (deadline is None or loop.time() < deadline):
            await asyncio.sleep(0.05)
        if connections:
            logger.warning("Cancelling %d request(s) still running at shutdown.", len(connections))
            for conn in list(connections):
                conn.abort()
        await asyncio.sleep(0)  # let the aborted connections report their loss
