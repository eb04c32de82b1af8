"""How much a run-level value varies between runs, and the band a new run must leave to count.

Repetitions of one run share a process, a compile and a clock state; separate runs do not, and
on real runners the variation between runs is the larger part (a GPU benchmark's run means moved
6-19% on a launch-bound tiny model, while each run's own interval was a few percent). So the gate
judges a new run against the *history* of run-level values, the way Bencher's t-test threshold
and Perfherder judge a push: a prediction interval for one new run given N earlier ones.

The model: the value of repetition ``i`` of run ``j`` is ``mu + b_j + e_ij``, with ``b_j`` the
run's own offset (variance ``between``) and ``e_ij`` the repetition noise (variance ``within``).
A run of ``r`` repetitions has mean variance ``between + within / r``. For a current run of
``r_c`` repetitions against the mean of N history run means, the variance of the difference is

    between + max(within, current_within) / r_c + var(run means) / N

with ``within`` pooled from every run's repetitions (the current run's included), and
``current_within`` the current run's own variance over its repetitions, so that a run noisier
than its history widens its own band; ``var(run means)`` the sample variance of the history's run
means, and ``between = max(0, var(run means) - within * mean(1 / r_j))``. The quantile is
Student's t with N - 1 degrees of freedom: exact for normal noise when the current run has the
history's repetition count, conservative otherwise.

A history that steps (:mod:`pytest_llmbench.gate.changepoint`) is cut into segments at its
steps: the history mean is then the newest segment's, N its run count, ``var(run means)`` is
pooled around each segment's own mean (so a step does not count as noise), and the quantile has
N_all - S degrees of freedom for S segments.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pytest_llmbench.stats import t_quantile

MIN_HISTORY_RUNS = 3
"""Fewer history runs than this cannot judge between-run noise: such comparisons never fail."""


@dataclass(frozen=True)
class NoiseModel:
    """Between-run noise of one metric of one benchmark, in the metric's unit.

    ``se`` is the standard error of (current run mean - history mean); ``df`` the degrees of
    freedom of its t quantile.
    """

    runs: int
    history_mean: float
    current_mean: float
    run_sd: float  # sample sd of the history's run means
    within_sd: float  # pooled sd of one repetition around its run's mean
    between_sd: float  # sd of a run's own offset
    current_repetitions: int
    se: float
    df: int
    segment_runs: int = 0  # runs of the newest segment, which the mean comes from (0: all runs)
    segments: int = 1

    @property
    def change(self) -> float:
        """Current mean minus history mean, in the metric's unit."""
        return self.current_mean - self.history_mean

    def band(self, alpha: float) -> float:
        """One-sided band: unchanged code exceeds it with probability ``alpha`` (metric's unit)."""
        if self.df < 1:
            return math.inf
        return t_quantile(1.0 - alpha, self.df) * self.se

    def between_share(self) -> float:
        """Part of the current run's variance that comes from between-run offsets (0..1)."""
        b = self.between_sd**2
        total = b + self.within_sd**2 / max(self.current_repetitions, 1)
        return b / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def noise_model(
    history: Sequence[Sequence[float]],
    current: Sequence[float],
    starts: Sequence[int] = (0,),
) -> NoiseModel:
    """The noise model of ``current`` (one run's repetition values) against ``history`` (one
    sequence of repetition values per earlier run, none empty), whose segments begin at the run
    indices ``starts`` (``(0,)``: one segment). Needs >= 1 history run and a current value; with
    as many segments as runs ``df`` is 0 and every band is infinite."""
    runs = [list(map(float, run)) for run in history]
    cur = [float(v) for v in current]
    if not runs or not cur or not all(runs):
        raise ValueError("noise_model needs history runs with values and one current value")
    bounds = sorted({0, *starts})
    if bounds[-1] >= len(runs) or bounds[0] < 0:
        raise ValueError(f"segment starts {list(starts)} do not lie within {len(runs)} runs")
    means = [statistics.fmean(run) for run in runs]
    n = len(means)
    pieces = [means[a:b] for a, b in zip(bounds, [*bounds[1:], n], strict=True)]
    newest = pieces[-1]
    history_mean = statistics.fmean(newest)
    current_mean = statistics.fmean(cur)
    residual = sum((m - statistics.fmean(piece)) ** 2 for piece in pieces for m in piece)
    run_var = residual / (n - len(pieces)) if n > len(pieces) else 0.0

    squares = sum((v - m) ** 2 for run, m in zip(runs, means, strict=True) for v in run)
    squares += sum((v - current_mean) ** 2 for v in cur)
    dof = sum(len(run) - 1 for run in runs) + len(cur) - 1
    within_var = squares / dof if dof > 0 else 0.0

    mean_inverse_reps = statistics.fmean(1.0 / len(run) for run in runs)
    between_var = max(0.0, run_var - within_var * mean_inverse_reps)
    current_var = statistics.variance(cur) if len(cur) > 1 else 0.0
    se_squared = between_var + max(within_var, current_var) / len(cur) + run_var / len(newest)
    return NoiseModel(
        runs=n,
        history_mean=history_mean,
        current_mean=current_mean,
        run_sd=math.sqrt(run_var),
        within_sd=math.sqrt(within_var),
        between_sd=math.sqrt(between_var),
        current_repetitions=len(cur),
        se=math.sqrt(se_squared),
        df=n - len(pieces),
        segment_runs=len(newest),
        segments=len(pieces),
    )


def row_alpha(false_alarm_rate: float, comparisons: int) -> float:
    """Each comparison's one-sided level so that ``comparisons`` of them together raise a false
    alarm on unchanged code with probability at most ``false_alarm_rate`` (Bonferroni)."""
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false alarm rate {false_alarm_rate} is not within (0, 1)")
    return false_alarm_rate / max(comparisons, 1)
