"""The one place that touches CPython's interpreter API.

One code path for every Python from 3.13: the private `_interpreters` module, which 3.13, 3.14
and 3.15 all have (3.14's public `concurrent.interpreters` is a thin layer over it). The public
module's create() takes no config and gives isolated interpreters that refuse daemon threads,
which asgiref, and so every Django request, needs; the private one takes the config. What is
tested here on 3.13 is then what runs on 3.14 and 3.15. Everything else in interpserve uses this
module, so any future change of the private API stays here.
"""

from __future__ import annotations

import _interpreters as _private

# CPython 3.13.0 can crash when several subinterpreters import _datetime for the first time at
# once (gh-136421, gh-136423); once the main interpreter has it, they do not. Starlette, Django,
# Falcon, Quart and the email package all import it.
import datetime  # noqa: F401

from interpserve.errors import InterpreterFailed


def _create() -> int:
    # Isolated: its own GIL and allocator, and only extension modules that declare support for
    # subinterpreters may load. Daemon threads are allowed: asgiref (so every Django request)
    # ends its thread executors from one.
    return _private.create(_private.new_config("isolated", allow_daemon_threads=True))


def current_id() -> int:
    """The id of the interpreter running the caller (0 is the main interpreter)."""
    return int(_private.get_current()[0])


class Interpreter:
    """An isolated subinterpreter. `run` blocks the calling thread until the code returns."""

    def __init__(self) -> None:
        self.id = _create()

    def run(self, code: str) -> None:
        """Run `code` in this interpreter on the calling thread; raise InterpreterFailed if
        it raises. Modules it imports stay imported for later calls."""
        failure = _private.exec(self.id, code)
        if failure is not None:
            raise InterpreterFailed(failure.formatted or f"{failure.type.__name__}: {failure.msg}")

    def close(self) -> None:
        _private.destroy(self.id)
