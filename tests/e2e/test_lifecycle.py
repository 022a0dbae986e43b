"""End-to-end start-up and shut-down of a real interpserve process: lifespan, apps that cannot
load, signals and graceful draining. Loopback only; every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ROOT, TIMEOUT, RawConnection, child_pids, failed_start, raw_get, raw_request

from interpserve.testing import ServerProcess, running, wait_until

FAULTS = "tests.apps.faults_app:app"


@contextlib.contextmanager
def running_request(server: ServerProcess, seconds: float) -> Iterator[RawConnection]:
    """A connection whose request (faults_app's /late-body) is running: its response has
    started, and its body comes `seconds` later."""
    with RawConnection(server, timeout=30) as conn:
        conn.send(raw_get(f"/late-body?s={seconds}"))
        assert conn.read_head().status == 200
        yield conn


def get_in_thread(url: str, results: list[httpx.Response | BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(httpx.get(url, timeout=30))
        except BaseException as exc:
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def refuses_connections(server: ServerProcess) -> bool:
    try:
        socket.create_connection((server.host, server.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# Lifespan ----------------------------------------------------------------------------------


def test_lifespan_startup_runs_in_every_worker(start_server) -> None:
    before = time.time()
    server = start_server("examples.hello:app", "--workers", "2")
    with httpx.Client(timeout=TIMEOUT) as client:
        first = client.get(server.url + "/state").json()
        # While worker 1 (or 2) is busy, the next request goes to the other one.
        with RawConnection(server) as busy:
            busy.send(raw_get("/wait-disconnect"))
            busy.read_until(b"waiting\n")  # the busy request is running
            second = client.get(server.url + "/state").json()
    assert first["interpreter"] != second["interpreter"]
    for state in (first, second):
        assert isinstance(state["started_at"], float)
        assert before - 5 < state["started_at"] < time.time()
        assert state["pid"] == server.pid


def test_lifespan_off(start_server) -> None:
    server = start_server(
        "examples.hello:app", "--lifespan", "off", env={"HELLO_FAIL_STARTUP": "1"}
    )
    state = httpx.get(server.url + "/state", timeout=TIMEOUT).json()
    assert state["started_at"] is None


def test_lifespan_startup_failure_stops_the_server(worker_kind: str) -> None:
    server = failed_start(
        "examples.hello:app", "--worker-kind", worker_kind, env={"HELLO_FAIL_STARTUP": "1"}
    )
    assert server.process is not None
    assert server.process.returncode != 0
    assert "startup refused by HELLO_FAIL_STARTUP" in server.output


def test_lifespan_shutdown_runs_and_server_exits_cleanly(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "2")
    assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code == 200
    assert server.stop(timeout=20) == 0
    assert "Finished server process" in server.output
    assert "Traceback" not in server.output


# Apps that cannot load ---------------------------------------------------------------------


def test_unimportable_module() -> None:
    server = failed_start("no_such_module:app")
    assert server.process is not None
    assert server.process.returncode != 0
    assert 'Could not import module "no_such_module"' in server.output
    assert "Traceback" not in server.output


def test_missing_attribute() -> None:
    server = failed_start("examples.hello:nope")
    assert server.process is not None
    assert server.process.returncode != 0
    assert "Attribute" in server.output
    assert '"nope"' in server.output
    assert "Traceback" not in server.output


def test_numpy_app_refused_by_interpreter_workers() -> None:
    server = failed_start("examples.numpy_app:app", "--worker-kind", "interpreter")
    assert server.process is not None
    # 1, not a negative signal number: the process must not crash (no core dump).
    assert server.process.returncode == 1, server.output
    output = server.output
    assert "numpy" in output
    assert "--worker-kind process" in output
    assert "core dumped" not in output.lower()
    assert "Fatal Python error" not in output


@pytest.mark.parametrize(
    "app_args",
    [("tests.apps.numpy_late:make", "--factory"), ("tests.apps.numpy_late:lifespan_app",)],
    ids=["factory", "lifespan-startup"],
)
def test_numpy_imported_after_the_module_refused_by_interpreter_workers(
    app_args: tuple[str, ...],
) -> None:
    # The refusal comes from the factory or from lifespan startup (--lifespan auto), not from
    # the module's import: it is still the one line naming the module, not a traceback, and
    # not taken for an app without lifespan support.
    server = failed_start(*app_args, "--worker-kind", "interpreter", "--workers", "2")
    assert server.process is not None
    assert server.process.returncode == 1, server.output
    errors = [line for line in server.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, server.output
    assert "module 'numpy' (numpy._core._multiarray_umath)" in errors[0]
    assert "--worker-kind process" in errors[0]
    assert "Traceback" not in server.output
    assert "unsupported" not in server.output


def test_numpy_app_served_by_process_workers(start_server) -> None:
    import numpy

    server = start_server("examples.numpy_app:app", "--worker-kind", "process", "--workers", "2")
    response = httpx.get(server.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text == f"numpy {numpy.__version__}"
    assert server.stop(timeout=20) == 0


def test_hello_served_by_process_workers(start_server) -> None:
    server = start_server("examples.hello:app", "--worker-kind", "process", "--workers", "2")
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            assert client.get(server.url + "/").text == "Hello, world!"
            info = client.get(server.url + "/cpu?ms=10").json()
            assert info["pid"] != server.pid  # a process worker is a child process
            body = b"y" * 500_000
            assert client.post(server.url + "/echo", content=body).content == body
    except httpx.TransportError as exc:
        raise AssertionError(f"{exc!r}; server output:\n{server.output}") from exc
    assert server.stop(timeout=20) == 0, server.output


# Start-up order ----------------------------------------------------------------------------


def test_workers_ready_before_listening(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "4")
    # No retries and no warm-up: the very first requests, all at once, must succeed.
    results: list[httpx.Response | BaseException] = []
    threads = [get_in_thread(server.url + "/state", results) for _ in range(8)]
    for thread in threads:
        thread.join(30)
    assert len(results) == 8
    for result in results:
        assert isinstance(result, httpx.Response), result
        assert result.status_code == 200
        assert result.json()["started_at"] is not None  # lifespan startup already done
    output = server.output
    assert output.index("Workers ready") < output.index("Listening on")


# Signals and draining ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_requests(
    start_server, sig: signal.Signals, worker_kind: str, tmp_path: Path
) -> None:
    server = start_server("tests.apps.hold:app", "--workers", "2", "--worker-kind", worker_kind)
    results: list[httpx.Response | BaseException] = []
    release = tmp_path / "release"
    held = [tmp_path / "a", tmp_path / "b"]
    threads = [
        get_in_thread(f"{server.url}/hold?here={here}&release={release}", results) for here in held
    ]
    assert wait_until(lambda: all(here.exists() for here in held), TIMEOUT)
    server.signal(sig)
    assert server.wait_for_output("Shutting down", timeout=5)
    # New connections are refused once shutdown has started, while the old ones finish.
    assert refuses_connections(server)
    release.touch()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    for result in results:
        assert isinstance(result, httpx.Response), repr(result)
        assert (result.status_code, result.json()["released"]) == (200, True)
        assert result.headers.get("connection") == "close"
    assert server.wait(timeout=20) == 0, server.output
    assert "Traceback" not in server.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_when_idle_exits_zero(start_server, sig: signal.Signals) -> None:
    server = start_server("examples.hello:app", "--workers", "2")
    assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code == 200
    started = time.monotonic()
    server.signal(sig)
    assert server.wait(timeout=20) == 0, server.output
    assert time.monotonic() - started < 10
    assert "Finished server process" in server.output
    assert "Traceback" not in server.output


def test_idle_keep_alive_connection_does_not_delay_shutdown(start_server) -> None:
    server = start_server("examples.hello:app", "--timeout-keep-alive", "60")
    sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"Hello, world!"):
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0, server.output
        assert time.monotonic() - started < 5
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(4096) == b""  # closed by the server


def test_a_request_on_an_idle_connection_as_the_drain_starts_is_answered(start_server) -> None:
    """A client sends its next request on its keep-alive connection just as the server starts
    to drain: it gets its response (the last on that connection), not a closed connection; an
    idle connection is kept only for a short grace (DRAIN_IDLE)."""
    server = start_server("examples.hello:app", "--timeout-keep-alive", "60")
    with RawConnection(server) as idle, RawConnection(server) as probe:
        for conn in (idle, probe):
            conn.send(raw_request("GET", "/"))
            assert conn.read_response().status == 200
        server.signal(signal.SIGTERM)
        assert server.wait_for_output("Shutting down", timeout=5)
        idle.send(raw_request("GET", "/"))
        response = idle.read_response()
        assert (response.status, response.header("connection")) == (200, "close")
        assert idle.read_to_eof() == b""
        # ("connection: close": the drain had started.) A connection that stays idle is
        # closed by the server, not kept for its 60 s of keep-alive.
        assert probe.read_to_eof() == b""
    assert server.wait(timeout=20) == 0, server.output


def test_second_sigterm_does_not_cut_the_drain_short(start_server) -> None:
    """`timeout` and process managers may send SIGTERM twice: the drain goes on, as uvicorn's
    does (only a second Ctrl+C is the operator's impatience)."""
    server = start_server(FAULTS, "--workers", "2")
    with running_request(server, 1) as conn:
        server.signal(signal.SIGTERM)
        assert server.wait_for_output("Shutting down", timeout=5)
        server.signal(signal.SIGTERM)
        body = b"".join(conn.iter_chunks())
        assert server.wait(timeout=20) == 0, server.output
    assert body == b"late"


def test_second_sigint_exits_at_once(start_server) -> None:
    server = start_server(FAULTS, "--workers", "2")
    with running_request(server, 20) as conn:
        server.signal(signal.SIGINT)
        assert server.wait_for_output("Shutting down", timeout=5)
        started = time.monotonic()
        server.signal(signal.SIGINT)
        code = server.wait(timeout=20)
        assert time.monotonic() - started < 5
        rest = conn.read_to_eof()
    assert code != 0
    assert b"late" not in rest, "the request was cut short"


@pytest.mark.parametrize("kind", ["auto", "interpreter", "process"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_start_up_stops_at_once(
    tmp_path: Path, sig: signal.Signals, kind: str
) -> None:
    # The app's import takes 6 s: in the probe (auto), or in the workers. The server must stop
    # within a second or two, its workers with it, and never listen.
    log, importing = tmp_path / "server.log", tmp_path / "importing"
    command = [sys.executable, "-m", "interpserve", "tests.apps.slow_import:app"]
    args = ["--worker-kind", kind, "--workers", "2", "--port", "0"]
    env = {**os.environ, "SLOW_IMPORT_STARTED": str(importing)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
    try:
        assert wait_until(importing.exists, TIMEOUT), log.read_text()  # into the import
        children = child_pids(process.pid)
        started = time.monotonic()
        process.send_signal(sig)
        code = process.wait(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert code == 0, output
    assert elapsed < 3, output
    assert "Listening on" not in output
    assert "Traceback" not in output
    if kind != "interpreter":
        assert children, "the probe or the process workers should have been running"
    assert wait_until(lambda: not any(running(pid) for pid in children), 5), output
