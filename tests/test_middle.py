"""The stateful middle in memory: HTTPConnection and its RequestCycles over a fake transport,
the pool's WorkerChannel to a worker (the real Worker and ASGI cycle) running on the same event
loop over real pipes, and a virtual clock, so that timeouts of seconds take none. No server
process, no socket, no sleep: what the client sent is fed to the connection, what it wrote is
read back, and the app below is told what to do through Python objects it shares with the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from support import FakeTransport, LoopbackWorker, run_virtual
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, TextMessage
from wsproto.events import Request as WSRequest

from interpserve.config import Config
from interpserve.frontend.connection import HTTPConnection
from interpserve.frontend.server import Server
from interpserve.frontend.websocket import CLOSE_TIMEOUT
from interpserve.pool import pool as pool_module
from interpserve.pool.pool import STUCK_AFTER, WorkerPool

APP = f"{__name__}:app"
MiB = 1024 * 1024


# The app: told what to do by the test, through `control` ---------------------------------------


@dataclass
class Control:
    """Shared by the test and the app (they run in one process, on one loop)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)  # what /gated waits for
    started: list[str] = field(default_factory=list)  # the paths the app has started
    received: list[dict[str, Any]] = field(default_factory=list)  # messages /gated-read got
    cancelled: list[str] = field(default_factory=list)


control = Control()


async def _answer(send: Callable[..., Any], body: bytes, status: int = 200) -> None:
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "websocket":
        await websocket_app(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    control.started.append(path)
    try:
        if path == "/echo":  # the whole body, once it has all come
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await _answer(send, body)
        elif path == "/gated":  # answers once the test opens the gate, reading nothing
            await control.gate.wait()
            await _answer(send, b"opened")
        elif path == "/gated-read":  # reads one message once the gate opens, then answers
            await control.gate.wait()
            control.received.append(await receive())
            await _answer(send, b"read")
        elif path == "/stream":  # 64 KiB chunks, as fast as the front end takes them
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(int(scope["query_string"] or 16)):
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/sleep":
            await asyncio.sleep(3600)
        elif path == "/disconnect":  # streams, then waits for the client to leave
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
            while (message := await receive())["type"] != "http.disconnect":
                pass
            control.received.append(message)
        else:
            await _answer(send, path.encode())
    except asyncio.CancelledError:
        control.cancelled.append(path)
        raise


async def websocket_app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    """Accepts; echoes text until "bye", which it answers by closing with 4000; records the
    disconnect when the client closes first."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        control.received.append(message)
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "bye":
            await send({"type": "websocket.close", "code": 4000, "reason": "asked to"})
            return
        await send({"type": "websocket.send", "text": message.get("text")})


# The harness ---------------------------------------------------------------------------------


@dataclass
class Client:
    conn: HTTPConnection
    transport: FakeTransport

    def send(self, data: bytes) -> None:
        self.conn.data_received(data)

    def responses(self) -> list[tuple[int, bytes]]:
        """The complete responses written so far, as (status, body); taken off what was
        written, so that the next call gives only newer ones."""
        return _split_responses(self.transport)

    async def wait_responses(self, count: int, timeout: float = 10.0) -> list[tuple[int, bytes]]:
        """The next `count` responses (100 Continue counts), once they are all written."""
        responses: list[tuple[int, bytes]] = []
        await until(lambda: len(responses.__iadd__(self.responses())) >= count, timeout)
        return responses


class FrontEnd:
    """A front end's shared state (as Server makes it) and a pool of loopback workers."""

    def __init__(self, pool: WorkerPool, server: Server) -> None:
        self.pool = pool
        self.state = server.state

    def connect(self) -> Client:
        conn, transport = HTTPConnection(self.state), FakeTransport()
        transport.set_protocol(conn)
        conn.connection_made(transport)
        return Client(conn, transport)

    def worker(self, index: int = 0) -> LoopbackWorker:
        worker = self.pool.workers[index]
        assert isinstance(worker, LoopbackWorker)
        return worker


@pytest.fixture
def front(monkeypatch: pytest.MonkeyPatch, http_impl: str) -> Callable[..., Any]:
    """`async with front(**config) as f:` a started front end; the app's control is fresh."""
    monkeypatch.setitem(pool_module.WORKER_KINDS, "loopback", LoopbackWorker)  # type: ignore[arg-type]

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[FrontEnd]:
        global control
        control = Control()
        options = {"workers": 1, "log_level": "warning", **options}
        config = Config(app=APP, http=http_impl, **options)
        pool = WorkerPool(config, "loopback")
        await pool.start()
        try:
            yield FrontEnd(pool, Server(config, pool, []))  # (no socket: nothing listens)
        finally:
            control.gate.set()
            await pool.stop(5.0)

    return start


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the loop run (in virtual time) until `predicate()` holds; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "it never happened"
        await asyncio.sleep(0.001)


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: a", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path: str, body: bytes = b"", *headers: str, length: int | None = None) -> bytes:
    """A POST with `body`, whose Content-Length says `length` (if given) instead."""
    size = len(body) if length is None else length
    lines = [f"POST {path} HTTP/1.1", "Host: a", f"Content-Length: {size}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _split_responses(transport: FakeTransport) -> list[tuple[int, bytes]]:
    data, out = bytes(transport.written), []
    while (end := data.find(b"\r\n\r\n")) >= 0:
        head = data[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        rest = data[end + 4 :]
        if status == 100:
            out.append((100, b""))
            data = rest
            continue
        if "content-length" in headers:
            size = int(headers["content-length"])
            if len(rest) < size:
                break
            body, data = rest[:size], rest[size:]
        elif headers.get("transfer-encoding") == "chunked":
            body, pos, complete = b"", 0, False
            while (line_end := rest.find(b"\r\n", pos)) >= 0:
                size = int(rest[pos:line_end], 16)
                if len(rest) < line_end + 2 + size + 2:
                    break
                body += rest[line_end + 2 : line_end + 2 + size]
                pos = line_end + 2 + size + 2
                if size == 0:
                    complete = True
                    break
            if not complete:
                break
            data = rest[pos:]
        else:
            break
        out.append((status, body))
    transport.written[:] = data
    return out


# Requests and pipelining ---------------------------------------------------------------------


def test_a_request_is_answered_by_the_worker(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front() as f:
            client = f.connect()
            client.send(get("/hello"))
            assert await client.wait_responses(1) == [(200, b"/hello")]
            assert control.started == ["/hello"]
            assert not client.transport.closed  # keep-alive

    run_virtual(main)


def test_pipelined_requests_are_answered_in_order_one_at_a_time(
    front: Callable[..., Any],
) -> None:
    """The second request is dispatched only once the first is answered, though both came in
    one read; its answer follows the first's."""

    async def main() -> None:
        async with front(workers=2) as f:
            client = f.connect()
            client.send(get("/gated") + get("/second") + get("/third"))
            await until(lambda: control.started == ["/gated"])
            assert client.conn.queued == 2
            assert f.state.queued_requests() == 2
            await asyncio.sleep(1)  # (virtual) the others wait, though a worker is idle
            assert control.started == ["/gated"] and client.transport.written == b""
            control.gate.set()
            responses = await client.wait_responses(3)
            assert responses == [(200, b"opened"), (200, b"/second"), (200, b"/third")]
            assert client.conn.queued == 0

    run_virtual(main)


def test_a_client_that_closes_is_told_to_the_app(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front() as f:
            client = f.connect()
            client.send(get("/disconnect"))
            await until(lambda: b"waiting" in client.transport.written)
            client.conn.connection_lost(None)
            await until(lambda: control.received)
            assert control.received == [{"type": "http.disconnect"}]
            assert not f.state.connections

    run_virtual(main)


# Backpressure --------------------------------------------------------------------------------


def test_a_body_the_app_does_not_read_pauses_reading(front: Callable[..., Any]) -> None:
    """Body bytes pile up only to a bound: then the client is not read, until the app takes
    what is waiting."""

    async def main() -> None:
        async with front() as f:
            client = f.connect()
            body = b"b" * (8 * MiB)
            client.send(post("/gated-read", length=len(body)))
            for start in range(0, len(body), 65536):
                if not client.transport.reading:
                    break
                client.send(body[start : start + 65536])
            assert not client.transport.reading, "8 MiB were buffered for an app not reading"
            assert client.conn.buffered < 4 * MiB
            control.gate.set()
            await until(lambda: client.transport.reading)

    run_virtual(main)


def test_many_pipelined_requests_pause_reading(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front() as f:
            client = f.connect()
            client.send(get("/gated"))
            await until(lambda: control.started)
            while client.transport.reading and client.conn.queued < 10_000:
                client.send(get("/next"))
            assert not client.transport.reading, "pipelined requests were queued unbounded"
            queued = client.conn.queued
            control.gate.set()
            await until(lambda: client.transport.reading)
            assert client.conn.queued < queued

    run_virtual(main)


def test_a_client_that_does_not_read_holds_the_app_back(front: Callable[..., Any]) -> None:
    """While the client's socket takes nothing more (the transport pauses writing), the app
    gets no credit for more of its response; as the client reads, the rest comes."""

    async def main() -> None:
        async with front() as f:
            client = f.connect()
            client.transport.stall()
            client.send(get("/stream?64"))
            await until(lambda: len(client.transport.written) > 0)
            await asyncio.sleep(1)  # (virtual) everything the app could send, it has
            assert len(client.transport.written) < 64 * 65536 / 2, "the app went on"
            responses: list[tuple[int, bytes]] = []

            def read_some() -> bool:
                client.transport.drain()
                responses.extend(client.responses())
                return bool(responses)

            await until(read_some)
            assert responses == [(200, b"x" * 64 * 65536)]

    run_virtual(main)


# 100-continue --------------------------------------------------------------------------------


def test_100_continue_waits_for_the_app_to_read(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front() as f:
            client = f.connect()
            client.send(post("/gated-read", b"", "Expect: 100-continue", length=5))
            await until(lambda: control.started)
            await asyncio.sleep(1)  # (virtual)
            assert client.transport.written == b"", "100 Continue before the app asked"
            control.gate.set()
            await until(lambda: client.transport.written.startswith(b"HTTP/1.1 100 "))
            client.send(b"hello")
            await until(lambda: control.received)
            assert control.received == [
                {"type": "http.request", "body": b"hello", "more_body": False}
            ]
            assert await client.wait_responses(2) == [(100, b""), (200, b"read")]

    run_virtual(main)


def test_an_answer_without_reading_skips_100_continue(front: Callable[..., Any]) -> None:
    """The app answers without reading the body: no 100 Continue, and, as the body may never
    come, the connection closes after the answer."""

    async def main() -> None:
        async with front() as f:
            client = f.connect()
            client.send(post("/plain", b"", "Expect: 100-continue", length=5))
            assert await client.wait_responses(1) == [(200, b"/plain")]
            await until(lambda: client.transport.closed)

    run_virtual(main)


# Timeouts, on the virtual clock --------------------------------------------------------------


def test_a_head_that_never_ends_gets_408_at_its_deadline(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front(timeout_header_read=10) as f:
            client = f.connect()
            loop = asyncio.get_running_loop()
            started = loop.time()
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
            for i in range(100):  # a line a second: still cut off at the deadline
                await asyncio.sleep(1)
                if client.transport.closed:
                    break
                client.send(b"X-%d: a\r\n" % i)
            assert client.transport.closed
            assert 9.9 < loop.time() - started < 11.5
            assert client.transport.written.startswith(b"HTTP/1.1 408 ")

    run_virtual(main)


def test_an_idle_keep_alive_connection_is_closed_quietly(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front(timeout_keep_alive=30) as f:
            client = f.connect()
            client.send(get("/one"))
            assert await client.wait_responses(1) == [(200, b"/one")]
            loop = asyncio.get_running_loop()
            answered = loop.time()
            await until(lambda: client.transport.closed, timeout=60)
            assert 29.9 < loop.time() - answered < 31
            assert client.transport.written == b""

    run_virtual(main)


def test_a_connection_kept_busy_by_probes_outlives_the_keep_alive_timeout(
    front: Callable[..., Any],
) -> None:
    """Answers the front end gives itself (health probes) restart the idle wait too."""

    async def main() -> None:
        async with front(timeout_keep_alive=5, health_path="/healthz") as f:
            client = f.connect()
            for _ in range(12):  # 12 s of probes a second apart, on one connection
                client.send(get("/healthz"))
                assert await client.wait_responses(1) == [(200, b"ok")]
                await asyncio.sleep(1)
            assert not client.transport.closed

    run_virtual(main)


def test_a_stalled_body_gets_408(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front(timeout_body_read=20) as f:
            client = f.connect()
            client.send(post("/echo", b"abc", length=10))
            await until(lambda: client.transport.closed, timeout=30)
            assert client.transport.written.startswith(b"HTTP/1.1 408 ")

    run_virtual(main)


def test_a_request_past_its_timeout_gets_504_and_is_cancelled(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front(timeout_request=60) as f:
            client = f.connect()
            loop = asyncio.get_running_loop()
            started = loop.time()
            client.send(get("/sleep"))
            assert await client.wait_responses(1, 120) == [(504, b"Gateway Timeout")]
            assert 59.9 < loop.time() - started < 61
            await until(lambda: control.cancelled == ["/sleep"])
            # The worker was not stuck: it answered the ping, and serves on.
            client.send(get("/after"))
            assert await client.wait_responses(1, 2 * STUCK_AFTER + 1) == [(200, b"/after")]

    run_virtual(main)


# Workers that are stuck or gone --------------------------------------------------------------


def test_a_stuck_worker_is_replaced(front: Callable[..., Any]) -> None:
    """The request times out, the worker answers no ping: it is taken out and replaced, and
    the next request is served by its replacement."""

    async def main() -> None:
        async with front(timeout_request=5) as f:
            stuck = f.worker()
            client = f.connect()
            client.send(get("/gated"))
            await until(lambda: control.started)
            stuck.freeze()
            assert await client.wait_responses(1) == [(504, b"Gateway Timeout")]
            await until(lambda: f.pool.workers and f.pool.workers[0] is not stuck, timeout=60)
            client.send(get("/next"))
            assert await client.wait_responses(1) == [(200, b"/next")]
            assert f.pool.restarts == 1

    run_virtual(main)


def test_a_request_on_a_worker_that_dies_gets_502(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front() as f:
            client = f.connect()
            client.send(get("/gated") + get("/after"))
            await until(lambda: control.started)
            f.worker().crash()
            responses = await client.wait_responses(2, 60)
            # The pipelined request behind it waits for the replacement, which serves it.
            assert responses == [(502, b"Bad Gateway"), (200, b"/after")]

    run_virtual(main)


def test_a_request_over_the_concurrency_limit_gets_503(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front(workers=2, limit_concurrency=1) as f:
            busy, other = f.connect(), f.connect()
            busy.send(get("/gated"))
            await until(lambda: control.started)
            other.send(get("/other"))
            assert await other.wait_responses(1) == [(503, b"Service Unavailable")]
            control.gate.set()
            assert await busy.wait_responses(1) == [(200, b"opened")]
            other.send(get("/again"))
            assert await other.wait_responses(1) == [(200, b"/again")]

    run_virtual(main)


# WebSocket sessions --------------------------------------------------------------------------


class WebSocketClient:
    """A wsproto client on a FrontEnd connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws = WSConnection(ConnectionType.CLIENT)
        client.send(self.ws.send(WSRequest(host="a", target="/ws")))

    def send(self, event: Any) -> None:
        self.client.send(self.ws.send(event))

    async def events(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The next `count` events the client makes of what the server wrote."""
        got: list[Any] = []

        def more() -> bool:
            if data := self.client.transport.take():  # (b"" would say the server closed)
                self.ws.receive_data(data)
            got.extend(self.ws.events())
            return len(got) >= count

        await until(more, timeout)
        return got


def test_a_websocket_session_echoes_and_the_app_closes_it(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front() as f:
            ws = WebSocketClient(f.connect())
            assert [type(e) for e in await ws.events(1)] == [AcceptConnection]
            ws.send(TextMessage("hello"))
            (echo,) = await ws.events(1)
            assert isinstance(echo, TextMessage) and echo.data == "hello"
            ws.send(TextMessage("bye"))
            (close,) = await ws.events(1)
            assert isinstance(close, CloseConnection)
            assert (close.code, close.reason) == (4000, "asked to")
            ws.send(close.response())
            await until(lambda: ws.client.transport.closed)

    run_virtual(main)


def test_an_open_websocket_is_counted_until_it_closes(front: Callable[..., Any]) -> None:
    """While one is open, no fresh serving process takes over after a burst (leftover.py)."""

    async def main() -> None:
        async with front() as f:
            assert not f.state.holds_websockets()
            ws = WebSocketClient(f.connect())
            await ws.events(1)
            assert f.state.holds_websockets()
            ws.send(CloseConnection(code=1000))
            await ws.events(1)
            await until(lambda: ws.client.transport.closed)
            ws.client.conn.connection_lost(None)  # (what the loop does once a socket is closed)
            assert not f.state.holds_websockets()

    run_virtual(main)


def test_a_websocket_client_that_closes_is_told_to_the_app(front: Callable[..., Any]) -> None:
    async def main() -> None:
        async with front() as f:
            ws = WebSocketClient(f.connect())
            await ws.events(1)
            ws.send(CloseConnection(code=1001, reason="leaving"))
            (answer,) = await ws.events(1)
            assert isinstance(answer, CloseConnection) and answer.code == 1001
            await until(lambda: control.received)
            assert control.received == [
                {"type": "websocket.disconnect", "code": 1001, "reason": "leaving"}
            ]

    run_virtual(main)


def test_a_websocket_client_that_never_answers_the_close_is_dropped(
    front: Callable[..., Any],
) -> None:
    """The app closes; the client's close frame never comes: after CLOSE_TIMEOUT (virtual) the
    connection is dropped."""

    async def main() -> None:
        async with front() as f:
            ws = WebSocketClient(f.connect())
            await ws.events(1)
            ws.send(TextMessage("bye"))
            (close,) = await ws.events(1)
            assert isinstance(close, CloseConnection)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await until(lambda: ws.client.transport.closed, CLOSE_TIMEOUT + 5)
            assert CLOSE_TIMEOUT - 0.1 < loop.time() - started < CLOSE_TIMEOUT + 1

    run_virtual(main)
