"""Starting the server once the options are read: bind the sockets, then become the supervisor,
or, with --no-supervisor, serve in this process.

The supervisor should hold nothing it does not need, and this process has imported the whole
option machinery by now: `become_supervisor` replaces the program of this process (same pid,
same open sockets) with a fresh interpreter that imports only supervisor.py. The serving
processes' options travel in a memory file that they read and the supervisor never does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from interpserve.config import Config
from interpserve.listen import bind, bind_metrics, listening_on
from interpserve.logs import LEVELS
from interpserve.supervisor import HANDLED, Plan, Supervisor

# The supervisor's program: isolated (-I: no environment variables read, no working directory
# on the path) and without site (-S: nothing imported at start, no .pth files run), so it
# imports interpserve from where this process found it.
_SUPERVISOR = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from interpserve.supervisor import main; main(sys.argv[2:])"
)


def become_supervisor(config: Config) -> NoReturn:
    """Bind the sockets (StartupError if they cannot be), then turn into the supervisor."""
    plan = prepare(config)
    package_root = str(Path(__file__).resolve().parent.parent)
    sys.stdout.flush()
    sys.stderr.flush()
    # Held back across the exec (the mask is kept): a signal sent while the new program starts
    # waits for the supervisor's handlers instead of killing it.
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    os.execv(
        sys.executable,
        [sys.executable, "-I", "-S", "-c", _SUPERVISOR, package_root, *plan.to_args()],
    )


def supervise_here(config: Config) -> int:
    """The same supervisor, in this process (interpserve.run): its exit code."""
    plan = prepare(config)
    try:
        return Supervisor(plan).run()
    finally:
        for fd in (plan.payload_fd, *plan.metrics_fds):
            os.close(fd)


def prepare(config: Config) -> Plan:
    """Bind the sockets and write the serving processes' options: what the supervisor needs."""
    listeners = bind(config)
    listening = listening_on(config, listeners.sockets[0])
    shares = config.worker_shares()
    metrics = [] if config.metrics_port is None else bind_metrics(config, len(shares))
    # Held by the supervisor as numbers from here: it closes the sockets, not these objects.
    listen_fds = tuple(sock.detach() for sock in listeners.sockets)
    metrics_fds = tuple(sock.detach() for sock in metrics)
    payload = {"config": config.to_dict(), "sys_path": sys.path, "listen_fds": listen_fds}
    payload_fd = _memory_file(json.dumps(payload).encode())
    for fd in (*listen_fds, *metrics_fds, payload_fd):
        os.set_inheritable(fd, True)
    return Plan(
        payload_fd=payload_fd,
        listen_fds=listen_fds,
        workers=shares,
        metrics_fds=metrics_fds,
        graceful=config.timeout_graceful_shutdown,
        log_threshold=LEVELS[config.log_level],
        log_format=config.log_format,
        listening=listening,
        uds=config.uds or "",
    )


def _memory_file(data: bytes) -> int:
    """A file descriptor reading `data`, in memory where the OS allows (a read-only root file
    system is common in containers), else an unnamed temporary file."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("interpserve-options")
    else:
        import tempfile

        with tempfile.TemporaryFile() as file:
            fd = os.dup(file.fileno())
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return fd
