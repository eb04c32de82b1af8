"""Steps in a history of run-level values: E-divisive change points with a permutation test.

A history whose runs step (a driver update, a new runner, a merged speed-up) or trend is not one
distribution: a plain variance over it widens every noise band for as long as the old runs stay
in the history. Apache Otava (formerly Hunter) finds such steps with E-divisive means (Matteson
and James, 2014) and compares a new value with the newest segment only; this module does the
same on the gate's run means.

E-divisive splits a series where the energy distance between the two sides, scaled by their
sizes, is largest, and repeats within the pieces while splits are significant. Significance
follows Otava: Student's t test of the two sides' means (pooled variance), its p-value multiplied
by the number of places the split could have been (Bonferroni, for choosing the best of them).
Otava chose a t test over E-divisive's original permutation test because it is deterministic
and, on the short series a history is (10-20 runs), far more powerful: with three runs after a
step, a permutation test cannot reach 1% however large the step.

Written here rather than imported: Otava pins numpy and scipy versions that conflict with the
inference engines, and pulls database and cloud clients; the ``signal-processing-algorithms``
package it grew from ships as source only. The statistic is a few lines of numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

MIN_SEGMENT_RUNS = 3
"""Fewest runs on each side of a step: a shorter newest segment cannot be told from noise."""
SPLIT_SIGNIFICANCE = 0.001
"""A split is kept when its Bonferroni-adjusted t-test p-value is at most this (Otava's default
maximum p-value): a chance split of steady runs biases the newest segment's mean, so splits must
be rare where there is no step."""


@dataclass(frozen=True)
class ChangePoint:
    """A step before run ``index`` (0-based): runs ``index..`` differ from the runs before."""

    index: int
    p_value: float
    before_mean: float  # mean of the segment ending at the step, value's unit
    after_mean: float  # mean of the segment starting at it

    @property
    def relative_change(self) -> float:
        """(after - before) / |before|; nan when before is 0."""
        return (
            (self.after_mean - self.before_mean) / abs(self.before_mean)
            if self.before_mean
            else math.nan
        )


def change_points(
    values: Sequence[float],
    *,
    min_size: int = MIN_SEGMENT_RUNS,
    significance: float = SPLIT_SIGNIFICANCE,
) -> list[ChangePoint]:
    """The significant steps of ``values`` (oldest first), ordered by position.

    Needs ``2 * min_size`` values to find any step; fewer give an empty list."""
    import numpy as np

    x = np.asarray([float(v) for v in values], dtype=float)
    if min_size < 2:
        raise ValueError("min_size must be >= 2 (each side needs a within-side distance)")
    if not np.all(np.isfinite(x)):
        raise ValueError("change_points needs finite values")
    cuts = [0, len(x)]
    p_at: dict[int, float] = {}
    while True:
        # The most significant split of any segment (the larger statistic breaks ties).
        best: tuple[float, float, int] | None = None  # (p, -statistic, position)
        for lo, hi in zip(cuts, cuts[1:], strict=False):
            if hi - lo < 2 * min_size:
                continue
            position, statistic, p = _best_split(x[lo:hi], min_size)
            if p <= significance and (best is None or (p, -statistic) < best[:2]):
                best = (p, -statistic, lo + position)
        if best is None:
            break
        cuts = sorted([*cuts, best[2]])
        p_at[best[2]] = best[0]
    return [
        ChangePoint(cut, p_at[cut], float(x[before:cut].mean()), float(x[cut:after].mean()))
        for before, cut, after in zip(cuts, cuts[1:], cuts[2:], strict=False)
    ]


def segment_starts(points: Sequence[ChangePoint]) -> tuple[int, ...]:
    """Index of the first run of each segment: ``(0, *steps)``."""
    return (0, *(p.index for p in points))


def _best_split(x: NDArray[np.float64], min_size: int) -> tuple[int, float, float]:
    """(position, statistic, adjusted p-value) of the best split of ``x``."""
    import numpy as np

    from pytest_llmbench.stats import t_two_sided_p

    stats = _split_statistics(x[None, :], min_size)[0]
    offset = int(np.argmax(stats))
    position = offset + min_size
    left, right = x[:position], x[position:]
    df = len(x) - 2
    pooled = (((left - left.mean()) ** 2).sum() + ((right - right.mean()) ** 2).sum()) / df
    gap = abs(float(left.mean() - right.mean()))
    se = float(np.sqrt(pooled * (1 / len(left) + 1 / len(right))))
    if gap <= 1e-12 * max(float(np.abs(x).max()), 1.0):
        p = 1.0  # a flat series, or sides with equal means, never splits
    elif se == 0.0:
        p = 0.0  # two flat levels
    else:
        p = t_two_sided_p(gap / se, df)
    return position, float(stats[offset]), min(1.0, p * len(stats))


def _split_statistics(rows: NDArray[np.float64], min_size: int) -> NDArray[np.float64]:
    """Scaled energy distance of every split ``tau`` in ``[min_size, n - min_size]`` of each row.

    Q(tau) = m k / n * (2 mean|l - r| - mean_{i<j}|l_i - l_j| - mean_{i<j}|r_i - r_j|), with m and
    k the two sides' lengths, from 2-D prefix sums of the distance matrix (all splits at once)."""
    import numpy as np

    x = np.asarray(rows, dtype=float)
    n = x.shape[1]
    d = np.abs(x[:, :, None] - x[:, None, :])
    c = d.cumsum(axis=1).cumsum(axis=2)
    tau = np.arange(min_size, n - min_size + 1)
    m = tau.astype(float)
    k = n - m
    left = c[:, tau - 1, tau - 1]  # sum over both orders of left pairs
    cross = c[:, tau - 1, n - 1] - left
    right = c[:, n - 1, n - 1][:, None] - left - 2 * cross
    energy = 2 * cross / (m * k) - left / (m * (m - 1)) - right / (k * (k - 1))
    return m * k / n * energy
