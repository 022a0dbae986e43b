"""The front end's whole HTTP/2 path for plaintext, in memory: what h2_hello costs the main
interpreter per request, without sockets, pipes or workers.

    python -m bench.h2_frontend [--requests N] [--batch K] [--rounds R] [--profile FILE]

One HTTPConnection (the real one, with its HTTP2Session, streams and request cycles) is given
what h2load sends for `GET /` (bench.h2_connection.client_reads: K HEADERS frames a read), and
a worker channel that answers every request it is given as bench.apps answers `/` (response
start, 13 bytes, finished) once the read is handled, as the pool's answers arrive in a later
loop pass; then the loop runs what it scheduled (the flush) and the transport takes the bytes.
It prints the CPU time per request, the best of R rounds; --profile writes a cProfile of one
more round. What it leaves out (the wire codec and the pipes) is HTTP/1.1's as much as HTTP/2's.
"""

from __future__ import annotations

import asyncio
import cProfile
import time
from typing import Any

from bench.h2_connection import client_reads
from bench.settings import parse_rounds
from interpserve import events as ev
from interpserve.config import Config
from interpserve.frontend.connection import HTTPConnection, ServerState
from interpserve.frontend.cycle import RequestCycle
from interpserve.frontend.http_parser import H11Parser

HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13"))
BODY = b"Hello, world!"


class _Transport(asyncio.Transport):
    """A client socket that takes every write at once."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self._extra = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class _Channel:
    """A worker that answers what it was given when told to."""

    worker_id = 1
    backed_up = False

    def __init__(self) -> None:
        self._next = 0
        self.waiting: list[RequestCycle] = []

    def new_request_id(self) -> int:
        self._next += 1
        return self._next

    def start_request(self, sink: RequestCycle, request: ev.Request) -> None:
        self.waiting.append(sink)

    def send(self, event: ev.Event) -> None:
        pass

    def answer(self) -> int:
        waiting, self.waiting = self.waiting, []
        for sink in waiting:
            sink.on_whole_response(200, HEADERS, BODY)  # (as the pool's channel gives it)
        return len(waiting)


class _Pool:
    ready = True
    kind = "interpreter"

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.pipe_backlog = None

    def choose(self) -> _Channel:
        return self.channel


async def _round(requests: int, batch: int, profile: cProfile.Profile | None) -> float:
    """CPU µs a request over one connection."""
    channel = _Channel()
    config = Config(app="bench.apps:app", access_log=False)
    state = ServerState(config, _Pool(channel), H11Parser)  # type: ignore[arg-type]
    conn = HTTPConnection(state)
    conn.connection_made(_Transport())
    preface, reads = client_reads(requests, batch)
    conn.data_received(preface)
    await asyncio.sleep(0)
    clock = time.thread_time
    spent = 0.0
    answered = 0
    for data in reads:
        if profile is not None:
            profile.enable()
        start = clock()
        conn.data_received(data)
        answered += channel.answer()
        await asyncio.sleep(0)  # (the flushes scheduled meanwhile)
        spent += clock() - start
        if profile is not None:
            profile.disable()
    assert answered == len(reads) * batch, "requests not answered"
    return spent / answered * 1e6


def main(argv: list[str] | None = None) -> None:
    description = __doc__.split("\n\n")[0]
    args = parse_rounds(
        description, argv, requests=32000, batch=32, rounds=5, per="a read", profile=True
    )
    rounds = [asyncio.run(_round(args.requests, args.batch, None)) for _ in range(args.rounds)]
    print(f"front end, HTTP/2 plaintext: {min(rounds):.1f} us a request", flush=True)
    if args.profile:
        profile = cProfile.Profile()
        asyncio.run(_round(args.requests, args.batch, profile))
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
