"""A serving process's life (the front end and the pool, in the main interpreter): pick the
worker kind, start the workers, accept connections, and act on signals: SIGINT/SIGTERM drain
and stop, SIGHUP reloads the workers, SIGTTIN/SIGTTOU add or remove one. With --reload, file
changes reload the workers too.

Under a supervisor (the usual case) it serves on the sockets the supervisor holds, and tells it
when it is ready, when --reload sees a change, and when memory it keeps but no longer uses (what
destroyed interpreters or a burst left behind: leftover.py) calls for a fresh process: the
supervisor then replaces the whole process, without downtime. With --no-supervisor it binds the
sockets itself and reloads its workers in place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn

from interpserve.check import check_app
from interpserve.compiled import missing_warning
from interpserve.config import Config
from interpserve.cpus import default_workers
from interpserve.errors import StartupError
from interpserve.frontend.server import Server
from interpserve.leftover import Leftover, LeftoverWatch
from interpserve.listen import Listeners, bind, bind_metrics, listening_on
from interpserve.logs import configure_logging
from interpserve.memory import tune_malloc
from interpserve.pool.pool import WorkerPool
from interpserve.rss import rss_bytes
from interpserve.serving_link import SupervisorLink
from interpserve.tasks import BackgroundTasks

if TYPE_CHECKING:
    from interpserve.metrics import Metrics

logger = logging.getLogger("interpserve.error")

# How long a serving process's exit may take once it has stopped serving (see bound_finalizing).
FINALIZE_DEADLINE_S = 10


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
    def __init__(
        self,
        config: Config,
        *,
        link: SupervisorLink | None = None,
        sockets: list[socket.socket] | None = None,
        metrics_socket: socket.socket | None = None,
        watch_files: bool = True,
    ) -> None:
        self.config = config
        self.pool: WorkerPool | None = None
        self._server: Server | None = None
        # Under a supervisor: what it gave and how it is told. Without one: bound here.
        self._link = link
        self._sockets = sockets
        self._metrics_socket = metrics_socket
        self._listeners: Listeners | None = None
        self._watch_files = watch_files  # --reload: under a supervisor, one process watches
        self._leftover: LeftoverWatch | None = None  # None with --limit-max-leftover 0
        self._leftover_warned = False
        self._should_exit = asyncio.Event()
        self._tasks = BackgroundTasks()

    async def serve(self) -> bool:
        """Serve until asked to exit; False if a stuck worker could not be stopped."""
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
        try:
            with contextlib.suppress(asyncio.CancelledError):
                metrics = await starting  # a StartupError goes up from here
            if not starting.cancelled():
                await self._should_exit.wait()
            logger.info("Shutting down")
            if metrics is not None:
                # First: a stopping process's figures are no longer the server's (under a
                # supervisor, its successor serves the same metrics socket already).
                await metrics.close()
            clean = await self._stop()
        finally:
            if self._listeners is not None:
                self._listeners.close()
            if metrics is not None:
                await metrics.close()
        logger.info("Finished server process [%d]", os.getpid())
        return clean

    async def _stop(self) -> bool:
        """Drain within --timeout-graceful-shutdown: the connections first, then the workers
        (lifespan shutdown included) in what is left of it. At the deadline the apps' tasks
        still running are cancelled, and the pool gives them STOP_GRACE to finish."""
        await self._tasks.cancel_all()
        if self._leftover is not None:
            self._leftover.stop()
        loop = asyncio.get_running_loop()
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        if self.pool is not None:
            self.pool.begin_stop()
        if self._server is not None:
            await self._server.shutdown(timeout)
        if self.pool is None:
            return True
        return await self.pool.stop(None if deadline is None else max(deadline - loop.time(), 0))

    async def _start(self) -> Metrics | None:
        """Everything before serving: probe the app, start the workers, listen."""
        config = self.config
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        logger.info("Started server process [%d]", os.getpid())
        if not config.reload and (
            config.reload_dirs or config.reload_includes or config.reload_excludes
        ):
            logger.warning(
                "--reload-dir, --reload-include and --reload-exclude do nothing without --reload."
            )
        if config.reload and self._watch_files:
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
        sockets = self._sockets
        if sockets is None:
            # Before the workers start: a taken port fails at once.
            self._listeners = bind(config)
            sockets = self._listeners.sockets
        self.pool = pool = WorkerPool(config, kind)
        # Before the workers start too: it checks the TLS files.
        self._server = server = Server(config, pool, sockets)
        if config.limit_max_leftover != 0:
            self._leftover = leftover = LeftoverWatch(
                config.limit_max_leftover,
                self._tree_rss,
                quiet=server.state.quiet,
                settled=lambda: pool.settled,
                replaceable=lambda: not server.state.holds_websockets(),
                replace=self._replace_for,
            )
            pool.on_interpreter_destroyed = leftover.destroyed
            server.after_bursts(leftover.released)
        await pool.start()
        logger.info("Workers ready in %.0f ms", (loop.time() - started_at) * 1000)
        await server.start()
        metrics = None
        if config.metrics_port is not None:
            from interpserve.metrics import start_metrics  # the optional `metrics` extra

            if self._metrics_socket is None:
                (self._metrics_socket,) = bind_metrics(config, 1)
            metrics = start_metrics(self._metrics_socket, pool, server.state)
        if self._leftover is not None:
            self._leftover.ready()
        if self._link is not None:
            self._link.ready(kind, pool.target)
        else:
            logger.info(listening_on(config, sockets[0]))
        if config.reload and self._watch_files:
            self._tasks.spawn(self._watch_files_changes())
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
        if self._link is not None:
            self._link.when_lost(self._supervisor_lost)

    def _handle_exit(self, sig: signal.Signals) -> None:
        if not self._should_exit.is_set():
            self._should_exit.set()
        elif sig == signal.SIGINT:
            # Ctrl+C again: the operator does not want to wait for the drain. (Not a second
            # SIGTERM, as in uvicorn: `timeout` and process managers may send two.)
            logger.warning("Received SIGINT again: exiting now.")
            if self.pool is not None:
                self.pool.abort()
            os._exit(1)
        elif self._link is None:
            # (Under a supervisor it says so: a Ctrl+C reaches this process and the supervisor,
            # which passes it on as SIGTERM.)
            logger.info("Received %s again: still draining (Ctrl+C exits at once).", sig.name)

    def _supervisor_lost(self) -> None:
        if not self._should_exit.is_set():
            logger.warning("The supervisor is gone: shutting down.")
            self._should_exit.set()

    def _handle_hup(self, sig: signal.Signals) -> None:
        if self.pool is not None:
            logger.info("Received SIGHUP: reloading the workers.")
            self._tasks.spawn(self.pool.reload())

    def _handle_ttin(self, sig: signal.Signals) -> None:
        if self.pool is not None:
            self._tasks.spawn(self._resize(self.pool.add_worker()))

    def _handle_ttou(self, sig: signal.Signals) -> None:
        if self.pool is not None:
            self._tasks.spawn(self._resize(self.pool.remove_worker()))

    async def _resize(self, change: Coroutine[Any, Any, None]) -> None:
        await change
        if self._link is not None and self.pool is not None:
            self._link.workers(self.pool.target)

    def _tree_rss(self) -> int:
        """What this process and its process workers hold (--limit-max-leftover's measure)."""
        pids = [os.getpid(), *(self.pool.worker_pids() if self.pool is not None else ())]
        return sum(rss_bytes(pid) for pid in pids)

    def _replace_for(self, leftover: Leftover, why: str) -> None:
        """Memory it keeps but no longer uses calls for a fresh process (leftover.py)."""
        if self._link is None:
            if not self._leftover_warned:
                self._leftover_warned = True
                logger.warning("%s; without the supervisor, nothing replaces this process.", why)
        elif leftover is Leftover.BURST:
            self._link.replace_after_burst(why)
        else:
            self._link.replace(why)

    async def _watch_files_changes(self) -> None:
        from interpserve.reload import watch_changes

        assert self.pool is not None
        try:
            async for changed in watch_changes(self.config):
                if self._link is not None:
                    logger.warning("Changes detected in %s: reloading.", ", ".join(changed))
                    self._link.reload("changes")
                    continue
                logger.warning("Changes detected in %s: reloading the workers.", ", ".join(changed))
                await self.pool.reload()
        except Exception as exc:
            # It started (check_watcher), so this is rare: say it once, and serve on.
            logger.error("The file watcher stopped, --reload no longer works: %r", exc)


def run_config(config: Config) -> None:
    """Serve in this process until SIGINT or SIGTERM (--no-supervisor); raises StartupError if
    the workers cannot start."""
    _run(ServingProcess(config))


def supervised_main(payload: dict[str, Any], args: list[str]) -> NoReturn:
    """A serving process started by the supervisor (see supervisor._SERVING)."""
    payload_fd, messages, lifeline, slot, workers, kind, metrics_fd = args
    os.close(int(payload_fd))  # read: the app's child processes need not inherit it
    shared = Config.from_dict(payload["config"])
    changes: dict[str, Any] = {
        "workers": int(workers),
        "processes": 1,
        "limit_buffers": shared.buffer_share(),
    }
    if kind != "-":
        changes["worker_kind"] = kind  # as the first serving process found it: no probe
    config = Config.from_dict(payload["config"], **changes)
    configure_logging(config.log_level, config.log_format, config.log_config)
    # Inherited, but for this process alone: not for the app's own child processes.
    for fd in (*payload["listen_fds"], int(messages), int(lifeline), int(metrics_fd)):
        if fd >= 0:
            os.set_inheritable(fd, False)
    serving = ServingProcess(
        config,
        link=SupervisorLink(int(messages), int(lifeline)),
        sockets=[socket.socket(fileno=fd) for fd in payload["listen_fds"]],
        metrics_socket=socket.socket(fileno=int(metrics_fd)) if int(metrics_fd) >= 0 else None,
        watch_files=slot == "0",
    )
    try:
        _run(serving)
    except StartupError as exc:
        bound_finalizing()
        exit_for(exc)
    except KeyboardInterrupt:
        pass
    bound_finalizing()
    sys.exit(0)


def bound_finalizing(seconds: int = FINALIZE_DEADLINE_S) -> None:
    """The serving process is about to exit through Python's finalization (atexit, buffers):
    CPython 3.13.0 can hang there joining a thread of a worker interpreter still alive, and a
    serving process whose supervisor is gone would then hang for ever. SIGALRM's default
    action ends the process from the kernel, whatever its threads hold."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(seconds)


def exit_for(exc: StartupError) -> NoReturn:
    """The server could not start: one line, and exit code 1."""
    sys.stderr.write(f"ERROR:    {exc}\n")
    sys.stderr.flush()
    if exc.incompatible_module:
        # Interpreters in which an extension import failed are left as they are: CPython
        # 3.13.0 can abort when it finalizes them, so the process ends without finalizing.
        os._exit(1)
    sys.exit(1)


def _run(serving: ServingProcess) -> None:
    tune_malloc()

    async def main() -> bool:
        serving.install_signal_handlers()
        return await serving.serve()

    with asyncio.Runner(loop_factory=loop_factory(serving.config.loop)) as runner:
        clean = runner.run(main())
    if not clean:
        # A stuck interpreter still runs on its thread; finalizing the process would wait for
        # it (or crash under it), so the process ends here.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
