"""The servers under test, how to start each on loopback with bench.apps:app, and a context
manager that starts one, waits until it answers, and always stops it."""

from __future__ import annotations

import dataclasses
import http.client
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import deployed
from bench.procs import free_port, stop_tree

HOST = "127.0.0.1"
APP = "bench.apps:app"
ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
STOP_GRACE = 10.0

Command = Callable[[int, int], list[str]]  # (port, workers) -> argv


class ServerFailed(RuntimeError):
    """The server exited or never answered; the message ends with the tail of its log."""


def _interpserve(kind: str, flags: tuple[str, ...] = ()) -> Command:
    def command(port: int, workers: int) -> list[str]:
        return [
            deployed.python(), "-m", "interpserve", APP, "--workers", str(workers),
            "--worker-kind", kind, "--no-access-log", "--log-level", "warning",
            "--host", HOST, "--port", str(port), *flags,
        ]  # fmt: skip

    return command


def _uvicorn(port: int, workers: int) -> list[str]:
    return [
        deployed.python(), "-m", "uvicorn", APP, "--workers", str(workers),
        "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
        "--host", HOST, "--port", str(port),
    ]  # fmt: skip


def _uvicorn_with(flags: tuple[str, ...]) -> Command:
    return lambda port, workers: [*_uvicorn(port, workers), *flags]


def _granian(port: int, workers: int) -> list[str]:
    return [
        deployed.python(), "-m", "granian", "--interface", "asgi", "--workers", str(workers),
        "--no-access-log", "--log-level", "warning", "--host", HOST, "--port", str(port), APP,
    ]  # fmt: skip


def _hypercorn(port: int, workers: int) -> list[str]:
    # uvloop, as every other server here runs on it; hypercorn's default is plain asyncio.
    return [
        deployed.python(), "-m", "hypercorn", "--workers", str(workers), "--worker-class", "uvloop",
        "--bind", f"{HOST}:{port}", APP,
    ]  # fmt: skip


@dataclass(frozen=True)
class ServerSpec:
    key: str  # stable name for --servers and the JSON results
    name: str  # the program (and worker kind), for people
    family: str  # the distribution, for its version
    workers: int
    command: Command
    http2: bool = True  # serves HTTP/2 with prior knowledge (the h2_* scenarios)

    @property
    def label(self) -> str:
        return f"{self.name} x{self.workers}"

    @classmethod
    def interpserve(
        cls, kind: str, workers: int, flags: tuple[str, ...] = (), what: str = ""
    ) -> ServerSpec:
        """interpserve with `kind` workers; `flags` added, named by `what` ("recycling")."""
        key = f"interpserve-{kind}" + (f"-{what.replace(' ', '-')}" if what else "")
        name = f"interpserve {kind}" + (f", {what}" if what else "")
        return cls(key, name, "interpserve", workers, _interpserve(kind, flags))

    @classmethod
    def uvicorn(cls, workers: int, flags: tuple[str, ...], what: str) -> ServerSpec:
        """uvicorn --workers `workers` with `flags` added, named by `what`."""
        key = f"uvicorn-n-{what.replace(' ', '-')}"
        return cls(key, f"uvicorn, {what}", "uvicorn", workers, _uvicorn_with(flags))

    def with_workers(self, workers: int) -> ServerSpec:
        return dataclasses.replace(self, workers=workers)


def catalogue(workers: int) -> list[ServerSpec]:
    """Every server the suite knows, in report order; `workers` is N."""
    return [
        ServerSpec.interpserve("interpreter", workers),
        ServerSpec.interpserve("process", workers),
        ServerSpec("uvicorn-1", "uvicorn", "uvicorn", 1, _uvicorn, http2=False),
        ServerSpec("uvicorn-n", "uvicorn", "uvicorn", workers, _uvicorn, http2=False),
        ServerSpec("granian-1", "granian", "granian", 1, _granian),
        ServerSpec("granian-n", "granian", "granian", workers, _granian),
        ServerSpec("hypercorn", "hypercorn", "hypercorn", 1, _hypercorn),
    ]


@dataclass(frozen=True)
class RunningServer:
    spec: ServerSpec
    pid: int
    port: int
    startup_s: float  # from spawn to the first answered request

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_ready(proc: subprocess.Popen[bytes], port: int, started: float, log: Path) -> float:
    while time.perf_counter() - started < READY_TIMEOUT:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with code {proc.returncode}:\n{_tail(log)}")
        if _answers(port):
            return time.perf_counter() - started
        time.sleep(0.01)
    raise ServerFailed(f"did not answer within {READY_TIMEOUT:.0f} s:\n{_tail(log)}")


@contextmanager
def running(spec: ServerSpec, env: dict[str, str], log_dir: Path) -> Iterator[RunningServer]:
    """Start `spec`, yield it once it answers GET /, and stop its whole process tree on the way
    out, whatever happens (including KeyboardInterrupt)."""
    port = free_port(HOST)
    log = log_dir / f"{spec.key}.log"
    with log.open("wb") as out:
        started = time.perf_counter()
        # A session of its own: Ctrl+C in the terminal reaches the runner only, which then
        # stops the server itself instead of racing the server's own SIGINT handling.
        proc = subprocess.Popen(
            spec.command(port, spec.workers),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            startup = _wait_ready(proc, port, started, log)
            yield RunningServer(spec, proc.pid, port, startup)
        finally:
            stop_tree(proc, STOP_GRACE)
