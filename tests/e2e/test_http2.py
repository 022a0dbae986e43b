"""End-to-end HTTP/2 of a real interpserve process, over loopback only: httpx (http2=True) and
curl for what clients see, and a raw frame-by-frame client for what misbehaving ones send.

Every socket has a timeout, so a server that hangs fails the test instead of hanging the run.
Each protection is triggered on one connection, and another connection is served afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from support import MB, TIMEOUT, StartServer, serve_for_module, shared_or_own

from interpserve.frontend.http2_frames import PREFACE
from interpserve.frontend.http2_guard import IDLE_FRAME_BURST, RAPID_RESET_BURST
from interpserve.testing import ServerProcess, wait_until

# A raw client -------------------------------------------------------------------------------


@dataclass
class StreamSeen:
    """What the server sent on one stream."""

    headers: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    body: bytes = b""
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers[-1])[b":status"])


class RawH2:
    """A socket that speaks HTTP/2 frame by frame: what a misbehaving client sends, and every
    frame the server answers with (server SETTINGS are acknowledged, nothing else is)."""

    def __init__(
        self,
        server: ServerProcess,
        settings: dict[int, int] | None = None,
        *,
        preface: bool = True,
    ) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.buffer = b""
        self.streams: dict[int, StreamSeen] = {}
        self.goaway: GoAwayFrame | None = None
        self.ping_acks = 0
        if preface:
            self.send(PREFACE, SettingsFrame(0, settings=settings or {}))

    def __enter__(self) -> RawH2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, *parts: bytes | Frame) -> None:
        data = b"".join(p.serialize() if isinstance(p, Frame) else p for p in parts)
        self.sock.sendall(data)

    def headers_frames(
        self,
        stream_id: int,
        fields: Iterable[tuple[str, str]],
        *,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> list[Frame]:
        """A HEADERS frame, and CONTINUATION frames for what does not fit in it."""
        block = self.encoder.encode([(n.encode(), v.encode()) for n, v in fields])
        pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)] or [b""]
        frames: list[Frame] = [
            HeadersFrame(stream_id, data=pieces[0], flags=["END_STREAM"] if end_stream else []),
            *(ContinuationFrame(stream_id, data=piece) for piece in pieces[1:]),
        ]
        if end_headers:
            frames[-1].flags.add("END_HEADERS")
        return frames

    def request(
        self,
        stream_id: int,
        path: str = "/",
        *,
        method: str = "GET",
        extra: Iterable[tuple[str, str]] = (),
        end_stream: bool = True,
    ) -> None:
        fields = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "a")]
        self.send(*self.headers_frames(stream_id, [*fields, *extra], end_stream=end_stream))

    def read_frame(self) -> Frame | None:
        """The server's next frame, or None once it has closed the connection."""
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                    self.buffer = self.buffer[9 + length :]
                    self._note(frame)
                    return frame
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buffer += data

    def _note(self, frame: Frame) -> None:
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            self.send(SettingsFrame(0, flags=["ACK"]))
        elif isinstance(frame, GoAwayFrame):
            self.goaway = frame
        elif isinstance(frame, PingFrame):
            self.ping_acks += "ACK" in frame.flags
        elif frame.stream_id:
            seen = self.streams.setdefault(frame.stream_id, StreamSeen())
            if isinstance(frame, HeadersFrame):
                seen.headers.append(list(self.decoder.decode(frame.data, raw=True)))
            elif isinstance(frame, DataFrame):
                seen.body += frame.data
            elif isinstance(frame, RstStreamFrame):
                seen.reset = frame.error_code
            seen.ended = seen.ended or "END_STREAM" in frame.flags

    def until(self, done: Callable[[], bool]) -> None:
        """Read frames until `done()` holds; fail if the connection closes first."""
        while not done():
            if self.read_frame() is None:
                raise AssertionError(f"closed before the condition held; seen {self.streams}")

    def stream(self, stream_id: int) -> StreamSeen:
        """What the server sent on the stream, once it has ended or been reset."""

        def over() -> bool:
            seen = self.streams.get(stream_id)
            return seen is not None and (seen.ended or seen.reset is not None)

        self.until(over)
        return self.streams[stream_id]

    def sync(self) -> None:
        """Wait until the server has handled everything sent so far (it answers in order)."""
        acks = self.ping_acks
        self.send(PingFrame(0, opaque_data=b"syncsync"))
        self.until(lambda: self.ping_acks > acks)

    def until_closed(self) -> None:
        """Read everything the server sends until it closes the connection."""
        while self.read_frame() is not None:
            pass


def flood(raw: RawH2, frames: Iterable[bytes | Frame]) -> None:
    """Send `frames` at once (a few more than a limit: the server reads all of them, so its
    close is not a reset that could lose its GOAWAY), then read until it closes."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        raw.send(*frames)
    raw.until_closed()


def assert_serves(server: ServerProcess) -> None:
    """Another client, on another connection, is served as if nothing had happened."""
    with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        response = client.get(server.url + "/")
    assert (response.http_version, response.text) == ("HTTP/2", "Hello, world!")


@pytest.fixture(scope="module")
def shared_h2_server() -> Iterator[ServerProcess]:
    yield from serve_for_module("examples.hello:app", "--workers", "2")


@pytest.fixture
def h2_server(request: pytest.FixtureRequest, start_server: StartServer) -> ServerProcess:
    """examples.hello on two workers, shared by the module's tests (support.shared_or_own)."""
    return shared_or_own(
        request, "shared_h2_server", lambda: start_server("examples.hello:app", "--workers", "2")
    )


# What clients see ---------------------------------------------------------------------------


def test_prior_knowledge_on_both_parsers(start_server, http_impl: str) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--http", http_impl)
    with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        hello = client.get(server.url + "/")
        scope = client.get(server.url + "/scope?a=1", headers={"cookie": "x=1"}).json()
        head = client.head(server.url + "/")
    assert (hello.http_version, hello.status_code, hello.text) == ("HTTP/2", 200, "Hello, world!")
    assert hello.headers["server"] == "interpserve" and "date" in hello.headers
    assert scope["http_version"] == "2"
    assert scope["path"] == "/scope" and scope["query_string"] == "a=1"
    headers = dict(scope["headers"])
    assert headers["host"] == f"127.0.0.1:{server.port}" and headers["cookie"] == "x=1"
    assert not any(name.startswith(":") for name, _ in scope["headers"])
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "13")
    # HTTP/1.1 on the same server, as before.
    assert httpx.get(server.url + "/", timeout=TIMEOUT).http_version == "HTTP/1.1"
    assert server.wait_for_output('"GET /scope?a=1 HTTP/2" 200')


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_prior_knowledge(h2_server: ServerProcess) -> None:
    if "HTTP2" not in subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout:
        pytest.skip("this curl has no HTTP/2")
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-i",
            "--http2-prior-knowledge",
            "--data-binary",
            "abc",
            h2_server.url + "/echo",
        ],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert result.stdout.startswith(b"HTTP/2 200")
    assert result.stdout.endswith(b"\r\n\r\nabc")


@pytest.mark.own_server
def test_streams_of_one_connection_run_on_different_workers_at_once(
    h2_server: ServerProcess,
) -> None:
    async def main() -> list[dict[str, int]]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
            requests = [client.get(h2_server.url + "/cpu?ms=300") for _ in range(4)]
            return [response.json() for response in await asyncio.gather(*requests)]

    answers = asyncio.run(main())
    assert len({answer["interpreter"] for answer in answers}) == 2

    def lines() -> list[str]:
        return [line for line in h2_server.output.splitlines() if "/cpu?ms=300 HTTP/2" in line]

    assert wait_until(lambda: len(lines()) == 4)
    assert len({line.split()[1] for line in lines()}) == 1  # one client port
    assert {line.split("worker=")[1] for line in lines()} == {"1", "2"}


def test_large_upload_and_download_with_flow_control(h2_server: ServerProcess) -> None:
    # Many times the server's windows, and less than httpx's own (16 MiB): it reads no
    # response before it has sent the whole request.
    body = bytes(range(256)) * (12 * MB // 256)
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        echoed = client.post(h2_server.url + "/echo", content=body)
        streamed = client.get(h2_server.url + "/stream?n=64&size=1048576")
    assert echoed.content == body
    assert streamed.content == b"x" * 64 * MB


def test_many_streams_at_once_all_answered(h2_server: ServerProcess) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
            return await asyncio.gather(*(client.get(f"{h2_server.url}/?{i}") for i in range(300)))

    responses = asyncio.run(main())
    assert {(r.status_code, r.text) for r in responses} == {(200, "Hello, world!")}


def test_no_http2_answers_the_preface_with_505(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--no-http2")
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(PREFACE)
        assert sock.recv(1024).startswith(b"HTTP/1.1 505 ")


def test_a_preface_in_pieces_and_http_1_1_after_one_byte(h2_server: ServerProcess) -> None:
    with RawH2(h2_server, preface=False) as raw:
        for i in range(0, len(PREFACE), 5):
            raw.send(PREFACE[i : i + 5])
        raw.send(SettingsFrame(0))
        raw.request(1)
        assert raw.stream(1).body == b"Hello, world!"
    with socket.create_connection((h2_server.host, h2_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"P")
        sock.sendall(
            b"OST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")


# Protections --------------------------------------------------------------------------------


def test_max_concurrent_streams(start_server) -> None:
    server = start_server(
        "examples.hello:app", "--workers", "1", "--http2-max-concurrent-streams", "2"
    )
    with RawH2(server) as raw:
        for stream_id in (1, 3, 5):
            raw.request(stream_id, "/sleep?s=0.5")
        # The third is refused on its own (the client may retry it); the two go on.
        assert raw.stream(5).reset == ErrorCodes.REFUSED_STREAM
        assert raw.stream(1).status == 200 and raw.stream(3).status == 200
        assert raw.goaway is None
        raw.request(7)
        assert raw.stream(7).status == 200
        # Streams refused one after another cost what reset ones do: the rapid-reset bound.
        raw.request(9, "/sleep?s=5")
        raw.request(11, "/sleep?s=5")
        fields = [(":method", "GET"), (":scheme", "http"), (":path", "/")]
        ids = range(13, 13 + 2 * (RAPID_RESET_BURST + 50), 2)
        flood(raw, [frame for i in ids for frame in raw.headers_frames(i, fields)])
        assert raw.goaway is not None and raw.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert_serves(server)


def test_settings_advertise_the_limits(start_server) -> None:
    server = start_server(
        "examples.hello:app", "--workers", "1", "--http2-max-header-list-size", "20000"
    )
    with RawH2(server) as raw:
        frame = raw.read_frame()
        assert isinstance(frame, SettingsFrame)
    assert frame.settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 100
    assert frame.settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 20000
    assert frame.settings[SettingCodes.HEADER_TABLE_SIZE] == 4096


def test_header_list_too_large(h2_server: ServerProcess) -> None:
    with RawH2(h2_server) as raw:
        flood(raw, raw.headers_frames(1, [(f"x-{i}", "v" * 1000) for i in range(70)]))
        assert raw.goaway is not None and raw.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert_serves(h2_server)


def test_hpack_table_larger_than_advertised(h2_server: ServerProcess) -> None:
    with RawH2(h2_server) as raw:
        raw.encoder.header_table_size = 1 << 20  # a size update beyond our 4096
        raw.request(1)
        raw.until_closed()
        assert raw.goaway is not None and raw.goaway.error_code != ErrorCodes.NO_ERROR
    assert 1 not in raw.streams
    assert_serves(h2_server)


@pytest.mark.parametrize("frame_size", [16384, 0], ids=["large", "empty"])
def test_continuation_flood(h2_server: ServerProcess, frame_size: int) -> None:
    with RawH2(h2_server) as raw:
        frames = raw.headers_frames(1, [(":method", "GET")], end_headers=False)
        count = 6 if frame_size else 70  # beyond 64 KiB, or beyond h2's 64 frames
        flood(
            raw, [*frames, *(ContinuationFrame(1, data=b"\x00" * frame_size) for _ in range(count))]
        )
        assert raw.goaway is not None
        expected = ErrorCodes.ENHANCE_YOUR_CALM if frame_size else ErrorCodes.PROTOCOL_ERROR
        assert raw.goaway.error_code == expected
    assert_serves(h2_server)


@pytest.mark.own_server
def test_rapid_reset(h2_server: ServerProcess) -> None:
    with RawH2(h2_server) as raw:
        frames: list[Frame] = []
        for stream_id in range(1, 2 * (RAPID_RESET_BURST + 20), 2):
            fields = [(":method", "GET"), (":scheme", "http"), (":path", "/sleep?s=5")]
            frames += raw.headers_frames(stream_id, fields)
            frames.append(RstStreamFrame(stream_id, error_code=ErrorCodes.CANCEL))
        flood(raw, frames)
        assert raw.goaway is not None and raw.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert h2_server.wait_for_output("streams reset faster than they are served")
    assert_serves(h2_server)


@pytest.mark.parametrize("kind", ["ping", "settings", "empty-data"])
def test_control_frame_floods(h2_server: ServerProcess, kind: str) -> None:
    with RawH2(h2_server) as raw:
        if kind == "empty-data":
            raw.request(1, "/echo", method="POST", end_stream=False)
        frame: Frame = {
            "ping": PingFrame(0, opaque_data=b"12345678"),
            "settings": SettingsFrame(0, settings={SettingCodes.ENABLE_PUSH: 0}),
            "empty-data": DataFrame(1, data=b""),
        }[kind]
        flood(raw, [frame] * (IDLE_FRAME_BURST + 50))
        assert raw.goaway is not None and raw.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert_serves(h2_server)


def test_a_few_pings_are_answered(h2_server: ServerProcess) -> None:
    with RawH2(h2_server) as raw:
        for _ in range(20):
            raw.send(PingFrame(0, opaque_data=b"abcdefgh"))
        raw.until(lambda: raw.ping_acks == 20)
        raw.request(1)
        assert raw.stream(1).status == 200


def test_a_client_that_never_opens_its_window(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--http2-timeout-window", "1")
    with RawH2(server, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}) as raw:
        raw.request(1, "/stream?n=4&size=100000")
        seen = raw.stream(1)
        assert seen.status == 200 and seen.body == b"" and seen.reset == ErrorCodes.CANCEL
        # The connection goes on: a stream whose window it opens is served.
        raw.request(3, "/")
        raw.send(WindowUpdateFrame(3, window_increment=100))
        assert raw.stream(3).body == b"Hello, world!"
    assert_serves(server)


def test_a_stalled_request_body_gets_408(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--timeout-body-read", "1")
    with RawH2(server) as raw:
        raw.request(1, "/echo", method="POST", end_stream=False)
        raw.send(DataFrame(1, data=b"part"))
        raw.request(3, "/sleep?s=3", method="POST", end_stream=False)
        assert raw.stream(3).status == 408  # no body at all
        seen = raw.stream(1)  # echo had started its response: reset only
        assert seen.status == 200 and seen.reset == ErrorCodes.CANCEL
        raw.request(5)
        assert raw.stream(5).status == 200


MALFORMED = {
    "connection": [("connection", "keep-alive")],
    "transfer-encoding": [("transfer-encoding", "chunked")],
    "upgrade": [("upgrade", "websocket")],
    "te-gzip": [("te", "gzip")],
    "uppercase-name": [("X-Upper", "1")],
    "pseudo-after-regular": [("x-a", "1"), (":authority", "b")],
    "unknown-pseudo": [(":protocol", "websocket")],
    "response-pseudo": [(":status", "200")],
    "value-with-newline": [("x-a", "1\n2")],
}


@pytest.mark.parametrize("extra", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_are_stream_errors(h2_server: ServerProcess, extra) -> None:
    with RawH2(h2_server) as raw:
        raw.request(1, extra=extra)
        assert raw.stream(1).reset == ErrorCodes.PROTOCOL_ERROR
        raw.request(3, extra=[("te", "trailers")])  # the one TE allowed
        assert raw.stream(3).body == b"Hello, world!"
        assert raw.goaway is None


@pytest.mark.parametrize(
    "fields",
    [
        [(":method", "GET"), (":scheme", "http"), (":authority", "a")],  # no :path
        [(":method", "GET"), (":method", "GET"), (":scheme", "http"), (":path", "/")],
        [(":scheme", "http"), (":path", "/")],  # no :method
        [(":method", "GET"), (":scheme", "http"), (":path", "x")],
    ],
    ids=["no-path", "two-methods", "no-method", "path-not-a-path"],
)
def test_bad_pseudo_headers_are_stream_errors(h2_server: ServerProcess, fields) -> None:
    with RawH2(h2_server) as raw:
        raw.send(*raw.headers_frames(1, fields))
        assert raw.stream(1).reset == ErrorCodes.PROTOCOL_ERROR
        raw.request(3)
        assert raw.stream(3).status == 200


def test_request_limits(start_server) -> None:
    server = start_server(
        "examples.hello:app",
        "--workers", "1",
        "--limit-request-body", "1000",
        "--limit-request-fields", "5",
    )  # fmt: skip
    with RawH2(server) as raw:
        raw.request(1, extra=[(f"x-{i}", "1") for i in range(6)])
        assert raw.stream(1).status == 431
        raw.request(3, "/echo", method="POST", extra=[("content-length", "2000")], end_stream=False)
        assert raw.stream(3).status == 413
        raw.request(5, "/sleep?s=2", method="POST", end_stream=False)
        raw.send(DataFrame(5, data=b"x" * 1500, flags=["END_STREAM"]))
        assert raw.stream(5).status == 413
        raw.request(7, "/", method="CONNECT")
        assert raw.stream(7).status == 501
        raw.request(9)
        assert raw.stream(9).status == 200


@pytest.mark.own_server
def test_graceful_shutdown_goaway_then_in_flight_streams_finish(h2_server: ServerProcess) -> None:
    with RawH2(h2_server) as raw:
        raw.request(1, "/sleep?s=1")
        raw.request(3, "/sleep?s=1")
        raw.sync()  # both are with a worker now
        h2_server.signal(signal.SIGTERM)
        raw.until(lambda: raw.goaway is not None)
        assert raw.goaway is not None
        assert (raw.goaway.error_code, raw.goaway.last_stream_id) == (ErrorCodes.NO_ERROR, 3)
        raw.request(5)  # after the GOAWAY: refused, never answered
        first, second = raw.stream(1), raw.stream(3)
        raw.until_closed()
    assert (first.status, first.body, second.body) == (200, b"slept", b"slept")
    refused = raw.streams.get(5)
    assert refused is None or (refused.reset == ErrorCodes.REFUSED_STREAM and not refused.headers)
    assert h2_server.wait() == 0


def test_response_trailers_when_the_client_takes_them(start_server) -> None:
    server = start_server("tests.apps.trailers_app:app", "--workers", "1", "--lifespan", "off")
    with RawH2(server) as raw:
        raw.request(1, "/", extra=[("te", "trailers")])
        raw.request(3, "/")
        raw.request(5, "/scope", extra=[("te", "trailers")])
        with_trailers, without, scope = raw.stream(1), raw.stream(3), raw.stream(5)
    assert with_trailers.body == without.body == b"part1,part2"
    assert with_trailers.headers[1] == [(b"x-checksum", b"abc"), (b"grpc-status", b"0")]
    assert len(without.headers) == 1 and without.ended
    assert json.loads(scope.body) == ["http.response.trailers"]
    # HTTP/1.1 is not offered them: the body alone.
    response = httpx.get(server.url + "/", timeout=TIMEOUT)
    assert response.text == "part1,part2"
    assert json.loads(httpx.get(server.url + "/scope", timeout=TIMEOUT).text) == []


# TLS ----------------------------------------------------------------------------------------


def test_alpn_h2_and_http_1_1(start_server, tmp_path) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    server = start_server(
        "examples.hello:app", "--workers", "1",
        "--ssl-certfile", str(cert_file), "--ssl-keyfile", str(key_file),
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(ca_file))
    with httpx.Client(http2=True, verify=context, timeout=TIMEOUT) as client:
        h2 = client.get(server.url + "/scope")
    with httpx.Client(verify=context, timeout=TIMEOUT) as client:
        h1 = client.get(server.url + "/scope")
    assert (h2.http_version, h2.json()["http_version"], h2.json()["scheme"]) == (
        "HTTP/2",
        "2",
        "https",
    )
    assert (h1.http_version, h1.json()["http_version"]) == ("HTTP/1.1", "1.1")
    assert json.loads(h2.text)["path"] == "/scope"
