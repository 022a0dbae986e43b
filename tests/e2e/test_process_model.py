"""The supervisor above the serving processes, against real servers on loopback: a serving
process that crashes is replaced on the same socket (no connection refused, only the requests
in flight lost), recycling keeps its limits (requests, lifetime, memory, and the memory that
destroyed interpreters leave behind), the graceful shutdown keeps its deadline and cancels the
apps, --processes runs several serving processes. The pure parts (the supervisor's plan, the
messages, when a successor starts) in memory.

Every wait is on a signal (a log line, a response, a pid) with a bound; loads are bounded in
count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import (
    BUFFERS_APP,
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
    get_path,
    raw_get,
    rss_bytes,
)
from websockets.asyncio.client import connect

from interpserve import control
from interpserve.config import Config
from interpserve.errors import ConfigError
from interpserve.pool.recycling import Tenure
from interpserve.supervisor import Plan
from interpserve.testing import ServerProcess, running, wait_until

BOTH_KINDS = pytest.mark.parametrize("kind", ["interpreter", "process"])

_RECYCLED = re.compile(r"Recycling worker (\d+) after (\d+) requests \(([^;]+);")
# Recycles enough for what destroyed interpreters leave to show, and the leftover that bounds it.
RECYCLES = 20
LEFTOVER_MIB = 16
_ASKED = re.compile(
    r"Replacing serving process \[(\d+)\]: destroyed interpreters left (\d+) MiB behind "
    r"\(--limit-max-leftover\)"
)
MIB = 1 << 20
# A burst of clients, past the front end's threshold for one (frontend/connection.py), and what
# the app keeps of a request made during it.
BURST_CLIENTS = 300
BURST_KEEPS_MIB = 40
_ASKED_AFTER_BURST = re.compile(
    r"Replacing serving process \[(\d+)\]: a burst left it holding (\d+) MiB more than when it "
    r"became ready \(--limit-max-leftover\)"
)
# What the apps of the shutdown tests would take, far past the deadline.
SLEEP_S = 30


def errors_of(outcomes: Counter[int | str]) -> Counter[int | str]:
    return Counter({outcome: n for outcome, n in outcomes.items() if outcome != 200})


# A serving process that crashes ------------------------------------------------------------


@pytest.mark.parametrize("how", ["exit", "segv"])
def test_a_crashed_serving_process_is_replaced_on_the_same_socket(
    start_server: StartServer, how: str
) -> None:
    """os._exit() or a segfault in a handler of an interpreter worker ends its serving
    process: a new one starts at once on the socket the supervisor holds. Connections made
    meanwhile wait in the backlog (none is refused); only the requests in flight are lost."""
    server = control_server(start_server, "interpreter", 2)
    crashed = server.pid
    with (
        Load(server, clients=3, max_requests=20_000) as load,
        Load(server, clients=1, max_requests=20_000, keep_alive=False) as fresh,
    ):
        assert load.wait_for(30) and fresh.wait_for(5), "the load did not get going"
        with contextlib.suppress(httpx.HTTPError):
            get_path(server, "/exit?segv=1" if how == "segv" else "/exit")
        assert server.wait_for_output(f"replaces [{crashed}]", timeout=20), server.output
        assert load.wait_for(load.count() + 60) and fresh.wait_for(fresh.count() + 10)
        outcomes = load.stop() + fresh.stop()
    dying = "was killed by SIGSEGV" if how == "segv" else "exited with code 1"
    assert f"Serving process [{crashed}] {dying}" in server.output
    assert server.pid != crashed and running(server.pid)
    errors = errors_of(outcomes)
    assert "ConnectError" not in errors, outcomes  # refused
    assert sum(errors.values()) <= 4, outcomes  # in flight: one per client at most
    assert get_path(server, "/").text == "ok"


def test_a_crash_loop_backs_off(start_server: StartServer) -> None:
    server = control_server(start_server, "interpreter", 1)
    for _ in range(2):
        crashed = server.pid
        with contextlib.suppress(httpx.HTTPError):
            get_path(server, "/exit")
        assert server.wait_for_output(f"replaces [{crashed}]", timeout=20), server.output
    # Two crashes within seconds of becoming ready: the second restart waits.
    assert "crash loop: restarting it in 0.5 s" in server.output
    assert get_path(server, "/").text == "ok"


def test_serving_processes_stop_when_the_supervisor_is_gone(start_server: StartServer) -> None:
    server = control_server(start_server, "process", 1)
    serving, workers = server.pid, child_pids(server.pid)
    assert server.supervisor_pid is not None
    os.kill(server.supervisor_pid, signal.SIGKILL)
    assert server.wait_for_output("The supervisor is gone: shutting down.", timeout=10)
    assert wait_until(lambda: not running(serving), 15), server.output
    assert wait_until(lambda: not any(map(running, workers)), 5), "a worker outlived it"


def test_a_serving_process_whose_exit_hangs_ends_anyway() -> None:
    """CPython 3.13.0 can hang in finalization joining a worker interpreter's thread; here a
    thread that never ends holds the exit the same way, and the bound ends the process."""
    code = (
        "import threading\n"
        "from interpserve.serving import bound_finalizing\n"
        "threading.Thread(target=threading.Event().wait).start()\n"
        "bound_finalizing(1)\n"
    )
    process = subprocess.run([sys.executable, "-c", code], timeout=TIMEOUT)
    assert process.returncode == -signal.SIGALRM


def test_without_the_supervisor_the_process_started_serves(start_server: StartServer) -> None:
    server = start_server(CONTROL, "--workers", "1", "--no-supervisor")
    assert server.process is not None and server.pid == server.process.pid
    assert server.supervisor_pid is None
    assert "supervisor" not in server.output
    assert get_path(server, "/").text == "ok"


def test_interpserve_run_supervises_in_the_callers_process_and_returns() -> None:
    """interpserve.run() keeps the caller's process (no new program): the supervisor runs in
    it, and gives its signal handlers back when the server has stopped."""
    code = (
        "import signal, interpserve; "
        "interpserve.run('tests.apps.control:app', workers=1, port=0); "
        "print('run returned; SIGTERM as before:', signal.getsignal(signal.SIGTERM) == 0)"
    )
    server = ServerProcess("", command=[sys.executable, "-c", code], cwd=str(ROOT)).start()
    try:
        assert get_path(server, "/").text == "ok"
        assert server.supervisor_pid is not None and server.pid != server.supervisor_pid
    finally:
        assert server.stop() == 0, server.output
    assert "run returned; SIGTERM as before: True" in server.output  # SIG_DFL


def test_the_supervisor_imports_nothing_it_does_not_need() -> None:
    """What the supervisor's own interpreter loads (launch.py starts it with -I -S)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import interpserve.supervisor; "
        "print(' '.join(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    modules = set(result.stdout.split())
    ours = {name for name in modules if name.startswith("interpserve")}
    assert ours == {"interpserve", "interpserve.supervisor", "interpserve.control"} | {
        "interpserve.backoff",
        "interpserve.logbase",  # (posix, fcntl and time only: its lines, as the others write)
    }, ours
    for heavy in ("asyncio", "uvloop", "_interpreters", "socket", "logging", "typing", "json"):
        assert heavy not in modules, heavy
    assert not {"os", "enum", "signal"} & modules  # posix and _signal do


# Recycling -----------------------------------------------------------------------------------


@BOTH_KINDS
def test_recycled_workers_take_no_request_past_their_limit(
    start_server: StartServer, kind: str
) -> None:
    """Counted from the access log under concurrent load: a worker recycled for its request
    limit answered exactly that many requests (the successor, started ahead of time, takes
    over at the limit), and nothing failed meanwhile."""
    limit = 40
    server = control_server(
        start_server,
        kind,
        2,
        "--limit-max-requests",
        str(limit),
        *ONE_SERVING_PROCESS,
    )
    with Load(server, clients=6, max_requests=600, max_seconds=60) as load:
        assert load.wait_for(600, timeout=60), "the load did not finish"
        outcomes = load.stop()
    assert outcomes == {200: sum(outcomes.values())}, outcomes
    assert wait_until(lambda: len(access_worker_ids(server.output)) >= 600, 10)
    recycled = {int(worker): int(taken) for worker, taken, _ in _RECYCLED.findall(server.output)}
    assert len(recycled) >= 8, server.output
    per_worker = Counter(access_worker_ids(server.output))
    for worker, taken in recycled.items():
        assert taken == limit, recycled
        assert per_worker[worker] == limit, (worker, per_worker)
    assert max(per_worker.values()) <= limit, per_worker


@BOTH_KINDS
def test_workers_are_recycled_after_their_lifetime(start_server: StartServer, kind: str) -> None:
    server = control_server(
        start_server, kind, 1, "--limit-max-lifetime", "1.5", *ONE_SERVING_PROCESS
    )
    with Load(server, clients=2, max_seconds=40) as load:
        assert server.wait_for_output("(--limit-max-lifetime; worker 3 takes over)", timeout=20)
        outcomes = load.stop()
    assert outcomes == {200: sum(outcomes.values())}, outcomes
    assert "Recycling worker 1 after" in server.output


@BOTH_KINDS
def test_a_worker_over_its_memory_limit_is_recycled(start_server: StartServer, kind: str) -> None:
    server = control_server(start_server, kind, 1, "--limit-max-memory", "60", *ONE_SERVING_PROCESS)
    assert get_path(server, "/grow?mib=90", timeout=30).status_code == 200
    assert server.wait_for_output("(--limit-max-memory; worker 2 takes over)", timeout=20), (
        server.output
    )
    assert re.search(r"Worker 1 holds \d+ MiB \(--limit-max-memory 60\)", server.output)
    assert get_path(server, "/").text == "ok"


def test_memory_left_by_destroyed_interpreters_replaces_the_serving_process(
    start_server: StartServer,
) -> None:
    """Each destroyed interpreter leaves a few MB behind (CPython 3.13): past
    --limit-max-leftover the supervisor replaces the whole serving process, without a failed
    request, and what a serving process holds stays near where the first one started, over
    any number of recycles."""
    server = control_server(
        start_server,
        "interpreter",
        1,
        "--limit-max-requests",
        "10",
        "--limit-max-leftover",
        str(LEFTOVER_MIB),
    )
    first = server.pid
    started_with = rss_bytes(first)
    with Load(server, clients=2, max_requests=5000, max_seconds=90) as load:
        assert server.wait_for_output(f"takes over from [{first}]", timeout=60), server.output
        assert wait_until(lambda: server.output.count("Recycling worker") >= RECYCLES, 60)
        outcomes = load.stop()
    assert outcomes == {200: sum(outcomes.values())}, outcomes

    # Each serving process asks for its successor at the first destroyed interpreter that takes
    # it past the bound (by its own measure, which the supervisor's line quotes)...
    def asks() -> dict[int, int]:
        """MiB left behind when each serving process asked, by its pid."""
        return {int(pid): int(mib) for pid, mib in _ASKED.findall(server.output)}

    assert first in asks(), server.output
    assert all(left < 2 * LEFTOVER_MIB for left in asks().values()), asks()

    # ...and the successor starts afresh: once no handover is under way, the serving process
    # holds about what the first started with. (Not during one: the process on its way out
    # recycles on until its successor is ready, holding more meanwhile.)
    def handed_over() -> bool:
        output = server.output
        return all(
            f"takes over from [{pid}]" in output or f"[{pid}] serves on" in output for pid in asks()
        )

    assert wait_until(handed_over, 30), server.output
    assert server.pid != first
    # In one process, RECYCLES destroyed interpreters would have left several times the bound.
    holds = rss_bytes(server.pid)
    assert holds - started_with < 2 * LEFTOVER_MIB * MIB, (holds, started_with)


@BOTH_KINDS
def test_memory_a_burst_left_replaces_the_serving_process(
    start_server: StartServer, kind: str
) -> None:
    """A burst of clients that leaves memory behind once it is over (here the app keeps what one
    of its requests allocated; CPython's allocator keeps arenas alike): past
    --limit-max-leftover the supervisor replaces the serving process, without a failed
    request. With process workers that memory is in a worker's own process: the check covers
    the tree."""
    server = control_server(start_server, kind, 1, "--limit-max-leftover", str(LEFTOVER_MIB))
    first = server.pid
    with Load(server, clients=2, max_requests=20_000, max_seconds=90) as load:
        with contextlib.ExitStack() as burst:
            clients = [burst.enter_context(RawConnection(server)) for _ in range(BURST_CLIENTS)]
            for client in clients:
                client.send(raw_get("/"))
            # Answered: every one of them was open in the server at once.
            assert all(client.read_response().status == 200 for client in clients)
            grow = get_path(server, f"/grow?mib={BURST_KEEPS_MIB}", timeout=30)
            assert grow.status_code == 200
        assert server.wait_for_output(f"takes over from [{first}]", timeout=30), server.output
        assert load.wait_for(load.count() + 20)
        outcomes = load.stop()
    assert outcomes == {200: sum(outcomes.values())}, outcomes
    [(asked, held)] = _ASKED_AFTER_BURST.findall(server.output)
    assert int(asked) == first and int(held) > LEFTOVER_MIB, server.output
    assert server.pid != first and get_path(server, "/").text == "ok"


async def test_successors_start_ahead_of_the_limit_at_the_rate_requests_come() -> None:
    """In memory, with an explicit clock: a worker taking 100 requests a second, whose
    successor takes 0.5 s to start, needs it that many requests (twice over) before its limit;
    one just activated counts as having served for a start-up's time, not an instant."""
    tenure = Tenure(Config(limit_max_requests=1000), since=0.0)
    assert not tenure.successor_due(800, now=8.0, start_seconds=0.5)
    assert tenure.successor_due(900, now=9.0, start_seconds=0.5)
    assert not tenure.successor_due(1, now=0.001, start_seconds=0.5)


# The graceful shutdown's deadline ------------------------------------------------------------


@BOTH_KINDS
def test_the_shutdown_deadline_cancels_the_apps_and_answers_503(
    start_server: StartServer, tmp_path: Path, kind: str
) -> None:
    """At --timeout-graceful-shutdown: every app task still running is cancelled (it sees
    CancelledError, its finally runs), clients with no response started get 503, a response
    under way is cut off, and the server exits by itself without waiting for the apps."""
    cancel_log = tmp_path / "cancel.log"
    server = control_server(
        start_server,
        kind,
        2,
        "--timeout-graceful-shutdown",
        "2",
        env={"CONTROL_CANCEL_LOG": str(cancel_log)},
    )
    waiting = 12
    statuses: list[int | str] = []
    partial: list[str] = []

    def slow() -> None:
        try:
            statuses.append(get_path(server, f"/sleep?s={SLEEP_S}", timeout=20).status_code)
        except httpx.HTTPError as exc:
            statuses.append(type(exc).__name__)

    def started_then_slow() -> None:
        with httpx.stream("GET", server.url + "/partial", timeout=20) as response:
            try:
                partial.append(response.read().decode())
            except httpx.HTTPError as exc:
                partial.append(type(exc).__name__)

    threads = [threading.Thread(target=slow) for _ in range(waiting)]
    threads.append(threading.Thread(target=started_then_slow))
    for thread in threads:
        thread.start()
    assert wait_until(lambda: _connections(server) == waiting + 1, 10)
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    for thread in threads:
        thread.join(TIMEOUT + 10)
    assert server.wait(timeout=SLEEP_S) == 0, server.output
    elapsed = time.monotonic() - started
    assert statuses == [503] * waiting, statuses
    assert partial == ["RemoteProtocolError"], partial
    # The serving process ended itself (the supervisor did not have to kill it), and did not
    # wait for the apps' 30 s. How soon after the deadline is bench.process_model's figure.
    assert "did not stop: killing it" not in server.output, server.output
    assert elapsed < SLEEP_S, elapsed
    words = Counter(cancel_log.read_text().split())
    assert words == {"cancelled": waiting + 1, "finally": waiting + 1}, words
    assert "Cancelled GET /sleep: the graceful shutdown's deadline passed." in server.output


def test_the_shutdown_deadline_holds_with_a_stuck_interpreter(start_server: StartServer) -> None:
    server = control_server(
        start_server,
        "interpreter",
        2,
        "--timeout-graceful-shutdown",
        "1",
    )
    outcome: list[int | str] = []

    def stuck() -> None:
        try:
            outcome.append(get_path(server, "/forever", timeout=20).status_code)
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=stuck)
    thread.start()
    assert wait_until(lambda: _connections(server) == 1, 10)
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=SLEEP_S) == 0, server.output
    thread.join(TIMEOUT)
    assert outcome == [503], outcome
    # Given up by its serving process (os._exit past STOP_GRACE), not killed by the supervisor.
    assert "is still busy at exit" in server.output
    assert "did not stop: killing it" not in server.output, server.output


def _connections(server: ServerProcess) -> int:
    """The client connections the serving process has accepted (Linux's /proc: the sockets it
    holds that are established TCP connections)."""
    inodes = set()
    for fd in Path(f"/proc/{server.pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{server.pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            count += fields[9] in inodes and fields[3] == "01"  # ESTABLISHED
    return count


# Several serving processes -------------------------------------------------------------------


def test_several_serving_processes_share_the_socket_and_the_workers(
    start_server: StartServer,
) -> None:
    server = control_server(start_server, "process", 3, "--processes", "2")
    assert server.supervisor_pid is not None
    assert wait_until(lambda: len(child_pids(server.supervisor_pid or 0)) == 2, 10)
    serving = sorted(child_pids(server.supervisor_pid))
    assert sorted(server.serving_pids()) == serving
    assert sorted(len(child_pids(pid)) for pid in serving) == [1, 2]  # 3 workers, shared
    assert server.output.count("Listening on") == 1
    # One of them dies: the other serves on, and it is replaced.
    os.kill(serving[0], signal.SIGKILL)
    assert server.wait_for_output(f"replaces [{serving[0]}]", timeout=20), server.output
    for _ in range(20):
        assert get_path(server, "/").text == "ok"
    # SIGHUP replaces both.
    server.signal(signal.SIGHUP)
    assert wait_until(lambda: server.output.count("Reloaded: serving process") == 2, 30)
    assert wait_until(lambda: len(child_pids(server.supervisor_pid or 0)) == 2, 15)
    assert not set(child_pids(server.supervisor_pid)) & set(serving)
    assert server.stop() == 0, server.output


async def test_the_buffer_budget_is_shared_among_the_processes(
    start_server: StartServer, tmp_path: Path
) -> None:
    """--limit-buffers is the server's bound, as --workers is its count: with two serving
    processes each front end holds half. Five clients' 60 kB messages that their apps do not
    receive yet: at least three reach one serving process, past its half of 256 KiB (one front
    end with all of it holds four without a word: tests/e2e/test_buffers.py)."""
    budget = 256 * 1024
    server = start_server(
        BUFFERS_APP, "--processes", "2", "--workers", "2", "--limit-buffers", str(budget)
    )
    marker = tmp_path / "go"
    url = f"ws://{server.host}:{server.port}/hold?marker={marker}&log={tmp_path / 'log'}"
    options: dict[str, Any] = {"open_timeout": TIMEOUT, "max_size": None, "compression": None}
    holders = [await connect(url, **options) for _ in range(5)]
    try:
        for ws in holders:
            await ws.send(os.urandom(60_000))
        assert await asyncio.to_thread(server.wait_for_output, "--limit-buffers"), server.output
        assert f"The front end holds {budget // 2} bytes for its clients" in server.output
    finally:
        marker.touch()
        for ws in holders:
            await ws.close()


def test_metrics_stay_on_their_port_across_a_reload(start_server: StartServer) -> None:
    pytest.importorskip("prometheus_client")
    server = start_server(CONTROL, "--workers", "1", "--metrics-port", "0")
    assert server.wait_for_output("Metrics on", timeout=10), server.output
    match = re.search(r"Metrics on (http://\S+/metrics)", server.output)
    assert match is not None, server.output
    url = match.group(1)
    assert "interpserve_workers 1.0" in httpx.get(url, timeout=TIMEOUT).text
    first = server.pid
    server.signal(signal.SIGHUP)
    assert server.wait_for_output("Reloaded:", timeout=20), server.output
    assert wait_until(lambda: server.output.count(f"Metrics on {url}") == 2, 10), server.output
    # Whichever process takes it (the one going, until it stops, or its successor), a scrape
    # is answered, with the figures of a process that serves.
    assert "interpserve_workers 1.0" in httpx.get(url, timeout=TIMEOUT).text
    assert server.wait_for_output(f"Finished server process [{first}]", timeout=20), server.output
    assert "interpserve_workers 1.0" in httpx.get(url, timeout=TIMEOUT).text


# Options, the plan and the messages ----------------------------------------------------------


def test_workers_are_shared_among_the_processes() -> None:
    assert Config(workers=5, processes=2).worker_shares() == (3, 2)
    assert Config(workers=2, processes=2).worker_shares() == (1, 1)
    assert Config(processes=4).worker_count >= 4  # one each at least by default
    assert Config(supervisor=False).process_count == 1
    assert Config(workers=4, processes=2, limit_buffers=1000).buffer_share() == 500
    assert Config(workers=4, processes=1, limit_buffers=1000).buffer_share() == 1000


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 1, "processes": 2}, "workers (1) must be at least processes (2)"),
        ({"processes": 0}, "processes must be at least 1"),
        ({"processes": 2, "supervisor": False}, "need the supervisor"),
        ({"limit_max_lifetime": 0}, "limit_max_lifetime must be positive"),
        ({"limit_max_memory": -1}, "limit_max_memory must be positive"),
        ({"limit_max_leftover": -1}, "limit_max_leftover must be 0 or more"),
    ],
)
def test_process_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config(**options)  # type: ignore[arg-type]


def test_the_plan_crosses_the_command_line_whole() -> None:
    plan = Plan(
        payload_fd=7,
        listen_fds=(3, 4),
        workers=(2, 1),
        metrics_fds=(5, 6),
        graceful=2.5,
        log_threshold=30,
        listening="Listening on http://[::1]:8000 (Press CTRL+C to quit)",
        uds="/tmp/a=b.sock",
    )
    again = Plan.from_args(plan.to_args())
    assert {name: getattr(again, name) for name in Plan.__slots__} == {
        name: getattr(plan, name) for name in Plan.__slots__
    }
    bare = Plan(payload_fd=1, listen_fds=(3,), workers=(1,))
    assert Plan.from_args(bare.to_args()).graceful is None


def test_messages_are_one_line_each() -> None:
    line = control.encode(control.REPLACE, "destroyed interpreters left 70 MiB behind")
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert control.decode(line) == (control.REPLACE, "destroyed interpreters left 70 MiB behind")
    assert control.decode(control.encode(control.READY, "interpreter", 4)) == (
        control.READY,
        "interpreter 4",
    )


def test_whoami_answers_from_the_serving_process(start_server: StartServer) -> None:
    server = control_server(start_server, "interpreter", 1)
    assert (
        json.loads(get_path(server, "/whoami").text)["pid"] == server.pid != server.supervisor_pid
    )
