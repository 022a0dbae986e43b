"""Entry point of a process worker: `python -m interpserve.worker FD_IN FD_OUT`, settings as
JSON on stdin. Started by the front end, not by hand."""

import json
import signal
import sys

from interpserve.worker.deferred import defer_imports

defer_imports()  # before asyncio is imported
from interpserve.worker.main import run_worker  # noqa: E402

# The front end decides when workers stop: Ctrl+C in a terminal, `timeout`, `kill -TERM -PGID`
# or systemd's KillMode=control-group reach the whole process group, and a worker must drain
# on the front end's Shutdown, not die on the signal. (It stops when its pipe closes, too: the
# front end is gone.)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
settings = json.loads(sys.stdin.read())
# The front end's sys.path, --app-dir first, as an interpreter worker's bootstrap sets it.
sys.path[:] = settings["sys_path"]
run_worker(int(sys.argv[1]), int(sys.argv[2]), settings, "process")
