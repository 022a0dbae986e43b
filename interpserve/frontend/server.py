"""The listening socket and the set of open connections: accept, then drain on shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket

from interpserve.config import Config
from interpserve.frontend.connection import HTTPConnection, ServerState
from interpserve.frontend.http_parser import parser_factory
from interpserve.frontend.http_rules import Limits
from interpserve.frontend.tls import create_ssl_context
from interpserve.frontend.unix import claim_socket_path, release_socket_path
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
        self._ssl = create_ssl_context(config)

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def bind(self) -> None:
        """Claim the socket without accepting yet: before the workers start, so that a taken
        port fails at once; connections that come meanwhile wait in the backlog."""
        loop = asyncio.get_running_loop()
        config = self._config
        if config.fd is not None:
            # Bound and listening already (systemd socket activation, or a parent process that
            # keeps the socket across restarts so no connection is refused meanwhile).
            self._server = await loop.create_server(
                lambda: HTTPConnection(self._state),
                sock=socket.socket(fileno=config.fd),
                backlog=config.backlog,
                ssl=self._ssl,
                start_serving=False,
            )
        elif config.uds is not None:
            claim_socket_path(config.uds)
            self._server = await loop.create_unix_server(
                lambda: HTTPConnection(self._state),
                path=config.uds,
                backlog=config.backlog,
                ssl=self._ssl,
                start_serving=False,
            )
        else:
            self._server = await loop.create_server(
                lambda: HTTPConnection(self._state),
                host=config.host,
                port=config.port,
                family=socket.AF_INET6 if ":" in config.host else socket.AF_UNSPEC,
                backlog=config.backlog,
                reuse_address=True,
                ssl=self._ssl,
                start_serving=False,
            )

    async def start(self) -> None:
        """Accept connections (binding first if `bind` was not called)."""
        if self._server is None:
            await self.bind()
        assert self._server is not None
        await self._server.start_serving()
        for watch in self._state.bursts:
            watch.start()
        config = self._config
        name = self._server.sockets[0].getsockname()
        if isinstance(name, str):  # a Unix socket, from --uds or --fd
            logger.info("Listening on unix:%s (Press CTRL+C to quit)", name)
            return
        host = config.host if config.fd is None else str(name[0])
        host = f"[{host}]" if ":" in host else host
        scheme = self._state.scheme
        logger.info("Listening on %s://%s:%d (Press CTRL+C to quit)", scheme, host, self.port)

    async def shutdown(self, timeout: float | None) -> None:
        """Stop accepting, let in-flight responses finish (up to `timeout`), close the rest."""
        self._state.draining = True
        for watch in self._state.bursts:
            watch.stop()
        if self._server is not None:
            self._server.close()
            if self._config.uds is not None:
                release_socket_path(self._config.uds)
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


def listen_address(config: Config) -> str:
    """Where the server listens, as an operator wrote it."""
    if config.fd is not None:
        return f"file descriptor {config.fd}"
    if config.uds is not None:
        return f"unix:{config.uds}"
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{host}:{config.port}"
