"""A serving process's life (the front end and the pool, in the main interpreter): pick the
worker kind, start the workers, accept connections, and act on signals: SIGINT/SIGTERM drain
and stop, SIGHUP reloads the workers, SIGTTIN/SIGTTOU add or remove one. With --reload, file
changes reload the workers too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from interpserve.check import check_app
from interpserve.compiled import missing_warning
from interpserve.config import Config
from interpserve.cpus import default_workers
from interpserve.errors import StartupError
from interpserve.frontend.server import Server, listen_address
from interpserve.pool.pool import WorkerPool
from interpserve.tasks import BackgroundTasks

if TYPE_CHECKING:
    from interpserve.metrics import Metrics

logger = logging.getLogger("interpserve.error")

# Seconds the workers get to stop (lifespan shutdown) even when the drain used up its budget.
MIN_WORKER_STOP = 5.0


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The front end's event loop for --loop: auto prefers uvloop when it is installed."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            pass  # auto falls back; Config refuses --loop uvloop without the package
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


async def resolve_worker_kind(config: Config) -> str:
    """--worker-kind auto: probe the app in a throwaway process, never in this one."""
    if config.worker_kind != "auto":
        return config.worker_kind
    result = await check_app(config.worker_settings(0))
    if result.compatible:
        logger.info("Worker kind: interpreter (the app loads in subinterpreters).")
        return "interpreter"
    if result.module:
        logger.info(
            "Worker kind: process, because module %r does not support subinterpreters "
            "(imported through %s).",
            result.module,
            " -> ".join(result.chain),
        )
        return "process"
    # The app does not load at all: interpreter workers will report why.
    return "interpreter"


class ServingProcess:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pool: WorkerPool | None = None
        self._server: Server | None = None
        self._should_exit = asyncio.Event()
        self._tasks = BackgroundTasks()

    async def serve(self) -> bool:
        """Serve until asked to exit; False if a stuck worker could not be stopped."""
        loop = asyncio.get_running_loop()
        starting = asyncio.ensure_future(self._start())
        exit_asked = asyncio.ensure_future(self._should_exit.wait())
        await asyncio.wait([starting, exit_asked], return_when=asyncio.FIRST_COMPLETED)
        exit_asked.cancel()
        metrics = None
        if not starting.done():
            # Asked to exit while starting (a slow app import): stop now, not once the workers
            # are ready, and never listen. The workers being started are given up as it is
            # cancelled (see WorkerPool._start_workers).
            starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            metrics = await starting  # a StartupError goes up from here
        if not starting.cancelled():
            await self._should_exit.wait()
        logger.info("Shutting down")
        await self._tasks.cancel_all()
        # One budget for the whole drain: what the connections leave of it goes to the workers
        # (lifespan shutdown included), with a few seconds at least for that.
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        clean = True
        if self.pool is not None:
            self.pool.begin_stop()
        if self._server is not None:
            await self._server.shutdown(timeout)
        remaining = None if deadline is None else max(deadline - loop.time(), MIN_WORKER_STOP)
        if self.pool is not None:
            clean = await self.pool.stop(remaining)
        if metrics is not None:
            metrics.close()
        logger.info("Finished server process [%d]", os.getpid())
        return clean

    async def _start(self) -> Metrics | None:
        """Everything before serving: probe the app, start the workers, listen."""
        config = self.config
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        if not config.reload and (
            config.reload_dirs or config.reload_includes or config.reload_excludes
        ):
            logger.warning(
                "--reload-dir, --reload-include and --reload-exclude do nothing without --reload."
            )
        if config.reload:
            from interpserve.reload import check_watcher

            await check_watcher(config)
        if warning := missing_warning():
            logger.warning(warning)
        kind = await resolve_worker_kind(config)
        logger.info(
            "Starting %d %s worker(s) for %s (%s; Python %s, pid %d)",
            config.worker_count,
            kind,
            config.app,
            "--workers" if config.workers else default_workers().reason,
            platform.python_version(),
            os.getpid(),
        )
        self.pool = pool = WorkerPool(config, kind)
        # Before the workers start: it checks the TLS files, and a taken port fails at once.
        self._server = server = Server(config, pool)
        try:
            await server.bind()
        except OSError as exc:
            where = listen_address(config)
            raise StartupError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        await pool.start()
        logger.info("Workers ready in %.0f ms", (loop.time() - started_at) * 1000)
        await server.start()
        metrics = None
        if config.metrics_port is not None:
            from interpserve.metrics import start_metrics  # the optional `metrics` extra

            metrics = start_metrics(config.host, config.metrics_port, pool, server.state)
        if config.reload:
            self._tasks.spawn(self._watch_files())
        return metrics

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGINT: self._handle_exit,
            signal.SIGTERM: self._handle_exit,
            signal.SIGHUP: self._handle_hup,
            signal.SIGTTIN: self._handle_ttin,
            signal.SIGTTOU: self._handle_ttou,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler, sig)

    def _handle_exit(self, sig: signal.Signals) -> None:
        if not self._should_exit.is_set():
            self._should_exit.set()
        elif sig == signal.SIGINT:
            # Ctrl+C again: the operator does not want to wait for the drain. (Not a second
            # SIGTERM, as in uvicorn: `timeout` and process managers often send two.)
            logger.warning("Received SIGINT again: exiting now.")
            if self.pool is not None:
                self.pool.abort()
            os._exit(1)
        else:
            logger.info("Received %s again: still draining (Ctrl+C exits at once).", sig.name)

    def _handle_hup(self, sig: signal.Signals) -> None:
        if self.pool is not None:
            logger.info("Received SIGHUP: reloading the workers.")
            self._tasks.spawn(self.pool.reload())

    def _handle_ttin(self, sig: signal.Signals) -> None:
        if self.pool is not None:
            self._tasks.spawn(self.pool.add_worker())

    def _handle_ttou(self, sig: signal.Signals) -> None:
        if self.pool is not None:
            self._tasks.spawn(self.pool.remove_worker())

    async def _watch_files(self) -> None:
        from interpserve.reload import watch_changes

        assert self.pool is not None
        try:
            async for changed in watch_changes(self.config):
                logger.warning("Changes detected in %s: reloading the workers.", ", ".join(changed))
                await self.pool.reload()
        except Exception as exc:
            # It started (check_watcher), so this is rare: say it once, and serve on.
            logger.error("The file watcher stopped, --reload no longer works: %r", exc)


def run_config(config: Config) -> None:
    """Serve until SIGINT or SIGTERM; raises StartupError if the workers cannot start."""

    async def main() -> bool:
        serving = ServingProcess(config)
        serving.install_signal_handlers()
        return await serving.serve()

    with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
        clean = runner.run(main())
    if not clean:
        # A stuck interpreter still runs on its thread; finalizing the process would wait for
        # it (or crash under it), so the process ends here.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
