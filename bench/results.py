"""Every measured figure, per metric, server and repetition, and the statistics the report
draws from them. Saved as results.json so the report and plots can be redrawn without a rerun."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Samples = dict[str, dict[str, list[float | None]]]  # metric or curve -> server -> per repetition


@dataclass
class Results:
    repetitions: int
    servers: dict[str, str]  # key -> label, in report order
    samples: Samples = field(default_factory=dict)
    # The scaling curve: server key -> worker count (as text, for JSON) -> per repetition.
    scaling: Samples = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # failures and warnings, one line each
    info: dict[str, Any] = field(default_factory=dict)  # machine, versions, settings, calibration

    def _slot(self, table: Samples, row: str, column: str) -> list[float | None]:
        return table.setdefault(row, {}).setdefault(column, [None] * self.repetitions)

    def record(self, metric: str, server: str, rep: int, value: float) -> None:
        self._slot(self.samples, metric, server)[rep] = value

    def record_scaling(self, server: str, workers: int, rep: int, value: float) -> None:
        self._slot(self.scaling, server, str(workers))[rep] = value

    def values(self, metric: str, server: str) -> list[float]:
        return [v for v in self.samples.get(metric, {}).get(server, []) if v is not None]

    def median(self, metric: str, server: str) -> float | None:
        values = self.values(metric, server)
        return statistics.median(values) if values else None

    def ratio(self, metric: str, server: str, peer: str) -> float | None:
        """Median over repetitions of server / peer, each pair from the same repetition: the
        two were measured minutes apart at most, so a machine that slows down or speeds up
        between repetitions moves both alike."""
        mine = self.samples.get(metric, {}).get(server, [])
        theirs = self.samples.get(metric, {}).get(peer, [])
        ratios = [a / b for a, b in zip(mine, theirs, strict=False) if a is not None and b]
        return statistics.median(ratios) if ratios else None

    def name(self, server: str) -> str:
        """The server's label without its worker count, for the scaling curve."""
        return self.servers.get(server, server).rsplit(" x", 1)[0]

    def scaling_median(self, server: str, workers: int) -> float | None:
        values = [v for v in self.scaling.get(server, {}).get(str(workers), []) if v is not None]
        return statistics.median(values) if values else None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Results:
        return cls(**json.loads(path.read_text()))
