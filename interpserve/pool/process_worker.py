"""A worker that is a child process: for apps whose extension modules refuse subinterpreters.
It runs the same worker code and speaks the same wire format over the same kind of pipes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from interpserve.pipes import open_pipe
from interpserve.pool.channel import WorkerChannel
from interpserve.rss import rss_bytes


def spawn(settings: str, fd_in: int, fd_out: int) -> subprocess.Popen[bytes]:
    """`python -m interpserve.worker` on the worker's ends of its pipes, in this process's
    environment and working directory, as the app's imports expect."""
    process = subprocess.Popen(
        [sys.executable, "-m", "interpserve.worker", str(fd_in), str(fd_out)],
        stdin=subprocess.PIPE,
        pass_fds=(fd_in, fd_out),
    )
    assert process.stdin is not None
    # Settings go through stdin rather than argv: no length limit, not shown by `ps`.
    process.stdin.write(settings.encode())
    process.stdin.close()
    return process


class ProcessWorker:
    kind = "process"

    def __init__(self, worker_id: int, settings: str) -> None:
        self.worker_id = worker_id
        self.channel = WorkerChannel(worker_id)
        self._settings = settings
        self._process: subprocess.Popen[bytes] | None = None
        self._main_fds: tuple[int, ...] = ()

    async def start(self) -> None:
        to_worker_r, to_worker_w = open_pipe()
        from_worker_r, from_worker_w = open_pipe()
        try:
            self._process = spawn(self._settings, to_worker_r, from_worker_w)
        finally:
            # The child has its own copies; the front end keeps only its ends.
            os.close(to_worker_r)
            os.close(from_worker_w)
        self._main_fds = (from_worker_r, to_worker_w)
        await self.channel.connect(from_worker_r, to_worker_w)

    async def wait_stopped(self, timeout: float | None) -> bool:
        assert self._process is not None
        try:
            await asyncio.wait_for(self.channel.closed.wait(), timeout)
            await asyncio.wait_for(asyncio.to_thread(self._process.wait), timeout)
        except TimeoutError:
            return False
        return True

    def terminate(self) -> None:
        """Kill a stuck worker (and reap it: SIGKILL is quick)."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    async def memory(self, timeout: float) -> int | None:
        """Its resident memory, as the OS counts it."""
        pid = self.pid
        return None if pid is None else rss_bytes(pid) or None

    def close(self, *, destroy: bool = True) -> bool:
        """Release the pipes; kill the process if it is still running. (No interpreter of
        this process is destroyed: False.)"""
        self.channel.close()
        for fd in self._main_fds:
            os.close(fd)
        self._main_fds = ()
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        return False
