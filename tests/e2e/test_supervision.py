"""End-to-end supervision: workers that crash, get killed, hang, or reach their request quota are
replaced while the server keeps answering; reloads (SIGHUP, --reload) swap in fresh code with
no downtime; SIGTTIN/SIGTTOU resize the pool; `--worker-kind auto` and `interpserve check` pick
out apps whose extension modules refuse subinterpreters; SIGTERM cannot be held up by a worker
stuck in code that never returns.

Every request goes to 127.0.0.1 with a client timeout, and every loop is bounded in count and
time, so a server that hangs fails a test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import (
    CONTROL,
    ONE_SERVING_PROCESS,
    ROOT,
    TIMEOUT,
    Load,
    RawConnection,
    StartServer,
    access_worker_ids,
    child_pids,
    control_server,
    delivered,
    get_path,
    raw_request,
    read_by_server,
)
from websockets.asyncio.client import connect

from interpserve.testing import ServerProcess, running, wait_until

_REPLACES = re.compile(r"Worker (\d+) replaces worker (\d+)\.")


# Helpers ------------------------------------------------------------------------------------


def _files_released(pid: int) -> bool:
    """Whether no thread of the (dead) process holds a file any more: a pipe it wrote to has
    then reached end-of-file for its reader. The group leader can be a zombie already while
    another of its threads is still exiting with the files open."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if os.listdir(task / "fd"):
                return False
        except OSError:
            continue
    return True


def _all_threads_stopped(pid: int) -> bool:
    states = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            states.add((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue
    return states == {"T"}


def versioned_server(
    start_server: StartServer,
    tmp_path: Path,
    kind: str,
    workers: int,
    *flags: str,
    env: dict[str, str] | None = None,
) -> tuple[ServerProcess, Path]:
    """The control app, whose VERSION (or failure) a test sets by rewriting the file returned
    (CONTROL_VERSION_FILE), starting at "v1"."""
    version_file = tmp_path / "version"
    version_file.write_text("v1")
    server = control_server(
        start_server,
        kind,
        workers,
        *flags,
        env={"CONTROL_VERSION_FILE": str(version_file), **(env or {})},
    )
    return server, version_file


def concurrently(server: ServerProcess, paths: list[str]) -> tuple[list[httpx.Response], float]:
    """Send the requests at once (one connection each); their responses and the elapsed time."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(paths)) as pool:
        responses = list(pool.map(lambda path: get_path(server, path), paths))
    return responses, time.monotonic() - started


# 0. The test app itself ---------------------------------------------------------------------


def test_whoami_reports_this_process_and_interpreter(start_server: StartServer) -> None:
    server = control_server(start_server, "interpreter", 1)
    data = json.loads(get_path(server, "/whoami").text)
    assert data == {"pid": server.pid, "interpreter": data["interpreter"], "version": "none"}
    assert data["interpreter"] > 0


# 1. A process worker killed: mid-request, and under load -----------------------------------


def test_process_worker_killed_mid_request_is_replaced(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = control_server(start_server, "process", 2)
    assert wait_until(lambda: len(child_pids(server.pid)) == 2), child_pids(server.pid)
    before = child_pids(server.pid)
    # With no request in flight the first worker takes the next one: /pid, then /sleep.
    victim = int(get_path(server, "/pid").text)
    assert victim in before

    outcome: list[int | str] = []

    def slow_request() -> None:
        try:
            outcome.append(get_path(server, f"/sleep?s=20&started={started}").status_code)
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    started = tmp_path / "started"
    client = threading.Thread(target=slow_request, daemon=True)
    client.start()
    assert wait_until(started.exists), "the request never reached the worker"
    os.kill(victim, signal.SIGKILL)
    client.join(TIMEOUT + 2)
    assert outcome == [502], outcome  # the request in flight on the killed worker

    assert server.wait_for_output("replaces worker", timeout=15), server.output
    match = _REPLACES.search(server.output)
    assert match is not None and match.groups() == ("3", "1"), server.output
    assert "Worker 1 stopped unexpectedly" in server.output
    assert wait_until(lambda: len(child_pids(server.pid)) == 2)
    after = child_pids(server.pid)
    assert victim not in after
    assert len(after & before) == 1

    for _ in range(10):
        assert get_path(server, "/").status_code == 200
    responses, _ = concurrently(server, ["/sleep?s=0.3&tag=after-kill"] * 2)
    assert [r.status_code for r in responses] == [200, 200]
    assert wait_until(lambda: len(access_worker_ids(server.output, "after-kill")) == 2, 5)
    assert set(access_worker_ids(server.output, "after-kill")) == {2, 3}, server.output


def test_request_pipelined_behind_a_lost_one_goes_to_a_live_worker(
    start_server: StartServer,
    tmp_path: Path,
) -> None:
    """The 502 for a request lost with its worker lets the request pipelined behind it go on
    at once: to the other worker, not to the one whose pipe has just closed."""
    server = control_server(start_server, "process", 2)
    assert wait_until(lambda: len(child_pids(server.pid)) == 2), child_pids(server.pid)
    # With no request in flight the first worker takes the next one: /pid, then /sleep.
    victim = int(get_path(server, "/pid").text)
    with RawConnection(server) as conn:
        started = tmp_path / "started"
        conn.send(raw_request("GET", f"/sleep?s=20&started={started}") + raw_request("GET", "/pid"))
        assert wait_until(started.exists), "the request never reached the worker"
        os.kill(victim, signal.SIGKILL)
        lost = conn.read_response()
        assert (lost.status, lost.body) == (502, b"Bad Gateway")
        pipelined = conn.read_response()
        assert pipelined.status == 200
        assert int(pipelined.body) not in (victim, server.pid)


def test_process_worker_killed_under_load_answers_every_request(
    start_server: StartServer,
) -> None:
    server = control_server(start_server, "process", 2)
    assert wait_until(lambda: len(child_pids(server.pid)) == 2), child_pids(server.pid)
    before = child_pids(server.pid)
    victim = min(before)
    # Keep-alive connections, open before the kill, for requests that arrive at the very
    # moment the worker dies.
    burst = [http.client.HTTPConnection(server.host, server.port, timeout=5) for _ in range(4)]
    for conn in burst:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
    burst_outcomes: list[int | str] = []

    with Load(server, clients=4, max_requests=100_000, max_seconds=40) as load:
        assert load.wait_for(40), "the load did not get going"
        # The moment of death, made exact: with the load paused (so no response of the
        # worker is left unread in its pipe), freeze the server, kill the worker, queue the
        # burst, thaw. The server then sees the worker's pipe close and the burst arrive in
        # one pass of its event loop.
        load.pause()
        os.kill(server.pid, signal.SIGSTOP)  # the serving process, not its supervisor
        try:
            assert wait_until(lambda: _all_threads_stopped(server.pid), 5)
            os.kill(victim, signal.SIGKILL)
            assert wait_until(lambda: not running(victim) and _files_released(victim), 5)
            for conn in burst:
                conn.request("GET", "/")
            # The burst is in the frozen server's socket buffers before it thaws (its kernel
            # has acknowledged every byte).
            assert wait_until(lambda: all(delivered(conn.sock) for conn in burst), 5)
        finally:
            os.kill(server.pid, signal.SIGCONT)
            load.resume()
        for conn in burst:
            try:
                response = conn.getresponse()
                response.read()
                burst_outcomes.append(response.status)
            except OSError as exc:
                burst_outcomes.append(type(exc).__name__)
            finally:
                conn.close()
        assert server.wait_for_output("replaces worker", timeout=15), server.output
        seen = load.count()
        assert load.wait_for(seen + 40), "requests stopped succeeding after the replacement"
        outcomes = load.stop()

    assert sum(outcomes.values()) >= 80
    # Every request got an answer; only those in flight on the killed worker got 502.
    outcomes.update(burst_outcomes)
    assert set(outcomes) <= {200, 502}, outcomes
    assert outcomes[502] <= 8, outcomes  # at most one per client
    after = child_pids(server.pid)
    assert len(after) == 2, after
    assert victim not in after
    for _ in range(10):
        assert get_path(server, "/").status_code == 200


def _kill_the_only_worker(server: ServerProcess) -> int:
    """SIGKILL a one-worker server's worker, and return its pid once the server has seen it go
    (its replacement is then starting)."""
    assert wait_until(lambda: len(child_pids(server.pid)) == 1), child_pids(server.pid)
    (victim,) = child_pids(server.pid)
    os.kill(victim, signal.SIGKILL)
    assert server.wait_for_output("stopped unexpectedly", timeout=10), server.output
    return victim


def test_requests_wait_for_the_replacement_of_the_only_worker(
    start_server: StartServer,
) -> None:
    """With no worker in rotation, requests wait for the replacement, as they would in the
    listen backlog of a process pool, instead of getting 503."""
    server = control_server(start_server, "process", 1)
    victim = _kill_the_only_worker(server)
    responses, _ = concurrently(server, ["/pid"] * 4)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    (replacement,) = {int(r.text) for r in responses}
    assert replacement not in (victim, server.pid)
    assert server.wait_for_output("Worker 2 replaces worker 1."), server.output


def test_a_request_waiting_for_a_worker_may_leave(start_server: StartServer) -> None:
    """A client that leaves while its request waits for a worker takes the request with it:
    nothing is sent to the replacement, and the server goes on serving."""
    server = control_server(start_server, "process", 1)
    _kill_the_only_worker(server)
    with RawConnection(server) as conn:
        conn.send(raw_request("GET", "/pid?tag=left-early"))
    assert server.wait_for_output("replaces worker", timeout=15), server.output
    assert get_path(server, "/").status_code == 200
    # Its access line says so: no worker took it.
    (line,) = [line for line in server.output.splitlines() if "left-early" in line]
    assert '"GET /pid?tag=left-early HTTP/1.1" 499 client disconnected' in line
    assert line.endswith("worker=-")
    assert "Traceback" not in server.output


def test_a_websocket_handshake_waits_for_the_replacement_of_the_only_worker(
    start_server: StartServer,
) -> None:
    server = start_server("tests.apps.ws_raw:app", "--worker-kind", "process", "--workers", "1")
    victim = _kill_the_only_worker(server)

    async def whoami() -> dict[str, int]:
        url = f"ws://{server.host}:{server.port}/whoami"
        async with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
            data: dict[str, int] = json.loads(await ws.recv())
            return data

    assert asyncio.run(whoami())["pid"] not in (victim, server.pid)


def test_sigterm_answers_a_request_waiting_for_a_worker(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The only worker died and its replacement cannot start: a request waiting for one gets
    503 when the server is told to stop, and the server exits."""
    server, version_file = versioned_server(start_server, tmp_path, "process", 1)
    version_file.write_text("broken")
    _kill_the_only_worker(server)
    assert server.wait_for_output("Replacement for worker 1 failed", timeout=15), server.output
    with RawConnection(server) as conn:
        conn.send(raw_request("GET", "/"))
        # Once the front end has read it, it waits for a worker (nothing the server says shows
        # that; the kernel says the front end has read it).
        assert wait_until(lambda: read_by_server(conn.sock), 5)
        server.signal(signal.SIGTERM)
        response = conn.read_to_eof()
    assert response.startswith(b"HTTP/1.1 503 "), response
    assert server.wait(timeout=15) == 0, server.output


# 2. An interpreter worker crashes (SystemExit in the app) -----------------------------------


def test_interpreter_worker_crash_is_replaced(start_server: StartServer) -> None:
    server = control_server(start_server, "interpreter", 2)
    assert get_path(server, "/pid").text == str(server.pid)

    response = get_path(server, "/crash")
    assert response.status_code == 500
    assert server.wait_for_output("replaces worker", timeout=15), server.output
    match = _REPLACES.search(server.output)
    assert match is not None
    new_id, old_id = int(match.group(1)), int(match.group(2))
    assert new_id == 3
    assert old_id in (1, 2)

    for _ in range(20):
        assert get_path(server, "/").status_code == 200
    # Two requests at once land on both workers in rotation: the new one among them.
    responses, _ = concurrently(server, ["/sleep?s=0.3&tag=after-crash"] * 2)
    assert [r.status_code for r in responses] == [200, 200]
    assert wait_until(lambda: len(access_worker_ids(server.output, "after-crash")) == 2, 5)
    ids = set(access_worker_ids(server.output, "after-crash"))
    assert ids == {1, 2, 3} - {old_id}, server.output
    # Same process: an interpreter worker crashing does not take the server down.
    assert get_path(server, "/pid").text == str(server.pid)
    assert server.process is not None and server.process.poll() is None


def test_requests_after_a_crash_go_to_a_healthy_worker(start_server: StartServer) -> None:
    server = control_server(start_server, "interpreter", 2)
    with httpx.Client(timeout=TIMEOUT) as client:
        # The crashing worker's exit takes 2 s more (asyncio.run waits for an executor job):
        # a window that every worker's exit has, made wide enough to hit every time.
        assert client.get(server.url + "/crash?linger=2").status_code == 500
        started = time.monotonic()
        statuses = [client.get(server.url + "/").status_code for _ in range(3)]
        elapsed = time.monotonic() - started
    assert statuses == [200, 200, 200], (statuses, elapsed)
    assert elapsed < 1.0, elapsed


def test_the_only_worker_is_replaced_while_its_crash_is_still_exiting(
    start_server: StartServer,
) -> None:
    """A worker that says it is going down is replaced at once, not once it has exited: its
    exit can take long (asyncio.run waits for the app's executor jobs)."""
    server = control_server(start_server, "interpreter", 1)
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(server.url + "/crash?linger=8").status_code == 500
        started = time.monotonic()
        response = client.get(server.url + "/")
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    # Served before the crashed worker's eight seconds of exiting were over.
    assert elapsed < 7.0, elapsed
    assert server.wait_for_output("Worker 2 replaces worker 1."), server.output


# 3. Recycling after --limit-max-requests ----------------------------------------------------

_RECYCLED = re.compile(r"Recycling worker (\d+) after (\d+) requests")


def _sequential_until(
    server: ServerProcess, done: Callable[[int], bool], max_requests: int, max_seconds: float
) -> Counter[int]:
    """GET / one after another until `done(count)` (bounded); the status codes seen."""
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + max_seconds
    with httpx.Client(timeout=TIMEOUT) as client:
        for count in range(max_requests):
            if done(count) or time.monotonic() > deadline:
                break
            statuses[client.get(server.url + "/").status_code] += 1
    return statuses


def test_workers_are_recycled_after_their_request_limit(
    start_server: StartServer, tmp_path: Path
) -> None:
    shutdown_log = tmp_path / "shutdown.log"
    server = control_server(
        start_server,
        "interpreter",
        2,
        "--limit-max-requests",
        "50",
        *ONE_SERVING_PROCESS,
        env={"CONTROL_SHUTDOWN_LOG": str(shutdown_log)},
    )
    # At least 300 requests, then on (bounded) until a replacement worker has answered: one
    # request after another always goes to the first idle worker in rotation, so a new worker
    # answers only once the older ones ahead of it have been recycled.
    statuses = _sequential_until(
        server,
        lambda count: count >= 300 and max(access_worker_ids(server.output), default=0) > 2,
        max_requests=1500,
        max_seconds=60,
    )
    assert set(statuses) == {200}, statuses
    assert statuses[200] >= 300

    assert server.wait_for_output("Recycling worker"), server.output
    ids = access_worker_ids(server.output)
    assert max(ids) > 2, Counter(ids)

    # Retired workers ran lifespan shutdown (in this process: they are interpreters).
    recycled = server.output.count("Recycling worker")
    assert recycled >= 1
    assert wait_until(
        lambda: shutdown_log.exists() and len(shutdown_log.read_text().splitlines()) >= recycled
    ), server.output
    for line in shutdown_log.read_text().splitlines():
        word, pid, interp = line.split()
        assert word == "shutdown"
        assert int(pid) == server.pid
        assert int(interp) > 0


def test_recycled_worker_does_not_far_exceed_its_limit(start_server: StartServer) -> None:
    limit = 20
    server = control_server(
        start_server,
        "interpreter",
        2,
        "--limit-max-requests",
        str(limit),
        *ONE_SERVING_PROCESS,
    )
    statuses = _sequential_until(
        server, lambda count: count >= 150, max_requests=150, max_seconds=60
    )
    assert statuses == {200: 150}
    assert wait_until(lambda: _RECYCLED.search(server.output) is not None, 5), server.output
    # A worker at its limit takes no more requests: the first 2 x limit requests split evenly,
    # and no worker ever answered more than its limit.
    ids = Counter(access_worker_ids(server.output))
    first = Counter(access_worker_ids(server.output)[: 2 * limit])
    assert first == {1: limit, 2: limit}, first
    assert max(ids.values()) <= limit, ids


def test_recycling_under_concurrent_load_keeps_the_pool_at_its_size(
    start_server: StartServer,
) -> None:
    """Every dispatch to a worker near its limit asks for its recycle; many arrive in one pass
    of the event loop under load. Once asked, a worker is not recycled again meanwhile: each
    recycle starts a worker, and the pool once grew to 40. (Successors of workers that reach
    their limits together start side by side.)"""
    server = control_server(start_server, "process", 2, "--limit-max-requests", "20")
    peak = 0
    conns = [RawConnection(server) for _ in range(40)]
    try:
        for _ in range(20):
            time.sleep(0.1)  # the stimulus: rounds apart, so replacements start meanwhile
            for conn in conns:  # all at once: the server reads them in one pass
                conn.send(raw_request("GET", "/"))
            assert [conn.read_response().status for conn in conns] == [200] * len(conns)
            peak = max(peak, len(child_pids(server.pid)))
    finally:
        for conn in conns:
            conn.close()
    # Two in rotation, and for each at most one successor starting and one worker draining.
    assert peak <= 6, peak
    assert wait_until(lambda: len(child_pids(server.pid)) == 2, 15), child_pids(server.pid)


# 4. --timeout-request with a worker stuck in code that never yields --------------------------


def assert_timed_out_and_replaced(server: ServerProcess) -> None:
    """/forever, at --timeout-request 1: a 504 after about a second, then the worker it holds
    is found stuck and replaced."""
    started = time.monotonic()
    response = get_path(server, "/forever")
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert 0.9 <= elapsed < 3.0, elapsed

    assert server.wait_for_output("is stuck", timeout=10), server.output
    assert server.wait_for_output("replaces worker", timeout=15), server.output


def test_request_timeout_replaces_a_stuck_interpreter_worker(start_server: StartServer) -> None:
    server = control_server(start_server, "interpreter", 2, "--timeout-request", "1")
    assert_timed_out_and_replaced(server)

    # Full worker count: two slow requests run side by side, neither lands on the stuck worker.
    responses, elapsed = concurrently(server, ["/sleep?s=0.5&tag=after-stuck"] * 2)
    assert [r.status_code for r in responses] == [200, 200]
    assert elapsed < 1.2, elapsed
    assert wait_until(lambda: len(access_worker_ids(server.output, "after-stuck")) == 2, 5)
    assert set(access_worker_ids(server.output, "after-stuck")) == {2, 3}, server.output
    for _ in range(10):
        assert get_path(server, "/").status_code == 200


def test_a_whole_response_leaves_before_the_app_returns(start_server: StartServer) -> None:
    """A worker holds a whole response for the app's return (one frame says both), but only
    while the app runs without waiting: an app that works on after answering is not waited for."""
    server = start_server(CONTROL, "--workers", "1")
    started = time.monotonic()
    response = get_path(server, "/after?s=3")
    assert (response.status_code, response.text) == (200, "answered")
    assert time.monotonic() - started < 2.0


def test_request_timeout_after_the_response_leaves_the_connection_alone(
    start_server: StartServer,
) -> None:
    """A request whose app runs on after its response is cancelled at the timeout, but the
    connection, which has moved on to the next request, is not touched."""
    server = start_server(CONTROL, "--workers", "1", "--timeout-request", "1")
    with httpx.Client(timeout=TIMEOUT) as client:
        first = client.get(server.url + "/after?s=3")
        assert (first.status_code, first.text) == (200, "answered")
        # The stimulus: the second request starts half-way to the first one's timeout, so
        # that it fires while the second runs, within the second's own timeout. (The timer
        # itself is tested with a controllable clock in tests/test_middle.py.)
        time.sleep(0.5)
        # Same keep-alive connection; the first request's timer fires while this one runs.
        slow = client.get(server.url + "/sleep?s=0.8")
        assert (slow.status_code, slow.text) == (200, "slept")
    assert server.wait_for_output("Cancelled GET /after", timeout=5), server.output


def test_requests_avoid_a_worker_whose_request_timed_out(start_server: StartServer) -> None:
    """While a timed-out worker is checked for being stuck, it gets no new requests: they once
    went to it for a second, and got 502 when it was replaced."""
    server = control_server(start_server, "process", 2, "--timeout-request", "1")
    assert get_path(server, "/forever").status_code == 504
    responses, _ = concurrently(server, ["/sleep?s=0.2"] * 6)
    assert [r.status_code for r in responses] == [200] * 6, server.output
    assert server.wait_for_output("is stuck", timeout=10), server.output


def test_request_timeout_kills_a_stuck_process_worker(start_server: StartServer) -> None:
    server = control_server(start_server, "process", 2, "--timeout-request", "1")
    assert wait_until(lambda: len(child_pids(server.pid)) == 2)
    before = child_pids(server.pid)
    # With no request in flight, the first worker takes the next request: /forever goes to it.
    stuck_pid = int(get_path(server, "/pid").text)
    assert stuck_pid in before

    assert_timed_out_and_replaced(server)
    assert wait_until(lambda: not running(stuck_pid), 10), f"stuck worker {stuck_pid} still runs"
    assert wait_until(lambda: len(child_pids(server.pid)) == 2, 10)
    after = child_pids(server.pid)
    assert stuck_pid not in after
    assert len(after - before) == 1

    responses, elapsed = concurrently(server, ["/sleep?s=0.5"] * 2)
    assert [r.status_code for r in responses] == [200, 200]
    assert elapsed < 1.2, elapsed
    for _ in range(10):
        assert get_path(server, "/").status_code == 200


# 5. SIGHUP: reload changed code with zero downtime ------------------------------------------


@pytest.mark.parametrize("kind", ["interpreter", "process"])
def test_sighup_reloads_new_code_without_downtime(
    start_server: StartServer, tmp_path: Path, kind: str
) -> None:
    """Under load, a new serving process takes over with the new code, and the old one drains:
    not one request fails, and the serving process's pid changes."""
    shutdown_log = tmp_path / "shutdown.log"
    server, version_file = versioned_server(
        start_server, tmp_path, kind, 2, env={"CONTROL_SHUTDOWN_LOG": str(shutdown_log)}
    )
    first = get_path(server, "/whoami").json()
    assert first["version"] == "v1"
    serving = server.pid
    assert (first["pid"] == serving) is (kind == "interpreter")

    with Load(server, "/whoami", clients=3, max_requests=5000, max_seconds=30) as load:
        assert load.wait_for(30)
        version_file.write_text("v2")
        server.signal(signal.SIGHUP)
        assert server.wait_for_output("Reloaded:", timeout=20), server.output
        seen = load.count()
        assert load.wait_for(seen + 30)
        outcomes = load.stop()

    # Zero downtime: not one request failed while the serving process was replaced.
    assert outcomes == {200: sum(outcomes.values())}, outcomes
    assert server.pid != serving
    for _ in range(5):
        now = get_path(server, "/whoami").json()
        assert now["version"] == "v2"
        assert now["pid"] == server.pid or now["pid"] in child_pids(server.pid)
    # The old workers drained and ran lifespan shutdown.
    assert wait_until(
        lambda: shutdown_log.exists() and len(shutdown_log.read_text().splitlines()) >= 2
    )
    assert len(shutdown_log.read_text().splitlines()) == 2


# 6. SIGTTIN / SIGTTOU -----------------------------------------------------------------------


def test_sighup_during_a_reload_is_not_lost(start_server: StartServer, tmp_path: Path) -> None:
    """A SIGHUP while the last reload's old workers drain reloads again: the code may have
    changed since (it was once refused as "already under way")."""
    server, version_file = versioned_server(start_server, tmp_path, "interpreter", 1)
    with ThreadPoolExecutor(1) as pool:
        started = tmp_path / "started"
        slow = pool.submit(get_path, server, f"/sleep?s=4&started={started}")  # keeps the old
        assert wait_until(started.exists)  # worker draining
        version_file.write_text("v2")
        server.signal(signal.SIGHUP)
        assert wait_until(lambda: get_path(server, "/whoami").json()["version"] == "v2", 10)
        version_file.write_text("v3")
        server.signal(signal.SIGHUP)
        assert wait_until(lambda: get_path(server, "/whoami").json()["version"] == "v3", 3), (
            server.output
        )
        assert slow.result(TIMEOUT).status_code == 200
    assert "already" not in server.output


def test_a_reload_whose_workers_never_get_ready_gives_up(
    start_server: StartServer, tmp_path: Path
) -> None:
    """New code that hangs at import fails the reload after --timeout-worker-start, and the
    next reload works: a reload waiting forever would hold every later one back."""
    server, version_file = versioned_server(
        start_server, tmp_path, "process", 1, "--timeout-worker-start", "1"
    )
    version_file.write_text("slow")
    server.signal(signal.SIGHUP)
    assert server.wait_for_output("Reload failed", timeout=10), server.output
    assert "--timeout-worker-start" in server.output
    assert get_path(server, "/whoami").json()["version"] == "v1"
    assert wait_until(lambda: len(child_pids(server.pid)) == 1, 5), "the hung worker lives on"
    version_file.write_text("v2")
    server.signal(signal.SIGHUP)
    assert wait_until(lambda: get_path(server, "/whoami").json()["version"] == "v2", 10)


def test_sigterm_during_a_reload_stops_the_draining_workers_too(
    start_server: StartServer,
    tmp_path: Path,
) -> None:
    """The old serving process of a reload, still draining at SIGTERM, is stopped with the
    rest: no worker process outlives the server."""
    server = control_server(
        start_server,
        "process",
        1,
        "--timeout-graceful-shutdown",
        "1",
    )
    old_serving = server.pid
    (old,) = child_pids(old_serving)
    with ThreadPoolExecutor(1) as pool:
        started = tmp_path / "started"
        slow = pool.submit(get_path, server, f"/sleep?s=20&started={started}")
        assert wait_until(started.exists)
        server.signal(signal.SIGHUP)
        # The new serving process serves; the old one drains its request.
        assert server.wait_for_output("Reloaded:", timeout=20), server.output
        assert int(get_path(server, "/pid").text) != old
        workers = child_pids(old_serving) | child_pids(server.pid)
        assert old in workers and len(workers) == 2
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0, server.output
        with contextlib.suppress(httpx.HTTPError):
            slow.result(TIMEOUT)  # cut off after the grace period
    assert wait_until(lambda: not any(map(running, workers)), 2), "a worker outlived the server"


def test_sigterm_to_the_process_group_drains_process_workers(
    start_server: StartServer,
    tmp_path: Path,
) -> None:
    """`timeout`, `kill -TERM -PGID` and systemd's KillMode=control-group signal the workers
    too: they wait for the front end's word, and the requests in flight finish."""
    server = control_server(start_server, "process", 2)
    with ThreadPoolExecutor(2) as pool:
        started = [tmp_path / "a", tmp_path / "b"]
        slow = [pool.submit(get_path, server, f"/sleep?s=1&started={path}") for path in started]
        assert wait_until(lambda: all(path.exists() for path in started))
        # (The test's process group is pytest's.)
        for pid in (server.supervisor_pid, server.pid, *child_pids(server.pid)):
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
        assert [f.result(TIMEOUT).status_code for f in slow] == [200, 200], server.output
    assert server.wait(timeout=15) == 0, server.output


def test_sigttin_then_sighup_keeps_the_new_size(start_server: StartServer) -> None:
    server = control_server(start_server, "process", 2)
    server.signal(signal.SIGTTIN)
    server.signal(signal.SIGHUP)
    assert server.wait_for_output("Reloaded:", timeout=20), server.output
    assert wait_until(lambda: len(child_pids(server.pid)) == 3, 10), child_pids(server.pid)


def test_sigttin_and_sigttou_add_and_remove_a_worker(start_server: StartServer) -> None:
    server = control_server(start_server, "interpreter", 2)

    def workers_of_three_at_once(tag: str) -> set[int]:
        # Three slow requests at once go to as many different workers as there are (long
        # enough to overlap however slowly the client threads start).
        responses, _ = concurrently(server, [f"/sleep?s=2&tag={tag}"] * 3)
        assert [r.status_code for r in responses] == [200] * 3
        assert wait_until(lambda: len(access_worker_ids(server.output, f"tag={tag}")) == 3, 5)
        return set(access_worker_ids(server.output, f"tag={tag}"))

    server.signal(signal.SIGTTIN)
    assert server.wait_for_output("Added worker", timeout=15), server.output
    assert "Added worker 3: 3 serving." in server.output
    assert workers_of_three_at_once("three") == {1, 2, 3}

    server.signal(signal.SIGTTOU)
    assert server.wait_for_output("Removed a worker", timeout=15), server.output
    assert "Removed a worker: 2 serving." in server.output
    assert len(workers_of_three_at_once("two")) == 2
    for _ in range(10):
        assert get_path(server, "/").status_code == 200


# 7. --reload ---------------------------------------------------------------------------------

_RELOAD_APP = """\
BODY = {body!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({{"type": "lifespan.startup.complete"}})
        await send({{"type": "lifespan.shutdown.complete"}})
        return
    await send(
        {{
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(BODY)).encode())],
        }}
    )
    await send({{"type": "http.response.body", "body": BODY}})
"""


@pytest.mark.parametrize(
    "patterns",
    [(), ("--reload-include", "*.html")],
    ids=["defaults", "include-added"],
)
def test_reload_flag_picks_up_changed_source(
    start_server: StartServer, tmp_path: Path, patterns: tuple[str, ...]
) -> None:
    app_dir = tmp_path / "src"
    app_dir.mkdir()
    module = app_dir / "reloadable.py"
    module.write_text(_RELOAD_APP.format(body=b"first version"))
    server = start_server(
        "reloadable:app",
        "--workers",
        "2",
        "--reload",
        "--reload-dir",
        str(app_dir),
        "--app-dir",
        str(app_dir),
        *patterns,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        cwd=str(tmp_path),
    )
    assert get_path(server, "/").text == "first version"

    def changed() -> bool:
        # The watcher says nothing once it watches: a change it started too late to see is
        # made again.
        module.write_text(_RELOAD_APP.format(body=b"the second version"))
        return server.wait_for_output("Changes detected in", timeout=2)

    assert wait_until(changed, 20), server.output
    assert server.wait_for_output("Reloaded:", timeout=20), server.output
    assert "Changes detected in" in server.output
    for _ in range(5):
        assert get_path(server, "/").text == "the second version"


def test_app_dir_reaches_both_worker_kinds(
    start_server: StartServer, tmp_path: Path, worker_kind: str
) -> None:
    """--app-dir is where the app is imported from, in a child process as in an interpreter
    (process workers once failed with ModuleNotFoundError where the probe had found it)."""
    app_dir = tmp_path / "src"
    app_dir.mkdir()
    (app_dir / "elsewhere.py").write_text(_RELOAD_APP.format(body=b"found"))
    server = start_server(
        "elsewhere:app", "--worker-kind", worker_kind, "--app-dir", str(app_dir), cwd=str(tmp_path)
    )
    assert get_path(server, "/").text == "found"


# 8. --worker-kind auto ------------------------------------------------------------------------


def test_auto_worker_kind_picks_processes_for_fastapi(start_server: StartServer) -> None:
    server = start_server("tests.apps.fastapi_app:app", "--workers", "2")
    assert "Worker kind: process, because module" in server.output
    line = next(li for li in server.output.splitlines() if "Worker kind:" in li)
    assert "pydantic_core" in line
    assert "tests.apps.fastapi_app -> fastapi" in line
    response = get_path(server, "/")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    # The workers are child processes.
    assert len(child_pids(server.pid)) == 2


def test_auto_worker_kind_picks_processes_for_a_factory_importing_numpy(
    start_server: StartServer,
) -> None:
    server = start_server("tests.apps.numpy_late:make", "--factory", "--workers", "1")
    line = next(li for li in server.output.splitlines() if "Worker kind:" in li)
    assert "Worker kind: process, because module" in line
    assert "numpy._core._multiarray_umath" in line
    assert get_path(server, "/").text.startswith("numpy ")


def test_auto_worker_kind_picks_interpreters_for_a_pure_python_app(
    start_server: StartServer,
) -> None:
    server = start_server("examples.hello:app", "--workers", "2")
    assert "Worker kind: interpreter" in server.output
    response = get_path(server, "/cpu?ms=1")
    assert response.status_code == 200
    assert response.json()["pid"] == server.pid
    assert response.json()["interpreter"] > 0


# 9. interpserve check -------------------------------------------------------------------------


def _check(app: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interpserve", "check", app, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_names_the_refusing_module_and_its_import_chain() -> None:
    result = _check("examples.numpy_app:app")
    assert result.returncode == 1, result
    output = result.stdout + result.stderr
    assert "numpy" in output
    assert "examples.numpy_app -> numpy" in output
    assert "numpy._core._multiarray_umath" in output


def test_check_calls_the_factory_and_names_what_it_imports() -> None:
    result = _check("tests.apps.numpy_late:make", "--factory")
    assert result.returncode == 1, result
    assert "cannot run in subinterpreters" in result.stdout
    assert "numpy._core._multiarray_umath" in result.stdout
    assert "tests.apps.numpy_late:make -> numpy" in result.stdout


def test_check_accepts_a_pure_python_app() -> None:
    result = _check("examples.hello:app")
    assert result.returncode == 0, result
    assert "can run in subinterpreters" in result.stdout
