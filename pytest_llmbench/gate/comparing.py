"""Building a comparison: each current result matched with its history, judged, and the level of
every band set from the number of gated rows (family-wise false-alarm rate)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_llmbench.environment import gpu_names
from pytest_llmbench.errors import ConfigError, MixedBackendsError
from pytest_llmbench.gate.changepoint import MIN_SEGMENT_RUNS
from pytest_llmbench.gate.comparison import Comparison
from pytest_llmbench.gate.history import History
from pytest_llmbench.gate.judge import Pending, finish
from pytest_llmbench.gate.matching import PAIR_TEST_ID, loose_key, match_key, pair_key
from pytest_llmbench.gate.noise import MIN_HISTORY_RUNS, row_alpha
from pytest_llmbench.gate.preset import uses_gate_preset
from pytest_llmbench.gate.render import short_test
from pytest_llmbench.gate.rows import Row
from pytest_llmbench.gate.rules import Rule, rule_set
from pytest_llmbench.gate.verdicts import DEFAULT_FALSE_ALARM_RATE, Verdict
from pytest_llmbench.metrics import METRICS
from pytest_llmbench.results import BenchmarkResult, Report
from pytest_llmbench.stats import DEFAULT_CONFIDENCE, DEFAULT_RATIO_METHOD, RATIO_METHODS


def _metric_rows(
    runs: Sequence[tuple[str, Sequence[BenchmarkResult]]],
    cur: BenchmarkResult,
    rules: Sequence[tuple[Rule, bool]],
    *,
    extra_detail: str,
    forced: Verdict | None,
    energy_notes: dict[str, str],
    min_history: int,
) -> list[Row | Pending]:
    out: list[Row | Pending] = []
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
            Pending(common, rule, gated, history, current, extra_detail, forced, need, labels)
        )
    return out


def _pair_rows(
    history: Sequence[Report],
    current: Report,
    rules: Sequence[tuple[Rule, bool]],
    forced: Verdict | None,
) -> list[Row | Pending]:
    """Rows of pair-scoped metrics (token agreement): each pair of the current run against the
    same pair in the history's agreement sections. Pairs are never pooled with each other."""
    from pytest_llmbench.quality.agreement import pair_name

    pair_rules = [(rule, gated) for rule, gated in rules if rule.spec.scope == "pair"]
    if not pair_rules:
        return []
    out: list[Row | Pending] = []
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
            out.append(Pending(common, rule, gated, runs, [float(value)], "", forced, 1))
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
    ruled = rule_set(rules, metrics)
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
            lo.setdefault(loose_key(b), []).append(b)
        exact.append(e)
        loose.append(lo)
    matched_keys: set[tuple[str, str, str, str]] = set()
    items: list[Row | Pending] = []
    mixed_pairs: set[str] = set()
    energy_notes: dict[str, str] = {}
    mismatch_notes: set[str] = set()
    labels = _run_labels(baseline, history)
    for cur in current.results:
        runs = [e.get(match_key(cur), []) for e in exact]
        detail = ""
        if not any(runs):
            others = [
                [b for b in lo.get(loose_key(cur), []) if b.backend != cur.backend] for lo in loose
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
            same = [[b for b in run if b.config_hash == cur.config_hash] for run in runs]
            if any(same):
                # A history that spans a config change (an edited config, a plugin release with
                # a new key): the runs of this run's config are its series; the rest are left out.
                left_out = sum(1 for run, kept in zip(runs, same, strict=True) if run and not kept)
                runs = same
                mismatch_notes.add(
                    f"{short_test(cur.test_id)}: {left_out} history run(s) ran another config and "
                    f"are left out; judged against the {sum(1 for r in runs if r)} with this one"
                )
            else:
                detail = "; ".join(x for x in (detail, "config differs from the baseline's") if x)
                mismatch_notes.add(
                    f"{short_test(cur.test_id)}: the config differs from the history's"
                )
        items += _metric_rows(
            [(label, run) for label, run in zip(labels, runs, strict=True) if run],
            cur,
            ruled,
            extra_detail=detail,
            forced=gpu_forced,
            energy_notes=energy_notes,
            min_history=min_history,
        )
    items += _pair_rows(history, current, ruled, gpu_forced)
    gated_judged = sum(
        1 for item in items if isinstance(item, Pending) and item.gated and item.judged
    )
    alpha_gated = row_alpha(false_alarm_rate, gated_judged)
    rows = [
        item
        if isinstance(item, Row)
        else finish(item, alpha_gated if item.gated else false_alarm_rate, confidence, method)
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
    from pytest_llmbench.gate.history import DEFAULT_HISTORY_RUNS, expand, load_history

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
