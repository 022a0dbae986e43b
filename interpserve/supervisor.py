"""The supervisor: the process the user starts. It holds the listening sockets and runs the
serving processes (each a front end with its share of the workers) on them, and keeps them
running, as gunicorn's arbiter keeps its workers:

- a serving process that dies is replaced at once (crash loops back off); connections wait in
  the listen backlog meanwhile, none is refused;
- SIGHUP (or --reload seeing a change) starts new serving processes, and once one is ready the
  one it replaces stops accepting and drains: no downtime, and every byte the old one held is
  given back. A serving process that keeps too much memory it no longer uses (what destroyed
  interpreters or a burst left behind: --limit-max-leftover) asks for the same; for bursts,
  as often as a backoff lets it;
- SIGINT and SIGTERM drain them and stop, SIGTTIN and SIGTTOU reach one of them.

launch.py reads the options and binds the sockets, then replaces its own program with this one
(same pid, for a process manager or a container's PID 1) in a fresh interpreter that imports
only what this module needs: no asyncio, no app, no interpreters, not the front end. Signals
are queued through a pipe (signal.set_wakeup_fd) and handled by name, as uvicorn's
multiprocess supervisor does; a serving process's messages come on a pipe (control.py).
"""

from __future__ import annotations

import posix
import select
import sys
import time
from _json import encode_basestring_ascii as json_string

from interpserve import control
from interpserve.backoff import BurstReplacements, CrashLoop
from interpserve.logbase import Clock, SharedFile

# posix and _signal, not os and signal: what those add on top of them (path helpers, enums) is a
# megabyte the supervisor does not need; so its states are named constants, as h11's are. And
# typing.TYPE_CHECKING would import typing (mypy takes any TYPE_CHECKING for true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from typing import ClassVar
else:
    import _signal as signal

# A serving process still running this long after the graceful timeout is killed: its own
# shutdown keeps the deadline (plus a second for cancelled tasks), so it is hung.
KILL_AFTER = 5.0
# After a second Ctrl+C, the serving processes have this long to exit before they are killed.
FORCED_EXIT = 2.0

INFO, WARNING, ERROR = 20, 30, 40
_LEVEL_NAMES = {INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}

# A serving process's first lines: its options and the path it imports from are in the memory
# file launch.py wrote (the same file for every serving process, read, never written).
_SERVING = (
    "import json, os, sys; fd = int(sys.argv[1]); "
    "payload = json.loads(os.pread(fd, os.fstat(fd).st_size, 0)); "
    "sys.path[:] = payload['sys_path']; "
    "from interpserve.serving import supervised_main; supervised_main(payload, sys.argv[1:])"
)


class Plan:
    """What launch.py tells the supervisor: on its command line, as name=value words."""

    __slots__ = (
        "graceful",
        "listen_fds",
        "listening",
        "log_format",
        "log_threshold",
        "metrics_fds",
        "payload_fd",
        "uds",
        "workers",
    )

    def __init__(
        self,
        *,
        payload_fd: int,
        listen_fds: tuple[int, ...],
        workers: tuple[int, ...],
        metrics_fds: tuple[int, ...] = (),
        graceful: float | None = None,
        log_threshold: int = INFO,
        log_format: str = "text",
        listening: str = "",
        uds: str = "",
    ) -> None:
        self.payload_fd = payload_fd  # the serving processes' options (launch.py)
        self.listen_fds = listen_fds
        self.workers = workers  # per serving process: one serving process for each
        self.metrics_fds = metrics_fds  # per serving process, if --metrics-port
        self.graceful = graceful  # --timeout-graceful-shutdown
        self.log_threshold = log_threshold
        self.log_format = log_format  # --log-format
        self.listening = listening  # the "Listening on" line
        self.uds = uds  # a Unix socket path to remove at exit

    def to_args(self) -> list[str]:
        def words(values: tuple[int, ...]) -> str:
            return ",".join(map(str, values))

        graceful = "none" if self.graceful is None else repr(self.graceful)
        return [
            f"payload_fd={self.payload_fd}",
            f"listen_fds={words(self.listen_fds)}",
            f"workers={words(self.workers)}",
            f"metrics_fds={words(self.metrics_fds)}",
            f"graceful={graceful}",
            f"log_threshold={self.log_threshold}",
            f"log_format={self.log_format}",
            f"listening={self.listening}",
            f"uds={self.uds}",
        ]

    @classmethod
    def from_args(cls, args: list[str]) -> Plan:
        values = {}
        for arg in args:
            name, _, value = arg.partition("=")
            values[name] = value

        def numbers(name: str) -> tuple[int, ...]:
            return tuple(int(word) for word in values[name].split(",") if word)

        graceful = values["graceful"]
        return cls(
            payload_fd=int(values["payload_fd"]),
            listen_fds=numbers("listen_fds"),
            workers=numbers("workers"),
            metrics_fds=numbers("metrics_fds"),
            graceful=None if graceful == "none" else float(graceful),
            log_threshold=int(values["log_threshold"]),
            log_format=values["log_format"],
            listening=values["listening"],
            uds=values["uds"],
        )


class _Named:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class Phase(_Named):
    """A serving process's state."""

    STARTING: ClassVar[Phase]  # started, not ready yet
    SERVING: ClassVar[Phase]  # accepting connections
    RETIRING: ClassVar[Phase]  # told to stop: draining


class Why(_Named):
    """Why a serving process was started."""

    FIRST: ClassVar[Why]
    RESTART: ClassVar[Why]  # the one before it died
    RELOAD: ClassVar[Why]
    REPLACE: ClassVar[Why]  # the one before it asked (control.REPLACE)


Phase.STARTING, Phase.SERVING, Phase.RETIRING = map(Phase, ("STARTING", "SERVING", "RETIRING"))
Why.FIRST, Why.RESTART, Why.RELOAD, Why.REPLACE = map(
    Why, ("FIRST", "RESTART", "RELOAD", "REPLACE")
)


class Child:
    """A serving process, and the supervisor's end of its pipes."""

    __slots__ = (
        "kill_at",
        "lifeline",
        "messages",
        "phase",
        "pid",
        "polled",
        "ready_at",
        "slot",
        "unread",
    )

    def __init__(self, pid: int, slot: Slot, messages: int, lifeline: int) -> None:
        self.pid = pid
        self.slot = slot
        self.phase = Phase.STARTING
        self.messages = messages  # what it says (read end)
        self.polled = True  # until its messages end (it is exiting)
        self.lifeline = lifeline  # held open: it reads as closed when the supervisor is gone
        self.ready_at = 0.0
        self.kill_at: float | None = None  # killed then if it has not exited
        self.unread = b""  # the start of a message cut by the end of a read


class Slot:
    """The place of one serving process: the one serving there, the one starting to take over,
    and what the next one is started with."""

    __slots__ = (
        "burst_replacements",
        "crash_loop",
        "index",
        "last_pid",
        "metrics_fd",
        "replace_after",
        "restart_at",
        "serving",
        "starting",
        "why",
        "workers",
    )

    def __init__(self, index: int, workers: int, metrics_fd: int) -> None:
        self.index = index
        self.workers = workers
        self.metrics_fd = metrics_fd
        self.serving: Child | None = None
        self.starting: Child | None = None
        self.why = Why.FIRST  # why `starting` was started
        self.last_pid = 0  # of the last one that exited
        self.crash_loop = CrashLoop()
        self.restart_at: float | None = None  # a restart waiting out the crash loop's delay
        self.replace_after = 0.0  # a replacement that failed is not asked again before this
        self.burst_replacements = BurstReplacements()


class Supervisor:
    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        metrics = plan.metrics_fds or (-1,) * len(plan.workers)
        self._slots = [Slot(i, n, metrics[i]) for i, n in enumerate(plan.workers)]
        self._children: dict[int, Child] = {}  # by pid
        self._by_fd: dict[int, Child] = {}  # by the fd of its messages
        self._poll = select.poll()
        self._signals = -1  # the pipe signal numbers arrive on (signal.set_wakeup_fd)
        self._kind = "-"  # the worker kind, once the first serving process has said it
        self._stopping = False
        self._listening = False  # every slot has served: the "Listening on" line was said
        self._reload_again = False  # a reload was asked for while one was under way
        self._listen_fds = list(plan.listen_fds)
        self._exit_code = 0
        self._stderr = SharedFile(2)
        self._clock = Clock()

    def run(self) -> int:
        """Serve until stopped; the exit code."""
        restore = self._install_signals()
        self._log(INFO, f"Started supervisor process [{posix.getpid()}]")
        for slot in self._slots:
            self._start(slot, Why.FIRST)
        while self._children or (not self._stopping and self._restart_pending()):
            self._wait()
            self._reap()
            self._due()
        restore()
        self._close_listeners()
        if self._plan.uds:
            try:  # noqa: SIM105 (contextlib would cost the supervisor memory)
                posix.unlink(self._plan.uds)
            except FileNotFoundError:
                pass
        return self._exit_code

    # Signals, by name

    def handle_int(self) -> None:
        if not self._stopping:
            self._stop()
            return
        # Ctrl+C again: the serving processes exit at once (they say so).
        self._exit_code = 1
        for child in self._children.values():
            self._signal(child, signal.SIGINT)
            child.kill_at = self._now() + FORCED_EXIT

    def handle_term(self) -> None:
        if not self._stopping:
            self._stop()
        else:
            self._log(INFO, "Received SIGTERM again: still draining (Ctrl+C exits at once).")

    def handle_hup(self) -> None:
        self._log(INFO, "Received SIGHUP: starting new serving processes.")
        self._reload()

    def handle_ttin(self) -> None:
        serving = [slot for slot in self._slots if slot.serving is not None]
        if serving:
            slot = min(serving, key=lambda s: s.workers)
            slot.workers += 1  # what its successor starts with, if a reload comes first
            assert slot.serving is not None
            self._signal(slot.serving, signal.SIGTTIN)

    def handle_ttou(self) -> None:
        serving = [slot for slot in self._slots if slot.serving is not None]
        if serving:
            slot = max(serving, key=lambda s: s.workers)
            slot.workers = max(1, slot.workers - 1)
            assert slot.serving is not None
            self._signal(slot.serving, signal.SIGTTOU)

    def handle_chld(self) -> None:
        self._reap()

    # Serving processes

    def _start(self, slot: Slot, why: Why) -> None:
        """Start a serving process in the slot: once ready, it takes over from the one there."""
        messages_r, messages_w = posix.pipe()
        lifeline_r, lifeline_w = posix.pipe()
        args = [
            sys.executable,
            "-c",
            _SERVING,
            str(self._plan.payload_fd),
            str(messages_w),
            str(lifeline_r),
            str(slot.index),
            str(slot.workers),
            self._kind,
            str(slot.metrics_fd),
        ]
        try:
            for fd in (messages_w, lifeline_r):
                posix.set_inheritable(fd, True)
            pid = self._spawn(args)
        except OSError as exc:
            posix.close(messages_r)
            posix.close(lifeline_w)
            delay = slot.crash_loop.start_failed()
            self._log(ERROR, f"Cannot start a serving process ({exc}); retrying in {delay:.1f} s.")
            slot.restart_at = self._now() + delay
            return
        finally:
            posix.close(messages_w)
            posix.close(lifeline_r)
        child = Child(pid, slot, messages_r, lifeline_w)
        slot.starting, slot.why = child, why
        self._children[pid] = child
        self._by_fd[messages_r] = child
        self._poll.register(messages_r, select.POLLIN)

    def _ready(self, child: Child, kind: str, workers: int) -> None:
        slot = child.slot
        if child is not slot.starting:
            return
        child.phase = Phase.SERVING
        child.ready_at = self._now()
        self._kind = kind
        slot.workers = workers
        old, slot.serving, slot.starting = slot.serving, child, None
        if old is not None:
            self._retire(old)
            what = "Reloaded: serving" if slot.why is Why.RELOAD else "Serving"
            self._log(INFO, f"{what} process [{child.pid}] takes over from [{old.pid}].")
        elif slot.why is Why.RESTART:
            self._log(INFO, f"Serving process [{child.pid}] replaces [{slot.last_pid}].")
        if not self._listening and all(s.serving is not None for s in self._slots):
            self._listening = True
            self._log(INFO, self._plan.listening)
        if self._reload_again and not any(s.starting for s in self._slots):
            self._reload_again = False
            self._reload()

    def _reload(self) -> None:
        if self._stopping:
            return
        if any(slot.starting for slot in self._slots):
            self._reload_again = True  # the code may have changed since that one imported it
            return
        for slot in self._slots:
            self._start(slot, Why.RELOAD)

    def _replace(self, child: Child, why: str) -> bool:
        """Whether a successor was started (not while one is, nor soon after one failed)."""
        slot = child.slot
        if self._stopping or child is not slot.serving or slot.starting:
            return False
        if self._now() < slot.replace_after:
            return False
        self._log(INFO, f"Replacing serving process [{child.pid}]: {why}.")
        self._start(slot, Why.REPLACE)
        return True

    def _replace_after_burst(self, child: Child, why: str) -> None:
        replacements = child.slot.burst_replacements
        if wait := replacements.wait(self._now()):
            self._log(
                INFO,
                f"Not replacing serving process [{child.pid}] ({why}): replaced after "
                f"{replacements.streak} bursts in a row, not again for {wait:.0f} s.",
            )
        elif self._replace(child, why):
            replacements.replaced(self._now())

    def _retire(self, child: Child, sig: int = signal.SIGTERM) -> None:
        child.phase = Phase.RETIRING
        graceful = self._plan.graceful
        child.kill_at = None if graceful is None else self._now() + graceful + KILL_AFTER
        self._signal(child, sig)

    def _stop(self) -> None:
        self._stopping = True
        # New connections are refused once the serving processes have closed theirs too.
        self._close_listeners()
        for slot in self._slots:
            slot.restart_at = None
        for child in self._children.values():
            self._retire(child)

    def _exited(self, child: Child, status: int) -> None:
        del self._children[child.pid]
        del self._by_fd[child.messages]
        if child.polled:
            self._poll.unregister(child.messages)
        posix.close(child.messages)
        posix.close(child.lifeline)
        slot = child.slot
        slot.last_pid = child.pid
        phase = child.phase
        if child is slot.serving:
            slot.serving = None
        if child is slot.starting:
            slot.starting = None
        if phase is Phase.RETIRING or self._stopping:
            return
        how = _how(posix.waitstatus_to_exitcode(status))
        if phase is Phase.STARTING:
            self._start_failed(child, how, status)
            return
        uptime = self._now() - child.ready_at
        delay = slot.crash_loop.crashed(uptime)
        restart = f"crash loop: restarting it in {delay:.1f} s" if delay else "starting another"
        level = WARNING if how == _how(0) else ERROR  # (stopped by someone else: not a crash)
        self._log(level, f"Serving process [{child.pid}] {how} after {uptime:.1f} s; {restart}.")
        if slot.starting is None:
            slot.restart_at = self._now() + delay

    def _start_failed(self, child: Child, how: str, status: int) -> None:
        slot = child.slot
        if not self._listening and slot.why is Why.FIRST:
            # The server cannot start (it has said why): stop, with its exit code.
            self._exit_code = max(posix.waitstatus_to_exitcode(status), 1)
            self._stop()
            return
        delay = slot.crash_loop.start_failed()
        if slot.serving is not None:
            old = slot.serving.pid
            if slot.why is Why.RELOAD:
                self._log(
                    ERROR, f"Reload failed: the new serving process {how}; [{old}] serves on."
                )
            else:
                slot.replace_after = self._now() + delay
                self._log(
                    ERROR,
                    f"The serving process started to replace [{old}] {how}; [{old}] serves on.",
                )
            return
        self._log(ERROR, f"Serving process [{child.pid}] {how}; retrying in {delay:.1f} s.")
        slot.restart_at = self._now() + delay

    def _message(self, child: Child, line: bytes) -> None:
        word, rest = control.decode(line)
        if word == control.READY:
            kind, workers = rest.split()
            self._ready(child, kind, int(workers))
        elif word == control.WORKERS:
            child.slot.workers = int(rest)
        elif word == control.REPLACE:
            self._replace(child, rest)
        elif word == control.AFTER_BURST:
            self._replace_after_burst(child, rest)
        elif word == control.RELOAD and child.phase is Phase.SERVING:
            self._reload()

    # The loop

    def _install_signals(self) -> Callable[[], None]:
        """Queue the signals it handles on a pipe; returns what puts things back as they were
        (for interpserve.run(), whose caller's process goes on)."""
        self._signals, wakeup = posix.pipe()
        posix.set_blocking(wakeup, False)
        previous_wakeup = signal.set_wakeup_fd(wakeup)
        previous = {number: signal.signal(number, _queued) for number in _SIGNALS}
        # launch.py held them back while this program started; they come now, and the
        # serving processes start with none held back.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        self._poll.register(self._signals, select.POLLIN)

        def restore() -> None:
            for number, handler in previous.items():
                signal.signal(number, handler)
            signal.set_wakeup_fd(previous_wakeup)
            self._poll.unregister(self._signals)
            posix.close(self._signals)
            posix.close(wakeup)

        return restore

    def _wait(self) -> None:
        timeout = self._next_due()
        for fd, _ in self._poll.poll(None if timeout is None else max(timeout, 0.0) * 1000):
            if fd == self._signals:
                for number in posix.read(fd, 256):
                    getattr(self, f"handle_{_SIGNALS[number]}")()
            elif (child := self._by_fd.get(fd)) is not None:
                self._read(child)

    def _read(self, child: Child) -> None:
        data = posix.read(child.messages, 4096)
        if not data:
            self._poll.unregister(child.messages)  # it is exiting: reaped on SIGCHLD
            child.polled = False
            return
        *lines, child.unread = (child.unread + data).split(b"\n")
        for line in lines:
            self._message(child, line)

    def _reap(self) -> None:
        if posix.getpid() != 1:
            for child in list(self._children.values()):
                pid, status = posix.waitpid(child.pid, posix.WNOHANG)
                if pid:
                    self._exited(child, status)
            return
        # A container's init: processes orphaned below it (a killed serving process's workers,
        # on their way out) are its children too, and must not stay zombies.
        while True:
            try:
                pid, status = posix.waitpid(-1, posix.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if (exited := self._children.get(pid)) is not None:
                self._exited(exited, status)

    def _next_due(self) -> float | None:
        """Seconds until the next timed step (a restart, a kill), None if there is none."""
        times = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        times += [c.kill_at for c in self._children.values() if c.kill_at is not None]
        return min(times) - self._now() if times else None

    def _due(self) -> None:
        now = self._now()
        for slot in self._slots:
            if slot.restart_at is not None and now >= slot.restart_at and not self._stopping:
                slot.restart_at = None
                self._start(slot, Why.RESTART)
        for child in self._children.values():
            if child.kill_at is not None and now >= child.kill_at:
                child.kill_at = None
                self._log(WARNING, f"Serving process [{child.pid}] did not stop: killing it.")
                self._signal(child, signal.SIGKILL)

    def _restart_pending(self) -> bool:
        return any(slot.restart_at is not None for slot in self._slots)

    # What it does to other processes, and its clock: tests replace these.

    def _spawn(self, args: list[str]) -> int:
        return posix.posix_spawn(sys.executable, args, posix.environ)

    def _signal(self, child: Child, sig: int) -> None:
        # (It is not reaped yet, so its pid is still its own even if it has exited.)
        posix.kill(child.pid, sig)

    def _now(self) -> float:
        return time.monotonic()

    def _close_listeners(self) -> None:
        for fd in self._listen_fds:
            posix.close(fd)
        self._listen_fds = []

    def _log(self, level: int, message: str) -> None:
        """The supervisor's few lines, formatted as the serving processes' are (logs.py's
        TextFormatter and JSONFormatter) and written as theirs are (whole, under the lock)."""
        if level < self._plan.log_threshold:
            return
        name = _LEVEL_NAMES[level]
        if self._plan.log_format == "json":
            now = self._clock.format(time.time())
            line = (
                f'{{"time":"{now}","level":"{name}","logger":"interpserve.error",'
                f'"message":{json_string(message)}}}'
            )
        else:
            line = f"{name + ':':<10}{message}"
        self._stderr.write((line + "\n").encode("utf-8", "backslashreplace"))


_SIGNALS: dict[int, str] = {
    signal.SIGINT: "int",
    signal.SIGTERM: "term",
    signal.SIGHUP: "hup",
    signal.SIGTTIN: "ttin",
    signal.SIGTTOU: "ttou",
    signal.SIGCHLD: "chld",
}
HANDLED = frozenset(_SIGNALS)


def _queued(number: int, frame: object) -> None:
    """Signals are handled in the loop: set_wakeup_fd has queued the number already."""


_SIGNAL_NAMES = {
    number: name
    for name, number in vars(signal).items()
    if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(number, int)
}


def _how(code: int) -> str:
    if code < 0:
        return f"was killed by {_SIGNAL_NAMES.get(-code, f'signal {-code}')}"
    return f"exited with code {code}"


def main(args: list[str]) -> None:
    sys.exit(Supervisor(Plan.from_args(args)).run())
