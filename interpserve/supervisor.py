"""The server's life in the main interpreter: start the workers, then accept connections, then
on SIGINT/SIGTERM drain and stop everything in order."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import signal
from collections.abc import Callable

from interpserve.config import Config
from interpserve.frontend.server import Server
from interpserve.pool.pool import WorkerPool

logger = logging.getLogger("interpserve.error")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The front end's event loop for --loop: auto prefers uvloop when it is installed."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ImportError(
                    "--loop uvloop needs the uvloop package: pip install uvloop"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pool = WorkerPool(config)
        self.server = Server(config, self.pool)
        self._should_exit = asyncio.Event()
        self.started = asyncio.Event()

    def request_exit(self) -> None:
        self._should_exit.set()

    async def serve(self) -> None:
        config = self.config
        logger.info(
            "Starting %d %s worker(s) for %s (Python %s, pid %d)",
            config.worker_count,
            config.worker_kind,
            config.app,
            platform.python_version(),
            os.getpid(),
        )
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        await self.pool.start()
        logger.info("Workers ready in %.0f ms", (loop.time() - started_at) * 1000)
        await self.server.start()
        self.started.set()
        await self._should_exit.wait()
        logger.info("Shutting down")
        await self.server.shutdown(config.timeout_graceful_shutdown)
        await self.pool.stop(config.timeout_graceful_shutdown)
        logger.info("Finished server process [%d]", os.getpid())

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._should_exit.is_set():
            # A second signal: the operator does not want to wait for the drain.
            logger.warning("Received %s again: exiting now.", sig.name)
            os._exit(1)
        self.request_exit()


def run_config(config: Config) -> None:
    """Serve until SIGINT or SIGTERM; raises StartupError if the workers cannot start."""

    async def main() -> None:
        supervisor = Supervisor(config)
        supervisor.install_signal_handlers()
        await supervisor.serve()

    with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
        runner.run(main())
