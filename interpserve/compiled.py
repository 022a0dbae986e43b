"""The compiled versions of the hottest pure functions (`_speedups.c`), or None.

None where the module was not built (pip builds it where a C compiler is found, and installs
without it otherwise) or where INTERPSERVE_NO_SPEEDUPS is set, which compares the two or rules
the compiled code out. Either way the server behaves the same: the Python versions in `wire.py`
and `frontend/response.py` are the reference, and tests/test_speedups.py holds the compiled ones
to them.
"""

from __future__ import annotations

import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("INTERPSERVE_NO_SPEEDUPS"):
        return None
    try:
        from interpserve import _speedups
    except ImportError:
        return None
    return _speedups


speedups = _load()
