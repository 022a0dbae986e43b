"""--health-path (answered by the front end: 200 when workers are ready, 503 while starting or
draining) and --metrics-port (Prometheus text from the main interpreter), against real servers
on 127.0.0.1. Every request has a client timeout and every wait is bounded."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import ROOT, TIMEOUT, StartServer, child_pids

from interpserve.config import Config
from interpserve.errors import ConfigError, ServerFailed
from interpserve.frontend.health import is_probe, probe_response
from interpserve.frontend.server import Server
from interpserve.listen import bind
from interpserve.pool.pool import WorkerPool
from interpserve.testing import ServerProcess, wait_until

_METRICS_URL = re.compile(r"Metrics on (http://\S+/metrics)")


# The probe's decision


@pytest.mark.parametrize(
    ("health_path", "target", "expected"),
    [
        ("/healthz", b"/healthz", True),
        ("/healthz", b"/healthz?verbose=1", True),
        ("/healthz", b"/healthz/", False),
        ("/healthz", b"/", False),
        (None, b"/healthz", False),
    ],
)
def test_is_probe(health_path: str | None, target: bytes, expected: bool) -> None:
    assert is_probe(health_path, target) is expected


def test_probe_response() -> None:
    assert probe_response(ready=True, draining=False) == (200, b"ok")
    assert probe_response(ready=False, draining=False)[0] == 503
    assert probe_response(ready=True, draining=True) == (503, b"draining")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"health_path": "healthz"}, ["health_path", "/"]),
        ({"metrics_port": 70000}, ["metrics_port", "70000"]),
        ({"fd": -1}, ["fd", "-1"]),
    ],
)
def test_config_rejects(options: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Config(app="m:app", **options)  # type: ignore[arg-type]
    assert all(word in str(info.value) for word in words)


def test_metrics_without_prometheus_client_is_one_clear_line() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None; from interpserve.cli import main; "
        "main(['examples.hello:app', '--metrics-port', '0'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "interpserve: error: metrics_port needs the prometheus-client package: "
        "pip install 'interpserve[metrics]'"
    ]


# Health, in a real server


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT)


def test_health_is_answered_by_the_front_end(start_server: StartServer) -> None:
    server = start_server("examples.hello:app", "--workers", "2", "--health-path", "/healthz")
    response = get(server.url + "/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    assert response.headers["content-type"].startswith("text/plain")
    assert get(server.url + "/healthz?probe=kubelet").status_code == 200
    head = httpx.head(server.url + "/healthz", timeout=TIMEOUT)
    assert (head.status_code, head.content) == (200, b"")
    assert get(server.url + "/").text == "Hello, world!"
    assert server.wait_for_output('"HEAD /healthz HTTP/1.1" 200 OK')
    probe_lines = [line for line in server.output.splitlines() if "/healthz" in line]
    assert probe_lines and all(line.endswith("worker=-") for line in probe_lines)


def test_without_health_path_the_app_answers(start_server: StartServer) -> None:
    server = start_server("examples.hello:app", "--workers", "1")
    assert get(server.url + "/healthz").status_code == 404  # hello's own answer


async def test_health_503_until_the_workers_are_ready_and_while_draining() -> None:
    """In this process: a front end whose pool has not started yet, then has."""
    config = Config(
        app="examples.hello:app",
        app_dir=str(ROOT),
        port=0,
        workers=1,
        worker_kind="process",
        health_path="/healthz",
        log_level="warning",
    )
    pool = WorkerPool(config, "process")
    listeners = bind(config)
    server = Server(config, pool, listeners.sockets)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/healthz"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            starting = await client.get(url)
            assert (starting.status_code, starting.text) == (503, "not ready")
            await pool.start()
            ready = await client.get(url)
            assert (ready.status_code, ready.text) == (200, "ok")
    finally:
        await server.shutdown(1.0)
        listeners.close()
        assert server.state.draining
        assert await pool.stop(5.0)


def test_health_503_while_no_worker_is_ready(start_server: StartServer) -> None:
    """The only worker dies: probes fail until its replacement is ready, then pass again. The
    app's import takes a second, so the replacement's start is never quicker than a probe (an
    app that starts in 50 ms could be replaced between two probes on a loaded machine)."""
    server = start_server(
        "tests.apps.slow_import:app",
        "--workers",
        "1",
        "--worker-kind",
        "process",
        "--health-path",
        "/healthz",
        env={"SLOW_IMPORT_SECONDS": "1"},
    )
    (worker,) = child_pids(server.pid)
    os.kill(worker, signal.SIGKILL)
    statuses = []
    deadline = time.monotonic() + 15
    with httpx.Client(timeout=TIMEOUT) as client:
        while time.monotonic() < deadline:
            statuses.append(client.get(server.url + "/healthz").status_code)
            if 503 in statuses and statuses[-1] == 200:
                break
            time.sleep(0.005)  # (a poll: each probe's answer is the signal)
    assert 503 in statuses, statuses[-5:]
    assert statuses[-1] == 200


# Metrics, in a real server


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    text = get(url).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metrics_url(server: ServerProcess) -> str:
    assert server.wait_for_output("Metrics on ")
    match = _METRICS_URL.search(server.output)
    assert match, server.output
    assert match.group(1).startswith("http://127.0.0.1:")
    return match.group(1)


@pytest.fixture
def metrics_server(start_server: StartServer) -> Iterator[tuple[ServerProcess, str]]:
    server = start_server(
        "examples.hello:app",
        "--workers",
        "2",
        "--worker-kind",
        "process",
        "--metrics-port",
        "0",
        "--health-path",
        "/healthz",
    )
    yield server, metrics_url(server)


def test_requests_by_status_and_latency(metrics_server: tuple[ServerProcess, str]) -> None:
    server, url = metrics_server
    for _ in range(3):
        assert get(server.url + "/").status_code == 200
    assert get(server.url + "/error").status_code == 500
    assert get(server.url + "/missing").status_code == 404
    assert get(server.url + "/sleep?s=0.3").status_code == 200
    samples = scrape(url)
    assert samples[("interpserve_requests_total", (("status", "200"),))] == 4
    assert samples[("interpserve_requests_total", (("status", "500"),))] == 1
    assert samples[("interpserve_requests_total", (("status", "404"),))] == 1
    assert samples[("interpserve_request_duration_seconds_count", ())] == 6
    assert samples[("interpserve_request_duration_seconds_sum", ())] >= 0.3
    # The sleep took longer than 0.25 s; the others less.
    assert samples[("interpserve_request_duration_seconds_bucket", (("le", "0.25"),))] == 5
    assert samples[("interpserve_workers", ())] == 2
    assert samples[("interpserve_workers_target", ())] == 2
    assert samples[("interpserve_worker_restarts_total", ())] == 0
    assert samples[("interpserve_queued_requests", ())] == 0
    assert samples[("interpserve_buffered_bytes", ())] == 0
    assert ("process_resident_memory_bytes", ()) in samples


def test_in_flight_per_worker(metrics_server: tuple[ServerProcess, str]) -> None:
    server, url = metrics_server
    in_flight: dict[tuple[tuple[str, str], ...], float] = {}

    def both_in_flight() -> bool:
        in_flight.clear()
        for (name, labels), value in scrape(url).items():
            if name == "interpserve_worker_requests_in_flight":
                in_flight[labels] = value
        return sum(in_flight.values()) == 2

    with ThreadPoolExecutor(2) as pool:
        sleeping = [pool.submit(get, server.url + "/sleep?s=2") for _ in range(2)]
        assert wait_until(both_in_flight, TIMEOUT), in_flight
        assert [r.result().status_code for r in sleeping] == [200, 200]
    # Least-outstanding dispatch: one sleep on each worker.
    assert sorted(in_flight.values()) == [1, 1], in_flight
    assert scrape(url)[("interpserve_worker_requests_in_flight", in_flight.popitem()[0])] == 0


def test_queued_pipelined_requests(metrics_server: tuple[ServerProcess, str]) -> None:
    server, url = metrics_server
    request = f"GET /sleep?s=1 HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode()
    queued = ("interpserve_queued_requests", ())
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request * 3)  # one answered at a time: two wait behind the first
        assert wait_until(lambda: scrape(url)[queued] == 2, TIMEOUT)
        received = b""
        while received.count(b"slept") < 3:
            data = sock.recv(65536)
            assert data, received
            received += data
    assert scrape(url)[queued] == 0


def test_worker_restarts(metrics_server: tuple[ServerProcess, str]) -> None:
    server, url = metrics_server
    victim = min(child_pids(server.pid))
    os.kill(victim, signal.SIGKILL)
    assert server.wait_for_output("replaces worker", timeout=15)
    samples = scrape(url)
    assert samples[("interpserve_worker_restarts_total", ())] == 1
    assert samples[("interpserve_workers", ())] == 2


def test_scrape_during_load_and_shutdown(metrics_server: tuple[ServerProcess, str]) -> None:
    """Scrapes run on their own thread while the loop serves; SIGTERM still exits 0."""
    server, url = metrics_server
    stop = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(300):
                if stop.is_set():
                    return
                try:
                    client.get(server.url + "/")
                except httpx.HTTPError as exc:
                    errors.append(exc)
                    return

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        for _ in range(10):
            assert scrape(url)[("interpserve_workers", ())] == 2
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not errors
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0


def test_metrics_port_taken_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(
            "examples.hello:app", "--workers", "1", "--metrics-port", str(port), cwd=str(ROOT)
        )
        # The metrics port is bound with the server's, before anything starts.
        with pytest.raises(ServerFailed):
            server.start()
        assert server.wait(30) == 1
    assert f"ERROR:    cannot serve metrics on 127.0.0.1:{port}: Address already in use" in (
        server.output
    )
    assert "Traceback" not in server.output
