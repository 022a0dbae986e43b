"""The generator's top rate against wrk's, in alternating turns on the same server:

    python -m bench.top_rate [--turns 3] [--seconds 6] [--connections 64]

GET / of interpserve's interpreter kind x(cores), closed loop: wrk, then one `interpserve
bench` generator process, turn after turn. Prints each turn's rates and CPU per request, and
the median ratio of interpserve bench's rate to wrk's (docs/bench.md, "The generator's own
limits").
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.generators import closed_loop, serving, wrk
from bench.machine import load_average
from bench.servers import catalogue
from bench.settings import cores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6, help="of each measured load (6)")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    spec = {s.key: s for s in catalogue(cores())}["interpserve-interpreter"]
    c = args.connections
    print(f"load average before: {load_average()}", flush=True)
    ratios = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-top-") as log_dir,
        serving(spec, {}, Path(log_dir)) as server,
    ):
        url = server.url("/")
        for turn in range(1, args.turns + 1):
            theirs = wrk(url, c, args.seconds)
            ours = closed_loop(url, c, args.seconds)
            ratios.append(ours["rps"] / theirs["rps"])
            print(
                f"turn {turn}: wrk {theirs['rps']:,.0f}/s at {theirs['cpu_us']:.1f} µs/request,"
                f" interpserve bench {ours['rps']:,.0f}/s at {ours['cpu_us']:.1f} µs/request:"
                f" {ratios[-1]:.2f}x",
                flush=True,
            )
    median = statistics.median(ratios)
    print(f"median {median:.2f}x wrk's rate; load average after: {load_average()}")


if __name__ == "__main__":
    main()
