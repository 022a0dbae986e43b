"""When each request of an open-loop run is due, for one generator process of several.

Times are seconds from the start of the run. With constant arrivals, process i of n takes the
requests i, i + n, i + 2n ... of the one schedule, so the processes together send exactly at
the asked rate; with Poisson arrivals each sends its own Poisson stream at rate / n, and the
sum of independent Poisson streams is a Poisson stream at the whole rate.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from interpserve.bench.load import Arrival


def due_times(
    arrival: Arrival, rate: float, until: float, index: int = 0, count: int = 1, seed: int = 0
) -> Iterator[float]:
    """The due times in [0, until), in order."""
    if rate <= 0:
        raise ValueError("the rate must be positive")
    if arrival is Arrival.CONSTANT:
        k = index
        while (due := k / rate) < until:
            yield due
            k += count
        return
    # Seeded per process: a run can be repeated, and the processes' streams are independent.
    rng = random.Random(seed * 1_000_003 + index)
    own_rate = rate / count
    due = rng.expovariate(own_rate)
    while due < until:
        yield due
        due += rng.expovariate(own_rate)
