"""What an HTTP/2 peer can make the front end do for free, counted and bounded.

Every HTTP/2 frame costs the front end's one loop some Python, whether or not it brings a
request: a PING or SETTINGS frame makes the server queue an answer, an empty DATA frame, a
PRIORITY frame or a frame on a closed stream is parsed for nothing, and a stream opened and
reset at once (CVE-2023-44487, "rapid reset") sends a request to a worker that nobody waits
for. Each such frame fills a meter that drains with time (and, for resets, with every request
answered); a peer that overflows one gets GOAWAY ENHANCE_YOUR_CALM. (A field block is bounded
in bytes and frames while its CONTINUATION frames arrive, CVE-2024-27316, before HPACK decodes
any of it: http2_connection.py.)
"""

from __future__ import annotations

from collections.abc import Callable

# Streams the client resets before their response is complete: a burst this large, and this
# many a second after it (beyond what answered requests make up for).
RAPID_RESET_BURST = 200
RAPID_RESET_RATE = 100.0
# Frames that carry no request (PING, SETTINGS, PRIORITY, empty DATA, WINDOW_UPDATE with
# nothing waiting for it, unknown types, frames on closed streams): a burst this large, and
# this many a second after it.
IDLE_FRAME_BURST = 1000
IDLE_FRAME_RATE = 100.0


class FloodMeter:
    """A leaky bucket: `add` fills it by one and says whether it overflowed; it drains at
    `rate` a second (measured with `clock`), and by `relieve`."""

    def __init__(self, burst: int, rate: float, clock: Callable[[], float]) -> None:
        self._burst = burst
        self._rate = rate
        self._clock = clock
        self._level = 0.0
        self._at = clock()

    def add(self) -> bool:
        now = self._clock()
        self._level = max(self._level - (now - self._at) * self._rate, 0.0) + 1
        self._at = now
        return self._level > self._burst

    def relieve(self) -> None:
        if self._level:  # (it is empty but for a peer that fills it)
            self._level = max(self._level - 1, 0.0)
