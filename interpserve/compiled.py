"""The compiled versions of the hottest pure functions (`_speedups.c`), or None.

None where the module was not built (pip builds it where a C compiler is found, and installs
without it otherwise) or where INTERPSERVE_NO_SPEEDUPS is set, which compares the two or rules
the compiled code out. Either way the server behaves the same: the Python versions in `wire.py`,
`frontend/http_grammar.py`, `frontend/response.py` and `worker/asgi.py` are the reference, and
tests/test_speedups.py holds the compiled ones to them. (One more is there for memory, not speed:
`memory.py`'s malloc_trim.)
"""

from __future__ import annotations

import os
from types import ModuleType

_DISABLED = bool(os.environ.get("INTERPSERVE_NO_SPEEDUPS"))


def _load() -> ModuleType | None:
    if _DISABLED:
        return None
    try:
        from interpserve import _speedups
    except ImportError:
        return None
    return _speedups


speedups = _load()


def missing_warning() -> str | None:
    """A line for the operator when the module is missing without being ruled out."""
    if speedups is not None or _DISABLED:
        return None
    return (
        "interpserve._speedups is not built (no C compiler when interpserve was installed): "
        "requests take the pure-Python path, about a fifth slower. Install gcc and reinstall."
    )
