"""What one client, or many, can make the front end hold and do: a real interpserve process and
real sockets, over loopback only (the sizes measured in bench/'s hostile scenario; here only
what bounds them, and generous bounds on growth).

- an app that does not read its body holds its request's small window, however much the client
  sends; many of them hold little more than that each;
- the budget (--limit-buffers) stops reading what would go past it, and reading resumes as it
  drains, with nothing lost;
- many clients that read a big download slowly hold the app's chunk each and little more: its
  send() waits for the client (the response's window) and for the worker's pipe;
- a body of tiny chunks arrives whole, in few messages;
- the app's mistakes are named in the log (and a 500 given when that is still possible), and a
  client's leaving is none of the app's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import (
    BUFFERS_APP,
    MB,
    TIMEOUT,
    PeakRSS,
    RawConnection,
    StartServer,
    raw_get,
    raw_request,
    rss_bytes,
)
from websockets.asyncio.client import connect

from interpserve import events as ev
from interpserve.frontend.connection import _READ_LEAST
from interpserve.testing import ServerProcess, wait_until


@pytest.fixture
def buffers_server(start_server: StartServer, http_impl: str) -> ServerProcess:
    return start_server(BUFFERS_APP, "--workers", "2", "--http", http_impl)


def send_until_held_back(sock: socket.socket, data: bytes, timeout: float = TIMEOUT) -> int:
    """Send as much of `data` as the connection takes until the server stops reading it (the
    socket's buffers on both sides are full, and stay so); how much went."""
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + timeout
    view = memoryview(data)
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += sock.send(view[sent : sent + 65536])
            except BlockingIOError:
                # Full: if the server still reads, room comes back within moments.
                _, writable, _ = select.select([], [sock], [], 0.5)
                if not writable:
                    return sent
    finally:
        sock.setblocking(True)
    return sent


def post(path: str, size: int) -> bytes:
    return raw_request("POST", path, f"Content-Length: {size}")


# Windows ---------------------------------------------------------------------------------------


def test_an_app_that_does_not_read_holds_its_window(
    buffers_server: ServerProcess, tmp_path: Path
) -> None:
    """The client sends a 32 MB body that the app does not read yet: the worker gets no more
    of it than the request's window (what the app's first receive() brings counts it), and
    the rest stays in the client's socket until the app reads on; then all of it arrives."""
    marker = tmp_path / "go"
    size = 32 * MB
    body = os.urandom(size)
    with RawConnection(buffers_server, timeout=30) as conn:
        conn.send(post(f"/hold?marker={marker}", size))
        sent = send_until_held_back(conn.sock, body)
        assert sent < size, "the server read the whole body for an app that did not read it"
        marker.touch()
        conn.send(body[sent:])
        answer = json.loads(conn.read_response().body)
    assert answer["total"] == size
    assert 0 < answer["first"] <= ev.BODY_WINDOW_MIN


def test_many_unread_uploads_hold_little(buffers_server: ServerProcess, tmp_path: Path) -> None:
    """200 clients each send 4 MB that their apps do not read yet: the server's memory grows by
    a window and some bookkeeping each, not by what they send."""
    marker = tmp_path / "go"
    size, clients = 4 * MB, 200
    body = b"u" * size
    idle = rss_bytes(buffers_server.pid)
    conns = [RawConnection(buffers_server, timeout=30) for _ in range(clients)]
    try:
        for conn in conns:
            conn.send(post(f"/hold?marker={marker}", size))
        with ThreadPoolExecutor(50) as pool:
            sent = list(pool.map(lambda conn: send_until_held_back(conn.sock, body), conns))
        grown = rss_bytes(buffers_server.pid) - idle
        assert grown < 64 * MB, f"RSS grew by {grown / MB:.0f} MB for {clients} unread uploads"
        marker.touch()
        senders = [
            threading.Thread(target=conn.send, args=(body[done:],), daemon=True)
            for conn, done in zip(conns, sent, strict=True)
        ]
        for sender in senders:
            sender.start()
        answers = [json.loads(conn.read_response().body) for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert all(answer["total"] == size for answer in answers)


async def _read_slowly(port: int, path: str, piece: int) -> tuple[bytes, int, str]:
    """GET `path` through a small receive buffer, `piece` bytes a loop pass: the answer's
    status line, and its body's size and sha256."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=piece)
    try:
        writer.write(raw_get(path, "Connection: close"))
        head = await reader.readuntil(b"\r\n\r\n")
        digest, size = hashlib.sha256(), 0
        while data := await reader.read(piece):
            digest.update(data)
            size += len(data)
            await asyncio.sleep(0)
        return head.split(b"\r\n", 1)[0], size, digest.hexdigest()
    finally:
        writer.close()


def _stream_digest(mib: int) -> str:
    """The sha256 of the buffers app's /stream?mib=MIB body: 64 KiB chunks of one byte value
    each, counting up."""
    expected = hashlib.sha256()
    for index in range(mib * 16):
        expected.update(bytes([index % 256]) * 65536)
    return expected.hexdigest()


async def test_many_slow_readers_of_a_download_hold_little(buffers_server: ServerProcess) -> None:
    """100 clients read a 4 MiB download of fresh 64 KiB chunks through small buffers, while
    the front end, serving all of them, is slower than the apps: the server's memory grows
    by about the app's own chunk each (what any server holds for it), not by what the apps
    could produce meanwhile, and every byte arrives in order."""
    clients, mib = 100, 4
    path = f"/stream?mib={mib}"
    idle = rss_bytes(buffers_server.pid)
    with PeakRSS(buffers_server.pid) as peak:
        readers = (_read_slowly(buffers_server.port, path, 4096) for _ in range(clients))
        answers = await asyncio.wait_for(asyncio.gather(*readers), 60)
    grown = peak.peak - idle
    assert set(answers) == {(b"HTTP/1.1 200 OK", mib * MB, _stream_digest(mib))}
    # (A generous bound: test_pipes.py counts what a worker holds for a pipe not emptied.)
    assert grown < clients * 320 * 1024, f"RSS grew by {grown / MB:.0f} MB for {clients} readers"


# The budget ------------------------------------------------------------------------------------


async def test_slow_readers_past_a_spent_budget_get_every_byte(
    start_server: StartServer, http_impl: str
) -> None:
    """30 slow readers of a 1 MiB download through a budget of 64 KiB, spent at once: their
    windows narrow to the least as they read, and every byte still arrives, in order."""
    server = start_server(
        BUFFERS_APP, "--workers", "2", "--http", http_impl, "--limit-buffers", "65536"
    )
    clients, mib = 30, 1
    readers = (_read_slowly(server.port, f"/stream?mib={mib}", 4096) for _ in range(clients))
    answers = await asyncio.wait_for(asyncio.gather(*readers), 60)
    assert set(answers) == {(b"HTTP/1.1 200 OK", mib * MB, _stream_digest(mib))}
    assert "--limit-buffers" in server.output  # (the budget was spent)


async def test_the_budget_stops_reads_and_resumes_them(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Four WebSocket apps do not receive their clients' 60 kB messages yet (each within its
    window, so each is read whole: its ping is answered). A fifth client's message takes the
    front end past its budget of 256 KiB: that connection is read no further (its next ping goes
    unanswered) until the apps receive; then everything arrives, whole."""
    server = start_server(BUFFERS_APP, "--workers", "2", "--limit-buffers", "262144")
    marker, log, fifth = tmp_path / "go", tmp_path / "log", tmp_path / "fifth"
    base = f"ws://{server.host}:{server.port}/hold?marker={marker}"
    options: dict[str, Any] = {"open_timeout": TIMEOUT, "max_size": None, "compression": None}
    holders = [await connect(f"{base}&log={log}", **options) for _ in range(4)]
    try:
        for ws in holders:
            await ws.send(os.urandom(60_000))
            await asyncio.wait_for(await ws.ping(), TIMEOUT)
        assert "--limit-buffers" not in server.output
        async with connect(f"{base}&log={fifth}", **options) as ws:
            await ws.send(os.urandom(30_000))
            assert await asyncio.to_thread(server.wait_for_output, "--limit-buffers")
            pong = await ws.ping()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pong), 1.0)
            marker.touch()
            await asyncio.wait_for(pong, TIMEOUT)
            assert wait_until(lambda: fifth.exists() and fifth.read_text().count("\n") == 1)
        assert wait_until(lambda: log.exists() and log.read_text().count("\n") == 4)
        assert [line.split()[0] for line in log.read_text().splitlines()] == ["60000"] * 4
        assert fifth.read_text().split()[0] == "30000"
    finally:
        for ws in holders:
            await ws.close()


# Cost per byte ---------------------------------------------------------------------------------


def test_a_body_of_tiny_chunks_arrives_whole_in_few_messages(
    buffers_server: ServerProcess,
) -> None:
    """200,000 one-byte chunks: every byte arrives, and the app receives them in few messages
    (one per read from the socket at most), not one per chunk. (A loaded machine makes the
    reads smaller, down to the least a connection reads: the bound holds for those too.)"""
    data = os.urandom(200_000)
    body = b"".join(b"1\r\n%s\r\n" % data[i : i + 1] for i in range(len(data))) + b"0\r\n\r\n"
    with RawConnection(buffers_server, timeout=30) as conn:
        conn.send(raw_request("POST", "/count", "Transfer-Encoding: chunked") + body)
        answer = json.loads(conn.read_response().body)
    assert answer["size"] == len(data)
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()
    assert answer["messages"] <= len(body) // _READ_LEAST


# The app's mistakes ----------------------------------------------------------------------------


def test_a_second_response_start_is_a_500(buffers_server: ServerProcess) -> None:
    """Nothing had gone to the client yet: it gets a 500, the operator the app's error."""
    with RawConnection(buffers_server) as conn:
        conn.send(raw_get("/double-start") + raw_get("/count"))
        first, second = conn.read_response(), conn.read_response()
    assert first.status == 500
    assert second.status == 200  # the connection is still in step
    assert buffers_server.wait_for_output("got 'start'")
    assert "Exception in ASGI application" in buffers_server.output
