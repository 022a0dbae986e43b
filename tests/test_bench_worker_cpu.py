"""bench/worker_cpu.py, the harness that measures a worker alone: short real runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.worker_cpu", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_short_run_reports_each_round() -> None:
    result = run("--requests", "320", "--batch", "16", "--rounds", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for number, line in enumerate(lines, 1):
        assert re.fullmatch(
            rf"round {number}: worker CPU [\d.]+ us a request \(wall [\d.]+ us\), "
            r"320 requests in batches of 16",
            line,
        )


def test_bad_arguments_are_refused() -> None:
    result = run("--batch", "0")
    assert result.returncode == 2
    assert "need --batch >= 1" in result.stderr
