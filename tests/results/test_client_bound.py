"""A client-bound run: the verdict, how it travels in reports, and what the gate makes of it."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.backends.base import Completion
from pytest_llmbench.energy.base import EnergyUnavailable
from pytest_llmbench.gate import EXIT_UNMEASURED, Verdict, compare, parse_fail_on
from pytest_llmbench.loadgen import (
    CPU_LIMIT,
    LAG_LIMIT_S,
    ClientLoad,
    add_runs,
    client_summary,
    schedule_lags_s,
)
from pytest_llmbench.report.html import render
from pytest_llmbench.report.terminal import render_summary
from pytest_llmbench.results import Repetition, Report

from .factories import make_report, make_result

IDLE = ClientLoad(wall_s=10.0, cpu_s=1.0)


def test_a_calm_client_is_not_bound() -> None:
    summary = client_summary([0.001] * 100, [IDLE], e2e_p50_s=0.5)
    assert summary["bound"] is False and summary["reasons"] == []
    assert summary["cpu_share"] == pytest.approx(0.1)
    assert summary["schedule_lag_s"]["p99"] == pytest.approx(0.001)


def test_lag_beyond_the_limit_binds_and_the_limit_grows_with_latency() -> None:
    lags = [0.001] * 90 + [0.05] * 10  # p99: 50 ms
    assert client_summary(lags, [IDLE], e2e_p50_s=0.1)["bound"]  # limit max(10 ms, 5 ms)
    # 5% of a 2 s request is 100 ms: a 50 ms lag is within the timing of such requests
    slow = client_summary(lags, [IDLE], e2e_p50_s=2.0)
    assert not slow["bound"] and slow["lag_limit_s"] == pytest.approx(0.1)
    reasons = client_summary(lags, [IDLE], None)["reasons"]
    assert reasons == [f"schedule lag p99 50.0 ms > {LAG_LIMIT_S * 1000:.1f} ms"]


def test_the_busiest_process_decides_cpu() -> None:
    busy = ClientLoad(wall_s=10.0, cpu_s=CPU_LIMIT * 10.0)
    summary = client_summary([], [IDLE, busy], None)
    assert summary["bound"] and summary["processes"] == 2
    assert summary["cpu_share"] == pytest.approx(CPU_LIMIT)
    assert summary["cpu_s"] == pytest.approx(1.0 + CPU_LIMIT * 10.0)
    assert "event loop busy 90%" in summary["reasons"][0]


def test_stalls_bind_beyond_five_percent_of_the_run() -> None:
    stalled = ClientLoad(wall_s=10.0, cpu_s=1.0, stalls=3, stalled_s=0.6, max_stall_s=0.3)
    summary = client_summary([], [stalled], None)
    assert summary["bound"] and summary["stalls"] == 3 and summary["max_stall_s"] == 0.3
    assert summary["reasons"] == ["event loop stalled 6.0% of the run (> 5%)"]
    assert not client_summary([], [dataclasses.replace(stalled, stalled_s=0.4)], None)["bound"]


@given(
    st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), max_size=5),
    st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), max_size=5),
)
def test_runs_add_per_process(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> None:
    first = [ClientLoad(w, c) for w, c in a]
    second = [ClientLoad(w, c) for w, c in b]
    total = add_runs(first, second)
    assert len(total) == max(len(a), len(b))
    assert sum(x.wall_s for x in total) == pytest.approx(
        sum(w for w, _ in a) + sum(w for w, _ in b)
    )


def test_lag_is_sent_minus_due_and_skips_requests_without_a_schedule() -> None:
    assert schedule_lags_s([1.5, 2.0, 3.0], [1.0, None, 3.5]) == [0.5, 0.0]


def completions(n: int, lag_s: float) -> list[Completion]:
    return [
        Completion(f"r{i}", 4, 8, 10.0 + i, 10.2 + i, 10.05 + i, scheduled_s=10.0 + i - lag_s)
        for i in range(n)
    ]


def test_a_repetition_summarises_its_client_and_round_trips_in_json() -> None:
    rep = Repetition.from_completions(
        completions(20, lag_s=0.2), 5.0, 1, EnergyUnavailable("none"), client_loads=[IDLE]
    )
    assert rep.client is not None and rep.client_bound
    assert rep.client["schedule_lag_s"]["p50"] == pytest.approx(0.2)
    again = Repetition.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again.client == rep.client and again.client_bound
    plain = Repetition.from_completions(completions(3, 0.0), 1.0, 1, EnergyUnavailable("none"))
    assert plain.client is None and "client" not in plain.to_dict()  # not a client: no section


def client_bound_report() -> Report:
    result = make_result(throughput=[900.0, 900.0, 900.0])
    bound = {"bound": True, "reasons": ["schedule lag p99 80.0 ms > 10.0 ms"]}
    reps = (dataclasses.replace(result.repetitions[0], client=bound), *result.repetitions[1:])
    return make_report([dataclasses.replace(result, repetitions=reps)])


def test_a_gated_metric_of_a_client_bound_result_is_unmeasured() -> None:
    history = [make_report([make_result()]) for _ in range(5)]
    rules = parse_fail_on("output_throughput:-3%")
    result = compare(history, client_bound_report(), rules)
    throughput = next(r for r in result.rows if r.metric == "output_throughput")
    assert throughput.verdict is Verdict.UNMEASURED
    assert throughput.detail.startswith("client-bound in 1 of 3 repetitions: schedule lag")
    assert result.exit_code == EXIT_UNMEASURED and result.failed
    assert any("not measured" in line and "client-bound" in line for line in result.lines())
    # A 10% drop that would be a regression is not judged: it measured the client.
    assert not result.regressions

    # a search's peak goodput is timed by the same client: unmeasured too
    def searched(report: Report) -> Report:
        [r] = report.results
        return make_report([dataclasses.replace(r, search={"peak_goodput": 9.0, "points": []})])

    peaks = compare([searched(h) for h in history], searched(client_bound_report()),
                    parse_fail_on("peak_goodput:-5%"))  # fmt: skip
    assert peaks.rows[0].verdict is Verdict.UNMEASURED
    shown = compare(history, client_bound_report(), metrics=["output_throughput"])
    assert shown.rows[0].verdict is not Verdict.UNMEASURED and not shown.failed


def test_summary_and_html_say_client_bound() -> None:
    report = client_bound_report()
    lines = "\n".join(render_summary(report.results))
    assert "client-bound: test_a[pytorch]: client-bound in 1 of 3 repetitions" in lines
    assert "<strong>client-bound</strong>" in render([report])
    assert "client-bound" not in "\n".join(render_summary(make_report([make_result()]).results))
