"""``llmbench calibrate``: runs in fresh processes, a noise profile, and a history for the gate."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from pytest_llmbench.cli import main
from pytest_llmbench.gate.calibrate import noise_profile, suggested_rules
from pytest_llmbench.gate.history import expand, load_history
from tests.results.factories import make_report, make_result, write


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def _history(
    folder: Path, runs: int, between: float, within: float, config_hash: str = "abc123"
) -> Path:
    rng = random.Random(7)
    folder.mkdir(exist_ok=True)
    first = len(list(folder.glob("run*.json")))
    for j in range(first, first + runs):
        mean = rng.gauss(0.5, 0.5 * between)
        values = [rng.gauss(mean, mean * within) for _ in range(5)]
        report = make_report(
            [make_result(energy_per_token=values, config_hash=config_hash)],
            started_at=f"2025-01-01T00:{j:02d}:00+00:00",
        )
        write(folder / f"run{j:02d}.json", report)
    return folder


def test_profile_separates_within_and_between_run_noise(tmp_path: Path) -> None:
    history = load_history(expand([str(_history(tmp_path / "h", 12, 0.10, 0.01))]))
    (row,) = noise_profile(history, ["energy_per_output_token"])
    assert row.runs == 12 and row.repetitions == 5
    assert row.within_cv == pytest.approx(0.01, rel=0.3)
    assert row.between_cv == pytest.approx(0.10, rel=0.4)
    assert row.min_threshold is not None and row.min_threshold > 2 * row.between_cv
    (suggestion,) = suggested_rules([row])
    rule = suggestion.rule
    assert rule is not None and rule.metric == "energy_per_output_token"
    assert rule.threshold >= row.min_threshold
    assert row.detect_95 is not None and row.detect_95 > row.min_threshold


def test_the_profile_counts_only_the_runs_of_the_newest_config(tmp_path: Path) -> None:
    # Eight noisy runs of an old config, then five steady ones of the new: the band is the new
    # series' alone, as the gate judges it.
    folder = _history(tmp_path / "h", 8, 0.20, 0.01, config_hash="old")
    _history(folder, 5, 0.0, 0.01, config_hash="new")
    (row,) = noise_profile(load_history(expand([str(folder)])), ["energy_per_output_token"])
    assert row.runs == 5
    assert row.between_cv < 0.05


def test_calibrate_without_runs_profiles_a_folder(tmp_path: Path) -> None:
    folder = _history(tmp_path / "h", 8, 0.02, 0.01)
    code, out = run("calibrate", str(folder), "--runs", "0", "--json", str(tmp_path / "p.json"))
    assert code == 0
    assert "within CV" in out and "between CV" in out and "smallest threshold" in out
    assert "smallest rules the gate can enforce here at a 0.005 false-alarm rate: " in out
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["runs"] == 8 and data["suggested_fail_on"][0].startswith(
        "energy_per_output_token:+"
    )


def test_calibrate_with_too_few_runs_is_a_usage_error_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _history(tmp_path / "h", 2, 0.02, 0.01)
    code, out = run("calibrate", str(folder), "--runs", "1", "--", "no-such-test-dir")
    err = capsys.readouterr().err
    assert code == 2 and not out  # nothing ran
    assert "--runs: 1 is too few" in err and "holds 2 run(s)" in err and "--runs 2 or more" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["run00.json", "run01.json"]


def test_pytest_arguments_without_the_separator_get_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("calibrate", str(tmp_path / "h"), "--runs", "10", "benchmarks", "-k", "x")
    err = capsys.readouterr().err
    assert code == 2 and "unrecognized arguments: benchmarks -k x" in err
    assert "pytest's arguments go after '--'" in err


def test_a_decrease_that_no_rule_can_see_is_not_enforceable_never_a_rule_below_minus_100(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "h"
    folder.mkdir()
    rng = random.Random(3)
    for j in range(8):  # throughput of a 2-core CPU next to other jobs: runs vary ~60%
        level = rng.choice([30.0, 80.0, 150.0])
        values = [rng.gauss(level, level * 0.05) for _ in range(3)]
        report = make_report(
            [make_result(throughput=values, energy_per_token=[0.5] * 3)],
            started_at=f"2025-01-01T00:{j:02d}:00+00:00",
        )
        write(folder / f"run{j:02d}.json", report)
    code, out = run("calibrate", str(folder), "--runs", "0", "--json", str(tmp_path / "p.json"))
    assert code == 0
    assert "output_throughput: not enforceable with this workload" in out
    assert "what would make it so" in out and "beyond -100%" in out
    assert "output_throughput:-" not in out  # no impossible rule such as -195%
    data = json.loads((tmp_path / "p.json").read_text())
    assert "output_throughput" in data["not_enforceable"]
    assert not any(r.startswith("output_throughput") for r in data["suggested_fail_on"])


def test_calibrate_refuses_its_own_options_in_the_pytest_args(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("calibrate", str(tmp_path / "h"), "--runs", "4", "--", "--llm-json", "x.json")
    assert code == 2 and "leave --llm-json out" in capsys.readouterr().err


def test_calibrate_runs_fresh_processes_and_its_folder_is_a_gate_history(
    echo_pytester: pytest.Pytester,
) -> None:
    folder = echo_pytester.path / "calibration"
    args = ["-p", "no:cacheprovider", "--llm-backend", "echo", "--llm-repeat", "3"]
    code, out = run(
        "calibrate", str(folder), "--runs", "4", "--metric", "output_throughput", "--", *args
    )
    assert code == 0, out
    assert sorted(p.name for p in folder.glob("*.json")) == [
        f"calibration-{i:03d}.json" for i in range(4)
    ]
    assert "test_throughput[echo]" in out and "output_throughput" in out
    starts = {json.loads(p.read_text())["started_at"] for p in folder.glob("*.json")}
    assert len(starts) == 4  # four separate sessions
    result = echo_pytester.runpytest(*args, "--llm-compare", str(folder))
    result.stdout.fnmatch_lines(["baseline: *calibration (4 runs)", "*llmbench gate passed*"])
