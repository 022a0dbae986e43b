"""A worker that is a child process: for apps whose extension modules refuse subinterpreters.
It runs the same worker code and speaks the same wire format over the same kind of pipes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from interpserve.pipes import open_pipe
from interpserve.pool.channel import WorkerChannel


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
            self._process = subprocess.Popen(
                [sys.executable, "-m", "interpserve.worker", str(to_worker_r), str(from_worker_w)],
                stdin=subprocess.PIPE,
                pass_fds=(to_worker_r, from_worker_w),
            )
            assert self._process.stdin is not None
            # Settings go through stdin rather than argv: no length limit, not shown by `ps`.
            self._process.stdin.write(self._settings.encode())
            self._process.stdin.close()
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
        """Kill a stuck worker."""
        if self._process and self._process.poll() is None:
            self._process.kill()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self, *, destroy: bool = True) -> None:
        """Release the pipes; kill the process if it is still running."""
        self.channel.close()
        for fd in self._main_fds:
            os.close(fd)
        self._main_fds = ()
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
