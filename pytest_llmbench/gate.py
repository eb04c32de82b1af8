"""Comparing results with a baseline, and failing the build on --llm-fail-on rules.

A rule is ``METRIC:[+|-]NUMBER[%]``; several are separated by commas, e.g.
``energy_per_output_token:+5%,output_throughput:-3%``. The sign names the direction that is a
regression (``+``: an increase); without a sign, the metric's worse direction is used (an
increase for latency and energy, a decrease for throughput). With ``%`` the threshold is
relative to the baseline mean; without it, it is absolute in the metric's unit
(``ttft_s_p99:+0.05`` fails when TTFT p99 grows by more than 50 ms).

A change is a **regression** only when it exceeds the threshold *and* the whole confidence
interval (:func:`pytest_llmbench.stats.ratio_interval`, or the Welch interval of the difference
for absolute rules) lies beyond the threshold; a change beyond the threshold whose interval
reaches back inside it is **within-noise**. Regressions of gated rules make the session (or
``llmbench compare``) exit with :data:`EXIT_REGRESSION`.

Results are matched by test id + backend + model + workload; the model is matched by the last
component of its path, so a cached model whose folder differs between runners still matches.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pytest_llmbench.environment import gpu_names
from pytest_llmbench.errors import ConfigError, MixedBackendsError
from pytest_llmbench.metrics import DEFAULT_COMPARE_METRICS, METRICS, Metric, unknown_metric_message
from pytest_llmbench.results import (
    SCHEMA_VERSION,
    BenchmarkResult,
    Report,
    read_report_data,
)
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
    ENERGY_UNAVAILABLE = "energy-unavailable"


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
class Row:
    """One line of the comparison: a metric of a matched result, or a result without partner."""

    test_id: str
    backend: str
    metric: str | None
    verdict: Verdict
    baseline: float | None = None  # mean over repetitions, metric's unit
    current: float | None = None
    change: float | None = None  # relative (0.1 = +10%) for relative rules, else absolute
    interval: Interval | None = None
    relative: bool = True
    rule: Rule | None = None  # None: shown, not gated
    detail: str = ""

    @property
    def gated(self) -> bool:
        return self.rule is not None

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
            "interval": self.interval.to_dict() if self.interval else None,
            "rule": str(self.rule) if self.rule else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    baseline_source: str = "baseline"
    notes: tuple[str, ...] = ()
    mixed_backends: bool = False

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.gated and r.verdict is Verdict.REGRESSION]

    @property
    def failed(self) -> bool:
        return bool(self.regressions)

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.failed else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[row.verdict.value] = out.get(row.verdict.value, 0) + 1
        return out

    def summary_line(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in sorted(self.counts().items()))
        if self.failed:
            names = ", ".join(sorted({f"{r.metric} ({r.test_id})" for r in self.regressions}))
            return f"llmbench gate FAILED against {self.baseline_source}: {names} [{counts}]"
        return (
            f"llmbench gate passed against {self.baseline_source} [{counts or 'nothing compared'}]"
        )

    def table(self) -> str:
        from tabulate import tabulate

        headers = [
            "test",
            "backend",
            "metric",
            "baseline",
            "current",
            "change",
            "interval",
            "rule",
            "verdict",
        ]
        rows = [
            [
                _short_test(r.test_id),
                r.backend,
                r.metric or "-",
                _num(r.baseline),
                _num(r.current),
                _change(r.change, r.relative),
                _interval(r.interval, r.relative),
                str(r.rule).split(":", 1)[1] if r.rule else "-",
                _verdict_text(r),
            ]
            for r in self.rows
        ]
        return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)

    def lines(self) -> list[str]:
        """What the terminal summary and ``llmbench compare`` print."""
        out = [f"baseline: {self.baseline_source}"]
        out += [f"note: {n}" for n in self.notes]
        if self.rows:
            out.append(self.table())
        out.append(self.summary_line())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_source,
            "failed": self.failed,
            "exit_code": self.exit_code,
            "mixed_backends": self.mixed_backends,
            "notes": list(self.notes),
            "rows": [r.to_dict() for r in self.rows],
        }


def _verdict_text(row: Row) -> str:
    text = row.verdict.value
    if row.verdict is Verdict.REGRESSION and not row.gated:
        text += " (not gated)"
    return f"{text} ({row.detail})" if row.detail else text


def _short_test(test_id: str) -> str:
    path, sep, rest = test_id.partition("::")
    return f"{Path(path).name}{sep}{rest}" if sep else test_id


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _change(change: float | None, relative: bool) -> str:
    if change is None or not math.isfinite(change):
        return "-"
    return f"{change * 100:+.1f}%" if relative else f"{change:+.4g}"


def _interval(interval: Interval | None, relative: bool) -> str:
    if interval is None:
        return "-"
    if not interval.bounded:
        return "unbounded"
    if relative:
        return f"[{(interval.low - 1) * 100:+.1f}%, {(interval.high - 1) * 100:+.1f}%]"
    return f"[{interval.low:+.4g}, {interval.high:+.4g}]"


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
    """The verdict of ``rule`` on two samples, the change and its interval.

    Changes are measured on a "worse is positive" scale: a regression needs the change and the
    interval's nearer end beyond the threshold; an improvement the mirror image.
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


def _metric_rows(
    base: Sequence[BenchmarkResult],
    cur: BenchmarkResult,
    rules: Sequence[tuple[Rule, bool]],
    *,
    method: str,
    confidence: float,
    extra_detail: str,
    forced: Verdict | None,
) -> list[Row]:
    rows: list[Row] = []
    for rule, gated in rules:
        spec = rule.spec
        common: dict[str, Any] = {
            "test_id": cur.test_id,
            "backend": cur.backend,
            "metric": rule.metric,
            "relative": rule.relative,
            "rule": rule if gated else None,
        }
        if spec.energy:
            reason = cur.energy_unavailable_reason or next(
                (b.energy_unavailable_reason for b in base if b.energy_unavailable_reason), None
            )
            if reason is not None:
                side = "current" if cur.energy_unavailable_reason else "baseline"
                rows.append(
                    Row(**common, verdict=Verdict.ENERGY_UNAVAILABLE, detail=f"{side}: {reason}")
                )
                continue
        b_values = [v for b in base for v in (b.metric_values(rule.metric) or [])]
        c_values = cur.metric_values(rule.metric) or []
        if not b_values or not c_values:
            side = "baseline" if not b_values else "current"
            if spec.energy:  # measured, but not this quantity (dynamic energy needs idle power)
                verdict = Verdict.ENERGY_UNAVAILABLE
            else:
                verdict = (
                    Verdict.MISSING_IN_BASELINE if not b_values else Verdict.MISSING_IN_CURRENT
                )
            rows.append(Row(**common, verdict=verdict, detail=f"{side}: no {rule.metric} values"))
            continue
        verdict, change, interval = judge(
            b_values, c_values, rule, method=method, confidence=confidence
        )
        notes = [n for n in (interval.note if not interval.bounded else "", extra_detail) if n]
        rows.append(
            Row(
                **common,
                verdict=forced or verdict,
                baseline=sum(b_values) / len(b_values),
                current=sum(c_values) / len(c_values),
                change=change,
                interval=interval,
                detail="; ".join(notes),
            )
        )
    return rows


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


def compare(
    baseline: Report,
    current: Report,
    rules: Sequence[Rule] = (),
    *,
    metrics: Sequence[str] | None = None,
    allow_mixed: bool = False,
    method: str = DEFAULT_RATIO_METHOD,
    confidence: float = DEFAULT_CONFIDENCE,
    baseline_source: str = "baseline",
) -> Comparison:
    """Compare ``current`` with ``baseline``; ``metrics`` are shown without gating (default: a
    few headline metrics when there are no rules)."""
    if method not in RATIO_METHODS:
        raise ConfigError("method", f"{method!r} is not one of {', '.join(RATIO_METHODS)}")
    rule_set = _rule_set(rules, metrics)
    notes: list[str] = []
    if not baseline.complete:
        notes.append("the baseline run was interrupted; it holds only the results it completed")
    gpu_forced: Verdict | None = None
    b_gpus, c_gpus = gpu_names(baseline.machine), gpu_names(current.machine)
    comparable = not baseline.machine.get("mixed") and not current.machine.get("mixed")
    known = _has_gpu_info(baseline.machine) and _has_gpu_info(current.machine)
    if comparable and known and b_gpus != c_gpus:
        gpu_forced = Verdict.GPU_MISMATCH
        notes.append(
            f"GPUs differ: baseline {', '.join(b_gpus) or 'none'}, current "
            f"{', '.join(c_gpus) or 'none'}; numbers are shown, nothing is gated"
        )

    exact: dict[tuple[str, str, str, str], list[BenchmarkResult]] = {}
    loose: dict[tuple[str, str, str], list[BenchmarkResult]] = {}
    for b in baseline.results:
        exact.setdefault(match_key(b), []).append(b)
        loose.setdefault(_loose_key(b), []).append(b)
    used: set[int] = set()
    rows: list[Row] = []
    mixed_pairs: set[str] = set()
    for cur in current.results:
        matches = exact.get(match_key(cur), [])
        detail = ""
        if not matches:
            others = [b for b in loose.get(_loose_key(cur), []) if b.backend != cur.backend]
            if others:
                backends = {cur.backend, *(b.backend for b in others)}
                if not allow_mixed:
                    used.update(id(b) for b in others)
                    rows.append(
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
                matches = others
                detail = "baseline backend " + ", ".join(sorted({b.backend for b in others}))
        if not matches:
            rows.append(Row(cur.test_id, cur.backend, None, Verdict.MISSING_IN_BASELINE))
            continue
        used.update(id(b) for b in matches)
        if any(b.config_hash != cur.config_hash for b in matches):
            detail = "; ".join(x for x in (detail, "config differs from the baseline's") if x)
        rows += _metric_rows(
            matches,
            cur,
            rule_set,
            method=method,
            confidence=confidence,
            extra_detail=detail,
            forced=gpu_forced,
        )
    for b in baseline.results:
        if id(b) not in used:
            rows.append(Row(b.test_id, b.backend, None, Verdict.MISSING_IN_CURRENT))
    if mixed_pairs:
        notes.append(
            "mixed backends compared (--allow-mixed-backends): " + ", ".join(sorted(mixed_pairs))
        )
    return Comparison(tuple(rows), baseline_source, tuple(notes), bool(mixed_pairs))


def _has_gpu_info(machine: dict[str, Any]) -> bool:
    gpus = machine.get("gpus")
    return isinstance(gpus, dict) and bool(gpus.get("available"))


def compare_with_file(
    current: Report,
    baseline_path: str | Path,
    rules: Sequence[Rule] = (),
    **kwargs: Any,
) -> Comparison:
    """:func:`compare` against a baseline file. A corrupt or truncated file raises ReportError
    (one line naming the file); a baseline of another schema version gives schema-mismatch rows."""
    source = str(baseline_path)
    data = read_report_data(baseline_path)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        detail = f"baseline schema_version {version!r}, this version reads {SCHEMA_VERSION}"
        rows = tuple(
            Row(r.test_id, r.backend, None, Verdict.SCHEMA_MISMATCH, detail=detail)
            for r in current.results
        )
        return Comparison(rows, source, (detail + "; nothing is gated",))
    baseline = Report.from_dict(data, source=source)
    return compare(baseline, current, rules, baseline_source=source, **kwargs)
