"""Noise profiles: how much each benchmark's metrics vary within a run and between runs.

``llmbench calibrate`` runs the user's benchmark command K times, each in a fresh process with a
fresh engine, into a folder that then serves as the gate's history; the profile says, per test
and metric, the within-run and between-run coefficients of variation, and the smallest threshold
that keeps false alarms at the gate's design rate for the user's repetitions and history length.
A rule below it can only flag larger changes (the gate calls such rules out too).
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_llmbench.errors import LLMBenchError
from pytest_llmbench.gate import DEFAULT_FALSE_ALARM_RATE, Rule, _short_test, match_key
from pytest_llmbench.history import History
from pytest_llmbench.noise import MIN_HISTORY_RUNS, noise_model, row_alpha

DEFAULT_METRICS = ("energy_per_output_token", "output_throughput")


@dataclass(frozen=True)
class NoiseRow:
    """One metric of one benchmark across the history; CVs and thresholds are fractions."""

    test_id: str
    backend: str
    metric: str
    runs: int
    repetitions: int
    mean: float
    within_cv: float
    between_cv: float
    min_threshold: float | None  # None: too few runs to say

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def noise_profile(
    history: History,
    metrics: Sequence[str] = DEFAULT_METRICS,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    gated_rows: int | None = None,
) -> list[NoiseRow]:
    """Per test and metric of the history's newest run: its noise and the smallest threshold
    that keeps false alarms at ``false_alarm_rate`` for ``gated_rows`` gated comparisons
    (default: every row of the profile, as if each were gated)."""
    if not history.reports:
        return []
    newest = history.reports[-1]
    series: list[tuple[Any, str, list[list[float]]]] = []
    for result in newest.results:
        key = match_key(result)
        for metric in metrics:
            runs = [
                values
                for report in history.reports
                for r in report.results
                if match_key(r) == key and (values := r.metric_values(metric) or [])
            ]
            if runs:
                series.append((result, metric, runs))
    alpha = row_alpha(false_alarm_rate, gated_rows or len(series))
    rows = []
    for result, metric, runs in series:
        # The last run plays "current": the band a new run of this many repetitions must leave.
        model = noise_model(runs[:-1] or runs, runs[-1])
        mean = statistics.fmean(v for run in runs for v in run)
        run_means = [statistics.fmean(run) for run in runs]
        between = statistics.stdev(run_means) if len(runs) > 1 else math.nan
        threshold = None
        if len(runs) - 1 >= MIN_HISTORY_RUNS and mean:
            threshold = model.band(alpha) / abs(mean)
        rows.append(
            NoiseRow(
                test_id=result.test_id,
                backend=result.backend,
                metric=metric,
                runs=len(runs),
                repetitions=len(runs[-1]),
                mean=mean,
                within_cv=model.within_sd / abs(mean) if mean else math.nan,
                between_cv=between / abs(mean) if mean else math.nan,
                min_threshold=threshold,
            )
        )
    return rows


def suggested_rules(rows: Sequence[NoiseRow]) -> list[Rule]:
    """The tightest rule per metric that no benchmark's noise swallows (rounded up to 0.5%)."""
    from pytest_llmbench.metrics import METRICS

    out = []
    for metric in dict.fromkeys(r.metric for r in rows):
        limits = [r.min_threshold for r in rows if r.metric == metric]
        if not limits or any(x is None for x in limits):
            continue
        worst = max(x for x in limits if x is not None)
        out.append(Rule(metric, math.ceil(worst * 200) / 200, True, METRICS[metric].worse_sign))
    return out


def render_profile(rows: Sequence[NoiseRow]) -> str:
    from tabulate import tabulate

    def pct(x: float | None) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x * 100:.1f}%"

    table = [
        [
            _short_test(r.test_id),
            r.backend,
            r.metric,
            r.runs,
            r.repetitions,
            f"{r.mean:.4g}",
            pct(r.within_cv),
            pct(r.between_cv),
            pct(r.min_threshold),
        ]
        for r in rows
    ]
    headers = ["test", "backend", "metric", "runs", "reps", "mean", "within CV", "between CV"]
    headers.append("smallest threshold")
    return tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True)


def run_calibration(
    pytest_args: Sequence[str], folder: Path, runs: int, *, python: str = sys.executable
) -> list[tuple[Path, int]]:
    """Run ``pytest pytest_args`` ``runs`` times, each in a fresh process, writing
    ``folder/calibration-NNN.json``; returns each report path and exit status. A run that
    fails (exit other than 0) is kept out of the folder: its report is renamed ``.failed``."""
    if runs < 0:
        raise LLMBenchError(f"--runs: {runs} is not >= 0")
    if any(a == "--llm-json" or a.startswith("--llm-json=") for a in pytest_args):
        raise LLMBenchError("calibrate writes its own reports: leave --llm-json out of the args")
    folder.mkdir(parents=True, exist_ok=True)
    done = len(list(folder.glob("calibration-*.json")))
    out = []
    for i in range(done, done + runs):
        path = folder / f"calibration-{i:03d}.json"
        command = [python, "-m", "pytest", *pytest_args, "--llm-json", str(path)]
        status = subprocess.run(command, check=False).returncode
        if status != 0 and path.exists():
            path.rename(path.with_suffix(".failed"))
        out.append((path, status))
    return out
