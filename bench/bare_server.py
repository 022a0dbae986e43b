"""The floor under any Python HTTP server on uvloop: a protocol that answers every read with one
fixed plaintext response and parses nothing. Its CPU per request is what the system calls and
uvloop's loop cost alone (a recv and a send per request, and a share of epoll), which
`bench.cpu_split` sets beside uvicorn's and interpserve's.

    python -m bench.bare_server --port PORT [--realtime]

Only for a load generator that sends one request per read and waits for its answer, as wrk
does on a keep-alive connection. --realtime takes the real-time scheduling policy the open-loop
generator takes (SCHED_FIFO, where allowed), so that on a busy machine what a generator's
latency shows is the generator's own delay, not the server's wait for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from typing import cast

import uvloop

from bench.apps import HELLO
from interpserve.bench.generator import REALTIME_PRIORITY

RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(HELLO), HELLO)
)


class BareProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, though they behave as them.
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        self._transport.write(RESPONSE)


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(BareProtocol, host, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--realtime", action="store_true", help="SCHED_FIFO, where allowed")
    args = parser.parse_args()
    if args.realtime:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
