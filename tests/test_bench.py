"""`interpserve bench`: the pure parts (statistics, HTTP framing, report, argument parsing) on
known inputs, then real runs against real servers on 127.0.0.1, each short and bounded."""

from __future__ import annotations

import json
import socket
import sys
import threading
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from interpserve.bench.cli import main as bench_main
from interpserve.bench.cli import parse_worker_counts, parse_worker_kinds
from interpserve.bench.client import Load
from interpserve.bench.http1 import (
    ProtocolError,
    ResponseParser,
    Target,
    build_request,
    parse_header,
    parse_url,
)
from interpserve.bench.report import format_table, recommendation, sweep_json
from interpserve.bench.stats import (
    Point,
    RunResult,
    Summary,
    curves,
    ideal_rps,
    knee,
    latency_ms,
    percentile,
    speedup,
    summarize,
)
from interpserve.bench.sweep import server_error
from interpserve.cli import SUBCOMMANDS
from interpserve.testing import ServerProcess

StartServer = Callable[..., ServerProcess]

# Statistics -------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0.5) == 1
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3
    assert percentile([7.0], 99) == 7


def test_percentile_does_not_round_past_a_rank() -> None:
    # 7 / 100 * 100 is 7.000000000000001 in floating point; the rank must still be 7.
    assert percentile([float(v) for v in range(1, 101)], 7) == 7


@pytest.mark.parametrize("q", [0, -1, 101])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_in_milliseconds() -> None:
    latency = latency_ms([0.004, 0.001, 0.003, 0.002])
    assert latency is not None
    assert latency.mean == pytest.approx(2.5)
    assert (latency.p50, latency.p90, latency.p99, latency.max) == (2.0, 4.0, 4.0, 4.0)
    assert latency_ms([]) is None


def test_summarize_counts() -> None:
    result = RunResult(
        latencies=array("d", [0.001, 0.002, 0.003]),
        errors={"connection refused": 1, "HTTP 500": 2},
        elapsed=2.0,
        cpu_seconds=0.5,
    )
    summary = summarize(result)
    assert (summary.requests, summary.successes, summary.error_count) == (6, 3, 3)
    assert list(summary.errors) == ["HTTP 500", "connection refused"]  # most frequent first
    assert summary.rps == 1.5
    assert summary.generator_cpu == 0.25
    assert summary.latency_ms is not None and summary.latency_ms.max == 3.0


def test_summarize_no_successes() -> None:
    summary = summarize(RunResult(array("d"), {"timeout": 4}, 1.0, 0.0))
    assert (summary.requests, summary.successes, summary.rps) == (4, 0, 0.0)
    assert summary.latency_ms is None


def _curve(rates: Sequence[float], kind: str = "interpreter", first: int = 1) -> list[Point]:
    return [
        Point(kind, first + i, Summary(requests=1, successes=1, rps=rate))
        for i, rate in enumerate(rates)
    ]


def test_scaling_figures() -> None:
    curve = _curve([100, 190, 280, 290, 291])
    assert ideal_rps(curve[3], curve[0]) == 400
    assert speedup(curve[2], curve[0]) == 2.8
    # 280 is the first rate within 95% of the best (291).
    assert knee(curve).workers == 3


def test_curves_group_by_kind_and_sort_by_workers() -> None:
    points = [*reversed(_curve([1, 2])), *_curve([3], kind="process")]
    grouped = curves(points)
    assert list(grouped) == ["interpreter", "process"]
    assert [p.workers for p in grouped["interpreter"]] == [1, 2]


def test_recommendations() -> None:
    def advice(rates: list[float], name_kind: bool = False, first: int = 1) -> str:
        return recommendation(_curve(rates, first=first), name_kind, cpus=8)

    assert (
        advice([100, 190, 280, 290, 291])
        == "3 workers: 2.8\u00d7 one worker; more adds nothing on this machine."
    )
    assert (
        advice([100, 200, 300], name_kind=True)
        == "interpreter: 3 workers: 3.0\u00d7 one worker, and still scaling; try more than 3."
    )
    assert advice([100, 99, 100]) == "1 worker: more workers add nothing on this machine."
    assert advice([100, 200], first=2).startswith("3 workers: 2.0\u00d7 2 workers")
    assert "no request succeeded" in advice([0, 0])


def test_recommendation_notes_workers_beyond_the_cpus() -> None:
    text = recommendation(_curve([100, 190, 250, 251]), name_kind=False, cpus=2)
    assert text.startswith("3 workers: 2.5\u00d7 one worker; more adds nothing")
    assert "More workers than the 2 CPUs here still helped" in text


def test_sweep_json_schema() -> None:
    points = [*_curve([100, 190]), *_curve([90, 150], kind="process")]
    data = json.loads(json.dumps(sweep_json("m:app", "/cpu", Load(), points, cpus=2)))
    assert data["schema"] == 1 and data["mode"] == "sweep" and data["cpus"] == 2
    assert [(p["kind"], p["workers"]) for p in data["points"]] == [
        ("interpreter", 1),
        ("interpreter", 2),
        ("process", 1),
        ("process", 2),
    ]
    assert data["points"][1]["ideal_rps"] == 200 and data["points"][1]["speedup"] == 1.9
    assert data["knees"] == {"interpreter": 2, "process": 2}
    assert len(data["recommendations"]) == 2


def test_format_table_aligns_columns() -> None:
    table = format_table(["kind", "rps"], [["a", "1.0"], ["longer", "100.5"]], text_columns=1)
    assert table.splitlines() == [
        "  kind      rps",
        "  a         1.0",
        "  longer  100.5",
    ]


# Arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "counts"),
    [("1..8", [1, 2, 3, 4, 5, 6, 7, 8]), ("1,2,4", [1, 2, 4]), ("4,2,2", [2, 4]), ("3", [3])],
)
def test_worker_counts(text: str, counts: list[int]) -> None:
    assert parse_worker_counts(text) == counts


@pytest.mark.parametrize("text", ["0..2", "a..b", "", "2..1", "1,x"])
def test_bad_worker_counts(text: str) -> None:
    with pytest.raises(ValueError):
        parse_worker_counts(text)


def test_worker_kinds() -> None:
    assert parse_worker_kinds("interpreter, process,interpreter") == ["interpreter", "process"]
    with pytest.raises(ValueError):
        parse_worker_kinds("thread")


def test_bench_is_a_subcommand() -> None:
    assert "bench" in SUBCOMMANDS


def test_sweep_flags_need_an_app(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_main(["http://127.0.0.1:1/", "--sweep-workers", "1..2"])
    assert exc.value.code == 2
    assert "need MODULE:APP" in capsys.readouterr().err


# HTTP/1.1 ---------------------------------------------------------------------------------


def test_parse_url() -> None:
    assert parse_url("http://127.0.0.1:8000/cpu?ms=5") == Target(
        "127.0.0.1", 8000, "/cpu?ms=5", "127.0.0.1:8000"
    )
    assert parse_url("http://localhost") == Target("localhost", 80, "/", "localhost")
    for bad in ("https://127.0.0.1/", "127.0.0.1:8000", "http://127.0.0.1:99999/"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_build_request() -> None:
    target = parse_url("http://127.0.0.1:8000/x?y=1")
    assert build_request("GET", target) == b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
    assert build_request("POST", target, (("Content-Type", "text/plain"),), b"hi") == (
        b"POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )
    assert b"Content-Length: 0" in build_request("POST", target)


def test_parse_header() -> None:
    assert parse_header("X-Token: a: b ") == ("X-Token", "a: b")
    with pytest.raises(ValueError):
        parse_header("no colon")


def _feed_bytewise(parser: ResponseParser, data: bytes) -> list[int]:
    return [status for i in range(len(data)) for status in parser.feed(data[i : i + 1])]


def test_parser_content_length_in_any_pieces() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    parser = ResponseParser()
    assert parser.feed(response + response) == [200, 200]
    assert _feed_bytewise(parser, response) == [200]
    assert parser.keep_alive and parser.idle


def test_parser_chunked_with_extensions_and_trailers() -> None:
    response = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    assert ResponseParser().feed(response) == [201]
    assert _feed_bytewise(ResponseParser(), response) == [201]


def test_parser_bodiless_responses() -> None:
    parser = ResponseParser(no_body=True)
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n") == [200]
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n") == [204]
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n") == [304]


def test_parser_body_until_close() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body") == []
    assert not parser.keep_alive
    assert parser.feed_eof() == 200


def test_parser_connection_header() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not parser.keep_alive
    parser = ResponseParser()
    parser.feed(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    assert parser.keep_alive


def test_parser_cut_short() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel") == []
    assert parser.feed_eof() is None


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_parser_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseParser().feed(data)


def test_server_error_line() -> None:
    output = 'INFO:     Starting 1 interpreter worker(s)\nERROR:    Could not import module "x".\n'
    assert server_error(output) == 'Could not import module "x".'
    assert server_error("INFO: a\nTraceback ...\nKeyError: 1\n") == "KeyError: 1"
    assert server_error("") == "the server exited without output"


# Real runs, against servers on 127.0.0.1 --------------------------------------------------


def _exit_code(argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as exc:
        bench_main(argv)
    return exc.value.code


@pytest.mark.timeout(60)
def test_run_against_a_server(
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
    assert (data["schema"], data["mode"], data["url"]) == (1, "url", server.url + "/")
    assert data["load"]["requests"] == 200 and data["load"]["connections"] == 4
    assert data["load"]["warmup_s"] == 0.3
    result = data["result"]
    assert result["requests"] == 200
    assert result["successes"] + sum(result["errors"].values()) == 200
    assert result["successes"] == 200
    assert result["rps"] > 0 and result["duration_s"] > 0 and result["generator_cpu"] >= 0
    latency = result["latency_ms"]
    assert set(latency) == {"mean", "p50", "p90", "p99", "max"}
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]


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
    result = json.loads(out.read_text())["result"]
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
def test_server_killed_mid_run(
    start_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server("examples.hello:app", "--workers", "2")
    out = tmp_path / "run.json"
    killer = threading.Timer(1.0, server.process.kill)  # type: ignore[union-attr]
    killer.start()
    try:
        bench_main([server.url + "/cpu?ms=2", "-d", "2.5", "-c", "4", "--json", str(out)])
    finally:
        killer.cancel()
    result = json.loads(out.read_text())["result"]
    assert result["successes"] > 0
    assert result["requests"] == result["successes"] + sum(result["errors"].values())
    assert result["errors"].get("connection refused", 0) > 0
    assert "connection refused" in capsys.readouterr().out


@pytest.mark.timeout(90)
def test_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, plot = tmp_path / "sweep.json", tmp_path / "sweep.png"
    argv = ["examples.hello:app", "--path", "/cpu?ms=5", "--sweep-workers", "1..2"]
    argv += ["--duration", "2", "--warmup", "0.5", "--json", str(out), "--plot", str(plot)]
    bench_main(argv)
    captured = capsys.readouterr()
    data = json.loads(out.read_text())
    assert [(p["kind"], p["workers"]) for p in data["points"]] == [
        ("interpreter", 1),
        ("interpreter", 2),
    ]
    assert all(p["result"]["successes"] > 0 for p in data["points"])
    assert data["knees"]["interpreter"] in (1, 2)
    recommendations = [
        line for line in captured.out.splitlines() if line.startswith("Recommendation: ")
    ]
    assert recommendations == [f"Recommendation: {data['recommendations'][0]}"]
    assert plot.stat().st_size > 0 or "no plot" in captured.err
