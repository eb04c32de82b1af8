"""The gate on repetitions recorded on a real GPU, resampled: false alarms and power.

tests/data/gate/*.json hold the per-repetition metrics of back-to-back re-runs of one command on
an H100 (``ci/gpu/gate-history.sh``, kept by ``ci/gpu/gate_data.py``): the workflow's former
command on the embedded tiny model, and the gpu-gate workload on the 1.1B shape. Each trial
draws a history and a current run from the clean runs and runs the real comparison with the
workflow's rules; the false-alarm rate of unchanged code must stay at or below 1%, and a +10%
energy-per-token regression injected into the gpu-gate workload must be caught in >= 95% of
trials with the documented history length. docs/ci.md quotes the rates these tests measure.
"""

from __future__ import annotations

import dataclasses
import json
import random
from functools import cache
from pathlib import Path

import pytest

from pytest_llmbench.gate import EXIT_REGRESSION, compare, parse_fail_on
from pytest_llmbench.results import Report
from tests.results.factories import make_report, make_result

DATA = Path(__file__).parents[1] / "data" / "gate"
RULES = parse_fail_on("energy_per_output_token:+5%,output_throughput:-3%")
TRIALS = 1000
GPU_GATE_HISTORY = 8  # the history length docs/ci.md recommends at the least for gpu-gate


@cache
def runs(name: str) -> tuple[list[Report], list[Report]]:
    """(clean runs, runs beside a GPU load) of one data file, as reports."""
    data = json.loads((DATA / f"{name}.json").read_text())
    clean, loaded = [], []
    for run in data["runs"]:
        results = []
        for test_id, metrics in run["results"].items():
            ept, thr = metrics["energy_per_output_token"], metrics["output_throughput"]
            if None in ept or None in thr:
                continue
            result = make_result(energy_per_token=ept, throughput=thr)
            results.append(dataclasses.replace(result, test_id=test_id))
        report = make_report(results, started_at=run["started_at"])
        (loaded if run["loaded"] else clean).append(report)
    return clean, loaded


def scaled(report: Report, factor: float) -> Report:
    """The same run with every repetition's energy per token ``factor`` times as large."""
    results = []
    for result in report.results:
        reps = tuple(
            dataclasses.replace(
                rep, energy=dataclasses.replace(rep.energy, energy_j=rep.energy.energy_j * factor)
            )
            for rep in result.repetitions
        )
        results.append(dataclasses.replace(result, repetitions=reps))
    return dataclasses.replace(report, results=tuple(results))


def trials(clean: list[Report], history: int, seed: int = 2026):
    rng = random.Random(seed)
    for _ in range(TRIALS):
        picked = rng.sample(clean, history + 1)
        yield picked[:history], picked[history]


@pytest.mark.parametrize(("name", "history"), [("tiny-h100", 10), ("gpu-gate-h100", 8)])
def test_unchanged_code_fails_the_gate_at_most_one_percent_of_the_time(
    name: str, history: int
) -> None:
    clean, _ = runs(name)
    assert len(clean) >= history + 2
    alarms = sum(compare(h, current, RULES).failed for h, current in trials(clean, history))
    assert alarms / TRIALS <= 0.01


def test_a_ten_percent_energy_regression_on_the_gpu_gate_workload_is_caught() -> None:
    clean, _ = runs("gpu-gate-h100")
    caught = 0
    for h, current in trials(clean, GPU_GATE_HISTORY):
        result = compare(h, scaled(current, 1.10), RULES)
        caught += any(r.metric == "energy_per_output_token" for r in result.regressions)
    assert caught / TRIALS >= 0.95


@pytest.mark.parametrize("name", ["tiny-h100", "gpu-gate-h100"])
def test_a_run_beside_a_gpu_load_fails_against_the_whole_history(name: str) -> None:
    clean, loaded = runs(name)
    assert loaded, "the data holds a run beside a GPU load"
    result = compare(clean, loaded[-1], RULES)
    assert result.exit_code == EXIT_REGRESSION
