"""What a run sends and how hard: the paths and their weights, closed loop (a number of
connections) or open loop (a rate and an arrival schedule), how long, and how many generator
processes share it. Pure data and its parsing; nothing here opens a socket."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

# A weighted mix is sent as a repeating cycle of paths; weights are reduced by their greatest
# common divisor first, and the cycle may not be longer than this.
MAX_CYCLE = 10_000


class Arrival(enum.Enum):
    """When the requests of an open-loop run are due."""

    CONSTANT = "constant"  # evenly spaced: one every 1/rate seconds
    POISSON = "poisson"  # independent arrivals: exponential gaps of mean 1/rate


@dataclass(frozen=True)
class WeightedPath:
    path: str  # as sent on the request line: path and query
    weight: int = 1


def parse_path(text: str) -> WeightedPath:
    """`/path` or `WEIGHT:/path` (a path starts with '/', so the first ':' before it can only
    separate a weight)."""
    if text.startswith("/"):
        return WeightedPath(text)
    weight, sep, path = text.partition(":")
    if not sep or not path.startswith("/") or not weight.isdigit() or int(weight) < 1:
        raise ValueError(f"{text!r}: give a path as /path or WEIGHT:/path, e.g. 90:/ 10:/cpu")
    return WeightedPath(path, int(weight))


def path_cycle(paths: Sequence[WeightedPath]) -> tuple[int, ...]:
    """The indexes of `paths` in sending order: each path as often as its weight says, spread
    out rather than in runs (smooth weighted round robin, as nginx balances upstreams), so
    that any stretch of the run carries the mix."""
    divisor = reduce(math.gcd, (p.weight for p in paths))
    weights = [p.weight // divisor for p in paths]
    total = sum(weights)
    if total > MAX_CYCLE:
        raise ValueError(f"path weights are too fine-grained (a cycle of {total:,} requests)")
    current = [0] * len(weights)
    order = []
    for _ in range(total):
        current = [c + w for c, w in zip(current, weights, strict=True)]
        chosen = max(range(len(current)), key=current.__getitem__)
        current[chosen] -= total
        order.append(chosen)
    return tuple(order)


@dataclass(frozen=True)
class Load:
    """What to send and how hard, wherever it is sent."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    # The paths of a MODULE:APP run, or overriding a URL's path; empty: the URL's own path.
    paths: tuple[WeightedPath, ...] = ()
    # Closed loop: this many connections, each sending its next request when the last answer
    # arrives.
    connections: int = 16
    # Open loop: requests per second on a schedule, whatever the answers do, on as many
    # connections as the schedule needs up to max_connections. None: closed loop.
    rate: float | None = None
    arrival: Arrival = Arrival.CONSTANT
    max_connections: int = 256
    # Generator processes sharing the load (each its own event loop and CPU).
    generators: int = 1
    # Run for `duration` seconds, or until `requests` requests have been answered or failed
    # (open loop: a window of requests / rate seconds).
    duration: float | None = 5.0
    requests: int | None = None
    warmup: float = 0.0
    timeout: float = 30.0
    # Open loop: generator processes take the real-time scheduling policy where allowed
    # (generator.py; docs/bench.md has what it buys and why it is not the default).
    realtime: bool = False

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def window(self) -> float | None:
        """The measured window of an open-loop run, in seconds."""
        if self.rate is None:
            return None
        if self.requests is not None:
            return self.requests / self.rate
        return self.duration


def share(total: int, parts: int, index: int) -> int:
    """Part `index` of `total` split as evenly as whole numbers allow among `parts`."""
    return total // parts + (1 if index < total % parts else 0)


# The default --generators is one per this many requests/s asked: about a quarter of a core
# each, so that a process the machine held back catches up on its schedule quickly (a busier
# one makes the requests due meanwhile wait longer: docs/bench.md has the measurement).
GENERATOR_RATE = 2_500
