"""Latency summaries: what a compact report keeps gives the gate the same numbers as the samples."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmbench.latency import (
    EDGES_S,
    NUM_BINS,
    Histogram,
    LatencySummary,
    bin_bounds_s,
    bin_index,
)
from pytest_llmbench.results import BenchmarkResult, Report
from tests.results.factories import make_repetition, make_report, make_result

seconds = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)
sample_sets = st.lists(seconds, max_size=60)


@settings(max_examples=150, deadline=None)
@given(ttft=sample_sets, itl=sample_sets, e2e=sample_sets)
def test_metrics_from_the_summary_equal_metrics_from_the_samples(
    ttft: list[float], itl: list[float], e2e: list[float]
) -> None:
    full = replace(
        make_repetition(), ttft_s=tuple(ttft), itl_s=tuple(itl), e2e_latency_s=tuple(e2e)
    )
    compact = full.without_samples()
    assert not any(compact.latencies().values())
    assert compact.metrics() == full.metrics()
    # ... and after a trip through JSON (what a saved baseline is)
    data = json.loads(json.dumps(compact.to_dict()))
    assert type(compact).from_dict(data).metrics() == full.metrics()
    for name, values in full.latencies().items():
        summary = compact.summaries[name]
        assert summary.histogram.total == summary.count == len(values)
        if values:
            assert summary.min == min(values) and summary.max == max(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(seconds, max_size=200))
def test_every_value_lies_in_its_bin(values: list[float]) -> None:
    histogram = Histogram.of(values)
    assert histogram.total == len(values)
    for v in values:
        lower, upper = bin_bounds_s(bin_index(v))
        assert lower <= v < upper


def test_bins_are_fixed_and_log_spaced() -> None:
    assert len(EDGES_S) == 91 and NUM_BINS == 92
    assert EDGES_S[0] == pytest.approx(1e-6) and EDGES_S[-1] == pytest.approx(1e3)
    ratios = {round(b / a, 9) for a, b in zip(EDGES_S, EDGES_S[1:], strict=False)}
    assert ratios == {round(10**0.1, 9)}
    assert bin_index(0.0) == 0 and bin_index(1e4) == NUM_BINS - 1


@settings(max_examples=50, deadline=None)
@given(st.lists(seconds, max_size=50), st.lists(seconds, max_size=50))
def test_histograms_add_up_exactly(a: list[float], b: list[float]) -> None:
    assert Histogram.of(a) + Histogram.of(b) == Histogram.of(a + b)


def test_cdf_ends_at_one_and_rises() -> None:
    xs, ys = Histogram.of([0.001, 0.002, 0.002, 0.5]).cdf()
    assert ys[-1] == 1.0 and ys == sorted(ys) and xs == sorted(xs)
    assert ys[0] == 0.0 and 0 < xs[0] <= 0.001 < xs[1]  # from the first bin's lower edge


def test_compact_result_keeps_pooled_percentiles_exactly() -> None:
    full = make_result(energy_per_token=(0.5, 0.6, 0.7))
    compact = full.without_samples()
    assert compact.latency() == full.latency()
    round_trip = Report.from_dict(json.loads(make_report([compact]).to_json()))
    assert round_trip.results[0].latency() == full.latency()
    assert round_trip.results[0].aggregate() == full.aggregate()


def test_without_stored_pooled_percentiles_only_exact_facts_are_given() -> None:
    full = make_result(energy_per_token=(0.5, 0.6))
    reps = tuple(r.without_samples() for r in full.repetitions)
    bare = BenchmarkResult(**{**vars(full), "repetitions": reps, "pooled_latency": None})
    pooled = bare.latency_summaries()["e2e_latency_s"]
    assert pooled.percentiles[50] is None  # not recoverable from per-repetition percentiles
    assert pooled.count == full.latency_summaries()["e2e_latency_s"].count
    assert pooled.mean == pytest.approx(full.latency()["e2e_latency_s"]["mean"])


def test_report_size_does_not_grow_with_tokens() -> None:
    def size(tokens: int) -> int:
        rep = replace(make_repetition(), itl_s=tuple(0.01 + i * 1e-7 for i in range(tokens)))
        result = replace(make_result(), repetitions=(rep,) * 3).without_samples()
        return len(make_report([result]).to_json())

    assert size(100_000) < 1.05 * size(100)  # wider counts and float digits only
    kept = replace(make_result(), repetitions=(replace(make_repetition(), itl_s=(0.01,) * 5000),))
    assert len(make_report([kept]).to_json()) > size(100_000)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(count=s["count"] + 1), "histogram counts sum to"),
        (lambda s: s["histogram"].update(offset=NUM_BINS), "out of range"),
    ],
)
def test_inconsistent_summary_is_refused_with_its_place(mutate: object, message: str) -> None:
    data = json.loads(make_report([make_result().without_samples()]).to_json())
    mutate(data["results"][0]["repetitions"][0]["latency"]["itl_s"])  # type: ignore[operator]
    from pytest_llmbench.errors import ReportError

    with pytest.raises(ReportError, match=message):
        Report.from_dict(data, source="r.json")


def test_empty_summary_has_no_statistics() -> None:
    summary = LatencySummary.of(())
    assert summary.count == 0 and all(v is None for v in summary.stats().values())
    assert math.isclose(LatencySummary.of([2.0]).percentiles[99] or 0, 2.0)
