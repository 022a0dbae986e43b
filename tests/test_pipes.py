"""Worker pipes are enlarged where the OS allows it, and still plain pipes; a worker's app waits
while the front end does not empty its pipe."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import MB

from interpserve import events as ev
from interpserve.pipes import (
    _BATCH_BYTES,
    _HELD_MOST,
    _READ_LEAST,
    _READ_SIZE,
    FramePipe,
    open_pipe,
)
from interpserve.wire import FrameDecoder, encode
from interpserve.worker.asgi import HTTPCycle

HAS_PIPE_SIZE = hasattr(fcntl, "F_GETPIPE_SZ")
LINUX_ONLY = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="F_SETPIPE_SZ is Linux's"
)
# A worker's two pipes: to the worker (read, write), then to the front end (read, write).
WorkerPipes = tuple[int, int, int, int]


@pytest.fixture
def worker_pipes() -> Iterator[WorkerPipes]:
    to_worker_r, to_worker_w = open_pipe()
    to_front_r, to_front_w = open_pipe()
    yield to_worker_r, to_worker_w, to_front_r, to_front_w
    for fd in (to_worker_r, to_worker_w, to_front_r, to_front_w):
        os.close(fd)


async def passes_until(condition: Callable[[], bool]) -> bool:
    """Loop passes until `condition` holds (a thousand at most); whether it does."""
    for _ in range(1000):
        if condition():
            return True
        await asyncio.sleep(0)
    return condition()


async def front_end_reads_until(read_fd: int, condition: Callable[[], bool]) -> bool:
    """The front end's side of a worker's pipe read, a loop pass after each read, until
    `condition` holds (a thousand reads at most); whether it does."""
    os.set_blocking(read_fd, False)
    for _ in range(1000):
        if condition():
            return True
        with contextlib.suppress(BlockingIOError):
            os.read(read_fd, 1 << 20)
        await asyncio.sleep(0)
    return condition()


def test_open_pipe_carries_bytes() -> None:
    read_fd, write_fd = open_pipe()
    try:
        os.write(write_fd, b"frame")
        assert os.read(read_fd, 16) == b"frame"
    finally:
        os.close(read_fd)
        os.close(write_fd)


@LINUX_ONLY
def test_open_pipe_holds_more_than_one_body_chunk() -> None:
    read_fd, write_fd = open_pipe()
    try:
        # 64 KiB body chunks plus their frame headers: several fit without waking the reader.
        assert fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) >= 256 * 1024
    finally:
        os.close(read_fd)
        os.close(write_fd)


async def test_a_worker_app_waits_while_the_front_end_does_not_empty_its_pipe(
    worker_pipes: WorkerPipes,
) -> None:
    """A worker's app has all the credit it wants, but the front end reads nothing from the
    worker's pipe: its send() waits once the pipe is full and a little more waits in memory,
    instead of piling up what it sends there; it sends on once the pipe is read."""
    to_worker_r, _, to_front_r, to_front_w = worker_pipes
    pipe = FramePipe(lambda event: None, lambda: None)
    sent = 0
    chunk, most = 64 * 1024, 64 * MB

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal sent
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while sent < most:
            await send({"type": "http.response.body", "body": b"x" * chunk, "more_body": True})
            sent += chunk

    try:
        await pipe.connect(to_worker_r, to_front_w)
        request = ev.Request(1, "GET", "http", "1.1", b"/", b"", (), None, None, False, False)
        cycle = HTTPCycle(request, pipe, lambda exc: None, "", {}, None)
        cycle.credit(2 * most)
        task = asyncio.create_task(cycle.run(app))
        await passes_until(lambda: pipe.backed_up or task.done())  # the app waits for the pipe
        for _ in range(10):
            await asyncio.sleep(0)  # (it waits for good: nothing reads the pipe)
        assert not task.done()
        pipe_size = fcntl.fcntl(to_front_w, fcntl.F_GETPIPE_SZ) if HAS_PIPE_SIZE else 65536
        assert pipe._writer is not None
        held = _HELD_MOST + _BATCH_BYTES + chunk  # (the mark, and one write beyond it)
        assert pipe._writer.get_write_buffer_size() <= held
        assert sent <= pipe_size + held + chunk
        held_back = sent
        # The front end reads: the app sends on.
        assert await front_end_reads_until(
            to_front_r, lambda: task.done() or sent >= held_back + 4 * MB
        )
        task.cancel()
    finally:
        pipe.close()


class _RecordingWriter:
    """A pipe's writing transport that keeps each write as it was given."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, list[bytes]]] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.writes.append(("write", [data]))

    def writelines(self, parts: list[bytes]) -> None:
        self.writes.append(("writelines", list(parts)))


async def test_body_chunks_go_to_the_pipe_as_they_are_and_small_frames_joined() -> None:
    """A batch of body bytes is one gathering write of the chunks themselves (joined, each
    byte of an upload was copied once more); a batch of small frames is one joined write."""
    pipe = FramePipe(lambda event: None, lambda: None)
    writer = _RecordingWriter()
    pipe._writer = writer  # type: ignore[assignment]
    pipe._loop = asyncio.get_running_loop()
    chunk = b"x" * _BATCH_BYTES
    pipe.send(ev.RequestBody(1, chunk, True))  # a whole batch's bytes: written at once
    assert len(writer.writes) == 1
    how, parts = writer.writes[0]
    assert how == "writelines" and any(part is chunk for part in parts)
    pipe.send(ev.Credit(1, 10))
    pipe.send(ev.Credit(2, 20))
    await asyncio.sleep(0)  # (the loop pass ends)
    assert [how for how, _ in writer.writes] == ["writelines", "write"]
    decoder = FrameDecoder()
    events = decoder.feed(b"".join(part for _, written in writer.writes for part in written))
    assert events == [ev.RequestBody(1, chunk, True), ev.Credit(1, 10), ev.Credit(2, 20)]


class _ReadSizes(FramePipe):
    """A FramePipe that notes the size of each read it is given, and keeps its events."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.reads: list[int] = []
        super().__init__(self.events.append, lambda: None)

    def data_received(self, data: bytes) -> None:
        self.reads.append(len(data))
        super().data_received(data)

    async def until(self, count: int) -> None:
        """Loop passes until `count` events have arrived."""
        assert await passes_until(lambda: len(self.events) >= count), self.events


@LINUX_ONLY  # (a bigger frame than a default pipe holds is written at once)
async def test_a_worker_reads_small_until_a_read_fills_its_buffer(
    worker_pipes: WorkerPipes,
) -> None:
    """asyncio's pipe transport (a worker's) reads into a fresh bytes object of its size, then
    shrunk to what came: reads are small while each empties the pipe (credits, requests), grow
    while each fills its buffer (an upload's body), and are small again once one does not."""
    to_worker_r, to_worker_w, _, to_front_w = worker_pipes
    pipe = _ReadSizes()
    try:
        await pipe.connect(to_worker_r, to_front_w)
        os.write(to_worker_w, encode(ev.Credit(1, 10)) * 3)
        await pipe.until(3)
        upload = encode(ev.RequestBody(1, b"x" * 3 * _READ_SIZE, True))
        os.write(to_worker_w, upload)
        await pipe.until(4)
        os.write(to_worker_w, encode(ev.Credit(1, 10)))
        await pipe.until(5)
        credits, first, second, *rest, credit = pipe.reads
        assert credits < _READ_LEAST and credit < _READ_LEAST
        assert (first, second) == (_READ_LEAST, _READ_SIZE)  # it filled the small one: larger
        assert first + second + sum(rest) == len(upload)
        assert all(size <= _READ_SIZE for size in rest)
        assert pipe._sized_reader.max_size == _READ_LEAST  # small again
    finally:
        pipe.close()


async def test_apps_waiting_for_a_full_pipe_hold_their_chunks_once(
    worker_pipes: WorkerPipes,
) -> None:
    """Apps each send a chunk larger than their credit while the front end reads nothing from
    the worker's pipe: once credit for the rest arrives, each waits for the pipe with only its
    own chunk, the rest of it copied when it can leave (copied first, a thousand slow downloads
    held each chunk twice); all of it leaves once the pipe is read."""
    to_worker_r, _, to_front_r, to_front_w = worker_pipes
    pipe = FramePipe(lambda event: None, lambda: None)
    chunk, apps = 4 * ev.BODY_WINDOW_MIN, 16
    done: list[int] = []

    def app(index: int) -> Any:
        async def run(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
            done.append(index)

        return run

    try:
        await pipe.connect(to_worker_r, to_front_w)
        request = ev.Request(1, "GET", "http", "1.1", b"/", b"", (), None, None, False, False)
        cycles = [HTTPCycle(request, pipe, lambda exc: None, "", {}, None) for _ in range(apps)]
        tasks = [asyncio.create_task(cycle.run(app(i))) for i, cycle in enumerate(cycles)]
        for _ in range(10):
            await asyncio.sleep(0)  # each sends its first window, then waits for credit
        assert not done
        filler = HTTPCycle(request, pipe, lambda exc: None, "", {}, None)
        filler.credit(64 * MB)
        big = b"x" * MB

        async def fill(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while True:
                await send({"type": "http.response.body", "body": big, "more_body": True})

        filling = asyncio.create_task(filler.run(fill))
        assert await passes_until(lambda: pipe.backed_up)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for cycle in cycles:
                cycle.credit(chunk)  # room for the rest of each chunk, not in the pipe
            for _ in range(10):
                await asyncio.sleep(0)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert not done
        assert held < apps * ev.BODY_WINDOW_MIN  # copied, it would be 3 windows an app
        filling.cancel()
        # The front end reads: every app sends the rest.
        await front_end_reads_until(to_front_r, lambda: len(done) == apps)
        assert sorted(done) == list(range(apps))
        for task in tasks:
            task.cancel()
    finally:
        pipe.close()
