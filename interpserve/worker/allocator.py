"""What this interpreter's own allocator holds (--limit-max-memory): every interpreter worker has
an obmalloc of its own, and CPython reports its arenas through _PyObject_DebugMallocStats. Objects
larger than obmalloc's blocks come from the process's malloc and are not counted here.

ctypes is imported on the first question only: it costs every interpreter memory."""

from __future__ import annotations

import re
from typing import Any

_ARENAS = re.compile(rb"(\d+) arenas \* (\d+) bytes/arena")

_report: Any = None  # the C functions, once found; False where they cannot be


def held_bytes() -> int:
    """The bytes in this interpreter's allocator arenas; -1 where that cannot be read."""
    global _report
    if _report is None:
        _report = _find_report()
    if not _report:
        return -1
    libc, stats = _report
    import ctypes

    buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return -1
    try:
        stats(stream)
        libc.fflush(stream)
        text = ctypes.string_at(buffer, size.value)
    finally:
        libc.fclose(stream)
        libc.free(buffer)
    match = _ARENAS.search(text)
    return int(match[1]) * int(match[2]) if match else -1


def _find_report() -> Any:
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        libc.fflush.argtypes = libc.fclose.argtypes = libc.free.argtypes = [ctypes.c_void_p]
        stats = ctypes.pythonapi._PyObject_DebugMallocStats
        stats.argtypes = [ctypes.c_void_p]
    except (ImportError, OSError, AttributeError):
        return False
    return libc, stats
