"""Statistics of repeated measurements: summaries, Student-t intervals, ratio intervals.

Distributions come from scipy (Student's t through ``scipy.special``, the functions
``scipy.stats.t`` calls) and percentiles from numpy, both imported inside the functions that use
them so that importing the plugin stays cheap. What scipy has no function for is written here,
each saying why: Fieller's interval, the Welch interval it shares its degrees of freedom with
(equal to ``scipy.stats.ttest_ind(..., equal_var=False).confidence_interval``, which the tests
check), and the seeded bootstrap.

Which ratio interval is the default, and why
-------------------------------------------
``ratio_interval(..., method="welch")`` (the default) is Fieller's interval for the ratio of two
independent means, with Welch-Satterthwaite degrees of freedom. GPU benchmarks typically have
3-10 repetitions; with so few values the percentile bootstrap is too narrow (a mean of 3 values
has only 10 distinct resamples, and the bootstrap variance is biased by (n-1)/n), so it flags
noise as regressions. Fieller's interval is exact for normal noise, needs no seed, is asymmetric
where it should be, and becomes unbounded (never a regression) when the baseline mean itself is
not distinguishable from zero. ``method="bootstrap"`` (seeded percentile bootstrap) is offered for
skewed noise with many repetitions (>= 20 per side).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

RATIO_METHODS = ("welch", "bootstrap")
DEFAULT_RATIO_METHOD = "welch"
DEFAULT_CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240917  # fixed: the same data always gives the same verdict


# -- percentiles -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation: numpy's default ("linear") method."""
    import numpy as np

    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is not within 0..100")
    return float(np.percentile(np.asarray(values, dtype=float), q))


# -- Student t -------------------------------------------------------------------------------------
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` (real, > 0, may be inf) degrees of freedom.

    scipy's ``stdtrit``: the routine ``scipy.stats.t.ppf`` calls, without the distribution
    object's overhead (20 us against 500 us a call) or the import of scipy.stats."""
    from scipy.special import stdtrit

    if not 0.0 < p < 1.0:
        raise ValueError(f"probability {p} is not within (0, 1)")
    if not df > 0:
        raise ValueError(f"degrees of freedom {df} is not > 0")
    if math.isinf(df):  # the normal limit, spelled out: older scipy gives nan for df = inf
        from scipy.special import ndtri

        return float(ndtri(p))
    return float(stdtrit(df, p))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (scipy's ``stdtr``)."""
    from scipy.special import stdtr

    if not df > 0:
        raise ValueError(f"degrees of freedom {df} is not > 0")
    if math.isinf(df):
        return math.erfc(abs(t) / math.sqrt(2.0))
    return float(2.0 * stdtr(df, -abs(t)))


# -- summaries -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of repeated measurements of one metric (values in its own unit).

    ``stdev`` is the sample standard deviation (n - 1); it, and the confidence interval of the
    mean (Student t), are None for fewer than two values.
    """

    n: int
    mean: float
    median: float
    stdev: float | None
    min: float
    max: float
    ci_low: float | None
    ci_high: float | None
    p50: float
    p90: float
    p99: float
    confidence: float = DEFAULT_CONFIDENCE

    @classmethod
    def of(cls, values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Summary:
        if not values:
            raise ValueError("no values to summarise")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence {confidence} is not within (0, 1)")
        data = [float(v) for v in values]
        n = len(data)
        mean = statistics.fmean(data)
        stdev = statistics.stdev(data) if n > 1 else None
        ci_low = ci_high = None
        if stdev is not None:
            half = t_quantile(0.5 + confidence / 2.0, n - 1) * stdev / math.sqrt(n)
            ci_low, ci_high = mean - half, mean + half
        return cls(
            n=n,
            mean=mean,
            median=statistics.median(data),
            stdev=stdev,
            min=min(data),
            max=max(data),
            ci_low=ci_low,
            ci_high=ci_high,
            p50=percentile(data, 50),
            p90=percentile(data, 90),
            p99=percentile(data, 99),
            confidence=confidence,
        )

    @property
    def relative_stdev(self) -> float | None:
        """Coefficient of variation (stdev / mean), None when undefined."""
        if self.stdev is None or self.mean == 0:
            return None
        return self.stdev / abs(self.mean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- comparing two samples -------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """An interval estimate for current vs baseline: a ratio (current/baseline) or a difference.

    ``low``/``high`` may be -inf/inf: the data cannot bound the quantity (``note`` says why).
    """

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    note: str = ""

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: infinite bounds become None."""
        data = asdict(self)
        for key in ("low", "high", "estimate"):
            if not math.isfinite(data[key]):
                data[key] = None
        return data


def _check_samples(baseline: Sequence[float], current: Sequence[float]) -> None:
    if not baseline or not current:
        raise ValueError("both samples need at least one value")


def _unbounded(estimate: float, confidence: float, method: str, note: str) -> Interval:
    return Interval(estimate, -math.inf, math.inf, confidence, method, note)


_FEW = "needs >= 2 repetitions on both sides to estimate noise"


def _welch_df(va: float, na: int, vb: float, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom for the variances of two means (va, vb)."""
    denom = va * va / (na - 1) + vb * vb / (nb - 1)
    if denom == 0.0:
        return math.inf
    return (va + vb) ** 2 / denom


def ratio_interval(
    baseline_values: Sequence[float],
    current_values: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = DEFAULT_RATIO_METHOD,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """Interval for mean(current) / mean(baseline); see the module docstring for the methods."""
    _check_samples(baseline_values, current_values)
    if method not in RATIO_METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(RATIO_METHODS)}")
    b = [float(v) for v in baseline_values]
    c = [float(v) for v in current_values]
    mb, mc = statistics.fmean(b), statistics.fmean(c)
    estimate = mc / mb if mb != 0 else math.copysign(math.inf, mc) if mc else math.nan
    if len(b) < 2 or len(c) < 2:
        return _unbounded(estimate, confidence, method, _FEW)
    if method == "bootstrap":
        return _bootstrap_ratio(b, c, estimate, confidence, resamples, seed)
    return _fieller(b, c, mb, mc, estimate, confidence)


def _fieller(
    b: list[float], c: list[float], mb: float, mc: float, estimate: float, confidence: float
) -> Interval:
    """Fieller's interval for mc / mb. Ours: neither scipy nor statsmodels has one for two
    independent means; only its t quantile comes from scipy."""
    # Fieller: the set of theta with (mc - theta*mb)^2 <= t^2 (vc + theta^2 vb), the variances
    # being those of the two means; t from Welch's df for the difference at theta = estimate.
    vb = statistics.variance(b) / len(b)
    vc = statistics.variance(c) / len(c)
    theta = estimate if math.isfinite(estimate) else 1.0
    df = _welch_df(vc, len(c), theta * theta * vb, len(b))
    t = t_quantile(0.5 + confidence / 2.0, df)
    t2 = t * t
    a = mb * mb - t2 * vb
    if a <= 0.0:  # the baseline mean is not distinguishable from 0: no finite bound exists
        return _unbounded(
            estimate, confidence, "welch", "baseline mean is not distinguishable from 0"
        )
    half_b = mc * mb
    disc = half_b * half_b - a * (mc * mc - t2 * vc)
    root = math.sqrt(max(disc, 0.0))
    low, high = (half_b - root) / a, (half_b + root) / a
    return Interval(estimate, low, high, confidence, "welch", f"Fieller, df={df:.1f}")


def _bootstrap_ratio(
    b: list[float], c: list[float], estimate: float, confidence: float, resamples: int, seed: int
) -> Interval:
    """Percentile bootstrap of the ratio of means, each side resampled on its own.

    Kept rather than ``scipy.stats.bootstrap(..., method="percentile")``, which computes the
    same kind of interval: its resamples come from numpy's generator, so every interval already
    printed in CI logs and reports for the same data would move (by ~0.1-0.5%, tests check it
    agrees in distribution), and a resample whose baseline mean is 0 gives it a nan ratio with a
    warning, where the gate must say "unbounded" and why."""
    rng = random.Random(seed)
    nb, nc = len(b), len(c)
    ratios: list[float] = []
    for _ in range(resamples):
        sb = sum(rng.choices(b, k=nb))
        sc = sum(rng.choices(c, k=nc))
        if sb != 0:
            ratios.append((sc / nc) / (sb / nb))
    if len(ratios) < resamples * 0.99:
        return _unbounded(estimate, confidence, "bootstrap", "baseline resamples with mean 0")
    alpha = 1.0 - confidence
    low = percentile(ratios, 100 * alpha / 2)
    high = percentile(ratios, 100 * (1 - alpha / 2))
    note = f"percentile bootstrap, {resamples} resamples, seed {seed}"
    return Interval(estimate, low, high, confidence, "bootstrap", note)


def difference_interval(
    baseline_values: Sequence[float],
    current_values: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Welch t interval for mean(current) - mean(baseline), in the metric's unit.

    The same interval as ``scipy.stats.ttest_ind(current, baseline, equal_var=False)
    .confidence_interval(confidence)`` (the tests compare them to 1e-9), written out because it
    shares the Welch degrees of freedom with Fieller's interval, gives a zero-width interval
    rather than nan for two constant samples, and needs no import of scipy.stats."""
    _check_samples(baseline_values, current_values)
    b = [float(v) for v in baseline_values]
    c = [float(v) for v in current_values]
    estimate = statistics.fmean(c) - statistics.fmean(b)
    if len(b) < 2 or len(c) < 2:
        return _unbounded(estimate, confidence, "welch", _FEW)
    vb = statistics.variance(b) / len(b)
    vc = statistics.variance(c) / len(c)
    df = _welch_df(vc, len(c), vb, len(b))
    half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(vb + vc)
    return Interval(estimate, estimate - half, estimate + half, confidence, "welch", f"df={df:.1f}")
