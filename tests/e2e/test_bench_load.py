"""`interpserve bench` against real servers on 127.0.0.1: closed and open loop, each run short
and bounded. Timing assertions are built for a shared 2-core machine with other loads running:
modest rates, tolerances the measurements in docs/bench.md justify, and messages that say what
was measured.

Apps: examples/hello.py, tests/apps/faults_app.py's /block (a handler of fixed wall time
and no CPU, so a capacity that a busy machine does not move), and tests/apps/hold.py (a pause
that the test starts and ends).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from support import TIMEOUT, StartServer

from interpserve.bench.cli import main as bench_main
from interpserve.bench.client import Progress, run_load
from interpserve.bench.generator import Phase
from interpserve.bench.load import GENERATOR_RATE, Arrival, Load, WeightedPath
from interpserve.bench.schedule import due_times
from interpserve.bench.stats import Summary, summarize
from interpserve.testing import ServerProcess

# The asked rate must be met to this share (the "within 2%"): the generator sends late
# requests as soon as it can, so only those due in the last moments of the window can miss it.
RATE_TOLERANCE = 0.02
# How long the pause tests hold the server's only worker.
PAUSE_S = 1.0


def _exit_code(argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as exc:
        bench_main(argv)
    return exc.value.code


def _run(url: str, load: Load, on_progress: Callable[[Progress], None] | None = None) -> Summary:
    return summarize(run_load(url, load, on_progress or (lambda progress: None)))


def _describe(summary: Summary) -> str:
    return (
        f"asked {summary.asked_rps}, sent {summary.sent_rps}, answered {summary.rps:.1f}/s, "
        f"late {summary.late}, waited {summary.waited}, latency {summary.latency_ms}, "
        f"errors {summary.errors}, generators {summary.generators}"
    )


# Closed loop -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_closed_loop_run(
    start_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server("examples.hello:app", "--workers", "2")
    out = tmp_path / "run.json"
    # With a warm-up, whose requests must not count against --requests.
    argv = [server.url + "/", "--requests", "200", "-c", "4", "--warmup", "0.3"]
    bench_main([*argv, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "requests/s" in printed and "Errors: none" in printed
    data = json.loads(out.read_text())
    assert (data["schema"], data["mode"], data["url"]) == (2, "url", server.url + "/")
    assert data["load"]["requests"] == 200 and data["load"]["connections"] == 4
    assert data["load"]["warmup_s"] == 0.3 and data["load"]["loop"] == "closed"
    result = data["deployments"][0]["run"]
    assert result["requests"] == result["successes"] == 200
    assert result["rps"] > 0 and result["duration_s"] > 0 and result["generator_cpu"] >= 0
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
def test_a_closed_loop_generator_takes_the_batch_policy() -> None:
    """In a process of its own, as a generator process takes it: no privilege needed."""
    code = (
        "import os; from interpserve.bench.generator import _take_batch_policy; "
        "_take_batch_policy(); print(os.sched_getscheduler(0) == os.SCHED_BATCH)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert done.stdout.strip() == "True", done.stderr


@pytest.mark.timeout(60)
def test_errors_are_counted_by_kind(
    start_server: StartServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Without rich the run still works, and says what to install for the progress bar.
    monkeypatch.setitem(sys.modules, "rich", None)
    server = start_server("examples.hello:app", "--workers", "1")
    out = tmp_path / "run.json"
    code = _exit_code([server.url + "/error", "-n", "30", "-c", "2", "--json", str(out)])
    assert code == "interpserve bench: error: no request succeeded"
    captured = capsys.readouterr()
    assert "Errors: HTTP 500 30" in captured.out
    assert "pip install 'interpserve[bench]'" in captured.err
    result = json.loads(out.read_text())["deployments"][0]["run"]
    assert result["errors"] == {"HTTP 500": 30} and result["successes"] == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/"
    code = _exit_code([url, "-n", "10"])
    assert code == f"interpserve bench: error: cannot connect to {url}: connection refused"
    assert capsys.readouterr().out == ""


def test_app_that_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELLO_FAIL_STARTUP", "1")
    code = _exit_code(["examples.hello:app", "--sweep-workers", "1", "-d", "1"])
    assert isinstance(code, str) and "\n" not in code
    assert code.startswith("interpserve bench: error: examples.hello:app did not start")
    assert code.endswith("startup refused by HELLO_FAIL_STARTUP")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rate", [None, 200.0])
def test_server_killed_mid_run(start_server: StartServer, rate: float | None) -> None:
    server = start_server("examples.hello:app", "--workers", "2")
    killed = threading.Event()

    def kill_after_a_second(progress: Progress) -> None:
        if progress.phase is Phase.MEASURE and progress.elapsed >= 1.0 and not killed.is_set():
            killed.set()
            server.process.kill()  # type: ignore[union-attr]

    load = Load(connections=4, duration=2.5, rate=rate, timeout=5.0)
    summary = _run(server.url + "/cpu?ms=2", load, kill_after_a_second)
    assert killed.is_set() and summary.successes > 0
    assert summary.errors.get("connection refused", 0) > 0, _describe(summary)
    if rate is not None:
        # Every request due was accounted for: answered, or failed by kind.
        assert summary.requests == summary.due, _describe(summary)


@pytest.mark.timeout(90)
def test_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, plot = tmp_path / "sweep.json", tmp_path / "sweep.png"
    argv = ["examples.hello:app", "--path", "/cpu?ms=5", "--sweep-workers", "1..2"]
    argv += ["--duration", "2", "--warmup", "0.5", "--json", str(out), "--plot", str(plot)]
    bench_main(argv)
    captured = capsys.readouterr()
    data = json.loads(out.read_text())
    deployments = data["deployments"]
    assert [(d["kind"], d["workers"]) for d in deployments] == [
        ("interpreter", 1),
        ("interpreter", 2),
    ]
    assert all(d["run"]["successes"] > 0 for d in deployments)
    assert data["knees"]["interpreter"] in (1, 2)
    recommendations = [
        line for line in captured.out.splitlines() if line.startswith("Recommendation: ")
    ]
    assert recommendations == [f"Recommendation: {data['recommendations'][0]}"]
    for figure in ("scaling", "timeline"):
        assert (tmp_path / f"sweep-{figure}.png").stat().st_size > 0


# Open loop ---------------------------------------------------------------------------------


@pytest.fixture
def hello(start_server: StartServer) -> ServerProcess:
    return start_server("examples.hello:app", "--workers", "2")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("arrival", list(Arrival))
def test_open_loop_meets_the_asked_rate(hello: ServerProcess, arrival: Arrival) -> None:
    """Well below capacity (a few % of a core), two generator processes, a 9:1 mix of paths."""
    paths = (WeightedPath("/", 9), WeightedPath("/cpu?ms=2", 1))
    load = Load(
        rate=200, arrival=arrival, duration=6, warmup=0.5, generators=2, paths=paths, realtime=True
    )
    summary = _run(hello.url, load)
    assert summary.asked_rps == 200 and summary.sent_rps is not None
    # Poisson arrivals are random: the rate to meet is that of the (seeded) schedule itself.
    due = sum(sum(1 for t in due_times(arrival, 200, 6.5, i, 2) if t >= 0.5) for i in range(2))
    assert summary.due == due
    # The answered rate's time includes waiting for the last answers: over 3 s, a tail of 80 ms
    # (seen on a quiet machine) was past the tolerance by itself.
    expected = due / 6
    assert abs(summary.sent_rps - expected) <= RATE_TOLERANCE * expected, _describe(summary)
    assert abs(summary.rps - expected) <= RATE_TOLERANCE * expected, _describe(summary)
    assert summary.requests == summary.successes == due, _describe(summary)
    fast, slow = summary.paths
    assert (fast.path, slow.path) == ("/", "/cpu?ms=2")
    if arrival is Arrival.CONSTANT:
        assert (fast.successes, slow.successes) == (1080, 120)
    assert fast.latency_ms is not None and slow.latency_ms is not None
    assert slow.latency_ms.p50 > fast.latency_ms.p50
    assert len(summary.generators) == 2 and len(summary.series) >= 3
    # Far from a core each: they kept the real-time policy, where this machine grants it.
    assert [g.realtime for g in summary.generators] == [_realtime_allowed()] * 2


@pytest.mark.timeout(60)
def test_a_rate_takes_one_generator_process_per_share_of_it(
    hello: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    rate = GENERATOR_RATE + 100
    bench_main([hello.url + "/", "--rate", str(rate), "-d", "0.5", "--json", str(out)])
    run = json.loads(out.read_text())["deployments"][0]["run"]
    assert len(run["generators"]) == min(2, os.process_cpu_count() or 1)
    assert run["successes"] == run["due"] == rate // 2, run
    # The real-time policy is asked for (--realtime), never taken by default.
    assert not any(g["realtime"] for g in run["generators"]), run


def _realtime_allowed() -> bool:
    """Whether a process started here may take the real-time policy (root, CAP_SYS_NICE)."""
    code = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    return subprocess.run([sys.executable, "-c", code], timeout=TIMEOUT).returncode == 0


@pytest.mark.timeout(60)
def test_a_generator_that_needs_a_core_gives_up_realtime(hello: ServerProcess) -> None:
    """Asked for far more than one process can dispatch, the generator is busy all the time:
    it still reads answers and reports progress between batches of due requests, and it goes
    back to the ordinary policy, leaving the server its share of the cores."""
    progress: list[Progress] = []
    flood = Load(rate=500_000, duration=1, max_connections=16, timeout=1, realtime=True)
    behind = _run(hello.url + "/", flood, progress.append)
    assert any(p.phase is Phase.MEASURE and p.successes for p in progress), _describe(behind)
    assert behind.successes > 0 and behind.late > 0, _describe(behind)
    assert not behind.generators[0].realtime


class _Pause:
    """A run_load progress callback that pauses the server for PAUSE_S of the generator's own
    clock, on signals: once a second of the measurement has passed, a request to
    tests/apps/hold.py's /hold takes the server's only worker; when the worker says it holds
    (the `here` file), the pause starts at that progress report, and ends at the first report
    PAUSE_S later (the `release` file), whatever the machine's load does to either."""

    def __init__(self, server: ServerProcess, tmp_path: Path, name: str) -> None:
        self.here, self.release = tmp_path / f"{name}-here", tmp_path / f"{name}-release"
        query = f"here={quote(str(self.here))}&release={quote(str(self.release))}"
        self.url = f"{server.url}/hold?{query}"
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.answer: dict[str, object] = {}
        self.held_from: float | None = None
        self.released_at: float | None = None

    def _hold(self) -> None:
        with urllib.request.urlopen(self.url, timeout=60) as response:
            self.answer = json.loads(response.read())

    def __call__(self, progress: Progress) -> None:
        if progress.phase is not Phase.MEASURE:
            return
        if self.thread.ident is None and progress.elapsed >= 1.0:
            self.thread.start()
        if self.held_from is None and self.here.exists():
            self.held_from = progress.elapsed
        elif (
            self.held_from is not None
            and self.released_at is None
            and progress.elapsed >= self.held_from + PAUSE_S
        ):
            self.release.touch()
            self.released_at = progress.elapsed

    def finish(self, duration: float) -> None:
        """After the run: the pause was whole and ended inside the measurement, with time left
        for the requests it held to be answered there (a closed-loop run drops what is still in
        flight when it ends)."""
        self.release.touch()  # if the run ended first, let the worker go anyway
        self.thread.join(TIMEOUT)
        assert self.answer.get("released") is True, f"the pause request: {self.answer}"
        assert self.released_at is not None, "the run ended before the pause did"
        assert self.released_at <= duration - 1.0, f"the pause ended late ({self.released_at} s)"


@pytest.mark.timeout(90)
def test_a_pause_shows_in_open_loop_not_in_closed_loop(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The difference between the modes. Open loop, 100 requests/s: the requests due during the
    one-second pause wait for it, a fifth of the run, so p99 and max are near a second.
    Closed loop, 2 connections: only the 2 requests in flight wait; the generator politely
    sends nothing else meanwhile, so the pause is 2 samples among hundreds or thousands and
    p99 does not show it (max does)."""
    server = start_server("tests.apps.hold:app", "--workers", "1")
    duration = 5.0
    results = {}
    for name, load in (
        ("open", Load(rate=100, duration=duration, warmup=0.3)),
        ("closed", Load(connections=2, duration=duration, warmup=0.3)),
    ):
        pause = _Pause(server, tmp_path, name)
        summary = _run(server.url + "/", load, pause)
        pause.finish(duration)
        results[name] = summary
        assert summary.latency_ms is not None
    opened, closed = results["open"].latency_ms, results["closed"].latency_ms
    assert opened is not None and closed is not None
    pause_ms = PAUSE_S * 1000
    assert opened.p99 > pause_ms / 2 and opened.max > pause_ms * 0.8, _describe(results["open"])
    assert closed.max > pause_ms * 0.8, _describe(results["closed"])
    # 2 samples are under 1% once there are 200: what the closed loop hides is the pause,
    # unless the machine is so loaded that a trivial endpoint answers fewer than 40/s.
    assert closed.p99 < pause_ms / 2, _describe(results["closed"])


@pytest.mark.timeout(60)
def test_requests_that_could_not_be_sent_on_time_are_counted(start_server: StartServer) -> None:
    server = start_server("tests.apps.faults_app:app", "--workers", "1")
    # One connection for 50 requests/s of 50 ms each: most wait for it, all are accounted for.
    queued = _run(server.url + "/block?ms=50", Load(rate=50, duration=1, max_connections=1))
    assert queued.waited > 0 and queued.requests == queued.due == 50, _describe(queued)
    assert queued.latency_ms is not None and queued.latency_ms.max > 500
    # Far more than the server answers: whether the generator falls behind (late) or the
    # connections are all busy (waited) depends on the machine; every request is accounted for.
    flood = Load(rate=50_000, duration=0.1, max_connections=16, timeout=20)
    behind = _run(server.url + "/", flood)
    assert behind.late + behind.waited > 0, _describe(behind)
    assert behind.requests == behind.due, _describe(behind)


@pytest.mark.timeout(150)
def test_capacity_search_agrees_with_a_rate_sweep(
    start_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/block?ms=10 on one worker holds 100 requests/s whatever else runs on the machine; the
    search and a brute-force sweep in steps of 2 around it, against the same server, find the
    same highest rate within 5%. (The sweep's step is finer than that 5%: in steps of 4 from 80,
    its highest met rate was 96 while the search found 101, both right about a server that
    holds 100.) Near capacity a pause of a busy machine makes a run miss; both measure a miss
    again before it counts, so neither ends early on one (a search that stopped below 100 on a
    single missed run is what failed here before)."""
    server = start_server("tests.apps.faults_app:app", "--workers", "1")
    out, table = tmp_path / "capacity.json", tmp_path / "capacity.csv"
    metrics = tmp_path / "capacity.om"
    argv = [server.url + "/block?ms=10", "--slo", "p99<100ms", "--sweep-rate", "92..108:2"]
    argv += ["-d", "1", "--warmup", "0.3", "--json", str(out), "--csv", str(table)]
    argv += ["--openmetrics", str(metrics)]
    bench_main(argv)
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    deployment = data["deployments"][0]
    met = [s["rate"] for s in deployment["rate_sweep"]["steps"] if s["met"]]
    assert met, printed
    capacity = deployment["capacity"]["rate"]
    assert capacity is not None, printed
    assert abs(capacity - max(met)) <= 0.05 * max(met), printed
    assert "Capacity at p99<100ms, errors<1%:" in printed
    assert "the server holds " in printed and "Knee: " in printed
    rows = table.read_text().splitlines()
    measured = len(deployment["rate_sweep"]["steps"]) + len(deployment["capacity"]["steps"])
    assert len(rows) == 1 + measured
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert len(families["interpserve_bench_slo_met"].samples) == measured
