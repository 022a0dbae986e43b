"""`interpserve bench`, the pure parts: schedules, histograms, statistics, SLOs, the capacity
search, HTTP framing, the report and its exports, argument parsing, all on known inputs.
Real runs against real servers are in tests/e2e/test_bench_load.py."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from support import FakeTransport, bench_responses

from interpserve.bench import histogram, http1
from interpserve.bench.cli import main as bench_main
from interpserve.bench.cli import parse_worker_counts, parse_worker_kinds
from interpserve.bench.deployment import Deployment
from interpserve.bench.export import (
    CSV_COLUMNS,
    JSON_SCHEMA,
    report_csv,
    report_json,
    report_openmetrics,
)
from interpserve.bench.generator import (
    LATE_AFTER,
    Finished,
    Share,
    _ClosedLoop,
    _Connection,
    _OpenLoop,
)
from interpserve.bench.http1 import (
    ResponseParser,
    Target,
    build_request,
    parse_header,
    parse_url,
)
from interpserve.bench.load import Arrival, Load, WeightedPath, parse_path, path_cycle, share
from interpserve.bench.report import (
    capacity_recommendations,
    format_capacity,
    format_generator,
    format_rates,
    format_table,
    recommendation,
)
from interpserve.bench.schedule import due_times
from interpserve.bench.search import Step, find_capacity, knee, rate_steps
from interpserve.bench.slo import parse_slo, violations
from interpserve.bench.stats import (
    GeneratorSummary,
    Point,
    RunResult,
    Summary,
    curves,
    ideal_rps,
    speedup,
    summarize,
)
from interpserve.bench.stats import knee as scaling_knee
from interpserve.bench.sweep import server_error
from interpserve.cli import SUBCOMMANDS
from interpserve.errors import BadResponse

# Load, paths and schedules ----------------------------------------------------------------


def test_parse_path() -> None:
    assert parse_path("/cpu?ms=5") == WeightedPath("/cpu?ms=5", 1)
    assert parse_path("90:/") == WeightedPath("/", 90)
    assert parse_path("3:/a:b") == WeightedPath("/a:b", 3)
    for bad in ("x:/", "0:/", "90:", "cpu"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_path_cycle_spreads_the_mix() -> None:
    cycle = path_cycle([WeightedPath("/", 90), WeightedPath("/cpu", 10)])
    assert len(cycle) == 10 and cycle.count(1) == 1
    cycle = path_cycle([WeightedPath("/a", 2), WeightedPath("/b", 1), WeightedPath("/c", 1)])
    assert sorted(cycle) == [0, 0, 1, 2]
    assert cycle[0] == 0 and cycle[1] != 0  # not a run of /a first
    with pytest.raises(ValueError):
        path_cycle([WeightedPath("/a", 10_000), WeightedPath("/b", 10_001)])


def test_share_splits_evenly() -> None:
    assert [share(10, 3, i) for i in range(3)] == [4, 3, 3]
    assert sum(share(256, 7, i) for i in range(7)) == 256


def test_constant_schedule_split_between_processes() -> None:
    one = list(due_times(Arrival.CONSTANT, 100, 1.0))
    assert len(one) == 100 and one[:3] == [0.0, 0.01, 0.02]
    parts = [list(due_times(Arrival.CONSTANT, 100, 1.0, index=i, count=3)) for i in range(3)]
    assert sorted(t for part in parts for t in part) == one


def test_poisson_schedule() -> None:
    times = list(due_times(Arrival.POISSON, 1000, 10.0, seed=1))
    assert times == sorted(times)
    assert abs(len(times) - 10_000) < 400  # 4 standard deviations
    assert times == list(due_times(Arrival.POISSON, 1000, 10.0, seed=1))  # seeded
    other = list(due_times(Arrival.POISSON, 1000, 10.0, index=1, count=2, seed=1))
    assert abs(len(other) - 5_000) < 300 and other[:5] != times[:5]


def test_open_loop_window() -> None:
    assert Load(rate=200, requests=1000).window == 5.0
    assert Load(rate=200, duration=3).window == 3
    assert Load().window is None and not Load().open_loop


# Histograms -------------------------------------------------------------------------------


def test_histogram_values_are_clamped() -> None:
    h = histogram.recorded([0.0, 0.0015, 0.0015, 1e9])
    assert h.get_total_count() == 4
    assert h.get_min_value() == histogram.LOWEST_US
    assert h.get_count_at_value(1500) == 2
    assert h.get_max_value() == h.get_highest_equivalent_value(histogram.HIGHEST_US)


def _histogram(values_ms: Sequence[float]) -> Any:
    return histogram.recorded(value / 1000 for value in values_ms)


def test_histograms_merge_through_encoding() -> None:
    """Two processes' histograms, encoded and decoded, add up to the histogram of all values."""
    first = [float(v) for v in range(1, 501)]
    second = [float(v) for v in range(501, 1001)]
    total = histogram.new()
    for part in (first, second):
        total.add(histogram.decode(histogram.encode(_histogram(part))))
    latency = histogram.latency_ms(total)
    assert latency is not None and latency == histogram.latency_ms(_histogram(first + second))
    assert total.get_total_count() == 1000
    assert latency.p50 == pytest.approx(500, rel=1e-3)
    assert latency.p99 == pytest.approx(990, rel=1e-3)
    assert latency.p99_9 == pytest.approx(999, rel=1e-3)
    assert latency.max == pytest.approx(1000, rel=1e-3)
    assert latency.at("p99.9") == latency.p99_9
    assert histogram.latency_ms(histogram.new()) is None


# Statistics -------------------------------------------------------------------------------


def _finished(**fields: float) -> Finished:
    values: dict[str, Any] = dict(
        index=0, elapsed=2.0, cpu_seconds=0.5, due=0, sent_in_window=0, late=0, waited=0,
        max_lag=0.0, connections_opened=1, peak_connections=1, realtime=False,
    )  # fmt: skip
    values.update(fields)
    return Finished(**values)


def _result(
    latencies_ms: Sequence[Sequence[float]],
    errors: dict[str, int] | None = None,
    rate: float | None = None,
    **finished: float,
) -> RunResult:
    paths = tuple(WeightedPath(f"/{i}") for i in range(len(latencies_ms)))
    failed = sum((errors or {}).values())
    return RunResult(
        paths=paths,
        histograms=tuple(_histogram(values) for values in latencies_ms),
        errors=errors or {},
        path_errors=tuple(failed if i == 0 else 0 for i in range(len(paths))),
        generators=(_finished(**finished),),
        series=(),
        rate=rate,
        window=2.0 if rate else None,
    )


def test_summarize_counts() -> None:
    summary = summarize(_result([[1.0, 2.0, 3.0]], {"connection refused": 1, "HTTP 500": 2}))
    assert (summary.requests, summary.successes, summary.error_count) == (6, 3, 3)
    assert list(summary.errors) == ["HTTP 500", "connection refused"]  # most frequent first
    assert summary.rps == 1.5 and summary.error_rate == 0.5
    assert summary.generator_cpu == 0.25 and summary.generator_limits == []
    assert summary.latency_ms is not None and summary.latency_ms.max == pytest.approx(3.0, 1e-3)
    assert summary.asked_rps is None and summary.sent_rps is None


def test_summarize_paths_apart() -> None:
    summary = summarize(_result([[1.0] * 9, [50.0]]))
    assert [(p.path, p.successes) for p in summary.paths] == [("/0", 9), ("/1", 1)]
    assert summary.paths[1].latency_ms is not None and summary.paths[1].latency_ms.p50 > 49
    assert summary.successes == 10


def test_summarize_open_loop() -> None:
    summary = summarize(_result([[1.0] * 400], rate=200, due=400, sent_in_window=398))
    assert (summary.asked_rps, summary.sent_rps, summary.rps) == (200, 199, 200)


def test_generator_limits() -> None:
    busy = summarize(_result([[1.0]], cpu_seconds=1.9))
    assert busy.generator_limits == ["the load generator used 95% of a core"]
    late = summarize(_result([[1.0] * 400], rate=200, due=400, sent_in_window=400, late=40))
    assert late.generator_limits == [
        "10.0% of requests were dispatched more than 2 ms after they were due, up to 0.0 ms "
        "(it fell behind its schedule)"
    ]
    # Late while the server did not keep up: the server was the limit.
    behind = summarize(_result([[1.0] * 100], rate=200, due=400, sent_in_window=400, late=40))
    assert behind.generator_limits == []
    text = format_generator([busy, summarize(_result([[1.0]]))])
    assert text[1].startswith("The load generator may have limited 1 of 2 runs: the load gen")
    assert text[1].endswith("Try --generators, or a second machine.")
    starved = format_generator([late])
    assert starved[1].endswith(
        "the latencies include that delay. With --realtime (and the right to it: root, or "
        "CAP_SYS_NICE), it waits less."
    )
    realtime = summarize(_result([[1.0] * 400], rate=200, due=400, late=40, realtime=True))
    assert format_generator([realtime])[1].endswith("the latencies include that delay.")


def test_summarize_no_successes() -> None:
    summary = summarize(_result([[]], {"timeout": 4}))
    assert (summary.requests, summary.successes, summary.rps) == (4, 0, 0.0)
    assert summary.latency_ms is None


def _curve(rates: Sequence[float], kind: str = "interpreter", first: int = 1) -> list[Point]:
    return [
        Point(kind, first + i, Summary(requests=1, successes=1, rps=rate))
        for i, rate in enumerate(rates)
    ]


def test_scaling_figures() -> None:
    curve = _curve([100, 190, 280, 290, 291])
    assert ideal_rps(curve[3], curve[0]) == 400
    assert speedup(curve[2], curve[0]) == 2.8
    # 280 is the first rate within 95% of the best (291).
    assert scaling_knee(curve).workers == 3


def test_curves_group_by_kind_and_sort_by_workers() -> None:
    points = [*reversed(_curve([1, 2])), *_curve([3], kind="process")]
    grouped = curves(points)
    assert list(grouped) == ["interpreter", "process"]
    assert [p.workers for p in grouped["interpreter"]] == [1, 2]


def test_recommendations() -> None:
    def advice(rates: list[float], name_kind: bool = False, first: int = 1) -> str:
        return recommendation(_curve(rates, first=first), name_kind, cpus=8)

    assert (
        advice([100, 190, 280, 290, 291])
        == "3 workers: 2.8\u00d7 one worker; more adds nothing on this machine."
    )
    assert (
        advice([100, 200, 300], name_kind=True)
        == "interpreter: 3 workers: 3.0\u00d7 one worker, and still scaling; try more than 3."
    )
    assert advice([100, 99, 100]) == "1 worker: more workers add nothing on this machine."
    assert advice([100, 200], first=2).startswith("3 workers: 2.0\u00d7 2 workers")
    assert "no request succeeded" in advice([0, 0])


def test_recommendation_notes_workers_beyond_the_cpus() -> None:
    text = recommendation(_curve([100, 190, 250, 251]), name_kind=False, cpus=2)
    assert text.startswith("3 workers: 2.5\u00d7 one worker; more adds nothing")
    assert "More workers than the 2 CPUs here still helped" in text


# SLOs and the capacity search -------------------------------------------------------------


def _run(p99_ms: float, rps: float, asked: float | None = None, errors: int = 0) -> Summary:
    """A run whose every latency figure is `p99_ms`."""
    latency = histogram.Latency(p99_ms, p99_ms, p99_ms, p99_ms, p99_ms, p99_ms)
    return Summary(
        requests=100 + errors, successes=100, errors={"timeout": errors} if errors else {},
        rps=rps, latency_ms=latency, asked_rps=asked, sent_rps=asked,
    )  # fmt: skip


def test_parse_slo() -> None:
    slo = parse_slo("p99<200ms, p50<=20ms,p99.9<1s")
    assert [(b.figure, b.inclusive, b.limit) for b in slo.bounds] == [
        ("p99", False, 200.0),
        ("p50", True, 20.0),
        ("p99.9", False, 1000.0),
        ("errors", False, 0.01),  # the default bound
    ]
    assert slo.latency_text == "p99<200ms, p50<=20ms, p99.9<1s"
    assert parse_slo("max<500us,errors<0.1%").bounds[1].limit == pytest.approx(0.001)
    for bad in ("p99 200ms", "p98<1ms", "errors<1ms", "p99<1%", ""):
        with pytest.raises(ValueError):
            parse_slo(bad)


def test_slo_violations() -> None:
    slo = parse_slo("p99<200ms")
    assert violations(slo, _run(150, 100, asked=100)) == []
    assert violations(slo, _run(250, 100, asked=100)) == ["p99 250.0 ms (SLO p99<200ms)"]
    assert violations(slo, _run(150, 100, errors=2)) == ["errors 1.96% (SLO errors<1%)"]
    # Latency met, but the server answered far less than asked: a queue is growing.
    assert violations(slo, _run(150, 80, asked=100)) == ["answered 80.0 of 100.0 requests/s asked"]
    assert violations(slo, Summary(requests=5, successes=0, errors={"timeout": 5})) == [
        "no request succeeded",
        "errors 100.00% (SLO errors<1%)",
    ]


def _server(capacity: float) -> tuple[list[float], Callable[[float], Summary]]:
    """A fake server: fast up to `capacity`, then queueing; and the rates it was asked."""
    asked: list[float] = []

    def measure(rate: float) -> Summary:
        asked.append(rate)
        return _run(20 if rate <= capacity else 900, min(rate, capacity), asked=rate)

    return asked, measure


@pytest.mark.parametrize("start", [50.0, 118.0, 1000.0])
def test_capacity_search_agrees_with_a_sweep(start: float) -> None:
    slo = parse_slo("p99<200ms")
    asked, measure = _server(118)
    found = find_capacity(measure, slo, start)
    assert len(asked) == len(found.steps) <= 12
    brute = max(r for r in range(1, 400) if not violations(slo, measure(r)))
    assert found.rate is not None and brute == 118
    assert abs(found.rate - brute) <= 0.05 * brute
    assert found.best is not None and found.best.rate == found.rate
    assert not found.generator_limited


def test_a_miss_is_measured_again_before_it_counts() -> None:
    """The first run at 100/s misses (the machine paused the server): the search measures 100/s
    again, which meets, and finds the capacity as if nothing happened. Every miss that counts
    was measured twice."""
    slo = parse_slo("p99<200ms")
    _, steady = _server(118)
    paused = [100.0]

    def measure(rate: float) -> Summary:
        if rate in paused:
            paused.remove(rate)
            return _run(900, rate, asked=rate)
        return steady(rate)

    found = find_capacity(measure, slo, 100.0)
    first, second = found.steps[:2]
    assert first.rate == second.rate == 100 and not first.met and second.met
    assert found.rate is not None and abs(found.rate - 118) <= 0.05 * 118
    missed = [step.rate for step in found.steps[2:] if not step.met]
    assert missed and all(missed.count(rate) == 2 for rate in missed)


def test_a_miss_within_the_generators_delay_makes_a_lower_bound() -> None:
    slo = parse_slo("p99<50ms")
    lagging = GeneratorSummary(0.1, late=50, waited=0, max_lag_ms=8.0, connections_opened=1,
                               peak_connections=1)  # fmt: skip

    def measure(rate: float) -> Summary:
        p99 = 20 if rate <= 100 else 55  # just over the bound: the generator's 8 ms may be why
        run = _run(p99, rate, asked=rate)
        return replace(run, generators=[lagging], generator_limits=["late"])

    found = find_capacity(measure, slo, 80.0)
    assert found.rate is not None and found.generator_limited
    assert not find_capacity(_server(100)[1], slo, 80.0).generator_limited


def test_capacity_search_that_finds_nothing() -> None:
    def measure(rate: float) -> Summary:
        return _run(900, rate, asked=rate)

    found = find_capacity(measure, parse_slo("p99<200ms"), 100.0, max_steps=7)
    assert found.rate is None and found.best is None and len(found.steps) == 7


def test_rate_steps() -> None:
    assert rate_steps("50..400") == [50, 100, 150, 200, 250, 300, 350, 400]
    assert rate_steps("80..100:10") == [80, 90, 100]
    assert rate_steps("200,50,100") == [50, 100, 200]
    for bad in ("0..10", "10..5", "a..b", "1..5:0", ""):
        with pytest.raises(ValueError):
            rate_steps(bad)


def _step(rate: float, p99: float, rps: float | None = None) -> Step:
    return Step(rate, _run(p99, rate if rps is None else rps, asked=rate), [])


def test_rate_sweep_knee() -> None:
    steps = [_step(50, 10), _step(100, 12), _step(150, 19), _step(200, 45), _step(250, 900)]
    assert knee(steps) is steps[2]
    # The server stopped keeping up at 100/s, though its latency had not risen yet.
    slow = [_step(50, 10), _step(100, 11, rps=80)]
    assert knee(slow) is slow[0]
    assert knee([]) is None


# Report and exports -----------------------------------------------------------------------


def _deployments() -> list[Deployment]:
    slo = parse_slo("p99<200ms")
    result = []
    for kind, capacities in (("interpreter", (118, 230, 232)), ("process", (110, 215, 214))):
        for workers, rate in enumerate(capacities, 1):
            found = find_capacity(_server(rate)[1], slo, 100.0)
            result.append(Deployment(kind, workers, capacity=found))
    return result


def test_capacity_table_and_recommendation() -> None:
    slo = parse_slo("p99<200ms")
    deployments = _deployments()
    table = format_capacity(deployments, slo)
    assert table.splitlines()[0] == "Capacity at p99<200ms, errors<1%:"
    assert "  2 interpreter workers hold " in table
    lines = capacity_recommendations(deployments, slo)
    assert len(lines) == 2
    assert lines[0].startswith("interpreter: 2 interpreter workers hold ")
    assert lines[0].endswith("requests/s at p99<200ms; more add nothing on this machine.")
    assert lines[1].startswith("process: 2 process workers hold ")


def test_rate_sweep_table_marks_the_knee() -> None:
    d = Deployment()
    d.rates = [_step(50, 10), _step(100, 12), _step(150, 300)]
    text = format_rates(d, None)
    assert text.splitlines()[3].endswith("<- knee")
    assert "Knee: 100.0 requests/s" in text


def test_json_schema() -> None:
    slo = parse_slo("p99<200ms")
    deployments = _deployments()
    deployments[0].run = _run(10, 100)
    target = {"mode": "app", "app": "m:app"}
    data = json.loads(json.dumps(report_json(target, Load(), deployments, slo, 2, [])))
    assert data["schema"] == JSON_SCHEMA == 2 and data["mode"] == "app" and data["cpus"] == 2
    assert data["slo"] == "p99<200ms, errors<1%"
    assert data["load"]["loop"] == "closed" and data["load"]["rate"] is None
    first = data["deployments"][0]
    assert (first["kind"], first["workers"]) == ("interpreter", 1)
    assert set(first["run"]["latency_ms"]) == {"mean", "p50", "p90", "p99", "p99_9", "max"}
    capacity = data["deployments"][1]["capacity"]
    assert capacity["rate"] == pytest.approx(230, rel=0.05) and not capacity["generator_limited"]
    assert all({"rate", "met", "violations", "result"} <= set(s) for s in capacity["steps"])


def test_csv_export() -> None:
    deployments = _deployments()[:1]
    capacity = deployments[0].capacity
    assert capacity is not None
    rows = list(csv.reader(io.StringIO(report_csv(deployments, parse_slo("p99<200ms")))))
    assert rows[0] == CSV_COLUMNS
    assert len(rows) == 1 + len(capacity.steps)
    record = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert record["measurement"] == "capacity_search" and record["kind"] == "interpreter"
    assert record["slo_met"] in ("True", "False")


def test_openmetrics_export() -> None:
    """Parsed by prometheus_client's OpenMetrics parser, which rejects what the format does
    not allow (a family's samples apart, a missing # EOF, a counter without _total)."""
    deployments = _deployments()[:1]
    capacity = deployments[0].capacity
    assert capacity is not None
    mixed = Deployment("process", 2)
    mixed.run = summarize(_result([[1.0] * 9, [50.0]], rate=5, due=10, sent_in_window=10))
    text = report_openmetrics([*deployments, mixed], parse_slo("p99<200ms"))
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    latency = families["interpserve_bench_latency_seconds"]
    assert (latency.type, latency.unit) == ("summary", "seconds")
    steps = {s.labels["step"] for s in latency.samples if s.labels["measurement"] != "run"}
    assert len(steps) == len(capacity.steps)
    run = [s for s in latency.samples if s.labels["measurement"] == "run"]
    by_path = {(s.labels["path"], s.labels.get("quantile"), s.name): s.value for s in run}
    assert by_path[("", None, "interpserve_bench_latency_seconds_count")] == 10
    assert by_path[("/1", "0.99", "interpserve_bench_latency_seconds")] == pytest.approx(0.05, 0.01)
    assert by_path[("/0", "0.5", "interpserve_bench_latency_seconds")] == pytest.approx(1e-3, 0.01)
    met = {s.value for s in families["interpserve_bench_slo_met"].samples}
    assert met == {0.0, 1.0}  # the search stepped on both sides of its capacity

    def of_the_run(family: str) -> Any:
        (sample,) = [s for s in families[family].samples if s.labels["measurement"] == "run"]
        return sample

    asked = of_the_run("interpserve_bench_asked_per_second")
    assert (asked.labels["kind"], asked.labels["workers"], asked.value) == ("process", "2", 5)
    late = of_the_run("interpserve_bench_late")
    assert late.name == "interpserve_bench_late_total" and late.value == 0


def test_format_table_aligns_columns() -> None:
    table = format_table(["kind", "rps"], [["a", "1.0"], ["longer", "100.5"]], text_columns=1)
    assert table.splitlines() == [
        "  kind      rps",
        "  a         1.0",
        "  longer  100.5",
    ]


def test_server_error_line() -> None:
    output = 'INFO:     Starting 1 interpreter worker(s)\nERROR:    Could not import module "x".\n'
    assert server_error(output) == 'Could not import module "x".'
    assert server_error("INFO: a\nTraceback ...\nKeyError: 1\n") == "KeyError: 1"
    assert server_error("") == "the server exited without output"


# Arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "counts"),
    [("1..8", [1, 2, 3, 4, 5, 6, 7, 8]), ("1,2,4", [1, 2, 4]), ("4,2,2", [2, 4]), ("3", [3])],
)
def test_worker_counts(text: str, counts: list[int]) -> None:
    assert parse_worker_counts(text) == counts


@pytest.mark.parametrize("text", ["0..2", "a..b", "", "2..1", "1,x"])
def test_bad_worker_counts(text: str) -> None:
    with pytest.raises(ValueError):
        parse_worker_counts(text)


def test_worker_kinds() -> None:
    assert parse_worker_kinds("interpreter, process,interpreter") == ["interpreter", "process"]
    with pytest.raises(ValueError):
        parse_worker_kinds("thread")


def test_bench_is_a_subcommand() -> None:
    assert "bench" in SUBCOMMANDS


def test_sweep_flags_need_an_app(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_main(["http://127.0.0.1:1/", "--sweep-workers", "1..2"])
    assert exc.value.code == 2
    assert "need MODULE:APP" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "0"], "--rate must be positive"),
        (["--slo", "p98<1ms"], "an SLO is bounds such as"),
        (["--slo", "p99<1ms", "-n", "10"], "measure for --duration"),
        (["--sweep-rate", "400..50"], "from low to high"),
        (["--path", "x:/"], "WEIGHT:/path"),
        (["--max-connections", "0"], "--max-connections must be at least 1"),
    ],
)
def test_bad_open_loop_flags(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_main(["http://127.0.0.1:1/", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_plot_without_matplotlib_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exc:
        bench_main(["examples.hello:app", "--plot", "out.png"])
    assert exc.value.code == (
        "interpserve bench: error: --plot needs matplotlib: pip install 'interpserve[bench]' "
        "(or pip install matplotlib)"
    )


def test_histograms_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hdrh", None)
    with pytest.raises(SystemExit) as exc:
        bench_main(["http://127.0.0.1:1/"])
    assert isinstance(exc.value.code, str) and "pip install 'interpserve[bench]'" in exc.value.code


# HTTP/1.1 ---------------------------------------------------------------------------------


def test_parse_url() -> None:
    assert parse_url("http://127.0.0.1:8000/cpu?ms=5") == Target(
        "127.0.0.1", 8000, "/cpu?ms=5", "127.0.0.1:8000"
    )
    assert parse_url("http://localhost") == Target("localhost", 80, "/", "localhost")
    for bad in ("https://127.0.0.1/", "127.0.0.1:8000", "http://127.0.0.1:99999/"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_build_request() -> None:
    target = parse_url("http://127.0.0.1:8000/x?y=1")
    assert build_request("GET", target) == b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
    assert build_request("POST", target, (("Content-Type", "text/plain"),), b"hi") == (
        b"POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )
    assert b"Content-Length: 0" in build_request("POST", target)


def test_parse_header() -> None:
    assert parse_header("X-Token: a: b ") == ("X-Token", "a: b")
    with pytest.raises(ValueError):
        parse_header("no colon")


def _feed_bytewise(parser: ResponseParser, data: bytes) -> list[int]:
    return [status for i in range(len(data)) for status in parser.feed(data[i : i + 1])]


def test_parser_content_length_in_any_pieces() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    parser = ResponseParser()
    assert parser.feed(response + response) == [200, 200]
    assert _feed_bytewise(parser, response) == [200]
    assert parser.keep_alive and parser.idle


def test_parser_chunked_with_extensions_and_trailers() -> None:
    response = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    assert ResponseParser().feed(response) == [201]
    assert _feed_bytewise(ResponseParser(), response) == [201]


def test_parser_bodiless_responses() -> None:
    parser = ResponseParser(no_body=True)
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n") == [200]
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n") == [204]
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n") == [304]


def test_parser_body_until_close() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body") == []
    assert not parser.keep_alive
    assert parser.feed_eof() == 200


def test_parser_connection_header() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not parser.keep_alive
    parser = ResponseParser()
    parser.feed(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    assert parser.keep_alive


# The fast path, compiled and in Python (conftest.py's pure_impl): what it takes, the parser
# would read the same; the rest it leaves to the parser.

PLAIN = b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\ncontent-length:\t5 \r\n\r\nhello"


@pytest.mark.usefixtures("pure_impl")
@pytest.mark.parametrize(
    "data",
    [
        PLAIN,
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 404 \r\nX: a:b\r\nCONTENT-LENGTH: 005\r\n\r\nhello",
    ],
)
def test_whole_response_takes_a_plain_response(data: bytes) -> None:
    assert http1.whole_response(data) == ResponseParser().feed(data)[0]


@pytest.mark.usefixtures("pure_impl")
@pytest.mark.parametrize(
    "data",
    [
        PLAIN[:-1],  # cut short
        PLAIN + b"!",  # more than the response
        PLAIN.replace(b"1.1", b"1.0"),
        PLAIN.replace(b"201 Created", b"100 Continue"),
        PLAIN.replace(b"201 Created", b"204 No Content"),
        PLAIN.replace(b"Content-Type: text/plain", b"Connection: close"),
        PLAIN.replace(b"Content-Type: text/plain", b"Transfer-Encoding: chunked"),
        PLAIN.replace(b"Content-Type: text/plain", b"Content-Length: 5"),  # twice
        PLAIN.replace(b"Content-Type:", b"Content-Type :"),
        PLAIN.replace(b"\r\nContent-Type", b"\r\n Content-Type"),  # a folded line
        PLAIN.replace(b"text/plain", b"text\nplain"),
        PLAIN.replace(b"Content-Type: text/plain", b"no colon"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nbody until close",
    ],
)
def test_whole_response_leaves_the_rest_to_the_parser(data: bytes) -> None:
    assert http1.whole_response(data) == 0


@pytest.mark.usefixtures("pure_impl")
@settings(max_examples=500)
@given(data=bench_responses)
def test_property_whole_response_agrees_with_the_parser(data: bytes) -> None:
    status = http1.whole_response(data)
    if status:
        parser = ResponseParser()
        assert parser.feed(data) == [status]
        assert parser.idle and parser.keep_alive


def test_parser_cut_short() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel") == []
    assert parser.feed_eof() is None


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_parser_rejects_garbage(data: bytes) -> None:
    with pytest.raises(BadResponse):
        ResponseParser().feed(data)


def test_open_loop_counts_a_request_dispatched_after_its_due_time_as_late() -> None:
    """Late (the generator fell behind its schedule) and waited (no connection was free) are
    told apart on the dispatch times alone, without a server or a clock."""
    spec = Share(
        0,
        "127.0.0.1",
        1,
        (b"GET / HTTP/1.1\r\n\r\n",),
        (0,),
        False,
        Load(rate=100, duration=1, warmup=0, max_connections=1),
    )
    run = _OpenLoop(spec, report=None, start=0.0, realtime=False)  # type: ignore[arg-type]
    opened: list[object] = []
    run.connect = opened.append  # type: ignore[assignment,method-assign]
    run.dispatch(due=0.010, now=0.010)
    run.dispatch(due=0.020, now=0.020 + 2 * LATE_AFTER)
    run.dispatch(due=0.030, now=0.030)
    assert (run.due, run.late, run.waited, len(opened)) == (3, 1, 2, 1)
    assert run.max_lag == pytest.approx(2 * LATE_AFTER)


def test_closed_loop_answers_each_whole_response_with_the_next_request() -> None:
    """Measuring a --duration run, a read that is one whole response is recorded on its path (an
    error status counted by kind) and the next request of the cycle is written at once, on a
    fake transport."""
    load = Load(connections=1, duration=1)
    spec = Share(0, "127.0.0.1", 1, (b"A", b"B"), (0, 1, 1), False, load)
    run = _ClosedLoop(spec, report=None, start=0.0, realtime=False)  # type: ignore[arg-type]
    connection = _Connection(run, no_body=False)
    transport = FakeTransport()
    connection.connection_made(transport)
    run.begin_measuring()
    run.next_request(connection)
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for response in (ok, ok.replace(b"200 OK", b"500 Oops"), ok, ok):
        connection.data_received(response)
    assert transport.take() == b"ABBAB"
    assert [len(latencies) for latencies in run.latencies] == [2, 1]
    assert run.errors == {"HTTP 500": 1} and run.path_errors == [0, 1]
    assert (run.due, run.sent_in_window, run.outstanding) == (5, 5, 1)
