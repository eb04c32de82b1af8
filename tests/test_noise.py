"""The between-run noise model: its formula, its limits, and its false-alarm rate."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.gate.noise import noise_model, row_alpha
from pytest_llmbench.stats import t_quantile


def test_equal_repetitions_give_the_classical_prediction_interval() -> None:
    history = [[1.0, 1.1, 0.9], [2.0, 2.1, 1.9], [1.5, 1.6, 1.4], [1.2, 1.3, 1.1]]
    current = [1.4, 1.5, 1.3]
    model = noise_model(history, current)
    means = [statistics.fmean(r) for r in history]
    assert model.runs == 4 and model.df == 3
    assert model.history_mean == pytest.approx(statistics.fmean(means))
    assert model.run_sd == pytest.approx(statistics.stdev(means))
    # between-run offsets dominate: se is the prediction interval's s * sqrt(1 + 1/N)
    assert model.se == pytest.approx(statistics.stdev(means) * math.sqrt(1 + 1 / 4))
    assert model.band(0.01) == pytest.approx(t_quantile(0.99, 3) * model.se)


def test_only_repetition_noise_means_no_between_run_offset() -> None:
    rng = random.Random(1)
    history = [[rng.gauss(10, 1) for _ in range(20)] for _ in range(10)]
    model = noise_model(history, [rng.gauss(10, 1) for _ in range(20)])
    assert model.within_sd == pytest.approx(1.0, rel=0.15)
    assert model.between_sd < 0.3 and model.between_share() < 0.5


def test_a_noisier_current_run_widens_its_own_band() -> None:
    history = [[1.0, 1.0, 1.0, 1.0], [1.01, 1.01, 1.01, 1.01], [0.99, 0.99, 0.99, 0.99]]
    calm = noise_model(history, [1.0, 1.0, 1.0, 1.0])
    wild = noise_model(history, [0.7, 1.3, 0.8, 1.2])
    assert wild.se > 5 * calm.se


def test_one_history_run_cannot_bound_anything() -> None:
    model = noise_model([[1.0, 1.1]], [5.0, 5.1])
    assert model.df == 0 and math.isinf(model.band(0.01))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        noise_model([], [1.0])
    with pytest.raises(ValueError):
        row_alpha(1.5, 2)
    assert row_alpha(0.01, 4) == pytest.approx(0.0025)
    assert row_alpha(0.01, 0) == 0.01


@given(
    history=st.lists(
        st.lists(st.floats(0.1, 100, allow_nan=False), min_size=1, max_size=6),
        min_size=2,
        max_size=12,
    ),
    current=st.lists(st.floats(0.1, 100, allow_nan=False), min_size=1, max_size=6),
    shift=st.floats(-50, 50),
)
def test_the_band_is_finite_non_negative_and_shift_invariant(
    history: list[list[float]], current: list[float], shift: float
) -> None:
    model = noise_model(history, current)
    moved = noise_model([[v + shift for v in r] for r in history], [v + shift for v in current])
    assert model.se >= 0 and math.isfinite(model.band(0.005))
    assert moved.se == pytest.approx(model.se, rel=1e-6, abs=1e-6)
    assert moved.change == pytest.approx(model.change, rel=1e-6, abs=1e-6)


def test_false_alarm_rate_matches_the_design_level_on_normal_noise() -> None:
    # 4,000 unchanged runs, 10-run histories, runs 5% apart, repetitions 2%: one-sided 1% level.
    t = t_quantile(0.99, 9)
    alarms = 0
    for seed in range(4000):
        rng = random.Random(seed)
        runs = []
        for _ in range(11):
            mean = rng.gauss(1.0, 0.05)
            runs.append([rng.gauss(mean, 0.02) for _ in range(5)])
        model = noise_model(runs[:10], runs[10])
        alarms += model.change > t * model.se
    assert 0.005 <= alarms / 4000 <= 0.016  # 1% +- 3 standard errors of a binomial
