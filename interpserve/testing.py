"""Run a real interpserve server in a child process, for tests and benchmarks.

The server binds port 0 and the port it got is read from its "Listening on" line, so there is
no race for a free port. Its output is collected for assertions; `stop` always reaps it.

The process started is the supervisor (`supervisor_pid`), unless --no-supervisor is given;
`pid` is the serving process's, read from its "Started server process" line (the latest one:
it changes when the supervisor replaces the serving process).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from signal import SIGKILL, SIGTERM
from types import TracebackType

from interpserve.errors import ServerFailed

_LISTENING = re.compile(r"Listening on (?:(https?)://([^\s]+):(\d+)|unix:(\S+))")
_SERVING = re.compile(r"Started server process \[(\d+)\]")


class ServerProcess:
    def __init__(
        self,
        app: str,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.app = app
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.command = list(command or [sys.executable, "-m", "interpserve"])
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.host = "127.0.0.1"
        self.scheme = "http"
        self.uds: str | None = None  # the socket path, when it listens on a Unix socket
        self._lines: list[str] = []
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self._lines)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The serving process's pid: the latest started that still runs (one that failed to
        start, on a reload, does not count), else the latest started."""
        pids = self.serving_pids()
        return next((pid for pid in reversed(pids) if running(pid)), pids[-1])

    def serving_pids(self) -> list[int]:
        """Every serving process started so far, in the order they started."""
        pids = [int(pid) for pid in _SERVING.findall(self.output)]
        assert pids, f"no serving process has started; the output:\n{self.output}"
        return pids

    @property
    def supervisor_pid(self) -> int | None:
        """The process started, when it is the supervisor (None with --no-supervisor)."""
        assert self.process is not None
        return None if "--no-supervisor" in self.args else self.process.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        args = [*self.command, self.app, *self.args]
        if "--port" not in self.args:
            args += ["--port", "0"]
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(f"server did not start; its output:\n{self.output}")
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)
            match = _LISTENING.search(line)
            if match and not self._listening.is_set():
                scheme, host, port, self.uds = match.groups()
                if scheme:
                    self.scheme, self.host, self.port = scheme, host.strip("[]"), int(port)
                self._listening.set()

    def wait_for_output(self, text: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            time.sleep(0.02)
        return False

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the server to exit by itself; kill it if it does not within `timeout`."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            if self._reader is not None:
                self._reader.join(5)

    def stop(self, sig: int = SIGTERM, timeout: float = 30.0) -> int:
        """Ask the server to stop (SIGTERM by default) and reap it; kill it after `timeout`."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            return -SIGKILL

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def running(pid: int) -> bool:
    """Whether the process runs, from Linux's /proc: exited but not reaped yet (a zombie)
    does not count."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
