"""interpserve/interpreters.py: the one path to CPython's interpreter API, on every Python."""

from __future__ import annotations

import pytest

from interpserve.errors import InterpreterFailed
from interpserve.interpreters import Interpreter, current_id


def test_runs_code_and_reports_its_exception() -> None:
    interp = Interpreter()
    try:
        assert interp.id != current_id() == 0
        interp.run("x = 6 * 7")
        with pytest.raises(InterpreterFailed, match="ZeroDivisionError"):
            interp.run("1 / 0")
    finally:
        interp.close()


def test_daemon_threads_are_allowed() -> None:
    """asgiref ends its thread executors from a daemon thread, so every Django request needs
    them: the public API of 3.14 (concurrent.interpreters.create) refuses them."""
    interp = Interpreter()
    try:
        interp.run(
            "import threading\n"
            "t = threading.Thread(target=lambda: None, daemon=True)\n"
            "t.start()\n"
            "t.join()\n"
        )
    finally:
        interp.close()
