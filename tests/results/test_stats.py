"""Statistics: percentiles match numpy, t quantiles match tables, intervals cover at their rate."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmbench.stats import (
    Summary,
    difference_interval,
    percentile,
    ratio_interval,
    t_quantile,
    t_two_sided_p,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)

# Two-sided 95% and 99% critical values, from published t tables (df -> t_{0.975}, t_{0.995}).
T_TABLE = {
    1: (12.706204736, 63.656741163),
    2: (4.302652730, 9.924843201),
    3: (3.182446305, 5.840909310),
    4: (2.776445105, 4.604094871),
    5: (2.570581836, 4.032142984),
    9: (2.262157163, 3.249835542),
    19: (2.093024054, 2.860934606),
    29: (2.045229642, 2.756385904),
    120: (1.979930405, 2.617421145),
}


@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_t_quantile_matches_published_table(df: int) -> None:
    t975, t995 = T_TABLE[df]
    assert t_quantile(0.975, df) == pytest.approx(t975, rel=1e-8)
    assert t_quantile(0.995, df) == pytest.approx(t995, rel=1e-8)
    assert t_quantile(0.025, df) == pytest.approx(-t975, rel=1e-8)


def test_t_quantile_tends_to_the_normal_quantile() -> None:
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959963984540054, rel=1e-12)
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959963984540054, rel=1e-6)


@given(p=st.floats(0.001, 0.999), df=st.floats(0.5, 500))
@settings(max_examples=200, deadline=None)
def test_t_quantile_inverts_the_two_sided_p_value(p: float, df: float) -> None:
    assert t_two_sided_p(t_quantile(p, df), df) == pytest.approx(2 * min(p, 1 - p), abs=1e-10)


@given(st.lists(finite, min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    np = pytest.importorskip("numpy")
    assert percentile(values, q) == pytest.approx(
        float(np.percentile(values, q)), rel=1e-9, abs=1e-9
    )


def test_percentile_by_hand() -> None:
    # numpy: positions (n-1)*q; [1,2,3,4,10]: p90 at 3.6 -> 4 + 0.6*6 = 7.6
    assert percentile([10, 1, 4, 3, 2], 90) == pytest.approx(7.6)
    assert percentile([1, 2], 50) == 1.5
    assert percentile([5], 99) == 5


@given(st.lists(finite, min_size=1, max_size=40))
def test_summary_fields(values: list[float]) -> None:
    s = Summary.of(values)
    assert s.n == len(values)
    assert s.min <= s.median <= s.max
    assert s.min - 1e-6 <= s.mean <= s.max + 1e-6
    assert s.p50 == pytest.approx(statistics.median(values), rel=1e-9, abs=1e-9)
    assert s.p50 <= s.p90 <= s.p99 <= s.max
    if len(values) == 1:
        assert s.stdev is None and s.ci_low is None
    else:
        assert s.ci_low is not None and s.ci_high is not None
        assert s.ci_low <= s.mean <= s.ci_high


def test_summary_confidence_interval_by_hand() -> None:
    s = Summary.of([10.0, 12.0, 14.0])  # mean 12, sd 2, se 2/sqrt(3), t(2) = 4.3027
    half = 4.302652730 * 2 / math.sqrt(3)
    assert (s.ci_low, s.ci_high) == (pytest.approx(12 - half), pytest.approx(12 + half))


def test_summary_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no values"):
        Summary.of([])


def _coverage(method: str, n: int, rel_sd: float, ratio: float, seed: int, trials: int) -> float:
    rng = random.Random(seed)
    hits = 0
    for _ in range(trials):
        base = [rng.gauss(100.0, 100.0 * rel_sd) for _ in range(n)]
        cur = [rng.gauss(100.0 * ratio, 100.0 * ratio * rel_sd) for _ in range(n)]
        interval = ratio_interval(base, cur, 0.95, method, resamples=400, seed=seed)
        hits += interval.contains(ratio)
    return hits / trials


@given(
    n=st.integers(3, 12),
    rel_sd=st.floats(0.005, 0.15),
    ratio=st.floats(0.7, 1.4),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=20, deadline=None, derandomize=True)
def test_welch_ratio_interval_covers_the_true_ratio(
    n: int, rel_sd: float, ratio: float, seed: int
) -> None:
    assert _coverage("welch", n, rel_sd, ratio, seed, trials=200) >= 0.90


def test_bootstrap_ratio_interval_covers_with_many_repetitions() -> None:
    # The percentile bootstrap is only offered for many repetitions; with 25 it is close to 95%.
    assert _coverage("bootstrap", 25, 0.05, 1.1, seed=1, trials=150) >= 0.88


def test_bootstrap_undercovers_with_few_repetitions_which_is_why_welch_is_default() -> None:
    welch = _coverage("welch", 3, 0.05, 1.0, seed=7, trials=300)
    boot = _coverage("bootstrap", 3, 0.05, 1.0, seed=7, trials=300)
    assert welch >= 0.92
    assert boot < 0.85 < welch


def test_ratio_interval_is_deterministic_and_contains_the_estimate() -> None:
    base, cur = [1.0, 1.1, 0.9, 1.05], [1.2, 1.25, 1.15, 1.3]
    for method in ("welch", "bootstrap"):
        a = ratio_interval(base, cur, method=method)
        assert a == ratio_interval(base, cur, method=method)
        assert a.low < a.estimate < a.high


def test_ratio_interval_without_noise_is_a_point() -> None:
    i = ratio_interval([2.0, 2.0, 2.0], [3.0, 3.0, 3.0])
    assert (i.low, i.estimate, i.high) == (
        pytest.approx(1.5),
        pytest.approx(1.5),
        pytest.approx(1.5),
    )


def test_ratio_interval_is_unbounded_with_one_repetition() -> None:
    i = ratio_interval([2.0], [3.0, 3.1])
    assert not i.bounded and "2 repetitions" in i.note
    assert i.to_dict()["low"] is None


def test_fieller_is_unbounded_when_the_baseline_mean_is_noise() -> None:
    i = ratio_interval([-1.0, 1.0, 0.5], [3.0, 3.1, 2.9])
    assert not i.bounded and "distinguishable from 0" in i.note


def test_ratio_interval_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="welch, bootstrap"):
        ratio_interval([1.0, 2.0], [1.0, 2.0], method="magic")


def test_difference_interval_by_hand() -> None:
    # equal variances and sizes: df = 2(n-1) = 4, se = sqrt(2 * 0.01 / 3)
    i = difference_interval([1.0, 1.1, 0.9], [2.0, 2.1, 1.9])
    half = 2.776445105 * math.sqrt(2 * 0.01 / 3)
    assert i.estimate == pytest.approx(1.0)
    assert (i.low, i.high) == (pytest.approx(1.0 - half), pytest.approx(1.0 + half))
