"""WebSockets through the interpreter pool: a real interpserve process and a real client (the
`websockets` library), over loopback only; raw sockets where the client must misbehave. Then
the sans-IO pieces: the parsers' Upgrade event and the wire frames.

Tests that take `ws_server` run once per parser backend (h11 and httptools). Every connection
has a timeout, so a server that hangs fails the test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import (
    TIMEOUT,
    ParserClass,
    PeakRSS,
    StartServer,
    backend_server_fixtures,
    rss_bytes,
    wait_for_file,
    ws_client,
)
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from interpserve import events as ev
from interpserve import wire
from interpserve.errors import WireError
from interpserve.frontend.http_parser import (
    END_OF_REQUEST,
    RequestHead,
    Upgrade,
)
from interpserve.frontend.http_rules import Limits, is_websocket_upgrade, make_head
from interpserve.testing import ServerProcess, wait_until

RAW_APP = "tests.apps.ws_raw:app"
STARLETTE_APP = "tests.apps.ws_starlette:app"
MiB = 1024 * 1024
# tests.apps.ws_raw on two workers.
shared_ws_server, ws_server = backend_server_fixtures("ws_server", RAW_APP, "--workers", "2")


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Wait for the connection to close; the close code and reason the server sent."""
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    return ws.close_code, ws.close_reason


def read_marker(path: Path) -> Any:
    """What the app wrote to a marker file, once it has."""
    return json.loads(wait_for_file(path))


# Raw WebSocket client, for what a well-behaved client library will not do ----------------------


def handshake_bytes(path: str) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key)
    )


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        header = struct.pack("!BB", first, 0x80 | len(payload))
    else:
        header = struct.pack("!BBH", first, 0x80 | 126, len(payload))
    return header + mask + masked


class RawWebSocket:
    def __init__(self, server: ServerProcess, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def open(self, path: str, after: bytes = b"") -> None:
        self.sock.sendall(handshake_bytes(path) + after)
        head = self.read_head()
        assert head.startswith(b"HTTP/1.1 101 "), head

    def read_frame(self) -> tuple[int, bytes]:
        """The next server frame (unmasked, unfragmented, not compressed): opcode, payload."""
        while True:
            if len(self.buffer) >= 2:
                length, offset = self.buffer[1] & 0x7F, 2
                if length == 126 and len(self.buffer) >= 4:
                    (length,) = struct.unpack_from("!H", self.buffer, 2)
                    offset = 4
                if length < 126 or offset == 4:
                    end = offset + length
                    if len(self.buffer) >= end:
                        opcode = self.buffer[0] & 0x0F
                        payload, self.buffer = self.buffer[offset:end], self.buffer[end:]
                        return opcode, payload
            self.buffer += self._read()

    def at_eof(self) -> bool:
        try:
            return self._read() == b""
        except EOFError:
            return True


def close_payload(payload: bytes) -> tuple[int, str]:
    (code,) = struct.unpack_from("!H", payload)
    return code, payload[2:].decode()


# Messages ------------------------------------------------------------------------------------


async def test_echo_text_and_binary(ws_server: ServerProcess) -> None:
    async with ws_client(ws_server, "/echo", subprotocols=["chat", "other"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response is not None and ws.response.headers["x-ws-test"] == "yes"
        messages: list[str | bytes] = ["hello", "héllo wörld ✓", "", b"\x00\x01\xff", b""]
        for message in messages:
            await ws.send(message)
            assert await recv(ws) == message


async def test_scope(ws_server: ServerProcess) -> None:
    async with ws_client(ws_server, "/scope?a=1&b=%20", subprotocols=["x"]) as ws:
        scope = json.loads(await recv(ws))
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (
        "/scope",
        "/scope",
        "a=1&b=%20",
    )
    assert scope["subprotocols"] == ["x"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["client"][0] == "127.0.0.1"
    assert ["upgrade", "websocket"] in scope["headers"]


async def test_scope_behind_a_trusted_proxy(ws_server: ServerProcess) -> None:
    forwarded = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
    async with ws_client(ws_server, "/scope", additional_headers=forwarded) as ws:
        scope = json.loads(await recv(ws))
    assert (scope["scheme"], scope["client"][0]) == ("wss", "203.0.113.7")


async def test_ten_megabyte_messages(ws_server: ServerProcess) -> None:
    binary = os.urandom(10 * MiB)
    text = base64.b64encode(os.urandom(7 * MiB)).decode()  # ~9.3 MiB
    async with ws_client(ws_server, "/echo") as ws:
        await ws.send(binary)
        assert await recv(ws) == binary
        await ws.send(text)
        assert await recv(ws) == text


async def test_fragmented_messages_are_reassembled(ws_server: ServerProcess) -> None:
    async with ws_client(ws_server, "/echo") as ws:
        await ws.send(["frag", "men", "ted ✓"])
        assert await recv(ws) == "fragmented ✓"
        await ws.send([b"\x01" * 70_000, b"\x02" * 70_000, b"\x03"])
        assert await recv(ws) == b"\x01" * 70_000 + b"\x02" * 70_000 + b"\x03"


def test_utf8_split_across_fragments_and_early_data(ws_server: ServerProcess) -> None:
    """A character split between two frames, sent in the same packet as the handshake (bytes
    the parser must hand over), then a pipelined ping."""
    encoded = "é✓".encode()
    frames = (
        client_frame(0x1, encoded[:1], fin=False)
        + client_frame(0x0, encoded[1:4], fin=False)
        + client_frame(0x0, encoded[4:])
        + client_frame(0x9, b"are you there")
    )
    ws = RawWebSocket(ws_server)
    try:
        ws.open("/echo", after=frames)
        assert ws.read_frame() == (0xA, b"are you there")  # pongs are not held for messages
        assert ws.read_frame() == (0x1, encoded)
    finally:
        ws.close()


def test_invalid_utf8_closes_with_1007(ws_server: ServerProcess) -> None:
    ws = RawWebSocket(ws_server)
    try:
        ws.open("/echo")
        ws.sock.sendall(client_frame(0x1, b"\xff\xfe"))
        opcode, payload = ws.read_frame()
        assert opcode == 0x8
        assert close_payload(payload)[0] == 1007
        assert ws.at_eof()
    finally:
        ws.close()


def test_http_request_pipelined_before_the_upgrade(ws_server: ServerProcess) -> None:
    ws = RawWebSocket(ws_server)
    try:
        ws.sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + handshake_bytes("/echo"))
        assert ws.read_head().startswith(b"HTTP/1.1 200 ")
        while len(ws.buffer) < 4:
            ws.buffer += ws.sock.recv(65536)
        assert ws.buffer.startswith(b"http")
        ws.buffer = ws.buffer[4:]
        assert ws.read_head().startswith(b"HTTP/1.1 101 ")
        ws.sock.sendall(client_frame(0x2, b"after http"))
        assert ws.read_frame() == (0x2, b"after http")
    finally:
        ws.close()


async def test_client_ping_is_answered(ws_server: ServerProcess) -> None:
    async with ws_client(ws_server, "/echo") as ws:
        pong = await ws.ping(b"ping!")
        await asyncio.wait_for(pong, TIMEOUT)


# Closing -------------------------------------------------------------------------------------


@pytest.mark.own_server
def test_a_client_that_breaks_the_protocol_is_no_error_of_the_app(
    ws_server: ServerProcess, tmp_path: Path
) -> None:
    """One invalid frame: the server closes with 1002, the app's next send() raises the
    disconnect (as ASGI asks), and that is not logged as an application error."""
    marker = tmp_path / "raised"
    ws = RawWebSocket(ws_server)
    try:
        ws.open(f"/send-forever?marker={marker}")
        assert ws.read_frame() == (0x1, b"tick")
        ws.sock.sendall(client_frame(0x3, b"?"))  # a reserved opcode
        assert wait_until(marker.exists)
    finally:
        ws.close()
    assert marker.read_text() == "ClientDisconnected"
    assert httpx.get(ws_server.url + "/after", timeout=TIMEOUT).text == "http"
    assert ws_server.wait_for_output('"GET /after HTTP/1.1" 200')
    assert "Exception in ASGI application" not in ws_server.output


async def test_client_close_code_reaches_the_app(ws_server: ServerProcess, tmp_path: Path) -> None:
    marker = tmp_path / "closed.json"
    async with ws_client(ws_server, f"/until-closed?marker={marker}") as ws:
        await ws.close(code=4000, reason="client bye")
    assert read_marker(marker) == {"code": 4000, "reason": "client bye"}


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        ("/close?code=4001&reason=server+bye", 4001, "server bye"),
        ("/close?code=1000", 1000, ""),
        ("/return", 1000, ""),  # the app returned without closing
        ("/error", 1011, ""),  # the app raised
    ],
)
async def test_server_close_codes(
    ws_server: ServerProcess, path: str, code: int, reason: str
) -> None:
    async with ws_client(ws_server, path) as ws:
        assert await closed(ws) == (code, reason)


async def test_server_closes_after_a_message(ws_server: ServerProcess) -> None:
    async with ws_client(ws_server, "/close-after?code=4002") as ws:
        await ws.send("last words")
        assert await closed(ws) == (4002, "")


def test_client_vanishing_is_a_disconnect_for_the_app(
    ws_server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "vanished.json"
    ws = RawWebSocket(ws_server)
    ws.open(f"/until-closed?marker={marker}")
    ws.close()  # no close frame: the TCP connection just ends
    assert read_marker(marker) == {"code": 1006, "reason": ""}


async def test_shutdown_closes_websockets_with_1012(start_server: StartServer) -> None:
    server = start_server(RAW_APP, "--workers", "1")
    async with ws_client(server, "/echo") as ws:
        await ws.send("before")
        assert await recv(ws) == "before"
        stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
        assert (await closed(ws))[0] == 1012
        assert await asyncio.wait_for(stopping, TIMEOUT * 2) == 0


async def test_reload_closes_websockets_with_1012(start_server: StartServer) -> None:
    """Retiring a worker (SIGHUP reload here; recycling is the same) closes its WebSockets, which
    would otherwise hold up its drain for as long as they last; clients reconnect elsewhere."""
    server = start_server(RAW_APP, "--workers", "1")
    async with ws_client(server, "/echo") as ws:
        server.signal(signal.SIGHUP)
        assert (await closed(ws))[0] == 1012
    async with ws_client(server, "/echo") as ws:
        await ws.send("new worker")
        assert await recv(ws) == "new worker"


# Handshake outcomes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/deny-body", 403, b"go away!!"),  # websocket.http.response.start/body
        ("/deny", 403, b""),  # websocket.close before accepting
        ("/error-early", 500, b"Internal Server Error"),
    ],
)
async def test_denials(ws_server: ServerProcess, path: str, status: int, body: bytes) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with ws_client(ws_server, path):
            pass
    assert info.value.response.status_code == status
    assert info.value.response.body == body


@pytest.mark.parametrize(
    ("path", "status_line"),
    [("/echo", b"HTTP/1.1 101 Switching Protocols"), ("/deny", b"HTTP/1.1 403 Forbidden")],
)
def test_handshake_responses_carry_what_every_response_does(
    start_server: StartServer, path: str, status_line: bytes
) -> None:
    """Server, Date and --header lines, and a reason phrase, as on HTTP responses (uvicorn's
    have them); a denial says the connection closes."""
    server = start_server(RAW_APP, "--header", "X-Site: abc")
    ws = RawWebSocket(server)
    try:
        ws.sock.sendall(handshake_bytes(path))
        head = ws.read_head()
    finally:
        ws.close()
    lines = head.lower().split(b"\r\n")
    assert lines[0] == status_line.lower(), head
    assert b"server: interpserve" in lines and b"x-site: abc" in lines, head
    assert any(line.startswith(b"date: ") for line in lines), head
    assert (b"connection: close" in lines) == path.startswith("/deny"), head


def test_invalid_handshake_is_answered_by_the_front_end(ws_server: ServerProcess) -> None:
    ws = RawWebSocket(ws_server)
    try:
        ws.sock.sendall(handshake_bytes("/echo").replace(b"Version: 13", b"Version: 8"))
        head = ws.read_head()
        assert head.startswith(b"HTTP/1.1 426 "), head
        assert b"sec-websocket-version: 13" in head.lower()
    finally:
        ws.close()


async def test_ws_none_serves_upgrades_as_plain_http(
    start_server: StartServer, http_impl: str
) -> None:
    server = start_server(RAW_APP, "--ws", "none", "--http", http_impl)
    with pytest.raises(InvalidStatus) as info:
        async with ws_client(server, "/echo"):
            pass
    assert info.value.response.status_code == 200
    assert info.value.response.body == b"http"


# Limits and keepalive --------------------------------------------------------------------------


async def test_max_size_exceeded_closes_with_1009(
    start_server: StartServer, http_impl: str, tmp_path: Path
) -> None:
    server = start_server(RAW_APP, "--ws-max-size", "1000", "--http", http_impl)
    async with ws_client(server, "/echo") as ws:
        await ws.send(b"x" * 1000)  # the limit itself is fine
        assert await recv(ws) == b"x" * 1000
        await ws.send("é" * 501)  # 1002 bytes of UTF-8, in 501 characters
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    marker = tmp_path / "too-big.json"
    async with ws_client(server, f"/until-closed?marker={marker}") as ws:
        await ws.send([b"x" * 400, b"x" * 400, b"x" * 400])  # too big only once reassembled
        assert (await closed(ws))[0] == 1009
    assert (read_marker(marker))["code"] == 1009


def test_unanswered_pings_close_the_connection(start_server: StartServer) -> None:
    server = start_server(RAW_APP, "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3")
    ws = RawWebSocket(server)
    try:
        ws.open("/echo")
        started = time.monotonic()
        assert ws.read_frame()[0] == 0x9  # a ping, which this client does not answer
        opcode, payload = ws.read_frame()
        while opcode == 0x9:
            opcode, payload = ws.read_frame()
        assert opcode == 0x8
        assert close_payload(payload) == (1011, "keepalive ping timeout")
        assert time.monotonic() - started < 5
    finally:
        ws.close()


@pytest.mark.parametrize("flag", ["--ws-per-message-deflate", "--no-ws-per-message-deflate"])
async def test_per_message_deflate(start_server: StartServer, flag: str) -> None:
    server = start_server(RAW_APP, flag)
    async with ws_client(server, "/echo") as ws:
        names = [extension.name for extension in ws.protocol.extensions]
        assert names == (["permessage-deflate"] if flag.startswith("--ws") else [])
        await ws.send("compressible " * 1000)
        assert await recv(ws) == "compressible " * 1000


async def test_a_compression_bomb_is_refused_before_it_is_inflated(
    start_server: StartServer,
) -> None:
    """256 MiB of zeros compress to some 256 KB: the message is refused (1009) once it
    inflates past --ws-max-size, not inflated whole first, which took the front end seconds
    and as many megabytes while every other connection waited."""
    server = start_server(RAW_APP, "--ws-max-size", "1000000")
    before = rss_bytes(server.pid)
    with PeakRSS(server.pid) as rss:
        async with ws_client(server, "/echo") as ws:
            await ws.send(bytes(256 * MiB))
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert rss.peak - before < 64 * MiB, f"{(rss.peak - before) / MiB:.0f} MiB"
    assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code in (200, 404)


# Flow control --------------------------------------------------------------------------------


async def test_slow_client_holds_up_the_app_not_memory(
    ws_server: ServerProcess, tmp_path: Path
) -> None:
    """The app sends 1 MiB messages to a client that does not read: its send() must wait, so
    only about a socket buffer's worth is ever in flight (not the 300 MiB it wants to send)."""
    marker = tmp_path / "sent"
    path = f"/flood?n=300&size={MiB}&marker={marker}"
    async with ws_client(ws_server, path, max_queue=1, compression=None, close_timeout=1) as ws:
        await asyncio.sleep(2)  # the stimulus: a client that reads nothing for a while
        sent = int(marker.read_text())
        assert 1 <= sent < 64
        for _ in range(10):  # reading lets it go on
            await recv(ws)
        assert wait_until(lambda: int(marker.read_text() or 0) > sent, TIMEOUT)  # (or mid-write)


async def test_slow_app_stops_the_reading_of_its_client(ws_server: ServerProcess) -> None:
    """The app does not receive for 3 seconds: the server stops reading the client, whose sends
    then wait; nothing is lost."""
    chunk = os.urandom(MiB)  # (incompressible: compression would hide the backlog)
    sent = 0

    async def pump(ws: ClientConnection) -> None:
        nonlocal sent
        while True:
            await ws.send(chunk)
            sent += 1

    async with ws_client(ws_server, "/slow-reader?seconds=3") as ws:
        task = asyncio.create_task(pump(ws))
        await asyncio.sleep(2)  # the stimulus: a client that sends while the app does not read
        task.cancel()
        assert sent < 64
        await ws.send("done")
        total = int(await asyncio.wait_for(ws.recv(), TIMEOUT * 2))
        # The frame of the send cancelled while it waited had been written already.
        assert total - 4 in (sent * MiB, (sent + 1) * MiB)


# Many connections, few workers -----------------------------------------------------------------


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        pytest.skip(f"needs {wanted} file descriptors")


async def test_500_concurrent_websockets_on_2_workers(start_server: StartServer) -> None:
    count = 500
    _raise_fd_limit(4 * count)  # (the server, started after this, inherits the limit)
    server = start_server(RAW_APP, "--workers", "2", "--no-access-log")
    all_open = asyncio.Event()
    opened = 0

    async def one(i: int) -> None:
        nonlocal opened
        async with ws_client(server, "/echo", open_timeout=30) as ws:
            opened += 1
            if opened == count:
                all_open.set()
            await asyncio.wait_for(all_open.wait(), 30)  # all of them open at once
            await ws.send(f"message {i}")
            assert await recv(ws) == f"message {i}"

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), 60)
    assert time.monotonic() - started < 60


async def test_websockets_spread_over_workers_and_leave_them_free(
    start_server: StartServer,
) -> None:
    """An open WebSocket counts as load for dispatch, and ties up no worker: with 10 open, they
    are split evenly and plain requests are still answered at once."""
    server = start_server(RAW_APP, "--workers", "2")
    connections = [await ws_client(server, "/whoami") for _ in range(10)]
    try:
        workers = [tuple(json.loads(await recv(ws)).values()) for ws in connections]
        assert sorted(workers.count(w) for w in set(workers)) == [5, 5]
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            started = time.monotonic()
            response = await http.get(f"{server.url}/")
            assert response.text == "http"
            assert time.monotonic() - started < 1
    finally:
        for ws in connections:
            await ws.close()


# Starlette -----------------------------------------------------------------------------------


async def test_starlette_websocket_routes(start_server: StartServer, http_impl: str) -> None:
    server = start_server(STARLETTE_APP, "--workers", "2", "--http", http_impl)
    async with ws_client(server, "/echo") as ws:
        await ws.send("hi")
        assert await recv(ws) == "echo: hi"
    async with ws_client(server, "/json") as ws:
        await ws.send(json.dumps({"n": 1}))
        assert json.loads(await recv(ws)) == {"got": {"n": 1}}
        assert (await closed(ws))[0] == 4000
    with pytest.raises(InvalidStatus) as info:
        async with ws_client(server, "/deny"):
            pass
    assert (info.value.response.status_code, info.value.response.body) == (401, b"members only")
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        assert (await http.get(f"{server.url}/")).text == "starlette"


async def test_chat_example_broadcasts(start_server: StartServer) -> None:
    server = start_server("examples.ws_chat:app", "--workers", "1")
    async with ws_client(server, "/ws?name=ann") as ann, ws_client(server, "/ws?name=bob") as bob:
        assert json.loads(await recv(ann))["text"] == "ann joined"
        assert json.loads(await recv(ann))["text"] == "bob joined"
        assert json.loads(await recv(bob))["text"] == "bob joined"
        await ann.send("hi bob")
        assert json.loads(await recv(bob))["text"] == "hi bob"


# Sans-IO pieces ------------------------------------------------------------------------------

HANDSHAKE = handshake_bytes("/chat")


@pytest.mark.parametrize("split", [1, 20, len(HANDSHAKE) - 1, len(HANDSHAKE)])
def test_parsers_hand_over_the_bytes_after_an_upgrade(
    parser_class: ParserClass, split: int
) -> None:
    parser = parser_class()
    data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + HANDSHAKE + b"\x81\x80frames"
    cut = len(data) - len(HANDSHAKE) - 8 + split
    events = parser.feed(data[:cut]) + parser.feed(data[cut:])
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["RequestHead", "EndOfRequest"] * 2 + ["Upgrade"]
    upgrade = events[-1]
    assert isinstance(upgrade, Upgrade) and events[3] is END_OF_REQUEST
    # Bytes that arrive later are not the parser's: the connection gives them to the session.
    assert upgrade.data == (b"" if split == len(HANDSHAKE) else b"\x81\x80frames")
    assert upgrade.head is events[2] and is_websocket_upgrade(upgrade.head)
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == []  # no more HTTP


def test_upgrade_needs_connection_upgrade(parser_class: ParserClass) -> None:
    """An Upgrade header alone proposes nothing (llhttp's rule, applied to h11 too)."""
    parser = parser_class()
    request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"
    events = parser.feed(request + request)
    assert [type(event).__name__ for event in events] == ["RequestHead", "EndOfRequest"] * 2


def _head(method: str = "GET", version: str = "1.1", **headers: str) -> RequestHead:
    """A request head as both parsers make theirs."""
    fields = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return make_head(method.encode(), b"/", version, [(b"host", b"x"), *fields], Limits())


def test_is_websocket_upgrade() -> None:
    assert is_websocket_upgrade(_head(upgrade="WebSocket", connection="keep-alive, Upgrade"))
    assert not is_websocket_upgrade(_head(upgrade="h2c", connection="upgrade"))
    assert not is_websocket_upgrade(_head(upgrade="websocket"))
    assert not is_websocket_upgrade(_head("POST", upgrade="websocket", connection="upgrade"))
    assert not is_websocket_upgrade(_head(version="1.0", upgrade="websocket", connection="upgrade"))


def test_websocket_events_cross_the_wire() -> None:
    events: list[ev.Event] = [
        ev.WebSocketMessage(1, "héllo ✓"),
        ev.WebSocketMessage(1, b"\x00\xff"),
        ev.WebSocketMessage(2, ""),
        ev.WebSocketMessage(2, b""),
        ev.WebSocketAccept(1, "chat", ((b"x-a", b"1"),)),
        ev.WebSocketAccept(2, "", ()),
        ev.WebSocketClose(1, 4000, "bye ✓"),
        ev.WebSocketClose(2, 1006, ""),
        ev.Request(
            request_id=3,
            method="GET",
            scheme="http",
            http_version="1.1",
            raw_path=b"/ws",
            query_string=b"",
            headers=(),
            client=None,
            server=None,
            more_body=False,
            expect_continue=False,
            websocket=True,
        ),
    ]
    stream = b"".join(wire.encode(event) for event in events)
    decoder = wire.FrameDecoder()
    decoded = [event for i in range(len(stream)) for event in decoder.feed(stream[i : i + 1])]
    assert decoded == events


@pytest.mark.parametrize(
    "frame",
    [
        wire._HEADER.pack(wire.WEBSOCKET_CLOSE, 1, 1) + b"\x03",
        wire._HEADER.pack(wire.WEBSOCKET_TEXT, 1, 1) + b"\xff",
        wire._HEADER.pack(wire.WEBSOCKET_ACCEPT, 1, 0),
    ],
)
def test_broken_websocket_frames(frame: bytes) -> None:
    with pytest.raises(WireError):
        wire.FrameDecoder().feed(frame)
