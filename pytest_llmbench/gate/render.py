"""Comparisons as text: table cells, notes on undetectable rules and history steps, remedies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from pytest_llmbench.gate.rows import Row
from pytest_llmbench.gate.verdicts import Verdict
from pytest_llmbench.metrics import METRICS
from pytest_llmbench.stats import Interval


def runs_text(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def failures(rows: Sequence[Row]) -> str:
    by_metric: dict[str, int] = {}
    for r in rows:
        by_metric[str(r.metric)] = by_metric.get(str(r.metric), 0) + 1
    return ", ".join(f"{m} in {n} test{'s' if n > 1 else ''}" for m, n in sorted(by_metric.items()))


def rule_text(row: Row) -> str:
    return str(row.rule).split(":", 1)[1] if row.rule else "-"


def verdict_text(row: Row) -> str:
    text = row.verdict.value
    if not row.gated and row.metric is not None and row.verdict is not Verdict.SHORT_HISTORY:
        text += " (not gated)"
    return text


def history_cell(row: Row) -> str:
    if row.baseline is None:
        return "-"
    if row.noise is not None and row.noise.segments > 1:  # the mean of the newest segment
        return f"{num(row.baseline)} ({row.noise.segment_runs} of {row.runs} since a step)"
    return f"{num(row.baseline)} ({row.runs})" if row.runs != 1 else num(row.baseline)


def band_cell(row: Row) -> str:
    if row.verdict is Verdict.SHORT_HISTORY and row.interval is not None:
        return f"within run {interval_text(row.interval, row.relative)}"
    return band_text(row)


def band_text(row: Row) -> str:
    """The noise band as the table, the notes and the failure lines all show it. A relative
    band of 100% or more on a metric whose regression is a decrease reaches past -100%: no
    value can leave it, and it is said so rather than shown as a number."""
    if row.band is None:
        return "-"
    if not math.isfinite(row.band):
        return "unbounded"
    if _reaches_past_zero(row):
        return "beyond -100%"
    return f"±{change_text(row.band, row.relative, signed=False)}"


def _worse_sign(row: Row) -> int:
    if row.rule is not None:
        return row.rule.sign
    return METRICS[row.metric].worse_sign if row.metric in METRICS else 1


def _reaches_past_zero(row: Row) -> bool:
    """A relative band on a decrease that no decrease can exceed (a value cannot fall >100%)."""
    band = row.band
    return bool(row.relative and band is not None and band >= 1.0 and _worse_sign(row) < 0)


def short_test(test_id: str) -> str:
    path, sep, rest = test_id.partition("::")
    return f"{Path(path).name}{sep}{rest}" if sep else test_id


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def change_text(change: float | None, relative: bool, signed: bool = True) -> str:
    if change is None or not math.isfinite(change):
        return "-"
    sign = "+" if signed else ""
    return f"{change * 100:{sign}.1f}%" if relative else f"{change:{sign}.4g}"


def interval_text(interval: Interval | None, relative: bool) -> str:
    if interval is None:
        return "-"
    if not interval.bounded:
        return "unbounded"
    if relative:
        return f"[{(interval.low - 1) * 100:+.1f}%, {(interval.high - 1) * 100:+.1f}%]"
    return f"[{interval.low:+.4g}, {interval.high:+.4g}]"


RECOMMENDED_HISTORY_RUNS = 10
"""History length docs/ci.md recommends; fewer runs widen the band through the t quantile."""


def row_notes(rows: Sequence[Row]) -> list[str]:
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
        tests = ", ".join(short_test(r.test_id) for r in group[:3])
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        noise = worst.noise
        spread = ""
        if noise is not None and noise.history_mean:
            spread = f": runs vary {noise.run_sd / abs(noise.history_mean) * 100:.1f}%"
        where = f" (widest in {short_test(worst.test_id)})" if len(group) > 1 else ""
        if _reaches_past_zero(worst):
            flags = f"its noise band{where} reaches beyond -100%, so it cannot flag any decrease"
        else:
            flags = f"it flags only changes beyond {band_text(worst).lstrip('±')}{where}"
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
                f"history step in {short_test(row.test_id)} {row.metric}: "
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


def table(rows: Sequence[Row]) -> str:
    """The comparison's table, one line per row (terminal summary, ``llmbench compare``)."""
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
    cells = [
        [
            short_test(r.test_id),
            r.backend,
            r.metric or "-",
            history_cell(r),
            num(r.current),
            change_text(r.change, r.relative),
            band_cell(r),
            rule_text(r),
            verdict_text(r),
        ]
        for r in rows
    ]
    return tabulate(cells, headers=headers, tablefmt="simple", disable_numparse=True)
