"""Idle connections, held open by the benchmark itself to weigh what one costs a server: each
makes one request (so the server has set up everything a served connection keeps), reads the
answer whole, and then stays open without a word."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import StreamEnded

TIMEOUT_S = 10.0


def _http1(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    received = b""
    while b"Hello, world!" not in received:  # bench.apps' answer to GET /
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed an HTTP/1.1 connection at once")
        received += data
    return sock


def _http2(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
    h2 = H2Connection(H2Configuration(client_side=True))
    h2.initiate_connection()
    headers = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "bench")]
    h2.send_headers(1, headers, end_stream=True)
    sock.sendall(h2.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed an HTTP/2 connection at once")
        events = h2.receive_data(data)
        sock.sendall(h2.data_to_send())  # the SETTINGS acknowledgement, at least
        if any(isinstance(event, StreamEnded) for event in events):
            return sock


@contextmanager
def idle_connections(host: str, port: int, count: int, http2: bool) -> Iterator[None]:
    """`count` connections that have each been served one request, open until the end."""
    opener = _http2 if http2 else _http1
    with ExitStack() as stack:
        for _ in range(count):
            stack.enter_context(opener(host, port))
        yield
