"""The front end's one memory budget (--limit-buffers): what it holds for its clients' traffic,
summed over every connection, so that many clients together cannot take more of the server's
memory than the operator allows. Each transfer has a window of its own too (cycle.py), which
bounds it alone, as uvicorn's per-connection high-water mark does; the budget bounds the sum,
as nginx does.

What counts against it (`reserve`, `release`):
- request body bytes, from the socket until the app has received them (read ahead, on their
  way to the worker, waiting in it for the app's receive());
- response bytes written to a client whose socket has not taken them yet, and WebSocket
  message bytes both ways, the same way;
- the part of a window widened beyond the small one it started with (`widen`): what its worker
  may send on before the client, or its app, has taken it. While the budget is spent, a
  response's window narrows below that, as its client takes what it was sent (`narrow`,
  cycle.py): a client that reads slowly holds its whole window in the front end;
- frames waiting to be written to a worker that does not read its pipe.

When the budget is spent (`spent`), no window widens (`widen`, `has_room`), and a connection
that holds bytes already does not read more (`wait`): it stops reading its socket, so the client
is held back by TCP itself and loses nothing. As room comes back, the connections waiting are
resumed in the order they began to wait, as many as the room allows. A connection that holds
nothing always reads, a request head or what its app is waiting for: the budget slows clients
down, it never stops one for good, nor a plain request behind uploads.

An HTTP/2 connection (one socket, many streams) uses it the same way: each stream's data is
reserved as it is read and released as its app receives it, a stream's window widens only
while `has_room`, and the connection waits before it reads its socket while the budget is spent
and its streams hold bytes.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

logger = logging.getLogger("interpserve.error")

# The operator hears of a spent budget at once, and then at most this often while it lasts.
_WARN_INTERVAL = 60.0


class Waiter(Protocol):
    """A connection that stopped reading for want of room."""

    def room_available(self) -> None:
        """There is room again: read on (and wait again if that fills it)."""
        ...


class MemoryBudget:
    def __init__(self, limit: int, read_size: int) -> None:
        self.limit = limit
        # The most a connection reads at once: how much room one resumed waiter may take.
        self._read_size = read_size
        self.held = 0
        self._waiting: dict[Waiter, None] = {}  # in the order they began to wait
        self._warned_at = -_WARN_INTERVAL

    @property
    def spent(self) -> bool:
        return self.held >= self.limit

    def reserve(self, size: int) -> None:
        held = self.held
        self.held = held + size
        if held < self.limit <= self.held:
            self._warn()

    def release(self, size: int) -> None:
        self.held -= size
        if self._waiting and self.held < self.limit:
            self._resume_waiting()

    def change(self, delta: int) -> None:
        """Reserve `delta` bytes, or release them if it is negative."""
        if delta > 0:
            self.reserve(delta)
        elif delta < 0:
            self.release(-delta)

    def has_room(self, size: int) -> bool:
        return self.held + size <= self.limit

    def widen(self, window: int, most: int, free: int = 0) -> int:
        """A window doubled, up to `most`, if the budget has room for what that adds beyond its
        first `free` bytes (which its owner does not count), which it then holds (until the
        window's owner releases it); else the window as it is."""
        wider = min(2 * window, most)
        cost = _beyond(wider, free) - _beyond(window, free)
        if wider > window and self.has_room(cost):
            self.reserve(cost)
            return wider
        return window

    def narrow(self, window: int, narrower: int, free: int) -> int:
        """`window` made `narrower`: what the budget held of it beyond its first `free` bytes,
        and holds no more, is released."""
        self.release(_beyond(window, free) - _beyond(narrower, free))
        return narrower

    def wait(self, waiter: Waiter) -> None:
        """`waiter` has stopped reading for want of room: resume it when there is some."""
        self._waiting[waiter] = None

    def forget(self, waiter: Waiter) -> None:
        """`waiter` no longer waits (it closed, or found room by itself)."""
        self._waiting.pop(waiter, None)

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_INTERVAL:
            self._warned_at = now
            logger.warning(
                "The front end holds %d bytes for its clients, --limit-buffers: connections "
                "that hold some wait to be read until it falls (said once a minute at most).",
                self.limit,
            )

    def _resume_waiting(self) -> None:
        room = self.limit - self.held
        while self._waiting and room > 0:
            waiter = next(iter(self._waiting))
            del self._waiting[waiter]
            room -= self._read_size
            waiter.room_available()


def _beyond(window: int, free: int) -> int:
    """What the budget holds of a window whose first `free` bytes it does not count."""
    return max(window - free, 0)
