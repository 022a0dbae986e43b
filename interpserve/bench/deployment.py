"""What `interpserve bench` measured of one deployment (the app served by some workers of one
kind, or the server behind a URL): one run, a rate sweep, a capacity search, or several."""

from __future__ import annotations

from dataclasses import dataclass, field

from interpserve.bench.search import Capacity, Step, knee
from interpserve.bench.stats import Point, Summary

# The multiplication sign, escaped: ruff takes it for a confusable letter x.
TIMES = "\u00d7"


@dataclass
class Deployment:
    # None for a URL: the server is whatever runs there.
    kind: str | None = None
    workers: int | None = None
    run: Summary | None = None
    rates: list[Step] = field(default_factory=list)
    capacity: Capacity | None = None

    @property
    def label(self) -> str:
        if self.kind is None:
            return "the server"
        return f"{self.kind} {TIMES} {self.workers}"

    @property
    def knee(self) -> Step | None:
        return knee(self.rates)

    def point(self) -> Point | None:
        """The deployment's place on a scaling curve (a single run of an app only)."""
        if self.run is None or self.kind is None or self.workers is None:
            return None
        return Point(self.kind, self.workers, self.run)
