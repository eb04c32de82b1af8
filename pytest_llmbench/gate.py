"""Comparing a run with its baseline history, and failing the build on --llm-fail-on rules.

A rule is ``METRIC:[+|-]NUMBER[%]``; several are separated by commas, e.g.
``energy_per_output_token:+5%,output_throughput:-3%``. The sign names the direction that is a
regression (``+``: an increase); without a sign, the metric's worse direction is used (an
increase for latency and energy, a decrease for throughput). With ``%`` the threshold is
relative to the history mean; without it, it is absolute in the metric's unit
(``ttft_s_p99:+0.05`` fails when TTFT p99 grows by more than 50 ms).

The baseline is a *history* of earlier runs (one report is a history of one). A change is a
**regression** only when it exceeds the rule's threshold *and* the noise band: the one-sided
prediction band of a new run given the history's run-level spread and the current run's own
repetitions (:mod:`pytest_llmbench.noise`). The band's level is the family-wise false-alarm rate
(designed at 0.5%, measured under 1%) divided among the gated comparisons, so unchanged code
fails a whole run at most that often. With fewer than
:data:`~pytest_llmbench.noise.MIN_HISTORY_RUNS` history runs the between-run spread is unknown:
such rows are ``short-history``, show the within-run interval, and never fail the build.

Results are matched by test id + backend + model + workload; the model is matched by the last
component of its path, so a cached model whose folder differs between runners still matches.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from pytest_llmbench.changepoint import MIN_SEGMENT_RUNS, ChangePoint, change_points
from pytest_llmbench.environment import gpu_names
from pytest_llmbench.errors import ConfigError, MixedBackendsError
from pytest_llmbench.history import History
from pytest_llmbench.metrics import DEFAULT_COMPARE_METRICS, METRICS, Metric, unknown_metric_message
from pytest_llmbench.noise import MIN_HISTORY_RUNS, NoiseModel, noise_model, row_alpha
from pytest_llmbench.results import BenchmarkResult, Report
from pytest_llmbench.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RATIO_METHOD,
    RATIO_METHODS,
    Interval,
    difference_interval,
    ratio_interval,
)

EXIT_REGRESSION = 11
"""Exit status when a gated metric regressed: distinct from pytest's 0-5 and from usage errors
(``llmbench`` exits 2, pytest 4), so CI can tell "slower" from "broken"."""
EXIT_UNMEASURED = 12
"""Exit status when a gated metric could not be measured in the current run (e.g. an energy rule
where energy is unavailable): the gate cannot vouch for it, and must not pass in silence."""
DEFAULT_FALSE_ALARM_RATE = 0.005
"""Design probability that unchanged code fails the gate of one run (family-wise, all gated
rows). Half of the 1% we promise: the t band is exact only for normal run-to-run noise, and
real runs have heavier tails (a first run on a cold machine); docs/ci.md has the rates measured
by resampling GPU re-runs."""

OPTION = "--llm-fail-on"


class Verdict(str, Enum):
    OK = "ok"
    IMPROVED = "improved"
    REGRESSION = "regression"
    WITHIN_NOISE = "within-noise"
    MISSING_IN_BASELINE = "missing-in-baseline"
    MISSING_IN_CURRENT = "missing-in-current"
    BACKEND_MISMATCH = "backend-mismatch"
    GPU_MISMATCH = "gpu-mismatch"
    SCHEMA_MISMATCH = "schema-mismatch"
    ENERGY_UNAVAILABLE = "energy-unavailable"  # a shown energy metric this run did not measure
    UNMEASURED = "unmeasured"  # a gated metric this run could not measure: fails the gate
    SHORT_HISTORY = "short-history"  # too few history runs to know the between-run spread
    WORSE = "worse"  # a shown (not gated) metric beyond the noise band, worse
    BETTER = "better"  # a shown (not gated) metric beyond the noise band, better


# -- rules -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One --llm-fail-on rule. ``threshold`` is a fraction (0.05) when relative, else in the
    metric's unit; ``sign`` is +1 when an increase is a regression, -1 when a decrease is."""

    metric: str
    threshold: float
    relative: bool
    sign: int

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]

    def __str__(self) -> str:
        sign = "+" if self.sign > 0 else "-"
        amount = f"{self.threshold * 100:g}%" if self.relative else f"{self.threshold:g}"
        return f"{self.metric}:{sign}{amount}"


_RULE = re.compile(
    r"^(?P<metric>[A-Za-z0-9_]+):(?P<sign>[+-]?)(?P<number>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?P<pct>%?)$"
)


def parse_fail_on(text: str | Iterable[str], option: str = OPTION) -> tuple[Rule, ...]:
    """Parse rules from a comma-separated string (or several); ConfigError naming ``option``."""
    parts = [text] if isinstance(text, str) else list(text)
    items = [item.strip() for part in parts for item in part.split(",") if item.strip()]
    rules: list[Rule] = []
    for item in items:
        m = _RULE.match(item.replace(" ", ""))
        if not m:
            raise ConfigError(
                option,
                f"{item!r} is not METRIC:[+|-]NUMBER[%], e.g. 'energy_per_output_token:+5%' "
                "or 'ttft_s_p99:+0.05' (absolute, in the metric's unit)",
            )
        name = m["metric"]
        if name not in METRICS:
            raise ConfigError(option, unknown_metric_message(name))
        threshold = float(m["number"]) / (100.0 if m["pct"] else 1.0)
        sign = {"+": 1, "-": -1}.get(m["sign"], METRICS[name].worse_sign)
        rules.append(Rule(name, threshold, bool(m["pct"]), sign))
    return tuple(rules)


# -- rows and the comparison -----------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryStep:
    """A step in a metric's history: the runs from ``run`` on differ from the runs before.

    ``change`` is relative (0.08 = +8%); ``better`` says whether the step went the metric's
    better way (an improvement starts a new baseline; a step the other way is unexplained)."""

    run: str  # the first run after the step (report file name, else its start time)
    index: int  # its position in the history, 0 = oldest
    change: float
    better: bool
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "index": self.index,
            "change": self.change,
            "better": self.better,
            "p_value": self.p_value,
        }


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a metric of a matched result, or a result without partner."""

    test_id: str
    backend: str
    metric: str | None
    verdict: Verdict
    baseline: float | None = None  # mean of the history's run means, metric's unit
    current: float | None = None  # mean over the current run's repetitions
    change: float | None = None  # relative (0.1 = +10%) for relative rules, else absolute
    relative: bool = True
    rule: Rule | None = None  # None: shown, not gated
    detail: str = ""
    runs: int = 0  # history runs that had this metric
    band: float | None = None  # noise band, on the change's scale (inf: cannot be bounded)
    interval: Interval | None = None  # within-run interval, shown when the history is short
    noise: NoiseModel | None = None
    alpha: float | None = None  # one-sided level of this row's band
    steps: tuple[HistoryStep, ...] = ()  # steps found in the history's run means, oldest first
    gate_workload: bool = False  # the current run already used the gpu-gate preset's settings

    @property
    def gated(self) -> bool:
        return self.rule is not None

    @property
    def detectable(self) -> float | None:
        """The smallest change this row would flag: the larger of threshold and noise band."""
        if self.band is None:
            return None
        return max(self.rule.threshold if self.rule else 0.0, self.band)

    @property
    def undetectable(self) -> bool:
        """A gated rule whose threshold lies inside the noise: it flags only larger changes."""
        return bool(self.rule and self.band is not None and self.band > self.rule.threshold)

    @property
    def fails(self) -> bool:
        return self.gated and self.verdict in (Verdict.REGRESSION, Verdict.UNMEASURED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_id": self.test_id,
            "backend": self.backend,
            "metric": self.metric,
            "verdict": self.verdict.value,
            "baseline": self.baseline,
            "current": self.current,
            "change": self.change,
            "relative": self.relative,
            "history_runs": self.runs,
            "band": self.band,
            "detectable": self.detectable,
            "alpha": self.alpha,
            "interval": self.interval.to_dict() if self.interval else None,
            "noise": self.noise.to_dict() if self.noise else None,
            "steps": [step.to_dict() for step in self.steps],
            "rule": str(self.rule) if self.rule else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    baseline_source: str = "baseline"
    notes: tuple[str, ...] = ()
    mixed_backends: bool = False
    history_runs: int = 1
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    allow_unmeasured: bool = False  # --llm-allow-unmeasured: e.g. energy rules on CPU runners

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.gated and r.verdict is Verdict.REGRESSION]

    @property
    def unmeasured(self) -> list[Row]:
        """Gated rows the current run could not measure (energy unavailable here)."""
        if self.allow_unmeasured:
            return []
        return [r for r in self.rows if r.gated and r.verdict is Verdict.UNMEASURED]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.unmeasured)

    @property
    def exit_code(self) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        return EXIT_UNMEASURED if self.unmeasured else 0

    def counts(self) -> dict[str, int]:
        """Verdicts of gated rows (shown-only rows are counted apart, as "shown")."""
        out: dict[str, int] = {}
        for row in self.rows:
            key = row.verdict.value if row.gated or row.metric is None else "shown"
            out[key] = out.get(key, 0) + 1
        return out

    def summary_line(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in sorted(self.counts().items()))
        against = f"{self.baseline_source} ({_runs(self.history_runs)})"
        if self.regressions:
            return (
                f"llmbench gate FAILED against {against}: {_failures(self.regressions)} "
                f"regressed [{counts}]"
            )
        if self.unmeasured:
            return (
                f"llmbench gate FAILED against {against}: {_failures(self.unmeasured)} could "
                f"not be measured in this run [{counts}]; if this machine cannot measure them "
                "(e.g. energy on a CPU runner), add --llm-allow-unmeasured (llmbench compare: "
                "--allow-unmeasured) to let them pass; else see why in the notes above"
            )
        return f"llmbench gate passed against {against} [{counts or 'nothing compared'}]"

    def failure_lines(self) -> list[str]:
        """One line per failing row, short enough to read in a CI log."""
        out = []
        for r in self.regressions:
            out.append(
                f"  regression: {_short_test(r.test_id)} {r.metric} "
                f"{_change(r.change, r.relative)} (noise band {_band_text(r)}, rule "
                f"{_rule_text(r)})"
            )
        for r in self.unmeasured:
            why = f" ({r.detail})" if r.detail and r.detail != "current run" else ""
            out.append(f"  not measured: {_short_test(r.test_id)} {r.metric}{why}")
        return out

    def table(self) -> str:
        from tabulate import tabulate

        headers = [
            "test",
            "backend",
            "metric",
            "history",
            "current",
            "change",
            "noise band",
            "rule",
            "verdict",
        ]
        rows = [
            [
                _short_test(r.test_id),
                r.backend,
                r.metric or "-",
                _history_cell(r),
                _num(r.current),
                _change(r.change, r.relative),
                _band_cell(r),
                _rule_text(r),
                _verdict_text(r),
            ]
            for r in self.rows
        ]
        return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)

    def lines(self) -> list[str]:
        """What the terminal summary and ``llmbench compare`` print."""
        out = [f"baseline: {self.baseline_source} ({_runs(self.history_runs)})"]
        out += [f"note: {n}" for n in self.notes]
        if self.rows:
            out.append(self.table())
        out += [f"note: {n}" for n in _row_notes(self.rows)]
        out.append(self.summary_line())
        out += self.failure_lines()
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_source,
            "history_runs": self.history_runs,
            "false_alarm_rate": self.false_alarm_rate,
            "allow_unmeasured": self.allow_unmeasured,
            "failed": self.failed,
            "exit_code": self.exit_code,
            "mixed_backends": self.mixed_backends,
            "notes": list(self.notes) + _row_notes(self.rows),
            "rows": [r.to_dict() for r in self.rows],
        }


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _failures(rows: Sequence[Row]) -> str:
    by_metric: dict[str, int] = {}
    for r in rows:
        by_metric[str(r.metric)] = by_metric.get(str(r.metric), 0) + 1
    return ", ".join(f"{m} in {n} test{'s' if n > 1 else ''}" for m, n in sorted(by_metric.items()))


def _rule_text(row: Row) -> str:
    return str(row.rule).split(":", 1)[1] if row.rule else "-"


def _verdict_text(row: Row) -> str:
    text = row.verdict.value
    if not row.gated and row.metric is not None and row.verdict is not Verdict.SHORT_HISTORY:
        text += " (not gated)"
    return text


def _history_cell(row: Row) -> str:
    if row.baseline is None:
        return "-"
    if row.noise is not None and row.noise.segments > 1:  # the mean of the newest segment
        return f"{_num(row.baseline)} ({row.noise.segment_runs} of {row.runs} since a step)"
    return f"{_num(row.baseline)} ({row.runs})" if row.runs != 1 else _num(row.baseline)


def _band_cell(row: Row) -> str:
    if row.verdict is Verdict.SHORT_HISTORY and row.interval is not None:
        return f"within run {_interval(row.interval, row.relative)}"
    return _band_text(row)


def _band_text(row: Row) -> str:
    """The noise band as the table, the notes and the failure lines all show it. A relative
    band of 100% or more on a metric whose regression is a decrease reaches past -100%: no
    value can leave it, and it is said so rather than shown as a number."""
    if row.band is None:
        return "-"
    if not math.isfinite(row.band):
        return "unbounded"
    if _reaches_past_zero(row):
        return "beyond -100%"
    return f"±{_change(row.band, row.relative, signed=False)}"


def _worse_sign(row: Row) -> int:
    if row.rule is not None:
        return row.rule.sign
    return METRICS[row.metric].worse_sign if row.metric in METRICS else 1


def _reaches_past_zero(row: Row) -> bool:
    """A relative band on a decrease that no decrease can exceed (a value cannot fall >100%)."""
    band = row.band
    return bool(row.relative and band is not None and band >= 1.0 and _worse_sign(row) < 0)


def _short_test(test_id: str) -> str:
    path, sep, rest = test_id.partition("::")
    return f"{Path(path).name}{sep}{rest}" if sep else test_id


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _change(change: float | None, relative: bool, signed: bool = True) -> str:
    if change is None or not math.isfinite(change):
        return "-"
    sign = "+" if signed else ""
    return f"{change * 100:{sign}.1f}%" if relative else f"{change:{sign}.4g}"


def _interval(interval: Interval | None, relative: bool) -> str:
    if interval is None:
        return "-"
    if not interval.bounded:
        return "unbounded"
    if relative:
        return f"[{(interval.low - 1) * 100:+.1f}%, {(interval.high - 1) * 100:+.1f}%]"
    return f"[{interval.low:+.4g}, {interval.high:+.4g}]"


RECOMMENDED_HISTORY_RUNS = 10
"""History length docs/ci.md recommends; fewer runs widen the band through the t quantile."""


def _row_notes(rows: Sequence[Row]) -> list[str]:
    return _detectability_notes(rows) + _step_notes(rows)


def _detectability_notes(rows: Sequence[Row]) -> list[str]:
    """One note per gated rule whose threshold lies inside the noise, with what would fix it.
    The figure is the widest row's band, exactly as the table shows it."""
    by_rule: dict[str, list[Row]] = {}
    for row in rows:
        if row.undetectable and row.verdict is not Verdict.SHORT_HISTORY:
            by_rule.setdefault(str(row.rule), []).append(row)
    notes = []
    for rule, group in by_rule.items():
        group = sorted(group, key=lambda r: -(r.band or 0.0))
        worst = group[0]
        tests = ", ".join(_short_test(r.test_id) for r in group[:3])
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        noise = worst.noise
        spread = ""
        if noise is not None and noise.history_mean:
            spread = f": runs vary {noise.run_sd / abs(noise.history_mean) * 100:.1f}%"
        where = f" (widest in {_short_test(worst.test_id)})" if len(group) > 1 else ""
        if _reaches_past_zero(worst):
            flags = f"its noise band{where} reaches beyond -100%, so it cannot flag any decrease"
        else:
            flags = f"it flags only changes beyond {_band_text(worst).lstrip('±')}{where}"
        notes.append(
            f"{rule} cannot be detected in {tests}{more}{spread}; {flags}. To narrow the band: "
            f"{_remedy(worst)}"
        )
    return notes


def _step_notes(rows: Sequence[Row]) -> list[str]:
    """One note per step found in a history: where, how large, and what was judged against."""
    notes = []
    for row in rows:
        for step in row.steps:
            kind = (
                "an improvement: a new baseline starts there"
                if step.better
                else "unexplained (not an improvement): look at what changed before that run"
            )
            since = row.noise.segment_runs if row.noise else 0
            notes.append(
                f"history step in {_short_test(row.test_id)} {row.metric}: "
                f"{step.change * 100:+.1f}% from {step.run} on (p={step.p_value:.3f}), {kind}; "
                f"judged against the {since} run(s) since the last step"
            )
    return notes


def _remedy(row: Row) -> str:
    """What would narrow this row's band, leaving out what the run already does."""
    noise = row.noise
    more_runs = row.runs < RECOMMENDED_HISTORY_RUNS
    history = f"more history runs (have {row.runs}, {RECOMMENDED_HISTORY_RUNS} recommended)"
    if noise is not None and noise.between_share() < 0.5:
        within = (
            f"more repetitions (--llm-repeat, now {noise.current_repetitions}) or longer energy "
            "windows (--llm-min-energy-window)"
        )
        return f"{within}, then {history}" if more_runs else within
    steadier = (
        "a workload that keeps the GPU busier than this one (a larger batch or model: docs/ci.md, "
        "'Choosing the gate workload')"
        if row.gate_workload
        else "a GPU-bound workload (--llm-preset gpu-gate with the llama-8b shape, docs/ci.md)"
    )
    return f"{history}, or {steadier}" if more_runs else steadier


# -- matching --------------------------------------------------------------------------------------
def model_key(model: str) -> str:
    return Path(model.rstrip("/\\")).name or model


def workload_key(workload: dict[str, Any]) -> str:
    return json.dumps(workload, sort_keys=True, default=str)


def match_key(result: BenchmarkResult) -> tuple[str, str, str, str]:
    """What identifies "the same benchmark" across runs: test id, backend, model, workload."""
    return (result.test_id, result.backend, model_key(result.model), workload_key(result.workload))


def _strip_backend(test_id: str, backend: str) -> str:
    """The test id without the backend's parameter id (``test_x[vllm-8]`` -> ``test_x[8]``)."""
    m = re.search(r"\[([^\]]*)\]", test_id)
    if not m:
        return test_id
    parts = [p for p in m.group(1).split("-") if p != backend]
    inner = "-".join(parts)
    return test_id[: m.start()] + (f"[{inner}]" if inner else "") + test_id[m.end() :]


def _loose_key(result: BenchmarkResult) -> tuple[str, str, str]:
    return (
        _strip_backend(result.test_id, result.backend),
        model_key(result.model),
        workload_key(result.workload),
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
class _Pending:
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


def _metric_rows(
    runs: Sequence[tuple[str, Sequence[BenchmarkResult]]],
    cur: BenchmarkResult,
    rules: Sequence[tuple[Rule, bool]],
    *,
    extra_detail: str,
    forced: Verdict | None,
    energy_notes: dict[str, str],
    min_history: int,
) -> list[Row | _Pending]:
    out: list[Row | _Pending] = []
    base = [b for _, run in runs for b in run]
    for rule, gated in rules:
        spec = rule.spec
        if spec.scope == "pair":  # judged on the agreement section: _pair_rows
            continue
        common: dict[str, Any] = {
            "test_id": cur.test_id,
            "backend": cur.backend,
            "metric": rule.metric,
            "relative": rule.relative,
            "rule": rule if gated else None,
            "gate_workload": uses_gate_preset(cur.config),
        }
        if gated and not spec.deterministic and cur.client_bound is not None:
            # The load generator was the bottleneck (pytest_llmbench.loadgen): its timed numbers
            # describe the client, so there is no measurement of the server to judge.
            out.append(Row(**common, verdict=Verdict.UNMEASURED, detail=cur.client_bound))
            continue
        if spec.energy:
            reason = cur.energy_unavailable_reason
            side = "current run"
            if reason is None:
                side = "history"
                reason = next(
                    (b.energy_unavailable_reason for b in base if b.energy_unavailable_reason),
                    None,
                )
            if reason is not None:
                energy_notes[f"energy unavailable in the {side}: {reason}"] = side
                # Only the current run's own gap fails a gated rule: a baseline without energy
                # cannot be compared, but this run is not to blame.
                if side != "current run":
                    verdict = Verdict.MISSING_IN_BASELINE
                else:
                    verdict = Verdict.UNMEASURED if gated else Verdict.ENERGY_UNAVAILABLE
                out.append(Row(**common, verdict=verdict, detail=side))
                continue
        labelled = [
            (label, values)
            for label, run in runs
            if (values := [v for b in run for v in (b.metric_values(rule.metric) or [])])
        ]
        history = [values for _, values in labelled]
        current = cur.metric_values(rule.metric) or []
        if not history or not current:
            side = "history" if not history else "current run"
            if side == "current run" and gated:
                verdict = Verdict.UNMEASURED  # e.g. TTFT of a backend that does not stream
            elif spec.energy and side == "current run":
                verdict = Verdict.ENERGY_UNAVAILABLE  # measured, but not this quantity
            elif spec.energy:
                verdict = Verdict.MISSING_IN_BASELINE
            else:
                verdict = Verdict.MISSING_IN_BASELINE if not history else Verdict.MISSING_IN_CURRENT
            out.append(Row(**common, verdict=verdict, detail=f"{side}: no {rule.metric} values"))
            continue
        need = 1 if spec.deterministic else min_history
        labels = [label for label, _ in labelled]
        out.append(
            _Pending(common, rule, gated, history, current, extra_detail, forced, need, labels)
        )
    return out


PAIR_TEST_ID = "agreement"  # the test id of gate rows about pairs of backends


def pair_key(entry: dict[str, Any]) -> tuple[tuple[str, ...], str, str]:
    """What identifies "the same pair" across runs: its backends, the model, the probe."""
    return (
        tuple(sorted(str(b) for b in entry.get("backends", []))),
        model_key(str(entry.get("model", ""))),
        str(entry.get("probe", "")),
    )


def _pair_rows(
    history: Sequence[Report],
    current: Report,
    rules: Sequence[tuple[Rule, bool]],
    forced: Verdict | None,
) -> list[Row | _Pending]:
    """Rows of pair-scoped metrics (token agreement): each pair of the current run against the
    same pair in the history's agreement sections. Pairs are never pooled with each other."""
    from pytest_llmbench.quality.agreement import pair_name

    pair_rules = [(rule, gated) for rule, gated in rules if rule.spec.scope == "pair"]
    if not pair_rules:
        return []
    out: list[Row | _Pending] = []
    if not current.agreement:
        for rule, gated in pair_rules:
            out.append(
                Row(
                    PAIR_TEST_ID,
                    "-",
                    rule.metric,
                    Verdict.UNMEASURED if gated else Verdict.MISSING_IN_CURRENT,
                    relative=rule.relative,
                    rule=rule if gated else None,
                    detail="no pair of backends in this run: it needs two or more --llm-backend",
                )
            )
        return out
    for entry in current.agreement:
        key = pair_key(entry)
        for rule, gated in pair_rules:
            common: dict[str, Any] = {
                "test_id": PAIR_TEST_ID,
                "backend": pair_name(entry),
                "metric": rule.metric,
                "relative": rule.relative,
                "rule": rule if gated else None,
            }
            value = entry.get(rule.metric)
            if not isinstance(value, (int, float)):
                verdict = Verdict.UNMEASURED if gated else Verdict.MISSING_IN_CURRENT
                detail = f"current run: unavailable ({entry.get('unavailable')})"
                out.append(Row(**common, verdict=verdict, detail=detail))
                continue
            runs = [
                [float(v)]
                for report in history
                for old in report.agreement
                if pair_key(old) == key and isinstance(v := old.get(rule.metric), (int, float))
            ]
            if not runs:
                detail = f"history: no {rule.metric} of this pair"
                out.append(Row(**common, verdict=Verdict.MISSING_IN_BASELINE, detail=detail))
                continue
            out.append(_Pending(common, rule, gated, runs, [float(value)], "", forced, 1))
    return out


def history_steps(
    history: Sequence[Sequence[float]], labels: Sequence[str], worse_sign: int
) -> tuple[HistoryStep, ...]:
    """Steps in the run means of ``history`` (E-divisive, :mod:`pytest_llmbench.changepoint`);
    none when the history is shorter than two minimal segments."""
    means = [sum(run) / len(run) for run in history]
    if len(means) < 2 * MIN_SEGMENT_RUNS:
        return ()
    return tuple(_step(point, labels, worse_sign) for point in change_points(means))


def _step(point: ChangePoint, labels: Sequence[str], worse_sign: int) -> HistoryStep:
    change = point.relative_change
    label = labels[point.index] if point.index < len(labels) else f"run {point.index + 1}"
    return HistoryStep(label, point.index, change, change * worse_sign < 0, point.p_value)


def _finish(pending: _Pending, alpha: float, confidence: float, method: str) -> Row:
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


def _rule_set(rules: Sequence[Rule], metrics: Sequence[str] | None) -> list[tuple[Rule, bool]]:
    """Gated rules, then shown-only metrics (threshold 0: the verdict says whether it is noise)."""
    shown = (
        list(metrics) if metrics is not None else ([] if rules else list(DEFAULT_COMPARE_METRICS))
    )
    out: list[tuple[Rule, bool]] = [(rule, True) for rule in rules]
    gated_metrics = {rule.metric for rule in rules}
    for name in shown:
        if name not in METRICS:
            raise ConfigError("metrics", unknown_metric_message(name))
        if name not in gated_metrics:
            out.append((Rule(name, 0.0, True, METRICS[name].worse_sign), False))
    return out


def _as_history(baseline: Report | History | Sequence[Report]) -> tuple[Report, ...]:
    if isinstance(baseline, Report):
        return (baseline,)
    if isinstance(baseline, History):
        return baseline.reports
    return tuple(baseline)


def compare(
    baseline: Report | History | Sequence[Report],
    current: Report,
    rules: Sequence[Rule] = (),
    *,
    metrics: Sequence[str] | None = None,
    allow_mixed: bool = False,
    method: str = DEFAULT_RATIO_METHOD,
    confidence: float = DEFAULT_CONFIDENCE,
    baseline_source: str | None = None,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    min_history: int = MIN_HISTORY_RUNS,
    allow_unmeasured: bool = False,
) -> Comparison:
    """Compare ``current`` with a baseline history (a report, a History, or reports oldest
    first); ``metrics`` are shown without gating (default: a few headline metrics when there are
    no rules). ``confidence`` and ``method`` shape the within-run interval shown for short
    histories."""
    if method not in RATIO_METHODS:
        raise ConfigError("method", f"{method!r} is not one of {', '.join(RATIO_METHODS)}")
    if not 0.0 < false_alarm_rate < 1.0:
        raise ConfigError("false_alarm_rate", f"{false_alarm_rate} is not within (0, 1)")
    if min_history < 2:
        raise ConfigError("min_history", f"{min_history} is not >= 2")
    history = _as_history(baseline)
    if baseline_source is None:
        baseline_source = baseline.describe() if isinstance(baseline, History) else "baseline"
    rule_set = _rule_set(rules, metrics)
    notes: list[str] = []
    interrupted = sum(1 for report in history if not report.complete)
    if interrupted:
        notes.append(
            f"{interrupted} baseline run(s) were interrupted; they hold only the results they "
            "completed"
        )
    gpu_forced: Verdict | None = None
    c_gpus = gpu_names(current.machine)
    for report in history:
        b_gpus = gpu_names(report.machine)
        comparable = not report.machine.get("mixed") and not current.machine.get("mixed")
        known = _has_gpu_info(report.machine) and _has_gpu_info(current.machine)
        if comparable and known and b_gpus != c_gpus:
            gpu_forced = Verdict.GPU_MISMATCH
            notes.append(
                f"GPUs differ: baseline {', '.join(b_gpus) or 'none'}, current "
                f"{', '.join(c_gpus) or 'none'}; numbers are shown, nothing is gated"
            )
            break

    exact: list[dict[tuple[str, str, str, str], list[BenchmarkResult]]] = []
    loose: list[dict[tuple[str, str, str], list[BenchmarkResult]]] = []
    for report in history:
        e: dict[tuple[str, str, str, str], list[BenchmarkResult]] = {}
        lo: dict[tuple[str, str, str], list[BenchmarkResult]] = {}
        for b in report.results:
            e.setdefault(match_key(b), []).append(b)
            lo.setdefault(_loose_key(b), []).append(b)
        exact.append(e)
        loose.append(lo)
    matched_keys: set[tuple[str, str, str, str]] = set()
    items: list[Row | _Pending] = []
    mixed_pairs: set[str] = set()
    energy_notes: dict[str, str] = {}
    mismatch_notes: set[str] = set()
    labels = _run_labels(baseline, history)
    for cur in current.results:
        runs = [e.get(match_key(cur), []) for e in exact]
        detail = ""
        if not any(runs):
            others = [
                [b for b in lo.get(_loose_key(cur), []) if b.backend != cur.backend] for lo in loose
            ]
            if any(others):
                backends = {cur.backend, *(b.backend for run in others for b in run)}
                matched_keys.update(match_key(b) for run in others for b in run)
                if not allow_mixed:
                    mismatch_notes.add(
                        f"{MixedBackendsError(backends)} Not compared; "
                        "--allow-mixed-backends compares them, labelled as mixed"
                    )
                    items.append(
                        Row(
                            cur.test_id,
                            cur.backend,
                            None,
                            Verdict.BACKEND_MISMATCH,
                            detail=str(MixedBackendsError(backends)),
                        )
                    )
                    continue
                mixed_pairs.update(backends)
                runs = others
                detail = "baseline backend " + ", ".join(
                    sorted({b.backend for run in others for b in run})
                )
        if not any(runs):
            items.append(Row(cur.test_id, cur.backend, None, Verdict.MISSING_IN_BASELINE))
            continue
        matched_keys.update(match_key(b) for run in runs for b in run)
        if any(b.config_hash != cur.config_hash for run in runs for b in run):
            detail = "; ".join(x for x in (detail, "config differs from the baseline's") if x)
            mismatch_notes.add(f"{_short_test(cur.test_id)}: the config differs from the history's")
        items += _metric_rows(
            [(label, run) for label, run in zip(labels, runs, strict=True) if run],
            cur,
            rule_set,
            extra_detail=detail,
            forced=gpu_forced,
            energy_notes=energy_notes,
            min_history=min_history,
        )
    items += _pair_rows(history, current, rule_set, gpu_forced)
    gated_judged = sum(
        1 for item in items if isinstance(item, _Pending) and item.gated and item.judged
    )
    alpha_gated = row_alpha(false_alarm_rate, gated_judged)
    rows = [
        item
        if isinstance(item, Row)
        else _finish(item, alpha_gated if item.gated else false_alarm_rate, confidence, method)
        for item in items
    ]
    if history:
        for b in history[-1].results:
            if match_key(b) not in matched_keys:
                rows.append(Row(b.test_id, b.backend, None, Verdict.MISSING_IN_CURRENT))
    notes += list(energy_notes) + sorted(mismatch_notes)
    unsegmented = [
        r.runs
        for r in rows
        if r.band is not None
        and r.metric in METRICS
        and not METRICS[r.metric].deterministic
        and r.runs < 2 * MIN_SEGMENT_RUNS
    ]
    if unsegmented:
        notes.append(
            f"steps in a history are looked for from {2 * MIN_SEGMENT_RUNS} runs on (have "
            f"{min(unsegmented)}): until then all runs are judged as one series"
        )
    if any(r.verdict is Verdict.SHORT_HISTORY for r in rows):
        notes.append(
            f"short history: fewer than {min_history} runs have these results, so the spread "
            "between runs is unknown; changes are shown with this run's own interval and "
            "nothing fails the build until the history is long enough"
        )
    if mixed_pairs:
        notes.append(
            "mixed backends compared (--allow-mixed-backends): " + ", ".join(sorted(mixed_pairs))
        )
    return Comparison(
        tuple(rows),
        baseline_source,
        tuple(notes),
        bool(mixed_pairs),
        history_runs=len(history),
        false_alarm_rate=false_alarm_rate,
        allow_unmeasured=allow_unmeasured,
    )


@cache
def _gate_preset() -> dict[str, Any]:
    from pytest_llmbench.config.load import load_preset

    try:
        return load_preset(GATE_PRESET)
    except Exception:  # a broken install: the remedy then simply names the preset
        return {}


GATE_PRESET = "gpu-gate"


def uses_gate_preset(config: dict[str, Any]) -> bool:
    """Whether ``config`` (a result's resolved config) holds every setting of the gpu-gate
    preset, so that a remedy does not recommend it to a run that already uses it."""
    preset = _gate_preset()
    return bool(preset) and _holds(config, preset)


def _holds(config: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(config, dict) and all(_holds(config.get(k), v) for k, v in wanted.items())
    return bool(config == wanted)


def _run_labels(
    baseline: Report | History | Sequence[Report], history: Sequence[Report]
) -> list[str]:
    """What names each history run in notes: its file name, else its start time."""
    if isinstance(baseline, History) and len(baseline.sources) == len(history):
        return [Path(source).name for source in baseline.sources]
    return [report.started_at or f"run {i + 1}" for i, report in enumerate(history)]


def _has_gpu_info(machine: dict[str, Any]) -> bool:
    gpus = machine.get("gpus")
    return isinstance(gpus, dict) and bool(gpus.get("available"))


def compare_with_file(
    current: Report,
    baseline: str | Path | Sequence[str | Path],
    rules: Sequence[Rule] = (),
    *,
    max_runs: int | None = None,
    option: str = "BASELINE",
    **kwargs: Any,
) -> Comparison:
    """:func:`compare` against the history in report files, folders or globs. A corrupt file,
    an empty folder or a history that mixes backends or configs raises an error naming the
    files; a baseline of another schema version gives schema-mismatch rows."""
    from pytest_llmbench.history import DEFAULT_HISTORY_RUNS, expand, load_history

    values = [str(baseline)] if isinstance(baseline, (str, Path)) else [str(b) for b in baseline]
    history = load_history(expand(values, option), max_runs or DEFAULT_HISTORY_RUNS)
    return compare_with_history(current, history, rules, **kwargs)


def compare_with_history(
    current: Report, history: History, rules: Sequence[Rule] = (), **kwargs: Any
) -> Comparison:
    """:func:`compare` against a loaded history; schema-mismatch rows when no report of the
    history could be read (all of another schema version)."""
    if not history.reports:
        detail = f"baseline of another schema version: {', '.join(history.skipped)}"
        rows = tuple(
            Row(r.test_id, r.backend, None, Verdict.SCHEMA_MISMATCH, detail=detail)
            for r in current.results
        )
        source = kwargs.get("baseline_source") or history.describe()
        return Comparison(rows, source, (detail + "; nothing is gated",), history_runs=0)
    comparison = compare(history, current, rules, **kwargs)
    if history.skipped:
        extra = f"skipped (another schema version): {', '.join(history.skipped)}"
        comparison = Comparison(
            comparison.rows,
            comparison.baseline_source,
            (*comparison.notes, extra),
            comparison.mixed_backends,
            comparison.history_runs,
            comparison.false_alarm_rate,
            comparison.allow_unmeasured,
        )
    return comparison
