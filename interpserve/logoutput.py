"""Where the server's lines are written: stdout and stderr, which the front end, every
interpreter worker and every process worker share (one file descriptor each, or a copy of it),
and which nothing may write half a line to.

Each writer writes whole lines, one write(2) for one record or one batch of them, under an
flock on the descriptor's file (a pipe, a file or a terminal). A pipe takes a write of up to
PIPE_BUF (4 KiB) whole, but a longer one (a traceback, a JSON line with one) mixes with the
others' when the reader falls behind; the lock keeps those apart too. Every writer takes the
lock through an opening of the file of its own (/proc/self/fd/N), since flock does not
exclude two holders of one opening. Where the file cannot be opened so (a socket, as
journald's stdout is), writes go without it.

No asyncio or json at the module's import: a parent process imports logs.py.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any


class Output:
    """One of stdout (1) or stderr (2), as this interpreter writes to it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        try:
            self._lock: int | None = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self._lock = None

    def write(self, data: bytes) -> None:
        if self._lock is None:
            _write_all(self.fd, data)
            return
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            _write_all(self.fd, data)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


class DescriptorHandler(logging.Handler):
    """Each record in one write to an Output."""

    def __init__(self, output: Output) -> None:
        super().__init__()
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._output.write(_encode(self.format(record) + "\n"))
        except Exception:
            self.handleError(record)


# The most a BatchingHandler holds before it writes, whether or not the loop's pass is over.
MAX_BATCH = 64 * 1024


class BatchingHandler(logging.Handler):
    """The access log's handler. While an event loop runs, the lines of one pass of the loop
    are written together at its end (or once they reach MAX_BATCH), in one write: a line
    costs no system call of its own. Without a loop, each is written at once.

    `add_line` takes a line already formatted (see accesslog.AccessLog, which formats the
    front end's access lines itself while this handler is the access log's only one)."""

    def __init__(self, output: Output) -> None:
        super().__init__()
        self._output = output
        self._pending: list[str] = []
        self._size = 0
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._add(self.format(record))  # (handle() holds the lock)
        except Exception:
            self.handleError(record)

    def add_line(self, line: str) -> None:
        self.acquire()
        try:
            self._add(line)
        finally:
            self.release()

    def _add(self, line: str) -> None:
        self._pending.append(line)
        self._size += len(line)
        if self._size > MAX_BATCH:
            self.flush()  # a pass that completes many requests holds no more of them
            return
        if self._scheduled:
            return
        asyncio = sys.modules.get("asyncio")  # (not imported here: see the module's docstring)
        try:
            loop = asyncio.get_running_loop() if asyncio else None
        except RuntimeError:
            loop = None
        if loop is None:
            self.flush()
        else:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            self._size = 0
            if self._pending:
                lines, self._pending = self._pending, []
                self._output.write(_encode("\n".join(lines) + "\n"))
        finally:
            self.release()


# Beyond this, a line still without its end goes out as it is, so a worker holds no more of it.
MAX_PENDING = 64 * 1024


class LineWriter(io.TextIOBase):
    """A worker's sys.stdout or sys.stderr. What the app writes goes out when a write ends a
    line: everything that thread wrote since, as one record (a traceback, or a print() of
    several lines, stays together), rendered by `render` (the worker's tag on each line, or
    one JSON object), in one write. Each thread's unfinished line waits apart from the
    others' (print() writes a line's text and its end in two calls, and threads would mix
    them), up to MAX_PENDING, until a line end or flush()."""

    def __init__(self, output: Output, name: str, render: Callable[[str, str], str]) -> None:
        super().__init__()
        self._output = output
        self._name = name
        self._render = render
        self._pending: dict[int, list[str]] = {}  # by thread
        self._sizes: dict[int, int] = {}
        self._lock = threading.Lock()
        self.buffer = _BinaryWriter(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]  # (read-only in io.TextIOBase)
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "backslashreplace"

    def fileno(self) -> int:
        return self._output.fd

    def isatty(self) -> bool:
        return os.isatty(self._output.fd)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        thread = threading.get_ident()
        with self._lock:
            pending = self._pending.setdefault(thread, [])
            pending.append(text)
            size = self._sizes.get(thread, 0) + len(text)
            if text.endswith("\n") or size > MAX_PENDING:
                del self._pending[thread]
                self._sizes.pop(thread, None)
                self._emit(pending)
            else:
                self._sizes[thread] = size
        return len(text)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._sizes.clear()
            for parts in pending.values():
                self._emit(parts)

    def _emit(self, parts: list[str]) -> None:
        text = "".join(parts).removesuffix("\n")
        if text:
            self._output.write(_encode(self._render(text, self._name) + "\n"))


class _BinaryWriter:
    """`sys.stdout.buffer`, for apps that write bytes."""

    def __init__(self, text: LineWriter) -> None:
        self._text = text

    def write(self, data: Any) -> int:
        self._text.write(bytes(data).decode("utf-8", "backslashreplace"))
        return len(data)

    def flush(self) -> None:
        self._text.flush()
