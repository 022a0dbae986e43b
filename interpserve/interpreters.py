"""The one place that touches CPython's interpreter API.

Python 3.14 has the public `concurrent.interpreters` (PEP 734); 3.13 only the private
`_interpreters`. Everything else in interpserve uses this module, so the difference (and any
future change of the private API) stays here.
"""

from __future__ import annotations

# CPython 3.13.0 can crash when several subinterpreters import _datetime for the first time at
# once (gh-136421, gh-136423); once the main interpreter has it, they do not. Starlette, Django,
# Falcon, Quart and the email package all import it.
import datetime  # noqa: F401
import sys
from typing import Any

from interpserve.errors import InterpreterFailed

if sys.version_info >= (3, 14):
    from concurrent import interpreters as _public

    def _create() -> Any:
        # Isolated, with daemon threads off: Django's asgiref wants them (see the 3.13 branch),
        # and this API takes no config. Untested here: these machines have 3.13 only.
        return _public.create()

    def _exec(interp: Any, code: str) -> None:
        try:
            interp.exec(code)
        except _public.ExecutionFailed as exc:
            raise InterpreterFailed(str(exc)) from None

    def _close(interp: Any) -> None:
        interp.close()

    def _id(interp: Any) -> int:
        return int(interp.id)

    def current_id() -> int:
        """The id of the interpreter running the caller (0 is the main interpreter)."""
        return int(_public.get_current().id)

else:
    import _interpreters as _private

    def _create() -> Any:
        # Isolated: its own GIL and allocator, and only extension modules that declare
        # support for subinterpreters may load. Daemon threads are allowed: asgiref (so every
        # Django request) ends its thread executors from one.
        return _private.create(_private.new_config("isolated", allow_daemon_threads=True))

    def _exec(interp: Any, code: str) -> None:
        failure = _private.exec(interp, code)
        if failure is not None:
            raise InterpreterFailed(failure.formatted or f"{failure.type.__name__}: {failure.msg}")

    def _close(interp: Any) -> None:
        _private.destroy(interp)

    def _id(interp: Any) -> int:
        return int(interp)

    def current_id() -> int:
        """The id of the interpreter running the caller (0 is the main interpreter)."""
        return int(_private.get_current()[0])


class Interpreter:
    """An isolated subinterpreter. `run` blocks the calling thread until the code returns."""

    def __init__(self) -> None:
        self._handle = _create()
        self.id = _id(self._handle)

    def run(self, code: str) -> None:
        """Run `code` in this interpreter on the calling thread; raise InterpreterFailed if
        it raises. Modules it imports stay imported for later calls."""
        _exec(self._handle, code)

    def close(self) -> None:
        _close(self._handle)
