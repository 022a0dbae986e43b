"""Backoffs. Crash loops, the same for a worker in its pool and for a serving process under the
supervisor: the first crash is restarted at once, a run of quick crashes waits longer each time.
And the supervisor's replacements of a serving process for what bursts left behind, alike.

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


# Replacements of a serving process for what bursts left it holding (--limit-max-leftover): the
# first QUICK_BURST_REPLACEMENTS come at once, then each waits twice as long after the one before,
# from BURST_REPLACEMENT_GAP up to MAX_BURST_REPLACEMENT_GAP; once that has passed without one, they
# come at once again.
QUICK_BURST_REPLACEMENTS = 2
BURST_REPLACEMENT_GAP = 60.0
MAX_BURST_REPLACEMENT_GAP = 3600.0


class BurstReplacements:
    """How often the supervisor replaces a slot's serving process for what bursts left behind.
    An app that keeps what its requests bring in (a cache the burst filled) is left holding it
    again by the next burst: without a bound it would be replaced after every burst, its
    caches lost each time. With one, that costs what gunicorn's --max-requests restarts cost,
    at most about once an hour in the long run; the first few, the common case (what CPython's
    allocator keeps, docs/hardening.md), come at once: bursts often come in waves."""

    def __init__(self) -> None:
        self.streak = 0  # replacements so far, each within the longest gap of the one before
        self._last = float("-inf")

    def wait(self, now: float) -> float:
        """Seconds before the next one may be done; 0 for now."""
        if now - self._last >= MAX_BURST_REPLACEMENT_GAP:
            return 0.0
        return max(0.0, self._last + self._gap() - now)

    def replaced(self, now: float) -> None:
        fresh = now - self._last >= MAX_BURST_REPLACEMENT_GAP
        self.streak = 1 if fresh else self.streak + 1
        self._last = now

    def _gap(self) -> float:
        if self.streak < QUICK_BURST_REPLACEMENTS:
            return 0.0
        exponent = self.streak - QUICK_BURST_REPLACEMENTS
        return float(min(MAX_BURST_REPLACEMENT_GAP, BURST_REPLACEMENT_GAP * 2**exponent))
