"""Process trees from /proc: a server's parent and every process below it, their memory, and
stopping all of them.

Multi-worker servers fork or spawn children (and those may have helpers of their own), so both
memory and clean-up look at the whole tree, not only the process the runner started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from interpserve.rss import rss_bytes

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """Direct children of `pid`, across all its threads; [] if it is gone."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in (PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants, parents before children."""
    pids = [pid]
    for current in pids:  # grows while it is walked: a breadth-first walk
        pids.extend(children(current))
    return pids


def tree_rss_bytes(pid: int) -> int:
    """Sum of the resident set sizes over the tree (interpserve.rss's, the server's own
    measure). Pages shared between processes count once per process, as they would in `ps`;
    that is the figure an operator sees."""
    return sum(rss_bytes(p) for p in tree(pid))


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process: each page it shares with others counts as its
    share of it (a page mapped by four processes, a quarter); 0 if it is gone."""
    try:
        rollup = (PROC / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_pss_bytes(pid: int) -> int:
    """Sum of PSS over the tree: what the tree costs the machine, each shared page once (the
    pages of libpython, libssl and the like, which every process of a multi-process server
    maps, count once in all, where the RSS sum counts them once per process)."""
    return sum(pss_bytes(p) for p in tree(pid))


def _stat_cpu_seconds(stat_file: Path) -> float:
    """User plus system CPU time from a /proc stat file; 0 if its process or thread is gone."""
    try:
        stat = stat_file.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name (field 2) may hold spaces: count fields from its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, all its threads; 0 if it is gone."""
    return _stat_cpu_seconds(PROC / str(pid) / "stat")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User plus system CPU time of each thread of one process, by thread id (the main
    thread's is the pid); {} if it is gone."""
    try:
        tids = [int(task.name) for task in (PROC / str(pid) / "task").iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return {tid: _stat_cpu_seconds(PROC / str(pid) / "task" / str(tid) / "stat") for tid in tids}


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the live processes of the tree (workers are not replaced during
    a measurement, so none of it leaves with an exited child)."""
    return sum(cpu_seconds(p) for p in tree(pid))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port(host: str) -> int:
    """A port nothing listens on now. A fresh one per server start, so no server meets the
    previous one's sockets in TIME_WAIT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back, so a second Ctrl+C cannot cut a clean-up short; they are
    delivered (and raise) once the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def stop_tree(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the server and give it `grace` seconds to stop its workers; then SIGKILL whatever
    is left of the tree as it was before the signal, and the server's process group."""
    with signals_deferred():
        _stop_tree(proc, grace)


def _stop_tree(proc: subprocess.Popen[bytes], grace: float) -> None:
    pids = tree(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    # Workers are reparented once their parent exits; a short wait lets well-behaved ones go.
    deadline = time.monotonic() + min(grace, 2.0)
    while any(alive(p) for p in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # The server was started as a session leader, so its group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
