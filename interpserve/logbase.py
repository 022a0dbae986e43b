"""What every writer of the server's lines shares, importing only posix, fcntl and time: a
process that must stay small (a parent process) writes its few lines with it, as the front end
and the workers write theirs (logoutput.py, logs.py).

stdout and stderr are shared by the front end, every interpreter worker and every process
worker (one file descriptor each, or a copy of it), and nothing may write half a line to them.
A pipe takes a write of up to PIPE_BUF (4 KiB) whole, but a longer one (a traceback, a JSON
line with one, a loop pass's lines) mixes with the others' when the reader falls behind, and a
short one can land inside it; so every writer writes under an flock on the descriptor's file (a
pipe, a file or a terminal), taken through an opening of the file of its own (/proc/self/fd/N),
since flock does not exclude two holders of one opening. Where the file cannot be opened so (a
socket, as journald's stdout is), writes go without it.
"""

from __future__ import annotations

import fcntl
import posix
import time


class SharedFile:
    """One of stdout (1) or stderr (2), written whole under its lock."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        try:
            self._lock: int | None = posix.open(
                f"/proc/self/fd/{fd}", posix.O_WRONLY | posix.O_CLOEXEC
            )
        except OSError:
            self._lock = None

    def write(self, data: bytes) -> None:
        if self._lock is None:
            self._write_all(data)
            return
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            self._write_all(data)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[posix.write(self.fd, view) :]


class Clock:
    """RFC 3339 times in UTC with milliseconds, the date and time formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"
