"""Steps in a history of run-level values: E-divisive change points with a permutation test.

A history whose runs step (a driver update, a new runner, a merged speed-up) or trend is not one
distribution: a plain variance over it widens every noise band for as long as the old runs stay
in the history. Apache Otava (formerly Hunter) finds such steps with E-divisive means (Matteson
and James, 2014) and compares a new value with the newest segment only; this module does the
same on the gate's run means.

E-divisive splits a series where the energy distance between the two sides, scaled by their
sizes, is largest, keeps the split when a permutation test says that largest distance would be
rare among shuffles of the same values, and repeats within the pieces. Shuffles are drawn from a
generator seeded by the values themselves, so one history always gives the same segments.

Written here rather than imported: Otava pins numpy and scipy versions that conflict with the
inference engines, and pulls database and cloud clients; the ``signal-processing-algorithms``
package it grew from ships as source only. The statistic is a few lines of numpy.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

MIN_SEGMENT_RUNS = 3
"""Fewest runs on each side of a step: a shorter newest segment cannot be told from noise."""
SPLIT_SIGNIFICANCE = 0.01
"""A split is kept when at most this share of shuffles gives as large a statistic."""
PERMUTATIONS = 499


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
    permutations: int = PERMUTATIONS,
) -> list[ChangePoint]:
    """The significant steps of ``values`` (oldest first), ordered by position.

    Needs ``2 * min_size`` values to find any step; fewer give an empty list."""
    import numpy as np

    x = np.asarray([float(v) for v in values], dtype=float)
    if min_size < 2:
        raise ValueError("min_size must be >= 2 (each side needs a within-side distance)")
    if not np.all(np.isfinite(x)):
        raise ValueError("change_points needs finite values")
    rng = np.random.default_rng(_seed(x))
    cuts = [0, len(x)]
    p_at: dict[int, float] = {}
    while True:
        # The most significant split of any segment (the larger statistic breaks ties).
        best: tuple[float, float, int] | None = None  # (p, -statistic, position)
        for lo, hi in zip(cuts, cuts[1:], strict=False):
            if hi - lo < 2 * min_size:
                continue
            position, statistic, p = _best_split(x[lo:hi], min_size, permutations, rng)
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


def _best_split(
    x: NDArray[np.float64], min_size: int, permutations: int, rng: np.random.Generator
) -> tuple[int, float, float]:
    """(position, statistic, permutation p-value) of the best split of ``x``."""
    import numpy as np

    arr = np.asarray(x)
    shuffled = np.stack([arr, *(rng.permutation(arr) for _ in range(permutations))])
    stats = _split_statistics(shuffled, min_size)  # (permutations + 1, splits)
    observed = stats[0]
    position = int(np.argmax(observed))
    top = float(observed[position])
    maxima = stats.max(axis=1)
    # Ties within rounding count as "as large": a flat series never splits.
    p = float(np.count_nonzero(maxima >= top - 1e-12 * max(abs(top), 1.0)) / len(maxima))
    return position + min_size, top, p


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


def _seed(x: NDArray[np.float64]) -> int:
    """A seed from the values' bytes: the same history always draws the same shuffles."""
    import numpy as np

    blob = b"".join(struct.pack("<d", float(v)) for v in np.asarray(x).ravel())
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")
