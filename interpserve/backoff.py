"""Crash-loop backoff, the same for a worker in its pool and for a serving process under the
supervisor: the first crash is restarted at once, a run of quick crashes waits longer each time.

Imports nothing: the supervisor uses it, and keeps its memory small."""

from __future__ import annotations

# Something that dies sooner than this after it became ready is part of a crash loop.
CRASH_LOOP_UPTIME = 5.0
MAX_RESTART_DELAY = 30.0


class CrashLoop:
    def __init__(self) -> None:
        self.streak = 0

    def crashed(self, uptime: float) -> float:
        """It died `uptime` seconds after it became ready: the seconds to wait before the
        restart."""
        self.streak = self.streak + 1 if uptime < CRASH_LOOP_UPTIME else 0
        return self.delay()

    def start_failed(self) -> float:
        """Its replacement did not start: the seconds to wait before the next try."""
        self.streak += 1
        return self.delay()

    def delay(self) -> float:
        """No wait for a first crash; then 0.5 s, 1 s, 2 s ... up to MAX_RESTART_DELAY."""
        if self.streak <= 1:
            return 0.0
        return float(min(MAX_RESTART_DELAY, 0.5 * 2 ** (self.streak - 2)))
