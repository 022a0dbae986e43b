"""Where the server's lines are written: stdout and stderr, whole lines under their lock
(logbase.SharedFile), one write(2) for one record or for the lines of one pass of the writer's
event loop.

No asyncio or json at the module's import: a parent process imports logs.py.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from interpserve.logbase import SharedFile

if TYPE_CHECKING:
    import asyncio


# The most an Output holds before it writes, whether or not the loop's pass is over.
MAX_BATCH = 64 * 1024


class Output:
    """One of stdout (1) or stderr (2), as this interpreter writes to it.

    What the thread running an event loop writes waits for the end of the loop's pass (or
    MAX_BATCH), then goes out with the rest of the pass's lines in one write: a line costs no
    system call of its own, however many a request logs. What other threads write while lines
    wait joins them, so nothing is written out of order; with none waiting, it goes at once,
    as does everything without a loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._file = SharedFile(fd)
        self._pending: list[bytes] = []
        self._size = 0
        self._mutex = threading.Lock()

    def write(self, data: bytes, *, now: bool = False) -> None:
        """`data`: whole lines. `now`: with what waits, at once (a warning or an error, which
        must not wait for a pass that may never end)."""
        with self._mutex:
            if not self._pending and not now:
                loop = _running_loop()
                if loop is None:
                    self._file.write(data)
                    return
                loop.call_soon(self.flush)
            self._pending.append(data)
            self._size += len(data)
            if now or self._size > MAX_BATCH:
                self._write_pending()

    def flush(self) -> None:
        with self._mutex:
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size = 0
            self._file.write(data)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    module = sys.modules.get("asyncio")  # (not imported here: see the module's docstring)
    if module is None:
        return None
    try:
        loop: asyncio.AbstractEventLoop = module.get_running_loop()
    except RuntimeError:
        return None
    return loop


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


class OutputHandler(logging.Handler):
    """Each record as one line of an Output: warnings and errors at once, the others with
    their loop pass's lines.

    `write_line` takes a line already formatted (see accesslog.AccessLog, which formats the
    front end's access lines itself while this handler is the access log's only one)."""

    def __init__(self, output: Output) -> None:
        super().__init__()
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = _encode(self.format(record) + "\n")
            self._output.write(line, now=record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        self._output.write(_encode(line + "\n"))

    def flush(self) -> None:
        self._output.flush()


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
        """Each thread's unfinished line, as a line of its own. (The Output writes it with
        the lines of the loop's pass.)"""
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
