"""Several runs side by side: each benchmark's headline metrics, run after run, per backend.

What ``llmbench show A B C`` prints and the HTML report's run-over-run trends plot. Results of
different backends are never pooled: each backend gets its own rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_llmbench.results import Report

# (metric, label with unit, scale from the metric's unit to the label's)
TREND_METRICS: tuple[tuple[str, str, float], ...] = (
    ("output_throughput", "output throughput (tok/s)", 1.0),
    ("request_throughput", "request throughput (req/s)", 1.0),
    ("ttft_s_p50", "TTFT p50 (ms)", 1000.0),
    ("itl_s_p50", "ITL p50 (ms)", 1000.0),
    ("e2e_latency_s_p99", "E2E p99 (ms)", 1000.0),
    ("energy_per_output_token", "energy (J/output token)", 1.0),
)


@dataclass(frozen=True)
class TrendRow:
    """One benchmark's metric in every run (None: not in that run, or not measured)."""

    test_id: str
    metric: str
    label: str
    values: tuple[float | None, ...]
    steps: tuple[tuple[int, float], ...] = ()  # (first run after a step, 0-based; relative change)


def trends(reports: Sequence[Report]) -> dict[str, list[TrendRow]]:
    """Backend -> rows of :data:`TREND_METRICS` per benchmark, in the order first seen; each
    value is the mean over that run's repetitions, scaled to the label's unit."""
    out: dict[str, list[TrendRow]] = {}
    backends: list[str] = []
    for report in reports:
        backends += [b for b in report.backends if b not in backends]
    for backend in backends:
        test_ids: list[str] = []
        per_run: list[dict[str, dict[str, float | None]]] = []
        for report in reports:
            run: dict[str, dict[str, float | None]] = {}
            for result in report.results:
                if result.backend != backend:
                    continue
                run[result.test_id] = result.aggregate()
                if result.test_id not in test_ids:
                    test_ids.append(result.test_id)
            per_run.append(run)
        rows = []
        for test_id in test_ids:
            for metric, label, scale in TREND_METRICS:
                values = []
                for run in per_run:
                    value = run.get(test_id, {}).get(metric)
                    values.append(None if value is None else value * scale)
                rows.append(TrendRow(test_id, metric, label, tuple(values), _steps(values)))
        out[backend] = rows
    return out


def _steps(values: Sequence[float | None]) -> tuple[tuple[int, float], ...]:
    """Steps in a trend, found as the gate finds them (:mod:`pytest_llmbench.gate.changepoint`), at
    the positions of the runs that have a value."""
    from pytest_llmbench.gate.changepoint import MIN_SEGMENT_RUNS, change_points

    present = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(present) < 2 * MIN_SEGMENT_RUNS:
        return ()
    points = change_points([v for _, v in present])
    return tuple((present[p.index][0], p.relative_change) for p in points)
