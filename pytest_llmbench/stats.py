"""Statistics of repeated measurements: summaries, Student-t intervals, ratio intervals.

Pure Python on purpose (no numpy/scipy): the gate must run wherever the plugin runs.

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
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is not within 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    # a + (b - a) * f, written so that equal neighbours return exactly that value
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac if frac else ordered[lo]


# -- Student t -------------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (real, > 0) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom {df} is not > 0")
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_pdf(t: float, df: float) -> float:
    """Density of Student's t."""
    if math.isinf(df):
        return math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    log_c = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1.0) / 2.0 * math.log1p(t * t / df))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (inverse of :func:`t_cdf`), to ~1e-12 relative."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability {p} is not within (0, 1)")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    # Bracket [lo, hi], then Newton steps from inside it, falling back to bisection whenever a
    # step leaves the bracket: t_cdf is monotone, so this always converges, usually in ~6 steps.
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    x = 0.5 * (lo + hi)
    for _ in range(200):
        f = t_cdf(x, df) - p
        if f < 0:
            lo = x
        else:
            hi = x
        density = t_pdf(x, df)
        step = f / density if density > 0 else math.inf
        nxt = x - step
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-13 * max(abs(x), 1e-300) or hi - lo <= 1e-14 * hi:
            return nxt
        x = nxt
    return x


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
    """Welch t interval for mean(current) - mean(baseline), in the metric's unit."""
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
