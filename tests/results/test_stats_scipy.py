"""Our hand-written statistics against scipy.stats / numpy on a grid of inputs, to 1e-9.

Written before stats.py moved onto scipy: it shows the old code and the library agree, so the
switch changes no interval, band or verdict.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from pytest_llmbench import stats
from tests.results.factories import noisy

TOL = 1e-9
DFS = (1, 1.5, 2, 2.7, 3, 4, 5, 7.3, 9, 10, 19, 30, 100, 1e4, math.inf)
TS = (-40.0, -6.0, -2.5, -1.0, -0.3, 0.0, 0.2, 1.0, 1.96, 3.1, 8.0, 50.0)
PS = (1e-6, 0.0005, 0.001, 0.0025, 0.005, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.975)
PS = (*PS, 0.995, 0.999, 0.9995, 1 - 1e-6)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


@pytest.mark.parametrize(("a", "b"), list(itertools.product((0.5, 1, 2.5, 5, 15, 60), repeat=2)))
def test_incomplete_beta(a: float, b: float) -> None:
    for x in np.linspace(0.0, 1.0, 41):
        assert close(stats.betainc(a, b, float(x)), float(special.betainc(a, b, x))), (a, b, x)


@pytest.mark.parametrize("df", DFS)
def test_t_cdf_and_quantile(df: float) -> None:
    for t in TS:
        assert close(stats.t_cdf(t, df), float(sps.t.cdf(t, df))), (t, df)
    for p in PS:
        ours, theirs = stats.t_quantile(p, df), float(sps.t.ppf(p, df))
        assert close(ours, theirs), (p, df, ours, theirs)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 101])
def test_percentiles_are_numpys_linear(n: int) -> None:
    values = noisy(10.0, 0.2, n, seed=n)
    for q in np.linspace(0, 100, 21):
        assert close(stats.percentile(values, float(q)), float(np.percentile(values, q)))


SAMPLES = [
    (noisy(100.0, 0.01, nb, seed=nb), noisy(mean, rel, nc, seed=100 + nc))
    for nb, nc in ((2, 2), (3, 5), (5, 3), (8, 8), (20, 30))
    for mean, rel in ((100.0, 0.01), (104.0, 0.03), (80.0, 0.2))
]


@pytest.mark.parametrize(("baseline", "current"), SAMPLES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_welch_difference_interval(baseline, current, confidence: float) -> None:
    ours = stats.difference_interval(baseline, current, confidence)
    theirs = sps.ttest_ind(current, baseline, equal_var=False).confidence_interval(confidence)
    assert close(ours.low, float(theirs.low)) and close(ours.high, float(theirs.high))


@pytest.mark.parametrize(("baseline", "current"), SAMPLES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_fieller_ratio_interval(baseline, current, confidence: float) -> None:
    # Fieller's set {theta: (mc - theta mb)^2 <= t^2 (vc + theta^2 vb)}: scipy has no Fieller
    # interval, so the quadratic is solved here with numpy and scipy's t quantile.
    ours = stats.ratio_interval(baseline, current, confidence)
    b, c = np.asarray(baseline), np.asarray(current)
    mb, mc = b.mean(), c.mean()
    vb, vc = b.var(ddof=1) / len(b), c.var(ddof=1) / len(c)
    theta = mc / mb
    va, vt = vc, theta**2 * vb
    df = (va + vt) ** 2 / (va**2 / (len(c) - 1) + vt**2 / (len(b) - 1))
    t2 = sps.t.ppf(0.5 + confidence / 2, df) ** 2
    roots = np.roots([mb**2 - t2 * vb, -2 * mc * mb, mc**2 - t2 * vc])
    low, high = sorted(roots.real)
    assert close(ours.low, low) and close(ours.high, high), (ours, low, high)


@pytest.mark.parametrize(("baseline", "_"), SAMPLES[:6])
def test_summary_interval_of_the_mean(baseline, _) -> None:
    summary = stats.Summary.of(baseline, 0.95)
    low, high = sps.t.interval(0.95, len(baseline) - 1, np.mean(baseline), sps.sem(baseline))
    assert close(summary.ci_low, low) and close(summary.ci_high, high)


def test_percentile_bootstrap_agrees_with_scipys_in_distribution_only() -> None:
    # Two resampling schemes with different generators: the same interval to a few tenths of a
    # percent, never to 1e-9. This is why stats.py keeps its own seeded bootstrap.
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
