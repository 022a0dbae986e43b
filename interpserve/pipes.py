"""asyncio plumbing for a pair of pipes carrying frames, the same on both ends: the front end
holds one per worker and each worker holds one to the front end.

Frames written during one pass of the event loop leave together, a few at a time: the requests
of many connections cost one system call, not one each. Not all of a pass's frames in one
write, though: the reader on the other side starts on the first few while this side is still
busy with the rest, so the front end and the workers work at the same time instead of taking
turns (docs/performance.md, "Figures behind the code", has what that is worth).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from typing import Any

from interpserve import events as ev
from interpserve.errors import WireError
from interpserve.wire import FrameDecoder, encode_parts

logger = logging.getLogger("interpserve.error")

# Frames that leave in one write at the latest: see the module's docstring. Each write wakes the
# reader, a cost on both sides, so fewer larger writes pay once the rest of a request is cheap
# (docs/performance.md, "Figures behind the code").
_BATCH = 16
# ...and once their payloads come to this much: a batch of big body chunks in one write would
# leave that much waiting in memory when the pipe is full (see _HELD_MOST).
_BATCH_BYTES = 256 * 1024
# A batch whose payloads come to this much is written without being joined first (see _flush):
# below it, the frames are small and one buffer costs uvloop less than one per frame.
_GATHER_LEAST = 16 * 1024
# Linux's default pipe holds 64 KiB: a 64 KiB body chunk would take two writes and wake the
# reader twice. 1 MiB (Linux's default upper limit for an unprivileged process) holds several.
_PIPE_SIZE = 1 << 20
# At most this much is read from a pipe at once by asyncio: see FramePipe.connect.
_READ_SIZE = 64 * 1024
# ...and this much after a read that emptied the pipe, as most do: see FramePipe.data_received.
_READ_LEAST = 4 * 1024
# A worker's senders wait (`drained`) while more than this waits in its memory for a pipe the
# front end has not emptied: the pipe itself holds _PIPE_SIZE already, and what the apps send
# beyond it would pile up in the worker, however small each response's window.
_HELD_MOST = 64 * 1024


def open_pipe() -> tuple[int, int]:
    """os.pipe(), enlarged to _PIPE_SIZE where the OS allows it."""
    read_fd, write_fd = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # above the limit: the default size still works
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    return read_fd, write_fd


class FramePipe(asyncio.Protocol):
    """Reads events from `fd_in` and writes events to `fd_out`.

    The transports get duplicates of the descriptors, which they close when the pipe closes
    (uvloop closes a pipe's descriptor whatever the file object says). The descriptors given
    stay open: whoever created them closes them, so none is closed twice, or once reused.
    """

    def __init__(
        self,
        on_event: Callable[[ev.Event], None],
        on_closed: Callable[[], None],
        on_batch_end: Callable[[], None] = lambda: None,
        on_backlog: Callable[[int], None] | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_closed = on_closed
        self._on_batch_end = on_batch_end
        # Told how much the bytes waiting in memory to be written (the other side is not
        # reading) grew or shrank by: the front end counts them against its budget.
        self._on_backlog = on_backlog
        self._backlog = 0
        self._write_paused = False
        self._drained: asyncio.Event | None = None  # made when a sender first waits
        self._decoder = FrameDecoder()
        self._reader: asyncio.ReadTransport | None = None
        self._sized_reader: Any = None  # asyncio's pipe transport, whose reads are sized here
        self._writer: asyncio.WriteTransport | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0  # of the payloads in _pending
        self._flush_scheduled = False  # at the end of this loop pass, for what is pending then
        self._receiving = False  # in data_received, which flushes when it is done
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    async def connect(self, fd_in: int, fd_out: int) -> None:
        loop = self._loop = asyncio.get_running_loop()
        writer, _ = await loop.connect_write_pipe(
            lambda: _WriteSide(self), os.fdopen(os.dup(fd_out), "wb", buffering=0)
        )
        if self._on_backlog is not None:
            # Told as soon as anything waits in memory, and once all of it is written.
            writer.set_write_buffer_limits(0)
        else:
            writer.set_write_buffer_limits(_HELD_MOST)
        self._writer = writer
        reader, _ = await loop.connect_read_pipe(
            lambda: self, os.fdopen(os.dup(fd_in), "rb", buffering=0)
        )
        if hasattr(reader, "max_size"):
            # asyncio's pipe transport (a worker's) reads into a fresh bytes object of up to
            # 256 KiB: above glibc's mmap threshold, so every read mapped and unmapped memory,
            # and each unmap interrupts the process's other busy threads (a TLB shootdown).
            # Reads of at most _READ_SIZE come from the heap, each sized in data_received.
            # (uvloop's transport reuses one buffer.)
            reader.max_size = _READ_LEAST
            self._sized_reader = reader
        self._reader = reader

    def send(self, event: ev.Event) -> None:
        if self.closed:
            return
        header, payload = encode_parts(event)
        self._pending += header, payload
        self._pending_size += len(payload)
        if len(self._pending) >= 2 * _BATCH or self._pending_size >= _BATCH_BYTES:
            self._flush()
        elif not self._flush_scheduled and not self._receiving:
            assert self._loop is not None
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_at_pass_end)

    @property
    def backed_up(self) -> bool:
        """More than the pipe's mark waits in memory for the other side to read."""
        return self._write_paused and not self.closed

    async def drained(self) -> None:
        """Return once what waits in memory has gone down to the pipe's low mark (or the pipe
        has closed): a worker's app waits here before it sends more body bytes."""
        while self.backed_up:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()

    def _flush_at_pass_end(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        writer = self._writer
        if self._pending and writer is not None and not writer.is_closing():
            if self._pending_size >= _GATHER_LEAST:
                # Body chunks go as they are, in one gathering write (uvloop's writev): joined
                # first, every byte of an upload was copied once more on its way to the worker.
                writer.writelines(self._pending)
            else:
                writer.write(b"".join(self._pending))
            if self._write_paused:
                self._note_backlog()
        self._pending.clear()
        self._pending_size = 0

    def _writing_held(self, held: bool) -> None:
        """From the writing pipe's protocol: bytes began, or stopped, waiting in memory."""
        self._write_paused = held
        if not held and self._drained is not None:
            self._drained.set()
        self._note_backlog()

    def _note_backlog(self) -> None:
        if self._on_backlog is None or self._writer is None:
            return
        size = 0 if self.closed else self._writer.get_write_buffer_size()
        if size != self._backlog:
            self._on_backlog(size - self._backlog)
            self._backlog = size

    def data_received(self, data: bytes) -> None:
        reader = self._sized_reader
        if reader is not None:
            # A read that filled its buffer most likely left more in the pipe: the next may take
            # up to _READ_SIZE. One that did not emptied it, and the next is small again: each
            # read is a fresh bytes object of max_size, shrunk to what came, and a 64 KiB one
            # shrunk to a few credits left a hole just short of the 64 KiB chunks apps send, in
            # the heap that holds them (docs/hardening.md, "Slow readers, the workers' heaps").
            reader.max_size = _READ_SIZE if len(data) >= reader.max_size else _READ_LEAST
        try:
            events = self._decoder.feed(data)
        except WireError as exc:
            logger.error("Closing a worker pipe that carried a broken frame: %s", exc)
            self.close()
            return
        # What the events make this side send (a worker's responses, most of them made at once
        # by eager tasks) leaves when they are done, not in a loop pass of its own: that pass
        # costs a worker's pure-Python event loop a poll of its own.
        self._receiving = True
        try:
            for event in events:
                self._on_event(event)
            self._on_batch_end()
        finally:
            self._receiving = False
            self._flush()

    def eof_received(self) -> bool | None:
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        """Flush what was sent, then stop reading and writing; `on_closed` runs once."""
        if self.closed:
            return
        self._flush()
        self.closed = True
        self._note_backlog()  # what is left to write no longer counts
        if self._drained is not None:
            self._drained.set()
        if self._reader is not None:
            self._reader.close()
        if self._writer is not None:
            self._writer.close()
        self._on_closed()


class _WriteSide(asyncio.BaseProtocol):
    """The writing pipe's protocol: tells the FramePipe when bytes start and stop waiting."""

    def __init__(self, pipe: FramePipe) -> None:
        self._pipe = pipe

    def pause_writing(self) -> None:
        self._pipe._writing_held(True)

    def resume_writing(self) -> None:
        self._pipe._writing_held(False)
