"""Steps in a history: E-divisive change points, the segmented noise model, and the gate on both."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.gate import Verdict, compare, parse_fail_on
from pytest_llmbench.gate.changepoint import MIN_SEGMENT_RUNS, change_points, segment_starts
from pytest_llmbench.gate.noise import noise_model
from tests.results.factories import make_report, make_result, noisy

RULES = parse_fail_on("energy_per_output_token:+3%,output_throughput:-3%")


def _series(levels: list[tuple[float, int]], sd: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(level, sd) for level, n in levels for _ in range(n)]


def test_a_step_of_eight_noise_widths_is_found_where_it_is() -> None:
    values = _series([(100.0, 6), (108.0, 6)], sd=1.0, seed=3)
    (point,) = change_points(values)
    assert point.index == 6 and point.p_value <= 0.01
    assert point.relative_change == pytest.approx(0.08, abs=0.015)


def test_a_staircase_gives_a_segment_per_level() -> None:
    # A history that drifts in steps (8 noise widths each, six runs a level): every draw finds
    # both steps, where they are.
    for seed in range(10):
        points = change_points(_series([(100.0, 6), (108.0, 6), (116.0, 6)], 1.0, seed))
        assert segment_starts(points) == (0, 6, 12)


def test_a_step_out_and_back_is_a_known_limit() -> None:
    # Binary segmentation judges the first split against the two other levels pooled: up by 10
    # then down by 15 is found only where one side is distinct enough. Never a step elsewhere.
    for seed in range(10):
        points = change_points(_series([(100.0, 6), (110.0, 6), (95.0, 6)], 1.0, seed))
        assert {p.index for p in points} <= {6, 12}


def test_steady_runs_split_about_as_often_as_the_significance_level() -> None:
    rng = random.Random(2026)
    splits = sum(bool(change_points([rng.gauss(0.0, 1.0) for _ in range(12)])) for _ in range(300))
    assert splits / 300 <= 0.01  # designed at 0.1%; seeded, so this cannot flake


@given(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=2 * MIN_SEGMENT_RUNS - 1))
def test_a_history_shorter_than_two_segments_never_splits(values: list[float]) -> None:
    assert change_points(values) == []


@given(st.floats(-1e3, 1e3), st.integers(2 * MIN_SEGMENT_RUNS, 20))
def test_a_flat_history_never_splits(value: float, n: int) -> None:
    assert change_points([value] * n) == []


def test_the_same_history_always_gives_the_same_segments() -> None:
    values = _series([(1.0, 4), (1.03, 5)], sd=0.01, seed=9)
    assert change_points(values) == change_points(list(values))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        change_points([1.0, float("nan")] * 4)
    with pytest.raises(ValueError, match="min_size"):
        change_points([1.0] * 8, min_size=1)


def test_the_segmented_model_takes_its_mean_from_the_newest_segment_and_its_noise_from_all() -> (
    None
):
    runs = [[v] for v in _series([(100.0, 6), (108.0, 6)], sd=1.0, seed=3)]
    plain = noise_model(runs, [108.0])
    cut = noise_model(runs, [108.0], starts=(0, 6))
    assert cut.segments == 2 and cut.segment_runs == 6 and cut.df == len(runs) - 2
    assert cut.history_mean == pytest.approx(sum(r[0] for r in runs[6:]) / 6)
    assert cut.run_sd < plain.run_sd / 2  # the step is no longer counted as noise
    with pytest.raises(ValueError, match="segment starts"):
        noise_model(runs, [1.0], starts=(0, 12))


def _history(levels: list[tuple[float, int]], seed: int = 1) -> list:
    """Reports whose energy per token follows ``levels``, 0.3% noise between runs."""
    rng = random.Random(seed)
    reports = []
    for i, level in enumerate(v for lv, n in levels for v in [lv] * n):
        run = level * (1 + rng.gauss(0, 0.003))
        result = make_result(
            energy_per_token=noisy(run, 0.002, 5, seed * 100 + i),
            throughput=noisy(1000.0 / level, 0.002, 5, seed * 200 + i),
        )
        reports.append(make_report([result], started_at=f"2026-01-01T00:{i:02d}:00+00:00"))
    return reports


def _current(level: float, seed: int, energy_factor: float = 1.0):
    result = make_result(
        energy_per_token=noisy(level * energy_factor, 0.002, 5, seed),
        throughput=noisy(1000.0 / level, 0.002, 5, seed + 1),
    )
    return make_report([result], started_at="2026-01-02T00:00:00+00:00")


def test_after_a_step_up_unchanged_code_passes_and_the_step_is_shown() -> None:
    # +8% energy per token from run 6 on (e.g. a driver update): a plain history would call
    # every later run a regression; judged against the newest segment it passes.
    history = _history([(0.50, 6), (0.54, 5)])
    current = _current(0.54, 77)
    result = compare(history, current, RULES)
    row = next(r for r in result.rows if r.metric == "energy_per_output_token")
    assert not result.failed, result.lines()
    step = next(s for s in row.steps if s.index == 6)  # the injected one (others: chance)
    assert not step.better and step.change == pytest.approx(0.08, abs=0.01)
    assert row.noise is not None and row.noise.segment_runs == 5
    text = "\n".join(result.lines())
    assert "history step in test_bench.py::test_a[pytorch] energy_per_output_token: +" in text
    assert "from 2026-01-01T00:06:00+00:00 on" in text and "unexplained" in text
    assert "(5 of 11 since a step)" in result.table()
    assert 6 in [s["index"] for s in result.to_dict()["rows"][0]["steps"]]


def test_a_three_percent_regression_after_a_step_is_still_caught() -> None:
    history = _history([(0.50, 6), (0.54, 5)])
    current = _current(0.54, 78, energy_factor=1.03)
    result = compare(history, current, RULES)
    assert [r.metric for r in result.regressions] == ["energy_per_output_token"]


def test_an_improvement_step_starts_a_new_baseline() -> None:
    history = _history([(0.54, 6), (0.50, 6)])
    back_to_old = _current(0.54, 79)
    result = compare(history, back_to_old, RULES)
    row = next(r for r in result.rows if r.metric == "energy_per_output_token")
    assert row.steps and row.steps[0].better
    assert row.verdict is Verdict.REGRESSION  # judged against the improved level
    assert any("an improvement: a new baseline starts there" in n for n in result.lines())


def test_a_history_too_short_for_steps_says_it_is_judged_as_one_series() -> None:
    history = _history([(0.50, 4)])
    current = _current(0.50, 80)
    result = compare(history, current, RULES)
    assert any(
        "steps in a history are looked for from 6 runs on (have 4)" in n for n in result.notes
    )
    assert all(not r.steps for r in result.rows)
