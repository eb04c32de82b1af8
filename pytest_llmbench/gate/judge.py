"""Judging one metric: against a noise model of the history, or within-run for short histories."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_llmbench.gate.changepoint import MIN_SEGMENT_RUNS, ChangePoint, change_points
from pytest_llmbench.gate.noise import NoiseModel, noise_model
from pytest_llmbench.gate.rows import HistoryStep, Row
from pytest_llmbench.gate.rules import Rule
from pytest_llmbench.gate.verdicts import Verdict
from pytest_llmbench.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RATIO_METHOD,
    Interval,
    difference_interval,
    ratio_interval,
)


# -- judging one metric ----------------------------------------------------------------------------
def judge(
    baseline_values: Sequence[float],
    current_values: Sequence[float],
    rule: Rule,
    *,
    method: str = DEFAULT_RATIO_METHOD,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[Verdict, float, Interval]:
    """The within-run verdict of ``rule``: two samples of repetitions, the change, its interval.

    Only shown (never gating) when the history is too short to know the between-run spread.
    A change beyond the threshold whose interval's nearer end is also beyond it is a
    regression (or improvement); one whose interval reaches back inside is within-noise.
    """
    if rule.relative:
        interval = ratio_interval(baseline_values, current_values, confidence, method)
        change = interval.estimate - 1.0
        lo, hi = interval.low - 1.0, interval.high - 1.0
    else:
        interval = difference_interval(baseline_values, current_values, confidence)
        change = interval.estimate
        lo, hi = interval.low, interval.high
    worse, worse_lo, worse_hi = (change, lo, hi) if rule.sign > 0 else (-change, -hi, -lo)
    t = rule.threshold
    if math.isnan(worse):
        return Verdict.WITHIN_NOISE, change, interval
    if worse > t:
        return (Verdict.REGRESSION if worse_lo > t else Verdict.WITHIN_NOISE), change, interval
    if worse < -t:
        return (Verdict.IMPROVED if worse_hi < -t else Verdict.WITHIN_NOISE), change, interval
    return Verdict.OK, change, interval


def judge_history(
    noise: NoiseModel, rule: Rule, alpha: float, *, gated: bool = True
) -> tuple[Verdict, float, float]:
    """The verdict of ``rule`` on a noise model: (verdict, change, band) on the rule's scale.

    A regression exceeds both the threshold and the one-sided band at level ``alpha``. A
    deterministic metric (perplexity, token agreement) has no between-run noise to learn: with
    one history run its band is 0, and identical history gives a band of 0 rather than a
    division by zero, so the threshold alone decides."""
    base = noise.history_mean
    band = noise.band(alpha)
    if rule.spec.deterministic and not math.isfinite(band):
        band = 0.0
    if rule.relative:
        change = noise.change / base if base else math.nan
        band = band / abs(base) if base else math.inf
    else:
        change = noise.change
    worse = change * rule.sign
    limit = max(rule.threshold, band)
    if math.isnan(worse) or not math.isfinite(limit):
        return Verdict.WITHIN_NOISE, change, band
    if worse > limit:
        return (Verdict.REGRESSION if gated else Verdict.WORSE), change, band
    if worse < -limit:
        return (Verdict.IMPROVED if gated else Verdict.BETTER), change, band
    if abs(worse) > rule.threshold:
        return Verdict.WITHIN_NOISE, change, band
    return Verdict.OK, change, band


@dataclass
class Pending:
    """A metric row waiting for the number of gated comparisons (which sets each row's level)."""

    common: dict[str, Any]
    rule: Rule
    gated: bool
    history: list[list[float]]
    current: list[float]
    detail: str
    forced: Verdict | None
    min_history: int
    labels: list[str] = field(default_factory=list)  # one per history run: where it came from

    @property
    def judged(self) -> bool:
        return len(self.history) >= self.min_history


def history_steps(
    history: Sequence[Sequence[float]], labels: Sequence[str], worse_sign: int
) -> tuple[HistoryStep, ...]:
    """Steps in the run means of ``history`` (E-divisive, :mod:`pytest_llmbench.gate.changepoint`);
    none when the history is shorter than two minimal segments."""
    means = [sum(run) / len(run) for run in history]
    if len(means) < 2 * MIN_SEGMENT_RUNS:
        return ()
    return tuple(_step(point, labels, worse_sign) for point in change_points(means))


def _step(point: ChangePoint, labels: Sequence[str], worse_sign: int) -> HistoryStep:
    change = point.relative_change
    label = labels[point.index] if point.index < len(labels) else f"run {point.index + 1}"
    return HistoryStep(label, point.index, change, change * worse_sign < 0, point.p_value)


def finish(pending: Pending, alpha: float, confidence: float, method: str) -> Row:
    rule = pending.rule
    steps: tuple[HistoryStep, ...] = ()
    if pending.judged and not rule.spec.deterministic:
        steps = history_steps(pending.history, pending.labels, rule.spec.worse_sign)
    starts = (0, *(step.index for step in steps))
    noise = noise_model(pending.history, pending.current, starts)
    runs = len(pending.history)
    if not pending.judged:
        pooled = [v for run in pending.history for v in run]
        _, change, interval = judge(
            pooled, pending.current, rule, method=method, confidence=confidence
        )
        detail = f"needs >= {pending.min_history} history runs to gate"
        return Row(
            **pending.common,
            verdict=pending.forced or Verdict.SHORT_HISTORY,
            baseline=noise.history_mean,
            current=noise.current_mean,
            change=change,
            interval=interval,
            runs=runs,
            noise=noise,
            detail="; ".join(x for x in (detail, pending.detail) if x),
        )
    verdict, change, band = judge_history(noise, rule, alpha, gated=pending.gated)
    return Row(
        **pending.common,
        verdict=pending.forced or verdict,
        baseline=noise.history_mean,
        current=noise.current_mean,
        change=change,
        band=band,
        runs=runs,
        noise=noise,
        alpha=alpha,
        detail=pending.detail,
        steps=steps,
    )
