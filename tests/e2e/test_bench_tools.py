"""The bench's measuring tools, beside the suite: short real runs, loopback only.

- bench/worker_cpu.py measures a worker alone, fed requests over its real pipes;
- bench/cpu_split.py splits a plaintext request's CPU by server and thread, beside the bare
  uvloop floor;
- bench/hostile.py's loads, small, against a real server;
- bench/interpreter_memory.py takes one more worker interpreter apart;
- bench/process_model.py measures the supervisor, recycling, reloads and --processes (its runs
  take minutes: only its arguments are checked here).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, StartServer


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_worker_cpu_reports_each_round() -> None:
    result = run("bench.worker_cpu", "--requests", "320", "--batch", "16", "--rounds", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for number, line in enumerate(lines, 1):
        assert re.fullmatch(
            rf"round {number}: worker CPU [\d.]+ us a request \(wall [\d.]+ us\), "
            r"320 requests in batches of 16",
            line,
        )


def test_worker_cpu_refuses_bad_arguments() -> None:
    result = run("bench.worker_cpu", "--batch", "0")
    assert result.returncode == 2
    assert "need --batch >= 1" in result.stderr


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_cpu_split_reports_each_server() -> None:
    # (Not uvicorn: it is one of the peers that only `pip install -e '.[compare]'` brings.)
    servers = "bare-uvloop,interpserve-interpreter"
    result = run("bench.cpu_split", "--seconds", "1", "--rounds", "1", "--servers", servers)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rate = r"[\d,]+ req/s, [\d.]+ us a request"
    assert lines[0] == "round 1:"
    assert re.fullmatch(rf"  bare uvloop x1: {rate}", lines[1])
    assert re.fullmatch(
        rf"  interpserve interpreter x\d+: {rate} \(main interpreter [\d.]+, workers [\d.]+\)",
        lines[2],
    )
    assert len(lines) == 3


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is not installed")
def test_cpu_split_over_http2_reports_the_servers_that_speak_it() -> None:
    servers = "bare-uvloop,interpserve-interpreter"
    args = ("--seconds", "1", "--rounds", "1", "--servers", servers, "--http2")
    result = run("bench.cpu_split", *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "round 1:" and len(lines) == 2  # (bare uvloop speaks HTTP/1.1 only)
    assert re.fullmatch(
        r"  interpserve interpreter x\d+: [\d,]+ req/s, [\d.]+ us a request "
        r"\(main interpreter [\d.]+, workers [\d.]+\)",
        lines[1],
    )


def test_cpu_split_refuses_bad_arguments() -> None:
    result = run("bench.cpu_split", "--rounds", "0")
    assert result.returncode == 2
    assert "need --seconds, --rounds and --workers >= 1" in result.stderr
    result = run("bench.cpu_split", "--servers", "bare-uvloop,gunicorn")
    assert result.returncode == 2
    assert "--servers takes keys among" in result.stderr


@pytest.mark.timeout(180)
def test_hostile_loads_report_against_a_real_server(start_server: StartServer) -> None:
    """bench/hostile.py's loads, each made small, against the bench's app: each says it did
    what it says (every answer whole), so the scenario's figures measure what they name."""
    server = start_server("bench.apps:app", "--workers", "1", "--no-access-log")
    port = str(server.port)
    loads = [
        ("uploads", "--clients", "3", "--hold-ms", "50"),
        ("tiny-chunks", "--clients", "1", "--chunks", "2000", "--seconds", "0.2"),
        (
            "tiny-chunks",
            "--clients",
            "1",
            "--chunks",
            "500",
            "--seconds",
            "0",
            "--chunk-size",
            "30",
        ),
        ("slow-readers", "--clients", "2", "--mib", "1", "--seconds", "0.5"),
        ("pipelined", "--requests", "100", "--seconds", "0.5"),
    ]
    for kind, *args in loads:
        result = run("bench.hostile", kind, "--port", port, *args)
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads(result.stdout)
        assert report["ok"] >= 1 and not report["failed"], (kind, report)


def test_process_model_refuses_unknown_measurements() -> None:
    result = run("bench.process_model", "--only", "recycles,nope")
    assert result.returncode == 2
    names = "['recycles', 'recycling', 'shutdown', 'reloads', 'memory', 'processes']"
    assert f"--only takes names among {names}" in (result.stderr)


def test_h2load_output_is_read() -> None:
    from bench.load_tools import parse_h2load

    output = """
finished in 3.01s, 5355.67 req/s, 209.43KB/s
requests: 16067 total, 16195 started, 16067 done, 16060 succeeded, 7 failed, 1 errored, 2 timeout
status codes: 16060 2xx, 0 3xx, 3 4xx, 4 5xx
"""
    result = parse_h2load(output)
    assert (result.rps, result.requests, result.errors) == (5355.67, 16060, 17)


def test_interpreter_memory_reports_each_stage(tmp_path: Path) -> None:
    out = tmp_path / "interpreter_memory.json"
    result = run("bench.interpreter_memory", "--out", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    bare, itself, deferred, worker, app = (stage["mib"] for stage in figures["stages"])
    # ssl and inspect deferred: less than asyncio as it imports itself, more than bare.
    assert bare < deferred < itself and deferred < worker < app
    allocator = figures["composition"]["allocator"]
    assert allocator["arenas"] > 0 and 0 < allocator["live_bytes"] < allocator["arenas"] * 2**20
    assert figures["composition"]["code"] > 0 and "dict" in figures["composition"]["objects_bytes"]
    assert "one more interpreter" in result.stdout
