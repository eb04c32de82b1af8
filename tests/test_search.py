"""The peak-goodput search: the attainment interval, doubling then bisection, and its ends."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.energy.base import EnergyUnavailable
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.gate import Verdict, compare, parse_fail_on
from pytest_llmbench.results import Repetition
from pytest_llmbench.search import (
    Point,
    SearchSettings,
    horizon_s,
    requests_at_rate,
    search,
    wilson_interval,
)
from tests.results.factories import make_report, make_result


def rep(requests: int, good: int, window_s: float = 1.0) -> Repetition:
    return Repetition(
        window_s=window_s,
        iterations=1,
        requests=requests,
        errors=0,
        input_tokens=requests,
        output_tokens=requests,
        ttft_s=(),
        itl_s=(),
        e2e_latency_s=(),
        energy=EnergyUnavailable("test"),
        good_requests=good,
    )


def server(capacity: float, requests: int = 100):
    """A server that meets every request up to ``capacity`` and half of them beyond it."""
    tried: list[tuple[float, int]] = []

    def measure(load: float, count: int) -> list[Repetition]:
        tried.append((load, count))
        good = requests if load <= capacity else requests // 2
        return [rep(requests, good, window_s=requests / load) for _ in range(count)]

    return measure, tried


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(50, 50)[1] == 1.0


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_interval_holds_the_estimate(good: int, total: int) -> None:
    good = min(good, total)
    low, high = wilson_interval(good, total)
    assert 0 <= low <= good / total <= high <= 1


def test_doubling_then_bisection_finds_the_capacity_within_tolerance() -> None:
    measure, tried = server(capacity=11.0)
    outcome = search(measure, SearchSettings(start=1.0, tolerance=0.1, max_steps=20), 2)
    loads = [p.load for p in outcome.points]
    assert loads[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]  # doubling until a load fails
    assert outcome.peak is not None and outcome.peak.load <= 11.0
    failed = min(p.load for p in outcome.points if not p.meets)
    assert (failed - outcome.peak.load) / outcome.peak.load <= 0.1
    assert outcome.peak_goodput == pytest.approx(outcome.peak.load)  # all good at the peak
    assert all(count == 2 for _, count in tried)  # decided by the interval: no extra reps
    assert "peak" in outcome.describe()


def test_concurrency_bisects_whole_numbers_to_adjacent_loads() -> None:
    measure, _ = server(capacity=5.0)
    outcome = search(measure, SearchSettings(over="concurrency", start=1, max_steps=20), 1)
    assert all(p.load == int(p.load) for p in outcome.points)
    assert outcome.peak is not None and outcome.peak.load == 5.0
    assert any(p.load == 6.0 and not p.meets for p in outcome.points)


def test_when_no_load_meets_the_slo_the_search_says_so_and_names_the_lowest() -> None:
    measure, _ = server(capacity=0.5)
    outcome = search(measure, SearchSettings(start=2.0), 1)
    assert outcome.peak is None and outcome.peak_goodput == 0.0
    assert outcome.lowest.load == 2.0
    assert outcome.describe().startswith("no load met the SLO (attainment >= 0.9)")
    assert outcome.to_dict()["peak_load"] is None


def test_max_load_and_max_steps_stop_the_search() -> None:
    measure, _ = server(capacity=1000.0)
    capped = search(measure, SearchSettings(start=1.0, max_load=5.0), 1)
    assert [p.load for p in capped.points] == [1.0, 2.0, 4.0, 5.0]
    assert capped.peak is not None and capped.peak.load == 5.0
    short = search(measure, SearchSettings(start=1.0, max_steps=3), 1)
    assert len(short.points) == 3


def test_an_undecided_load_gets_more_repetitions_then_the_estimate_decides() -> None:
    calls: list[int] = []

    def measure(load: float, count: int) -> list[Repetition]:
        calls.append(count)
        return [rep(10, 9) for _ in range(count)]  # 90%: right at the target

    outcome = search(measure, SearchSettings(start=1.0, max_load=1.0, max_repetitions=4), 1)
    [point] = outcome.points
    assert len(point.repetitions) == 4 and calls == [1, 1, 1, 1]
    assert point.to_dict()["decided_by"] == "estimate" and point.meets  # 0.9 >= 0.9


def test_each_rate_sends_enough_requests_to_show_an_overload() -> None:
    assert horizon_s(0.5, None, 2.0, 16) == 2.0
    assert horizon_s(None, 0.1, None, 16) == pytest.approx(1.6)  # TPOT over the whole answer
    assert requests_at_rate(1.0, 16, 1.0) == 16  # the workload already spans 16 s > 10 s
    assert requests_at_rate(52.0, 16, 1.0) == 520  # 10 s of arrivals at 52 req/s


def test_point_goodput_and_attainment() -> None:
    point = Point(4.0, (rep(10, 8, 2.0), rep(10, 10, 2.0)), 0.9)
    assert point.attainment == 0.9 and point.goodput == pytest.approx(18 / 4.0)
    assert point.energy_per_good_request is None  # energy unavailable


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"over": "tokens"}, "peak_goodput.over"),
        ({"start": 0}, "peak_goodput.start"),
        ({"tolerance": 1.5}, "peak_goodput.tolerance"),
        ({"attainment": 0}, "--llm-slo-attainment"),
        ({"start": 4, "max_load": 2}, "peak_goodput.max_load"),
    ],
)
def test_bad_settings_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        SearchSettings(**changes)  # type: ignore[arg-type]


def with_peak(value: float):  # type: ignore[no-untyped-def]
    return dataclasses.replace(make_result(), search={"over": "rate", "peak_goodput": value,
                                                      "points": []})  # fmt: skip


def test_peak_goodput_is_a_gateable_result_metric() -> None:
    history = [make_report([with_peak(v)]) for v in (100.0, 101.0, 99.0, 100.5, 99.5)]
    rules = parse_fail_on("peak_goodput:-5%")
    [row] = compare(history, make_report([with_peak(80.0)]), rules).rows
    assert row.verdict is Verdict.REGRESSION and row.change == pytest.approx(-0.2)
    [ok] = compare(history, make_report([with_peak(100.2)]), rules).rows
    assert ok.verdict is Verdict.OK
    assert with_peak(80.0).aggregate()["peak_goodput"] == 80.0
