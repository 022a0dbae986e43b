"""Load generators: wrk for request rates and latencies, curl for bulk transfers. Both only ever
get loopback URLs built by bench.servers."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK = "wrk"
CURL = "curl"
H2LOAD = "h2load"
# One wrk thread: on a 2-core machine every core wrk takes is a core the server loses, and one
# epoll thread already drives far more requests per second than these servers answer.
WRK_THREADS = 1
# Far above any latency expected here: wrk leaves timed-out requests out of its percentiles, which
# would flatter a server that stalls.
WRK_TIMEOUT_S = 30
# How long past its nominal duration a load generator may run before it counts as hung.
SLACK_S = 60

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class LoadFailed(RuntimeError):
    """The load generator failed, or the server answered with errors only."""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx answers
    p50_ms: float | None  # only with latency=True
    p99_ms: float | None


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise LoadFailed(f"unreadable wrk duration {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    requests = re.search(r"(\d+) requests in", output)
    if not rps or not requests:
        raise LoadFailed(f"unreadable wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx[1]) if non_2xx else 0
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE))
    p50, p99 = percentiles.get("50"), percentiles.get("99")
    return WrkResult(
        rps=float(rps[1]),
        requests=int(requests[1]),
        errors=errors,
        p50_ms=_duration_ms(p50) if p50 else None,
        p99_ms=_duration_ms(p99) if p99 else None,
    )


@dataclass(frozen=True)
class WrkRun:
    """A wrk running in the background, for loads that must overlap; finish with wait_wrk."""

    proc: subprocess.Popen[str]
    seconds: int
    latency: bool


def start_wrk(url: str, connections: int, seconds: int, latency: bool = False) -> WrkRun:
    seconds = max(1, seconds)
    argv = [
        WRK, f"-t{min(WRK_THREADS, connections)}", f"-c{connections}", f"-d{seconds}s",
        f"--timeout={WRK_TIMEOUT_S}s", *(["--latency"] if latency else []), url,
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return WrkRun(proc, seconds, latency)


def wait_wrk(run: WrkRun) -> WrkResult:
    """Collect a wrk started by start_wrk; it is killed if the caller is interrupted."""
    proc = run.proc
    try:
        output, _ = proc.communicate(timeout=run.seconds + SLACK_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise LoadFailed(f"wrk exited with code {proc.returncode}:\n{output}")
    result = parse_wrk(output)
    if not result.requests:
        raise LoadFailed(f"no request completed in {run.seconds} s")
    if result.errors >= result.requests:
        raise LoadFailed(f"every request failed:\n{output}")
    if run.latency and result.p99_ms is None:
        raise LoadFailed(f"no latency distribution:\n{output}")
    return result


def wrk(url: str, connections: int, seconds: int, latency: bool = False) -> WrkResult:
    return wait_wrk(start_wrk(url, connections, seconds, latency))


def _curl(argv: list[str], timeout: float) -> str:
    done = subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", str(int(timeout)), *argv],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout + SLACK_S,
    )  # fmt: skip
    if done.returncode != 0:
        raise LoadFailed(f"curl exited with code {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def download(url: str, expected_bytes: int, timeout: float) -> float:
    """Throughput of one GET in bytes per second, after checking every byte arrived."""
    stats = "%{speed_download} %{size_download} %{http_code}"
    output = _curl(["--output", "/dev/null", "--write-out", stats, url], timeout)
    speed, size, status = output.split()
    if status != "200" or int(size) != expected_bytes:
        raise LoadFailed(f"download got status {status} and {size} of {expected_bytes} bytes")
    return float(speed)


def upload(url: str, body: Path, timeout: float) -> float:
    """Throughput of one PUT of the file `body` in bytes per second, after checking the app
    counted every byte. Without "Expect: 100-continue", so the figure is pure streaming and not
    how fast a server answers that header."""
    stats = "\n%{speed_upload} %{http_code}"
    argv = ["--upload-file", str(body), "--header", "Expect:", "--write-out", stats, url]
    answer, _, last_line = _curl(argv, timeout).rpartition("\n")
    speed, status = last_line.split()
    expected = body.stat().st_size
    if status != "200" or answer.strip() != str(expected):
        raise LoadFailed(f"upload got status {status}, app counted {answer!r} of {expected} bytes")
    return float(speed)


def parse_h2load(output: str) -> WrkResult:
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)
    counts = re.search(
        r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
    )
    if not rps or not counts:
        raise LoadFailed(f"unreadable h2load output:\n{output}")
    _, succeeded, failed, errored, timeout = map(int, counts.groups())
    statuses = re.search(r"status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx", output)
    errors = failed + errored + timeout + (sum(map(int, statuses.groups())) if statuses else 0)
    return WrkResult(float(rps[1]), succeeded, errors, None, None)


def h2load(url: str, connections: int, streams: int, seconds: int) -> WrkResult:
    """Requests/s over cleartext HTTP/2 with prior knowledge: `connections` connections, each
    with `streams` requests in flight at once (one h2load thread, as with wrk)."""
    seconds = max(1, seconds)
    argv = [H2LOAD, "-t1", f"-c{connections}", f"-m{streams}", f"-D{seconds}", url]
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=seconds + SLACK_S
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise LoadFailed(f"h2load exited with code {done.returncode}:\n{output}")
    result = parse_h2load(output)
    if not result.requests:
        raise LoadFailed(f"no request completed in {seconds} s:\n{output[-500:]}")
    return result


def wrk_version() -> str:
    done = subprocess.run([WRK, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).splitlines()[0].strip() if done.stdout or done.stderr else ""
