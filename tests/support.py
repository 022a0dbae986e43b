"""Helpers shared by the test modules: one copy of each, imported as `from support import ...`.

Fixtures built on them (servers, the parser and worker-kind parameters) are in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import selectors
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from interpserve import events as ev
from interpserve import rss
from interpserve.config import Config
from interpserve.errors import ServerFailed
from interpserve.frontend.connection import HTTPConnection, ServerState
from interpserve.frontend.cycle import RequestCycle
from interpserve.frontend.http_parser import H11Parser, HttptoolsParser
from interpserve.logoutput import Output
from interpserve.pipes import open_pipe
from interpserve.pool.channel import WorkerChannel
from interpserve.testing import ServerProcess, running, wait_until
from interpserve.worker.main import Worker

ROOT = Path(__file__).resolve().parent.parent
# How long a test waits for any one thing it expects (a response, a line, a process's exit):
# generous, so that a loaded machine is slow rather than failing; a hang still ends the test.
TIMEOUT = 10.0
HELLO = b"Hello, world!"  # what examples.hello answers on /
MB = 1024 * 1024

StartServer = Callable[..., ServerProcess]

# The values of --http and of --worker-kind: conftest.py's http_impl, parser_class and
# worker_kind fixtures run a test once per value; module-scoped fixtures take these lists.
ParserClass = type[H11Parser] | type[HttptoolsParser]
HTTP_IMPLS = ["h11", "httptools"]
WORKER_KINDS = ["interpreter", "process"]


# The load generator's responses (interpserve.bench.http1): whole, plain ones, the near misses
# the fast path must leave to the parser (a piece swapped for an odd one), and arbitrary bytes.
_BENCH_PIECES = {
    "version": [b"HTTP/1.1", b"HTTP/1.0", b"http/1.1", b"HTTP/1.1x"],
    "status": [b"200", b"201", b"404", b"204", b"304", b"100", b"101", b"2x0", b"99"],
    "reason": [b" OK", b"", b" A\rB", b" A\nB"],
    "name": [b"X-Other", b"Content-Length", b"content-LENGTH", b" Content-Length",
             b"Content-Length ", b"Transfer-Encoding", b"Connection", b"", b"A\rB"],
    "separator": [b":", b": ", b":\t", b" :", b""],
    "value": [b"keep-alive", b"close", b"Keep-Alive, CLOSE", b"chunked", b"-1", b"5\x0b",
              b"9" * 19, b"a\nb", b"x:y", b""],
}  # fmt: skip


@st.composite
def _bench_response(draw: st.DrawFn) -> bytes:
    def piece(kind: str) -> bytes:
        """Mostly the first, plain choice; now and then any other."""
        choices = _BENCH_PIECES[kind]
        return draw(st.sampled_from(choices)) if draw(st.integers(0, 5)) == 0 else choices[0]

    body = draw(st.sampled_from([b"", b"hello", b"hello\r\n\r\n"]))
    length = str(len(body) + draw(st.sampled_from([0, 0, 0, 1, -1]))).encode()
    lines = [
        piece("name") + piece("separator") + piece("value") for _ in range(draw(st.integers(0, 3)))
    ]
    lines.insert(draw(st.integers(0, len(lines))), b"Content-Length" + piece("separator") + length)
    head = piece("version") + b" " + piece("status") + piece("reason")
    return head + b"".join(b"\r\n" + line for line in lines) + b"\r\n\r\n" + body


bench_responses = st.one_of(_bench_response(), st.binary(max_size=80))


# Servers shared by a module's tests -----------------------------------------------------------


def serve_for_module(app: str, *args: str) -> Iterator[ServerProcess]:
    """A server for a module-scoped fixture: started at the first test that asks for it,
    stopped after the module's last."""
    server = ServerProcess(app, *args, cwd=str(ROOT)).start()
    try:
        yield server
    finally:
        server.stop(timeout=15)


def shared_or_own(
    request: pytest.FixtureRequest, shared: str, start_own: Callable[[], ServerProcess]
) -> ServerProcess:
    """The server of the module-scoped fixture named `shared`, which the module's tests share
    (starting a server costs more than most tests that use one); a test marked `own_server`,
    one that reads the server's output or memory or changes the server, gets one of its own
    from `start_own`."""
    if request.node.get_closest_marker("own_server"):
        return start_own()
    server: ServerProcess = request.getfixturevalue(shared)
    assert server.process is not None and server.process.poll() is None, (
        f"an earlier test stopped the shared server; its output:\n{server.output[-3000:]}"
    )
    return server


def backend_server_fixtures(name: str, app: str, *args: str) -> tuple[Any, Any]:
    """Two fixtures, for a module to assign to names of its own: `name`, the server of `app`
    with `args` under each parser backend (--http `http_impl`), which the module's tests share
    (`shared_or_own`), and the module-scoped fixture that holds it, `shared_NAME`."""
    shared_name = f"shared_{name}"

    @pytest.fixture(scope="module", name=shared_name)
    def shared(http_impl: str) -> Iterator[ServerProcess]:
        yield from serve_for_module(app, *args, "--http", http_impl)

    @pytest.fixture(name=name)
    def server(
        request: pytest.FixtureRequest, start_server: StartServer, http_impl: str
    ) -> ServerProcess:
        return shared_or_own(
            request, shared_name, lambda: start_server(app, *args, "--http", http_impl)
        )

    return shared, server


# Raw sockets -------------------------------------------------------------------------------


def read_to_eof(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """All the peer sends until it closes the connection (a reset ends it too, keeping what
    came before). Fails if it has not closed within `timeout`."""
    received = b""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            more = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            break
        if not more:
            return received
        received += more
    raise AssertionError(f"the connection was not closed; got {received[:300]!r}")


def exchange(server: ServerProcess, data: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        # The server may answer and close before the client has sent all of a long input.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return read_to_eof(sock, timeout)


def raw_request(
    method: str, target: str, *headers: str, body: bytes = b"", version: str = "1.1"
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def raw_get(target: str, *headers: str) -> bytes:
    return raw_request("GET", target, *headers)


@dataclass
class RawResponse:
    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None


class RawConnection:
    """A blocking socket to the server with a small, strict HTTP/1.1 response reader."""

    def __init__(self, server: ServerProcess, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"EOF before {marker!r}; got {self.buffer!r}")
        data, _, self.buffer = self.buffer.partition(marker)
        return data + marker

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionError(f"EOF after {len(self.buffer)} of {size} bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_to_eof(self) -> bytes:
        """The rest, up to the server's close (or reset); fails if it does not close."""
        data, self.buffer = self.buffer + read_to_eof(self.sock, self.timeout), b""
        self.sock.settimeout(self.timeout)
        return data

    def read_head(self) -> RawResponse:
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head[:-4].split("\r\n")
        version, status, reason = [*status_line.split(" ", 2), ""][:3]
        assert version.startswith("HTTP/"), status_line
        headers = []
        for line in lines:
            name, sep, value = line.partition(":")
            assert sep, f"malformed response header line {line!r}"
            headers.append((name.strip().lower(), value.strip()))
        return RawResponse(int(status), reason, version, headers)

    def iter_chunks(self) -> Iterator[bytes]:
        """A chunked body's chunks, as they come; checks the framing strictly."""
        while True:
            size_line = self.read_until(b"\r\n")[:-2]
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                trailer = self.read_until(b"\r\n")
                assert trailer == b"\r\n", f"unexpected trailer {trailer!r}"
                return
            yield self.read_exactly(size)
            assert self.read_exactly(2) == b"\r\n", "chunk not followed by CRLF"

    def read_response(self, method: str = "GET") -> RawResponse:
        """The next final response (1xx responses are skipped over)."""
        while True:
            response = self.read_head()
            if response.status >= 200 or response.status == 101:
                break
        if method == "HEAD" or response.status in (204, 304):
            return response
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.body = b"".join(self.iter_chunks())
        elif response.header("content-length") is not None:
            response.body = self.read_exactly(int(response.header("content-length") or 0))
        else:
            response.body = self.read_to_eof()
        return response

    def is_closed_by_server(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (EOF) with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        self.buffer += data
        return data == b""


def get_path(server: ServerProcess, path: str, timeout: float = TIMEOUT) -> httpx.Response:
    """GET `path` from `server`, with httpx."""
    return httpx.get(server.url + path, timeout=timeout)


def assert_still_serving(server: ServerProcess) -> None:
    """The server still answers a plain request (to examples.hello's /)."""
    response = httpx.get(server.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == HELLO


def wait_for_file(path: Path, timeout: float = TIMEOUT) -> str:
    """What an app (or a server) wrote to `path`, once it has written something."""
    assert wait_until(lambda: path.exists() and bool(path.read_text()), timeout), (
        f"{path} unwritten"
    )
    return path.read_text()


# The test apps' servers -------------------------------------------------------------------

CONTROL = "tests.apps.control:app"
BUFFERS_APP = "tests.apps.buffers_app:app"
# Interpreter recycles without the serving process replaced for what they leave behind: one
# process throughout, whose worker numbers count from 1.
ONE_SERVING_PROCESS = ("--limit-max-leftover", "0")


def control_server(
    start_server: StartServer,
    kind: str,
    workers: int,
    *flags: str,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """The control app (tests/apps/control.py) with `workers` workers of `kind`."""
    return start_server(CONTROL, "--worker-kind", kind, "--workers", str(workers), *flags, env=env)


_WORKER_ID = re.compile(r"worker=(\d+)\s*$")


def access_worker_ids(output: str, marker: str = "") -> list[int]:
    """The worker ids of the access log lines (those containing `marker`), in order."""
    ids = []
    for line in output.splitlines():
        match = _WORKER_ID.search(line)
        if match and marker in line:
            ids.append(int(match.group(1)))
    return ids


class Load:
    """Background clients that send GET `path` until stopped (bounded in count and time) and
    record every outcome: a status code, or the exception's type name (ConnectError: refused)."""

    def __init__(
        self,
        server: ServerProcess,
        path: str = "/",
        clients: int = 2,
        max_requests: int = 3000,
        max_seconds: float = 30.0,
        *,
        keep_alive: bool = True,
    ) -> None:
        self._url = server.url + path
        # Without keep-alive, each request comes on a new connection.
        self._limits = httpx.Limits(max_keepalive_connections=None if keep_alive else 0)
        self._max_requests = max_requests
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.outcomes: list[int | str] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        with httpx.Client(timeout=TIMEOUT, limits=self._limits) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if not self._running.wait(0.05):
                    continue
                with self._lock:
                    if len(self.outcomes) >= self._max_requests:
                        return
                    if not self._running.is_set():
                        continue  # paused meanwhile: pause() counts on no new request
                    self._in_flight += 1
                try:
                    outcome: int | str = client.get(self._url).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with self._lock:
                    self._in_flight -= 1
                    self.outcomes.append(outcome)

    def pause(self, timeout: float = TIMEOUT + 5) -> None:
        """Send no more requests, and return once every request sent has been answered."""
        self._running.clear()

        def idle() -> bool:
            with self._lock:
                return self._in_flight == 0

        assert wait_until(idle, timeout), "a request of the load hung"

    def resume(self) -> None:
        self._running.set()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        return wait_until(lambda: self.count() >= count, timeout)

    def stop(self) -> Counter[int | str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a client hung"
        return Counter(self.outcomes)


LOGS_APP = "tests.apps.logs_app:app"
Record = dict[str, Any]  # a JSON log line


def json_lines(output: str) -> list[Record]:
    """Every line of a server's output, parsed: one that is not JSON fails the test."""
    return [json.loads(line) for line in output.splitlines()]


def wait_for_access(server: ServerProcess, predicate: Callable[[Record], bool]) -> Record:
    """The first access line (of a server with --log-format json) that `predicate` accepts."""
    found: list[Record] = []

    def seen() -> bool:
        records = json_lines(server.output)
        found[:] = [r for r in records if r["logger"] == "interpserve.access" and predicate(r)]
        return bool(found)

    assert wait_until(seen, TIMEOUT), server.output[-3000:]
    return found[0]


def ws_url(server: ServerProcess, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def ws_client(server: ServerProcess, path: str, **options: Any) -> connect:
    options.setdefault("open_timeout", TIMEOUT)
    options.setdefault("close_timeout", TIMEOUT)
    options.setdefault("max_size", None)
    return connect(ws_url(server, path), **options)


# What the kernel holds of a loopback connection (Linux /proc/net/tcp) -------------------------


def _tcp_endpoint(host: str, port: int) -> str:
    """An IPv4 address and port as /proc/net/tcp writes them (the address in host byte order)."""
    address = int.from_bytes(socket.inet_aton(host), sys.byteorder)
    return f"{address:08X}:{port:04X}"


def tcp_queues(local: tuple[str, int], remote: tuple[str, int]) -> tuple[int, int] | None:
    """The (unacknowledged sent, unread received) byte counts of the TCP socket from `local`
    to `remote`, or None if there is none: the kernel's word that bytes reached the other end,
    and that a process read them (loopback gives no other sign of either)."""
    wanted = (_tcp_endpoint(*local), _tcp_endpoint(*remote))
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            sent, received = fields[4].split(":")
            return int(sent, 16), int(received, 16)
    return None


def delivered(sock: socket.socket) -> bool:
    """Whether the other end's kernel has acknowledged all that `sock` sent."""
    queues = tcp_queues(sock.getsockname()[:2], sock.getpeername()[:2])
    return queues is not None and queues[0] == 0


def read_by_server(sock: socket.socket) -> bool:
    """Whether what `sock` sent has reached the server and the server has read all of it."""
    server_side = tcp_queues(sock.getpeername()[:2], sock.getsockname()[:2])
    return delivered(sock) and server_side is not None and server_side[1] == 0


def skip_under_coverage() -> None:
    """For a test of what a fresh process imports: under ./dev coverage every process the tests
    start runs coverage too (its subprocess patch), which imports json, inspect and more of its
    own."""
    if "COVERAGE_PROCESS_CONFIG" in os.environ:
        pytest.skip("coverage runs in every process started here, with imports of its own")


# Processes (Linux /proc) -------------------------------------------------------------------


def child_pids(pid: int) -> set[int]:
    """The live child processes of `pid` (zombies left out)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return {child for child in children if running(child)}


def rss_bytes(pid: int) -> int:
    """The server's own measure (interpserve.rss), but a process it cannot read fails the test."""
    size = rss.rss_bytes(pid)
    assert size > 0, f"no resident memory readable for pid {pid}"
    return size


class PeakRSS:
    """Samples a process's resident set size in the background; `.peak` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, AssertionError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes(self.pid))


def failed_start(app: str, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start a server that must not come up; return it, exited, for its code and output."""
    server = ServerProcess(app, *args, env=env, cwd=str(ROOT))
    started = time.monotonic()
    try:
        with pytest.raises(ServerFailed):
            server.start(timeout=30)
    finally:
        server.stop(timeout=10)  # reaps it in every case
    assert time.monotonic() - started < 30
    assert server.process is not None and server.process.returncode is not None
    assert "Listening on" not in server.output
    return server


# Wire events: one of each kind, and strategies for any ---------------------------------------

U32 = 2**32 - 1
U16 = 2**16 - 1


def make_request(request_id: int = 1, **changes: object) -> ev.Request:
    fields: dict[str, object] = {
        "request_id": request_id,
        "method": "POST",
        "scheme": "http",
        "http_version": "1.1",
        "raw_path": b"/items/42",
        "query_string": b"a=1&b=2",
        "headers": ((b"host", b"example.com"), (b"content-type", b"application/json")),
        "client": ("127.0.0.1", 54321),
        "server": ("127.0.0.1", 8000),
        "more_body": True,
        "expect_continue": False,
    }
    fields.update(changes)
    return ev.Request(**fields)  # type: ignore[arg-type]


SAMPLE_EVENTS: list[ev.Event] = [
    make_request(),
    make_request(7, method="GET", more_body=False, client=None, server=None, headers=()),
    ev.RequestBody(1, b"hello", True),
    ev.RequestBody(1, b"", False),
    ev.Disconnect(3),
    ev.Shutdown(),
    ev.Credit(1, 256 * 1024),
    ev.Credit(U32, U32),
    ev.WorkerReady(),
    ev.WorkerFailed("could not import app"),
    ev.WorkerFailed("numpy refused", incompatible_module="numpy.core._multiarray_umath"),
    ev.WorkerFailed(""),
    ev.ResponseStart(1, 200, ((b"content-type", b"text/plain"), (b"content-length", b"5"))),
    ev.ResponseStart(2, 204, ()),
    ev.ResponseStart(3, U16, ((b"", b""),)),
    ev.ResponseStart(4, 200, ((b"content-length", b"5"),), b"hello", False),
    ev.ResponseStart(5, 200, (), b"\x00first chunk", True),
    ev.ResponseStart(6, 204, (), b"", False),
    ev.ResponseStart(7, 200, ((b"content-length", b"2"),), b"ok", False, finished=True),
    ev.ResponseBody(1, b"world", True),
    ev.ResponseBody(1, b"", False),
    ev.ResponseTrailers(1, ((b"grpc-status", b"0"), (b"x-a", b""))),
    ev.ResponseTrailers(2, ()),
    ev.RequestFinished(1),
    ev.RequestFinished(U32),
    ev.WebSocketMessage(1, "text ✓"),
    ev.WebSocketMessage(U32, b"\x00binary"),
    ev.WebSocketAccept(1, "chat", ((b"x-a", b"1"),)),
    ev.WebSocketAccept(2, "", ()),
    ev.WebSocketClose(1, 4999, "bye ✓"),
    ev.CancelAll(),
    ev.MemoryQuery(U32),
    ev.MemoryReport(3, 2**40),
    ev.MemoryReport(4, -1),
]
# Control events that are newer than the rest: covered when this tree has them.
for _name, _args in [("Cancel", (5,)), ("Ping", (U32,)), ("Pong", (0,)), ("Pong", (17,))]:
    if hasattr(ev, _name):
        SAMPLE_EVENTS.append(getattr(ev, _name)(*_args))


request_ids = st.integers(min_value=0, max_value=U32)
# What travels in a list of fields holds no NUL byte (see test_a_nul_byte_in_a_field_is_refused).
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
_ascii = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=10)


def byte_fields(max_size: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size).map(lambda data: data.replace(b"\0", b"\1"))


header_fields = st.lists(st.tuples(byte_fields(20), byte_fields(40)), max_size=6).map(tuple)
_address = st.none() | st.tuples(_text, st.integers(min_value=0, max_value=U16))

_requests = st.builds(
    ev.Request,
    request_id=request_ids,
    method=_ascii,
    scheme=_ascii,
    http_version=_ascii,
    raw_path=byte_fields(40),
    query_string=byte_fields(40),
    headers=header_fields,
    client=_address,
    server=_address,
    more_body=st.booleans(),
    expect_continue=st.booleans(),
)

_control = [
    st.builds(getattr(ev, name), request_ids)
    for name in ("Cancel", "Ping", "Pong")
    if hasattr(ev, name)
]

events_strategy: st.SearchStrategy[ev.Event] = st.one_of(
    *_control,
    _requests,
    st.builds(ev.RequestBody, request_ids, st.binary(max_size=200), st.booleans()),
    st.builds(ev.Disconnect, request_ids),
    st.just(ev.Shutdown()),
    st.builds(ev.Credit, request_ids, request_ids),
    st.just(ev.WorkerReady()),
    st.builds(ev.WorkerFailed, _text, _text),
    st.builds(
        ev.ResponseStart, request_ids, st.integers(min_value=0, max_value=U16), header_fields
    ),
    st.builds(ev.ResponseBody, request_ids, st.binary(max_size=200), st.booleans()),
    st.builds(ev.RequestFinished, request_ids),
    st.just(ev.CancelAll()),
    st.builds(ev.MemoryQuery, request_ids),
    st.builds(ev.MemoryReport, request_ids, st.integers(min_value=-1, max_value=2**62)),
)


# In memory: a virtual clock, a fake client transport, workers on the test's own loop ---------


class WouldWaitForever(RuntimeError):
    """The loop has nothing to run and nothing scheduled: the test would hang."""


class _JumpingSelector(selectors.DefaultSelector):
    """Never waits in real time: when nothing is ready, the virtual clock jumps to the next
    timer (what a real wait would have come to), as trio's autojump clock does."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            raise WouldWaitForever("nothing is ready and no timer is set")
        self._loop.now += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is virtual: timers (the front end's read timeouts, the request
    timeout, asyncio.sleep) fire as soon as everything else is waiting, however long they are.
    Pipes and sockets still work: whatever they have ready runs first."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual[T](main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` to its end on a VirtualClockLoop."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main())


def on_virtual_clock[**P](test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """An async test run to its end on a VirtualClockLoop of its own, not on pytest-asyncio's
    loop (whose clock is real); its fixtures and parameters are the coroutine function's."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        run_virtual(lambda: test(*args, **kwargs))

    return run


class FakeTransport(asyncio.Transport):
    """The client's socket, for an asyncio protocol: what the protocol writes is kept in
    `written`; reading paused or not, closed or aborted, is recorded. `stall()` makes it a
    client that reads nothing: what is written then waits in the socket (as the write buffer
    asyncio's flow control sees), until `drain()`."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True
        self.closed = False
        self.aborted = False
        self.stalled = False
        self.waiting = 0  # bytes written while stalled, not yet drained
        self._high = 64 * 1024
        self._writing_paused = False
        self._protocol: asyncio.BaseProtocol | None = None
        self._extra = {"peername": peer, "sockname": ("127.0.0.1", 8000)}

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def stall(self) -> None:
        self.stalled = True

    def drain(self) -> None:
        """The client reads what waits (and stays stalled for what comes next)."""
        self.waiting = 0
        if self._writing_paused and self._protocol is not None:
            self._writing_paused = False
            self._protocol.resume_writing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.written += data
        if self.stalled:
            self.waiting += len(data)
            if self.waiting > self._high and not self._writing_paused and self._protocol:
                self._writing_paused = True
                self._protocol.pause_writing()

    def take(self) -> bytes:
        """What was written since the last take."""
        data = bytes(self.written)
        self.written.clear()
        return data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 64 * 1024 if high is None else high

    def get_write_buffer_size(self) -> int:
        return self.waiting

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed


class FakeChannel:
    """A worker's channel that keeps what the front end sends it."""

    worker_id = 1
    backed_up = False

    def __init__(self) -> None:
        self.sent: list[ev.Event] = []
        self.sinks: dict[int, RequestCycle] = {}
        self._next = 0

    def new_request_id(self) -> int:
        self._next += 1
        return self._next

    def start_request(self, sink: RequestCycle, request: ev.Request) -> None:
        self.sinks[request.request_id] = sink
        self.sent.append(request)

    def send(self, event: ev.Event) -> None:
        self.sent.append(event)

    def body_sent(self) -> int:
        return sum(len(e.data) for e in self.sent if isinstance(e, ev.RequestBody))


class FakePool:
    ready = True
    kind = "interpreter"  # (for the access log's lines)

    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.pipe_backlog = None

    def choose(self) -> FakeChannel:
        return self.channel


def connection(**options: Any) -> tuple[HTTPConnection, FakeTransport, FakeChannel]:
    channel = FakeChannel()
    config = Config(app="a:b", **options)
    state = ServerState(config, FakePool(channel), H11Parser)  # type: ignore[arg-type]
    conn, transport = HTTPConnection(state), FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, channel


async def receive(conn: HTTPConnection, transport: FakeTransport, data: bytes) -> None:
    """`data` arriving on the socket: read as the connection reads it, as much as its buffer
    takes at a time, while it reads (it may wait a moment for its turn after a costly read)."""
    while data:
        for _ in range(50):
            if transport.reading:
                break
            await asyncio.sleep(0.002)
        else:
            return
        view = conn.get_buffer(-1)
        size = min(len(view), len(data))
        view[:size] = data[:size]
        conn.buffer_updated(size)
        data = data[size:]


class LoopbackWorker:
    """A worker (interpserve.worker.main.Worker, the ASGI cycles and all) run on the front
    end's own event loop, over a pair of real pipes: the pool's third worker kind, for tests.
    `freeze()` makes it stuck (it reads nothing more); `crash()` makes it gone."""

    kind = "loopback"

    def __init__(self, worker_id: int, settings: str) -> None:
        self.worker_id = worker_id
        self.channel = WorkerChannel(worker_id)
        self.settings: dict[str, Any] = json.loads(settings)
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None
        self._main_fds: tuple[int, ...] = ()

    async def start(self) -> None:
        to_worker_r, to_worker_w = open_pipe()
        from_worker_r, from_worker_w = open_pipe()
        await self.channel.connect(from_worker_r, to_worker_w)
        self._main_fds = (from_worker_r, to_worker_w)
        self.worker = Worker(self.settings, "interpreter", (Output(1), Output(2)))
        # In the test's own process: its stdout, stderr and logging stay the test's (pytest's
        # capture), not the ones a worker sets up for itself.
        self.worker._configure_logging = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._run(to_worker_r, from_worker_w))

    async def _run(self, fd_in: int, fd_out: int) -> None:
        assert self.worker is not None
        try:
            await self.worker.serve(fd_in, fd_out)
        finally:
            os.close(fd_in)
            os.close(fd_out)

    def freeze(self) -> None:
        """Stuck, as in code that never yields: it reads nothing more, answers no ping."""
        assert self.worker is not None
        reader = self.worker._pipe._reader
        assert reader is not None
        reader.pause_reading()

    def crash(self) -> None:
        """Gone at once, as a worker whose process died."""
        assert self._task is not None
        self._task.cancel()

    async def wait_stopped(self, timeout: float | None) -> bool:
        assert self._task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            return False
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise
        return True

    def terminate(self) -> None:
        self.channel.close()
        if self._task is not None:
            self._task.cancel()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def close(self, *, destroy: bool = True) -> None:
        self.channel.close()
        for fd in self._main_fds:
            os.close(fd)
        self._main_fds = ()
