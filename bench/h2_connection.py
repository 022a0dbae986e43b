"""HTTP/2's protocol state machine alone: interpserve's, and the h2 library's for reference.

    python -m bench.h2_connection [--requests N] [--batch K] [--rounds R]

Each connection is given what h2load sends for `GET /` (its HEADERS frames, K at a time, as
they arrive in one read), and answers each request as the front end answers the plaintext app
(a HEADERS frame, then 13 bytes of DATA ending the stream), then hands over its bytes to
write. It prints the CPU time per request of receiving (bytes in, events out) and of
answering (response in, bytes out), the best of R rounds: no socket, no worker, no event
loop. h2 runs as the server ran it before it had its own (header validation off, with the
same HPACK encoder and decoder), so the difference is the framing and the stream states.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived as H2RequestReceived
from hpack import Encoder

from bench.settings import parse_rounds
from interpserve.config import Config
from interpserve.frontend import http2_frames as fr
from interpserve.frontend.http2 import new_connection
from interpserve.frontend.http2_events import RequestReceived
from interpserve.frontend.http2_hpack import CachingDecoder, StaticEncoder

RESPONSE = [
    (b":status", b"200"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"13"),
    (b"server", b"interpserve"),
    (b"date", b"Tue, 01 Dec 2026 22:39:42 GMT"),
]
BODY = b"Hello, world!"
REQUEST = [
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "127.0.0.1:8000"),
    ("user-agent", "h2load nghttp2/1.52.0"),
]

# One connection under test: bytes in, then the requests it found answered, bytes out.
Receive = Callable[[bytes], list[int]]
Answer = Callable[[list[int]], bytes]


def client_reads(requests: int, batch: int) -> tuple[bytes, list[bytes]]:
    """The client's preface and SETTINGS, then its requests' HEADERS frames `batch` to a read,
    HPACK-encoded as a client does (the fields indexed from the second request on)."""
    encoder = Encoder()
    fields = [(name.encode(), value.encode()) for name, value in REQUEST]
    flags = fr.END_HEADERS | fr.END_STREAM
    reads = []
    stream_id = 1
    for _ in range(requests // batch):
        frames = []
        for _ in range(batch):
            frames.append(fr.frame(fr.HEADERS, flags, stream_id, encoder.encode(fields)))
            stream_id += 2
        reads.append(b"".join(frames))
    # Windows as h2load opens them: the responses never wait for one.
    window = (1 << 30) - 1
    settings = fr.settings_frame({fr.Setting.INITIAL_WINDOW_SIZE: window})
    return fr.PREFACE + settings + fr.window_update_frame(0, window), reads


def _answering(
    receive_events: Callable[[bytes], Iterable[object]], request: type, server: Any
) -> tuple[Receive, Answer]:
    """A connection's two halves for `measure`: the streams of the requests in what it
    receives, and the bytes of their responses."""

    def receive(data: bytes) -> list[int]:
        return [e.stream_id for e in receive_events(data) if type(e) is request]  # type: ignore[attr-defined]

    def answer(stream_ids: list[int]) -> bytes:
        for stream_id in stream_ids:
            server.send_headers(stream_id, RESPONSE)
            server.send_data(stream_id, BODY, end_stream=True)
        return server.data_to_send()  # type: ignore[no-any-return]

    return receive, answer


def interpserve_connection(preface: bytes) -> tuple[Receive, Answer]:
    server = new_connection(Config())
    server.initiate()
    server.receive(preface)
    server.data_to_send()
    return _answering(server.receive, RequestReceived, server)


def h2_server(connection: type[H2Connection] = H2Connection) -> H2Connection:
    """An h2 server connection as interpserve ran it before it had its own (header validation
    off, its HPACK encoder and decoder): the reference, here and in the differential tests."""
    server = connection(
        H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
    )
    server.encoder = StaticEncoder()  # type: ignore[assignment]
    server.decoder = CachingDecoder()
    return server


def h2_connection(preface: bytes) -> tuple[Receive, Answer]:
    server = h2_server()
    server.initiate_connection()
    server.receive_data(preface)
    server.data_to_send()
    return _answering(server.receive_data, H2RequestReceived, server)


def measure(
    make: Callable[[bytes], tuple[Receive, Answer]], requests: int, batch: int
) -> tuple[float, float]:
    """CPU µs per request: receiving, answering."""
    preface, reads = client_reads(requests, batch)
    receive, answer = make(preface)
    received = answered = 0.0
    clock = time.thread_time
    for data in reads:
        start = clock()
        stream_ids = receive(data)
        middle = clock()
        answer(stream_ids)
        received += middle - start
        answered += clock() - middle
    done = len(reads) * batch
    return received / done * 1e6, answered / done * 1e6


def main(argv: list[str] | None = None) -> None:
    description = __doc__.split("\n\n")[0]
    args = parse_rounds(description, argv, requests=32000, batch=32, rounds=5, per="a read")
    for name, make in (("interpserve", interpserve_connection), ("h2", h2_connection)):
        rounds = [measure(make, args.requests, args.batch) for _ in range(args.rounds)]
        received, answered = min(rounds, key=sum)
        print(
            f"{name}: {received + answered:.1f} us a request "
            f"(receiving {received:.1f}, answering {answered:.1f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
