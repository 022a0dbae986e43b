"""The hostile and heavy clients of the bench's "hostile" scenario: one load per run, in a
process of its own, so that the runner samples the server's memory and CPU meanwhile.

    python -m bench.hostile uploads --port P --clients N [--mib 1] [--hold-ms 6000]
    python -m bench.hostile tiny-chunks --port P [--clients 4] [--chunks 1000000] [--seconds 5]
                                        [--chunk-size 1]
    python -m bench.hostile slow-readers --port P [--clients 1000] [--mib 10] [--seconds 5]
    python -m bench.hostile pipelined --port P [--requests 100000] [--seconds 5]
    python -m bench.hostile probe --port P     (until its standard input closes)

- uploads: N clients each POST a body of MIB MiB to /sleep-upload, whose handler sleeps
  HOLD_MS before it reads the body; every answer must count the whole body.
- tiny-chunks: N clients each upload CHUNKS chunks of CHUNK_SIZE bytes (one by default) to
  /upload, round after round until SECONDS have passed (one round at least), while one more
  connection sends a plain GET / every 10 ms and times each answer (from a process of its own,
  `probe`, so that the uploaders' work does not delay it). One round lasts under a second on a
  fast server: its p99 would be the slowest of a few dozen GETs, luck more than a percentile.
- slow-readers: N clients each GET /download?mib=MIB with a small receive buffer and read
  4 KiB every 100 ms, for SECONDS; then they all leave.
- pipelined: one client sends REQUESTS pipelined GET / and reads none of the answers, for
  SECONDS; then it leaves.

Each prints one JSON object on stdout: what the runner needs to judge that the load did what
it says (answers, latencies). Every connection goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

HOST = "127.0.0.1"
PIECE = 64 * 1024  # what a client writes at once before it waits for its socket to drain
PROBE_INTERVAL_S = 0.01
SLOW_READ = 4096
SLOW_READ_INTERVAL_S = 0.1
SLOW_RCVBUF = 16 * 1024
# At most this many connections are being opened at once: more overflow the listen backlog of
# some servers, and the refusals would count as the server's.
CONNECTING = 256
TIMEOUT_S = 180.0

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(port: int, gate: asyncio.Semaphore, rcvbuf: int = 0) -> Streams:
    async with gate:
        if not rcvbuf:
            return await asyncio.open_connection(HOST, port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        return await asyncio.open_connection(sock=sock)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response with a Content-Length body: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    view = memoryview(data)
    for start in range(0, len(data), PIECE):
        writer.write(view[start : start + PIECE])
        await writer.drain()


def _close(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def uploads(port: int, clients: int, mib: int, hold_ms: int) -> dict[str, Any]:
    body = b"x" * (mib << 20)
    head = b"POST /sleep-upload?ms=%d HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % (
        hold_ms,
        len(body),
    )
    gate = asyncio.Semaphore(CONNECTING)

    async def one() -> bool:
        reader, writer = await _connect(port, gate)
        try:
            await _send(writer, head + body)
            status, answer = await _response(reader)
            return status == 200 and answer == b"%d" % len(body)
        finally:
            _close(writer)

    return _tally(await asyncio.gather(*(one() for _ in range(clients)), return_exceptions=True))


async def tiny_chunks(
    port: int, clients: int, chunks: int, seconds: float, size: int
) -> dict[str, Any]:
    head = b"POST /upload HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = (b"%x\r\n%s\r\n" % (size, b"x" * size)) * chunks + b"0\r\n\r\n"
    gate = asyncio.Semaphore(CONNECTING)
    taken: list[float] = []

    async def one() -> bool:
        reader, writer = await _connect(port, gate)
        started = time.perf_counter()
        try:
            await _send(writer, head + body)
            status, answer = await _response(reader)
        finally:
            _close(writer)
        taken.append(time.perf_counter() - started)
        return status == 200 and answer == b"%d" % (chunks * size)

    prober = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.hostile", "probe", "--port", str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert prober.stdin is not None and prober.stdout is not None
    try:
        await prober.stdout.readline()  # (it has connected)
        results: list[bool | BaseException] = []
        until = time.perf_counter() + seconds
        while not results or time.perf_counter() < until:
            round_ = await asyncio.gather(*(one() for _ in range(clients)), return_exceptions=True)
            results += round_
    finally:
        prober.stdin.close()
    probed, _ = await prober.communicate()
    try:
        latency: dict[str, Any] = json.loads(probed)
    except ValueError:
        latency = {"gets": 0, "get_errors": 1, "get_error": ["the prober failed"]}
    return _tally(results) | {"uploads": len(results), "upload_s": taken} | latency


async def probe(port: int) -> dict[str, Any]:
    """Plain GETs on a connection of their own, one every PROBE_INTERVAL_S, until standard input
    closes: the latency of each (a GET that waits counts its whole wait, and the next one starts
    on time after it, so a stall is measured once, not hidden)."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    waiting = asyncio.ensure_future(stdin.read())
    waiting.add_done_callback(lambda _: done.set())
    gate = asyncio.Semaphore(1)
    reader, writer = await _connect(port, gate)
    print("connected", flush=True)
    latencies: list[float] = []
    errors: list[str] = []
    next_at = loop.time()
    try:
        while not done.is_set():
            started = time.perf_counter()
            try:
                writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                status, _ = await _response(reader)
                if status != 200:
                    raise RuntimeError(f"a plain GET got {status}")
            except (OSError, EOFError, RuntimeError) as exc:  # (IncompleteReadError is one)
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                _close(writer)
                reader, writer = await _connect(port, gate)
            else:
                latencies.append(time.perf_counter() - started)
            next_at = max(next_at + PROBE_INTERVAL_S, loop.time())
            await asyncio.sleep(next_at - loop.time())
    finally:
        _close(writer)
    return _latency(latencies) | {"get_errors": len(errors), "get_error": errors[:1]}


def _latency(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    if not ordered:
        return {"gets": 0}
    # The 99 cut points between hundredths (all the one value, when there is one).
    cuts = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else ordered * 99
    )
    return {
        "gets": len(ordered),
        "get_p50_ms": cuts[49] * 1000,
        "get_p99_ms": cuts[98] * 1000,
        "get_max_ms": ordered[-1] * 1000,
    }


async def slow_readers(port: int, clients: int, mib: int, seconds: float) -> dict[str, Any]:
    gate = asyncio.Semaphore(CONNECTING)
    deadline = asyncio.get_running_loop().time() + seconds
    request = b"GET /download?mib=%d&fresh=1 HTTP/1.1\r\nHost: bench\r\n\r\n" % mib

    async def one() -> bool:
        reader, writer = await _connect(port, gate, rcvbuf=SLOW_RCVBUF)
        try:
            writer.write(request)
            first = await reader.read(SLOW_READ)
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(SLOW_READ_INTERVAL_S)
                if not await reader.read(SLOW_READ):
                    return False
            return first.startswith(b"HTTP/1.1 200 ")
        finally:
            _close(writer)

    return _tally(await asyncio.gather(*(one() for _ in range(clients)), return_exceptions=True))


async def pipelined(port: int, requests: int, seconds: float) -> dict[str, Any]:
    reader, writer = await _connect(port, asyncio.Semaphore(1), rcvbuf=SLOW_RCVBUF)
    sent = 0
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n" * requests)
        with_timeout = asyncio.wait_for(writer.drain(), seconds)
        try:
            await with_timeout
            sent = requests
        except TimeoutError:
            pass  # the server stopped reading: what matters is what it holds meanwhile
        await asyncio.sleep(max(0.0, seconds))
        started = await reader.read(SLOW_READ)
    finally:
        _close(writer)
    return {"ok": int(started.startswith(b"HTTP/1.1 200 ")), "failed": 0, "all_sent": sent}


def _tally(results: list[bool | BaseException]) -> dict[str, Any]:
    failures = {f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, BaseException)}
    errors = sorted(failures)
    ok = sum(1 for r in results if r is True)
    return {"ok": ok, "failed": len(results) - ok, "errors": errors[:5]}


# Each load's options beyond --port: name, type, default.
_OPTIONS: dict[str, tuple[tuple[str, type, float], ...]] = {
    "uploads": (("--clients", int, 1000), ("--mib", int, 1), ("--hold-ms", int, 6000)),
    "tiny-chunks": (
        ("--clients", int, 4),
        ("--chunks", int, 1_000_000),
        ("--seconds", float, 5.0),
        ("--chunk-size", int, 1),
    ),
    "slow-readers": (("--clients", int, 1000), ("--mib", int, 10), ("--seconds", float, 5.0)),
    "pipelined": (("--requests", int, 100_000), ("--seconds", float, 5.0)),
    "probe": (),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    loads = parser.add_subparsers(dest="load", required=True)
    for name, options in _OPTIONS.items():
        sub = loads.add_parser(name)
        sub.add_argument("--port", type=int, required=True)
        for option, kind, default in options:
            sub.add_argument(option, type=kind, default=kind(default))
    return parser


def _load(args: argparse.Namespace) -> Callable[[], Awaitable[dict[str, Any]]]:
    match args.load:
        case "uploads":
            return lambda: uploads(args.port, args.clients, args.mib, args.hold_ms)
        case "tiny-chunks":
            return lambda: tiny_chunks(
                args.port, args.clients, args.chunks, args.seconds, args.chunk_size
            )
        case "slow-readers":
            return lambda: slow_readers(args.port, args.clients, args.mib, args.seconds)
        case "pipelined":
            return lambda: pipelined(args.port, args.requests, args.seconds)
        case _:
            return lambda: probe(args.port)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    load = _load(args)
    result = asyncio.run(asyncio.wait_for(load(), TIMEOUT_S))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
