"""The supervisor's decisions in memory: a supervisor whose processes are only pids it is told
about, whose signals are recorded, and whose clock a test moves. What its serving processes say
goes through control.py's lines, what happens to them through the exit statuses waitpid gives.
(The same supervisor against real processes: tests/e2e/test_process_model.py.)"""

from __future__ import annotations

import signal

import pytest

from interpserve import control
from interpserve.supervisor import FORCED_EXIT, KILL_AFTER, Child, Phase, Plan, Supervisor, Why

LISTENING = "Listening on http://127.0.0.1:8000 (Press CTRL+C to quit)"
# Where a serving process's command line has its worker count and its worker kind: after the
# interpreter, -c and its code, the options file, its two pipes and its slot.
WORKERS, KIND = 7, 8


class Recorded(Supervisor):
    """Nothing is started: each serving process is a new pid, each signal a record."""

    def __init__(self, workers: tuple[int, ...] = (2,), graceful: float | None = 10.0) -> None:
        super().__init__(
            Plan(
                payload_fd=-1,
                listen_fds=(),
                workers=workers,
                graceful=graceful,
                listening=LISTENING,
            )
        )
        self.clock = 100.0
        self.started: list[list[str]] = []  # each serving process's command line
        self.signals: list[tuple[int, int]] = []  # (pid, signal)
        self.lines: list[str] = []

    def _spawn(self, args: list[str]) -> int:
        self.started.append(args)
        return 1000 + len(self.started)

    def _signal(self, child: Child, sig: int) -> None:
        self.signals.append((child.pid, sig))

    def _now(self) -> float:
        return self.clock

    def _log(self, level: int, message: str) -> None:
        self.lines.append(message)

    # Driving it

    def begin(self) -> list[int]:
        for slot in self._slots:
            self._start(slot, Why.FIRST)
        return self.pids()

    def pids(self) -> list[int]:
        return sorted(self._children)

    def says(self, pid: int, word: str, *args: object) -> None:
        self._message(self._children[pid], control.encode(word, *args).rstrip(b"\n"))

    def ready(self, pid: int, workers: int = 2) -> None:
        self.says(pid, control.READY, "interpreter", workers)

    def exits(self, pid: int, code: int) -> None:
        """It exited with `code`, or was killed by signal -`code`."""
        self._exited(self._children[pid], code << 8 if code >= 0 else -code)

    def later(self, seconds: float) -> None:
        self.clock += seconds
        self._due()

    def phase(self, pid: int) -> Phase:
        return self._children[pid].phase

    def after_start(self, pid: int, index: int) -> str:
        """What the serving process with this pid was started with (see supervisor._SERVING)."""
        return self.started[pid - 1001][index]


@pytest.fixture
def supervisor() -> Recorded:
    return Recorded()


def test_listening_is_said_once_every_serving_process_is_ready() -> None:
    supervisor = Recorded(workers=(2, 1))
    first, second = supervisor.begin()
    assert (
        supervisor.after_start(first, WORKERS) == "2"
        and supervisor.after_start(second, WORKERS) == "1"
    )
    supervisor.ready(first)
    assert LISTENING not in supervisor.lines
    supervisor.ready(second, 1)
    assert supervisor.lines.count(LISTENING) == 1


def test_the_worker_kind_found_first_is_given_to_the_next(supervisor: Recorded) -> None:
    (first,) = supervisor.begin()
    assert supervisor.after_start(first, KIND) == "-"  # unknown yet: it probes the app
    supervisor.says(first, control.READY, "process", 2)
    supervisor.handle_hup()
    (_, second) = supervisor.pids()
    assert supervisor.after_start(second, KIND) == "process"


def test_a_crash_is_restarted_at_once_and_a_crash_loop_waits(supervisor: Recorded) -> None:
    (first,) = supervisor.begin()
    supervisor.ready(first)
    supervisor.later(60)
    supervisor.exits(first, -signal.SIGSEGV)
    assert any(
        "was killed by SIGSEGV after 60.0 s; starting another" in li for li in supervisor.lines
    )
    supervisor.later(0)
    (second,) = supervisor.pids()
    supervisor.ready(second)
    assert f"Serving process [{second}] replaces [{first}]." in supervisor.lines
    # Within seconds of becoming ready: a crash loop, whose second restart waits 0.5 s.
    supervisor.later(1)
    supervisor.exits(second, 1)
    supervisor.later(0)
    (third,) = supervisor.pids()
    supervisor.ready(third)
    supervisor.later(1)
    supervisor.exits(third, 1)
    assert any("crash loop: restarting it in 0.5 s" in line for line in supervisor.lines)
    supervisor.later(0.4)
    assert supervisor.pids() == []
    supervisor.later(0.1)
    assert len(supervisor.pids()) == 1


def test_a_restart_that_fails_is_retried_with_backoff(supervisor: Recorded) -> None:
    (first,) = supervisor.begin()
    supervisor.ready(first)
    supervisor.exits(first, 1)
    supervisor.later(0)
    (second,) = supervisor.pids()
    supervisor.exits(second, 1)  # before it was ready
    assert supervisor.pids() == []
    supervisor.later(0.5)
    assert len(supervisor.pids()) == 1


def test_a_first_start_that_fails_stops_the_server_with_its_code() -> None:
    supervisor = Recorded(workers=(1, 1))
    first, second = supervisor.begin()
    supervisor.ready(second, 1)
    supervisor.exits(first, 1)
    assert supervisor._exit_code == 1
    assert supervisor.signals == [(second, signal.SIGTERM)]
    supervisor.exits(second, 0)
    supervisor.later(10)
    assert supervisor.pids() == []  # nothing restarted


def test_a_reload_takes_over_once_ready_and_the_old_one_drains(supervisor: Recorded) -> None:
    (old,) = supervisor.begin()
    supervisor.ready(old)
    supervisor.handle_hup()
    (_, new) = supervisor.pids()
    assert supervisor.phase(old) is Phase.SERVING and supervisor.signals == []
    supervisor.ready(new)
    assert supervisor.signals == [(old, signal.SIGTERM)]
    assert supervisor.phase(old) is Phase.RETIRING
    assert f"Reloaded: serving process [{new}] takes over from [{old}]." in supervisor.lines
    supervisor.exits(old, 0)  # drained: no restart
    supervisor.later(10)
    assert supervisor.pids() == [new]


def test_a_reload_that_fails_leaves_the_old_one_serving(supervisor: Recorded) -> None:
    (old,) = supervisor.begin()
    supervisor.ready(old)
    supervisor.handle_hup()
    (_, new) = supervisor.pids()
    supervisor.exits(new, 1)
    assert any(li.startswith("Reload failed: the new serving process") for li in supervisor.lines)
    assert supervisor.pids() == [old] and supervisor.signals == []
    supervisor.later(60)
    assert supervisor.pids() == [old]


def test_a_reload_asked_for_during_one_follows_it(supervisor: Recorded) -> None:
    (old,) = supervisor.begin()
    supervisor.ready(old)
    supervisor.handle_hup()
    supervisor.handle_hup()
    supervisor.handle_hup()
    assert len(supervisor.started) == 2  # the others wait for this one
    supervisor.ready(supervisor.pids()[-1])
    assert len(supervisor.started) == 3  # one more, for the code as it is now


def test_stop_signals_every_serving_process_once_and_a_second_ctrl_c_forces(
    supervisor: Recorded,
) -> None:
    (first,) = supervisor.begin()
    supervisor.ready(first)
    supervisor.handle_hup()
    (_, starting) = supervisor.pids()
    supervisor.handle_int()
    assert supervisor.signals == [(first, signal.SIGTERM), (starting, signal.SIGTERM)]
    supervisor.handle_term()
    assert "Received SIGTERM again: still draining (Ctrl+C exits at once)." in supervisor.lines
    assert len(supervisor.signals) == 2
    supervisor.handle_int()
    assert supervisor.signals[2:] == [(first, signal.SIGINT), (starting, signal.SIGINT)]
    assert supervisor._exit_code == 1
    supervisor.later(FORCED_EXIT)
    assert supervisor.signals[4:] == [(first, signal.SIGKILL), (starting, signal.SIGKILL)]


def test_a_serving_process_that_does_not_stop_is_killed(supervisor: Recorded) -> None:
    (first,) = supervisor.begin()
    supervisor.ready(first)
    supervisor.handle_term()
    supervisor.later(10 + KILL_AFTER - 0.1)
    assert (first, signal.SIGKILL) not in supervisor.signals
    supervisor.later(0.1)
    assert (first, signal.SIGKILL) in supervisor.signals


def test_without_a_graceful_timeout_nothing_is_killed() -> None:
    supervisor = Recorded(graceful=None)
    (first,) = supervisor.begin()
    supervisor.ready(first)
    supervisor.handle_term()
    supervisor.later(3600)
    assert supervisor.signals == [(first, signal.SIGTERM)]


def test_a_replacement_is_asked_for_once_and_not_again_soon_after_it_failed(
    supervisor: Recorded,
) -> None:
    (old,) = supervisor.begin()
    supervisor.ready(old)
    supervisor.says(old, control.REPLACE, "destroyed interpreters left 70 MiB behind")
    supervisor.says(old, control.REPLACE, "destroyed interpreters left 75 MiB behind")
    assert len(supervisor.started) == 2
    for _ in range(2):  # each fails before it is ready: a first failure is retried at once
        (_, new) = supervisor.pids()
        supervisor.exits(new, 1)
        supervisor.says(old, control.REPLACE, "destroyed interpreters left 80 MiB behind")
    assert len(supervisor.started) == 3  # the second failed just now: not before 0.5 s
    assert supervisor.pids() == [old]
    supervisor.later(0.5)
    supervisor.says(old, control.REPLACE, "destroyed interpreters left 85 MiB behind")
    (_, again) = supervisor.pids()
    supervisor.ready(again)
    assert f"Serving process [{again}] takes over from [{old}]." in supervisor.lines


def test_replacements_after_bursts_back_off(supervisor: Recorded) -> None:
    """An app that keeps what its bursts bring would be replaced after every burst: the first
    two come at once, then each waits twice as long after the one before (1 min, 2 min, ...);
    an hour without one, and they come at once again. Destroyed interpreters' leftovers are
    not held back."""
    burst = "a burst left it holding 12 MiB more than when it became ready"
    (serving,) = supervisor.begin()
    supervisor.ready(serving)

    def take_over() -> int:
        """The successor started takes over; the one before it exits. The one before."""
        nonlocal serving
        (old, serving) = supervisor.pids()
        supervisor.ready(serving)
        supervisor.exits(old, 0)
        return old

    def replaced_after_burst() -> bool:
        supervisor.says(serving, control.AFTER_BURST, burst)
        if len(supervisor.pids()) == 1:
            return False
        old = take_over()
        assert f"Replacing serving process [{old}]: {burst}." in supervisor.lines
        return True

    assert replaced_after_burst()
    supervisor.later(5)
    assert replaced_after_burst()  # the second at once too
    supervisor.later(5)
    assert not replaced_after_burst()
    assert supervisor.lines[-1] == (
        f"Not replacing serving process [{serving}] ({burst}): replaced after 2 bursts in a "
        "row, not again for 55 s."
    )
    supervisor.says(serving, control.REPLACE, "destroyed interpreters left 9 MiB behind")
    take_over()
    supervisor.later(55)
    assert replaced_after_burst()
    supervisor.later(119)
    assert not replaced_after_burst()  # the next gap is 2 minutes
    supervisor.later(1)
    assert replaced_after_burst()
    supervisor.later(3600)
    assert replaced_after_burst()
    assert replaced_after_burst()


def test_sigttin_and_sigttou_reach_the_serving_process_with_the_fewest_and_most_workers() -> None:
    supervisor = Recorded(workers=(2, 1))
    first, second = supervisor.begin()
    supervisor.ready(first, 2)
    supervisor.ready(second, 1)
    supervisor.handle_ttin()
    assert supervisor.signals == [(second, signal.SIGTTIN)]
    supervisor.says(second, control.WORKERS, 2)
    supervisor.handle_ttin()
    supervisor.handle_ttou()
    assert supervisor.signals[1:] == [(first, signal.SIGTTIN), (first, signal.SIGTTOU)]
    supervisor.handle_hup()  # the next serving processes keep the counts
    assert [supervisor.started[-2][WORKERS], supervisor.started[-1][WORKERS]] == ["2", "2"]


def test_a_reload_from_a_serving_process_not_serving_yet_is_ignored(supervisor: Recorded) -> None:
    (first,) = supervisor.begin()
    supervisor.says(first, control.RELOAD, "changes")
    assert len(supervisor.started) == 1
    supervisor.ready(first)
    supervisor.says(first, control.RELOAD, "changes")
    assert len(supervisor.started) == 2
