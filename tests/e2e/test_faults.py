"""Faults: clients that go away or stop reading, apps that misbehave, and whether one request
can ever see another's data or memory creep over a long run. Real servers, bounded in time.

Apps: examples/hello.py, and tests/apps/faults_app.py for the misbehaviour hello does not have.
The raw-socket client and the RSS probes are test_http.py's.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import (
    MB,
    TIMEOUT,
    PeakRSS,
    RawConnection,
    assert_still_serving,
    raw_get,
    raw_request,
    rss_bytes,
    wait_for_file,
)

from interpserve.testing import ServerProcess, wait_until

FAULTS = "tests.apps.faults_app:app"


@pytest.fixture
def faults_server(start_server: Callable[..., ServerProcess], http_impl: str) -> ServerProcess:
    return start_server(FAULTS, "--workers", "1", "--http", http_impl)


# Clients that go away


def test_disconnect_mid_upload_reaches_the_app(
    faults_server: ServerProcess, tmp_path: Path
) -> None:
    marker, started = tmp_path / "marker", tmp_path / "started"
    with RawConnection(faults_server) as conn:
        conn.send(
            raw_request(
                "POST", f"/upload?marker={marker}&started={started}", "Content-Length: 10000000"
            )
            + os.urandom(300_000)
        )
        assert wait_until(started.exists), "the app never got the body"
    assert wait_for_file(marker) == "disconnected"
    response = httpx.post(faults_server.url + "/upload", content=b"abc", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "ok")  # the worker kept going


def test_disconnect_mid_download_reaches_the_app(
    hello_server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    with RawConnection(hello_server) as conn:
        conn.send(raw_get(f"/wait-disconnect?marker={marker}"))
        assert conn.read_head().status == 200
        assert next(conn.iter_chunks()) == b"waiting\n"
    assert wait_for_file(marker) == "disconnected"
    assert_still_serving(hello_server)


def test_send_raises_once_the_client_has_gone(faults_server: ServerProcess, tmp_path: Path) -> None:
    """ASGI 2.4, as the scope says: an app streaming without listening for http.disconnect
    (Starlette's StreamingResponse relies on this) learns from send() that the client left,
    and that is no error to log."""
    marker = tmp_path / "stopped"
    with RawConnection(faults_server) as conn:
        conn.send(raw_get(f"/stream-forever?marker={marker}"))
        conn.read_until(b"tick\n")
    assert wait_until(marker.exists, 5), "the app went on streaming to nobody"
    assert wait_until(lambda: marker.read_text() == "ClientDisconnected", 1)
    assert httpx.get(faults_server.url + "/", timeout=TIMEOUT).content == b"ok"
    assert "Exception in ASGI application" not in faults_server.output


def test_disconnect_mid_big_download(hello_server: ServerProcess) -> None:
    """The client reads a little of a 200 MB response and leaves: the app is stopped by
    backpressure, then told; nothing piles up."""
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/stream?n=3200&size=65536"))
        assert conn.read_head().status == 200
        conn.read_exactly(1_000_000)
    assert_still_serving(hello_server)


def test_closing_request_with_body_in_later_reads(faults_server: ServerProcess) -> None:
    """`Connection: close` (or HTTP/1.0) with the body after the head, as curl sends it after
    "100 Continue": the body must still reach the app (the h11 backend once dropped it)."""
    for version, expect in (("1.1", True), ("1.1", False), ("1.0", False)):
        headers = ["Connection: close", "Content-Length: 6"]
        if expect:
            headers.append("Expect: 100-continue")
        with RawConnection(faults_server) as conn:
            conn.send(raw_request("POST", "/read-body", *headers, version=version))
            if expect:
                assert conn.read_head().status == 100
            else:
                time.sleep(0.2)  # the stimulus: the body comes in later reads than the head
            conn.send(b"abc")
            time.sleep(0.1)  # (and in two of them)
            conn.send(b"def")
            response = conn.read_response("POST")
        assert (response.status, response.body) == (200, b"6"), (version, expect)


# A client that reads nothing


def test_slow_reader_of_200_mb_does_not_grow_memory(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1")
    assert_still_serving(server)
    idle = rss_bytes(server.pid)
    with PeakRSS(server.pid) as rss, RawConnection(server, timeout=30) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.send(raw_get("/stream?n=3200&size=65536"))  # 200 MB
        # The stimulus: a client that reads nothing for long enough that, unchecked, the app
        # would have produced all of it.
        time.sleep(3)
        assert rss.peak - idle < 100 * MB, f"RSS grew {(rss.peak - idle) / MB:.0f} MB"
        # Other clients are served meanwhile.
        assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code == 200
    grown = rss.peak - idle
    assert grown < 100 * MB, f"RSS grew {grown / MB:.0f} MB for a client reading nothing"
    assert_still_serving(server)


# Apps that misbehave


@pytest.mark.own_server
def test_app_raises_before_the_response(hello_server: ServerProcess) -> None:
    response = httpx.get(hello_server.url + "/error", timeout=TIMEOUT)
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert hello_server.wait_for_output("RuntimeError: boom")  # the traceback goes to the log
    assert_still_serving(hello_server)


@pytest.mark.own_server
def test_app_raises_after_the_response_started(hello_server: ServerProcess) -> None:
    """The response cannot be completed: the connection is dropped, and the request pipelined
    behind it is not answered on a connection whose framing is lost."""
    with RawConnection(hello_server) as conn:
        conn.send(raw_get("/error-after-start") + raw_get("/"))
        data = conn.read_to_eof()
    assert b"0\r\n\r\n" not in data and b"Hello, world!" not in data
    assert b"Traceback" not in data
    assert hello_server.wait_for_output("RuntimeError: boom after start")
    assert_still_serving(hello_server)


def test_app_returns_without_responding(faults_server: ServerProcess) -> None:
    response = httpx.get(faults_server.url + "/no-response", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert faults_server.wait_for_output("returned without starting response")


def test_response_head_does_not_wait_for_a_late_body(faults_server: ServerProcess) -> None:
    """The worker holds a response start to send it with the first body chunk; when the app
    waits for something else first, the head still leaves at once."""
    with RawConnection(faults_server) as conn:
        started = time.monotonic()
        conn.send(raw_get("/late-body?s=3"))
        head = conn.read_head()
        assert time.monotonic() - started < 2.5
        assert head.status == 200
        assert b"".join(conn.iter_chunks()) == b"late"


@pytest.mark.parametrize("part", ["name", "value"])
def test_app_header_cannot_split_the_response(faults_server: ServerProcess, part: str) -> None:
    """A CR LF in a header the app sends is refused (500), never written to the client."""
    with RawConnection(faults_server) as conn:
        conn.send(raw_get(f"/bad-header?part={part}") + raw_get("/"))
        first, second = conn.read_response(), conn.read_response()
    assert (first.status, first.body) == (500, b"Internal Server Error")
    assert first.header("set-cookie") is None
    assert (second.status, second.body) == (200, b"ok")
    assert faults_server.wait_for_output("invalid HTTP header in the response")


def test_app_headers_may_be_bytearrays(faults_server: ServerProcess) -> None:
    with RawConnection(faults_server) as conn:
        conn.send(raw_get("/bad-header?part=bytearray"))
        response = conn.read_response()
    assert (response.status, response.body) == (200, b"ok")
    assert response.header("x-echo") == "fine"


@pytest.mark.parametrize("code", [0, 99, 100, 103, 1000])
def test_app_status_that_is_no_final_status_gets_500(
    faults_server: ServerProcess, code: int
) -> None:
    """A 1xx as the response would go out without a body, and the client would take the next
    response for this one's: the app gets the usual 500 for a bad response instead."""
    with RawConnection(faults_server) as conn:
        conn.send(raw_get(f"/status?code={code}") + raw_get("/"))
        first, second = conn.read_response(), conn.read_response()
    assert first.status == 500
    assert (second.status, second.body) == (200, b"ok")


def test_app_sends_after_completion(faults_server: ServerProcess) -> None:
    """Ignored and logged; the response is intact and the connection still usable."""
    with RawConnection(faults_server) as conn:
        conn.send(raw_get("/after-complete") + raw_get("/"))
        first, second = conn.read_response(), conn.read_response()
    assert (first.status, first.body) == (200, b"done")
    assert (second.status, second.body) == (200, b"ok")
    assert faults_server.wait_for_output("Ignored an ASGI message sent after the response")


@pytest.mark.parametrize("path", ["/too-long", "/too-long?chunks=3"])
def test_app_body_longer_than_its_content_length(faults_server: ServerProcess, path: str) -> None:
    """Nothing past the app's Content-Length reaches the client, however the body is split: the
    excess could read as the response to the next request. The operator is told whose it is."""
    with RawConnection(faults_server) as conn:
        conn.send(raw_get(path) + raw_get("/"))
        head = conn.read_head()
        assert head.header("content-length") == "5"
        rest = conn.read_to_eof()
    assert rest == b"01234", "exactly Content-Length bytes, then the connection closes"
    assert faults_server.wait_for_output(
        f'ERROR:    Response to "GET {path}" is longer than its Content-Length of 5 bytes'
    )


def test_app_body_shorter_than_its_content_length(faults_server: ServerProcess) -> None:
    with RawConnection(faults_server) as conn:
        conn.send(raw_get("/too-short") + raw_get("/"))
        head = conn.read_head()
        assert head.header("content-length") == "10"
        rest = conn.read_to_eof()
    assert rest == b"01234", "the client sees the response end early, with the connection"
    assert faults_server.wait_for_output(
        'ERROR:    Response to "GET /too-short" ended after 5 of its Content-Length of 10 bytes'
    )


@pytest.mark.parametrize(
    "rest",
    [b"zz\r\n", (b"100\r\n" + b"a" * 256 + b"\r\n") * 8 + b"0\r\n\r\n"],
    ids=["malformed-chunk", "over-the-body-limit"],
)
def test_a_body_found_bad_after_its_answer_gets_no_second_answer(
    start_server: Callable[..., ServerProcess], http_impl: str, rest: bytes
) -> None:
    """The app answered without reading the body; the rest of the body then turns out bad. The
    connection closes: a 400 or 413 after the 200 would be read as the next request's answer."""
    server = start_server(FAULTS, "--http", http_impl, "--limit-request-body", "1000")
    with RawConnection(server) as conn:
        conn.send(raw_request("POST", "/", "Transfer-Encoding: chunked", body=b"3\r\nabc\r\n"))
        response = conn.read_response()
        conn.send(rest)
        after = conn.read_to_eof()
    assert (response.status, response.body) == (200, b"ok")
    assert after == b""


# No request ever sees another's data


def test_concurrent_posts_get_their_own_bodies(hello_server: ServerProcess) -> None:
    rng = random.Random(5)
    bodies = [rng.randbytes(rng.randint(1, 200_000)) for _ in range(200)]
    # One client (one keep-alive connection) per thread: threads sharing one httpx.Client
    # sometimes fail with EBADF in its pool, whatever the server (uvicorn's too).
    local = threading.local()
    clients: list[httpx.Client] = []

    def echo(body: bytes) -> bytes:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=30)
            clients.append(local.client)
        return local.client.post(hello_server.url + "/echo", content=body).content

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            echoed = list(pool.map(echo, bodies))
    finally:
        for client in clients:
            client.close()
    mismatched = [i for i, (a, b) in enumerate(zip(bodies, echoed, strict=True)) if a != b]
    assert not mismatched, f"{len(mismatched)} responses carried other data"


def test_pipelined_posts_get_their_own_bodies(hello_server: ServerProcess) -> None:
    rng = random.Random(7)
    connections = 4
    bodies = [[rng.randbytes(rng.randint(0, 50_000)) for _ in range(25)] for _ in range(4)]
    results: list[list[bytes]] = [[] for _ in range(connections)]

    def run(index: int) -> None:
        with RawConnection(hello_server, timeout=30) as conn:
            requests = b"".join(
                raw_request(
                    "POST", "/read-body" if i % 2 else "/echo", f"Content-Length: {len(b)}", body=b
                )
                for i, b in enumerate(bodies[index])
            )
            sender = threading.Thread(target=conn.send, args=(requests,))
            sender.start()
            for _ in bodies[index]:
                results[index].append(conn.read_response("POST").body)
            sender.join()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for index in range(connections):
        for i, (sent, got) in enumerate(zip(bodies[index], results[index], strict=True)):
            # hello has no /read-body: its 404 shows the request was framed where it should be
            assert got == (b"Not Found" if i % 2 else sent)


# Memory over a long run


def pipelined_gets(server: ServerProcess, total: int, batch: int = 100) -> None:
    """`total` requests for / on one keep-alive connection, `batch` at a time in one write."""
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        for _ in range(total // batch):
            sock.sendall(request * batch)
            seen, tail = 0, b""
            while seen < batch:
                data = tail + sock.recv(1 << 20)
                seen += data.count(b"HTTP/1.1 200 OK\r\n")
                tail = data[-16:]  # (shorter than a status line: none is counted twice)
            assert seen == batch


@pytest.mark.slow
def test_memory_is_flat_over_100k_requests(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "2", "--no-access-log")
    clients = 4
    warm_up = threading.Thread(target=pipelined_gets, args=(server, 20_000))
    warm_up.start()
    warm_up.join(60)
    baseline = rss_bytes(server.pid)
    started = time.monotonic()
    with PeakRSS(server.pid, interval=0.1) as rss:
        threads = [
            threading.Thread(target=pipelined_gets, args=(server, 100_000 // clients))
            for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    elapsed = time.monotonic() - started
    final = rss_bytes(server.pid)
    detail = (
        f"RSS {baseline / MB:.1f} MB after warm-up, peak {rss.peak / MB:.1f} MB, "
        f"{final / MB:.1f} MB after 100k requests in {elapsed:.1f} s"
    )
    print(detail)
    assert rss.peak <= baseline * 1.10, detail
    assert final <= baseline * 1.10, detail
