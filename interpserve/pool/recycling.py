"""When a worker's time in rotation ends (its request limit, its lifetime, its memory limit,
each limit with its jitter), and when its successor should start so that it is ready then:
a worker takes no request past its limit, and no capacity is lost waiting for a successor."""

from __future__ import annotations

import asyncio
import enum
import random

from interpserve.config import Config

# Successors start this many times earlier than the measured start-up time says: starting
# early costs a ready worker waiting a little; starting late costs capacity.
_EARLY = 2.0


class Ending(enum.Enum):
    """Why a worker's tenure ended (the value is what the operator set)."""

    REQUESTS = "--limit-max-requests"
    LIFETIME = "--limit-max-lifetime"
    MEMORY = "--limit-max-memory"
    LEFT = "it left the rotation"  # crashed, got stuck, or a reload or SIGTTOU took it out


class Tenure:
    """One worker's time in rotation."""

    def __init__(self, config: Config, since: float) -> None:
        self.since = since
        limit = config.limit_max_requests
        if limit is not None:
            limit += random.randint(0, config.limit_max_requests_jitter)
        self.request_limit = limit
        lifetime = config.limit_max_lifetime
        if lifetime is not None:
            lifetime += random.uniform(0, config.limit_max_lifetime_jitter)
        self.ends_at = None if lifetime is None else since + lifetime
        self.ended: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        self.timers: list[asyncio.TimerHandle] = []

    def end(self, ending: Ending) -> None:
        if not self.ended.done():
            self.ended.set_result(ending)
        for timer in self.timers:
            timer.cancel()

    def successor_due(self, taken: int, now: float, start_seconds: float) -> bool:
        """Whether a successor must start now to be ready when the worker has taken its last
        request: at the rate it has been taking them, while a start-up takes `start_seconds`
        (a worker just activated counts as having served that long, not a burst's instant)."""
        assert self.request_limit is not None
        rate = taken / max(now - self.since, start_seconds)
        return taken + rate * start_seconds * _EARLY >= self.request_limit

    def successor_starts_at(self, start_seconds: float) -> float | None:
        """When a successor must start to be ready at the end of the worker's lifetime."""
        return None if self.ends_at is None else self.ends_at - start_seconds * _EARLY
