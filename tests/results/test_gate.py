"""The gate: rule parsing, verdicts against a history, matching, and every non-comparable case."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.errors import ConfigError, ReportError
from pytest_llmbench.gate import (
    EXIT_REGRESSION,
    EXIT_UNMEASURED,
    Rule,
    Verdict,
    compare,
    compare_with_file,
    judge,
    parse_fail_on,
)
from pytest_llmbench.metrics import METRICS
from tests.results.factories import H100, make_report, make_result, noisy, write

EPT = "energy_per_output_token"


def test_parse_rules_from_the_issue() -> None:
    rules = parse_fail_on("energy_per_output_token:+5%,output_throughput:-3%")
    assert rules == (Rule(EPT, 0.05, True, 1), Rule("output_throughput", 0.03, True, -1))
    assert [str(r) for r in rules] == ["energy_per_output_token:+5%", "output_throughput:-3%"]


def test_parse_without_sign_uses_the_worse_direction_and_absolute_thresholds() -> None:
    a, b, c = parse_fail_on(["output_throughput:3%", "ttft_s_p99:0.05", "itl_s_p50:+1e-3"])
    assert (a.sign, a.relative) == (-1, True)
    assert (b.sign, b.relative, b.threshold) == (1, False, 0.05)
    assert c.threshold == 0.001


@given(
    st.sampled_from(sorted(METRICS)),
    st.sampled_from(["+", "-", ""]),
    st.floats(0, 500),
    st.booleans(),
)
def test_parse_round_trips(metric: str, sign: str, number: float, pct: bool) -> None:
    text = f"{metric}:{sign}{number!r}{'%' if pct else ''}"
    (rule,) = parse_fail_on(text)
    assert rule.metric == metric and rule.relative is pct
    assert rule.threshold == pytest.approx(number / 100 if pct else number)
    (again,) = parse_fail_on(str(rule))  # str() keeps 6 significant digits
    assert (again.metric, again.sign, again.relative) == (rule.metric, rule.sign, rule.relative)
    assert again.threshold == pytest.approx(rule.threshold, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "energy_per_token:+5%",
            "unknown metric 'energy_per_token'; known metrics: output_throughput,",
        ),
        ("ttft_s:+5%", "'ttft_s' needs a statistic over requests: one of ttft_s_mean, ttft_s_p50"),
        ("energy_per_output_token", "is not METRIC:[+|-]NUMBER[%]"),
        ("energy_per_output_token:five%", "is not METRIC:[+|-]NUMBER[%]"),
    ],
)
def test_parse_errors_name_the_option_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_fail_on(text)
    assert str(info.value).startswith("--llm-fail-on: ") and message in str(info.value)


PLUS5 = Rule(EPT, 0.05, True, 1)


def test_judge_regression_noise_ok_improved() -> None:
    base = noisy(0.5, 0.01, 5, seed=1)
    assert judge(base, noisy(0.55, 0.01, 5, seed=2), PLUS5)[0] is Verdict.REGRESSION
    assert judge(base, noisy(0.55, 0.15, 5, seed=2), PLUS5)[0] is Verdict.WITHIN_NOISE
    assert judge(base, noisy(0.505, 0.01, 5, seed=2), PLUS5)[0] is Verdict.OK
    assert judge(base, noisy(0.45, 0.01, 5, seed=2), PLUS5)[0] is Verdict.IMPROVED


def test_judge_follows_the_rule_direction_for_throughput() -> None:
    rule = Rule("output_throughput", 0.03, True, -1)
    base = noisy(1000, 0.005, 5, seed=3)
    assert judge(base, noisy(900, 0.005, 5, seed=4), rule)[0] is Verdict.REGRESSION
    assert judge(base, noisy(1100, 0.005, 5, seed=4), rule)[0] is Verdict.IMPROVED


def test_judge_absolute_threshold() -> None:
    rule = Rule("ttft_s_p99", 0.01, False, 1)
    verdict, change, interval = judge([0.100, 0.101, 0.099], [0.130, 0.131, 0.129], rule)
    assert verdict is Verdict.REGRESSION and change == pytest.approx(0.03)
    assert judge([0.100, 0.101, 0.099], [0.105, 0.106, 0.104], rule)[0] is Verdict.OK


def test_single_repetition_is_never_a_regression() -> None:
    verdict, _, interval = judge([0.5], [1.0], PLUS5)
    assert verdict is Verdict.WITHIN_NOISE and not interval.bounded


@given(
    base=st.lists(st.floats(0.1, 10), min_size=2, max_size=6),
    cur=st.lists(st.floats(0.1, 10), min_size=2, max_size=6),
    threshold=st.floats(0, 0.5),
)
def test_regression_implies_change_and_whole_interval_beyond_threshold(
    base: list[float], cur: list[float], threshold: float
) -> None:
    rule = Rule(EPT, threshold, True, 1)
    verdict, change, interval = judge(base, cur, rule)
    if verdict is Verdict.REGRESSION:
        assert change > threshold and interval.low - 1 > threshold
    if verdict is Verdict.OK:
        assert abs(change) <= threshold


def _history(
    runs: int,
    ept: float = 0.5,
    between: float = 0.01,
    within: float = 0.01,
    reps: int = 5,
    seed: int = 0,
    **kwargs: object,
) -> list:
    """``runs`` reports whose run means vary by ``between`` and repetitions by ``within``."""
    rng = random.Random(seed)
    out = []
    for j in range(runs):
        mean = rng.gauss(ept, ept * between)
        values = [rng.gauss(mean, mean * within) for _ in range(reps)]
        out.append(
            make_report(
                [make_result(energy_per_token=values, **kwargs)],  # type: ignore[arg-type]
                started_at=f"2025-01-01T00:{j:02d}:00.000+00:00",
            )
        )
    return out


def _current(values: list[float], **kwargs: object):  # type: ignore[no-untyped-def]
    return make_report([make_result(energy_per_token=values, **kwargs)])  # type: ignore[arg-type]


RULE = parse_fail_on("energy_per_output_token:+5%")


def test_ten_percent_worse_energy_against_a_steady_history_fails_with_exit_11() -> None:
    result = compare(_history(10), _current(noisy(0.55, 0.01, 5, 2)), RULE)
    (row,) = result.rows
    assert row.verdict is Verdict.REGRESSION and row.gated and row.runs == 10
    assert row.change == pytest.approx(0.1, abs=0.03)
    assert row.band is not None and row.band < 0.05 and row.detectable == 0.05
    assert result.failed and result.exit_code == EXIT_REGRESSION == 11
    assert "FAILED" in result.summary_line() and EPT in result.summary_line()
    assert len(result.summary_line()) < 200
    assert any(line.startswith("  regression: test_bench.py") for line in result.lines())


def test_a_change_inside_the_between_run_spread_passes_though_its_own_interval_excludes_it() -> (
    None
):
    # Runs vary 15% between runs while each run's repetitions agree within 1%: the measured
    # situation on a launch-bound GPU. Within-run statistics call +10% a regression; the
    # history knows better.
    history = _history(10, between=0.15, within=0.01, seed=5)
    current = _current(noisy(0.55, 0.01, 5, 2))
    pooled = [v for r in history for v in r.results[0].metric_values(EPT)]
    assert judge(pooled[-5:], current.results[0].metric_values(EPT), RULE[0])[0] is (
        Verdict.REGRESSION
    )
    result = compare(history, current, RULE)
    (row,) = result.rows
    assert row.verdict in (Verdict.WITHIN_NOISE, Verdict.OK) and result.exit_code == 0
    assert row.band is not None and row.band > 0.2


def test_a_rule_inside_the_noise_is_called_out_with_what_would_fix_it() -> None:
    result = compare(_history(10, between=0.15, seed=5), _current([0.5] * 5), RULE)
    (row,) = result.rows
    assert row.undetectable and row.detectable == row.band
    (note,) = [n for n in result.lines() if "cannot be detected" in n]
    assert (
        "energy_per_output_token:+5% cannot be detected in test_bench.py::test_a[pytorch]" in note
    )
    assert "runs vary" in note and f"beyond {row.band * 100:.1f}%" in note  # as in the table
    assert f"±{row.band * 100:.1f}%" in result.table()
    assert "history runs" not in note  # it has the 10 recommended: never advise what it does
    assert "--llm-preset gpu-gate" in note  # which this run does not use
    assert result.to_dict()["rows"][0]["detectable"] == pytest.approx(row.band)
    assert any("cannot be detected" in n for n in result.to_dict()["notes"])


def test_the_remedy_asks_for_more_runs_only_below_the_recommended_history() -> None:
    result = compare(_history(5, between=0.15, seed=5), _current([0.5] * 5), RULE)
    (note,) = [n for n in result.lines() if "cannot be detected" in n]
    assert "more history runs (have 5, 10 recommended)" in note


def test_the_remedy_never_recommends_the_preset_the_run_already_uses() -> None:
    from pytest_llmbench.config import resolve_config

    config = resolve_config(preset="gpu-gate").to_dict()
    history = [
        dataclasses.replace(
            r, results=tuple(dataclasses.replace(x, config=config) for x in r.results)
        )
        for r in _history(10, between=0.15, seed=5)
    ]
    current = _current([0.5] * 5)
    current = dataclasses.replace(
        current, results=tuple(dataclasses.replace(x, config=config) for x in current.results)
    )
    (note,) = [n for n in compare(history, current, RULE).lines() if "cannot be detected" in n]
    assert "--llm-preset gpu-gate" not in note and "keeps the GPU busier" in note


def test_a_decrease_band_wider_than_the_metric_is_never_shown_beyond_minus_100_percent() -> None:
    rule = parse_fail_on("output_throughput:-3%")
    history = [
        make_report([make_result(throughput=[t] * 3)])
        for t in (10.0, 200.0, 15.0, 300.0, 12.0, 250.0)
    ]
    result = compare(history, make_report([make_result(throughput=[100.0] * 3)]), rule)
    (row,) = result.rows
    assert row.band is not None and row.band > 1.0
    text = "\n".join(result.lines())
    assert "beyond -100%" in result.table() and "cannot flag any decrease" in text
    assert not re.search(r"[-±]\d{3,}\.\d%", text)  # no band of 100% or more as a number


def test_short_history_shows_what_is_known_and_never_fails() -> None:
    (one,) = _history(1)
    result = compare(one, _current([1.0] * 5), RULE)  # twice as much energy
    (row,) = result.rows
    assert row.verdict is Verdict.SHORT_HISTORY and row.gated
    assert row.change == pytest.approx(1.0, abs=0.05)
    assert row.interval is not None and row.interval.bounded  # this run's own interval
    assert not result.failed and result.exit_code == 0
    assert any("short history" in n for n in result.notes)
    assert "within run [" in result.table()


def test_three_runs_are_enough_to_judge_a_large_change() -> None:
    result = compare(_history(3, between=0.01), _current(noisy(1.0, 0.01, 5, 3)), RULE)
    assert result.rows[0].verdict is Verdict.REGRESSION


def test_the_false_alarm_budget_is_shared_by_the_gated_rows() -> None:
    rules = parse_fail_on("energy_per_output_token:+5%,output_throughput:-3%")
    result = compare(_history(10), _current(noisy(0.5, 0.01, 5, 9)), rules)
    gated = [r for r in result.rows if r.gated]
    assert len(gated) == 2 and all(r.alpha == pytest.approx(0.0025) for r in gated)
    stricter = compare(
        _history(10), _current(noisy(0.5, 0.01, 5, 9)), rules, false_alarm_rate=0.001
    )
    assert stricter.rows[0].band > result.rows[0].band  # energy varies; throughput is constant


def test_false_alarms_on_unchanged_code_stay_within_the_budget() -> None:
    # 2,000 gated comparisons of unchanged code whose runs vary 5% between runs, 2% within.
    alarms = 0
    trials = 2000
    for seed in range(trials):
        reports = _history(11, between=0.05, within=0.02, seed=seed)
        alarms += compare(reports[:10], reports[10], RULE).failed
    assert alarms / trials <= 0.01


def test_energy_unavailable_in_this_run_fails_a_gated_energy_rule_with_exit_12() -> None:
    rules = parse_fail_on("energy_per_output_token:+5%,output_throughput:-3%")
    result = compare(_history(5), _current([None] * 3), rules)  # type: ignore[list-item]
    energy, throughput = result.rows
    assert energy.verdict is Verdict.UNMEASURED and energy.detail == "current run"
    assert throughput.verdict is not Verdict.REGRESSION
    assert result.failed and result.exit_code == EXIT_UNMEASURED == 12
    assert "could not be measured" in result.summary_line()
    # The exit-12 line names its way out, for pytest and for llmbench compare.
    assert "--llm-allow-unmeasured" in result.summary_line()
    assert "llmbench compare: --allow-unmeasured" in result.summary_line()
    # The reason is said once, in a note, not in every row.
    assert [n for n in result.notes if "NVML not found" in n] == [
        "energy unavailable in the current run: NVML not found"
    ]
    assert "NVML not found" not in result.table()
    allowed = compare(_history(5), _current([None] * 3), rules, allow_unmeasured=True)  # type: ignore[list-item]
    assert allowed.rows[0].verdict is Verdict.UNMEASURED and not allowed.failed
    shown = compare(_history(5), _current([None] * 3), metrics=[EPT])  # type: ignore[list-item]
    assert shown.rows[0].verdict is Verdict.ENERGY_UNAVAILABLE and not shown.failed


def test_energy_unavailable_in_the_history_is_not_this_runs_fault() -> None:
    history = [_current([None] * 3) for _ in range(3)]  # type: ignore[list-item]
    result = compare(history, _current([0.5] * 3), RULE)
    assert result.rows[0].verdict is Verdict.MISSING_IN_BASELINE and not result.failed


def test_a_history_spanning_a_config_change_judges_each_run_against_its_own_config() -> None:
    # Ten runs of the old config (a release before a new config key), then four of the new one,
    # 20% apart: the new runs are their own series, the old ones are left out and named.
    old = _history(10, ept=0.6, config_hash="old")
    new = _history(4, ept=0.5, seed=1, config_hash="new")
    for j, report in enumerate(new):
        new[j] = dataclasses.replace(report, started_at=f"2025-01-01T01:{j:02d}:00.000+00:00")
    result = compare([*old, *new], _current(noisy(0.5, 0.01, 5, 3), config_hash="new"), RULE)
    (row,) = result.rows
    assert row.runs == 4 and row.verdict is Verdict.OK and not result.failed
    assert "config" not in row.detail
    assert (
        "test_bench.py::test_a[pytorch]: 10 history run(s) ran another config and are left out; "
        "judged against the 4 with this one"
    ) in result.notes
    # A current run whose config no history run shares is judged against all of them, as before,
    # and says so: a deliberate A/B of two configs.
    other = compare(old, _current(noisy(0.6, 0.01, 5, 4), config_hash="new"), RULE)
    (row,) = other.rows
    assert row.runs == 10 and "config differs from the baseline's" in row.detail


def test_missing_results_on_either_side() -> None:
    baseline = make_report([make_result("a"), make_result("old")])
    current = make_report([make_result("a"), make_result("new")])
    verdicts = {(r.test_id.split("::")[1], r.verdict) for r in compare(baseline, current).rows}
    assert ("new[pytorch]", Verdict.MISSING_IN_BASELINE) in verdicts
    assert ("old[pytorch]", Verdict.MISSING_IN_CURRENT) in verdicts


def test_matching_ignores_the_model_folder_but_not_the_workload() -> None:
    baseline = make_report([make_result(model="/home/ci/.cache/llmbench/tiny-1")])
    moved = make_report([make_result(model="/other/runner/tiny-1/")])
    assert {r.verdict for r in compare(baseline, moved).rows} != {Verdict.MISSING_IN_BASELINE}
    other = make_report([make_result(workload={"name": "long", "num_prompts": 99})])
    kinds = {r.verdict for r in compare(baseline, other).rows}
    assert kinds == {Verdict.MISSING_IN_BASELINE, Verdict.MISSING_IN_CURRENT}


def test_backend_mismatch_is_reported_and_not_compared_unless_allowed() -> None:
    history = _history(4, backend="pytorch")
    current = _current([1.0, 1.0, 1.0], backend="vllm")
    (row,) = compare(history, current, RULE).rows
    assert row.verdict is Verdict.BACKEND_MISMATCH
    assert row.detail.startswith("Mixed backends detected: pytorch, vllm.")
    allowed = compare(history, current, RULE, allow_mixed=True)
    assert allowed.mixed_backends and allowed.rows[0].verdict is Verdict.REGRESSION
    assert any("mixed backends compared" in n for n in allowed.notes)


def test_side_by_side_backends_each_compare_with_their_own_history() -> None:
    both = [make_result(backend="pytorch"), make_result(backend="vllm", energy_per_token=[0.2] * 3)]
    result = compare([make_report(both)] * 3, make_report(both), RULE)
    assert [(r.backend, r.verdict) for r in result.rows] == [
        ("pytorch", Verdict.OK),
        ("vllm", Verdict.OK),
    ]


def test_gpu_mismatch_shows_numbers_but_gates_nothing() -> None:
    a100 = {**H100, "gpus": {"available": True, "devices": [{"index": 0, "name": "A100"}]}}
    current = make_report([make_result(energy_per_token=[1.0, 1.0, 1.0])], machine=a100)
    result = compare(_history(4), current, RULE)
    (row,) = result.rows
    assert row.verdict is Verdict.GPU_MISMATCH and row.current == pytest.approx(1.0)
    assert not result.failed and "GPUs differ" in result.notes[0]


def test_schema_mismatch_baseline(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"schema_version": 99, "results": []}))
    result = compare_with_file(make_report([make_result()]), path, RULE)
    assert [r.verdict for r in result.rows] == [Verdict.SCHEMA_MISMATCH]
    assert not result.failed


def test_corrupt_baseline_raises_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text(make_report([make_result()]).to_json()[:100])
    with pytest.raises(ReportError, match=r"^.*base\.json: truncated JSON at line \d+"):
        compare_with_file(make_report([make_result()]), path)


def test_table_has_the_columns_and_verdicts(tmp_path: Path) -> None:
    for i, report in enumerate(_history(10)):
        write(tmp_path / f"run{i:02d}.json", report)
    result = compare_with_file(
        current=_current(noisy(0.55, 0.01, 5, 2)), baseline=tmp_path, rules=RULE
    )
    table = result.table()
    header = table.splitlines()[0].split()
    assert header == [
        "test",
        "backend",
        "metric",
        "history",
        "current",
        "change",
        "noise",
        "band",
        "rule",
        "verdict",
    ]
    assert "test_bench.py::test_a[pytorch]" in table and "regression" in table and "+5%" in table
    assert "(10)" in table
    assert result.lines()[0] == f"baseline: {tmp_path} (10 runs)"


def test_without_rules_headline_metrics_are_shown_not_gated() -> None:
    result = compare(_history(5), _current([0.9, 0.9, 0.9]))
    assert [r.metric for r in result.rows][:2] == ["output_throughput", "request_throughput"]
    assert not any(r.gated for r in result.rows)
    assert not result.failed
    ept = next(r for r in result.rows if r.metric == EPT)
    assert ept.verdict is Verdict.WORSE  # beyond the noise, but nobody asked to gate it
    assert "worse (not gated)" in result.table() and "regression" not in result.table()
    assert "regression" not in result.summary_line() and "shown" in result.summary_line()


def test_baseline_from_an_interrupted_run_is_noted() -> None:
    baseline = make_report([make_result()], complete=False, finished_at=None)
    result = compare(baseline, make_report([make_result()]))
    assert any("interrupted" in n for n in result.notes)


def test_energy_metric_without_values_is_energy_unavailable() -> None:
    from dataclasses import replace

    result = make_result()
    no_idle = replace(
        result,
        repetitions=tuple(
            replace(r, energy=replace(r.energy, idle_power_w=None))  # type: ignore[type-var]
            for r in result.repetitions
        ),
    )
    comparison = compare(
        make_report([result]), make_report([no_idle]), parse_fail_on("dynamic_energy_j:+5%")
    )
    (row,) = comparison.rows
    assert row.verdict is Verdict.UNMEASURED
    assert row.detail == "current run: no dynamic_energy_j values"
    assert comparison.exit_code == EXIT_UNMEASURED


def test_latency_metric_missing_when_the_backend_does_not_stream() -> None:
    from dataclasses import replace

    result = make_result()
    no_ttft = replace(result, repetitions=tuple(replace(r, ttft_s=()) for r in result.repetitions))
    comparison = compare(
        make_report([result]), make_report([no_ttft]), parse_fail_on("ttft_s_p50:+5%")
    )
    (row,) = comparison.rows
    assert row.verdict is Verdict.UNMEASURED and comparison.exit_code == EXIT_UNMEASURED
    shown = compare(make_report([result]), make_report([no_ttft]), metrics=["ttft_s_p50"])
    assert shown.rows[0].verdict is Verdict.MISSING_IN_CURRENT
