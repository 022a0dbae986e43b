"""What a worker's app writes, its print() and its logging, reaches the server's output whole
and naming the worker, in both formats and for both worker kinds; also when two workers and
several threads in each write at once to the same pipe (ServerProcess reads the server's
stdout and stderr from one pipe)."""

from __future__ import annotations

import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support import LOGS_APP, TIMEOUT, StartServer

from interpserve.testing import ServerProcess, wait_until

KINDS = ["interpreter", "process"]
# Short lines, and lines longer than a pipe writes whole (PIPE_BUF, 4 KiB) or holds (64 KiB).
SIZES = [20, 300, 1000, 3900, 5000, 16000, 70000, 200000]
LINES, THREADS = 20, 3
_TEXT_LINE = re.compile(r"\[worker ([12])\] (r\d)-(\d)-(\d+)-(x*)")
_PAYLOAD = re.compile(r"(r\d)-(\d)-(\d+)-(x*)")


def printed(server: ServerProcess, log_format: str) -> list[tuple[int, str]]:
    """(worker, payload) of every line the app printed; any other line must be the server's
    own (or, for JSON, any line at all must parse)."""
    found = []
    for line in server.output.splitlines():
        if log_format == "json":
            record = json.loads(line)
            if record.get("stream") == "stdout":
                found.append((record["worker_id"], record["message"]))
        elif match := _TEXT_LINE.fullmatch(line):
            found.append((int(match[1]), line.partition("] ")[2]))
        else:
            assert re.match(r"[A-Z]+: +", line), f"not a whole line: {line[:200]!r}"
    return found


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_concurrent_prints_come_out_whole_and_attributed(
    start_server: StartServer, kind: str, log_format: str
) -> None:
    server = start_server(
        LOGS_APP, "--workers", "2", "--worker-kind", kind, "--log-format", log_format,
        "--no-access-log",
    )  # fmt: skip

    def request(i: int) -> int:
        query = f"n={LINES}&size={SIZES[i]}&threads={THREADS}&tag=r{i}"
        return httpx.get(f"{server.url}/print?{query}", timeout=TIMEOUT * 3).status_code

    with ThreadPoolExecutor(len(SIZES)) as pool:
        assert set(pool.map(request, range(len(SIZES)))) == {200}
    total = len(SIZES) * THREADS * LINES
    assert wait_until(lambda: len(printed(server, log_format)) >= total, TIMEOUT)
    lines = printed(server, log_format)
    assert len(lines) == total
    seen = Counter()
    for worker, payload in lines:
        match = _PAYLOAD.fullmatch(payload)
        assert match, f"mixed or cut: {payload[:200]!r}"
        assert len(payload) == SIZES[int(payload[1])]
        seen[worker] += 1
    assert set(seen) == {1, 2}  # both workers wrote (at once: 8 requests were in flight)
    if log_format == "json":
        record = next(json.loads(line) for line in server.output.splitlines() if "r0-0-0-" in line)
        assert record["worker_kind"] == kind and record["level"] is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_app_logging_names_the_worker(
    start_server: StartServer, kind: str, log_format: str
) -> None:
    """An app that configures no logging: its warnings and errors are written as the server's
    are (Python's last resort shows WARNING and above), with the worker's name."""
    server = start_server(
        LOGS_APP, "--workers", "1", "--worker-kind", kind, "--log-format", log_format
    )
    assert httpx.get(server.url + "/log", timeout=TIMEOUT).status_code == 200
    assert server.wait_for_output("ZeroDivisionError")
    if log_format == "text":
        assert "WARNING:  [worker 1] a warning from the app\n" in server.output
        assert "ERROR:    [worker 1] an exception from the app\nTraceback" in server.output
        assert "an info line" not in server.output
        return
    records = [json.loads(line) for line in server.output.splitlines()]
    app_records = [r for r in records if r["logger"] == "logs_app"]
    assert [r["level"] for r in app_records] == ["WARNING", "ERROR"]
    for record in app_records:
        assert (record["worker_id"], record["worker_kind"]) == (1, kind)
    assert "ZeroDivisionError: division by zero" in app_records[1]["exception"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_apps_own_basic_config_still_works(
    start_server: StartServer, kind: str, log_format: str
) -> None:
    """logging.basicConfig in the app: its handler, level and format, on its stderr, which
    names the worker."""
    server = start_server(
        LOGS_APP, "--workers", "1", "--worker-kind", kind, "--log-format", log_format,
        env={"LOGS_APP_BASIC_CONFIG": "1"},
    )  # fmt: skip
    assert httpx.get(server.url + "/log", timeout=TIMEOUT).status_code == 200
    assert server.wait_for_output("ZeroDivisionError")
    expected = "app-format INFO logs_app an info line"
    if log_format == "text":
        assert f"[worker 1] {expected}\n" in server.output
        assert "[worker 1] Traceback (most recent call last):\n" in server.output
        return
    records = [json.loads(line) for line in server.output.splitlines()]
    mine = [r for r in records if r.get("stream") == "stderr"]
    assert mine[0]["message"] == expected
    assert mine[0]["worker_id"] == 1 and mine[0]["worker_kind"] == kind
    # The traceback stays with its record, in one JSON object.
    assert any(r["message"].startswith("app-format ERROR") and "Traceback" in r["message"]
               for r in mine)  # fmt: skip
