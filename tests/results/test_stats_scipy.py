"""Our statistics against scipy.stats, numpy and closed forms, to 1e-9.

Before stats.py moved onto scipy this file compared the hand-written incomplete beta, Student's t
CDF and quantile and percentiles with scipy and numpy on a grid (all within 1e-9; the largest
gap, 8e-11 relative, was a t quantile); that code is gone. What is left to check is what is
still ours (Fieller's and Welch's intervals written out, the seeded bootstrap) and that the
library calls are the ones meant: Student's t against its closed forms for 1, 2 and infinitely
many degrees of freedom, percentiles against hand-computed values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pytest_llmbench import stats
from tests.results.factories import noisy

TOL = 1e-9
PS = (1e-6, 0.001, 0.025, 0.05, 0.3, 0.5, 0.7, 0.95, 0.975, 0.999, 1 - 1e-6)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


@pytest.mark.parametrize("p", PS)
def test_t_quantile_equals_closed_forms(p: float) -> None:
    # df = 1 is the Cauchy distribution; df = 2 inverts to (2p - 1) / sqrt(2 p (1 - p)); df = inf
    # is the normal distribution (checked through its CDF, math.erf).
    assert close(stats.t_quantile(p, 1), math.tan(math.pi * (p - 0.5)))
    assert close(stats.t_quantile(p, 2), (2 * p - 1) / math.sqrt(2 * p * (1 - p)))
    z = stats.t_quantile(p, math.inf)
    assert close(0.5 * (1 + math.erf(z / math.sqrt(2))), p)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 12.0, 300.0])
def test_two_sided_p_equals_closed_forms(t: float) -> None:
    assert close(stats.t_two_sided_p(t, 1), 1 - 2 * math.atan(t) / math.pi)
    assert close(stats.t_two_sided_p(-t, 2), 1 - t / math.sqrt(2 + t * t))
    assert close(stats.t_two_sided_p(t, math.inf), math.erfc(t / math.sqrt(2)))


def test_percentiles_by_linear_interpolation() -> None:
    assert stats.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert close(stats.percentile([float(v) for v in range(1, 11)], 90), 9.1)
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([1.0, 2.0], 0) == 1.0 and stats.percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError, match="within 0..100"):
        stats.percentile([1.0], 101)


SAMPLES = [
    (noisy(100.0, 0.01, nb, seed=nb), noisy(mean, rel, nc, seed=100 + nc))
    for nb, nc in ((2, 2), (3, 5), (5, 3), (8, 8), (20, 30))
    for mean, rel in ((100.0, 0.01), (104.0, 0.03), (80.0, 0.2))
]


@pytest.mark.parametrize(("baseline", "current"), SAMPLES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_welch_difference_interval_is_scipys(baseline, current, confidence: float) -> None:
    ours = stats.difference_interval(baseline, current, confidence)
    theirs = sps.ttest_ind(current, baseline, equal_var=False).confidence_interval(confidence)
    assert close(ours.low, float(theirs.low)) and close(ours.high, float(theirs.high))


@pytest.mark.parametrize(("baseline", "current"), SAMPLES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_fieller_ratio_interval_solves_its_quadratic(baseline, current, confidence: float) -> None:
    # Fieller's set {theta: (mc - theta mb)^2 <= t^2 (vc + theta^2 vb)}: scipy has no Fieller
    # interval, so the quadratic is solved here with numpy and scipy.stats' t quantile.
    ours = stats.ratio_interval(baseline, current, confidence)
    b, c = np.asarray(baseline), np.asarray(current)
    mb, mc = b.mean(), c.mean()
    vb, vc = b.var(ddof=1) / len(b), c.var(ddof=1) / len(c)
    va, vt = vc, (mc / mb) ** 2 * vb
    df = (va + vt) ** 2 / (va**2 / (len(c) - 1) + vt**2 / (len(b) - 1))
    t2 = sps.t.ppf(0.5 + confidence / 2, df) ** 2
    roots = np.roots([mb**2 - t2 * vb, -2 * mc * mb, mc**2 - t2 * vc])
    low, high = sorted(roots.real)
    assert close(ours.low, low) and close(ours.high, high), (ours, low, high)


@pytest.mark.parametrize(("baseline", "_"), SAMPLES[:6])
def test_summary_interval_of_the_mean_is_scipys(baseline, _) -> None:
    summary = stats.Summary.of(baseline, 0.95)
    low, high = sps.t.interval(0.95, len(baseline) - 1, np.mean(baseline), sps.sem(baseline))
    assert close(summary.ci_low, low) and close(summary.ci_high, high)


def test_percentile_bootstrap_agrees_with_scipys_in_distribution_only() -> None:
    # Two resampling schemes with different generators: the same interval to a few tenths of a
    # percent, never to 1e-9 (why stats.py keeps its own seeded bootstrap: see its docstring).
    b, c = noisy(100.0, 0.05, 30, seed=1), noisy(103.0, 0.05, 30, seed=2)
    ours = stats.ratio_interval(b, c, 0.95, "bootstrap")
    theirs = sps.bootstrap(
        (c, b),
        lambda x, y, axis: np.mean(x, axis=axis) / np.mean(y, axis=axis),
        n_resamples=stats.BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(stats.BOOTSTRAP_SEED),
    ).confidence_interval
    assert abs(ours.low - theirs.low) < 0.01 and abs(ours.high - theirs.high) < 0.01
    assert not (close(ours.low, theirs.low) and close(ours.high, theirs.high))
