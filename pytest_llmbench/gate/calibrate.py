"""Noise profiles: how much each benchmark's metrics vary within a run and between runs.

``llmbench calibrate`` runs the user's benchmark command K times, each in a fresh process with a
fresh engine, into a folder that then serves as the gate's history; the profile says, per test
and metric, the within-run and between-run coefficients of variation, and the smallest threshold
that keeps false alarms at the gate's design rate for the user's repetitions and history length.
A rule below it can only flag larger changes (the gate calls such rules out too). The history is
cut at its steps exactly as the gate cuts it (:func:`pytest_llmbench.gate.judge.history_steps`).

A rule is suggested only where the gate can enforce it: a relative band of 100% or more on a
metric whose regression is a decrease (throughput) can never be left, so such a metric is
reported "not enforceable with this workload", with what would make it so.
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
from pytest_llmbench.gate.history import History
from pytest_llmbench.gate.judge import history_steps
from pytest_llmbench.gate.matching import match_key
from pytest_llmbench.gate.noise import MIN_HISTORY_RUNS, noise_model, row_alpha
from pytest_llmbench.gate.render import short_test
from pytest_llmbench.gate.rules import Rule
from pytest_llmbench.gate.verdicts import DEFAULT_FALSE_ALARM_RATE

DEFAULT_METRICS = ("energy_per_output_token", "output_throughput")
MIN_CALIBRATION_RUNS = MIN_HISTORY_RUNS + 1
"""A profile judges its newest run against the others, which must be enough to gate."""
DETECTION_POWER_Z = 1.6448536269514722
"""Standard normal quantile of 0.95: a change this many standard errors past the band is caught
95% of the time."""


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
    detect_95: float | None = None  # smallest change caught in 95% of runs with that threshold
    steps: int = 0  # steps found in the history (the profile uses the newest segment)
    worse_sign: int = 1  # +1: an increase is a regression; -1: a decrease

    @property
    def enforceable(self) -> bool:
        """Whether a rule at ``min_threshold`` can ever fail: not when a decrease would have
        to exceed 100%."""
        return self.min_threshold is not None and not (
            self.worse_sign < 0 and self.min_threshold >= 1.0
        )

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
    (default: every row of the profile, as if each were gated). Only runs of the newest run's
    config count, as in the gate: the runs before a config change are another series."""
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
                if match_key(r) == key
                and r.config_hash == result.config_hash
                and (values := r.metric_values(metric) or [])
            ]
            if runs:
                series.append((result, metric, runs))
    from pytest_llmbench.metrics import METRICS

    alpha = row_alpha(false_alarm_rate, gated_rows or len(series))
    rows = []
    for result, metric, runs in series:
        # The last run plays "current": the band a new run of this many repetitions must leave.
        sign = METRICS[metric].worse_sign
        earlier = runs[:-1] or runs
        labels = [str(i) for i in range(len(earlier))]
        steps = history_steps(earlier, labels, sign) if len(runs) > 1 else ()
        model = noise_model(earlier, runs[-1], (0, *(s.index for s in steps)))
        mean = statistics.fmean(v for run in runs for v in run)
        run_means = [statistics.fmean(run) for run in runs]
        between = statistics.stdev(run_means) if len(runs) > 1 else math.nan
        threshold = detect = None
        if len(runs) - 1 >= MIN_HISTORY_RUNS and mean:
            threshold = model.band(alpha) / abs(mean)
            detect = threshold + DETECTION_POWER_Z * model.se / abs(mean)
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
                detect_95=detect,
                steps=len(steps),
                worse_sign=sign,
            )
        )
    return rows


@dataclass(frozen=True)
class Suggestion:
    """The tightest enforceable rule for one metric, or why there is none."""

    metric: str
    rule: Rule | None
    why: str = ""  # when ``rule`` is None: what stands in the way and what would help


def suggested_rules(rows: Sequence[NoiseRow]) -> list[Suggestion]:
    """Per metric, the tightest rule that no benchmark's noise swallows (rounded up to 0.5%);
    none where a benchmark's noise makes every such rule impossible to fail."""
    out = []
    for metric in dict.fromkeys(r.metric for r in rows):
        group = [r for r in rows if r.metric == metric]
        if any(r.min_threshold is None for r in group):
            continue
        worst = max(group, key=lambda r: r.min_threshold or 0.0)
        assert worst.min_threshold is not None
        if not worst.enforceable:
            out.append(Suggestion(metric, None, _not_enforceable(worst)))
            continue
        threshold = math.ceil(worst.min_threshold * 200) / 200
        out.append(Suggestion(metric, Rule(metric, threshold, True, worst.worse_sign)))
    return out


def _not_enforceable(row: NoiseRow) -> str:
    what = (
        f"more repetitions (--llm-repeat, now {row.repetitions}) or longer energy windows"
        if row.within_cv > row.between_cv
        else "a workload that keeps the GPU busy (docs/ci.md, 'Choosing the gate workload') "
        "and more runs"
    )
    return (
        f"not enforceable with this workload: in {short_test(row.test_id)} runs vary "
        f"{row.between_cv * 100:.1f}% and repetitions {row.within_cv * 100:.1f}%, so its noise "
        f"band reaches beyond -100% and no decrease could fail it; what would make it so: {what}"
    )


def render_profile(rows: Sequence[NoiseRow]) -> str:
    from tabulate import tabulate

    def pct(x: float | None) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x * 100:.1f}%"

    table = [
        [
            short_test(r.test_id),
            r.backend,
            r.metric,
            r.runs,
            r.repetitions,
            f"{r.mean:.4g}",
            pct(r.within_cv),
            pct(r.between_cv),
            _threshold(r),
            pct(r.detect_95) if r.enforceable else "-",
            r.steps,
        ]
        for r in rows
    ]
    headers = ["test", "backend", "metric", "runs", "reps", "mean", "within CV", "between CV"]
    headers += ["smallest threshold", "caught 95%", "steps"]
    return tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True)


def _threshold(row: NoiseRow) -> str:
    if row.min_threshold is None or not math.isfinite(row.min_threshold):
        return "-"
    if not row.enforceable:
        return "beyond -100%"
    return f"{row.min_threshold * 100:.1f}%"


def check_runs(folder: Path, runs: int) -> None:
    """Refuse, before any run, a calibration that would end with too few runs to profile."""
    if runs < 0:
        raise LLMBenchError(f"--runs: {runs} is not >= 0")
    have = len(list(folder.glob("*.json"))) if folder.is_dir() else 0  # what the profile reads
    if have + runs < MIN_CALIBRATION_RUNS:
        held = f"{folder} holds {have} run(s)" if have else f"{folder} holds no runs"
        raise LLMBenchError(
            f"--runs: {runs} is too few: {held}, and a noise profile needs >= "
            f"{MIN_CALIBRATION_RUNS} (use --runs {MIN_CALIBRATION_RUNS - have} or more; "
            "10 are recommended)"
        )


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
