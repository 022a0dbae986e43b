"""The capacity question, as pure logic over a `measure(rate) -> Summary` function: the highest
open-loop rate that meets an SLO (a search), and the latency against the rate (a sweep) with
its knee."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from interpserve.bench.slo import SERVER_MISSES, Slo, violations
from interpserve.bench.stats import BUSY_GENERATOR, Summary

# The search stops when the highest rate that met the SLO is within this share of the lowest
# that did not.
PRECISION = 0.03
MAX_STEPS = 12
# A rate that misses the SLO is measured again, this many times, before the miss counts: a
# pause of a busy machine (another process, the scheduler) can make one run miss, but no pause
# makes a run meet, so a miss that a second run does not repeat was the machine's, not the
# server's.
REMEASURE = 1
# The knee of a rate sweep: the last rate before p99 first passes this multiple of its value
# at the lowest rate swept, or the answered rate falls below this share of the asked one.
KNEE_LATENCY = 2.0
KNEE_ANSWERED = 0.9
RATE_STEPS = 8

Measure = Callable[[float], Summary]


@dataclass(frozen=True)
class Step:
    rate: float
    summary: Summary
    violations: list[str]

    @property
    def met(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Capacity:
    """The highest rate measured to meet the SLO (None: not even the lowest tried), and every
    step of the search in the order it was measured."""

    rate: float | None
    steps: list[Step] = field(default_factory=list)
    # A step missed the SLO by no more than the generator's own delay (or with its CPU busy):
    # the rate found is a lower bound.
    generator_limited: bool = False

    @property
    def best(self) -> Step | None:
        return next((s for s in self.steps if s.met and s.rate == self.rate), None)


def missed_for_the_generator(step: Step, slo: Slo) -> bool:
    """Whether the generator could have caused the step's miss: its CPU was busy, or the
    latency bounds would all hold without the generator's worst delay (errors, and a server
    that did not keep up with the rate, are the server's)."""
    summary = step.summary
    if step.met or not summary.generator_limits:
        return False
    if summary.generator_cpu >= BUSY_GENERATOR:
        return True
    latency = summary.latency_ms
    if latency is None or any(v.startswith(SERVER_MISSES) for v in step.violations):
        return False
    lag = max((g.max_lag_ms for g in summary.generators), default=0.0)
    return all(
        bound.holds(latency.at(bound.figure) - lag)
        for bound in slo.bounds
        if bound.figure != "errors"
    )


def measured(
    measure: Measure,
    slo: Slo,
    rate: float,
    on_step: Callable[[Step], None],
    again: int = REMEASURE,
) -> list[Step]:
    """The runs at `rate`: one, then another while the last missed, up to `again` more; the
    last is the one that counts. Each is passed to `on_step` as it completes."""
    steps: list[Step] = []
    while not steps or (not steps[-1].met and len(steps) <= again):
        summary = measure(rate)
        steps.append(Step(rate, summary, violations(slo, summary)))
        on_step(steps[-1])
    return steps


def find_capacity(
    measure: Measure,
    slo: Slo,
    start: float,
    on_step: Callable[[Step], None] = lambda step: None,
    precision: float = PRECISION,
    max_steps: int = MAX_STEPS,
) -> Capacity:
    """Measure at `start` (an estimate, such as a closed-loop run's throughput); double while
    the SLO is met, then bisect between the highest rate that met it and the lowest that did
    not. A miss is measured again before it counts (`measured`); every run is a step, and
    counts towards `max_steps`."""
    if start <= 0:
        raise ValueError("the search needs a positive starting rate")
    steps: list[Step] = []

    def attempt(rate: float) -> bool:
        again = min(REMEASURE, max_steps - len(steps) - 1)
        steps.extend(measured(measure, slo, rate, on_step, again))
        return steps[-1].met

    low, high = 0.0, None
    rate = start
    while high is None and len(steps) < max_steps:
        if attempt(rate):
            low, rate = rate, rate * 2
        else:
            high = rate
    while high is not None and len(steps) < max_steps and high - low > precision * high:
        rate = (low + high) / 2
        if attempt(rate):
            low = rate
        else:
            high = rate
    limited = any(missed_for_the_generator(step, slo) for step in steps)
    return Capacity(low or None, steps, limited)


def rate_steps(text: str) -> list[float]:
    """`50..400` (RATE_STEPS rates evenly from 50 to 400), `50..400:25` (every 25), or
    `50,100,200`; raises ValueError with a message for the user."""
    try:
        if ".." in text:
            first_text, _, rest = text.partition("..")
            last_text, _, step_text = rest.partition(":")
            first, last = float(first_text), float(last_text)
            if step_text:
                step = float(step_text)
                if step <= 0:
                    raise ValueError
                count = int((last - first) / step + 1e-9) + 1
            else:
                count = RATE_STEPS
                step = (last - first) / (count - 1)
            rates = [first + i * step for i in range(count)]
        else:
            rates = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: give rates as 50..400, 50..400:25 or 50,100,200") from None
    if not rates or min(rates) <= 0 or (".." in text and rates[-1] < rates[0]):
        raise ValueError(f"{text!r}: rates are positive, from low to high")
    return sorted(set(rates))


def knee(points: Sequence[Step]) -> Step | None:
    """The last rate of a sweep (sorted by rate) before latency turns up: p99 still within
    KNEE_LATENCY times the lowest rate's, and the server answering the rate asked."""
    if not points or points[0].summary.latency_ms is None:
        return None
    base = points[0].summary.latency_ms.p99
    last = None
    for point in points:
        latency = point.summary.latency_ms
        if latency is None or latency.p99 > KNEE_LATENCY * base:
            break
        if point.summary.rps < KNEE_ANSWERED * point.rate:
            break
        last = point
    return last
