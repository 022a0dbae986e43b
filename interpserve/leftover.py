"""--limit-max-leftover: memory a serving process keeps but no longer uses, and when it asks its
supervisor for a fresh process because of it (serving.py). The supervisor replaces it without
downtime, and the fresh one starts from what a process holds when it becomes ready.

Two things leave such memory behind:
- CPython 3.13.0 keeps part of every interpreter it destroys: checked after each destroy;
- a burst of clients, even once it is over and the front end has given back what it could
  (memory.BurstWatch): CPython's allocator frees an arena only once every object in it is gone,
  and the few objects that outlive a burst keep the arenas it filled (docs/hardening.md, "What
  keeps the arenas"). Checked a look after the front end's release, so that the workers' own
  releases (a look ahead of it) have acted too, and only while the front end is quiet and no
  worker is on its way in or out of the pool: a successor starting is not memory left over.
  Nor while a WebSocket is open: the replacement would close it with 1012 (service restart),
  and a chat's clients would all reconnect after every burst.

Both measure the same: the tree of the serving process (itself and its process workers, whose
memory is in their own processes), now against when it became ready.

A burst is blamed only if, before it began, the tree held no more than the limit above where it
started: memory that an app keeps from ordinary traffic (a cache) is the app's, and a fresh
process would only fill it again. So the tree is read at every quiet look, a few reads of /proc
a second and nothing per request. How often bursts may replace the process in all is the
supervisor's to bound (backoff.BurstReplacements): only it sees one process follow another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum, auto

from interpserve.memory import CHECK_INTERVAL

MIB = 1024 * 1024
# The limit's default, as a share of the tree's RSS when it became ready: over any number of
# recycles and bursts, memory stays within this of where it started.
LEFTOVER_SHARE = 0.1
# The check after a release comes at the second look from it: at least a look later.
_LOOKS_TO_CHECK = 2


class Leftover(Enum):
    """What left the memory behind: the supervisor bounds how often bursts replace a process."""

    DESTROYED_INTERPRETERS = auto()
    BURST = auto()


class LeftoverWatch:
    """Calls `replace(leftover, why)` when the serving process should be replaced: its tree,
    as `tree_rss` reads it, has grown by more than the limit since `ready`. `quiet` says whether
    the front end has no burst under way, `settled` whether the pool has no worker passing, and
    `replaceable` whether a fresh process may take over now (no WebSocket open: a replacement
    would close it); while it may not, the check after a burst waits."""

    def __init__(
        self,
        limit_mib: int | None,
        tree_rss: Callable[[], int],
        *,
        quiet: Callable[[], bool],
        settled: Callable[[], bool],
        replaceable: Callable[[], bool],
        replace: Callable[[Leftover, str], None],
    ) -> None:
        self._limit_mib = limit_mib  # None: LEFTOVER_SHARE of the tree at ready
        self._tree_rss = tree_rss
        self._quiet = quiet
        self._settled = settled
        self._replaceable = replaceable
        self._replace = replace
        self._at_ready = 0  # 0 until ready, or if /proc cannot be read: nothing is checked
        self._allowed = 0
        self._before = 0  # the tree at the last quiet look: once a burst begins, before it
        self._check_in = 0  # looks until the check after a release; 0: none due
        self._timer: asyncio.TimerHandle | None = None

    def ready(self) -> None:
        """The serving process has become ready: what its tree holds now is where it starts."""
        self._at_ready = self._before = self._tree_rss()
        limit = self._limit_mib
        self._allowed = int(self._at_ready * LEFTOVER_SHARE) if limit is None else limit * MIB
        if self._at_ready:
            self._timer = asyncio.get_running_loop().call_later(CHECK_INTERVAL, self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def destroyed(self) -> None:
        """An interpreter worker was destroyed."""
        if grown := self._grown():
            self._replace(
                Leftover.DESTROYED_INTERPRETERS,
                f"destroyed interpreters left {grown / MIB:.0f} MiB behind (--limit-max-leftover)",
            )

    def released(self) -> None:
        """The front end has given back what a burst left (memory.BurstWatch.on_release)."""
        self._check_in = _LOOKS_TO_CHECK

    def _look(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(CHECK_INTERVAL, self._look)
        if not self._quiet():
            self._check_in = 0  # another burst: its own release will call for the check
        elif not self._settled():
            pass  # a worker passing holds memory that is not left over: wait for it
        elif self._check_in:
            if self._check_in > 1 or self._replaceable():
                self._check_in -= 1
                if not self._check_in:
                    self._after_burst()
        else:
            self._before = self._tree_rss()

    def _after_burst(self) -> None:
        if (grown := self._grown()) and self._before - self._at_ready <= self._allowed:
            self._replace(
                Leftover.BURST,
                f"a burst left it holding {grown / MIB:.0f} MiB more than when it became ready "
                "(--limit-max-leftover)",
            )

    def _grown(self) -> int:
        """How much the tree has grown since ready if more than the limit, else 0."""
        if not self._at_ready:
            return 0
        grown = self._tree_rss() - self._at_ready
        return grown if grown > self._allowed else 0
