"""The limits and read timeouts: --limit-concurrency, --timeout-header-read (slowloris),
--timeout-body-read (a stalled body), --limit-request-body while a body streams, --backlog.
(The size limits on heads are exercised with the smuggling vectors: tests/test_smuggling.py.)"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from support import TIMEOUT, read_to_eof

from interpserve.testing import ServerProcess, wait_until

FAULTS = "tests.apps.faults_app:app"


def test_limit_concurrency_answers_503(start_server, http_impl: str, tmp_path: Path) -> None:
    server = start_server(
        "tests.apps.hold:app", "--workers=1", f"--http={http_impl}", "--limit-concurrency=1"
    )
    here, release = tmp_path / "here", tmp_path / "release"
    held = f"{server.url}/hold?here={here}&release={release}"
    slow = threading.Thread(target=httpx.get, args=(held,), kwargs={"timeout": 40})
    slow.start()
    try:
        assert wait_until(here.exists, TIMEOUT), "the held request never started"
        busy = httpx.get(server.url + "/", timeout=TIMEOUT)
    finally:
        release.touch()
        slow.join()
    assert (busy.status_code, busy.text) == (503, "Service Unavailable")
    assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code == 200  # room again


def test_slowloris_is_cut_off_at_the_header_deadline(start_server, http_impl: str) -> None:
    """A head trickled a line at a time gets 408 when the deadline passes, however steadily
    bytes keep coming."""
    server = start_server(FAULTS, "--workers=1", f"--http={http_impl}", "--timeout-header-read=1")
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        try:
            for i in range(30):
                time.sleep(0.2)  # the stimulus: a head that trickles in
                sock.sendall(b"X-%d: a\r\n" % i)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = read_to_eof(sock)
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert 0.9 < elapsed < TIMEOUT, elapsed  # (late only on a loaded machine)
    assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code == 200


def test_idle_connection_is_not_a_slowloris(start_server) -> None:
    """Empty lines before a request are not a head: the keep-alive timeout applies, quietly."""
    server = start_server(
        FAULTS, "--workers=1", "--timeout-header-read=0.5", "--timeout-keep-alive=1.5"
    )
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\r\n")
        time.sleep(0.8)  # the stimulus: idle past the header deadline, within keep-alive
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert read_to_eof(sock).startswith(b"HTTP/1.1 200 ")


def test_stalled_body_gets_408(start_server, http_impl: str) -> None:
    server = start_server(FAULTS, "--workers=1", f"--http={http_impl}", "--timeout-body-read=1")
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /read-body HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        received = read_to_eof(sock)
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert 0.9 < elapsed < TIMEOUT, elapsed  # (late only on a loaded machine)


def test_trickled_body_is_not_stalled(start_server) -> None:
    """The body timeout is for silence, not for slowness: each byte resets it."""
    server = start_server(FAULTS, "--workers=1", "--timeout-body-read=0.5")
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /read-body HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n")
        sock.sendall(b"Connection: close\r\n\r\n")
        for byte in b"abcdef":
            time.sleep(0.3)  # the stimulus: a body slower than its timeout, but never silent
            sock.sendall(bytes([byte]))
        received = read_to_eof(sock)
    assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"\r\n\r\n6"), received


@pytest.mark.parametrize("chunked", [False, True], ids=["length-up-front", "chunked-streaming"])
def test_body_limit(start_server, http_impl: str, chunked: bool) -> None:
    """413 for a Content-Length over the limit at once; a chunked body is counted as it
    arrives, in pieces, and refused once it passes the limit."""
    server = start_server(
        FAULTS, "--workers=1", f"--http={http_impl}", "--limit-request-body=100000"
    )
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 200000"
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /read-body HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n\r\n")
        try:
            for _ in range(20):
                piece = b"x" * 10_000
                sock.sendall(b"2710\r\n" + piece + b"\r\n" if chunked else piece)
                time.sleep(0.02)  # the stimulus: a body in pieces
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = read_to_eof(sock)
    assert received.startswith(b"HTTP/1.1 413 "), received[:100]
    assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code == 200


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_backlog_reaches_the_listening_socket(start_server) -> None:
    server: ServerProcess = start_server("examples.hello:app", "--workers=1", "--backlog=37")
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listing[0] == "LISTEN"
    assert listing[2] == "37"  # Send-Q of a listening socket: its backlog
