"""Giving memory back once a burst of clients is over, in the front end and in each worker.

What a burst leaves behind when nothing is done about it:
- garbage in reference cycles (an exception's traceback and its frames, a framework's objects
  that point at each other) outlives the burst: the collector's oldest generation, where it
  ends up, is seldom collected once allocations have stopped;
- glibc keeps what was freed in its heaps (the main one, and one per thread: every interpreter
  worker has its own) for later allocations, and returns only the top of a heap by itself.

So once a burst is over (`BurstWatch`), each interpreter runs a full collection, and the main
interpreter of each process then calls glibc's malloc_trim(0), which returns the free pages of
every heap of the process (its interpreter workers' too) to the system.

And from the start (`tune_malloc`), glibc's heaps are told when to give memory back of their own
accord. glibc moves its thresholds with what is freed: a buffer above its mmap threshold is
mapped, and once one is freed the threshold rises to its size and the top of the heap is given
back past twice that. A front end that reads up to 256 KiB at a time and frees both the read and
its body before the next one had its heap's top given back and taken again on every read, a page
fault for each page (docs/hardening.md, "The allocator's thresholds"). Fixed thresholds above
those buffers end that; what a burst leaves is still given back by the trim after it.

Nothing long-lived may be created on the way: what is, lands in the blocks the burst freed and
keeps the allocator's arenas they belong to (1 MiB each, returned only once wholly empty). So
the trim is compiled (_speedups.c) rather than reached through ctypes, and the watch is told
whether to trim instead of asking CPython which interpreter it runs in (docs/hardening.md).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from functools import cache

from interpserve.compiled import speedups

# How often a watch looks at what is in use. A burst is over when that has fallen to a quarter of
# its peak and stayed there for a look or more (see BurstWatch).
CHECK_INTERVAL = 1.0
_FALLEN = 4


# Buffers below this come from a heap, never mapped one by one (tune_malloc).
MMAP_LEAST = 1 << 20
# The free top of a heap is given back by itself only past this (tune_malloc).
TRIM_LEAST = 2 << 20
# mallopt's parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@cache
def _libc(name: str) -> Callable[..., int] | None:
    """A glibc function through ctypes, or None where the C library has none (musl, macOS).
    Loaded on first use, and only where _speedups is not built: ctypes costs memory."""
    import ctypes

    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


def malloc_trim() -> bool | None:
    """Return the free pages of every C heap of the process to the system: whether any were
    returned, or None where the C library cannot."""
    trim = _libc("malloc_trim")
    return None if trim is None else bool(trim(0))


def set_malloc_thresholds(mmap_least: int, trim_least: int) -> bool | None:
    """Fix glibc's mmap and trim thresholds for every heap of the process: whether glibc took
    both, or None where the C library has no mallopt."""
    mallopt = _libc("mallopt")
    if mallopt is None:
        return None
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_least)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_least)
    )


# The references: their C twins in _speedups.c must match them (tests/test_speedups.py).
python_malloc_trim = malloc_trim
python_set_malloc_thresholds = set_malloc_thresholds
if speedups is not None:
    malloc_trim = speedups.malloc_trim
    set_malloc_thresholds = speedups.set_malloc_thresholds


def tune_malloc() -> bool | None:
    """The thresholds of the module's docstring, set once by each process's main interpreter
    before it serves (set_malloc_thresholds)."""
    return set_malloc_thresholds(MMAP_LEAST, TRIM_LEAST)


def release_memory(trim: bool) -> None:
    """Collect this interpreter's garbage in cycles; with `trim` (a process's main interpreter,
    once its other interpreters have collected theirs), return the C heaps' free pages to the
    system as well."""
    gc.collect()
    if trim:
        malloc_trim()


class BurstWatch:
    """Calls release_memory(trim) once a burst is over: when what `in_use` counts (connections,
    bytes buffered, requests in flight) has risen to `burst` or more, then fallen to a quarter
    of that peak and stayed there for `quiet_looks` more looks. (The front end waits a look
    longer than its interpreter workers: they have collected their garbage by the time the
    process trims its heaps.) It looks every CHECK_INTERVAL seconds rather than at every
    change, so the request path pays nothing for it; `note` tells it of a peak between two
    looks. `on_release` is called after each release (the serving process then checks what it
    still holds: leftover.py)."""

    def __init__(
        self, in_use: Callable[[], int], burst: int, *, trim: bool, quiet_looks: int = 1
    ) -> None:
        self._in_use = in_use
        self._trim = trim
        self._burst = burst
        self._quiet_looks = quiet_looks
        self._peak = 0
        self._fallen = 0  # looks in a row that found it fallen
        self._timer: asyncio.TimerHandle | None = None
        self.on_release: Callable[[], None] | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(CHECK_INTERVAL, self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def note(self, in_use: int) -> None:
        if in_use > self._peak:
            self._peak = in_use

    def quiet(self) -> bool:
        """No burst under way: none seen since the last release, and no more than a quarter of
        one in use now."""
        return self._peak < self._burst and self._in_use() * _FALLEN <= self._burst

    def _look(self) -> None:
        in_use = self._in_use()
        self.note(in_use)
        if self._peak >= self._burst and in_use * _FALLEN <= self._peak:
            self._fallen += 1
        else:
            self._fallen = 0
        if self._fallen > self._quiet_looks:
            self._peak, self._fallen = in_use, 0
            release_memory(self._trim)
            if self.on_release is not None:
                self.on_release()
        self.start()
