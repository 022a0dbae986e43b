"""Service-level objectives: "p99<200ms", "p50<=20ms", "errors<1%", comma-separated, and whether
a run met them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from interpserve.bench.stats import Summary

LATENCY_FIGURES = ("mean", "p50", "p90", "p99", "p99.9", "max")
# Unless the SLO bounds errors itself: a server that answers fast with errors holds nothing.
DEFAULT_ERROR_BOUND = "errors<1%"
# An open-loop rate is held only if the server answered at least this share of it: above
# capacity a queue grows, which a generous latency bound may not catch within one run.
MIN_ANSWERED_SHARE = 0.9

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_BOUND = re.compile(
    r"\s*(?P<figure>mean|p50|p90|p99\.9|p99|max|errors)\s*(?P<op><=|<)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>us|ms|s|%)\s*"
)


@dataclass(frozen=True)
class Bound:
    figure: str  # one of LATENCY_FIGURES, or "errors"
    inclusive: bool  # <= rather than <
    # Milliseconds for a latency, a fraction of the requests for errors.
    limit: float
    text: str

    def holds(self, value: float) -> bool:
        return value <= self.limit if self.inclusive else value < self.limit


@dataclass(frozen=True)
class Slo:
    bounds: tuple[Bound, ...]

    @property
    def text(self) -> str:
        return ", ".join(bound.text for bound in self.bounds)

    @property
    def latency_text(self) -> str:
        """The latency bounds alone, for "holds N req/s at p99 < 200 ms"."""
        return ", ".join(b.text for b in self.bounds if b.figure != "errors") or self.text


def parse_slo(text: str) -> Slo:
    """Raises ValueError with a message for the user."""
    bounds = []
    for part in text.split(","):
        match = _BOUND.fullmatch(part)
        if not match:
            raise ValueError(
                f"{part.strip()!r}: an SLO is bounds such as p99<200ms, p50<=20ms, errors<1% "
                f"(latencies: {', '.join(LATENCY_FIGURES)}; units us, ms, s)"
            )
        figure, unit = match["figure"], match["unit"]
        value = float(match["value"])
        if (figure == "errors") != (unit == "%"):
            raise ValueError(f"{part.strip()!r}: errors are bounded in %, latencies in us, ms, s")
        limit = value / 100 if unit == "%" else value * _UNITS_MS[unit]
        op = match["op"]
        bounds.append(Bound(figure, op == "<=", limit, f"{figure}{op}{match['value']}{unit}"))
    if not any(bound.figure == "errors" for bound in bounds):
        bounds += parse_slo(DEFAULT_ERROR_BOUND).bounds
    return Slo(tuple(bounds))


# How violations() words the misses that only the server can cause.
SERVER_MISSES = ("errors ", "answered ", "no request succeeded")


def violations(slo: Slo, summary: Summary) -> list[str]:
    """Why the run did not meet the SLO; empty if it did."""
    found = []
    for bound in slo.bounds:
        if bound.figure == "errors":
            if not bound.holds(summary.error_rate):
                found.append(f"errors {summary.error_rate:.2%} (SLO {bound.text})")
        elif summary.latency_ms is None:
            found.append("no request succeeded")
        else:
            value = summary.latency_ms.at(bound.figure)
            if not bound.holds(value):
                found.append(f"{bound.figure} {value:.1f} ms (SLO {bound.text})")
    asked = summary.asked_rps
    if asked and summary.rps < MIN_ANSWERED_SHARE * asked:
        found.append(f"answered {summary.rps:,.1f} of {asked:,.1f} requests/s asked")
    return list(dict.fromkeys(found))
