"""Latency histograms: HDR histograms (the `hdrhistogram` package) of microseconds, three
significant digits, from 1 µs to an hour. Each generator process records into its own and
sends them encoded; the parent decodes and adds them, so the percentiles of a run are those of
every request of every process, not an average of the processes' percentiles.

A generator process keeps its latencies in a list and makes the histogram of each batch at once
(`recorded`): the package's record_value is Python, and once per distinct value costs a fast
endpoint's run far less than once per request."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

INSTALL_HINT = "pip install 'interpserve[bench]'"
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
# The percentiles every report shows.
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def hdrhistogram_installed() -> bool:
    return importlib.util.find_spec("hdrh") is not None


def new() -> HdrHistogram:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def recorded(latencies: Iterable[float]) -> HdrHistogram:
    """A histogram of `latencies`, in seconds: whole microseconds, clamped into the histogram's
    range (a value outside it would be dropped silently)."""
    histogram = new()
    for value, count in Counter([int(seconds * 1e6) for seconds in latencies]).items():
        histogram.record_value(min(max(value, LOWEST_US), HIGHEST_US), count)
    return histogram


def encode(histogram: HdrHistogram) -> bytes:
    encoded: bytes = histogram.encode()
    return encoded


def decode(encoded: bytes) -> HdrHistogram:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(encoded)


def merged(histograms: list[HdrHistogram]) -> HdrHistogram:
    total = new()
    for histogram in histograms:
        total.add(histogram)
    return total


@dataclass(frozen=True)
class Latency:
    """Milliseconds."""

    mean: float
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float

    def at(self, name: str) -> float:
        """A figure by the name an SLO gives it: "p99", "p99.9", "mean", "max"."""
        return float(getattr(self, name.replace(".", "_")))


def latency_ms(histogram: HdrHistogram) -> Latency | None:
    """None for an empty histogram. Percentiles are HDR's: the value at or below which that
    share of the recorded values lie, to three significant digits."""
    if not histogram.get_total_count():
        return None
    p50, p90, p99, p99_9 = (histogram.get_value_at_percentile(q) / 1000 for q in PERCENTILES)
    return Latency(
        mean=histogram.get_mean_value() / 1000,
        p50=p50,
        p90=p90,
        p99=p99,
        p99_9=p99_9,
        max=histogram.get_max_value() / 1000,
    )
