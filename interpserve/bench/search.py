"""The capacity question, as pure logic over a `measure(rate) -> Summary` function: the highest
open-loop rate that meets an SLO (a search), and the latency against the rate (a sweep) with
its knee."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from interpserve.bench.slo import Slo, violations
from interpserve.bench.stats import Summary

# The search stops when the highest rate that met the SLO is within this share of the lowest
# that did not.
PRECISION = 0.03
MAX_STEPS = 12
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

    @property
    def best(self) -> Step | None:
        return next((s for s in self.steps if s.met and s.rate == self.rate), None)

    @property
    def generator_limited(self) -> bool:
        """A failed step that the generator may have caused: the rate found is a lower bound."""
        return any(not s.met and s.summary.generator_limits for s in self.steps)


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
    not."""
    if start <= 0:
        raise ValueError("the search needs a positive starting rate")
    steps: list[Step] = []

    def attempt(rate: float) -> bool:
        summary = measure(rate)
        step = Step(rate, summary, violations(slo, summary))
        steps.append(step)
        on_step(step)
        return step.met

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
    return Capacity(low or None, steps)


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
