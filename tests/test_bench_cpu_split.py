"""bench/cpu_split.py, which splits a plaintext request's CPU by server and thread: a short real
run against the bare uvloop floor, uvicorn and interpserve, loopback only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cpu_split", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_a_short_run_reports_every_server() -> None:
    result = run("--seconds", "1", "--rounds", "1", "--workers", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rate = r"[\d,]+ req/s, [\d.]+ us a request"
    assert lines[0] == "round 1:"
    assert re.fullmatch(rf"  bare uvloop x1: {rate}", lines[1])
    assert re.fullmatch(rf"  uvicorn x1: {rate}", lines[2])
    assert re.fullmatch(
        rf"  interpserve interpreter x2: {rate} \(main interpreter [\d.]+, workers [\d.]+\)",
        lines[3],
    )
    assert len(lines) == 4


def test_bad_arguments_are_refused() -> None:
    result = run("--rounds", "0")
    assert result.returncode == 2
    assert "need --seconds, --rounds and --workers >= 1" in result.stderr
